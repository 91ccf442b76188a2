"""Queue config templates: ``{{name}}`` template variables (filled at submit) and
``${image_uri}``-style macros (filled at dispatch).

Both are substituted on the parsed config, string by string, never on YAML text: a value can
never add keys or structure, and what a submitter passes stays one value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigError
from .keys import closest, join_path, kind_of
from .model import Problem, TemplateVar

MACROS = ("image_uri", "run_id", "queue", "entity", "author", "notebook")

_TEMPLATE_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")  # W&B: {{machine-type}}
_MACRO = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_INTEGER_TEXT = re.compile(r"[-+]?[0-9]+")


def fill_template_vars(
    config: dict[str, Any], variables: list[TemplateVar], values: Mapping[str, Any]
) -> dict[str, Any]:
    """A new config with every ``{{name}}`` replaced by the submitted value (or the default).

    A string that is exactly ``{{x}}`` becomes the typed value; inside a longer string the value
    is written as text. A value of None means "use the default".
    """
    resolved = resolve_template_values(variables, values)
    filled: dict[str, Any] = _map_strings(config, "", lambda text, path: _fill_vars(text, path, resolved))
    return filled


def resolve_template_values(variables: list[TemplateVar], values: Mapping[str, Any]) -> dict[str, Any]:
    """The typed, checked value of every declared variable; ConfigError names a bad one."""
    declared = {var.name: var for var in variables}
    for name in values:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            guess = closest(name, declared)
            hint = f'; did you mean "{guess}"?' if guess else ""
            raise ConfigError(f'template variable "{name}" is not declared by this queue (declared: {known}){hint}')
    resolved: dict[str, Any] = {}
    for var in variables:
        raw = values.get(var.name)
        if raw is None:
            raw = var.default
        if raw is None:
            raise ConfigError(
                f'template variable "{var.name}" needs a value and has no default; '
                f"pass it with --set-var {var.name}=VALUE"
            )
        resolved[var.name] = check_template_value(var, coerce_template_value(var, raw))
    return resolved


def sample_template_values(variables: list[TemplateVar]) -> dict[str, Any]:
    """An allowed value for every variable, to check a queue config before any submission.

    The default, else the first enum value, else the minimum, else 0 for numbers and the
    variable's name for text (so ``"{{bucket}}"`` stays a plausible bucket name).
    """
    values: dict[str, Any] = {}
    for var in variables:
        if var.default is not None:
            values[var.name] = var.default
        elif var.enum:
            values[var.name] = var.enum[0]
        elif var.type == "string":
            values[var.name] = var.name
        else:
            low = var.minimum if var.minimum is not None else 0
            values[var.name] = low if var.maximum is None else min(low, var.maximum)
    return values


def coerce_template_value(var: TemplateVar, value: Any) -> Any:
    """``value`` as the variable's type (text from the command line is converted)."""
    label = f'template variable "{var.name}"'
    if isinstance(value, str):
        value = value.strip() if var.type != "string" else value
    if var.type == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{label}: expected text, got {kind_of(value)} {value!r}")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{label}: expected {_a(var.type)}, got {kind_of(value)} {value!r}")
    if var.type == "integer":
        return _to_integer(value, label)
    return _to_number(value, label)


def _to_integer(value: str | int | float, label: str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        return int(value)
    raise ConfigError(f"{label}: expected a whole number, got {value!r}")


def _to_number(value: str | int | float, label: str) -> int | float:
    if isinstance(value, str):
        if _INTEGER_TEXT.fullmatch(value):
            return int(value)
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{label}: expected a number, got {value!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{label}: expected a finite number, got {value!r}")
    return value


def check_template_value(var: TemplateVar, value: Any) -> Any:
    """``value`` unchanged when it is within the variable's bounds and enum; else a ConfigError."""
    label = f'template variable "{var.name}"'
    if var.minimum is not None and value < var.minimum:
        raise ConfigError(f"{label}: {value} is below minimum {var.minimum}")
    if var.maximum is not None and value > var.maximum:
        raise ConfigError(f"{label}: {value} is above maximum {var.maximum}")
    if var.enum is not None and value not in var.enum:
        allowed = ", ".join(str(item) for item in var.enum)
        raise ConfigError(f"{label}: {value!r} is not one of the allowed values: {allowed}")
    return value


def fill_macros(config: dict[str, Any], values: Mapping[str, str | None]) -> dict[str, Any]:
    """A new config with ``${name}`` replaced where ``values[name]`` is given (not None).

    Macros without a value, and unknown ``${foo}``, are left as they are.
    """

    def fill(text: str, path: str) -> str:
        def replace(match: re.Match[str]) -> str:
            value = values.get(match.group(1))
            return match.group(0) if value is None else str(value)

        return _MACRO.sub(replace, text)

    filled: dict[str, Any] = _map_strings(config, "", fill)
    return filled


def find_template_vars(config: dict[str, Any]) -> set[str]:
    """Names of every ``{{name}}`` in the config's strings."""
    return {name for text in _strings(config) for name in _TEMPLATE_VAR.findall(text)}


def check_template_usage(config: dict[str, Any], variables: list[TemplateVar]) -> list[Problem]:
    """A Problem for each ``{{name}}`` used in the config but not declared (for queue create/edit)."""
    declared = {var.name for var in variables}
    problems: list[Problem] = []

    def check(text: str, path: str) -> str:
        for name in _TEMPLATE_VAR.findall(text):
            if name not in declared:
                problems.append(Problem(path, _undeclared(name, declared)))
        return text

    _map_strings(config, "", check)
    return problems


def _fill_vars(text: str, path: str, resolved: Mapping[str, Any]) -> Any:
    whole = _TEMPLATE_VAR.fullmatch(text)
    if whole:
        return _lookup(whole.group(1), path, resolved)
    return _TEMPLATE_VAR.sub(lambda m: str(_lookup(m.group(1), path, resolved)), text)


def _lookup(name: str, path: str, resolved: Mapping[str, Any]) -> Any:
    if name not in resolved:
        raise ConfigError(_undeclared(name, set(resolved)), path=path)
    return resolved[name]


def _undeclared(name: str, declared: set[str]) -> str:
    known = ", ".join(sorted(declared)) or "none"
    return f'"{{{{{name}}}}}" is not a template variable of this queue (declared: {known})'


def _map_strings(data: Any, path: str, fn: Callable[[str, str], Any]) -> Any:
    """A copy of ``data`` with ``fn(text, key_path)`` applied to every string value (not keys)."""
    if isinstance(data, dict):
        return {key: _map_strings(value, join_path(path, str(key)), fn) for key, value in data.items()}
    if isinstance(data, list):
        return [_map_strings(item, join_path(path, index), fn) for index, item in enumerate(data)]
    if isinstance(data, str):
        return fn(data, path)
    return data


def _strings(data: Any) -> list[str]:
    found: list[str] = []
    _map_strings(data, "", lambda text, path: found.append(text))
    return found


def _a(type_name: str) -> str:
    return "an integer" if type_name == "integer" else "a number"
