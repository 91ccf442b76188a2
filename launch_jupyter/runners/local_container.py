"""The ``local-container`` resource: run the built image on this machine's Docker engine.

``docker run`` semantics with the docker SDK (``DOCKER_HOST`` honoured): the image's own entrypoint
(``python -m launch_jupyter.execute``) with the notebook arguments, the run's environment, and the
run's ``outputs`` folder mounted at ``/outputs`` so the executed notebook comes back. The run is the
same as ``local-process``, but inside the image Vertex AI would run.

The container carries the label ``launch-run-id=<run id>``: a restarted agent finds it instead of
starting a second one, and one ``containers.list`` call answers for every run. When a container
ends, its log is saved to ``run.log`` and its ending to ``ended.json`` in the run's folder, and the
container is removed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .._extras import require_extra
from ..core.errors import DispatchError
from ..core.identity import run_identity
from ..core.model import Problem, Status
from ..core.states import RunState
from . import Runner
from ._local import env_value, local_config_problems, mask
from ._local import last_error_line as _last_error_line
from ._local import read_json as _read_json
from ._local import write_json as _write_json

if TYPE_CHECKING:
    from ..core.config import AgentConfig
    from ..core.model import Job, Queue, Run

LABEL = "launch-run-id"
OUTPUTS = "/outputs"  # where the run's outputs folder is mounted in the container
OUTPUT_NAME = "output.ipynb"
STATUS_NAME = "exit.json"  # written by the entrypoint itself (--status-file)
LOG_FILE, ENDED_FILE, CANCELLED_MARK, STARTED_FILE = "run.log", "ended.json", "cancelled", "container.json"
STOP_GRACE_SECONDS = 3  # between SIGTERM and SIGKILL on cancel
KEYS = {
    "network": "the container's network mode: none (default), host, bridge or a network name",
    "env": "extra environment variables for the notebook",
    "timeout": "seconds, or null for no limit",
}
_EXITED = re.compile(r"Exited \((-?\d+)\)")

DEFAULT_CONFIG = """\
# Runs the notebook in the built image on this machine's Docker engine (DOCKER_HOST).
network: none        # the container's network: none, host, bridge or a network name
env: {}              # extra environment variables for the notebook
timeout: null        # seconds, or null for no limit
"""


class LocalContainerRunner(Runner):
    """Runs the run's image in a container on the local Docker engine, one container per run."""

    resource = "local-container"
    needs_image = True
    host_bound = True  # the container lives on this host's engine, its outputs in this host's folder
    call_timeout = 120.0

    def default_config(self) -> str:
        """The YAML a new local-container queue starts from."""
        return DEFAULT_CONFIG

    def validate(self, config: dict) -> list[Problem]:
        """``network`` (a name), ``env`` (a mapping of scalars) and ``timeout`` (seconds or null) only."""
        problems = local_config_problems(config, KEYS, self.resource)
        network = config.get("network") if isinstance(config, dict) else None
        if network is not None and (not isinstance(network, str) or not network.strip()):
            problems.append(Problem("network", "must be a network name such as none, host or bridge"))
        return problems

    def preflight(self, queue: Queue, agent_config: AgentConfig) -> None:
        """A Docker engine must answer (``DOCKER_HOST`` or the default socket)."""
        from ..builders.docker import ping_engine

        require_extra("docker", "the local-container resource")  # its config and request need no SDK
        ping_engine()

    def find(self, job: Job) -> str | None:
        """The id of the container already started for this run (running, or ended and saved), or None."""
        from ..builders.docker import engine_client

        client = engine_client()
        try:
            existing = [c for c in _containers_of(client, job.run.id) if c.attrs.get("State") != "created"]
        finally:
            client.close()
        if existing:
            return existing[0].id
        started = _read_json(Path(job.workdir) / STARTED_FILE)
        return started["id"] if started is not None else None

    def create(self, job: Job) -> str:
        """Start the run's container, or return the one already started for this run."""
        from ..builders.docker import engine_client

        request = self._request(job)
        client = engine_client()
        try:
            existing = _containers_of(client, job.run.id)
            if existing:
                if existing[0].attrs.get("State") == "created":  # made, but the agent died before start
                    existing[0].start()
                return existing[0].id
            started = _read_json(Path(job.workdir) / STARTED_FILE)
            if started is not None:  # it ran, ended and was cleaned up: never start a run twice
                return started["id"]
            outputs = Path(job.workdir) / "outputs"
            outputs.mkdir(parents=True, exist_ok=True)
            _ensure_image(client, request["image"])
            container = _create(client, request)
            _write_json(Path(job.workdir) / STARTED_FILE, {"id": container.id, "started_at": time.time()})
            container.start()
            return container.id
        finally:
            client.close()

    def poll(self, jobs: list[Job]) -> dict[str, Status]:
        """Status of each job, from one ``containers.list`` call for all of them."""
        if not jobs:
            return {}
        from ..builders.docker import engine_client

        client = engine_client()
        try:
            listed = client.containers.list(all=True, sparse=True, filters={"label": LABEL})
            containers = {(c.attrs.get("Labels") or {}).get(LABEL): c for c in listed}
            return {job.run.id: self._status(job, containers.get(job.run.id)) for job in jobs}
        finally:
            client.close()

    def watch(self, job: Job, changed: Callable[[], None]) -> None:
        """``changed()`` when the run's container stops: a thread blocked in the engine's wait call
        (``POST /containers/{id}/wait``, the docker SDK's ``wait`` with no timeout)."""
        container_id = job.run.external_id
        if container_id:
            threading.Thread(
                target=_wait_for_end,
                args=(container_id, changed),
                daemon=True,
                name=f"launch-container-wait {job.run.id}",
            ).start()

    def cancel(self, job: Job) -> None:
        """Stop the run's container: SIGTERM, then SIGKILL after a short grace period."""
        from ..builders.docker import engine_client

        workdir = Path(job.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        _write_json(workdir / CANCELLED_MARK, {"at": time.time()})
        client = engine_client()
        try:
            for container in _containers_of(client, job.run.id):
                container.stop(timeout=STOP_GRACE_SECONDS)
        finally:
            client.close()

    def logs(self, run: Run, follow: bool = False) -> Iterator[str]:
        """The container's log lines (following it while it runs), or the saved log once it ended."""
        from ..builders.docker import engine_client

        client = engine_client()
        containers = _containers_of(client, run.id)
        if not containers:
            client.close()
            path = Path(run.log_path) if run.log_path else self._runs_dir() / run.id / LOG_FILE
            return iter(path.read_text(errors="replace").splitlines() if path.exists() else [])
        return _stream_lines(client, containers[0], follow)

    def log_path(self, job: Job) -> str:
        """Where this run's log is kept on this machine (shown by ``launch-jupyter run show``)."""
        return str(Path(job.workdir) / LOG_FILE)

    def dry_run(self, job: Job) -> dict:
        """The container ``submit`` would start: image, command, environment (secrets masked), mounts."""
        request = self._request(job)
        request["environment"] = {k: mask(k, v) for k, v in request["environment"].items()}
        request["output_notebook"] = str(Path(job.workdir) / "outputs" / OUTPUT_NAME)
        return request

    # -- internals -------------------------------------------------------------------------

    def _runs_dir(self) -> Path:
        if self.agent_config is not None:
            return Path(self.agent_config.data_dir) / "runs"
        from ..core.config import data_home

        return data_home() / "runs"

    def _request(self, job: Job) -> dict:
        if not job.image_uri:
            raise DispatchError(f"run {job.run.id} has no image to run; the local-container resource needs one")
        if not job.notebook:
            raise DispatchError(f"run {job.run.id} names no notebook to run")
        config = job.config or {}
        outputs = Path(job.workdir) / "outputs"
        environment = run_identity(
            run_id=job.run.id,
            entity=job.queue.entity,
            queue=job.queue.path,
            author=job.run.author,
            output=f"{OUTPUTS}/{OUTPUT_NAME}",
        )
        environment["LAUNCH_PARAMETERS"] = json.dumps(job.run.parameters or {}, default=str)
        environment["PYTHONUNBUFFERED"] = "1"
        environment.update({str(k): env_value(v) for k, v in (config.get("env") or {}).items()})
        return {
            "image": job.image_uri,
            "command": [
                "--notebook", job.notebook,
                "--output", f"{OUTPUTS}/{OUTPUT_NAME}",
                "--status-file", f"{OUTPUTS}/{STATUS_NAME}",
            ],
            "environment": environment,
            "network_mode": config.get("network") or "none",
            "volumes": {str(outputs.absolute()): {"bind": OUTPUTS, "mode": "rw"}},
            "labels": {LABEL: job.run.id, "launch-queue": job.queue.path},
            "name": _container_name(job.run.id),
        }  # fmt: skip

    def _status(self, job: Job, container) -> Status:
        workdir = Path(job.workdir)
        if container is None:
            return _ended_status(workdir)
        state = container.attrs.get("State")
        if state in ("created", "running", "restarting", "paused"):
            return self._running(job, container)
        match = _EXITED.search(container.attrs.get("Status") or "")
        code = int(match.group(1)) if match else None
        _finish(container, workdir, code)
        return _ended_status(workdir)

    def _running(self, job: Job, container) -> Status:
        timeout = (job.config or {}).get("timeout")
        started = (_read_json(Path(job.workdir) / STARTED_FILE) or {}).get("started_at")
        if timeout and started and time.time() - started > float(timeout):
            _write_json(Path(job.workdir) / "timed-out", {"timeout": timeout})
            container.stop(timeout=STOP_GRACE_SECONDS)
            return Status(RunState.RUNNING, f"timed out after {timeout} s, stopping")
        return Status(RunState.RUNNING, f"container {container.short_id}")


def _create(client, request: dict):
    import docker  # already imported by engine_client; here for its error classes

    kwargs = {k: v for k, v in request.items() if k != "image"}
    try:
        return client.containers.create(request["image"], detach=True, **kwargs)
    except docker.errors.APIError as err:
        if err.status_code == 409:  # a concurrent submit of the same run created it first
            found = _containers_of(client, request["labels"][LABEL])
            if found:
                return found[0]
        raise DispatchError(f"the Docker engine refused the container: {err.explanation or err}") from None


def _wait_for_end(container_id: str, changed: Callable[[], None]) -> None:
    import docker  # see _create

    from ..builders.docker import engine_client

    try:
        client = engine_client()
    except Exception:  # noqa: BLE001 - no engine now: the status poll tells
        return
    try:
        client.api.wait(container_id, timeout=None)  # the default condition: until it is not running
    except docker.errors.NotFound:
        pass  # already ended and removed
    except Exception:  # noqa: BLE001 - the engine went away: the status poll tells
        return
    finally:
        client.close()
    changed()


def _ensure_image(client, image: str) -> None:
    """Pull ``image`` when the engine does not have it (with ADC credentials for Google registries)."""
    import docker  # see _create

    from ..builders.registry import google_auth_config, parse_image

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    registry, _, _ = parse_image(image)
    try:
        client.images.pull(image, auth_config=google_auth_config(registry))
    except docker.errors.APIError as err:
        raise DispatchError(f"cannot pull {image}: {err.explanation or err}") from None


def _containers_of(client, run_id: str) -> list:
    # sparse: the list call's own data, not one more inspect call per container
    return client.containers.list(all=True, sparse=True, filters={"label": f"{LABEL}={run_id}"})


def _finish(container, workdir: Path, code: int | None) -> None:
    """Save the ended container's log and ending in the run's folder, then remove the container."""
    import docker  # see _create

    if code is None:
        container.reload()
        code = container.attrs.get("State", {}).get("ExitCode")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / LOG_FILE).write_bytes(container.logs(stdout=True, stderr=True))
    _write_json(workdir / ENDED_FILE, {"exit_code": code, "at": time.time()})
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass


