"""Retention: what ``launch-jupyter gc`` removes from the store, and the proof it touches nothing live.

A finished run (terminal state) that ended before the cutoff loses its events, its progress row and
its build context; the run row itself stays (``runs`` and ``compare`` still list it, with its
final state, message and recorded values). A sweep's one context goes once every run of the sweep
is finished before the cutoff. A schedule keeps its snapshot (in the ``schedules`` row, never
touched here). Then every blob no context names any more is deleted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, exists, func, literal_column, or_, select

from ..core.states import TERMINAL
from ._blobs import _batches, delete_contexts, delete_unreferenced, lock_for_gc
from ._schema import run_events, run_progress, runs, sweep_context_key, sweeps

_FINISHED = runs.c.state.in_([literal_column(f"'{s.value}'") for s in TERMINAL])
_ENDED_AT = func.coalesce(runs.c.finished_at, runs.c.updated_at)


@dataclasses.dataclass
class StoreRetention:
    """What one gc removed from the store (or, in a dry run, would remove)."""

    runs: list[dict]  # {"id", "log_path"} of every finished run older than the cutoff
    events: int = 0
    progress: int = 0
    contexts: int = 0
    sweep_contexts: int = 0
    blobs: int = 0
    bytes: int = 0  # stored context bytes freed (inline contexts and blobs)


class _DryRun(Exception):
    """Raised inside the gc transaction to roll a dry run back after counting."""


class RetentionMethods:
    """Mixed into QueueStore (uses its ``_backend``)."""

    _backend: Any

    def collect_garbage(self, cutoff: float, *, dry_run: bool = False) -> StoreRetention:
        """Remove what finished runs that ended before ``cutoff`` (epoch seconds) no longer need.

        One transaction: a dry run does the same deletes and rolls them back, so its counts are
        exactly what a real run would remove at that moment."""
        result = StoreRetention(runs=[])
        try:
            with self._backend.write() as conn:
                _collect(conn, cutoff, result)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return result


def _collect(conn: Any, cutoff: float, result: StoreRetention) -> None:
    lock_for_gc(conn)  # first: no enqueue may reference a blob between what is read here and the deletes
    old = conn.execute(
        select(runs.c.id, runs.c.log_path).where(_FINISHED, _ENDED_AT < cutoff).order_by(runs.c.seq)
    ).all()
    result.runs = [{"id": row.id, "log_path": row.log_path} for row in old]
    ids = [row.id for row in old]
    for batch in _batches(ids):
        result.events += conn.execute(delete(run_events).where(run_events.c.run_id.in_(batch))).rowcount or 0
        result.progress += conn.execute(delete(run_progress).where(run_progress.c.run_id.in_(batch))).rowcount or 0
    result.contexts, inline = delete_contexts(conn, ids)
    done = _finished_sweeps(conn, cutoff)
    result.sweep_contexts, sweep_inline = delete_contexts(conn, [sweep_context_key(s) for s in done])
    result.blobs, blob_bytes = delete_unreferenced(conn)
    result.bytes = inline + sweep_inline + blob_bytes


def _finished_sweeps(conn: Any, cutoff: float) -> Sequence[str]:
    """Sweeps none of whose runs is queued, active, or finished after the cutoff (a sweep's runs are
    stored with it in one transaction, so a sweep is never seen without them)."""
    live = exists().where(runs.c.sweep_id == sweeps.c.id, or_(~_FINISHED, _ENDED_AT >= cutoff))
    return list(conn.execute(select(sweeps.c.id).where(~live)).scalars())
