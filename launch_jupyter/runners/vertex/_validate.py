"""Offline validation of a ``vertex`` queue config: required keys, snake_case, and unknown or
mistyped fields found against the installed SDK (``aiplatform_v1`` proto types and the
``CustomJob`` signatures), each problem naming its key path."""

from __future__ import annotations

import functools
import inspect
import re
import typing
from typing import Any

from ...core.errors import ConfigError
from ...core.keys import closest, is_camel_case, join_path, to_snake
from ...core.model import Problem
from ._api import supported_location
from ._images import vertex_pull_problem
from ._request import DISPLAY_NAME_MAX, ENV_MAX, MAX_LABELS, RUN_LABELS, SPEC_TO_RUN, known_macros

PLACEHOLDER = "<REQUIRED>"
MACRO = re.compile(r"\$\{[^}]*\}|\{\{[^}]*\}\}")  # ${image_uri} and {{var}}
DOLLAR_MACRO = re.compile(r"\$\{([^}]*)\}")
TEMPLATE_LEFT = re.compile(r"\{\{[^}]*\}\}")
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
# spec: CustomJob(...) arguments; run: submit(...) arguments; builder: the agent's per-queue
# builder overrides (checked by the agent, stripped before the runner sees the config).
TOP_LEVEL = ("spec", "run", "builder")
# Keys of the spec the runner fills itself; a config may not carry them.
SPEC_REFUSED = {"credentials": "credentials come from the agent config (environment.credentials)"}
# submit() arguments refused: the SDK resolves them through the process-global aiplatform.init
# config (CustomJob._get_experiment_and_run_resource_name builds aiplatform.Experiment(name) with
# no project, location or credentials), so a queue's job would use another project's experiment.
RUN_REFUSED = {
    "experiment": "Vertex AI Experiments are not set from the queue: the SDK would look the "
    "experiment up in the process-wide aiplatform.init project, not this queue's. Log "
    "to an experiment from the notebook (aiplatform.init(experiment=...) in a cell)",
    "experiment_run": "Vertex AI Experiments are not set from the queue: the SDK would look the "
    "run up in the process-wide aiplatform.init project, not this queue's. Log to "
    "an experiment from the notebook (aiplatform.start_run(...) in a cell)",
}
SECRET_REF = (
    "Vertex AI env vars have no secret reference (valueFrom/secretKeyRef is Kubernetes); "
    "give a plain value, or read the secret from Secret Manager in the notebook"
)


def validate_config(config: Any) -> list[Problem]:
    """Every problem in a vertex queue config (errors and warnings), each with its key path."""
    if not isinstance(config, dict):
        return [Problem("", f"a vertex config is a mapping with spec and run, not {_kind(config)}")]
    problems: list[Problem] = []
    for key in config:
        if key not in TOP_LEVEL:
            problems.append(_unknown(str(key), key, TOP_LEVEL))
    problems += _check_spec(config.get("spec"))
    if config.get("run") is not None:
        problems += _check_run(config["run"])
        problems += _check_spec_run_clash(config.get("spec"), config["run"])
    problems += _check_placeholders(config)
    return problems


def _check_placeholders(config: dict) -> list[Problem]:
    """Every ``${macro}`` is one we fill; no ``{{variable}}`` is left (the queue's declared
    template variables are filled before this check, so one left here is undeclared)."""
    problems: list[Problem] = []
    known = known_macros()
    for path, text in _strings(config, ""):
        for name in DOLLAR_MACRO.findall(text):
            if name not in known:
                problems.append(
                    Problem(
                        path,
                        f'unknown macro "${{{name}}}"; the known macros are: ' + ", ".join(f"${{{m}}}" for m in known),
                    )
                )
        for var in TEMPLATE_LEFT.findall(text):
            problems.append(
                Problem(
                    path,
                    f'"{var}" is not a declared template variable of this queue; '
                    "declare it (template variables) or remove it",
                )
            )
    return problems


def _strings(data: Any, path: str):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, join_path(path, str(key)))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _strings(item, join_path(path, i))
    elif isinstance(data, str):
        yield path, data


def _check_spec_run_clash(spec: Any, run: Any) -> list[Problem]:
    if not isinstance(spec, dict) or not isinstance(run, dict):
        return []
    problems = []
    for key in SPEC_TO_RUN:
        if key in spec and key in run and spec[key] != run[key]:
            problems.append(
                Problem(f"spec.{key}", f"spec.{key} ({spec[key]!r}) and run.{key} ({run[key]!r}) differ; give it once")
            )
    return problems


