"""AgentPanel: start and stop the in-kernel agent and watch what it does."""

from __future__ import annotations

import traitlets

from .. import api
from . import _assets
from ._base import ActionWidget
from ._follow import follow


class AgentPanel(ActionWidget):
    """The in-kernel agent: state, queues, max_jobs, capacity in use and current activity."""

    _esm = _assets.esm("agent_panel.js")
    _css = _assets.css()
    _actions = ("start", "stop", "refresh")

    state = traitlets.Unicode("stopped").tag(sync=True)
    agent_id = traitlets.Unicode("").tag(sync=True)
    queues = traitlets.List(traitlets.Unicode()).tag(sync=True)  # what the running agent serves
    max_jobs = traitlets.Int(1).tag(sync=True)
    active = traitlets.Int(0).tag(sync=True)
    capacity = traitlets.Int(1).tag(sync=True)
    activity = traitlets.Unicode("").tag(sync=True)
    runs = traitlets.Dict().tag(sync=True)  # run id → {state, phase, queue}
    available_queues = traitlets.List(traitlets.Unicode()).tag(sync=True)
    chosen_queues = traitlets.List(traitlets.Unicode()).tag(sync=True)  # what Start will serve ([] = all)

    def __init__(self, *, follow_events: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.refresh()
        self._stop_following = follow(lambda _events: self.refresh(), self.refresh) if follow_events else None

    def __repr__(self) -> str:
        if self.state == "stopped":
            return "AgentPanel(agent stopped)"
        return (f"AgentPanel({self.state}: {self.active}/{self.capacity} active, "
                f"queues {', '.join(self.queues)}; {self.activity})")

    def refresh(self) -> None:
        """Read the agent's status and the queues it could serve."""
        status = api.agent_status()
        self.available_queues = [q.path for q in api.list_queues()]
        if status is None:
            self.state, self.agent_id, self.queues, self.active, self.activity, self.runs = (
                "stopped", "", [], 0, "", {})
            return
        self.state = status["state"]
        self.agent_id = status["agent_id"]
        self.queues = list(status["queues"])
        self.max_jobs = int(status["max_jobs"])
        self.capacity = int(status["capacity"])
        self.active = int(status["active"])
        self.activity = status.get("activity") or ""
        self.runs = dict(status.get("runs") or {})

    def start(self, queues: list[str] | None = None, max_jobs: int | None = None) -> None:
        """Start the in-kernel agent on ``queues`` (default: the chosen ones, or all)."""
        chosen = self.chosen_queues if queues is None else queues
        api.start_agent(chosen, max_jobs=self.max_jobs if max_jobs is None else max_jobs)
        self.refresh()
        self.notice = f"agent started: {', '.join(self.queues)}"

    def stop(self) -> None:
        """Stop the in-kernel agent."""
        api.stop_agent()
        self.refresh()
        self.notice = "agent stopped"

    def close(self) -> None:
        """Stop following and close the widget."""
        if self._stop_following is not None:
            self._stop_following()
            self._stop_following = None
        super().close()
