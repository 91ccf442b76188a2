"""The ``vertex`` resource: runs a notebook as a Vertex AI CustomJob through the real
``google-cloud-aiplatform`` SDK.

How the SDK is used without its process-global state (``aiplatform.init``):
- ``aiplatform.CustomJob(**spec, project=, location=, credentials=)`` gets the queue's own project,
  location and credentials explicitly, so nothing is read from or written to ``aiplatform.init``.
- The API endpoint and transport (``environment.api_endpoint`` / ``api_transport``) are the one
  thing the SDK only takes globally, so the job is handed this queue's cached
  ``aiplatform_v1.JobServiceClient`` as its ``api_client`` before ``.submit(**run)``: the SDK's
  own ``submit`` code builds and sends the ``CreateCustomJobRequest``, over our per-queue client.
  That client also sets the fields the SDK would otherwise fill from ``aiplatform.init``
  (``service_account``, ``encryption_spec``) to this queue's values, so a kernel's own
  ``aiplatform.init(...)`` never leaks into a job.
- A dry run is the same ``submit`` path with a client that records the request instead of sending.
- Every call has a deadline (``rpc_timeout``); the SDK's default is none.
- One attempt per call: an API error becomes a DispatchError that says whether it is transient
  (``_api.is_transient``: a quota refusal is not); the agent owns the one retry policy
  (``core.retry``). The one thing a create does beyond its single request is to settle an
  ambiguous outcome: a create that was sent and then failed transiently (or whose answer could
  not be read) may have made the job, so it is looked up by label a few times, ``lookup_interval``
  apart (the list lags), before the create reports a failure the agent may retry.

Status is read in batches: one ``ListCustomJobs`` per (endpoint, project, location) and cycle for
the jobs that are still active (``labels.launch-run-id:*``, non-terminal states, created after the
oldest tracked run was queued), following ``next_page_token``; a tracked job missing from that
list (it has just finished, or the list lags) is read once with ``GetCustomJob``. The cost follows
the number of active runs, not the project's history.

A run that ends cancelled or failed keeps the notebook as far as it ran: the entrypoint writes it
on SIGTERM (a cancel stops the container) or after the failing cell, and the run's
``output_notebook`` points at it when the object exists (``_outputs``). While jobs run, one Cloud
Logging read per cycle (throttled, ``progress_interval``) turns their ``[launch] cell i/n started``
lines into the runs' progress (``_progress``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..._extras import require_extra
from ...core.errors import DispatchError, LaunchError, RunError
from ...core.model import Job, Problem, Queue, Run, Status
from ...core.states import RunState
from .. import CloudRunner
from ._api import (
    RPC_TIMEOUT,
    Clients,
    Target,
    credentials,
    dispatch_error,
    error_code,
    is_api_error,
    is_transient,
    read_log_entries,
    resolve_target,
    supported_location,
)
from ._outputs import existing_output
from ._progress import CellProgress
from ._request import LABEL_RUN_ID, build_arguments, fill_macros, gcs_uri, label_value, macro_values
from ._validate import validate_config

if TYPE_CHECKING:
    from ...core.config import AgentConfig, EnvironmentConfig
    from ...core.cost import Estimate

__all__ = ["VertexRunner", "DEFAULT_CONFIG"]
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
# JobState values after which a job never changes (JobState docstring in aiplatform_v1).
TERMINAL_JOB_STATES = (
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
)


class VertexRunner(CloudRunner):
    """Runs jobs as Vertex AI CustomJobs; see the module docstring for how the SDK is driven."""

    resource = "vertex"
    extra = "vertex"
    DEFAULT_CONFIG = DEFAULT_CONFIG  # the seed's default vertex queue config (the bucket left to fill in)
    needs_image = True
    list_lag_seconds = 10.0  # a job just created may be missing from ListCustomJobs this long

    def __init__(
        self,
        agent_config: AgentConfig | None = None,
        *,
        log_interval: float = 5.0,
        rpc_timeout: float = RPC_TIMEOUT,
        lookup_attempts: int = 3,
        lookup_interval: float = 3.0,
        log_grace: float = 30.0,
        log_deadline: float = 120.0,
        progress_interval: float | None = None,
    ):
        super().__init__(agent_config, rpc_timeout=rpc_timeout, log_interval=log_interval)
        self.lookup_attempts = lookup_attempts  # a lost create: the list may lag behind the create
        self.lookup_interval = lookup_interval
        self.log_grace = log_grace  # log ingestion lags the job's end
        self.log_deadline = log_deadline  # how long a log read is retried (core.retry) before it fails
        # The agent's deadline for one of our calls: one RPC, or a create plus its look-ups (each an
        # RPC with rpc_timeout, lookup_interval apart); a poll is one List plus a Get per job that
        # left the list, and stays well within it for the runs one agent holds.
        self.call_timeout = rpc_timeout * (2 + lookup_attempts) + lookup_interval * lookup_attempts + 30.0
        self._clients = Clients()
        if progress_interval is None:  # environment.progress_interval in launch-config.yaml
            env = agent_config.environment if agent_config else None
            progress_interval = env.progress_interval if env is not None else 5.0
        # At most one Logging read per progress_interval, each given up after rpc_timeout.
        self._progress = CellProgress(progress_interval, rpc_timeout)
        self._cancel_sent: set[str] = set()  # job names this runner asked Vertex AI to cancel
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ config
    def check_config(self, config: dict) -> list[Problem]:
        """Offline check against the installed SDK: key paths, snake_case, proto fields, types."""
        return validate_config(config)

    def build_location(self, config: dict) -> str | None:
        """The queue's ``spec.location``, else the agent's ``environment.region``: Kaniko's Cloud Build
        runs next to the jobs and the registry they pull from."""
        location = ((config or {}).get("spec") or {}).get("location")
        env = self._env(None)
        return str(location) if location else (env.region if env is not None and env.region else None)

    def configured_image(self, config: dict) -> str | None:
        """The image a queue config names outright (pool 0's image, not the ``${image_uri}`` macro)."""
        pools = ((config or {}).get("spec") or {}).get("worker_pool_specs") or []
        pool = pools[0] if pools and isinstance(pools[0], dict) else {}
        for spec_key, uri_key in (("container_spec", "image_uri"), ("python_package_spec", "executor_image_uri")):
            image = (pool.get(spec_key) or {}).get(uri_key)
            if image and "${" not in str(image):
                return str(image)
        return None

    def preflight(self, queue: Queue, agent_config: AgentConfig) -> None:
        """Raise LaunchError unless the SDK imports and credentials, project and location resolve."""
        require_extra(self.extra)
        env = agent_config.environment if agent_config else None
        if env is not None and env.region:
            problem = supported_location(env.region)
            if problem:
                raise LaunchError(f"environment.region: {problem}")
        spec = (queue.config or {}).get("spec") or {}
        target = resolve_target(spec, env)
        credentials(target.credentials)
        if agent_config is not None:
            _check_destination(queue, agent_config)

    # ------------------------------------------------------------------ submit
    def submit(self, job: Job) -> str:
        """Create the Vertex job (or find the one this run already has) and return its name."""
        return self.find(job) or self.create(job)

    def find(self, job: Job) -> str | None:
        """The name of the Vertex job this run already has, or None. The agent calls it, checks its
        lease, then calls ``create``: a stale "no job yet" never leads to a second job."""
        target = self._target(job)
        existing = self._find(self._clients.get(target), target, job.run.id)
        if existing is not None:
            log.info("run %s: reattached to %s", job.run.id, existing)
        return existing

    def create(self, job: Job) -> str:
        """Create the Vertex job (``find`` has just said there is none) and return its name."""
        target = self._target(job)
        spec, run = build_arguments(job, target.project)
        client = self._clients.get(target)
        scoped = _ScopedClient(client, spec, run, self.rpc_timeout)
        try:
            return _sdk_submit(spec, run, target, scoped).name
        except Exception as err:
            if scoped.sent and (is_transient(err) or not is_api_error(err)):
                # Sent, then the answer was lost or could not be read: the job may exist.
                name = self._find_settled(client, target, job.run.id)
                if name:
                    log.info("run %s: the create's answer was lost; found %s", job.run.id, name)
                    return name
            if is_api_error(err):
                raise dispatch_error(err, "create the CustomJob", target, "create") from None
            raise

    def dry_run(self, job: Job) -> dict:
        """The exact CreateCustomJobRequest ``submit`` would send, as plain data (enum names)."""
        from google.cloud import aiplatform_v1  # lazy: ≈0.8 s

        try:
            target = self._target(job)
        except LaunchError:
            target = Target("PROJECT", _location_of(job, self._env(job)), credentials="anonymous")
        spec, run = build_arguments(job, target.project)
        recorder = _RecordingClient()
        scoped = _ScopedClient(recorder, spec, run, self.rpc_timeout)
        _sdk_submit(spec, run, Target(target.project, target.location, credentials="anonymous"), scoped)
        request = aiplatform_v1.CreateCustomJobRequest(parent=recorder.parent, custom_job=recorder.job)
        return type(request).to_dict(request, use_integers_for_enums=False, always_print_fields_with_no_presence=False)

    # ------------------------------------------------------------------ files
    def _run_folder(self, run: Run) -> tuple[str, Target]:
        """The run's folder in Cloud Storage (``gs://…/<run id>``, as its request set it) and where
        to ask for it."""
        from ...core.cost import runner_config
        from ._request import run_folder, run_macro_values

        spec = fill_macros(runner_config(run.config).get("spec") or {}, run_macro_values(run, run.queue_name))
        return run_folder(spec, run.id), resolve_target(spec, self._env(None), run.external_id)

    def remote_files(self, run: Run, limit: int) -> list[tuple[str, int, float, str]] | None:
        """What the run wrote under its folder (its ``base_output_dir``: where ``AIP_MODEL_DIR``,
        ``AIP_CHECKPOINT_DIR`` and the run's ``/gcs/…`` files land): one objects.list, by name."""
        if run.external_id is None:
            return None  # never dispatched: nothing can be in its folder
        from google.cloud import storage  # lazy: only when a run page asks

        from ._api import credentials

        folder, target = self._run_folder(run)
        if not folder.startswith("gs://"):
            return None
        bucket, _, prefix = folder.removeprefix("gs://").partition("/")
        prefix = prefix.rstrip("/") + "/"
        client = storage.Client(project=target.project, credentials=credentials(target.credentials))
        found = []
        listing = client.list_blobs(bucket, prefix=prefix, max_results=limit + 1, timeout=self.rpc_timeout, retry=None)
        for blob in listing:  # no library retry: an unreachable bucket is said at once, the page goes on
            name = blob.name[len(prefix) :]
            if not name or name.endswith("/"):
                continue  # a "folder" placeholder object, not a file
            modified = blob.updated.timestamp() if blob.updated else 0.0
            found.append((name, int(blob.size or 0), modified, f"gs://{bucket}/{blob.name}"))
        return found

    def read_remote_file(self, run: Run, uri: str) -> Iterator[bytes]:
        from google.cloud import storage

        from ._api import credentials

        folder, target = self._run_folder(run)
        if not uri.startswith(folder.rstrip("/") + "/"):
            raise RunError(f"{uri} is not in run {run.id}'s folder {folder}")
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        client = storage.Client(project=target.project, credentials=credentials(target.credentials))
        # No library retry: a download that fails says so at once (the page shows the error).
        with client.bucket(bucket).blob(name).open("rb", timeout=self.rpc_timeout, retry=None) as stream:
            while chunk := stream.read(1 << 20):
                yield chunk

    def estimate(self, config: dict) -> Estimate:
        """The price of the config's machines in its region, against the price table (no SDK)."""
        from ...core.config import data_home
        from ._pricing import estimate, load_table

        spec = config.get("spec") or {}
        env = self.agent_config.environment if self.agent_config else None
        location = spec.get("location") or getattr(env, "region", None) or "us-central1"
        home = self.agent_config.data_dir if self.agent_config else data_home()
        return estimate(config, str(location), load_table(home))

    # ------------------------------------------------------------------ status
    def poll(self, jobs: list[Job]) -> dict[str, Status]:
        """Status of many jobs: one ListCustomJobs (all pages) of active jobs per endpoint, project
        and location, plus one GetCustomJob per tracked job that is no longer in that list."""
        groups: dict[Target, list[Job]] = {}
        for job in jobs:
            if job.run.external_id:
                groups.setdefault(self._target(job, job.run.external_id), []).append(job)
        statuses: dict[str, Status] = {}
        for target, group in groups.items():
            answered = self._poll_group(target, group)
            self._progress.update(target, group, answered)
            statuses.update(answered)
        return statuses

    def _poll_group(self, target: Target, jobs: list[Job]) -> dict[str, Status]:
        client = self._clients.get(target)
        list_error: DispatchError | None = None
        try:
            listed = self._api_call(
                lambda: self._list_active(client, target, jobs), "list the runs' jobs", target, "list"
            )
        except DispatchError as err:
            if err.transient:
                raise  # the agent's policy waits and asks again; a GetCustomJob per job would burn quota
            # A list the service refuses (a filter it rejects: 400, or no customJobs.list permission)
            # must not hide jobs it answers for one by one: read each with GetCustomJob instead.
            log.warning("%s; reading each job with GetCustomJob instead", err)
            listed, list_error = {}, err
        out = {}
        for job in jobs:
            resource = listed.get(_job_id(job.run.external_id))
            if resource is None:
                try:
                    resource = self._get_one(client, target, job)
                except DispatchError as err:
                    if list_error is None:
                        raise
                    raise DispatchError(f"{list_error}; and GetCustomJob: {err}", err.transient) from None
            if isinstance(resource, Status):
                out[job.run.id] = resource
            elif resource is not None:
                out[job.run.id] = self._status(resource, job)
                if out[job.run.id].state in (RunState.CANCELLED, RunState.FAILED):
                    # The notebook as far as it ran (SIGTERM on cancel, or the cell that raised).
                    out[job.run.id].output_notebook = existing_output(_output_of(resource), target, self.rpc_timeout)
            if job.run.id in out and out[job.run.id].state.is_terminal:
                self._progress.forget(job.run.id)
        return out

    def _list_active(self, client: Any, target: Target, jobs: list[Job]) -> dict[str, Any]:
        from google.cloud import aiplatform_v1  # lazy: ≈0.8 s

        terms = [f"labels.{LABEL_RUN_ID}:*"]
        # Negative terms, so a job in a state this SDK does not know yet stays in the list.
        terms += [f'state!="{state}"' for state in TERMINAL_JOB_STATES]
        created = [j.run.created_at for j in jobs]
        if created and all(created):
            since = _dt.datetime.fromtimestamp(min(created) - POLL_LOOKBACK_S, _dt.timezone.utc)
            terms.append(f'create_time>="{since.strftime("%Y-%m-%dT%H:%M:%SZ")}"')
        request = aiplatform_v1.ListCustomJobsRequest(parent=target.parent, filter=" AND ".join(terms), page_size=1000)
        pages = client.list_custom_jobs(request=request, timeout=self.rpc_timeout)
        # Keyed by the job id: returned names carry the project number, ours may hold the id.
        return {_job_id(job.name): job for job in pages}

    def _get_one(self, client: Any, target: Target, job: Job) -> Any:
        name = job.run.external_id
        try:
            return client.get_custom_job(name=name, timeout=self.rpc_timeout)
        except Exception as err:
            if not is_api_error(err):
                raise
            if error_code(err) == "NOT_FOUND":
                return Status(RunState.FAILED, f"the Vertex AI job {name} no longer exists (deleted?)")
            raise dispatch_error(err, f"read {name}", target, "get") from None

    def _status(self, resource: Any, job: Job) -> Status:
        run = job.run
        cancelling = run.cancel_requested or run.state is RunState.CANCELLING or run.external_id in self._cancel_sent
        status = to_status(resource, current=run.state, cancelling=cancelling)
        if status.state is RunState.CANCELLED and not (run.cancel_requested or run.external_id in self._cancel_sent):
            status = _timed_out(resource) or status
        if status.message.startswith("Vertex AI reported") and run.id not in self._warned:
            self._warned.add(run.id)
            log.warning("run %s: %s", run.id, status.message)
        return status

    # ------------------------------------------------------------------ cancel
    def cancel(self, job: Job) -> None:
        """Ask Vertex AI to cancel the job (best effort: it may still finish); the run then goes
        cancelling → cancelled via poll."""
        target = self._target(job, job.run.external_id)
        client = self._clients.get(target)
        name = job.run.external_id or self._find(client, target, job.run.id)
        if not name:
            return
        try:
            client.cancel_custom_job(name=name, timeout=self.rpc_timeout)
        except Exception as err:
            if not is_api_error(err):
                raise
            code = error_code(err)
            if code == "FAILED_PRECONDITION":
                log.info("Vertex AI job %s already finished: %s", name, err)
                return
            if code == "NOT_FOUND":
                log.info("Vertex AI job %s is gone, nothing to cancel: %s", name, err)
                return
            raise dispatch_error(err, f"cancel {name}", target, "cancel") from None
        self._cancel_sent.add(name)

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
            jobs = sorted(
                client.list_custom_jobs(request=request, timeout=self.rpc_timeout), key=lambda j: j.create_time
            )
            return jobs[-1].name if jobs else None

        return self._api_call(lookup, "look for the run's existing job", target, "list")

    def _api_call(self, fn: Any, action: str, target: Target, kind: str) -> Any:
        """``fn()``, once; an API error becomes a DispatchError for ``action`` that says whether it
        is transient (the caller's retry policy decides what to do with it)."""
        try:
            return fn()
        except Exception as err:
            if is_api_error(err):
                raise dispatch_error(err, action, target, kind) from None
            raise

    def _find_settled(self, client: Any, target: Target, run_id: str) -> str | None:
        """``_find``, asked again a few seconds apart: the list can lag behind a create that
        succeeded, and a second job is worse than a short wait."""
        for attempt in range(self.lookup_attempts):
            name = self._find(client, target, run_id)
            if name or attempt == self.lookup_attempts - 1:
                return name
            time.sleep(self.lookup_interval)
        return None


def _job_id(name: str | None) -> str:
    return (name or "").rsplit("/", 1)[-1]


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
        run["scheduling_strategy"] = aiplatform.gapic.Scheduling.Strategy[run["scheduling_strategy"]]  # type: ignore[misc]  # a proto-plus enum
    run.setdefault("create_request_timeout", client.timeout)
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


class _ScopedClient:
    """The queue's JobService client as the SDK's ``api_client`` for one submit. Before the create
    is sent it sets the fields the SDK fills from the process-global ``aiplatform.init`` config when
    the queue leaves them empty (``CustomJob.__init__``: ``encryption_spec`` via
    ``global_config.get_encryption_spec``; ``submit``: ``service_account or
    global_config.service_account``) back to this queue's own values, and notes that it was sent."""

    def __init__(self, client: Any, spec: dict, run: dict, timeout: float):
        self._client = client
        self._key = spec.get("encryption_spec_key_name") or ""
        self._service_account = run.get("service_account") or ""
        self.timeout = timeout
        self.sent = False

    def create_custom_job(self, *, parent: str, custom_job: Any, timeout: float | None = None) -> Any:
        from google.cloud import aiplatform_v1  # lazy: ≈0.8 s

        custom_job.job_spec.service_account = self._service_account
        if self._key:
            custom_job.encryption_spec = aiplatform_v1.EncryptionSpec(kms_key_name=self._key)
        elif "encryption_spec" in custom_job:
            del custom_job.encryption_spec
        self.sent = True
        return self._client.create_custom_job(parent=parent, custom_job=custom_job, timeout=timeout or self.timeout)


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
    }
    note = notes.get(resource.state, "")
    if error:
        return f"{note}: {error}" if note and resource.state != JobState.JOB_STATE_FAILED else error
    return note


