"""Runners: one per queue ``resource``. A runner turns a Job into work at a target and reports on it.

Registered through the ``launch_jupyter.runners`` entry-point group and loaded lazily, so adding a
target is one new module plus one entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from ..core.config import AgentConfig
    from ..core.model import Job, Problem, Queue, Run, Status

GROUP = "launch_jupyter.runners"


@runtime_checkable
class Runner(Protocol):
    resource: str  # the name users write as a queue's resource
    needs_image: bool  # whether the agent must build or find a container image first

    def default_config(self) -> str:
        """The YAML a new queue of this resource starts from."""

    def validate(self, config: dict) -> list[Problem]:
        """Offline check of a (merged, template-filled) queue config. Warnings have severity 'warning'."""

    def preflight(self, queue: Queue, agent_config: AgentConfig) -> None:
        """Raise LaunchError if this machine cannot serve ``queue`` (missing package, credential...)."""

    def submit(self, job: Job) -> str:
        """Start the job and return its external id. Idempotent: if a job for ``job.run.id`` already
        exists at the target, return its id instead of starting a second one."""

    def poll(self, jobs: list[Job]) -> dict[str, Status]:
        """Status of many jobs at once, keyed by run id (one batched call per target location)."""

    def cancel(self, job: Job) -> None:
        """Ask the target to stop the job."""

    def logs(self, run: Run, follow: bool = False) -> Iterator[str]:
        """The job's log lines."""

    def dry_run(self, job: Job) -> dict:
        """The exact request ``submit`` would send, as plain data."""

    # Optional: ``log_path(job) -> str`` for runners that keep the job's log in a local file.


def known_runners() -> list[str]:
    from importlib.metadata import entry_points

    return sorted(ep.name for ep in entry_points(group=GROUP))


def get_runner(resource: str, agent_config: AgentConfig | None = None) -> Runner:
    """The runner registered for ``resource``; an unknown name lists the known ones."""
    from importlib.metadata import entry_points

    matches = [ep for ep in entry_points(group=GROUP) if ep.name == resource]
    if not matches:
        known = ", ".join(known_runners())
        raise ConfigError(f'unknown resource "{resource}", choose one of: {known}', path="resource")
    cls = matches[0].load()
    return cls(agent_config) if agent_config is not None else cls()
