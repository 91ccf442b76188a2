"""Offline check of a sagemaker queue config against botocore's own service model for
``CreateTrainingJob``: every member name, required member, type, enum (instance types, input
modes…), min/max length, count and value, and the patterns Python's ``re`` can read. Nothing here
is a hand-written list of SageMaker's rules: they are read from the installed botocore.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ...core.keys import did_you_mean
from ...core.model import Problem

OPERATION = "CreateTrainingJob"
OWN_KEYS = {  # launch_jupyter's own keys, beside the CreateTrainingJob arguments
    "region": "the AWS region the job runs in (else environment.region, else AWS_REGION)",
    "profile": "a profile of ~/.aws/config (else the default credentials chain)",
}
SET_BY_US = ("TrainingJobName",)  # derived from the run id (idempotent create): not the queue's
PLACEHOLDER = "<REQUIRED>"


@functools.lru_cache(maxsize=1)
def input_shape() -> Any:
    """botocore's input shape for CreateTrainingJob (the service model ships with botocore)."""
    import botocore.session  # lazy: botocore loads its JSON models on first use

    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model(OPERATION).input_shape


def validate_config(config: Any) -> list[Problem]:
    """Every problem with a sagemaker queue config, each with its key path."""
    from ._request import apply_defaults

    if config is None:
        config = {}
    if not isinstance(config, dict):
        return [Problem("", "a sagemaker queue config must be a mapping of CreateTrainingJob arguments")]
    problems: list[Problem] = []
    for key in OWN_KEYS:
        value = config.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append(Problem(key, f"must be a string: {OWN_KEYS[key]}"))
    for key in SET_BY_US:
        if key in config:
            problems.append(
                Problem(
                    key,
                    "is set by launch_jupyter from the run id (so a restarted agent "
                    "finds the job instead of starting a second one); remove it",
                )
            )
    request = apply_defaults({k: v for k, v in config.items() if k not in OWN_KEYS and k not in SET_BY_US})
    request["TrainingJobName"] = "launch-validate"
    problems += check_shape(input_shape(), request, "")
    return problems + image_problems(request)


def check_request(request: dict) -> list[Problem]:
    """The filled request as it will be sent (names, env, tags included)."""
    return check_shape(input_shape(), request, "") + image_problems(request)


def image_problems(request: dict) -> list[Problem]:
    """A warning for a ``TrainingImage`` SageMaker is not documented to pull: it takes images from
    Amazon ECR, or from a private Docker registry only with
    ``TrainingImageConfig.TrainingRepositoryAccessMode: Vpc`` and the registry reachable from the
    job's ``VpcConfig`` (docs.aws.amazon.com/sagemaker/latest/APIReference/API_TrainingImageConfig.html,
    docs.aws.amazon.com/sagemaker/latest/dg/docker-containers-adapt-your-own-private-registry.html)."""
    from ...core.images import is_ecr_registry, parse_image

    spec = request.get("AlgorithmSpecification")
    if not isinstance(spec, dict):
        return []
    image = spec.get("TrainingImage")
    if not isinstance(image, str) or not image or "${" in image:
        return []  # filled per run (${image_uri}); checked again when the run is sent
    registry = parse_image(image)[0]
    if is_ecr_registry(registry):
        return []
    path = "AlgorithmSpecification.TrainingImage"
    image_config = spec.get("TrainingImageConfig")
    mode = image_config.get("TrainingRepositoryAccessMode") if isinstance(image_config, dict) else None
    if mode == "Vpc":
        if request.get("VpcConfig"):
            return []
        return [
            Problem(
                "VpcConfig",
                f"{image!r} is pulled from a private registry (TrainingRepositoryAccessMode: Vpc) through the"
                " job's VPC: set VpcConfig (subnets and security groups that reach the registry)",
                severity="warning",
            )
        ]
    return [
        Problem(
            path,
            f"{image!r} is outside Amazon ECR ({registry}); SageMaker pulls training images from ECR, or from a"
            " private registry in your VPC with AlgorithmSpecification.TrainingImageConfig."
            "TrainingRepositoryAccessMode: Vpc and VpcConfig. Push to ACCOUNT.dkr.ecr.REGION.amazonaws.com",
            severity="warning",
        )
    ]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_shape(shape: Any, value: Any, path: str) -> list[Problem]:
    """``value`` checked against the botocore ``shape``; ``path`` is its key path."""
    kind = shape.type_name
    checker = _CHECKS.get(kind)
    return checker(shape, value, path) if checker else []


def _structure(shape: Any, value: Any, path: str) -> list[Problem]:
    if not isinstance(value, dict):
        return [Problem(path, f"must be a mapping ({shape.name}), not {_kind(value)}")]
    problems = []
    members = shape.members
    for key, item in value.items():
        if key not in members:
            problems.append(Problem(_join(path, str(key)), _unknown(str(key), members, shape.name)))
            continue
        problems += check_shape(members[key], item, _join(path, key))
    for key in shape.required_members:
        if key not in value:
            problems.append(Problem(_join(path, key), f"is required ({shape.name} requires it)"))
    return problems


