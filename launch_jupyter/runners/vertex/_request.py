"""From a Job to the ``CustomJob(...)`` and ``submit(...)`` arguments: macros, image, notebook
entrypoint, run identity env vars, labels and the run's output folder. Pure data, no SDK."""

from __future__ import annotations

import copy
import json
import re

from ...core.model import Job
from ...core.templates import fill_macros

LABEL_RUN_ID = "launch-run-id"
LABEL_QUEUE = "launch-queue"
LABEL_AUTHOR = "launch-author"
ENTRYPOINT = ["python", "-m", "launch_jupyter.execute"]


def label_value(text: str) -> str:
    """Vertex label rules: ≤63 chars of lowercase letters, digits, ``_`` and ``-``."""
    return re.sub(r"[^a-z0-9_-]", "-", str(text).lower())[:63]


def macro_values(job: Job) -> dict[str, str | None]:
    """The dispatch macros and their values for this job."""
    run = job.run
    return {
        "image_uri": job.image_uri or run.image_uri or run.image,
        "run_id": run.id,
        "queue": job.queue.name,
        "entity": run.entity,
        "author": run.author,
        "notebook": job.notebook or run.notebook or None,
    }


def run_folder(spec: dict, run_id: str) -> str:
    """The run's folder: ``<base_output_dir or <staging_bucket>/launch-runs>/<run_id>``."""
    bucket = str(spec.get("staging_bucket") or "").rstrip("/")
    staging = bucket if bucket.startswith("gs://") else f"gs://{bucket}"
    base = spec.get("base_output_dir") or f"{staging}/launch-runs"
    return f"{str(base).rstrip('/')}/{run_id}"


def gcs_fuse(uri: str) -> str:
    """``gs://b/x`` → ``/gcs/b/x``: how a Vertex container sees Cloud Storage."""
    return "/gcs/" + uri.removeprefix("gs://") if uri.startswith("gs://") else uri


def gcs_uri(path: str) -> str:
    """``/gcs/b/x`` → ``gs://b/x``."""
    return "gs://" + path.removeprefix("/gcs/") if path.startswith("/gcs/") else path


def output_uri(job: Job, spec: dict) -> str:
    """Where the executed notebook goes, as a gs:// URI."""
    given = job.output_path or ""
    if given.startswith(("gs://", "/gcs/")):
        return gcs_uri(given)
    return f"{run_folder(spec, job.run.id)}/output.ipynb"


def build_arguments(job: Job, default_location: str | None = None) -> tuple[dict, dict]:
    """``(spec, run)``: the CustomJob constructor and submit() keyword arguments for ``job``
    (without project/location/credentials, which the runner resolves per queue)."""
    config = fill_macros(copy.deepcopy(job.config or {}), macro_values(job))
    spec = dict(config.get("spec") or {})
    run = dict(config.get("run") or {})
    for key in ("project", "location", "credentials"):
        spec.pop(key, None)
    run.pop("sync", None)  # run()-only: submit() never blocks
    output = output_uri(job, spec)
    spec["base_output_dir"] = run_folder(spec, job.run.id)
    spec.setdefault("display_name", _display_name(job))
    spec["labels"] = {**(spec.get("labels") or {}), **run_labels(job)}
    env = run_env(job, gcs_fuse(output))
    spec["worker_pool_specs"] = [
        _prepare_pool(pool, job, env, gcs_fuse(output)) for pool in spec.get("worker_pool_specs") or []
    ]
    return spec, run


def run_labels(job: Job) -> dict[str, str]:
    """The labels that tie a Vertex job to its run (the run id label makes submit idempotent)."""
    return {
        LABEL_RUN_ID: label_value(job.run.id),
        LABEL_QUEUE: label_value(job.queue.name),
        LABEL_AUTHOR: label_value(job.run.author),
    }


def run_env(job: Job, output: str) -> list[dict]:
    """The run's identity for the container; never anything from the agent's own environment."""
    run = job.run
    return [
        {"name": "LAUNCH_RUN_ID", "value": run.id},
        {"name": "LAUNCH_QUEUE", "value": job.queue.name},
        {"name": "LAUNCH_ENTITY", "value": run.entity},
        {"name": "LAUNCH_AUTHOR", "value": run.author},
        {"name": "LAUNCH_OUTPUT", "value": output},
        {"name": "LAUNCH_PARAMETERS", "value": json.dumps(run.parameters or {}, sort_keys=True)},
    ]


def _display_name(job: Job) -> str:
    name = job.run.name or f"{job.queue.name}-{job.run.id}"
    return name[:128]


def _prepare_pool(pool: dict, job: Job, env: list[dict], output: str) -> dict:
    pool = dict(pool)
    spec = pool.get("container_spec")
    if not isinstance(spec, dict):
        return pool  # python_package_spec pools run their own module
    spec = dict(spec)
    if not spec.get("image_uri") and job.image_uri:
        spec["image_uri"] = job.image_uri
    if not spec.get("command") and not spec.get("args"):
        notebook = job.notebook or job.run.notebook
        spec["command"] = list(ENTRYPOINT)
        spec["args"] = ["--notebook", notebook, "--output", output]
    own = list(spec.get("env") or [])
    taken = {e.get("name") for e in own if isinstance(e, dict)}
    spec["env"] = own + [e for e in env if e["name"] not in taken]
    pool["container_spec"] = spec
    return pool
