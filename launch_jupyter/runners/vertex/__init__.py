"""The ``vertex`` resource: runs a notebook as a Vertex AI CustomJob through the real
``google-cloud-aiplatform`` SDK.

How the SDK is used without its process-global state (``aiplatform.init``):
- ``aiplatform.CustomJob(**spec, project=, location=, credentials=)`` gets the queue's own project,
  location and credentials explicitly, so nothing is read from or written to ``aiplatform.init``.
- The API endpoint and transport (``environment.api_endpoint`` / ``api_transport``) are the one
  thing the SDK only takes globally, so the job is handed this queue's cached
  ``aiplatform_v1.JobServiceClient`` as its ``api_client`` before ``.submit(**run)``: the SDK's
  own ``submit`` code builds and sends the ``CreateCustomJobRequest``, over our per-queue client.
  Two queues in different projects, regions or endpoints can therefore submit at the same time.
- A dry run is the same ``submit`` path with a client that records the request instead of sending.

Status is read in batches: one ``ListCustomJobs`` per (endpoint, project, location) and cycle with
the filter ``labels.launch-run-id:* AND create_time>="<oldest active run - 10 min>"`` (valid Vertex
filter syntax; the time bound keeps old finished jobs out), following ``next_page_token``; a job
missing from the list is read once with ``GetCustomJob``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...core.errors import LaunchError, RunError
from ...core.model import Job, Problem, Queue, Run, Status
from ...core.states import RunState
from ._api import (
    Backoff,
    Clients,
    Target,
    credentials,
    dispatch_error,
    error_code,
    is_api_error,
    resolve_target,
)
from ._request import LABEL_RUN_ID, build_arguments, fill_macros, gcs_uri, label_value, macro_values
from ._validate import validate_config

if TYPE_CHECKING:
    from ...core.config import AgentConfig, EnvironmentConfig

__all__ = ["VertexRunner", "DEFAULT_CONFIG", "request_yaml"]
log = logging.getLogger(__name__)

DEFAULT_CONFIG = """\
spec:
  worker_pool_specs:
    - machine_spec:
        machine_type: n1-standard-4
        accelerator_type: ACCELERATOR_TYPE_UNSPECIFIED
        accelerator_count: 0
      replica_count: 1
      container_spec:
        image_uri: ${image_uri}
  staging_bucket: <REQUIRED>
run:
  restart_job_on_worker_restart: false