def _state_name(raw: Any) -> str:
    return raw.name if hasattr(raw, "name") else f"{raw} (unknown to google-cloud-aiplatform)"


def to_status(resource: Any, current: RunState | None = None, cancelling: bool = False) -> Status:
    """A Vertex AI CustomJob as a run Status (states compared as enum members).

    ``current`` is the run's state now: a state this SDK does not know (an int over gRPC,
    UNSPECIFIED over REST, where unknown enum names are dropped) keeps it, until the job has an
    ``end_time``. With ``cancelling`` (a cancel was requested) the run never moves back from
    CANCELLING; a job that still ends SUCCEEDED is succeeded (cancel is best effort)."""
    state = _state_map().get(resource.state)
    if state is None:
        return _unknown_state(resource, current)
    if cancelling and state in (RunState.PENDING, RunState.RUNNING):
        return Status(RunState.CANCELLING, f"cancel requested; Vertex AI still reports {_state_name(resource.state)}")
    message = _state_message(resource)
    output = _output_of(resource) if state is RunState.SUCCEEDED else None
    if cancelling and state is RunState.SUCCEEDED:
        message = "the job finished before the cancel took effect (Vertex AI cancels are best effort)"
    return Status(state, message, output)


def _unknown_state(resource: Any, current: RunState | None) -> Status:
    raw = _state_name(resource.state)
    ended = _end_time(resource)
    if ended:
        failed = bool(resource.error and resource.error.code)
        state = RunState.FAILED if failed else RunState.SUCCEEDED
        detail = f": {resource.error.message}" if failed else ""
        output = None if failed else _output_of(resource)
        return Status(state, f"Vertex AI reported state {raw}; the job ended at {ended}{detail}", output)
    keep = current if current is not None and not current.is_terminal else RunState.SUBMITTED
    return Status(keep, f"Vertex AI reported state {raw}; keeping {keep.value} until the job ends")


