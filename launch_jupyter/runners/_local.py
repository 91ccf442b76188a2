"""What the runners on this machine (local-process, local-container) share: checks of their small
queue configs (``timeout``, ``env``) and the masking of secret-looking environment values."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from ..core.model import Problem

SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")


def unknown_key(key: object, keys: Sequence[str], resource: str) -> Problem:
    """A key the ``resource``'s config does not have, with the closest one suggested."""
    close = difflib.get_close_matches(str(key), list(keys), n=1)
    hint = f'; did you mean "{close[0]}"?' if close else f"; allowed keys: {', '.join(keys)}"
    return Problem(str(key), f"unknown key for a {resource} queue{hint}")


def check_timeout(value: object) -> list[Problem]:
    """``timeout``: a positive number of seconds, or null for no limit."""
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return [Problem("timeout", f"must be a positive number of seconds or null, not {value!r}")]
    return []


def check_env(value: object) -> list[Problem]:
    """``env``: a mapping of variable names to strings or numbers."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [Problem("env", f"must be a mapping of NAME: value, not {type(value).__name__}")]
    problems = []
    for name, item in value.items():
        if not isinstance(name, str) or not name or "=" in name:
            problems.append(Problem(f"env.{name}", "is not a valid environment variable name"))
        elif item is not None and not isinstance(item, (str, int, float, bool)):
            problems.append(Problem(f"env.{name}", f"must be a string or number, not {type(item).__name__}"))
    return problems


def env_value(value: object) -> str:
    """A config value as an environment variable's text (booleans as true/false)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def mask(name: str, value: str) -> str:
    """``***`` for a variable whose name looks like it holds a secret (for dry runs and logs)."""
    return "***" if any(word in name.upper() for word in SECRET_WORDS) else value
