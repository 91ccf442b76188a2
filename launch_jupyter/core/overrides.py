"""Per-run overrides from the command line: ``--resource-arg``/``--set-var`` assignments,
``-p`` notebook parameters, and the merge of an override over a queue config.

Values are typed as a queue config's YAML types its plain scalars (``queue_config.plain_scalar``,
the YAML 1.2 core schema): ``3`` is a number, ``true``/``false`` are booleans, ``null`` is None;
``[...]``/``{...}`` are a list/mapping (JSON or YAML flow style), ``'...'``/``"..."`` force text,
an empty value is the empty text, and anything else is the text as written (so a value such as
``"a: b"`` stays one string and can never add structure).
"""

from __future__ import annotations

import copy
import keyword
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .keys import format_path, join_path, kind_of
from .queue_config import load_yaml, plain_scalar

if TYPE_CHECKING:
    from .model import Problem

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"\[([0-9]+)\]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT_HELP = "expected PATH=VALUE, e.g. spec.worker_pool_specs[0].machine_spec.machine_type=a2-highgpu-1g"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``override`` over ``base``.

    Mappings merge key by key. A list is replaced by an override list, except when the
    override gives list positions as a mapping ``{0: {...}}`` (what ``parse_assignment`` makes
    of ``worker_pool_specs[0]...``): then those items are merged one by one, and the position
    just past the end appends a new item.
    """
    return _merge_mapping(base, override, "")


def _merge_mapping(base: dict[str, Any], override: dict[str, Any], path: str) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, new in override.items():
        key_path = join_path(path, str(key))
        merged[key] = _merge_value(merged.get(key), new, key_path, key in merged)
    return merged


def _merge_value(current: Any, new: Any, path: str, present: bool) -> Any:
    if isinstance(current, list) and _is_stored_positions(new):
        # Positions that went through JSON (the store) come back as "0", "1", ...
        new = {int(key): value for key, value in new.items()}
    if _is_positions(new):
        if isinstance(current, list):
            return _merge_list(current, new, path)
        if present and current is not None:
            raise ConfigError(f"list positions are given, but the config holds {kind_of(current)} here", path)
        return _materialize(new, path)
    if isinstance(new, dict) and isinstance(current, dict):
        return _merge_mapping(current, new, path)
    return _materialize(new, path)


def _merge_list(current: list[Any], positions: dict[int, Any], path: str) -> list[Any]:
    merged = copy.deepcopy(current)
    for index in sorted(positions):
        item_path = join_path(path, index)
        if index < len(merged):
            merged[index] = _merge_value(merged[index], positions[index], item_path, True)
        elif index == len(merged):
            merged.append(_materialize(positions[index], item_path))
        else:
            raise ConfigError(
                f"position [{index}] is past the end of the list ({len(current)} item(s); positions start at 0)",
                item_path,
            )
    return merged


def _is_positions(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(key, int) and not isinstance(key, bool) for key in value)
    )


def _is_stored_positions(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(key, str) and key.isdigit() for key in value)


def _materialize(value: Any, path: str) -> Any:
    """A deep copy with position mappings turned into lists (positions 0..n-1 in full)."""
    if _is_positions(value):
        if sorted(value) != list(range(len(value))):
            raise ConfigError(
                f"list positions {sorted(value)} leave gaps; a new list must give positions 0 to {len(value) - 1}",
                path,
            )
        return [_materialize(value[index], join_path(path, index)) for index in range(len(value))]
    if isinstance(value, dict):
        return {key: _materialize(item, join_path(path, str(key))) for key, item in value.items()}
    if isinstance(value, list):
        return [_materialize(item, join_path(path, index)) for index, item in enumerate(value)]
    return value


def parse_assignment(text: str, flag: str = "--resource-arg") -> tuple[list[str | int], Any]:
    """``"a.b[0].c=v"`` → ``(["a", "b", 0, "c"], typed v)``; bad syntax names ``flag`` and the text."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise ConfigError(f"{flag} {text!r}: {_ASSIGNMENT_HELP}")
    if not key.strip():
        raise ConfigError(f"{flag} {text!r}: the key path before = is empty; {_ASSIGNMENT_HELP}")
    path = _parse_path(key.strip())
    if path is None:
        raise ConfigError(
            f'{flag} {text!r}: "{key.strip()}" is not a key path; join keys with "." '
            f"and write list positions as [0], e.g. spec.worker_pool_specs[0].replica_count=2"
        )
    return path, parse_value(raw, f"{flag} {text!r}")


def _parse_path(key: str) -> list[str | int] | None:
    parts: list[str | int] = []
    pos = 0
    while pos < len(key):
        if key[pos] == "[":
            match = _INDEX.match(key, pos)
            if match is None or not parts:
                return None
            parts.append(int(match.group(1)))
        else:
            if parts:
                if key[pos] != ".":
                    return None
                pos += 1
            match = _KEY.match(key, pos)
            if match is None:
                return None
            parts.append(match.group(0))
        pos = match.end()
    return parts or None


