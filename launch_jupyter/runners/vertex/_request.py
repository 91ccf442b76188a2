"""From a Job to the ``CustomJob(...)`` and ``submit(...)`` arguments: macros, image, notebook
entrypoint, run identity env vars, labels and the run's output folder. Pure data, no SDK."""

from __future__ import annotations

import copy
import json

from ...core.model import Job, Run
from ...core.templates import fill_macros

LABEL_RUN_ID = "launch-run-id"
LABEL_QUEUE = "launch-queue"
LABEL_AUTHOR = "launch-author"
LABEL_ENTITY = "launch-entity"
RUN_LABELS = (LABEL_RUN_ID, LABEL_QUEUE, LABEL_AUTHOR, LABEL_ENTITY)
ENTRYPOINT = ["python", "-m", "launch_jupyter.execute"]
# Labels (CustomJob.labels docstring in aiplatform_v1, and cloud.google.com/resource-manager/docs/
# labels-overview): keys and values of lowercase letters, digits, "_" and "-" (international
# letters allowed), at most 63 characters, keys starting with a letter; at most 64 labels.
LABEL_MAX = 63
MAX_LABELS = 64
# CustomJob.display_name: "can be up to 128 characters long"; ContainerSpec.env: "Maximum limit is 100".
DISPLAY_NAME_MAX = 128
ENV_MAX = 100
# W&B Launch's macro names (its Vertex queue docs); ours are core.templates.MACROS.
WANDB_MACROS = ("entity_name", "run_name", "project_name")


def _label_char(c: str) -> bool:
    return (
        c in "_-"
        or (c.isascii() and (c.islower() or c.isdigit()))
        or (not c.isascii() and c.isalpha() and not c.isupper())
    )


def label_value(text: str, *, key: bool = False) -> str:
    """``text`` as a valid Vertex label value (or key): lowercased, other characters as ``-``, at
    most 63 characters. When that changed anything, a short hash of the original is appended, so
    two different inputs never become the same label ("a.b", "a_b" and "A_b" stay apart)."""
    import hashlib

    original = str(text)
    clean = "".join(c if _label_char(c) else "-" for c in original.lower())
    if key and not clean[:1].isalpha():
        clean = "k" + clean
    if clean == original and len(clean) <= LABEL_MAX:
        return clean
    suffix = hashlib.sha256(original.encode()).hexdigest()[:6]
    return f"{clean[: LABEL_MAX - 7]}-{suffix}"


def macro_values(job: Job, project: str | None = None) -> dict[str, str | None]:
    """The dispatch macros and their values for this job, W&B's names included."""
    return run_macro_values(job.run, job.queue.name, job.image_uri, job.notebook, project)


def run_macro_values(
    run: Run, queue: str, image_uri: str | None = None, notebook: str | None = None, project: str | None = None
) -> dict[str, str | None]:
    """The dispatch macros of a run (``macro_values`` of its job; for a run read back from the store,
    e.g. to find its folder in Cloud Storage)."""
    return {
        "image_uri": image_uri or run.image_uri or run.image,
        "run_id": run.id,
        "queue": queue,
        "entity": run.entity,
        "author": run.author,
        "notebook": notebook or run.notebook or None,
        "entity_name": run.entity,  # W&B: ${entity_name} = our ${entity}
        "run_name": run.name or run.id,  # W&B: the run's name
        "project_name": project,  # W&B: the GCP project the job runs in
    }


def known_macros() -> list[str]:
    """Every ``${name}`` a vertex queue config may use."""
    from ...core.templates import MACROS

    return sorted({*MACROS, *WANDB_MACROS})


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