# --------------------------------------------------------------------------- spec


def _check_spec(spec: Any) -> list[Problem]:
    if spec is None:
        return [Problem("spec", "missing: a vertex config needs spec.worker_pool_specs and spec.staging_bucket")]
    if not isinstance(spec, dict):
        return [Problem("spec", f"expected a mapping of CustomJob arguments, got {_kind(spec)}")]
    allowed = {**spec_keys(), **{k: run_keys()[k] for k in SPEC_TO_RUN}}
    problems = _check_keys(
        "spec", spec, allowed, SPEC_REFUSED, "a CustomJob argument", ("worker_pool_specs", "staging_bucket", "labels")
    )
    problems += _check_pools(spec.get("worker_pool_specs"))
    problems += _check_bucket(spec)
    problems += _check_labels("spec.labels", spec.get("labels"))
    problems += _check_location(spec.get("location"))
    name = spec.get("display_name")
    if isinstance(name, str) and len(name) > DISPLAY_NAME_MAX and not MACRO.search(name):
        problems.append(
            Problem("spec.display_name", f"{len(name)} characters; Vertex AI allows at most {DISPLAY_NAME_MAX}")
        )
    return problems


def _check_pools(pools: Any) -> list[Problem]:
    path = "spec.worker_pool_specs"
    if pools is None:
        return [Problem(path, "missing: give at least one worker pool (machine_spec + container_spec)")]
    if not isinstance(pools, list) or not pools:
        return [Problem(path, f"must be a non-empty list of worker pools, got {_kind(pools)}")]
    problems: list[Problem] = []
    for i, pool in enumerate(pools):
        here = join_path(path, i)
        if not isinstance(pool, dict):
            problems.append(Problem(here, f"a worker pool is a mapping, got {_kind(pool)}"))
            continue
        if i > 0 and not pool:
            continue  # an empty placeholder pool (Vertex AI distributed training docs) is allowed
        if i > 0:
            problems.append(Problem(here, _ONE_MACHINE))
            continue
        if "machine_spec" not in pool:
            problems.append(Problem(join_path(here, "machine_spec"), "missing: every worker pool needs a machine_spec"))
        has = [k for k in ("container_spec", "python_package_spec") if k in pool]
        if not has:
            problems.append(
                Problem(join_path(here, "container_spec"), "missing: give container_spec (or python_package_spec)")
            )
        elif len(has) == 2:
            problems.append(Problem(here, "give container_spec or python_package_spec, not both"))
        problems += check_message(_v1().WorkerPoolSpec, pool, here)
        problems += _check_images(pool, here)
        problems += _check_pool_rules(pool, here)
    return problems


# Every replica of every pool would run the container's command: the notebook, writing one output.
_ONE_MACHINE = (
    "a notebook run executes on one machine: every replica of every pool would run the "
    "notebook and write the same output. Use one pool with replica_count: 1 (pools after "
    "the first may only be empty placeholders, {})"
)


def _check_pool_rules(pool: dict, path: str) -> list[Problem]:
    """What Vertex AI refuses server-side, and what would silently replace the notebook run."""
    problems: list[Problem] = []
    replicas = pool.get("replica_count")
    if replicas is None:
        problems.append(Problem(join_path(path, "replica_count"), "missing: set replica_count: 1"))
    elif isinstance(replicas, int) and not isinstance(replicas, bool) and replicas != 1:
        problems.append(Problem(join_path(path, "replica_count"), _ONE_MACHINE))
    machine = pool.get("machine_spec")
    if isinstance(machine, dict):
        accelerator = machine.get("accelerator_type")
        count = machine.get("accelerator_count")
        if accelerator not in (None, "", "ACCELERATOR_TYPE_UNSPECIFIED", 0) and not count:
            problems.append(
                Problem(
                    join_path(path, "machine_spec.accelerator_count"),
                    f"missing: {accelerator} needs accelerator_count (e.g. 1); Vertex AI "
                    "refuses an accelerator type without a count",
                )
            )
    container = pool.get("container_spec")
    if isinstance(container, dict):
        for key in ("command", "args"):
            if key in container:
                problems.append(
                    Problem(
                        join_path(join_path(path, "container_spec"), key),
                        f"the container's {key} is the notebook run (python -m "
                        "launch_jupyter.execute); a command of your own would replace it "
                        "and the notebook would never run. Remove it (put set-up steps in "
                        "the notebook, or in the image via builder.base_image)",
                    )
                )
        env = container.get("env")
        from ._request import run_env_names

        if isinstance(env, list) and len(env) + len(run_env_names()) > ENV_MAX:
            problems.append(
                Problem(
                    join_path(join_path(path, "container_spec"), "env"),
                    f"{len(env)} variables plus launch_jupyter's {len(run_env_names())}; "
                    f"Vertex AI allows at most {ENV_MAX}",
                )
            )
    return problems


