"""From a Job to the ``CreateTrainingJob`` arguments: the job name from the run id, the image and
the notebook entrypoint, the run identity in ``Environment`` and ``Tags``. Pure data, no SDK."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re

from ...core.errors import DispatchError
from ...core.identity import run_identity
from ...core.model import Job

log = logging.getLogger(__name__)

NAME_PREFIX = "launch-"  # every job this runner makes starts so: ListTrainingJobs NameContains
TAG_RUN_ID, TAG_QUEUE, TAG_AUTHOR, TAG_ENTITY = "launch-run-id", "launch-queue", "launch-author", "launch-entity"
ENTRYPOINT = ["python", "-m", "launch_jupyter.execute"]
# SageMaker uploads /opt/ml/model as <S3OutputPath>/<job name>/output/model.tar.gz when the job ends
# (docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html).
MODEL_DIR = "/opt/ml/model"
OUTPUT_NAME = "output.ipynb"
# TrainingJobName in the service model: 1-63 characters, [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}.
NAME_MAX = 63
_NOT_NAME = re.compile(r"[^a-zA-Z0-9]+")


def job_name(run_id: str) -> str:
    """The training job's name for a run: ``launch-<run id>``, always the same for the same run, so
    a restarted agent finds the job by name. A run id that needs cleaning gets a hash suffix."""
    clean = _NOT_NAME.sub("-", run_id).strip("-")
    name = f"{NAME_PREFIX}{clean}"
    if clean == run_id and len(name) <= NAME_MAX:
        return name
    suffix = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{name[: NAME_MAX - 9].rstrip('-')}-{suffix}"


def apply_defaults(config: dict) -> dict:
    """The queue's arguments with what W&B's SageMaker shape leaves out: ``AlgorithmSpecification``
    with the built image (``${image_uri}``) and ``TrainingInputMode: File``."""
    request = copy.deepcopy(config)
    spec = request.get("AlgorithmSpecification")
    if spec is None:
        spec = request["AlgorithmSpecification"] = {}
    if isinstance(spec, dict):
        spec.setdefault("TrainingInputMode", "File")
        if "AlgorithmName" not in spec:
            spec.setdefault("TrainingImage", "${image_uri}")
    return request


def build_request(job: Job) -> dict:
    """The CreateTrainingJob keyword arguments for ``job`` (its config has the macros filled)."""
    from ._validate import OWN_KEYS, check_request

    config = {k: v for k, v in (job.config or {}).items() if k not in OWN_KEYS and k != "TrainingJobName"}
    request = {"TrainingJobName": job_name(job.run.id), **apply_defaults(config)}
    spec = request["AlgorithmSpecification"]
    if job.image_uri and (not spec.get("TrainingImage") or "${" in str(spec.get("TrainingImage"))):
        spec["TrainingImage"] = job.image_uri
    if "${" in str(spec.get("TrainingImage", "")):
        raise DispatchError(
            f"run {job.run.id} has no image to run: AlgorithmSpecification.TrainingImage is {spec['TrainingImage']!r}"
        )
    if not spec.get("ContainerEntrypoint") and not spec.get("ContainerArguments"):
        notebook = job.notebook or job.run.notebook
        if not notebook:
            raise DispatchError(f"run {job.run.id} names no notebook to run")
        spec["ContainerEntrypoint"] = list(ENTRYPOINT)
        spec["ContainerArguments"] = ["--notebook", notebook, "--output", f"{MODEL_DIR}/{OUTPUT_NAME}"]
    env = dict(request.get("Environment") or {})
    env.update(run_env(job))
    request["Environment"] = env
    request["Tags"] = _tags(request.get("Tags") or [], job)
    checked = check_request(request)
    for warning in (p for p in checked if p.severity == "warning"):
        log.warning("run %s: %s", job.run.id, warning)
    problems = [p for p in checked if p.severity == "error"]
    if problems:  # only what filling the macros and adding the run's identity can break
        raise DispatchError("; ".join(str(p) for p in problems))
    return request


def run_env(job: Job) -> dict[str, str]:
    """The run's identity for the container (core.identity), never anything of the agent's own."""
    run = job.run
    env = run_identity(
        run_id=run.id,
        entity=job.queue.entity,
        queue=job.queue.path,
        author=run.author,
        output=f"{MODEL_DIR}/{OUTPUT_NAME}",
    )
    env["LAUNCH_PARAMETERS"] = json.dumps(run.parameters or {}, sort_keys=True, default=str)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_tags(job: Job) -> list[dict]:
    """The tags that tie a training job to its run."""
    return [
        {"Key": TAG_RUN_ID, "Value": job.run.id},
        {"Key": TAG_QUEUE, "Value": job.queue.path},
        {"Key": TAG_AUTHOR, "Value": job.run.author},
        {"Key": TAG_ENTITY, "Value": job.queue.entity},
    ]


def _tags(user: list, job: Job) -> list[dict]:
    ours = run_tags(job)
    taken = {t["Key"] for t in ours}
    kept = [t for t in user if not (isinstance(t, dict) and t.get("Key") in taken)]
    return kept + ours