def build_arguments(job: Job, project: str | None = None) -> tuple[dict, dict]:
    """``(spec, run)``: the CustomJob constructor and submit() keyword arguments for ``job``
    (without project/location/credentials, which the runner resolves per queue). Raises
    DispatchError (naming the key) for what only filling the macros can reveal."""
    config = fill_macros(copy.deepcopy(job.config or {}), macro_values(job, project))
    spec = dict(config.get("spec") or {})
    run = dict(config.get("run") or {})
    for key in ("project", "location", "credentials"):
        spec.pop(key, None)
    for key in SPEC_TO_RUN:  # W&B documents them under spec; they are submit() arguments
        if key in spec:
            run[key] = spec.pop(key)
    run.pop("sync", None)  # run()-only: submit() never blocks
    output = output_uri(job, spec)
    spec["base_output_dir"] = run_folder(spec, job.run.id)
    spec.setdefault("display_name", _display_name(job))
    spec["labels"] = _labels(spec.get("labels") or {}, job)
    env = run_env(job, gcs_fuse(output))
    pools = list(spec.get("worker_pool_specs") or [])
    if pools:  # the notebook runs in pool 0 only; later pools are empty placeholders
        pools[0] = _prepare_pool(pools[0], job, env, gcs_fuse(output))
    spec["worker_pool_specs"] = pools
    _check_filled(spec)
    return spec, run


# spec keys W&B's docs put in spec that are CustomJob.submit() arguments.
SPEC_TO_RUN = ("service_account", "network")


def _labels(user: dict, job: Job) -> dict[str, str]:
    labels = {label_value(k, key=True): label_value(v) for k, v in user.items()}
    labels.update(run_labels(job))
    return labels


def _check_filled(spec: dict) -> None:
    from ...core.errors import DispatchError

    name = str(spec.get("display_name") or "")
    if len(name) > DISPLAY_NAME_MAX:
        raise DispatchError(
            f"spec.display_name: {name[:40]!r}… is {len(name)} characters once the macros "
            f"are filled; Vertex AI allows at most {DISPLAY_NAME_MAX}"
        )
    if len(spec["labels"]) > MAX_LABELS:
        raise DispatchError(
            f"spec.labels: {len(spec['labels'])} labels with launch_jupyter's own "
            f"{len(RUN_LABELS)}; Vertex AI allows at most {MAX_LABELS}"
        )
    for i, pool in enumerate(spec.get("worker_pool_specs") or []):
        env = ((pool or {}).get("container_spec") or {}).get("env") or []
        if len(env) > ENV_MAX:
            raise DispatchError(
                f"spec.worker_pool_specs[{i}].container_spec.env: {len(env)} variables with "
                f"launch_jupyter's own; Vertex AI allows at most {ENV_MAX}"
            )


def run_labels(job: Job) -> dict[str, str]:
    """The labels that tie a Vertex job to its run (the run id label makes submit idempotent)."""
    return {
        LABEL_RUN_ID: label_value(job.run.id),
        LABEL_QUEUE: label_value(job.queue.name),
        LABEL_AUTHOR: label_value(job.run.author),
        LABEL_ENTITY: label_value(job.run.entity),
    }


def run_env(job: Job, output: str) -> list[dict]:
    """The run's identity for the container (``core.identity.run_identity``: the same names and
    meanings on every target, ``LAUNCH_QUEUE`` is ``entity/name``), plus its parameters; never
    anything from the agent's own environment."""
    from ...core.identity import run_identity

    run = job.run
    identity = run_identity(
        run_id=run.id, entity=job.queue.entity, queue=job.queue.path, author=run.author, output=output
    )
    env = [{"name": name, "value": value} for name, value in identity.items()]
    return env + [{"name": "LAUNCH_PARAMETERS", "value": json.dumps(run.parameters or {}, sort_keys=True)}]


def run_env_names() -> tuple[str, ...]:
    """The env vars every run's container gets from us (see run_env)."""
    return ("LAUNCH_RUN_ID", "LAUNCH_QUEUE", "LAUNCH_ENTITY", "LAUNCH_AUTHOR", "LAUNCH_OUTPUT", "LAUNCH_PARAMETERS")


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