def _timed_out(resource: Any) -> Status | None:
    """A job nobody here cancelled, cancelled by Vertex AI once it had run ``run.timeout``
    (``job_spec.scheduling.timeout``: "The maximum job running time"; the service cancels a job at
    it): the run failed for its time limit, as a local run that times out does."""
    limit = resource.job_spec.scheduling.timeout
    start, end = resource.start_time, resource.end_time
    if not limit or not start or not end or start.timestamp() <= 0:
        return None
    seconds = limit.total_seconds()
    if (end - start).total_seconds() < seconds:
        return None  # cancelled before its time was up: by someone else, in the console
    return Status(RunState.FAILED, f"timed out after {seconds:g} s (run.timeout): Vertex AI stopped the job")


def _end_time(resource: Any) -> str:
    end = resource.end_time
    if not end or end.timestamp() <= 0:
        return ""
    return end.strftime("%Y-%m-%dT%H:%M:%SZ")


def _output_of(resource: Any) -> str | None:
    for pool in resource.job_spec.worker_pool_specs:
        for env in pool.container_spec.env:
            if env.name == "LAUNCH_OUTPUT":
                return gcs_uri(env.value)
    return None


# --------------------------------------------------------------------------- logs


def _follow_logs(runner: VertexRunner, target: Target, name: str, follow: bool) -> Iterator[str]:
    client = runner._clients.get(target)
    resource = _get_job(runner, client, target, name)
    logging_client = _logging_client(target)
    job_id = name.rsplit("/", 1)[-1]
    base = f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"'
    seen: set[str] = set()
    # Always a lower bound: google-cloud-logging adds timestamp>="now-24h" to a filter without one.
    last = _timestamp(resource.create_time) if resource is not None and resource.create_time else _DAWN
    ended_at: float | None = None
    empty = 0
    while True:
        query = f'{base} AND timestamp>="{last}"'
        new = 0
        for entry in _list_logs(runner, logging_client, target, query):
            key = entry.insert_id or f"{entry.timestamp}{entry.payload}"
            if key in seen:
                continue
            seen.add(key)
            new += 1
            if entry.timestamp:
                last = _timestamp(entry.timestamp)
            yield _line(entry.payload)
        if not follow:
            return
        empty = 0 if new else empty + 1
        if ended_at is None and _finished(runner, client, target, name):
            ended_at = time.monotonic()
        # Ingestion lags the job's end: stop after two empty polls once log_grace has passed.
        if ended_at is not None and empty >= 2 and time.monotonic() - ended_at >= runner.log_grace:
            return
        time.sleep(runner.log_interval)