def _check_bucket(spec: dict) -> list[Problem]:
    path = "spec.staging_bucket"
    bucket = spec.get("staging_bucket")
    if bucket is None or bucket == "":
        return [Problem(path, "missing: set a Cloud Storage bucket, e.g. gs://my-bucket")]
    if not isinstance(bucket, str):
        return [Problem(path, f"expected a gs:// URI or a bucket name, got {_kind(bucket)}")]
    if bucket.strip() == PLACEHOLDER:
        return [Problem(path, f"replace the {PLACEHOLDER} placeholder with your bucket, e.g. gs://my-bucket")]
    if MACRO.search(bucket):
        return []
    gs = bucket.startswith("gs://")
    name = bucket[5:].split("/", 1)[0] if gs else bucket
    if (not gs and "://" in bucket) or not BUCKET.fullmatch(name):
        return [Problem(path, f"{bucket!r} is not a gs:// URI or a valid bucket name")]
    base = spec.get("base_output_dir")
    if isinstance(base, str) and not base.startswith("gs://") and not MACRO.search(base):
        return [Problem("spec.base_output_dir", f"{base!r} must be a gs:// URI")]
    return []


def _check_labels(path: str, labels: Any) -> list[Problem]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [Problem(path, f"expected a mapping of label keys to values, got {_kind(labels)}")]
    problems = []
    if len(labels) + len(RUN_LABELS) > MAX_LABELS:
        problems.append(
            Problem(
                path,
                f"{len(labels)} labels plus launch_jupyter's {len(RUN_LABELS)}; Vertex AI allows at most {MAX_LABELS}",
            )
        )
    for key, value in labels.items():
        here = join_path(path, str(key))
        if str(key).startswith("launch-"):
            problems.append(Problem(here, "launch-* labels are set by launch_jupyter; choose another key"))
        elif not LABEL_KEY.fullmatch(str(key)):
            problems.append(
                Problem(here, "label keys start with a lowercase letter and use only a-z, 0-9, _ and - (max 63)")
            )
        elif isinstance(value, str) and MACRO.search(value):
            continue  # filled at dispatch, then made a valid label value
        elif not isinstance(value, str) or not LABEL_VALUE.fullmatch(value):
            problems.append(Problem(here, "label values are strings of a-z, 0-9, _ and - (max 63)"))
    return problems


def _check_location(location: Any) -> list[Problem]:
    if not isinstance(location, str) or MACRO.search(location):
        return []
    problem = supported_location(location)
    return [Problem("spec.location", problem)] if problem else []


# --------------------------------------------------------------------------- run


def _check_run(run: Any) -> list[Problem]:
    if not isinstance(run, dict):
        return [Problem("run", f"expected a mapping of CustomJob.submit arguments, got {_kind(run)}")]
    return _check_keys("run", run, run_keys(), RUN_REFUSED, "a CustomJob.submit/run argument")


# --------------------------------------------------------------------------- SDK signatures


@functools.lru_cache(maxsize=1)
def spec_keys() -> dict[str, Any]:
    """``CustomJob.__init__`` parameters of the installed SDK → their annotations."""
    from google.cloud import aiplatform  # lazy: heavy SDK import (≈2 s)

    return _params(aiplatform.CustomJob.__init__)


@functools.lru_cache(maxsize=1)
def run_keys() -> dict[str, Any]:
    """``CustomJob.submit`` and ``CustomJob.run`` parameters of the installed SDK."""
    from google.cloud import aiplatform  # lazy: heavy SDK import (≈2 s)

    return {**_params(aiplatform.CustomJob.run), **_params(aiplatform.CustomJob.submit)}


def _params(fn) -> dict[str, Any]:
    sig = inspect.signature(fn)
    return {n: p.annotation for n, p in sig.parameters.items() if n != "self"}


