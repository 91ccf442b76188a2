"""The ``kubernetes`` resource: runs a notebook as a ``batch/v1`` Job through the official
``kubernetes`` Python client (kubeconfig, or the in-cluster config inside a pod).

- The queue config is a Job manifest (W&B Launch's Kubernetes shape: ``metadata``, ``spec``, the
  image ``${image_uri}``), plus our own ``namespace`` and ``context``; it is checked offline by
  building the client's model objects (``_validate``).
- The Job is named ``launch-<run id>`` and labelled ``launch-run-id=<run id>`` (its pods too):
  ``find`` is one read by name, and the API server itself refuses a second Job of that name.
- Status: one list of Jobs and one of Pods per namespace and cycle, selected by the active runs'
  ids (``launch-run-id in (…)``, so it does not grow with the namespace's history) and paged
  (``limit``/``continue``).
- Cancel deletes the Job with ``propagationPolicy: Background`` (its pods go with it).
- Logs are the pod's (the newest pod of the Job).
- The executed notebook: the entrypoint writes it to ``<output>/<run id>/output.ipynb``. With a
  ``gs://`` or ``s3://`` folder it is uploaded from the pod, and when the Job succeeds the agent
  fetches it into ``<run folder>/outputs/output.ipynb`` (as for SageMaker); a path under a mounted
  volume is copied the same way when the agent sees that volume too, else that path is the output.
  Without ``output`` the notebook stays in the pod (the default config asks for one).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._extras import require_extra
from ...core.errors import DispatchError, LaunchError, RunError
from ...core.identity import run_identity
from ...core.model import Job, Problem, Status
from ...core.states import RunState
from .. import CloudRunner, keep_fetched_notebook
from ._validate import manifest_of, model_problems, validate_config

if TYPE_CHECKING:
    from ...core.config import AgentConfig
    from ...core.model import Queue, Run

__all__ = ["KubernetesRunner", "DEFAULT_CONFIG"]
log = logging.getLogger(__name__)

DEFAULT_CONFIG = """\
# Kubernetes: a batch/v1 Job manifest (W&B Launch's Kubernetes shape); the notebook runs in the
# first container. namespace, context (a kubeconfig context) and output are launch_jupyter's own keys.
namespace: default
output: <REQUIRED>  # gs://BUCKET/PREFIX or s3://BUCKET/PREFIX (or a path under a mounted volume): the notebook comes back from here
metadata:
  labels: {}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 86400
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: notebook
          image: ${image_uri}
          resources:
            requests:
              cpu: "1"
              memory: 2Gi
"""
LABEL_RUN_ID = "launch-run-id"
NAME_PREFIX = "launch-"
OUTPUT = "/tmp/launch-output/output.ipynb"  # in the container, when the config names no output folder
OUTPUT_NAME = "output.ipynb"
ENTRYPOINT = ["python", "-m", "launch_jupyter.execute"]
RPC_TIMEOUT = 60.0
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"  # token, ca.crt, namespace (in a pod)
LIST_PAGE = 500  # items per page of a status list (limit/continue)
SELECTOR_RUNS = 200  # run ids per set-based selector: one list call per 200 active runs (URL ≤ ~13 kB)
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")
# Pod waiting reasons that will not fix themselves (kubelet's image and config errors).
STUCK_REASONS = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
}


def job_name(run_id: str) -> str:
    """``launch-<run id>``: a DNS-1123 label (lowercase, ≤ 63), the same for the same run."""
    clean = _NOT_LABEL.sub("-", run_id.lower()).strip("-")
    name = f"{NAME_PREFIX}{clean}"
    if clean == run_id and len(name) <= 63:
        return name
    return f"{name[:54].rstrip('-')}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def label_value(text: str) -> str:
    """A label value: ≤ 63 of [A-Za-z0-9._-], alphanumeric at both ends."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    if clean == text and len(clean) <= 63:
        return clean
    return f"{clean[:54]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


