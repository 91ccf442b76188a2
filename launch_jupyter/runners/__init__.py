"""Runners: one per queue ``resource``. A runner turns a Job into work at a target and reports on it.

Registered through the ``launch_jupyter.runners`` entry-point group and loaded lazily, so adding a
target is one new module plus one entry point.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from ..core.config import AgentConfig
    from ..core.cost import Estimate
    from ..core.model import Job, Problem, Queue, Run, Status

GROUP = "launch_jupyter.runners"


class Runner:
    """The contract between the agent and a target: every capability the agent uses, with defaults.

    A runner makes **one attempt** per call and says how a failure may be retried by raising
    ``DispatchError(transient=...)``; the agent owns the one retry policy (backoff, deadline, stop).
    Submitting is two steps so the agent can check its lease between them: ``find`` looks for a job
    this run already has at the target, and ``create`` starts one. The agent records the run as
    ``submitting`` (a fenced write) right before ``create``.
    """

    resource: str = ""  # the name users write as a queue's resource
    needs_image: bool = True  # whether the agent must build or find a container image first
    host_bound: bool = False  # its runs live on the host that started them (a local process, container)
    poll_interval: float | None = None  # seconds between status reads; None: the agent's poll_interval
    list_lag_seconds: float = 0.0  # how long a created job may stay invisible to ``find``
    call_timeout: float = 300.0  # the deadline the agent gives one call (find, create, poll, cancel)
    retries: bool = False  # it retries transient errors itself (older runners): the agent then does not
    extra: str | None = None  # the pip extra whose SDK its config check and requests are built with

    def __init__(self, agent_config: AgentConfig | None = None):
        self.agent_config = agent_config

    def default_config(self) -> str:
        """The YAML a new queue of this resource starts from."""
        return ""

    def validate(self, config: dict) -> list[Problem]:
        """Offline check of a (merged, template-filled) queue config. Warnings have severity 'warning'."""
        return []

    def preflight(self, queue: Queue, agent_config: AgentConfig) -> None:
        """Raise LaunchError if this machine cannot serve ``queue`` (missing package, credential...)."""

    def configured_image(self, config: dict) -> str | None:
        """An image the queue config names outright (not a macro); None when it names none."""
        return None

    def build_location(self, config: dict) -> str | None:
        """The cloud region this queue's jobs run in (a cloud builder builds there); None when none."""
        return None

    def find(self, job: Job) -> str | None:
        """The external id of the job already started for ``job.run.id`` at the target, or None."""
        return None

    def create(self, job: Job) -> str:
        """Start the job at the target (one attempt) and return its external id."""
        raise NotImplementedError(f"the {self.resource} runner cannot create jobs")

    def submit(self, job: Job) -> str:
        """``find`` or else ``create``, unfenced (for callers that hold no lease, e.g. tests)."""
        return self.find(job) or self.create(job)

    def poll(self, jobs: list[Job]) -> dict[str, Status]:
        """Status of many jobs at once, keyed by run id (one batched call per target location when it
        can). A job missing from the answer counts as "status unknown" for this cycle."""
        raise NotImplementedError

    def cancel(self, job: Job) -> None:
        """Ask the target to stop the job."""

    def watch(self, job: Job, changed: Callable[[], None]) -> None:
        """Call ``changed()`` (from any thread, quickly) when the job may have ended, so the agent reads
        its status at once instead of at the next poll. Optional: the default watches nothing, and
        polling goes on either way."""

    def logs(self, run: Run, follow: bool = False) -> Iterator[str]:
        """The job's log lines."""
        return iter(())

    def log_path(self, job: Job) -> str | None:
        """Where the job's log is kept on this machine, if it is kept in a local file."""
        return None

    def dry_run(self, job: Job) -> dict:
        """The exact request ``submit`` would send, as plain data."""
        return {}

    def remote_files(self, run: Run, limit: int) -> list[tuple[str, int, float, str]] | None:
        """The files ``run`` wrote at its target (its folder in a bucket), at most ``limit + 1``, as
        ``(name relative to the run's folder, size, modified, URI)``; None: this target keeps none."""
        return None

    def read_remote_file(self, run: Run, uri: str) -> Iterator[bytes]:
        """The bytes of one of ``remote_files`` (by its URI), a chunk at a time."""
        raise NotImplementedError(f"the {self.resource} runner keeps no files at its target")

    def estimate(self, config: dict) -> Estimate | None:
        """What a run of this (filled) config costs per hour and at worst, from the runner's price
        table; None when this target has no price table (a local run, or none shipped yet)."""
        return None


