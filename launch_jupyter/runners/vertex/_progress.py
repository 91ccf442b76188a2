"""Live cell progress of Vertex runs, read from the jobs' Cloud Logging entries.

The entrypoint prints ``[launch] cell i/n started: …`` as each code cell starts, and Vertex AI sends
the container's stdout to Cloud Logging (resource ``ml_job``, label ``job_id``). Once per status
cycle, and only while some job of the batch runs, one ``entries.list`` asks for the newest cell
lines of all of them (``job_id=("1" OR "2" …)``, ``textPayload:"[launch] cell "``, newest first,
one page); the newest line per job becomes that run's ``progress.json`` in its folder on the
agent's side, with the entry's own time stamp as the cell's start, which the agent stores as it
does for local runs (``launch_jupyter.progress.record``).

Reads are throttled (``interval``): Cloud Logging allows 60 ``entries.list`` requests per minute per
project (cloud.google.com/logging/quotas, "Logging API: read requests"), shared with ``logs
--follow`` and every other agent of the project. A read runs on a thread of its own, one at a time
per target, given up after ``timeout`` (google-cloud-logging's ``list_entries`` takes no deadline
and retries by itself): a slow or unreachable Logging endpoint must never hold up the status of the runs.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core.model import Job, Status
from ...core.states import RunState
from ._api import read_log_entries

if TYPE_CHECKING:
    from ._api import Target

log = logging.getLogger(__name__)
CELL_MARK = "[launch] cell "
PAGE = 1000  # one page of cell lines per read: at most this many since the oldest running job's last one
RUNNING = (RunState.RUNNING, RunState.CANCELLING)  # the notebook may be executing
# A Logging query is at most 20,000 characters (cloud.google.com/logging/docs/view/logging-query-language):
# ≈25 per job id, so one read asks for this many jobs at most, the others in turn on later reads.
MAX_JOBS_PER_READ = 400


class CellProgress:
    """What one runner knows of its runs' cells: the newest cell line seen per run, and when each
    target's log was last read."""

    def __init__(self, interval: float, timeout: float):
        self.interval = interval
        self.timeout = timeout  # a read hung longer than this is given up (the next cycle reads again)
        self._read_at: dict[Any, float] = {}  # target -> monotonic time of the last read
        self._seen: dict[str, tuple[str, int]] = {}  # run id -> (newest cell line's timestamp, cell)
        self._clients: dict[Any, Any] = {}
        self._busy: set[Any] = set()  # targets whose read is under way
        self._turn = 0  # where the next read starts when there are more jobs than one read asks for
        self._lock = threading.Lock()

    def update(self, target: Target, jobs: list[Job], statuses: dict[str, Status]) -> threading.Thread | None:
        """Start reading the cell lines of the batch's running jobs, on a thread (at most one read
        at a time per target; none when nothing runs or the last read is too recent), which writes
        what is new to their progress files. Returns that thread, or None. Never raises."""
        running = [j for j in jobs if j.run.external_id and _runs(statuses.get(j.run.id))]
        if not running:
            return None
        with self._lock:
            now = time.monotonic()
            if target in self._busy or now - self._read_at.get(target, float("-inf")) < self.interval:
                return None
            self._read_at[target] = now
            self._busy.add(target)
            if len(running) > MAX_JOBS_PER_READ:
                start = self._turn % len(running)
                running = (running[start:] + running[:start])[:MAX_JOBS_PER_READ]
                self._turn += MAX_JOBS_PER_READ
        thread = threading.Thread(
            target=self._update, args=(target, running), daemon=True, name="launch-vertex-progress"
        )
        thread.start()
        return thread

    def _update(self, target: Target, jobs: list[Job]) -> None:
        try:
            self._apply(jobs, self._read(target, jobs))
        except Exception as err:  # noqa: BLE001 - no progress this time, the run goes on
            log.info("cell progress of %d Vertex AI job(s) not read: %s", len(jobs), err)
        finally:
            with self._lock:
                self._busy.discard(target)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._seen.pop(run_id, None)

    # ------------------------------------------------------------------ the read
    def _read(self, target: Target, jobs: list[Job]) -> list[Any]:

        ids = " OR ".join(f'"{_job_id(j.run.external_id)}"' for j in jobs)
        query = (
            f'resource.type="ml_job" AND resource.labels.job_id=({ids}) '
            f'AND textPayload:"{CELL_MARK}" AND timestamp>="{self._since(jobs)}"'
        )
        client = self._client(target)

        # max_results == page_size: the iterator stops after the first page, so this is one request.
        # list_entries takes no deadline: past self.timeout the read is given up, so the target is
        # no longer busy and the next cycle reads again.
        return read_log_entries(
            client,
            target.project,
            query,
            seconds=self.timeout,
            what="read cell progress",
            newest_first=True,
            page_size=PAGE,
            max_results=PAGE,
        )

    def _since(self, jobs: list[Job]) -> str:
        """The lower time bound: the oldest of the jobs' newest cell lines seen so far, or (for a job
        not read yet) its run's creation, less the clock skew allowed for. Always a bound: without
        one the library adds timestamp>="now-24h"."""
        from . import POLL_LOOKBACK_S

        bounds = []
        for job in jobs:
            with self._lock:
                seen = self._seen.get(job.run.id)
            if seen is not None:
                bounds.append(seen[0])
            elif job.run.created_at:
                bounds.append(_stamp(job.run.created_at - POLL_LOOKBACK_S))
            else:
                bounds.append("1970-01-01T00:00:00Z")
        return min(bounds)

    def _client(self, target: Target) -> Any:
        with self._lock:
            client = self._clients.get(target)
            if client is None:
                from . import _logging_client

                client = self._clients[target] = _logging_client(target)
            return client

    # ------------------------------------------------------------------ the answer
    def _apply(self, jobs: list[Job], entries: list[Any]) -> int:
        from ...progress import PROGRESS_FILE, parse_cell_line, write_progress_file

        by_id = {_job_id(j.run.external_id): j for j in jobs}
        newest: dict[str, tuple[Any, tuple[int, int, str]]] = {}
        for entry in entries:  # newest first
            labels = getattr(entry.resource, "labels", None) or {}
            job = by_id.get(str(labels.get("job_id", "")))
            if job is None or job.run.id in newest or not entry.timestamp:
                continue
            parsed = parse_cell_line(_text(entry.payload))
            if parsed is not None:
                newest[job.run.id] = (entry.timestamp, parsed)
        changed = 0
        for job in jobs:
            if job.run.id not in newest:
                continue
            when, (cell, total, source) = newest[job.run.id]
            stamp = _stamp(when.timestamp())
            with self._lock:
                if self._seen.get(job.run.id) == (stamp, cell):
                    continue
            folder = Path(job.workdir)
            if not folder.parent.is_dir() or folder.parent == Path(folder.anchor):
                continue  # no runs folder on the agent's side (a job handed to the runner by hand)
            try:
                folder.mkdir(exist_ok=True)
                write_progress_file(folder / PROGRESS_FILE, cell, total, source, started_at=when.timestamp())
            except OSError as err:
                log.info("run %s: cell progress not written: %s", job.run.id, err)
                continue
            with self._lock:
                self._seen[job.run.id] = (stamp, cell)
            changed += 1
        return changed


def _runs(status: Status | None) -> bool:
    return status is not None and status.state in RUNNING


def _job_id(name: str | None) -> str:
    return (name or "").rsplit("/", 1)[-1]


def _stamp(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message") or "")
    return str(payload or "")
