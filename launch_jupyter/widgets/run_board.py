"""RunBoard: a live table and timeline of runs, updated from agent events."""

from __future__ import annotations

import threading

import traitlets

from .. import api
from ..core.errors import RunError
from ..core.model import Event, Run
from . import _assets
from ._base import ActionWidget
from ._follow import follow
from ._paths import log_tail, open_request

LOG_TAIL = 200


def run_row(run: Run, events: list[Event]) -> dict:
    """What the board shows of one run (plain JSON for the frontend)."""
    return {
        "id": run.id,
        "name": run.name,
        "state": str(run.state),
        "queue": run.queue_name,
        "entity": run.entity,
        "resource": run.resource,
        "author": run.author,
        "priority": str(run.priority),
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "stage": run.stage or "",
        "message": run.message,
        "external_id": run.external_id or "",
        "output_notebook": run.output_notebook or "",
        "cancel_requested": run.cancel_requested,
        "events": [{"state": str(e.state), "time": e.time} for e in events],
    }


class RunBoard(ActionWidget):
    """Runs of one queue (or all visible runs), newest first, following agents' events live."""

    _esm = _assets.esm("run_board.js")
    _css = _assets.css()
    _actions = ("cancel", "show_logs", "hide_logs", "refresh", "open_output")

    queue = traitlets.Unicode("").tag(sync=True)
    limit = traitlets.Int(50).tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    log_run = traitlets.Unicode("").tag(sync=True)
    log_lines = traitlets.List(traitlets.Unicode()).tag(sync=True)
    open_request = traitlets.Dict().tag(sync=True)  # {"path": server-relative path, "nonce": n}

    def __init__(self, queue: str | None = None, *, limit: int = 50, follow_events: bool = True,
                 store_url: str | None = None, **kwargs):
        super().__init__(queue=queue or "", limit=limit, **kwargs)
        self._store_url = store_url
        self._lock = threading.RLock()
        self._by_id: dict[str, dict] = {}
        self.refresh()
        self._stop_following = follow(self._on_events, self._on_tick, store_url) if follow_events else None

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no runs"
        return f"RunBoard({self.queue or 'all queues'}: {summary})"

    # ---------------------------------------------------------------- data

    def refresh(self) -> None:
        """Reload every row from the store."""
        runs = api.list_runs(queue=self.queue or None, limit=self.limit, store_url=self._store_url)
        rows = {r.id: run_row(r, api.events(r.id, store_url=self._store_url)) for r in runs}
        with self._lock:
            self._by_id = rows
            self._publish()

    def refresh_run(self, run_id: str) -> None:
        """Reload one run's row (added if it is new and belongs on this board)."""
        try:
            run = api.get_run(run_id, store_url=self._store_url).run
        except RunError:
            return
        if self.queue and run.queue_name != self.queue and f"{run.entity}/{run.queue_name}" != self.queue:
            return
        row = run_row(run, api.events(run.id, store_url=self._store_url))
        with self._lock:
            self._by_id[run.id] = row
            self._publish()
        if self.log_run == run.id:
            self._load_log(run.id)

    def _publish(self) -> None:
        rows = sorted(self._by_id.values(), key=lambda r: r["created_at"], reverse=True)[: self.limit]
        self._by_id = {r["id"]: r for r in rows}
        self.rows = rows

    def _on_events(self, events: list[Event]) -> None:
        for run_id in dict.fromkeys(e.run_id for e in events):
            self.refresh_run(run_id)

    def _on_tick(self) -> None:
        # A running job's log grows without state events: keep the open tail fresh.
        if self.log_run and any(r["id"] == self.log_run and r["state"] not in ("succeeded", "failed", "cancelled")
                                for r in self.rows):
            self._load_log(self.log_run)

    # ---------------------------------------------------------------- actions

    def cancel(self, run_id: str) -> None:
        """Cancel a run (the Cancel button)."""
        api.cancel(run_id, store_url=self._store_url)
        self.refresh_run(run_id)

    def show_logs(self, run_id: str) -> None:
        """Show the tail of a run's log under the table (the Logs button)."""
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