class _OlderRunner(Runner):
    """A runner object that does not subclass Runner (yet): the members it has are used, the ones it
    lacks take the defaults; without ``find``/``create``, ``create`` is its ``submit`` (which then
    looks for an existing job itself, after the agent's lease check rather than before).
    The attributes are read once, here, so the agent never probes."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.agent_config = getattr(inner, "agent_config", None)
        self.resource = inner.resource
        self.needs_image = bool(getattr(inner, "needs_image", True))
        self.host_bound = bool(getattr(inner, "host_bound", False))
        self.poll_interval = getattr(inner, "poll_interval", None)
        self.list_lag_seconds = float(getattr(inner, "list_lag_seconds", 0.0))
        self.call_timeout = float(getattr(inner, "call_timeout", Runner.call_timeout))
        self.retries = True  # its submit and poll retry by themselves; a second layer would multiply them
        for name in ("default_config", "validate", "preflight", "poll", "cancel", "logs", "dry_run"):
            setattr(self, name, getattr(inner, name))
        self.create = inner.submit  # type: ignore[method-assign]
        self.submit = inner.submit  # type: ignore[method-assign]
        for name in ("configured_image", "log_path", "find", "create", "watch"):
            if callable(getattr(inner, name, None)):
                setattr(self, name, getattr(inner, name))

    def configured_image(self, config: dict) -> str | None:
        # Only for an older runner that does not say itself: the CustomJob-shaped config of the
        # runners written before this contract (pool 0's container image, or a top-level image_uri).
        spec = (config or {}).get("spec") or {}
        for pool in spec.get("worker_pool_specs") or []:
            image = ((pool or {}).get("container_spec") or {}).get("image_uri")
            if image and "${" not in str(image):
                return str(image)
        image = (config or {}).get("image_uri")
        return str(image) if image and "${" not in str(image) else None


class CloudRunner(Runner):
    """A runner of a cloud target (Vertex AI, SageMaker, Kubernetes): its config is checked with its
    SDK, so without the pip extra the check says "not checked here" instead; it counts its API calls
    by operation (``calls``, the benchmarks' figures) and gives each RPC ``rpc_timeout``."""

    DEFAULT_CONFIG = ""  # the YAML a new queue starts from

    def __init__(self, agent_config: AgentConfig | None = None, *, rpc_timeout: float, log_interval: float):
        import threading

        super().__init__(agent_config)
        self.rpc_timeout = rpc_timeout
        self.log_interval = log_interval  # seconds between log reads when following
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def default_config(self) -> str:
        return self.DEFAULT_CONFIG

    def validate(self, config: dict) -> list[Problem]:
        from .._extras import missing, unchecked

        if self.extra and missing(self.extra):
            return unchecked(self.extra, self.resource)
        return self.check_config(config)

    def check_config(self, config: dict) -> list[Problem]:
        """The offline check with the SDK at hand (each problem with its key path)."""
        return []

    def _count(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1


def keep_fetched_notebook(workdir: str | Path, data: bytes, name: str = "output.ipynb") -> str:
    """Put an executed notebook fetched from a remote target into the run's folder
    (``outputs/NAME``, written whole then renamed); returns its local path."""
    from pathlib import Path

    outputs = Path(workdir) / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    path = outputs / name
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(path)
    return str(path)


def as_runner(obj: Any) -> Runner:
    """``obj`` as a Runner: itself when it is one, else wrapped (runners of the older shape)."""
    return obj if isinstance(obj, Runner) else _OlderRunner(obj)


def known_runners() -> list[str]:
    return sorted(_registered())


def _registered() -> dict[str, Any]:
    """The runner entry points by name. Reading installed metadata takes ≈15 ms and every submit asks
    (its config check and its price), so it is read once per ``sys.path`` (a plugin put on the path
    later is still found)."""
    import sys

    return _scan(tuple(sys.path))


@functools.lru_cache(maxsize=4)
def _scan(_path: tuple[str, ...]) -> dict[str, Any]:
    from importlib.metadata import entry_points

    found: dict[str, Any] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)  # the first one wins, as before
    return found


def get_runner(resource: str, agent_config: AgentConfig | None = None) -> Any:
    """The runner registered for ``resource``; an unknown name lists the known ones. The agent uses
    it through ``as_runner`` (runners of the older shape are not ``Runner`` subclasses yet)."""
    ep = _registered().get(resource)
    if ep is None:
        known = ", ".join(known_runners())
        raise ConfigError(f'unknown resource "{resource}", choose one of: {known}', path="resource")
    cls = ep.load()
    return cls(agent_config) if agent_config is not None else cls()