def _check_value(path: str, value: Any, annotation: Any) -> list[Problem]:
    """Check a spec/run value against the SDK's own type annotation."""
    if isinstance(value, str) and MACRO.fullmatch(value.strip()):
        return []  # a macro stands for any type until it is filled
    options = _options(annotation)
    if value is None or not options:
        return []
    for option in options:
        if _fits(value, option):
            return []
        problem = _check_proto_option(path, value, option)
        if problem is not None:
            return problem
    names = " or ".join(_type_name(o) for o in options)
    return [Problem(path, f"expected {names}, got {_kind(value)}")]


def _options(annotation: Any) -> list[Any]:
    if annotation is inspect.Parameter.empty:
        return []
    if typing.get_origin(annotation) is typing.Union:
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _fits(value: Any, option: Any) -> bool:
    if isinstance(option, typing.ForwardRef):
        return isinstance(value, str)  # e.g. 'aiplatform.Experiment': given by name in YAML
    origin = typing.get_origin(option) or option
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (str, dict, list):
        return isinstance(value, origin)
    return False


def _check_proto_option(path: str, value: Any, option: Any) -> list[Problem] | None:
    """For a proto type (enum or message): [] if it fits, problems if it is the right shape but
    wrong inside, None if this option does not apply."""
    import enum

    if isinstance(option, type) and issubclass(option, enum.Enum):
        if isinstance(value, str) and value in option.__members__:
            return []
        if isinstance(value, str):
            choices = ", ".join(option.__members__)
            return [Problem(path, f"unknown value {value!r}; choose one of: {choices}")]
        return None
    if isinstance(option, type) and hasattr(option, "meta") and isinstance(value, dict):
        return check_message(option, value, path)
    return None


def _type_name(option: Any) -> str:
    if isinstance(option, typing.ForwardRef):
        return "a name (string)"
    origin = typing.get_origin(option) or option
    return {
        bool: "true/false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a mapping",
        list: "a list",
    }.get(origin, getattr(origin, "__name__", str(origin)))


# --------------------------------------------------------------------------- proto walk


def _v1():
    from google.cloud import aiplatform_v1  # lazy: ≈0.8 s, only when a config is checked

    return aiplatform_v1


def check_message(cls: Any, data: Any, path: str) -> list[Problem]:
    """Build the proto-plus message ``cls`` from ``data`` field by field; every unknown or
    mistyped field becomes a problem at its key path."""
    if not isinstance(data, dict):
        return [Problem(path, f"expected a mapping ({cls.__name__}), got {_kind(data)}")]
    problems: list[Problem] = []
    fields = cls.meta.fields
    for key, value in data.items():
        here = join_path(path, str(key))
        field = fields.get(key)
        if field is None:
            if cls.__name__ == "EnvVar" and to_snake(str(key)) == "value_from":
                problems.append(Problem(here, SECRET_REF))
            else:
                problems.append(_unknown(here, key, list(fields), f"a {cls.__name__} field"))
            continue
        problems += _check_field(cls, key, field, value, here)
    return problems


def _check_field(cls: Any, key: str, field: Any, value: Any, path: str) -> list[Problem]:
    if isinstance(value, str) and MACRO.fullmatch(value.strip()):
        return []  # filled later; its type is checked when the template is
    descriptor = cls.meta.pb.DESCRIPTOR.fields_by_name[key]
    if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
        if not isinstance(value, dict):
            return [Problem(path, f"expected a mapping, got {_kind(value)}")]
        return _try_build(cls, key, value, path)
    if field.repeated:
        if not isinstance(value, list):
            return [Problem(path, f"expected a list, got {_kind(value)}")]
        problems: list[Problem] = []
        for i, item in enumerate(value):
            problems += _check_single(cls, key, field, item, join_path(path, i), repeated=True)
        return problems
    return _check_single(cls, key, field, value, path)