class KubernetesRunner(CloudRunner):
    """Runs jobs as Kubernetes Jobs; see the module docstring."""

    resource = "kubernetes"
    extra = "kubernetes"
    needs_image = True
    list_lag_seconds = 0.0  # find reads the Job by name
    call_timeout = 4 * RPC_TIMEOUT

    DEFAULT_CONFIG = DEFAULT_CONFIG

    def __init__(
        self, agent_config: AgentConfig | None = None, *, rpc_timeout: float = RPC_TIMEOUT, log_interval: float = 2.0
    ):
        super().__init__(agent_config, rpc_timeout=rpc_timeout, log_interval=log_interval)
        self.page_size = LIST_PAGE
        self.selector_runs = SELECTOR_RUNS
        self._clients: dict[Any, Any] = {}
        self._deleted: set[str] = set()

    # ------------------------------------------------------------------ config
    def check_config(self, config: dict) -> list[Problem]:
        """Offline: the manifest built as the client's V1Job, each problem with its key path."""
        return validate_config(config)

    def configured_image(self, config: dict) -> str | None:
        containers = ((((config or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
        image = (containers[0] or {}).get("image") if containers else None
        return str(image) if image and "${" not in str(image) else None

    def preflight(self, queue: Queue, agent_config: AgentConfig) -> None:
        """The client imports and a kubeconfig (or the in-cluster config) loads."""
        require_extra(self.extra)
        self._api(queue.config or {})

    # ------------------------------------------------------------------ the request
    def build_job(self, job: Job) -> dict:
        """The Job manifest ``create`` sends (macros filled, the run's name, labels, env, command)."""
        manifest = manifest_of(copy.deepcopy(job.config or {}))
        name = job_name(job.run.id)
        metadata = manifest.setdefault("metadata", {}) or {}
        manifest["metadata"] = metadata
        metadata.pop("generateName", None)
        metadata["name"] = name
        metadata["namespace"] = self._namespace(job.config or {})
        labels = self._labels(job)
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
        spec = manifest.setdefault("spec", {})
        template = spec.setdefault("template", {})
        template_meta = template.setdefault("metadata", {}) or {}
        template["metadata"] = template_meta
        template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
        pod = template.setdefault("spec", {})
        pod.setdefault("restartPolicy", "Never")
        containers = pod.get("containers") or []
        if not containers:
            raise DispatchError("spec.template.spec.containers: the Job needs a container to run the notebook in")
        first = dict(containers[0])
        if job.image_uri and (not first.get("image") or "${" in str(first.get("image"))):
            first["image"] = job.image_uri
        if not first.get("image") or "${" in str(first.get("image")):
            raise DispatchError(f"run {job.run.id} has no image to run (spec.template.spec.containers[0].image)")
        first.setdefault("name", "notebook")
        output = self._output(job)
        if not first.get("command") and not first.get("args"):
            notebook = job.notebook or job.run.notebook
            if not notebook:
                raise DispatchError(f"run {job.run.id} names no notebook to run")
            first["command"] = list(ENTRYPOINT)
            first["args"] = ["--notebook", notebook, "--output", output]
        env = [e for e in first.get("env") or [] if isinstance(e, dict)]
        ours = run_identity(
            run_id=job.run.id, entity=job.queue.entity, queue=job.queue.path, author=job.run.author, output=output
        )
        ours["LAUNCH_PARAMETERS"] = json.dumps(job.run.parameters or {}, sort_keys=True, default=str)
        ours["PYTHONUNBUFFERED"] = "1"
        taken = {e.get("name") for e in env}
        first["env"] = env + [{"name": k, "value": v} for k, v in ours.items() if k not in taken]
        pod["containers"] = [first, *containers[1:]]
        problems = model_problems(manifest, "V1Job")
        if problems:
            raise DispatchError("; ".join(str(p) for p in problems))
        return manifest

    def dry_run(self, job: Job) -> dict:
        """The exact Job manifest ``create`` would POST, with its namespace (values of variables whose
        names look secret shown as ``***``)."""
        from .._local import mask

        manifest = self.build_job(job)
        for container in manifest["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env") or []:
                if "value" in env:
                    env["value"] = mask(env["name"], env["value"])
        return {"namespace": manifest["metadata"]["namespace"], "job": manifest}

    # ------------------------------------------------------------------ submit
    def find(self, job: Job) -> str | None:
        """The name of the Job this run already has, or None (one read by name)."""
        batch, _ = self._api(job.config or {})
        name, namespace = job_name(job.run.id), self._namespace(job.config or {})
        try:
            self._count("read_namespaced_job")
            batch.read_namespaced_job(name, namespace, _request_timeout=self.rpc_timeout)
        except Exception as err:
            if _status(err) == 404:
                return None
            raise _dispatch_error(err, "look for the run's existing Job") from None
        log.info("run %s: reattached to Kubernetes Job %s/%s", job.run.id, namespace, name)
        return name

    def create(self, job: Job) -> str:
        """POST the Job (one attempt); 409 AlreadyExists is this run's own Job."""
        from kubernetes import client  # lazy

        manifest = self.build_job(job)
        batch, _ = self._api(job.config or {})
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            self._count("create_namespaced_job")
            batch.create_namespaced_job(
                namespace, client.V1Job.model_validate(manifest), _request_timeout=self.rpc_timeout
            )
        except Exception as err:
            if _status(err) == 409:
                log.info("run %s: Job %s already exists", job.run.id, name)
                return name
            raise _dispatch_error(err, "create the Job") from None
        return name

    # ------------------------------------------------------------------ status
    def poll(self, jobs: list[Job]) -> dict[str, Status]:
        """One label-selected list of Jobs and one of Pods per (context, namespace)."""
        groups: dict[tuple, list[Job]] = {}
        for job in jobs:
            if job.run.external_id:
                key = ((job.config or {}).get("context"), self._namespace(job.config or {}))
                groups.setdefault(key, []).append(job)
        out: dict[str, Status] = {}
        for (_, namespace), whole in groups.items():
            batch, core = self._api(whole[0].config or {})
            for start in range(0, len(whole), self.selector_runs):
                group = whole[start : start + self.selector_runs]
                selector = f"{LABEL_RUN_ID} in ({','.join(sorted({label_value(j.run.id) for j in group}))})"
                try:
                    jobs_listed = self._list_all(batch.list_namespaced_job, "list_namespaced_job", namespace, selector)
                    pods = self._list_all(core.list_namespaced_pod, "list_namespaced_pod", namespace, selector)
                except Exception as err:
                    log.warning("could not list Jobs in %s: %s", namespace, _dispatch_error(err, "list Jobs"))
                    continue
                out.update(self._statuses(group, jobs_listed, pods))
        return out

    def _list_all(self, call: Any, operation: str, namespace: str, selector: str) -> list:
        """Every item of a label-selected list, page by page (``limit``; ``continue`` followed)."""
        items: list = []
        token = None
        while True:
            self._count(operation)
            extra: dict[str, str] = {"_continue": token} if token else {}
            page = call(
                namespace, label_selector=selector, limit=self.page_size, _request_timeout=self.rpc_timeout, **extra
            )
            items += page.items or []
            token = page.metadata.var_continue if page.metadata else None
            if not token:
                return items

    def _statuses(self, group: list[Job], listed: list, pods: list) -> dict[str, Status]:
        out: dict[str, Status] = {}
        by_name = {j.metadata.name: j for j in listed}
        pods_of: dict[str, list] = {}
        for pod in pods:
            pods_of.setdefault((pod.metadata.labels or {}).get(LABEL_RUN_ID, ""), []).append(pod)
        for job in group:
            found = by_name.get(job.run.external_id)
            cancelling = (
                job.run.cancel_requested or job.run.state is RunState.CANCELLING or job.run.external_id in self._deleted
            )
            if found is None:
                if cancelling:
                    out[job.run.id] = Status(RunState.CANCELLED, "the Job was deleted (cancel requested)")
                else:
                    out[job.run.id] = Status(
                        RunState.FAILED, f"the Kubernetes Job {job.run.external_id} no longer exists (deleted?)"
                    )
                continue
            status = to_status(found, pods_of.get(label_value(job.run.id), []), cancelling=cancelling)
            if status.state is RunState.SUCCEEDED:
                status.output_notebook = self._fetch_output(job)
            out[job.run.id] = status
        return out

    # ------------------------------------------------------------------ cancel
    def cancel(self, job: Job) -> None:
        """Delete the Job with propagationPolicy Background: the garbage collector removes its pods."""
        from kubernetes import client  # lazy

        batch, _ = self._api(job.config or {})
        name = job.run.external_id or job_name(job.run.id)
        namespace = self._namespace(job.config or {})
        try:
            self._count("delete_namespaced_job")
            batch.delete_namespaced_job(
                name,
                namespace,
                body=client.V1DeleteOptions(propagation_policy="Background"),
                _request_timeout=self.rpc_timeout,
            )
        except Exception as err:
            if _status(err) == 404:
                log.info("Job %s/%s is gone, nothing to cancel", namespace, name)
            else:
                raise _dispatch_error(err, f"delete the Job {name}") from None
        self._deleted.add(name)

    # ------------------------------------------------------------------ logs
    def logs(self, run: Run, follow: bool = False) -> Iterator[str]:
        """The log of the Job's newest pod; with ``follow``, streamed until the container ends."""
        if not run.external_id:
            raise RunError(f"run {run.id} has no Kubernetes Job yet, so it has no logs")
        return self._logs(run, follow)

    def _logs(self, run: Run, follow: bool) -> Iterator[str]:
        _, core = self._api(run.config or {})
        namespace = self._namespace(run.config or {})
        pod = None
        while pod is None:
            self._count("list_namespaced_pod")
            pods = (
                core.list_namespaced_pod(
                    namespace, label_selector=f"{LABEL_RUN_ID}={label_value(run.id)}", _request_timeout=self.rpc_timeout
                ).items
                or []
            )
            started = [p for p in pods if (p.status and p.status.phase) not in (None, "Pending")]
            if started:
                pod = max(started, key=lambda p: p.metadata.creation_timestamp or 0)
            elif not follow:
                return
            else:
                time.sleep(self.log_interval)
        self._count("read_namespaced_pod_log")
        if not follow:
            text = core.read_namespaced_pod_log(pod.metadata.name, namespace, _request_timeout=self.rpc_timeout)
            yield from str(text or "").splitlines()
            return
        response = core.read_namespaced_pod_log(pod.metadata.name, namespace, follow=True, _preload_content=False)
        try:
            buffer = b""
            for chunk in response.stream(4096):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if buffer:
                yield buffer.decode(errors="replace")
        finally:
            response.release_conn()

    # ------------------------------------------------------------------ internals
    def _labels(self, job: Job) -> dict[str, str]:
        return {
            LABEL_RUN_ID: label_value(job.run.id),
            "launch-queue": label_value(job.queue.name),
            "launch-author": label_value(job.run.author),
        }

    def _output(self, job: Job) -> str:
        folder = str((job.config or {}).get("output") or "").rstrip("/")
        return f"{folder}/{job.run.id}/output.ipynb" if folder else OUTPUT

    def _fetch_output(self, job: Job) -> str | None:
        """The executed notebook, from ``output`` into ``<run folder>/outputs``; when it cannot be
        fetched its URI (or in-pod path) is the run's output, and None when the config names none."""
        if not (job.config or {}).get("output"):
            return None
        uri = self._output(job)
        try:
            if uri.startswith("s3://"):
                import boto3  # lazy: the sagemaker extra

                bucket, _, key = uri[len("s3://") :].partition("/")
                self._count("GetObject")
                data = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            elif uri.startswith("gs://"):
                import google.cloud.storage as storage  # lazy, heavy

                bucket, _, key = uri[len("gs://") :].partition("/")
                self._count("storage.download")
                data = storage.Client().bucket(bucket).blob(key).download_as_bytes()
            else:  # a volume path: readable here only if the agent mounts that volume too
                data = Path(uri).read_bytes()
        except Exception as err:  # the Job succeeded; its notebook stays where the pod put it
            log.warning("run %s: could not fetch the executed notebook from %s: %s", job.run.id, uri, err)
            return uri
        return keep_fetched_notebook(job.workdir, data, OUTPUT_NAME)

    def _namespace(self, config: dict) -> str:
        return str(config.get("namespace") or self._default_namespace(config))

    def _default_namespace(self, config: dict) -> str:
        try:
            from kubernetes import config as kube_config

            contexts, active = kube_config.list_kube_config_contexts(config_file=_kubeconfig())
            wanted = config.get("context")
            if wanted:
                active = next((c for c in contexts if c["name"] == wanted), active)
            return (active or {}).get("context", {}).get("namespace") or "default"
        except Exception:  # no kubeconfig (in a pod): the pod's namespace file, else default
            try:
                with open(f"{SERVICE_ACCOUNT}/namespace") as f:
                    return f.read().strip() or "default"
            except OSError:
                return "default"

    def _api(self, config: dict) -> tuple[Any, Any]:
        """(BatchV1Api, CoreV1Api) for the config's kubeconfig context (or in-cluster), cached."""
        key = config.get("context")
        with self._lock:
            if key not in self._clients:
                from kubernetes import client
                from kubernetes import config as kube_config

                try:
                    api_client = kube_config.new_client_from_config(
                        config_file=_kubeconfig(), context=key, persist_config=False
                    )
                except Exception as err:  # no kubeconfig: are we in a pod?
                    try:
                        from kubernetes.config.incluster_config import InClusterConfigLoader

                        configuration = client.Configuration()
                        InClusterConfigLoader(  # what load_incluster_config does, with our file paths
                            token_filename=f"{SERVICE_ACCOUNT}/token", cert_filename=f"{SERVICE_ACCOUNT}/ca.crt"
                        ).load_and_set(configuration)
                        api_client = client.ApiClient(configuration)
                    except Exception:
                        raise LaunchError(
                            f"no Kubernetes cluster configured ({err}); set KUBECONFIG or run "
                            "the agent in a pod with a service account"
                        ) from None
                self._clients[key] = (client.BatchV1Api(api_client), client.CoreV1Api(api_client))
            return self._clients[key]


def _kubeconfig() -> str | None:
    """``KUBECONFIG`` as it is now (the client reads it once, at import), else its default."""
    import os

    return os.environ.get("KUBECONFIG") or None


def to_status(job: Any, pods: list, *, cancelling: bool = False) -> Status:
    """A Job (and its pods) as a run Status. Job conditions Complete/Failed end it (reason
    DeadlineExceeded: activeDeadlineSeconds passed; BackoffLimitExceeded: its pods failed)."""
    status = job.status
    for condition in (status.conditions if status else None) or []:
        if condition.status != "True":
            continue
        if condition.type in ("Complete", "SuccessCriteriaMet"):
            return Status(RunState.SUCCEEDED, "the Job completed")
        if condition.type in ("Failed", "FailureTarget"):
            if condition.reason == "DeadlineExceeded":
                return Status(RunState.FAILED, "timed out: the Job ran longer than spec.activeDeadlineSeconds")
            detail = _pod_failure(pods) or condition.message or condition.reason or "the Job failed"
            return Status(RunState.FAILED, detail)
    if cancelling:
        return Status(RunState.CANCELLING, "cancel requested; the Job is being deleted")
    if status and status.succeeded:
        return Status(RunState.SUCCEEDED, "the Job's pod succeeded")
    for pod in pods:
        for cs in (pod.status.container_statuses if pod.status else None) or []:
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason in STUCK_REASONS:
                return Status(
                    RunState.PENDING, f"pod {pod.metadata.name}: {waiting.reason}: {waiting.message or ''}".strip()
                )
    phases = [p.status.phase for p in pods if p.status]
    if "Running" in phases or (status and status.active and status.ready):
        return Status(RunState.RUNNING, "the notebook is running")
    pending = [p for p in pods if p.status and p.status.phase == "Pending"]
    for pod in pending:
        for condition in pod.status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "False":
                return Status(
                    RunState.PENDING,
                    f"pod {pod.metadata.name} is not scheduled: {condition.message or condition.reason}",
                )
    return Status(RunState.PENDING, "waiting for the Job's pod")


def _pod_failure(pods: list) -> str:
    for pod in pods:
        for cs in (pod.status.container_statuses if pod.status else None) or []:
            done = cs.state.terminated if cs.state else None
            if done and done.exit_code:
                return f"pod {pod.metadata.name}: container {cs.name} exited {done.exit_code} ({done.reason or ''})".strip()
    return ""


def _status(err: Exception) -> int:
    return int(getattr(err, "status", 0) or 0)


def _dispatch_error(err: Exception, action: str) -> Exception:
    """An API error as a DispatchError (transient for 429, 5xx and connection failures)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(err, ApiException):
        code = _status(err)
        reason = err.reason or ""
        try:
            reason = json.loads(err.body or "{}").get("message") or reason
        except (ValueError, AttributeError):
            pass
        return DispatchError(
            f"Kubernetes could not {action}: HTTP {code}: {reason}", transient=code == 429 or code >= 500 or code == 0
        )
    if isinstance(err, (HTTPError, OSError)):
        return DispatchError(f"could not reach the Kubernetes API server to {action}: {err}", transient=True)
    return err
