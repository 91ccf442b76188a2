"""The ``sagemaker`` resource: runs a notebook as an Amazon SageMaker training job through boto3.

- The queue config is W&B Launch's SageMaker shape: its top-level keys are ``CreateTrainingJob``
  arguments (``RoleArn``, ``ResourceConfig``, ``OutputDataConfig``, ``StoppingCondition``,
  ``Environment``, ``Tags``, ``VpcConfig`` …), plus our own ``region`` and ``profile``. It is
  checked offline against botocore's service model (``_validate``).
- The job's name is ``launch-<run id>`` and it carries the tag ``launch-run-id``: ``find`` is one
  ``DescribeTrainingJob`` by that name, so a restarted agent reattaches instead of creating again,
  and SageMaker itself refuses a second job of the same name.
- Status is read in batches: one ``ListTrainingJobs`` (``NameContains=launch-``, created after the
  oldest tracked run was queued, all pages) per region/profile and cycle; ``DescribeTrainingJob``
  only for a job that has ended (its failure reason, its model artifacts) or is missing from the list.
- The notebook writes ``/opt/ml/model/output.ipynb``; SageMaker uploads ``/opt/ml/model`` as
  ``<S3OutputPath>/<job>/output/model.tar.gz``, which the runner fetches back into the run's folder.
- Logs come from CloudWatch Logs, group ``/aws/sagemaker/TrainingJobs``, streams ``<job>/…``.
- Every call is one attempt (botocore's own retries are off); the agent owns retrying, told by
  ``DispatchError(transient=...)``.
"""

from __future__ import annotations

import datetime as _dt
import io
import logging
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._extras import require_extra
from ...core.errors import DispatchError, LaunchError, RunError
from ...core.model import Job, Problem, Status
from ...core.states import RunState
from .. import CloudRunner, keep_fetched_notebook
from ._request import NAME_PREFIX, OUTPUT_NAME, build_request, job_name
from ._validate import validate_config

if TYPE_CHECKING:
    from ...core.config import AgentConfig
    from ...core.model import Queue, Run

__all__ = ["SageMakerRunner", "DEFAULT_CONFIG"]
log = logging.getLogger(__name__)

DEFAULT_CONFIG = """\
# Amazon SageMaker: the top-level keys are CreateTrainingJob arguments (W&B Launch's SageMaker shape).
region: us-east-1          # the AWS region (else environment.region, else AWS_REGION)
# profile: my-profile      # a profile of ~/.aws/config (else boto3's default credentials chain)
RoleArn: <REQUIRED>        # arn:aws:iam::ACCOUNT:role/ROLE, the role the job runs as
ResourceConfig:
  InstanceType: ml.m5.xlarge
  InstanceCount: 1
  VolumeSizeInGB: 30
OutputDataConfig:
  S3OutputPath: <REQUIRED>  # s3://BUCKET/PREFIX: the executed notebook comes back from here
StoppingCondition:
  MaxRuntimeInSeconds: 86400
AlgorithmSpecification:
  TrainingImage: ${image_uri}
  TrainingInputMode: File
"""
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
POLL_LOOKBACK_S = 600  # clock skew between this machine and AWS, generously
LIST_PAGE = 100  # ListTrainingJobs MaxResults: at most 100 (service model)
RPC_TIMEOUT = 60.0
# Error codes worth another attempt (botocore's own retry rules: botocore/data/_retry.json).
TRANSIENT_CODES = {
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
}
ENDED = ("Completed", "Failed", "Stopped")  # TrainingJobStatus values after which a job never changes
PENDING_SECONDARY = {
    "Starting",
    "Pending",
    "LaunchingMLInstances",
    "PreparingTrainingStack",
    "Downloading",
    "DownloadingTrainingImage",
    "Interrupted",
    "Restarting",
}
SECONDARY_NOTES = {
    "Starting": "SageMaker is starting the job",
    "Pending": "the job is waiting for capacity",
    "LaunchingMLInstances": "launching ML instances",
    "PreparingTrainingStack": "preparing the training stack",
    "Downloading": "downloading the input data",
    "DownloadingTrainingImage": "downloading the training image",
    "Training": "the notebook is running",
    "Uploading": "uploading the executed notebook to S3",
    "Interrupted": "the (spot) instance was interrupted; SageMaker restarts the job",
    "Restarting": "SageMaker is restarting the job",
    "Updating": "SageMaker is updating the job",
    "Stopping": "stopping",
    "Stopped": "stopped",
    "MaxRuntimeExceeded": "timed out: the job ran longer than StoppingCondition.MaxRuntimeInSeconds",
    "MaxWaitTimeExceeded": "timed out: the (spot) job waited longer than StoppingCondition.MaxWaitTimeInSeconds",
    "Completed": "completed",
    "Failed": "failed",
}


