"""Small helpers for config keys: key paths, spelling suggestions, snake_case."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any

# Applied in order: split an acronym from the next word first, then lower→Upper boundaries.
_WORD_BOUNDARIES = (
    re.compile(r"([A-Z]+)([A-Z][a-z])"),  # URIPrefix -> URI_Prefix
    re.compile(r"([a-z0-9])([A-Z])"),  # machineType -> machine_Type
)


def format_path(parts: Sequence[str | int]) -> str:
    """``["spec", "worker_pool_specs", 0, "x"]`` → ``"spec.worker_pool_specs[0].x"``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def join_path(path: str, key: str | int) -> str:
    """Extend a formatted key path by one mapping key or list index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid key a misspelt ``name`` most likely meant, or None when nothing is close."""
    options = list(choices)
    snake = to_snake(name)
    if snake != name and snake in options:
        return snake  # a camelCase spelling of a valid key
    matches = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def to_snake(name: str) -> str:
    """``machineType`` → ``machine_type``; ``bootDiskSizeGb`` → ``boot_disk_size_gb``."""
    for pattern in _WORD_BOUNDARIES:
        name = pattern.sub(r"\1_\2", name)
    return name.replace("-", "_").lower()


def is_camel_case(name: str) -> bool:
    """True when a key carries capital letters (the snake_case rule refuses it)."""
    return any(ch.isupper() for ch in name)


def did_you_mean(name: str, choices: Iterable[str], noun: str = "valid keys") -> str:
    """``'; did you mean "max_jobs"?'`` or, when nothing is close, the list of choices."""
    options = sorted(choices)
    guess = closest(name, options)
    if guess is not None:
        return f'; did you mean "{guess}"?'
    return f"; {noun}: {', '.join(options)}"


def kind_of(value: Any) -> str:
    """``a list`` / ``text`` / ``a number`` ...: how an error message names a value's type."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__
