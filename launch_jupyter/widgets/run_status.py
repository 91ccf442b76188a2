"""RunStatus: the one-line live status of a run that ``%launch submit`` shows."""

from __future__ import annotations

import threading

import traitlets

from .. import api
from ..core.model import Event
from . import _assets
from ._base import ActionWidget
from ._follow import follow, pinned_store_url
from ._paths import log_tail, open_request


class RunStatus(ActionWidget):
    """One run's state, stage and latest message, live until it ends."""

    _esm = _assets.esm("run_status.js")
    _css = _assets.css()
    _actions = ("cancel", "refresh", "open_output", "show_logs", "hide_logs")

    run_id = traitlets.Unicode("").tag(sync=True)
    name = traitlets.Unicode("").tag(sync=True)
    queue = traitlets.Unicode("").tag(sync=True)
    state = traitlets.Unicode("").tag(sync=True)
    stage = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    external_id = traitlets.Unicode("").tag(sync=True)
    output_notebook = traitlets.Unicode("").tag(sync=True)
    created_at = traitlets.Float(0.0).tag(sync=True)
    started_at = traitlets.Float(None, allow_none=True).tag(sync=True)
    finished_at = traitlets.Float(None, allow_none=True).tag(sync=True)
    open_request = traitlets.Dict().tag(sync=True)  # {"path": server-relative path, "nonce": n}
    log_lines = traitlets.List(traitlets.Unicode()).tag(sync=True)  # shown under the line when not empty
    agent_id = traitlets.Unicode("").tag(sync=True)  # the agent holding the run
    note = traitlets.Unicode("").tag(sync=True)  # e.g. "no agent is serving alice/laptop" while queued
    # The running cell: {cell, total, source, cell_started_at} (empty until the notebook reports one).
    progress = traitlets.Dict().tag(sync=True)

    def __init__(self, run_id: str, *, follow_events: bool = True, store_url: str | None = None, **kwargs):
        super().__init__(run_id=run_id, **kwargs)
        self._store_url = store_url = pinned_store_url(store_url)
        self._lock = threading.Lock()
        self._stop_following = None
        self.refresh()
        if follow_events and self.state not in ("succeeded", "failed", "cancelled"):
            self._stop_following = follow(self._on_events, ticker=self._read_progress, store_url=store_url)

    def __repr__(self) -> str:
        return f"RunStatus({self.run_id} {self.state}{': ' + self.message if self.message else ''})"

    def refresh(self) -> None:
        """Read the run from the store; stop following once it has ended."""
        with self._lock:
            run = api.get_run(self.run_id, store_url=self._store_url).run
            self.run_id, self.name, self.queue = run.id, run.name, run.queue_name
            self.stage, self.message = run.stage or "", run.message
            self.external_id = run.external_id or ""
            self.output_notebook = run.output_notebook or ""
            self.created_at, self.started_at, self.finished_at = run.created_at, run.started_at, run.finished_at
            self.agent_id = run.agent_id or ""
            self.note = (
                api.serving_note(f"{run.entity}/{run.queue_name}", store_url=self._store_url) or ""
                if run.state == "queued"
                else ""
            )
            self.state = str(run.state)
        self._read_progress()
        if run.state.is_terminal and self._stop_following is not None:
            self._stop_following()
            self._stop_following = None

    def _read_progress(self) -> None:
        """The running cell, from the store (called every second while the run is not finished)."""
        if self.state not in ("running", "succeeded", "failed", "cancelled"):
            return
        found = api.run_progress(self.run_id, store_url=self._store_url).get(self.run_id)
        if found is not None and found != self.progress:
            self.progress = found

    def _on_events(self, events: list[Event]) -> None:
        if any(e.run_id == self.run_id for e in events):
            self.refresh()

    def cancel(self) -> None:
        """Cancel this run."""
        api.cancel(self.run_id, store_url=self._store_url)
        self.refresh()

    def open_output(self) -> str:
        """Open the executed notebook in JupyterLab (the Open notebook button); returns its path."""
        request = open_request(self.run_id, self._store_url)
        self.open_request = {"path": request["path"], "nonce": request["nonce"]}
        return request["file"]

    def show_logs(self) -> None:
        """Show the tail of the run's log under the line (the Logs button)."""
        self.log_lines = log_tail(self.run_id, self._store_url) or ["(the log is empty)"]

    def hide_logs(self) -> None:
        """Close the log tail."""
        self.log_lines = []

    def close(self) -> None:
        """Stop following and close the widget."""
        if self._stop_following is not None:
            self._stop_following()
            self._stop_following = None
        super().close()