"""
POLL_LOOKBACK_S = 600  # clock skew between this machine and Vertex AI, generously


class VertexRunner:
    """Runs jobs as Vertex AI CustomJobs; see the module docstring for how the SDK is driven."""

    resource = "vertex"
    needs_image = True

    def __init__(
        self,
        agent_config: AgentConfig | None = None,
        *,
        retry_base: float = 1.0,
        retry_cap: float = 30.0,
        retry_attempts: int = 6,
        log_interval: float = 5.0,
    ):
        self.agent_config = agent_config
        self.backoff = Backoff(retry_base, retry_cap, retry_attempts)
        self.log_interval = log_interval
        self._clients = Clients()

    # ------------------------------------------------------------------ config
    def default_config(self) -> str:
        """The seed's default vertex queue config (the bucket left to fill in)."""
        return DEFAULT_CONFIG

    def validate(self, config: dict) -> list[Problem]:
        """Offline check against the installed SDK: key paths, snake_case, proto fields, types."""
        return validate_config(config)

    def preflight(self, queue: Queue, agent_config: AgentConfig) -> None:
        """Raise LaunchError unless the SDK imports and credentials, project and location resolve."""
        try:
            from google.cloud import aiplatform  # noqa: F401  # lazy: heavy, and this is the check
        except ImportError as err:
            raise LaunchError(
                f"the vertex resource needs google-cloud-aiplatform ({err}); "
                "pip install google-cloud-aiplatform"
            ) from None
        env = agent_config.environment if agent_config else None
        spec = (queue.config or {}).get("spec") or {}
        target = resolve_target(spec, env)
        credentials(target.credentials)
        if agent_config is not None:
            _check_destination(queue, agent_config)

    # ------------------------------------------------------------------ submit
    def submit(self, job: Job) -> str:
        """Create the Vertex job (or find the one this run already has) and return its name."""
        spec, run = build_arguments(job)
        target = self._target(job)
        client = self._clients.get(target)
        existing = self._find(client, target, job.run.id)
        if existing is not None:
            log.info("run %s: reattached to %s", job.run.id, existing)
            return existing
        found: list[str] = []

        def look_again() -> None:  # a failed create may still have made the job
            name = self._find(client, target, job.run.id)
            if name:
                found.append(name)

        def create() -> str:
            if found:
                return found[0]
            return _sdk_submit(spec, run, target, client).name

        try:
            return self.backoff.call(create, before_retry=look_again)
        except Exception as err:
            if is_api_error(err):
                raise dispatch_error(err, "create the CustomJob", target) from None
            raise

    def dry_run(self, job: Job) -> dict:
        """The exact CreateCustomJobRequest ``submit`` would send, as plain data (enum names)."""
        from google.cloud import aiplatform_v1  # lazy: ≈0.8 s

        spec, run = build_arguments(job)
        try:
            target = self._target(job)
        except LaunchError:
            target = Target("PROJECT", _location_of(job, self._env(job)), credentials="anonymous")
        recorder = _RecordingClient()
        _sdk_submit(spec, run, Target(target.project, target.location, credentials="anonymous"), recorder)
        request = aiplatform_v1.CreateCustomJobRequest(parent=recorder.parent, custom_job=recorder.job)
        return type(request).to_dict(request, use_integers_for_enums=False,
                                     always_print_fields_with_no_presence=False)

    # ------------------------------------------------------------------ status
    def poll(self, jobs: list[Job]) -> dict[str, Status]:
        """Status of many jobs: one ListCustomJobs (all pages) per endpoint, project and location."""
        groups: dict[Target, list[Job]] = {}
        for job in jobs:
            if job.run.external_id:
                groups.setdefault(self._target(job, job.run.external_id), []).append(job)
        statuses: dict[str, Status] = {}
        for target, group in groups.items():
            statuses.update(self._poll_group(target, group))
        return statuses

    def _poll_group(self, target: Target, jobs: list[Job]) -> dict[str, Status]:
        client = self._clients.get(target)
        try:
            listed = self.backoff.call(lambda: self._list_active(client, target, jobs))
        except Exception as err:
            if not is_api_error(err):
                raise
            log.warning("could not list Vertex AI jobs in %s: %s", target.parent, err)
            return {}
        out = {}
        for job in jobs:
            resource = listed.get(job.run.external_id)
            status = to_status(resource) if resource is not None else self._get_one(client, target, job)
            if status is not None:
                out[job.run.id] = status
        return out

    def _list_active(self, client: Any, target: Target, jobs: list[Job]) -> dict[str, Any]:
        from google.cloud import aiplatform_v1  # lazy: ≈0.8 s

        query = f"labels.{LABEL_RUN_ID}:*"
        created = [j.run.created_at for j in jobs]
        if created and all(created):
            since = _dt.datetime.fromtimestamp(min(created) - POLL_LOOKBACK_S, _dt.timezone.utc)
            query += f' AND create_time>="{since.strftime("%Y-%m-%dT%H:%M:%SZ")}"'
        request = aiplatform_v1.ListCustomJobsRequest(parent=target.parent, filter=query, page_size=1000)
        return {job.name: job for job in client.list_custom_jobs(request=request)}

    def _get_one(self, client: Any, target: Target, job: Job) -> Status | None:
        name = job.run.external_id
        try:
            return to_status(self.backoff.call(lambda: client.get_custom_job(name=name)))
        except Exception as err:
            if not is_api_error(err):
                raise
            if error_code(err) == "NOT_FOUND":
                return Status(RunState.FAILED, f"the Vertex AI job {name} no longer exists (deleted?)")
            log.warning("could not read Vertex AI job %s: %s", name, err)
            return None

    # ------------------------------------------------------------------ cancel
    def cancel(self, job: Job) -> None:
        """Ask Vertex AI to cancel the job; the run then goes cancelling → cancelled via poll."""
        target = self._target(job, job.run.external_id)
        client = self._clients.get(target)
        name = job.run.external_id or self._find(client, target, job.run.id)
        if not name:
            return
        try:
            self.backoff.call(lambda: client.cancel_custom_job(name=name))
        except Exception as err:
            if not is_api_error(err):
                raise
            if error_code(err) in ("FAILED_PRECONDITION", "INVALID_ARGUMENT"):
                log.info("Vertex AI job %s already finished: %s", name, err)
                return
            raise dispatch_error(err, f"cancel {name}", target) from None

    # ------------------------------------------------------------------ logs
    def logs(self, run: Run, follow: bool = False) -> Iterator[str]:
        """The job's Cloud Logging lines (resource ml_job); with ``follow`` until the job ends."""
        if not run.external_id:
            raise RunError(f"run {run.id} has no Vertex AI job yet, so it has no logs")
        env = self._env(None)
        target = resolve_target((run.config or {}).get("spec") or {}, env, run.external_id)
        yield from _follow_logs(self, target, run.external_id, follow)

    # ------------------------------------------------------------------ helpers
    def _env(self, job: Job | None) -> EnvironmentConfig | None:
        if job is not None and job.environment is not None:
            return job.environment
        return self.agent_config.environment if self.agent_config else None

    def _target(self, job: Job, name: str | None = None) -> Target:
        spec = fill_macros((job.config or {}).get("spec") or {}, macro_values(job))
        return resolve_target(spec, self._env(job), name)

    def _find(self, client: Any, target: Target, run_id: str) -> str | None:
        """The name of the Vertex job labelled with this run id, if one exists."""
        from google.cloud import aiplatform_v1  # lazy: ≈0.8 s

        query = f'labels.{LABEL_RUN_ID}="{label_value(run_id)}"'
        request = aiplatform_v1.ListCustomJobsRequest(parent=target.parent, filter=query)

        def lookup() -> str | None:
            jobs = sorted(client.list_custom_jobs(request=request), key=lambda j: j.create_time)
            return jobs[-1].name if jobs else None

        try:
            return self.backoff.call(lookup)
        except Exception as err:
            if is_api_error(err):
                raise dispatch_error(err, "look for the run's existing job", target) from None
            raise


