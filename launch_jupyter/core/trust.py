"""Checks on what is read back from the store before it becomes a path: a row may have been
written by someone else (or edited in SQL), so a run id or a log path is not trusted as is."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import LaunchError

# The ids the store makes are 12 hex digits; other writers may use longer names, but never a
# path separator, a leading dot or anything a shell or a file system treats specially.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def checked_run_id(run_id: object) -> str:
    """``run_id`` if it can name a folder (letters, digits, ``_``, ``-``); LaunchError otherwise."""
    if isinstance(run_id, str) and _RUN_ID.fullmatch(run_id):
        return run_id
    raise LaunchError(
        f"refusing run id {run_id!r} from the store: a run id is letters, digits, '_' and '-' "
        "(up to 64), so it can never name a path outside the data folder"
    )


def run_folder(data_dir: Path, run_id: object) -> Path:
    """``data_dir/runs/<run_id>``, after checking the id."""
    return Path(data_dir) / "runs" / checked_run_id(run_id)


def checked_inside(path: str | Path, folder: Path, what: str) -> Path:
    """``path`` resolved, if it lies inside ``folder``; LaunchError naming both otherwise."""
    resolved = Path(path).expanduser().resolve()
    if resolved.is_relative_to(Path(folder).resolve()):
        return resolved
    raise LaunchError(
        f"refusing to read {what} {path}: it is not inside {folder} (the store's row may have "
        "been edited; logs are only read from the run's own folder)"
    )