_DAWN = "1970-01-01T00:00:00Z"


def _timestamp(when: Any) -> str:
    return when.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _list_logs(runner: VertexRunner, client: Any, target: Target, query: str) -> list[Any]:
    def fetch() -> list[Any]:
        # list_entries takes no deadline: a hung read is DEADLINE_EXCEEDED after rpc_timeout, retried.
        return read_log_entries(
            client, target.project, query, seconds=runner.rpc_timeout, what="read the job's logs", page_size=1000
        )

    from ...core.retry import retry

    # Log following is driven here, not by the agent: the one retry policy, with its own deadline.
    return retry(lambda: runner._api_call(fetch, "read the job's logs", target, "logs"), deadline_s=runner.log_deadline)


def _logging_client(target: Target) -> Any:
    """A Cloud Logging client: Google's own Logging endpoint, or the emulator named by
    ``environment.logging_endpoint`` (Vertex AI's endpoint does not serve Logging)."""
    from google.cloud import logging as cloud_logging  # lazy: google-cloud-logging

    options = {"api_endpoint": target.logging_endpoint} if target.logging_endpoint else None
    return cloud_logging.Client(
        project=target.project,
        credentials=credentials(target.credentials),
        client_options=options,
        _use_grpc=target.transport == "grpc",
    )