def _location_of(job: Job, env: Any) -> str:
    spec = (job.config or {}).get("spec") or {}
    return spec.get("location") or getattr(env, "region", None) or "us-central1"


# --------------------------------------------------------------------------- the SDK path

_quiet = threading.local()


class _QuietSdk(logging.Filter):
    """Drop the SDK's INFO chatter ("View Custom Job: …", printed to stdout) for our own calls
    only: in a kernel it would land in whatever cell is running."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "active", False) or record.levelno >= logging.WARNING


_filter_lock = threading.Lock()
_filter_installed = False


def _install_quiet_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            for name in ("google.cloud.aiplatform.jobs", "google.cloud.aiplatform.base"):
                logging.getLogger(name).addFilter(_QuietSdk())
            _filter_installed = True


def _sdk_submit(spec: dict, run: dict, target: Target, client: Any) -> Any:
    """``aiplatform.CustomJob(**spec).submit(**run)`` with this queue's project, location,
    credentials and API client; returns the created CustomJob proto."""
    from google.cloud import aiplatform  # lazy: heavy SDK import (≈2 s), only when dispatching

    run = dict(run)
    if isinstance(run.get("scheduling_strategy"), str):
        run["scheduling_strategy"] = aiplatform.gapic.Scheduling.Strategy[run["scheduling_strategy"]]
    _install_quiet_filter()
    _quiet.active = True
    try:
        job = aiplatform.CustomJob(
            project=target.project,
            location=target.location,
            credentials=credentials(target.credentials),
            **spec,
        )
        job.api_client = client  # this queue's endpoint and transport, not aiplatform.init's
        job.submit(**run)
    finally:
        _quiet.active = False
    return job.gca_resource


class _RecordingClient:
    """Stands in for the JobService client in a dry run: keeps the request, sends nothing."""

    parent: str = ""
    job: Any = None

    def create_custom_job(self, *, parent: str, custom_job: Any, timeout: float | None = None) -> Any:
        from google.cloud import aiplatform_v1  # lazy: ≈0.8 s

        self.parent, self.job = parent, aiplatform_v1.CustomJob(custom_job)
        created = aiplatform_v1.CustomJob(custom_job)
        created.name = f"{parent}/customJobs/0"  # the SDK logs the name; nothing was created
        return created


# --------------------------------------------------------------------------- states


def _state_map() -> dict[Any, RunState]:
    from google.cloud.aiplatform_v1 import JobState  # lazy: ≈0.8 s

    return {
        JobState.JOB_STATE_UNSPECIFIED: RunState.SUBMITTED,
        JobState.JOB_STATE_QUEUED: RunState.PENDING,
        JobState.JOB_STATE_PENDING: RunState.PENDING,
        JobState.JOB_STATE_RUNNING: RunState.RUNNING,
        JobState.JOB_STATE_SUCCEEDED: RunState.SUCCEEDED,
        JobState.JOB_STATE_FAILED: RunState.FAILED,
        JobState.JOB_STATE_CANCELLING: RunState.CANCELLING,
        JobState.JOB_STATE_CANCELLED: RunState.CANCELLED,
        JobState.JOB_STATE_PAUSED: RunState.PENDING,
        JobState.JOB_STATE_EXPIRED: RunState.FAILED,
        JobState.JOB_STATE_UPDATING: RunState.RUNNING,
        JobState.JOB_STATE_PARTIALLY_SUCCEEDED: RunState.FAILED,
    }


def _state_message(resource: Any) -> str:
    from google.cloud.aiplatform_v1 import JobState  # lazy: ≈0.8 s

    error = resource.error.message if resource.error else ""
    notes = {
        JobState.JOB_STATE_QUEUED: "queued at Vertex AI",
        JobState.JOB_STATE_PAUSED: "paused at Vertex AI",
        JobState.JOB_STATE_UPDATING: "Vertex AI is updating the job",
        JobState.JOB_STATE_EXPIRED: "the job expired before it could run (see run.max_wait_duration)",
        JobState.JOB_STATE_PARTIALLY_SUCCEEDED: "only part of the job succeeded",
        JobState.JOB_STATE_FAILED: "the Vertex AI job failed",
        JobState.JOB_STATE_UNSPECIFIED: "Vertex AI has not reported a state yet",
    }
    note = notes.get(resource.state, "")
    if error:
        return f"{note}: {error}" if note and resource.state != JobState.JOB_STATE_FAILED else error
    return note


def to_status(resource: Any) -> Status:
    """A Vertex AI CustomJob as a run Status (states compared as enum members)."""
    state = _state_map().get(resource.state, RunState.SUBMITTED)
    output = None
    if state is RunState.SUCCEEDED:
        output = _output_of(resource)
    return Status(state, _state_message(resource), output)


def _output_of(resource: Any) -> str | None:
    for pool in resource.job_spec.worker_pool_specs:
        for env in pool.container_spec.env:
            if env.name == "LAUNCH_OUTPUT":
                return gcs_uri(env.value)
    return None


# --------------------------------------------------------------------------- logs


def _follow_logs(runner: VertexRunner, target: Target, name: str, follow: bool) -> Iterator[str]:
    logging_client = _logging_client(target)
    job_id = name.rsplit("/", 1)[-1]
    base = f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"'
    seen: set[str] = set()
    last = ""
    while True:
        query = base + (f' AND timestamp>="{last}"' if last else "")
        new = 0
        for entry in runner.backoff.call(lambda q=query: list(_entries(logging_client, target, q))):
            key = entry.insert_id or f"{entry.timestamp}{entry.payload}"
            if key in seen:
                continue
            seen.add(key)
            new += 1
            if entry.timestamp:
                last = entry.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            yield _line(entry.payload)
        if not follow:
            return
        if new == 0 and _finished(runner, target, name):
            return
        time.sleep(runner.log_interval)


def _entries(client: Any, target: Target, query: str) -> Iterator[Any]:
    from google.cloud import logging as cloud_logging  # lazy: google-cloud-logging

    return client.list_entries(
        resource_names=[f"projects/{target.project}"],
        filter_=query,
        order_by=cloud_logging.ASCENDING,
        page_size=1000,
    )


def _logging_client(target: Target) -> Any:
    """A Cloud Logging client on the same endpoint, transport and credentials as the queue's
    Vertex AI API (an emulator serves both), else Google's own Logging endpoint."""
    from google.cloud import logging as cloud_logging  # lazy: google-cloud-logging

    options = {"api_endpoint": target.endpoint} if target.endpoint else None
    return cloud_logging.Client(
        project=target.project,
        credentials=credentials(target.credentials),
        client_options=options,
        _use_grpc=target.transport == "grpc",
    )


