"""Offline check of a kubernetes queue config (a ``batch/v1`` Job manifest, W&B Launch's shape) by
building the official ``kubernetes`` client's model objects: its models (pydantic, ``extra=forbid``)
name every unknown, missing or mistyped field, which become key paths here."""

from __future__ import annotations

import copy
from typing import Any

from ...core.keys import did_you_mean
from ...core.model import Problem

OWN_KEYS = {
    "namespace": "the namespace the Job runs in (default: the kubeconfig context's, else default)",
    "context": "a kubeconfig context (default: the current one; in a pod: the in-cluster config)",
    "output": (
        "where the executed notebook goes, <output>/<run id>/output.ipynb: a gs:// or s3:// folder (uploaded from"
        " the pod, fetched back into the run folder) or a folder under a volume the container mounts"
    ),
}
PLACEHOLDER = "<REQUIRED>"
OUTPUT_RULE = "must be gs://..., s3://... or a path under a mounted volume"
QUANTITY_MAPS = ("limits", "requests")  # resource quantities: int-or-string in the API, str in the client


def manifest_of(config: dict) -> dict:
    """The Job manifest of a queue config: without our own keys, ``apiVersion``/``kind`` filled,
    numeric resource quantities as strings (the API takes ``cpu: 1``; the client types it str)."""
    manifest = {k: copy.deepcopy(v) for k, v in config.items() if k not in OWN_KEYS}
    manifest.setdefault("apiVersion", "batch/v1")
    manifest.setdefault("kind", "Job")
    _quantities(manifest)
    return manifest


def _quantities(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in QUANTITY_MAPS and isinstance(value, dict):
                for name, amount in value.items():
                    if isinstance(amount, (int, float)) and not isinstance(amount, bool):
                        value[name] = str(amount)
            else:
                _quantities(value)
    elif isinstance(node, list):
        for item in node:
            _quantities(item)


def validate_config(config: Any) -> list[Problem]:
    """Every problem with a kubernetes queue config, each with its key path."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        return [Problem("", "a kubernetes queue config must be a Job manifest (a mapping with metadata, spec)")]
    problems = []
    for key in OWN_KEYS:
        value = config.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append(Problem(key, f"must be a string: {OWN_KEYS[key]}"))
    manifest = manifest_of(config)
    problems += output_problems(config.get("output"), manifest)
    if manifest.get("apiVersion") != "batch/v1":
        problems.append(Problem("apiVersion", f"must be batch/v1 (is {manifest.get('apiVersion')!r})"))
    if manifest.get("kind") != "Job":
        problems.append(Problem("kind", f"must be Job (is {manifest.get('kind')!r})"))
    if not isinstance(manifest.get("spec"), dict):
        manifest["spec"] = {"template": {"spec": {"containers": [{"name": "main", "image": "${image_uri}"}]}}}
    problems += model_problems(manifest, "V1Job")
    containers = (((manifest.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    if isinstance(containers, list) and not containers:
        problems.append(
            Problem("spec.template.spec.containers", "needs one container (the notebook runs in the first)")
        )
    return problems


def output_problems(output: Any, manifest: dict) -> list[Problem]:
    """``output`` (absent is allowed: the notebook then stays in the pod) must be a bucket folder the
    pod uploads to, or a path under one of the first container's ``volumeMounts``."""
    if not isinstance(output, str) or not output.strip():
        return []
    if output.strip() == PLACEHOLDER:
        return [Problem("output", f"is still the placeholder {PLACEHOLDER}: fill it in ({OUTPUT_RULE})")]
    for scheme in ("gs://", "s3://"):
        if output.startswith(scheme):
            bucket = output[len(scheme) :].partition("/")[0]
            if bucket:
                return []
            return [Problem("output", f"{OUTPUT_RULE} ({output!r} names no bucket)")]
    mounts = mount_paths(manifest)
    if output.startswith("/") and any(_under(output, m) for m in mounts):
        return []
    where = f"the container mounts {', '.join(sorted(mounts))}" if mounts else "the container mounts no volume"
    return [Problem("output", f"{OUTPUT_RULE} (got {output!r}; {where})")]


def mount_paths(manifest: dict) -> list[str]:
    """The ``mountPath`` of each of the first container's volume mounts."""
    containers = (((manifest.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    first = containers[0] if isinstance(containers, list) and containers and isinstance(containers[0], dict) else {}
    mounts = first.get("volumeMounts") or []
    return [str(m["mountPath"]) for m in mounts if isinstance(m, dict) and isinstance(m.get("mountPath"), str)]


def _under(path: str, folder: str) -> bool:
    import posixpath

    path, folder = posixpath.normpath(path), posixpath.normpath(folder)
    return folder == "/" or path == folder or path.startswith(folder.rstrip("/") + "/")


def model_problems(data: dict, model: str) -> list[Problem]:
    """``data`` built as the client's ``model`` (e.g. ``V1Job``, ``V1Deployment``); each error as a
    Problem at its key path."""
    from kubernetes import client  # lazy: the client's models are large
    from pydantic import ValidationError

    klass = getattr(client, model)
    problems = python_names(data, klass)
    try:
        klass.model_validate(data)
    except ValidationError as err:
        problems += [_problem(klass, e) for e in err.errors()]
    return problems


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(klass: Any, error: Any) -> Problem:  # a pydantic ErrorDetails
    path = _path(error["loc"])
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        names = _names_at(klass, error["loc"][:-1])
        key = str(error["loc"][-1])
        return Problem(path, f'"{key}" is not a field here{did_you_mean(key, names, None)}')
    if kind == "missing":
        return Problem(path, "is required")
    return Problem(path, f"{error.get('msg', 'is not valid')} (got {error.get('input')!r})"[:300])


def _names_at(klass: Any, loc: tuple) -> list[str]:
    """The field names (camelCase, as in a manifest) of the model at ``loc`` under ``klass``."""
    current = klass
    for part in loc:
        if isinstance(part, int):
            continue
        field = _field(current, str(part))
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {}) or {}
    return [_wire_name(name, f) for name, f in fields.items()]


def _wire_name(name: str, field: Any) -> str:
    """A field's name in a manifest (camelCase, the API's JSON name)."""
    return field.serialization_alias or field.alias or name


def _field(model: Any, key: str) -> Any:
    for name, field in (getattr(model, "model_fields", {}) or {}).items():
        if key in (name, _wire_name(name, field)):
            return field
    return None


def python_names(data: Any, model: Any, path: str = "") -> list[Problem]:
    """Keys written as the client's Python attribute names (``restart_policy``): the client takes
    them, the API server does not (its JSON names are camelCase)."""
    problems: list[Problem] = []
    if isinstance(data, list):
        for i, item in enumerate(data):
            problems += python_names(item, model, f"{path}[{i}]")
        return problems
    if not isinstance(data, dict) or not hasattr(model, "model_fields"):
        return problems
    for key, value in data.items():
        field = _field(model, str(key))
        if field is None:
            continue
        where = f"{path}.{key}" if path else str(key)
        wire = _wire_name(str(key), field)
        if key != wire:
            problems.append(Problem(where, f'"{key}" is the Python client attribute; did you mean "{wire}"?'))
        inner = _model_in(field.annotation)
        if inner is not None:
            problems += python_names(value, inner, where)
    return problems


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside ``Optional[List[Model]]``, ``Dict[str, Model]`` and the like."""
    import typing

    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
