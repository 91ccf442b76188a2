"""Live cell progress of a running notebook: cell i of n, the running cell's first line, elapsed.

The entrypoint (``execute.py``) writes ``progress.json`` in the run's folder as each code cell
starts (and prints the same as a ``[launch] cell i/n started: …`` log line). The agent reads the
folders of its local runs every loop turn (``record``) and stores what changed on the run
(the ``run_progress`` table); the CLI and the status widget show it as a bar.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import QueueStore

PROGRESS_FILE = "progress.json"
CELL_LINE = re.compile(r"\[launch\] cell (\d+)/(\d+) started: ?(.*)$")

# What this process last stored per run: (file mtime_ns, size); a turn with nothing new writes nothing.
_seen: dict[str, tuple[int, int]] = {}


def write_progress_file(path: Path, cell: int, total: int, source: str, started_at: float | None = None) -> None:
    """Atomically replace the progress file (the entrypoint's side, or a runner that reads the cell
    starts from a remote log with their own times; a reader never sees half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps(
            {
                "cell": cell,
                "total": total,
                "source": source,
                "cell_started_at": time.time() if started_at is None else started_at,
            }
        )
    )
    os.replace(tmp, path)


def read_progress_file(path: Path) -> dict | None:
    """The progress file's content, or None when it is missing or not readable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("cell"), int) or not isinstance(data.get("total"), int):
        return None
    return data


def parse_cell_line(line: str) -> tuple[int, int, str] | None:
    """``(cell, total, first line)`` from a ``[launch] cell i/n started: …`` log line, else None."""
    found = CELL_LINE.search(line.rstrip())
    return (int(found[1]), int(found[2]), found[3]) if found else None


def record(store: QueueStore, jobs: Iterable[Any]) -> None:
    """Store the progress of these jobs' runs where their folder's progress file changed (the agent
    calls this every loop turn; a job without a folder, e.g. on Vertex, is passed over). Never raises."""
    for job in jobs:
        workdir = getattr(job, "workdir", None)
        if not workdir:
            continue
        path = Path(workdir) / PROGRESS_FILE
        try:
            stat = path.stat()
        except OSError:
            continue
        run_id = job.run.id
        key = (stat.st_mtime_ns, stat.st_size)
        if _seen.get(run_id) == key:
            continue
        data = read_progress_file(path)
        if data is None:
            continue
        try:
            save(store, run_id, data)
        except Exception:  # the store is busy or gone: the next turn tries again
            continue
        _seen[run_id] = key
    if len(_seen) > 10000:  # runs long finished
        _seen.clear()


def save(store: QueueStore, run_id: str, data: dict) -> None:
    """Store one progress reading for ``run_id``."""
    from .store._progress import save_progress

    save_progress(
        store,
        run_id,
        int(data["cell"]),
        int(data["total"]),
        str(data.get("source", ""))[:200],
        float(data.get("cell_started_at") or time.time()),
    )


def load(store: QueueStore, run_ids: Iterable[str]) -> dict[str, dict]:
    """{run id: progress} for the runs that reported any."""
    from .store._progress import load_progress

    return load_progress(store, list(run_ids))


def fraction(progress: dict | None) -> float:
    """How far along, 0..1: cells before the running one are done."""
    if not progress or not progress.get("total"):
        return 0.0
    return max(0.0, min(1.0, (progress["cell"] - 1) / progress["total"]))


def bar(progress: dict | None, width: int = 20) -> str:
    """``[######--------------] 3/10`` (empty when there is no progress)."""
    if not progress:
        return ""
    filled = round(fraction(progress) * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {progress['cell']}/{progress['total']}"


def describe(progress: dict | None, now: float | None = None, width: int = 20) -> str:
    """The bar, the running cell's first line and how long it has been running."""
    if not progress:
        return ""
    elapsed = max(0.0, (now or time.time()) - progress["cell_started_at"])
    source = f": {progress['source']}" if progress.get("source") else ""
    return f"{bar(progress, width)}  cell {progress['cell']}{source}  ({elapsed:.0f} s)"


def short(progress: dict | None) -> str:
    """``3/10`` (``-`` without progress): the column of ``launch-jupyter runs``."""
    return f"{progress['cell']}/{progress['total']}" if progress else "-"