def _finished(runner: VertexRunner, target: Target, name: str) -> bool:
    client = runner._clients.get(target)
    try:
        resource = runner.backoff.call(lambda: client.get_custom_job(name=name))
    except Exception as err:
        if is_api_error(err) and error_code(err) == "NOT_FOUND":
            return True
        raise
    return to_status(resource).state.is_terminal


def _line(payload: Any) -> str:
    if isinstance(payload, dict):
        import json

        return payload.get("message") or json.dumps(payload, sort_keys=True)
    return str(payload or "").rstrip("\n")


def request_yaml(data: dict) -> str:
    """A dry-run request as YAML, keys in the request's own order."""
    import yaml  # lazy: only the CLI's --dry-run needs it

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _check_destination(queue: Queue, agent_config: AgentConfig) -> None:
    """An image the agent builds must land where Vertex AI can pull it."""
    from ...core.config import builder_for
    from ...core.images import vertex_pull_problem

    builder = builder_for(agent_config, queue.config or {})
    if builder.type == "noop":
        return
    destination = builder.destination
    if not destination:
        raise LaunchError(
            f'queue "{queue.path}": the {builder.type} builder needs builder.destination '
            "(an Artifact Registry repository such as us-docker.pkg.dev/PROJECT/REPO/IMAGE) to push "
            "images that Vertex AI can pull"
        )
    problem = vertex_pull_problem(destination)
    if problem is not None and problem[0] == "error":
        raise LaunchError(f'queue "{queue.path}": builder.destination: {problem[1]}')