class _Target(tuple):
    """(region, profile): one boto3 session per pair."""

    @property
    def region(self) -> str:
        return self[0]

    @property
    def profile(self) -> str | None:
        return self[1]


class SageMakerRunner(CloudRunner):
    """Runs jobs as SageMaker training jobs; see the module docstring."""

    resource = "sagemaker"
    extra = "sagemaker"
    needs_image = True
    list_lag_seconds = 0.0  # find is DescribeTrainingJob by name, which sees a job at once
    call_timeout = 4 * RPC_TIMEOUT

    DEFAULT_CONFIG = DEFAULT_CONFIG

    def __init__(
        self, agent_config: AgentConfig | None = None, *, rpc_timeout: float = RPC_TIMEOUT, log_interval: float = 5.0
    ):
        super().__init__(agent_config, rpc_timeout=rpc_timeout, log_interval=log_interval)
        self._clients: dict[tuple, Any] = {}
        self._stopped: set[str] = set()  # job names this runner asked SageMaker to stop

    # ------------------------------------------------------------------ config
    def check_config(self, config: dict) -> list[Problem]:
        """Offline check against botocore's service model for CreateTrainingJob, with key paths."""
        return validate_config(config)

    def configured_image(self, config: dict) -> str | None:
        image = ((config or {}).get("AlgorithmSpecification") or {}).get("TrainingImage")
        return str(image) if image and "${" not in str(image) else None

    def preflight(self, queue: Queue, agent_config: AgentConfig) -> None:
        """boto3 imports, a region resolves and credentials are found (no call to AWS)."""
        require_extra(self.extra)
        target = self._target_of(queue.config or {})
        session = self._session(target)
        if session.get_credentials() is None:
            raise LaunchError(
                f'queue "{queue.path}": no AWS credentials found (profile '
                f"{target.profile or 'default chain'}); set AWS_PROFILE, ~/.aws/credentials "
                "or the queue's profile"
            )

    # ------------------------------------------------------------------ submit
    def find(self, job: Job) -> str | None:
        """The name of the training job this run already has, or None (one DescribeTrainingJob)."""
        name = job_name(job.run.id)
        described = self._describe(self._target(job), name, "look for the run's existing job")
        if described is None:
            return None
        log.info("run %s: reattached to SageMaker training job %s", job.run.id, name)
        return name

    def create(self, job: Job) -> str:
        """CreateTrainingJob (one attempt); a job of this name already there is this run's."""
        request = build_request(job)
        target = self._target(job)
        client = self._client(target, "sagemaker")
        try:
            self._count("CreateTrainingJob")
            client.create_training_job(**request)
        except Exception as err:
            if _code(err) == "ResourceInUse":  # the name is the run's: an earlier attempt made it
                log.info("run %s: training job %s already exists", job.run.id, request["TrainingJobName"])
                return request["TrainingJobName"]
            raise _dispatch_error(err, "create the training job", target) from None
        return request["TrainingJobName"]

    def dry_run(self, job: Job) -> dict:
        """The exact CreateTrainingJob arguments ``create`` would send, with the region (the values of
        variables whose names look secret shown as ``***``)."""
        from .._local import mask

        target = self._target(job)
        request = build_request(job)
        request["Environment"] = {k: mask(k, v) for k, v in request["Environment"].items()}  # as in logs
        return {"region": target.region, "profile": target.profile, "CreateTrainingJob": request}

    # ------------------------------------------------------------------ status
    def poll(self, jobs: list[Job]) -> dict[str, Status]:
        """One ListTrainingJobs (all pages) per region/profile, DescribeTrainingJob only for jobs that
        ended or are not in the list."""
        groups: dict[_Target, list[Job]] = {}
        for job in jobs:
            if job.run.external_id:
                groups.setdefault(self._target(job), []).append(job)
        out: dict[str, Status] = {}
        for target, group in groups.items():
            try:
                listed = self._list(target, group)
            except DispatchError as err:
                log.warning("could not list SageMaker training jobs in %s: %s", target.region, err)
                continue
            for job in group:
                summary = listed.get(job.run.external_id)  # type: ignore[arg-type]  # a polled run has one
                if summary is None or summary["TrainingJobStatus"] in ENDED:
                    try:
                        summary = self._describe(target, job.run.external_id, "read the training job")  # type: ignore[arg-type]
                    except DispatchError as err:
                        log.warning("could not read %s: %s", job.run.external_id, err)
                        continue
                    if summary is None:
                        out[job.run.id] = Status(
                            RunState.FAILED,
                            f"the SageMaker training job {job.run.external_id} no longer exists (deleted?)",
                        )
                        continue
                out[job.run.id] = self._status(target, job, summary)
        return out

    def _list(self, target: _Target, jobs: list[Job]) -> dict[str, dict]:
        client = self._client(target, "sagemaker")
        args: dict[str, Any] = {"NameContains": NAME_PREFIX, "MaxResults": LIST_PAGE}
        created = [j.run.created_at for j in jobs]
        if created and all(created):
            args["CreationTimeAfter"] = _dt.datetime.fromtimestamp(min(created) - POLL_LOOKBACK_S, _dt.timezone.utc)
        listed: dict[str, dict] = {}
        while True:
            try:
                self._count("ListTrainingJobs")
                page = client.list_training_jobs(**args)
            except Exception as err:
                raise _dispatch_error(err, "list the training jobs", target) from None
            for summary in page.get("TrainingJobSummaries") or []:
                listed[summary["TrainingJobName"]] = summary
            if not page.get("NextToken"):
                return listed
            args["NextToken"] = page["NextToken"]

    def _describe(self, target: _Target, name: str, action: str) -> dict | None:
        client = self._client(target, "sagemaker")
        try:
            self._count("DescribeTrainingJob")
            return client.describe_training_job(TrainingJobName=name)
        except Exception as err:
            if _not_found(err):
                return None
            raise _dispatch_error(err, action, target) from None

    def _status(self, target: _Target, job: Job, job_info: dict) -> Status:
        run = job.run
        cancelling = run.cancel_requested or run.state is RunState.CANCELLING or run.external_id in self._stopped
        status = to_status(job_info, cancelling=cancelling, current=run.state)
        if status.state is RunState.SUCCEEDED:
            status.output_notebook = self._fetch_output(target, job, job_info)
        return status

    # ------------------------------------------------------------------ output
    def _fetch_output(self, target: _Target, job: Job, job_info: dict) -> str | None:
        """The executed notebook, from the job's model.tar.gz in S3 to ``<run folder>/outputs``.
        When it cannot be fetched the S3 URI of the archive is the run's output."""
        uri = (job_info.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        if not uri:
            output = (job_info.get("OutputDataConfig") or {}).get("S3OutputPath", "").rstrip("/")
            uri = f"{output}/{job_info['TrainingJobName']}/output/model.tar.gz" if output else None
        if not uri:
            return None
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            self._count("GetObject")
            body = self._client(target, "s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
                member = next(
                    (m for m in archive.getmembers() if m.isfile() and Path(m.name).name == OUTPUT_NAME), None
                )
                if member is None:
                    log.warning("run %s: %s holds no %s", job.run.id, uri, OUTPUT_NAME)
                    return uri
                data = archive.extractfile(member).read()  # type: ignore[union-attr]  # a file member (isfile)
        except Exception as err:  # the job succeeded; its notebook stays in S3
            log.warning("run %s: could not fetch the executed notebook from %s: %s", job.run.id, uri, err)
            return uri
        return keep_fetched_notebook(job.workdir, data, OUTPUT_NAME)

    # ------------------------------------------------------------------ cancel
    def cancel(self, job: Job) -> None:
        """StopTrainingJob; the run goes cancelling → cancelled through poll."""
        target = self._target(job)
        name = job.run.external_id or job_name(job.run.id)
        client = self._client(target, "sagemaker")
        try:
            self._count("StopTrainingJob")
            client.stop_training_job(TrainingJobName=name)
        except Exception as err:
            if _not_found(err):
                log.info("SageMaker training job %s is gone, nothing to stop", name)
                return
            if _code(err) == "ValidationException":  # it has already ended
                log.info("SageMaker training job %s cannot be stopped: %s", name, err)
                return
            raise _dispatch_error(err, f"stop {name}", target) from None
        self._stopped.add(name)

    # ------------------------------------------------------------------ logs
    def logs(self, run: Run, follow: bool = False) -> Iterator[str]:
        """The job's CloudWatch Logs lines (group /aws/sagemaker/TrainingJobs, streams <job>/...);
        with ``follow`` until the job has ended and no new line came."""
        if not run.external_id:
            raise RunError(f"run {run.id} has no SageMaker training job yet, so it has no logs")
        return self._follow(self._target_of(run.config or {}), run.external_id, follow)

    def _follow(self, target: _Target, name: str, follow: bool) -> Iterator[str]:
        client = self._client(target, "logs")
        seen: set[str] = set()
        start = 0
        while True:
            new = 0
            streams = self._streams(client, target, name)
            args: dict[str, Any] = {
                "logGroupName": LOG_GROUP,
                "logStreamNames": streams,
                "startTime": start,
                "interleaved": True,
            }
            while streams:
                page = self._logs_call(client.filter_log_events, args, target)
                for event in (page or {}).get("events") or []:
                    if event.get("eventId") in seen:
                        continue
                    seen.add(event.get("eventId"))
                    new += 1
                    start = max(start, int(event.get("timestamp") or 0))
                    yield str(event.get("message") or "").rstrip("\n")
                if not page or not page.get("nextToken"):
                    break
                args["nextToken"] = page["nextToken"]
            if not follow:
                return
            info = self._describe(target, name, "read the training job")
            if not new and (info is None or info["TrainingJobStatus"] in ENDED):
                return
            time.sleep(self.log_interval)

    def _streams(self, client: Any, target: _Target, name: str) -> list[str]:
        """The job's log streams (``<job>/algo-1-…``, one per instance), at most 100 (the limit of
        FilterLogEvents' logStreamNames)."""
        args: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{name}/"}
        names: list[str] = []
        while True:
            page = self._logs_call(client.describe_log_streams, args, target)
            names += [s["logStreamName"] for s in (page or {}).get("logStreams") or []]
            if not page or not page.get("nextToken") or len(names) >= 100:
                return names[:100]
            args["nextToken"] = page["nextToken"]

    def _logs_call(self, fn: Any, args: dict, target: _Target) -> dict | None:
        """One CloudWatch Logs call; None when the log group does not exist (nothing logged yet)."""
        try:
            self._count(fn.__name__)
            return fn(**args)
        except Exception as err:
            if _not_found(err):
                return None
            raise _dispatch_error(err, "read the job's logs", target) from None

    # ------------------------------------------------------------------ internals
    def _target(self, job: Job) -> _Target:
        return self._target_of(job.config or {})

    def _target_of(self, config: dict) -> _Target:
        env = self.agent_config.environment if self.agent_config else None
        region = config.get("region") or getattr(env, "region", None)
        if not region:
            import os

            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise LaunchError(
                "the sagemaker queue names no region: set region in the queue config, "
                "environment.region in launch-config.yaml, or AWS_REGION"
            )
        return _Target((str(region), config.get("profile") or None))

    def _session(self, target: _Target) -> Any:
        import boto3  # lazy: ≈0.3 s, only when dispatching

        try:
            return boto3.session.Session(profile_name=target.profile, region_name=target.region)
        except Exception as err:  # botocore.exceptions.ProfileNotFound and the like
            raise LaunchError(f"profile: {err}") from None

    def _client(self, target: _Target, service: str) -> Any:
        """A cached client for ``service`` in the target's region and profile: one attempt per call
        (botocore's retries off) and a deadline on every call."""
        key = (target, service)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from botocore.config import Config

                config = Config(
                    connect_timeout=min(10.0, self.rpc_timeout),
                    read_timeout=self.rpc_timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                )
                client = self._clients[key] = self._session(target).client(service, config=config)
            return client


# --------------------------------------------------------------------------- states


def to_status(job: dict, *, cancelling: bool = False, current: RunState | None = None) -> Status:
    """A DescribeTrainingJob answer (or a ListTrainingJobs summary) as a run Status: every
    TrainingJobStatus and SecondaryStatus of the service model has its meaning here."""
    status = job.get("TrainingJobStatus")
    secondary = job.get("SecondaryStatus") or ""
    note = SECONDARY_NOTES.get(secondary, secondary)
    reason = job.get("FailureReason") or ""
    if status == "InProgress":
        state = RunState.PENDING if secondary in PENDING_SECONDARY else RunState.RUNNING
        if cancelling:
            return Status(RunState.CANCELLING, f"cancel requested; SageMaker still reports {secondary or status}")
        return Status(state, note)
    if status == "Stopping":
        return Status(
            RunState.CANCELLING if cancelling else RunState.RUNNING, f"SageMaker is stopping the job ({note})"
        )
    if status == "Completed":
        message = "completed" if not cancelling else "the job completed before the stop took effect"
        return Status(RunState.SUCCEEDED, message)
    if status == "Failed":
        return Status(RunState.FAILED, reason or "the SageMaker training job failed")
    if status == "Stopped":
        if secondary in ("MaxRuntimeExceeded", "MaxWaitTimeExceeded"):
            return Status(RunState.FAILED, note)
        if cancelling:
            return Status(RunState.CANCELLED, "stopped at SageMaker (cancel requested)")
        return Status(RunState.CANCELLED, "the training job was stopped at SageMaker, not through launch_jupyter")
    if status == "Deleting":
        return Status(RunState.FAILED, "the SageMaker training job is being deleted")
    keep = current if current is not None and not current.is_terminal else RunState.SUBMITTED
    return Status(keep, f"SageMaker reported status {status!r} ({secondary}); keeping {keep.value}")


# --------------------------------------------------------------------------- errors


def _code(err: Exception) -> str:
    response = getattr(err, "response", None)
    return str(((response or {}).get("Error") or {}).get("Code") or "") if isinstance(response, dict) else ""


def _not_found(err: Exception) -> bool:
    code = _code(err)
    if code in ("ResourceNotFound", "ResourceNotFoundException", "NoSuchKey", "NotFound"):
        return True
    # DescribeTrainingJob answers an unknown name with ValidationException "Requested resource not found".
    text = str(err).lower()
    return code == "ValidationException" and ("not found" in text or "could not find" in text)


def _dispatch_error(err: Exception, action: str, target: _Target) -> Exception:
    """A botocore error as a DispatchError saying whether another attempt may help; anything else as it is."""
    from botocore import exceptions as bx  # lazy: botocore comes with boto3

    where = f"in {target.region}" + (f" (profile {target.profile})" if target.profile else "")
    if isinstance(err, bx.ClientError):
        status = int((err.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        transient = _code(err) in TRANSIENT_CODES or status >= 500
        return DispatchError(f"SageMaker could not {action} {where}: {err}", transient=transient)
    if isinstance(
        err, (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ReadTimeoutError, bx.ConnectTimeoutError)
    ):
        return DispatchError(f"could not reach AWS to {action} {where}: {err}", transient=True)
    if isinstance(err, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.ProfileNotFound)):
        return DispatchError(f"cannot {action} {where}: {err}", transient=False)
    if isinstance(err, bx.ParamValidationError):
        return DispatchError(f"cannot {action}: {err}", transient=False)
    return err
