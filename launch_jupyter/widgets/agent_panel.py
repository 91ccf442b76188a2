"""AgentPanel: start and stop the in-kernel agent and watch what it does."""

from __future__ import annotations

import threading

import traitlets

from .. import api
from ..core.errors import ConfigError, LaunchError
from . import _assets
from ._base import ActionWidget
from ._follow import follow, pinned_store_url


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
    chosen_queues = traitlets.List(traitlets.Unicode()).tag(sync=True)  # what Start will serve (a choice is needed)

    def __init__(self, *, follow_events: bool = True, store_url: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self._store_url = store_url = pinned_store_url(store_url)
        self._starting: threading.Thread | None = None
        self.refresh()
        if not self.chosen_queues:
            self.chosen_queues = self.last_served()
        self._stop_following = (
            follow(lambda _events: self.refresh(), self.refresh, store_url) if follow_events else None
        )

    def last_served(self) -> list[str]:
        """The queues the newest agent in the registry served, those this user can see (the
        preselected choice; [] when no agent ran yet)."""
        visible = set(self.available_queues)
        try:
            seen = api.agents(store_url=self._store_url)
        except LaunchError:
            return []
        for agent in seen:
            served = [q for q in agent.get("queues") or [] if q in visible]
            if served:
                return served
        return []

    def __repr__(self) -> str:
        if self.state == "stopped":
            return "AgentPanel(agent stopped)"
        return (
            f"AgentPanel({self.state}: {self.active}/{self.capacity} active, "
            f"queues {', '.join(self.queues)}; {self.activity})"
        )

    def refresh(self) -> None:
        """Read the agent's status and the queues it could serve."""
        if self._starting is not None and self._starting.is_alive():
            return  # "starting" until the start thread says otherwise
        status = api.agent_status()
        self.available_queues = [q.path for q in api.list_queues(store_url=self._store_url)]
        if status is None:
            self.state, self.agent_id, self.queues, self.active, self.activity, self.runs = (
                "stopped",
                "",
                [],
                0,
                "",
                {},
            )
            return
        self.state = status["state"]
        self.agent_id = status["agent_id"]
        self.queues = list(status["queues"])
        self.max_jobs = int(status["max_jobs"])
        self.capacity = int(status["capacity"])
        self.active = int(status["active"])
        self.activity = status.get("activity") or ""
        self.runs = dict(status.get("runs") or {})

    def start(
        self, queues: list[str] | None = None, max_jobs: int | None = None, wait: bool = False
    ) -> threading.Thread:
        """Start the in-kernel agent on ``queues`` (default: the chosen ones; a choice is needed).

        The preflight (credentials, the registry, the queues) runs on a thread, never on the
        kernel's: the panel shows "starting" with a spinner, then the agent or the error. Returns
        that thread (``wait=True`` joins it first)."""
        chosen = list(self.chosen_queues if queues is None else queues)
        if not chosen:
            raise ConfigError("choose the queues this agent serves (none chosen)", path="queues")
        if self._starting is not None and self._starting.is_alive():
            raise LaunchError("the agent is starting already")
        jobs = self.max_jobs if max_jobs is None else max_jobs
        self.state, self.activity = "starting", f"checking {', '.join(chosen)}…"
        # A local name: the thread clears self._starting when it is done, maybe before we join it.
        thread = self._starting = threading.Thread(
            target=self._start, args=(chosen, jobs), name="launch-agent-start", daemon=True
        )
        thread.start()
        if wait:
            thread.join()
        return thread

    def _start(self, chosen: list[str], jobs: int) -> None:
        error = ""
        try:
            api.start_agent(chosen, max_jobs=jobs, store_url=self._store_url)
        except LaunchError as err:
            error = str(err)
        except Exception as err:  # a bug must still show up in the panel
            error = f"{type(err).__name__}: {err}"
        self._starting = None
        self.refresh()
        if error:
            self.error = f"the agent did not start: {error}"
        else:
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
