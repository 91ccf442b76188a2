"""The agent config file ``launch-config.yaml``: dataclasses, paths, loading with precedence
defaults < file < env vars < CLI flags. Loading/validation is implemented below the dataclasses."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .keys import closest, kind_of, to_snake
from .model import Problem
from .queue_config import parse_config_text


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "launch_jupyter"


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "launch_jupyter"


def default_config_path() -> Path:
    return Path(os.environ.get("LAUNCH_JUPYTER_CONFIG") or config_home() / "launch-config.yaml")


def default_store_url() -> str:
    return os.environ.get("LAUNCH_JUPYTER_DB") or f"sqlite:///{data_home() / 'launch.db'}"


def current_user() -> str:
    """The person submitting: ``LAUNCH_JUPYTER_USER`` or the OS user."""
    import getpass

    return os.environ.get("LAUNCH_JUPYTER_USER") or getpass.getuser()


@dataclass
class BuilderConfig:
    type: str = "noop"  # docker | kaniko | noop
    destination: str | None = None  # repository without tag, e.g. us-docker.pkg.dev/p/r/img
    platform: str = "linux/amd64"
    build_context_store: str | None = None  # gs://bucket/prefix (kaniko)
    # The maintained kaniko fork, osscontainertools/kaniko (upstream GoogleContainerTools/kaniko was
    # archived in June 2025; Chainguard's fork publishes no public image), v1.28.2 pinned by digest.
    # The digest is that tag's index digest as pinned in a public third-party Dockerfile ("resolved
    # from ghcr.io on 2026-09-18"), not resolved by us (no network here): check it with
    # `crane digest ghcr.io/osscontainertools/kaniko:v1.28.2`, and again when you bump the version.
    kaniko_image: str = (
        "ghcr.io/osscontainertools/kaniko@sha256:4ea0e7301e3f6806de15150e4982c73018351e28c1dca6947bd3b4afb5ae3c60"
    )
    network: str | None = None  # docker build network mode (e.g. "host"); default: the engine's
    base_image: str | None = None  # overrides the generated Dockerfile's FROM


@dataclass
class RegistryConfig:
    uri: str | None = None


@dataclass
class EnvironmentConfig:
    type: str = "gcp"
    project: str | None = None
    region: str | None = None
    api_endpoint: str | None = None
    api_transport: str = "grpc"  # grpc | rest
    credentials: str = "default"  # default (ADC) | anonymous (emulators)
    logging_endpoint: str | None = None  # a Cloud Logging emulator; None: Google's Logging API
    # Seconds between the Cloud Logging reads that bring running Vertex jobs' cell progress (the
    # project's quota is 60 reads a minute, shared with `logs --follow` and other agents).
    progress_interval: float = 5.0


@dataclass
class AgentConfig:
    max_jobs: int = 1  # -1 = no limit
    entity: str | None = None
    queues: list[str] = field(default_factory=list)
    builder: BuilderConfig = field(default_factory=BuilderConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
    store: str = field(default_factory=default_store_url)
    poll_interval: float = 2.0
    lease_seconds: float = 30.0
    # A run bound to another host (local process, container) is failed once no agent there has held
    # it for this long; until then agents elsewhere leave it alone.
    host_grace_seconds: float = 86400.0
    # A run whose status cannot be read for this long (the target refuses or never answers) fails.
    status_timeout: float = 600.0
    data_dir: Path = field(default_factory=data_home)  # runs' working folders live under data_dir/runs


# ---------------------------------------------------------------------------------------------
# Loading: defaults < GOOGLE_CLOUD_* < file < LAUNCH_JUPYTER_* env vars < overrides (CLI flags).
# Each layer is checked on its own so an error names where the bad value came from: the key path
# and file, the environment variable, or the override's key path.
# ---------------------------------------------------------------------------------------------

_SECTIONS: dict[str, type] = {
    "builder": BuilderConfig,
    "registry": RegistryConfig,
    "environment": EnvironmentConfig,
}
# Environment variables that set a key; GOOGLE_CLOUD_* only fill what nothing else sets.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "LAUNCH_JUPYTER_DB": ("store",),
    "LAUNCH_JUPYTER_MAX_JOBS": ("max_jobs",),
    "LAUNCH_JUPYTER_ENTITY": ("entity",),
    "LAUNCH_JUPYTER_QUEUES": ("queues",),
    "LAUNCH_JUPYTER_POLL_INTERVAL": ("poll_interval",),
    "LAUNCH_JUPYTER_BUILDER": ("builder", "type"),
}
GOOGLE_ENV_VARS: dict[str, tuple[str, ...]] = {
    "GOOGLE_CLOUD_PROJECT": ("environment", "project"),
    "GOOGLE_CLOUD_REGION": ("environment", "region"),
}
BUILDER_GROUP = "launch_jupyter.builders"  # the entry-point group builders are found in (plugins too)
_QUEUE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class _Invalid(Exception):
    """A value is wrong; the layer that read it adds where it came from. ``sub`` extends
    the key path inside the value, e.g. ``[2]`` for the third queue."""

    def __init__(self, message: str, sub: str = ""):
        self.sub = sub
        super().__init__(message)


def load_agent_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AgentConfig:
    """Read ``launch-config.yaml`` and build the agent config.

    Precedence: defaults < file < environment variables < ``overrides`` (CLI flags, keys as in
    the file, sections as nested dicts; a None value means "not given"). The file is ``path``,
    else ``$LAUNCH_JUPYTER_CONFIG``, else the default path; only a missing default file is fine.
    ``GOOGLE_CLOUD_PROJECT``/``GOOGLE_CLOUD_REGION`` fill ``environment.project``/``region``
    when nothing else sets them. A relative ``data_dir`` in the file is relative to the file.
    """
    env = os.environ if env is None else env
    layers = [
        _env_layer(env, GOOGLE_ENV_VARS),
        _file_layer(path, env),
        _env_layer(env, ENV_VARS),
        _mapping_layer(overrides or {}, where="", from_text=True),
    ]
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in _SECTIONS:
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return _build(merged, env)


def _file_layer(path: str | Path | None, env: Mapping[str, str]) -> dict[str, Any]:
    from_env = path is None and bool(env.get("LAUNCH_JUPYTER_CONFIG"))
    file = Path(path or env.get("LAUNCH_JUPYTER_CONFIG") or _config_home(env) / "launch-config.yaml")
    file = file.expanduser()
    if not file.exists():
        if path is None and not from_env:
            return {}  # no file at the default place: defaults apply
        named = " (named by LAUNCH_JUPYTER_CONFIG)" if from_env else ""
        raise ConfigError(f"agent config file {file}{named} does not exist")
    if file.is_dir():
        raise ConfigError(f"agent config file {file} is a folder, not a file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read agent config file {file}: {err}") from None
    layer = _mapping_layer(parse_config_text(text, source=str(file)), where=f" (in {file})", from_text=False)
    data_dir = layer.get("data_dir")
    if isinstance(data_dir, Path) and not data_dir.is_absolute():
        layer["data_dir"] = file.parent / data_dir
    return layer


def _env_layer(env: Mapping[str, str], variables: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, key_path in variables.items():
        text = env.get(name)
        if text is None or not text.strip():
            continue  # an empty variable counts as unset
        try:
            value = _validator(key_path)(text.strip(), True)
        except _Invalid as err:
            raise ConfigError(str(err), path=name) from None
        if len(key_path) == 2:
            layer.setdefault(key_path[0], {})[key_path[1]] = value
        else:
            layer[key_path[0]] = value
    return layer


def _mapping_layer(data: Mapping[str, Any], *, where: str, from_text: bool) -> dict[str, Any]:
    """Check every key and value of a file or override mapping; None values are skipped."""
    layer: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key not in _TOP_KEYS:
            raise ConfigError(f"unknown key{_suggest(key, _TOP_KEYS)}{where}", path=key)
        if value is None:
            continue
        if key in _SECTIONS:
            layer[key] = _section(key, value, where, from_text)
            continue
        layer[key] = _checked((key,), value, where, from_text)
    return layer


def _section(name: str, data: Any, where: str, from_text: bool) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        example = {"builder": "type: docker", "registry": "uri: ..."}.get(name, "project: ...")
        raise ConfigError(f"must be a mapping of keys (e.g. '{example}'), not {kind_of(data)}{where}", path=name)
    keys = _field_names(_SECTIONS[name])
    section: dict[str, Any] = {}
    if name == "builder":
        data = accelerator_alias(data)
    for key, value in data.items():
        key = str(key)
        if key not in keys:
            hint = _suggest(key, [f"{name}.{k}" for k in keys], prefix=f"{name}.")
            raise ConfigError(f"unknown key{hint}{where}", path=f"{name}.{key}")
        if value is not None:
            section[key] = _checked((name, key), value, where, from_text)
    return section


def _checked(key_path: tuple[str, ...], value: Any, where: str, from_text: bool) -> Any:
    try:
        return _validator(key_path)(value, from_text)
    except _Invalid as err:
        raise ConfigError(f"{err}{where}", path=".".join(key_path) + err.sub) from None


def _suggest(key: str, valid: Iterable[str], prefix: str = "") -> str:
    """'; did you mean "max_jobs"?', looking in every section when nothing close is at this level."""
    full = list(valid)
    guess = closest(prefix + key, full) or closest(prefix + to_snake(key), full)
    if guess is None:
        by_leaf = {path.rsplit(".", 1)[-1]: path for path in _ALL_KEY_PATHS if "." in path}
        leaf = closest(key, by_leaf)
        guess = by_leaf[leaf] if leaf else None
    if guess is not None:
        return f'; did you mean "{guess}"?'
    return f"; valid keys: {', '.join(sorted(full))}"


def _build(merged: dict[str, Any], env: Mapping[str, str]) -> AgentConfig:
    sections = {name: cls(**merged.get(name, {})) for name, cls in _SECTIONS.items()}
    data_dir = merged.get("data_dir") or _data_home(env)
    plain = {k: v for k, v in merged.items() if k not in _SECTIONS and k not in ("data_dir", "store")}
    # The default store sits in data_dir, so moving data_dir moves the default database too.
    store = merged.get("store") or f"sqlite:///{data_dir / 'launch.db'}"
    return AgentConfig(**plain, **sections, data_dir=data_dir, store=store)


def _config_home(env: Mapping[str, str]) -> Path:
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "launch_jupyter"


def _data_home(env: Mapping[str, str]) -> Path:
    return Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "launch_jupyter"


def _field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


# --- value checks: (value, from_text) -> normalized value, or _Invalid --------------------------


def _whole_number(value: Any, from_text: bool) -> int:
    if from_text and isinstance(value, str) and re.fullmatch(r"[-+]?[0-9]+", value.strip()):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"must be a whole number, got {kind_of(value)} {value!r}")
    return value


def _max_jobs(value: Any, from_text: bool) -> int:
    try:
        number = _whole_number(value, from_text)
    except _Invalid:
        number = None
    if number is None or not (number >= 1 or number == -1):
        raise _Invalid(f"must be a whole number ≥ 1, or -1 for no limit; got {value!r}")
    return number


def _positive_number(value: Any, from_text: bool) -> float:
    if from_text and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _Invalid(f"must be a number of seconds > 0, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise _Invalid(f"must be a number of seconds > 0, got {value!r}")
    if value == float("inf"):
        raise _Invalid("must be a finite number of seconds")
    return float(value)


def _text(value: Any, from_text: bool) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be text, got {kind_of(value)} {value!r}")
    return value


def _optional_text(value: Any, from_text: bool) -> str | None:
    return _text(value, from_text).strip() or None


def _choice(*choices: str) -> Callable[[Any, bool], str]:
    def check(value: Any, from_text: bool) -> str:
        if value not in choices:
            hint = closest(str(value), choices)
            guess = f' (did you mean "{hint}"?)' if hint else ""
            raise _Invalid(f"must be one of {' | '.join(choices)}, got {value!r}{guess}")
        return str(value)

    return check


def _queues(value: Any, from_text: bool) -> list[str]:
    if from_text and isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise _Invalid(f"must be a list of queue names such as [my-queue, team/gpu], not {kind_of(value)}")
    names: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not _is_queue_ref(item):
            raise _Invalid(
                f'{item!r} is not a queue: write "name" or "entity/name"; a name has '
                "1-64 letters, digits, '.', '_' or '-'",
                sub=f"[{index}]",
            )
        if item not in names:
            names.append(item)
    return names


def _is_queue_ref(text: str) -> bool:
    entity, slash, name = text.partition("/")  # "name" or "entity/name"
    if slash and (not entity or any(c.isspace() for c in entity)):
        return False
    return bool(_QUEUE_NAME.fullmatch(name if slash else entity))


def _entity(value: Any, from_text: bool) -> str | None:
    text = _optional_text(value, from_text)
    if text is not None and ("/" in text or any(c.isspace() for c in text)):
        raise _Invalid(f"{text!r} is not an entity: no '/' or spaces")
    return text


def _destination(value: Any, from_text: bool) -> str | None:
    text = _optional_text(value, from_text)
    if text is None:
        return None
    if "://" in text:
        raise _Invalid(f"{text!r}: write the repository without a scheme, e.g. us-docker.pkg.dev/proj/repo/img")
    if "@" in text or ":" in text.rsplit("/", 1)[-1]:
        raise _Invalid(
            f"{text!r} carries a tag or digest; give the repository only "
            "(e.g. us-docker.pkg.dev/proj/repo/img): the tag is the job's content hash"
        )
    return text


def _gcs_uri(value: Any, from_text: bool) -> str | None:
    text = _optional_text(value, from_text)
    if text is not None and not re.fullmatch(r"gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/.*)?", text):
        raise _Invalid(f"{text!r} must be a gs:// URI, e.g. gs://my-bucket/launch-contexts")
    return text


def _store_url(value: Any, from_text: bool) -> str:
    # The URL may hold a password: never repeat it in a message.
    if not isinstance(value, str) or not _URL_SCHEME.match(value.strip()):
        raise _Invalid(
            "must be a SQLAlchemy URL such as sqlite:///path/to/launch.db or postgresql+psycopg://user@host/db"
        )
    return value.strip()


def _path(value: Any, from_text: bool) -> Path:
    if isinstance(value, Path):
        return value.expanduser()
    return Path(_text(value, from_text)).expanduser()


def _any(value: Any, from_text: bool) -> Any:
    return value


def _builder_type(value: Any, from_text: bool) -> str:
    """A builder is any entry point of the ``launch_jupyter.builders`` group (a plugin adds one
    without touching this module); the group is read only when a type is written."""
    from importlib.metadata import entry_points

    known = sorted({ep.name for ep in entry_points(group=BUILDER_GROUP)})
    return _choice(*known)(value, from_text)


_BY_KEY: dict[str, Callable[[Any, bool], Any]] = {
    "max_jobs": _max_jobs,
    "entity": _entity,
    "queues": _queues,
    "store": _store_url,
    "poll_interval": _positive_number,
    "lease_seconds": _positive_number,
    "data_dir": _path,
    "builder.type": _builder_type,
    "builder.destination": _destination,
    "builder.build_context_store": _gcs_uri,
    "environment.type": _choice("gcp"),
    "environment.api_transport": _choice("grpc", "rest"),
    "environment.credentials": _choice("default", "anonymous"),
}
# A field added to a dataclass later is checked by its annotation until it gets its own entry.
_BY_ANNOTATION: dict[str, Callable[[Any, bool], Any]] = {
    "str": _text,
    "str | None": _optional_text,
    "int": _whole_number,
    "float": _positive_number,
}


def _validator(key_path: tuple[str, ...]) -> Callable[[Any, bool], Any]:
    dotted = ".".join(key_path)
    if dotted in _BY_KEY:
        return _BY_KEY[dotted]
    owner = _SECTIONS[key_path[0]] if len(key_path) == 2 else AgentConfig
    annotation = {f.name: f.type for f in fields(owner)}[key_path[-1]]
    return _BY_ANNOTATION.get(str(annotation), _any)


_TOP_KEYS = _field_names(AgentConfig)
_ALL_KEY_PATHS = _TOP_KEYS + [f"{name}.{key}" for name, cls in _SECTIONS.items() for key in _field_names(cls)]


def accelerator_alias(builder: Mapping[str, Any]) -> dict[str, Any]:
    """W&B Launch's documented ``builder.accelerator.base_image`` (the GPU base image) is our
    ``builder.base_image``."""
    data = dict(builder)
    accelerator = data.pop("accelerator", None)
    if accelerator is None:
        return data
    if not isinstance(accelerator, Mapping) or set(accelerator) != {"base_image"}:
        raise ConfigError(
            "only accelerator.base_image is known here (W&B's GPU base image, the same as builder.base_image)",
            path="builder.accelerator",
        )
    if data.get("base_image") not in (None, accelerator["base_image"]):
        raise ConfigError(
            "builder.base_image and builder.accelerator.base_image differ; give one",
            path="builder.accelerator.base_image",
        )
    data["base_image"] = accelerator["base_image"]
    return data


def builder_problems(overrides: Mapping[str, Any]) -> list[Problem]:
    """Every problem of a queue's or run's ``builder:`` section: unknown keys (each with the closest
    valid one) and values, checked by the same rules as ``launch-config.yaml``'s builder section
    (a setting is refused wherever it is written, not first in the agent)."""
    known = [f.name for f in fields(BuilderConfig)]
    problems = []
    try:
        overrides = accelerator_alias(overrides)
    except ConfigError as err:
        return [Problem(err.path, str(err).removeprefix(f"{err.path}: "))]
    for key, value in overrides.items():
        if key not in known:
            hint = closest(key, known)
            suffix = f', did you mean "{hint}"?' if hint else ""
            problems.append(Problem(f"builder.{key}", f"unknown builder setting{suffix}"))
        elif value is not None:
            try:
                _validator(("builder", key))(value, False)
            except _Invalid as err:
                problems.append(Problem(f"builder.{key}{err.sub}", str(err)))
    problems += [p for p in _image_problems(overrides) if p.path not in {q.path for q in problems}]
    return problems


def _image_problems(builder: Mapping[str, Any]) -> list[Problem]:
    """Images land in a Dockerfile's FROM or a build step: each must parse as one reference."""
    from .images import parse_image

    problems = []
    for key in ("base_image", "kaniko_image"):
        value = builder.get(key)
        if value is None:
            continue
        try:
            parse_image(value if isinstance(value, str) else "")
        except ConfigError as err:
            problems.append(Problem(f"builder.{key}", str(err)))
    return problems


def builder_for(agent_config: AgentConfig, run_config: Mapping[str, Any]) -> BuilderConfig:
    """The agent's builder settings with a queue's or run's ``builder:`` overrides on top
    (``registry.uri`` is the destination when none is given)."""
    overrides = dict(run_config.get("builder") or {})
    problems = builder_problems(overrides)
    if problems:
        raise ConfigError(problems[0].message, path=problems[0].path)
    merged = replace(agent_config.builder, **accelerator_alias(overrides))
    if not merged.destination and agent_config.registry.uri:
        merged = replace(merged, destination=agent_config.registry.uri)
    return merged
