"""``launch-jupyter gc``: bounded growth. Finished runs older than a cutoff lose what only history
needs (events, progress, build context, run folder with its logs), and blobs no context names go.

Nothing a queued or active run, a schedule or an unfinished sweep needs is touched: the store's
side is one transaction over finished runs only (``store/_retention.py``); the files are removed
afterwards, and only inside ``<data dir>/runs/<checked run id>``, whatever a row says.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from pathlib import Path

from .core.errors import ConfigError, LaunchError
from .store import QueueStore

_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclasses.dataclass
class GcReport:
    """What one gc removed (or, with ``dry_run``, would remove)."""

    older_than_s: float
    dry_run: bool
    runs: int = 0  # finished runs that ended before the cutoff
    events: int = 0
    contexts: int = 0  # runs' and sweeps' stored build contexts
    blobs: int = 0
    store_bytes: int = 0
    folders: int = 0
    logs: int = 0
    file_bytes: int = 0
    kept: list[str] = dataclasses.field(default_factory=list)  # folders left alone, and why

    def lines(self) -> list[str]:
        """The summary the CLI prints."""
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"{self.runs} finished runs older than {_age_text(self.older_than_s)}: {verb} {self.events} events, "
            f"{self.contexts} build contexts, {self.blobs} unreferenced blobs ({_size(self.store_bytes)} of store)",
            f"{verb} {self.folders} run folders with {self.logs} logs ({_size(self.file_bytes)} of files)",
        ]
        lines += [f"kept {why}" for why in self.kept]
        return lines


def parse_age(text: str, name: str = "--older-than") -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` → seconds; ConfigError naming ``name`` otherwise."""
    found = _AGE.fullmatch(str(text).strip())
    if found is None:
        raise ConfigError(f"{name} {str(text)!r}: give an age as a number and a unit s, m, h, d or w (e.g. 30d, 12h)")
    return float(found.group(1)) * _UNIT_S[found.group(2)]


def collect(
    store: QueueStore, older_than: str | float, data_dir: Path, *, dry_run: bool = False, now: float | None = None
) -> GcReport:
    """Remove (or count, with ``dry_run``) what finished runs older than ``older_than`` leave behind."""
    seconds = parse_age(older_than, "older_than") if isinstance(older_than, str) else float(older_than)
    if seconds < 0:
        raise ConfigError(f"older_than {older_than!r}: an age cannot be negative")
    cutoff = (time.time() if now is None else now) - seconds
    stored = store.collect_garbage(cutoff, dry_run=dry_run)
    report = GcReport(
        older_than_s=seconds,
        dry_run=dry_run,
        runs=len(stored.runs),
        events=stored.events,
        contexts=stored.contexts + stored.sweep_contexts,
        blobs=stored.blobs,
        store_bytes=stored.bytes,
    )
    for run in stored.runs:
        _remove_folder(report, Path(data_dir), run["id"], run["log_path"], dry_run)
    return report


def tidy_context(folder: Path, archive: bytes) -> int:
    """Delete the files of ``folder`` that are still exactly as the context ``archive`` unpacked
    them, then the folders left empty; what a run wrote or changed stays. Returns bytes freed."""
    from .packaging.context import unchanged_since_unpacked

    same = unchanged_since_unpacked(archive)
    freed = 0
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file() or not _inside(path, folder):
            continue
        size = path.stat().st_size
        if same(path.relative_to(folder).as_posix(), path):
            freed += size
            path.unlink()
    for root, _dirs, _files in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        if not os.listdir(root):
            os.rmdir(root)  # deepest first, the context folder itself last
    return freed


def _remove_folder(report: GcReport, data_dir: Path, run_id: str, log_path: str | None, dry_run: bool) -> None:
    from .core.trust import run_folder

    try:
        folder = run_folder(data_dir, run_id)
    except LaunchError:
        report.kept.append(f"run {run_id!r}: not a run id, so no folder of it is touched")
        return
    if folder.is_symlink():
        report.kept.append(f"{folder}: a link, not the run's own folder")
        return
    if not folder.is_dir():
        return  # never on this host, or removed before
    size = _tree_size(folder)
    if log_path and _inside(Path(log_path), folder) and Path(log_path).is_file():
        report.logs += 1
    if not dry_run:
        shutil.rmtree(folder)
    report.folders += 1
    report.file_bytes += size


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):  # does not follow links into other folders
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _age_text(seconds: float) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNIT_S[unit] and seconds % _UNIT_S[unit] == 0:
            return f"{seconds / _UNIT_S[unit]:g}{unit}"
    return f"{seconds:g}s"


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            break
    return f"{n:.1f} {unit}"
