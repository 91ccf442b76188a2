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


def closest(name: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The valid key a misspelt ``name`` most likely meant, or None when nothing is close: the
    same key in another spelling (``machineType`` for ``machine_type``, ``instance_type`` for
    ``InstanceType``), else the nearest by difflib's ratio of at least ``cutoff``."""
    options = list(choices)
    snake = to_snake(name)
    if snake != name and snake in options:
        return snake  # a camelCase spelling of a valid key
    folded = name.lower().replace("_", "")
    same = [option for option in options if option.lower() == folded]
    if same:
        return same[0]  # a snake_case spelling of a PascalCase member
    matches = difflib.get_close_matches(name, options, n=1, cutoff=cutoff)
    return matches[0] if matches else None


def to_snake(name: str) -> str:
    """``machineType`` → ``machine_type``; ``bootDiskSizeGb`` → ``boot_disk_size_gb``."""
    for pattern in _WORD_BOUNDARIES:
        name = pattern.sub(r"\1_\2", name)
    return name.replace("-", "_").lower()


def is_camel_case(name: str) -> bool:
    """True when a key carries capital letters (the snake_case rule refuses it)."""
    return any(ch.isupper() for ch in name)


def did_you_mean(
    name: str,
    choices: Iterable[str],
    noun: str | None = "valid keys",
    *,
    cutoff: float = 0.6,
    otherwise: str | None = None,
) -> str:
    """The one way every message suggests: ``'; did you mean "max_jobs"?'`` for the closest choice;
    when nothing is close, ``otherwise`` if given, else the sorted list of choices under ``noun``
    (``noun=None``: nothing, for choices too many to list)."""
    options = sorted(choices)
    guess = closest(name, options, cutoff=cutoff)
    if guess is not None:
        return f'; did you mean "{guess}"?'
    if otherwise is not None:
        return otherwise
    return f"; {noun}: {', '.join(options)}" if noun else ""


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