def _unknown(key: str, members: Any, where: str) -> str:
    return f'"{key}" is not a member of {where}{did_you_mean(key, members, None)}'


def _bounded(shape: Any, amount: float, path: str, least: str, most: str) -> list[Problem]:
    """The model's ``min``/``max`` for a length or a number; ``least`` and ``most`` word the problem
    (``{limit}``, ``{amount}``)."""
    meta = shape.metadata
    if "min" in meta and amount < meta["min"]:
        return [Problem(path, least.format(limit=meta["min"], amount=amount))]
    if "max" in meta and amount > meta["max"]:
        return [Problem(path, most.format(limit=meta["max"], amount=amount))]
    return []


def _sized(shape: Any, size: int, path: str, what: str) -> list[Problem]:
    return _bounded(
        shape,
        size,
        path,
        f"needs at least {{limit}} {what} (has {{amount}})",
        f"takes at most {{limit}} {what} (has {{amount}})",
    )


def _list(shape: Any, value: Any, path: str) -> list[Problem]:
    if not isinstance(value, list):
        return [Problem(path, f"must be a list ({shape.name}), not {_kind(value)}")]
    problems = _sized(shape, len(value), path, "items")
    for i, item in enumerate(value):
        problems += check_shape(shape.member, item, f"{path}[{i}]")
    return problems


def _map(shape: Any, value: Any, path: str) -> list[Problem]:
    if not isinstance(value, dict):
        return [Problem(path, f"must be a mapping ({shape.name}), not {_kind(value)}")]
    problems = _sized(shape, len(value), path, "entries")
    for key, item in value.items():
        where = _join(path, str(key))
        for problem in check_shape(shape.key, key, where):
            problems.append(Problem(where, f"key {key!r}: {problem.message}"))
        problems += check_shape(shape.value, item, where)
    return problems


def _string(shape: Any, value: Any, path: str) -> list[Problem]:
    if not isinstance(value, str):
        return [Problem(path, f"must be a string ({shape.name}), not {_kind(value)}")]
    if value.strip() == PLACEHOLDER:
        return [Problem(path, "is still the placeholder <REQUIRED>: fill it in")]
    if shape.enum and value not in shape.enum:
        hint = did_you_mean(value, shape.enum, None)
        listed = ", ".join(shape.enum[:8]) + (", …" if len(shape.enum) > 8 else "")
        return [Problem(path, f"{value!r} is not one of {shape.name}'s values ({listed}){hint}")]
    problems = _sized(shape, len(value), path, "characters")
    pattern = _pattern(shape.metadata.get("pattern"))
    if not problems and pattern is not None and "${" not in value and not pattern.fullmatch(value):
        problems.append(
            Problem(path, f"{value[:60]!r} does not match {shape.name}'s pattern {shape.metadata['pattern']}")
        )
    return problems


@functools.lru_cache(maxsize=512)
def _pattern(text: str | None) -> re.Pattern | None:
    """The model's pattern when Python's ``re`` reads it the same way (``\\p{L}`` classes it cannot)."""
    if not text or "\\p{" in text:
        return None
    try:
        return re.compile(text, re.DOTALL)
    except re.error:
        return None


def _integer(shape: Any, value: Any, path: str) -> list[Problem]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [Problem(path, f"must be an integer ({shape.name}), not {_kind(value)}")]
    return _ranged(shape, value, path)


def _number(shape: Any, value: Any, path: str) -> list[Problem]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [Problem(path, f"must be a number ({shape.name}), not {_kind(value)}")]
    return _ranged(shape, value, path)


def _ranged(shape: Any, value: float, path: str) -> list[Problem]:
    return _bounded(
        shape, value, path, "must be at least {limit} (is {amount})", "must be at most {limit} (is {amount})"
    )


def _boolean(shape: Any, value: Any, path: str) -> list[Problem]:
    if not isinstance(value, bool):
        return [Problem(path, f"must be true or false, not {_kind(value)}")]
    return []


def _timestamp(shape: Any, value: Any, path: str) -> list[Problem]:
    import datetime as _dt

    if not isinstance(value, (str, int, float, _dt.datetime)) or isinstance(value, bool):
        return [Problem(path, f"must be a timestamp, not {_kind(value)}")]
    return []


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


_CHECKS = {
    "structure": _structure,
    "list": _list,
    "map": _map,
    "string": _string,
    "integer": _integer,
    "long": _integer,
    "float": _number,
    "double": _number,
    "boolean": _boolean,
    "timestamp": _timestamp,
}