def _get_job(runner: VertexRunner, client: Any, target: Target, name: str) -> Any:
    """The job, or None when it no longer exists."""

    def get() -> Any:
        try:
            return client.get_custom_job(name=name, timeout=runner.rpc_timeout)
        except Exception as err:
            if is_api_error(err) and error_code(err) == "NOT_FOUND":
                return None
            raise

    from ...core.retry import retry

    return retry(lambda: runner._api_call(get, f"read {name}", target, "get"), deadline_s=runner.log_deadline)


def _finished(runner: VertexRunner, client: Any, target: Target, name: str) -> bool:
    resource = _get_job(runner, client, target, name)
    return resource is None or to_status(resource).state.is_terminal


def _line(payload: Any) -> str:
    if isinstance(payload, dict):
        import json

        return payload.get("message") or json.dumps(payload, sort_keys=True)
    return str(payload or "").rstrip("\n")


def _check_destination(queue: Queue, agent_config: AgentConfig) -> None:
    """An image the agent builds must land where Vertex AI can pull it."""
    from ...builders import get_builder
    from ...core.config import builder_for
    from ._images import vertex_pull_problem

    builder = builder_for(agent_config, queue.config or {})
    if not get_builder(builder, agent_config).pushes:  # it pushes nothing: the image is named by the run
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