def _check_single(cls: Any, key: str, field: Any, value: Any, path: str, repeated: bool = False) -> list[Problem]:
    import proto

    if isinstance(value, str) and MACRO.fullmatch(value.strip()):
        return []
    message = field.message
    if message is not None and hasattr(message, "meta"):
        return check_message(message, value, path)
    if field.enum is not None:
        if isinstance(value, str) and value in field.enum.__members__:
            return []
        if isinstance(value, int) and not isinstance(value, bool) and value in set(field.enum):
            return []
        choices = ", ".join(field.enum.__members__)
        return [Problem(path, f"unknown value {value!r}; choose one of: {choices}")]
    kind = field.proto_type
    if kind == proto.ProtoType.BOOL and not isinstance(value, bool):
        return [Problem(path, f"expected true/false, got {_kind(value)}")]
    if kind != proto.ProtoType.BOOL and isinstance(value, bool):
        return [Problem(path, f"expected {_proto_kind(kind)}, got {_kind(value)}")]
    if kind == proto.ProtoType.STRING and not isinstance(value, str):
        return [Problem(path, f"expected a string, got {_kind(value)}")]
    if kind in _integer_kinds() and not isinstance(value, int):
        return [Problem(path, f"expected an integer, got {_kind(value)}")]
    if kind in (proto.ProtoType.DOUBLE, proto.ProtoType.FLOAT) and not isinstance(value, (int, float)):
        return [Problem(path, f"expected a number, got {_kind(value)}")]
    return _try_build(cls, key, [value] if repeated else value, path)


def _try_build(cls: Any, key: str, value: Any, path: str) -> list[Problem]:
    """Let the real proto type judge what the walk above does not."""
    if isinstance(value, str):
        value = MACRO.sub("x", value)
    try:
        cls(**{key: value})
    except (TypeError, ValueError, KeyError) as err:
        reason = str(err).split("Underlying error: ")[-1]
        return [Problem(path, f"{value!r} is not a valid {cls.__name__}.{key}: {reason}")]
    return []


@functools.lru_cache(maxsize=1)
def _integer_kinds() -> frozenset:
    import proto

    t = proto.ProtoType
    return frozenset(
        {t.INT32, t.INT64, t.UINT32, t.UINT64, t.SINT32, t.SINT64, t.FIXED32, t.FIXED64, t.SFIXED32, t.SFIXED64}
    )


def _proto_kind(kind: Any) -> str:
    import proto

    if kind in (proto.ProtoType.DOUBLE, proto.ProtoType.FLOAT):
        return "a number"
    if kind == proto.ProtoType.STRING:
        return "a string"
    return "an integer"


# --------------------------------------------------------------------------- images


def _check_images(pool: dict, path: str) -> list[Problem]:
    problems = []
    for spec_key, uri_key in (("container_spec", "image_uri"), ("python_package_spec", "executor_image_uri")):
        spec = pool.get(spec_key)
        uri = spec.get(uri_key) if isinstance(spec, dict) else None
        if isinstance(uri, str) and not MACRO.search(uri):
            problem = registry_problem(uri, join_path(join_path(path, spec_key), uri_key))
            if problem is not None:
                problems.append(problem)
    return problems


def registry_problem(uri: str, path: str) -> Problem | None:
    """Vertex pulls only from Artifact Registry or public registries (see _images)."""
    try:
        problem = vertex_pull_problem(uri)
    except ConfigError as err:
        return Problem(path, str(err))
    return Problem(path, problem[1], severity=problem[0]) if problem else None


# --------------------------------------------------------------------------- helpers


def _check_keys(
    section: str,
    given: dict,
    allowed: dict[str, Any],
    refused: dict[str, str],
    what: str,
    checked_apart: tuple[str, ...] = (),
) -> list[Problem]:
    """Each key of ``section``: refused (with the reason), unknown (``what`` it should be), or its
    value checked against the argument's type; the ``checked_apart`` keys have checks of their own."""
    problems: list[Problem] = []
    for key, value in given.items():
        path = join_path(section, str(key))
        if key in refused:
            problems.append(Problem(path, refused[key]))
        elif key not in allowed:
            problems.append(_unknown(path, key, allowed, what))
        elif key not in checked_apart:
            problems += _check_value(path, value, allowed[key])
    return problems


def _unknown(path: str, key: Any, choices, what: str = "a key") -> Problem:
    """An unknown key; a camelCase one gets its snake_case spelling only when that is a real key."""
    name = str(key)
    options = list(choices)
    snake = to_snake(name)
    if is_camel_case(name) and snake in options:
        return Problem(path, f'use "{snake}", not "{name}" (keys are snake_case)')
    guess = closest(snake if is_camel_case(name) else name, options)
    hint = f'; did you mean "{guess}"?' if guess else f"; expected one of: {', '.join(sorted(options))}"
    also = f' (nor is "{snake}")' if is_camel_case(name) else ""
    return Problem(path, f'unknown key "{name}": not {what}{also}{hint}')


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return f"{type(value).__name__} {value!r}"
