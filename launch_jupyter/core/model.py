"""The records the store keeps and the job a runner receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .states import Priority, RunState


@dataclass(frozen=True)
class TemplateVar:
    """A queue template variable, used as ``{{name}}`` in the queue config."""

    name: str
    type: str = "string"  # string | integer | number
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "type": self.type, "default": self.default}
        for key in ("minimum", "maximum", "description"):
            if getattr(self, key) not in (None, ""):
                d[key] = getattr(self, key)
        if self.enum is not None:
            d["enum"] = list(self.enum)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TemplateVar:
        enum = d.get("enum")
        return cls(
            name=d["name"],
            type=d.get("type", "string"),
            default=d.get("default"),
            minimum=d.get("minimum"),
            maximum=d.get("maximum"),
            enum=tuple(enum) if enum is not None else None,
            description=d.get("description", ""),
        )


@dataclass
class Queue:
    """A launch queue. Private when ``entity == created_by``, shared (team) otherwise."""

    entity: str
    name: str
    resource: str
    config: dict[str, Any]
    config_text: str = ""
    prioritization: bool = False
    template_vars: list[TemplateVar] = field(default_factory=list)
    created_by: str = ""
    id: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # What the create_queue call that returned this did: created, updated or unchanged (not stored).
    outcome: str = field(default="", compare=False)

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.name}"

    @property
    def shared(self) -> bool:
        return self.entity != self.created_by

    def view(self) -> dict[str, Any]:
        """The queue as the front ends show it (``queue show --json``, the REST API's queues)."""
        return {
            "queue": self.path,
            "entity": self.entity,
            "name": self.name,
            "resource": self.resource,
            "prioritization": self.prioritization,
            "visibility": "shared" if self.shared else "private",
            "created_by": self.created_by,
            "template_vars": [v.to_dict() for v in self.template_vars],
            "config": self.config,
        }


@dataclass
class Run:
    """One submitted job."""

    id: str
    queue_id: int
    queue_name: str
    entity: str
    author: str
    resource: str
    state: RunState = RunState.QUEUED
    priority: Priority = Priority.MEDIUM
    name: str = ""
    notebook: str = ""  # the notebook's path at submit time (for people; the content is in the context)
    parameters: dict[str, Any] = field(default_factory=dict)
    template_values: dict[str, Any] = field(default_factory=dict)
    resource_args: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(
        default_factory=dict
    )  # queue config + resource_args + template vars, resolved at submit
    image: str | None = None  # an image the submitter named (--image)
    image_uri: str | None = None  # the image the run ran in (built or given)
    content_hash: str | None = None
    external_id: str | None = None  # e.g. the Vertex job resource name, saved as soon as it exists
    agent_id: str | None = None
    lease_expires_at: float | None = None
    lease_generation: int = 0  # the fencing token: bumped by every claim, reattach and release
    host: str | None = None  # the host identity a host-bound run (local process, container) lives on
    cancel_requested: bool = False
    stage: str | None = None  # where it failed: build | submit | run
    message: str = ""
    output_notebook: str | None = None
    log_path: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    sweep_id: str | None = None  # the sweep this run is one point of
    running_at: float | None = None  # when it first reached ``running`` (what machine hours count from)
    # Its price at submit (core.cost.Estimate.record: hourly, machines, region, source) and, once it
    # ended, machine_hours and estimated (None: no price); None for a resource with no price table.
    cost: dict[str, Any] | None = None


@dataclass(frozen=True)
class Event:
    """One append-only line of a run's history."""

    run_id: str
    time: float
    state: RunState
    message: str = ""
    id: int | None = None
    agent_id: str | None = None  # the agent that wrote it (None: a front end or the store itself)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: ``path`` is the key path, e.g. ``spec.worker_pool_specs[0].machine_spec``."""

    path: str
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Job:
    """What a runner receives: the run plus everything resolved for dispatch."""

    run: Run
    queue: Queue
    config: dict[str, Any]  # run.config with the dispatch macros (${image_uri}, ${run_id}, ...) filled
    workdir: Path  # this run's own local folder (the agent's side)
    context_dir: Path | None = None  # the unpacked build context (notebook, files, Dockerfile)
    notebook: str = ""  # the notebook's path relative to context_dir
    image_uri: str | None = None
    output_path: str = ""  # where the executed notebook goes
    environment: Any = None  # the agent's EnvironmentConfig (project, region, endpoint, credentials)


@dataclass
class Status:
    """A runner's answer for one job."""

    state: RunState
    message: str = ""
    output_notebook: str | None = None
