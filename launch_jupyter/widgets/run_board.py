"""RunBoard: a live, paged table and timeline of runs, updated from agent events.

A page costs three SQL statements whatever its size (counts per queue and state, the page of runs,
their events in one batch), plus a read of the agent registry at most every REGISTRY_TTL seconds
when the page holds queued or held runs.
"""

from __future__ import annotations

import threading
import time

import traitlets

from .. import api
from ..board import PAGE_SIZE, board_view
from ..core.errors import ConfigError
from ..core.model import Event
from ..core.states import RunState
from ..store._store import RUN_SORTS
from . import _assets
from ._base import ActionWidget
from ._follow import follow, pinned_store_url
from ._paths import log_tail, open_request

LOG_TAIL = 200
REGISTRY_TTL = 5.0  # seconds a board reuses its read of the agent registry (agents beat every ~10 s)
SORTS = RUN_SORTS


class RunBoard(ActionWidget):
    """Runs of one queue (or all runs), a page at a time, following agents' events live.

    Filter by state (``states``), queue (``queue_filter``) and text; sort by ``sort``; page with
    ``page`` (``page_size`` rows each). ``counts`` holds the number of runs per state under the
    queue and text filters, ``total`` the number matching every filter.
    """

    _esm = _assets.esm("run_board.js")
    _css = _assets.css()
    _actions = (
        "cancel",
        "delete",
        "show_logs",
        "hide_logs",
        "refresh",
        "open_output",
        "set_view",
        "show_files",
        "open_file",
    )

    queue = traitlets.Unicode("").tag(sync=True)  # the board's own queue ("" = every queue)
    limit = traitlets.Int(PAGE_SIZE).tag(sync=True)  # rows per page
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    counts = traitlets.Dict().tag(sync=True)  # state → runs
    queues = traitlets.List(traitlets.Unicode()).tag(sync=True)  # the queues with runs, for the filter
    total = traitlets.Int(0).tag(sync=True)
    page = traitlets.Int(0).tag(sync=True)
    states = traitlets.List(traitlets.Unicode()).tag(sync=True)  # [] = every state
    queue_filter = traitlets.Unicode("").tag(sync=True)
    text = traitlets.Unicode("").tag(sync=True)
    sort = traitlets.Unicode("created").tag(sync=True)
    descending = traitlets.Bool(True).tag(sync=True)
    log_run = traitlets.Unicode("").tag(sync=True)
    log_lines = traitlets.List(traitlets.Unicode()).tag(sync=True)
    open_request = traitlets.Dict().tag(sync=True)  # {"path": server-relative path, "nonce": n}
    files_run = traitlets.Unicode("").tag(sync=True)  # the run whose written files ``files`` lists
    files = traitlets.List(traitlets.Dict()).tag(sync=True)  # api.run_files of it (the server's list too)

    def __init__(
        self,
        queue: str | None = None,
        *,
        limit: int = PAGE_SIZE,
        follow_events: bool = True,
        store_url: str | None = None,
        **kwargs,
    ):
        super().__init__(queue=queue or "", limit=limit, **kwargs)
        self._store_url = store_url = pinned_store_url(store_url)
        self._lock = threading.RLock()
        self._dirty = False
        self._refreshed_at = 0.0
        self._agents: tuple[float, list[dict]] = (float("-inf"), [])
        if self.queue:
            api.get_queue(self.queue, store_url=store_url)  # a clear error for a queue that is not there
        self.refresh()
        self._stop_following = follow(self._on_events, self._on_tick, store_url) if follow_events else None

    def __repr__(self) -> str:
        summary = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n) or "no runs"
        return f"RunBoard({self.queue or 'all queues'}: {summary}; page {self.page + 1}, {len(self.rows)} shown)"

    # ---------------------------------------------------------------- data

    def refresh(self) -> None:
        """Reload the page shown (counts, rows, their events) from the store."""
        with self._lock:
            view = board_view(
                api.open_store(self._store_url),
                queue=self.queue or self.queue_filter or None,
                states=self.states,
                text=self.text,
                sort=self.sort,
                descending=self.descending,
                page=self.page,
                limit=self.limit,
                registry=self._registry,
            )
            self.counts = view["counts"]
            self.queues = sorted(set(view["queues"]) | ({self.queue_filter} - {""}))
            self.total = view["total"]
            self.page = view["page"]
            self.rows = view["rows"]
            self._dirty = False
            self._refreshed_at = time.monotonic()
        if self.log_run and any(r["id"] == self.log_run for r in view["rows"]):
            self._load_log(self.log_run)

    def _registry(self, holders: set[str]) -> list[dict]:
        # Who serves what changes at agent start/stop: one read per REGISTRY_TTL, not per page, and
        # at once when a run is held by an agent this board has not seen yet.
        read_at, seen = self._agents
        if time.monotonic() - read_at > REGISTRY_TTL or not holders <= {a["id"] for a in seen}:
            seen = api.agents(store_url=self._store_url)
            self._agents = (time.monotonic(), seen)
        return seen

    def refresh_run(self, run_id: str) -> None:
        """A run changed: reload the page (it may enter, leave or move on it)."""
        self.refresh()

    def set_view(self, **view) -> None:
        """Change the filters, the sort or the page (the board's controls), then reload."""
        known = {"states", "queue_filter", "text", "sort", "descending", "page"}
        unknown = set(view) - known
        if unknown:
            raise ConfigError(f"unknown board setting {sorted(unknown)[0]!r}; choose from: {', '.join(sorted(known))}")
        if "sort" in view and view["sort"] not in SORTS:
            raise ConfigError(f"unknown sort {view['sort']!r}; choose from: {', '.join(SORTS)}", path="sort")
        for state in view.get("states") or []:
            if state not in {s.value for s in RunState}:
                raise ConfigError(f"unknown state {state!r}", path="states")
        with self.hold_trait_notifications():
            for key, value in view.items():
                setattr(self, key, value)
            if "page" not in view:
                self.page = 0  # a new filter or sort starts on its first page
        self.refresh()

    def _on_events(self, events: list[Event]) -> None:
        # Many events come in bursts: refresh at most every 0.3 s, the rest on the next tick.
        if time.monotonic() - self._refreshed_at >= 0.3:
            self.refresh()
        else:
            self._dirty = True

    def _on_tick(self) -> None:
        if self._dirty:
            self.refresh()
        # A running job's log grows without state events: keep the open tail fresh.
        elif self.log_run and any(
            r["id"] == self.log_run and r["state"] not in ("succeeded", "failed", "cancelled") for r in self.rows
        ):
            self._load_log(self.log_run)

    # ---------------------------------------------------------------- actions

    def cancel(self, run_id: str) -> None:
        """Cancel a run (the Cancel button, after its confirmation)."""
        run = api.cancel(run_id, store_url=self._store_url)
        self.refresh()
        self.notice = f"cancel requested for {run.id}"

    def delete(self, run_id: str) -> None:
        """Forget a finished run (the Delete button, after its confirmation)."""
        run = api.delete_run(run_id, store_url=self._store_url)
        if self.files_run == run.id:
            self.files_run, self.files = "", []
        self.refresh()
        self.notice = f"deleted {run.name or run.id}"

    def show_files(self, run_id: str) -> list[dict]:
        """List what the run wrote (its executed notebook first) under its row's details."""
        listed = api.run_files(run_id, store_url=self._store_url)["files"]
        self.files = listed
        self.files_run = api.get_run(run_id, store_url=self._store_url).id
        return listed

    def open_file(self, run_id: str, name: str) -> str:
        """Copy a file the run wrote beside this notebook (``launch-outputs/<run id>/<name>``), where
        the file browser shows it, and open it in JupyterLab; returns the copy's path."""
        import shutil
        import time
        from pathlib import Path

        from ._paths import server_relative

        source = api.run_file(run_id, name, store_url=self._store_url)  # checks the name first
        target = Path.cwd() / "launch-outputs" / api.get_run(run_id, store_url=self._store_url).id / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        self.open_request = {"path": server_relative(target) or str(target), "nonce": time.time()}
        return str(target)

    def show_logs(self, run_id: str) -> None:
        """Show the tail of a run's log under its row (the Logs button)."""
        self.log_run = run_id
        self._load_log(run_id)

    def hide_logs(self) -> None:
        """Close the log tail."""
        self.log_run = ""
        self.log_lines = []

    def _load_log(self, run_id: str) -> None:
        self.log_lines = log_tail(run_id, self._store_url, LOG_TAIL)

    def open_output(self, run_id: str) -> str:
        """Open the run's executed notebook in JupyterLab (a copy beside this notebook if it lives
        elsewhere); returns the path that was opened."""
        request = open_request(run_id, self._store_url)
        self.open_request = {"path": request["path"], "nonce": request["nonce"]}
        return request["file"]

    def close(self) -> None:
        """Stop following events and close the widget."""
        if self._stop_following is not None:
            self._stop_following()
            self._stop_following = None
        super().close()
