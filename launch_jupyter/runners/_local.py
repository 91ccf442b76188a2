"""What the runners on this machine (local-process, local-container) share: checks of their small
queue configs (``timeout``, ``env``), the masking of secret-looking environment values, and the
run folder's files (written atomically, read back tolerantly, the log's last error line)."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from pathlib import Path

from ..core.keys import did_you_mean
from ..core.model import Problem

SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")


def unknown_key(key: object, keys: Iterable[str], resource: str) -> Problem:
    """A key the ``resource``'s config does not have, with the closest one suggested."""
    hint = did_you_mean(str(key), keys, otherwise=f"; allowed keys: {', '.join(keys)}")
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


def local_config_problems(config: object, keys: Collection[str], resource: str) -> list[Problem]:
    """What the local runners' configs share: a mapping (or nothing) of ``keys`` only, with a
    ``timeout`` in seconds or null and an ``env`` of scalars."""
    if config is None:
        return []
    if not isinstance(config, dict):
        return [Problem("", f"a {resource} queue config must be a mapping with {', '.join(keys)}")]
    problems = [unknown_key(key, keys, resource) for key in config if key not in keys]
    return problems + check_timeout(config.get("timeout")) + check_env(config.get("env"))


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


def read_json(path: Path) -> dict | None:
    """A run-folder JSON file, or None when it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict) -> None:
    """Write a run-folder JSON file atomically (a reader sees the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def last_error_line(log: Path) -> str:
    """The log's last line that mentions an error, else its last line (at most 500 characters)."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if "error" in line.lower() or "Exception" in line:
            return line[:500]
    return lines[-1][:500] if lines else ""