def parse_value(text: str, where: str = "value") -> Any:
    """Type one command-line value (see the module docstring); ``where`` names it in errors."""
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        return _parse_collection(stripped, where)
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        return _parse_quoted(stripped, where)
    if not stripped:
        return ""  # "x=" sets the empty text (where a YAML file's "x:" would be null)
    return plain_scalar(stripped)


def _parse_collection(text: str, where: str) -> Any:
    try:
        value = load_yaml(text, where)  # JSON first, then YAML flow style, both with size limits
    except ConfigError as err:
        raise ConfigError(f"{err}; a value starting with [ or {{ must be a JSON or YAML list/mapping") from None
    if not isinstance(value, (list, dict)):
        raise ConfigError(f"{where}: a value starting with [ or {{ must be a JSON or YAML list/mapping")
    return value


def _parse_quoted(text: str, where: str) -> str:
    value = load_yaml(text, where)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: a quoted value must be one piece of text")
    return value


def assignments_to_dict(items: Iterable[str], flag: str) -> dict[str, Any]:
    """Many ``PATH=VALUE`` assignments → one nested override for ``deep_merge`` (the last one wins)."""
    return _nest([(item, *parse_assignment(item, flag)) for item in items], flag)


def _nest(assignments: Iterable[tuple[str, list[str | int], Any]], flag: str) -> dict[str, Any]:
    """(text, path, value) assignments → one nested override (the last one wins)."""
    result: dict[str, Any] = {}
    for item, path, value in assignments:
        node: dict[Any, Any] = result  # below the top, list positions are int keys
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"{flag} {item!r}: {format_path(path[: depth + 1])} was already set to "
                    f"{child!r} by an earlier {flag}; it cannot also hold keys"
                )
            node = child
        node[path[-1]] = value
    return result


def nest_key_paths(overrides: Mapping[str, Any], what: str = "resource_args") -> dict[str, Any]:
    """Overrides whose top-level keys may be key paths (``{"spec.worker_pool_specs[0].machine_spec.
    machine_type": "n1-highmem-8"}``, what a form sends) → the nested override ``deep_merge`` takes;
    nested keys pass as they are. A key that is not a path is refused naming it."""
    assignments: list[tuple[str, list[str | int], Any]] = []
    for key, value in overrides.items():
        text = str(key)
        if "." in text or "[" in text:
            path = _parse_path(text)
            if path is None:
                raise ConfigError(
                    f'"{text}" is not a key path; join keys with "." and write list positions as [0]', path=what
                )
        else:
            path = [text]
        assignments.append((text, path, copy.deepcopy(value)))
    return _nest(assignments, what)


def parse_parameters(items: Sequence[str]) -> dict[str, Any]:
    """Notebook parameters from repeated ``-p``: each item is ``key=value`` or ``key value``.

    Values are typed as above, plus papermill's ``None``; the last ``-p`` for a key wins.
    """
    parameters: dict[str, Any] = {}
    for item in items:
        key, value = _split_parameter(item)
        if value.strip() == "None":  # papermill's spelling of null
            parameters[key] = None
        else:
            parameters[key] = parse_value(value, f"-p {item!r}")
    return parameters


def _split_parameter(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if sep and _is_name(key.strip()):
        return key.strip(), value
    parts = item.strip().split(None, 1)
    if len(parts) == 2 and _is_name(parts[0]):
        return parts[0], parts[1]
    name = (key if sep else parts[0] if parts else "").strip()
    if not name:
        problem = "the parameter has no name"
    elif not (sep or len(parts) == 2):
        problem = "the parameter has no value"
    elif keyword.iskeyword(name):
        problem = f'"{name}" is a Python keyword, not a name a notebook can assign'
    else:
        problem = f'"{name}" is not a Python identifier'
    raise ConfigError(f"-p {item!r}: {problem}; write -p name=value or -p name value, e.g. -p lr=0.1")


def _is_name(text: str) -> bool:
    return bool(_IDENTIFIER.fullmatch(text)) and not keyword.iskeyword(text)


def parameter_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a notebook parameter (None when it can): it is injected as code."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or not name.isascii():
        return f"{name!r} is not a Python identifier (letters, digits and _, not starting with a digit)"
    if keyword.iskeyword(name):
        return f'"{name}" is a Python keyword, not a name a notebook can assign'
    return None


# What a submitter may steer in ``builder:`` for one run: the queue owns the kaniko image, the
# network and the destination (they run with the agent's credentials), W&B's model of resource
# args limited to the runner's settings.
RUN_BUILDER_KEYS = ("base_image", "accelerator")


def run_override_problems(resource_args: dict[str, Any]) -> list[Problem]:
    """A Problem for each ``builder.*`` key a per-run override may not set."""
    from .model import Problem

    if "budget" in resource_args:
        return [Problem("budget", "is the queue's to set, not a run's; edit the queue, or ask its owner")]
    builder = resource_args.get("builder")
    if builder is None:
        return []
    if not isinstance(builder, dict):
        return [Problem("builder", "a run may only set builder.base_image")]
    return [
        Problem(
            f"builder.{key}",
            "is the queue's to set, not a run's (a run may only set builder.base_image); "
            "edit the queue, or ask its owner",
        )
        for key in builder
        if key not in RUN_BUILDER_KEYS
    ]