def _ended_status(workdir: Path) -> Status:
    ended = _read_json(workdir / ENDED_FILE)
    output = workdir / "outputs" / OUTPUT_NAME
    notebook = str(output) if output.exists() else None
    if ended is None:
        if (workdir / CANCELLED_MARK).exists():
            return Status(RunState.CANCELLED, "cancelled before the container started")
        return Status(RunState.FAILED, "the run's container is gone and left no exit status")
    code = ended.get("exit_code")
    if code == 0:
        return Status(RunState.SUCCEEDED, "", output_notebook=notebook)
    if (workdir / CANCELLED_MARK).exists():
        return Status(RunState.CANCELLED, "cancelled: the container was stopped", output_notebook=notebook)
    if (workdir / "timed-out").exists():
        limit = (_read_json(workdir / "timed-out") or {}).get("timeout")
        return Status(RunState.FAILED, f"timed out after {limit} s", output_notebook=notebook)
    reported = (_read_json(workdir / "outputs" / STATUS_NAME) or {}).get("error")
    message = reported or _last_error_line(workdir / LOG_FILE) or f"the container exited with code {code}"
    return Status(RunState.FAILED, message, output_notebook=notebook)


def _stream_lines(client, container, follow: bool) -> Iterator[str]:
    try:
        buffer = b""
        for chunk in container.logs(stream=True, follow=follow, stdout=True, stderr=True):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            yield from (line.decode(errors="replace") for line in lines)
        if buffer:
            yield buffer.decode(errors="replace")
    finally:
        client.close()


def _container_name(run_id: str) -> str:
    return "launch-" + re.sub(r"[^a-zA-Z0-9_.-]", "-", run_id)
