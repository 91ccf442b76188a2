"""The SQL of run progress (``launch_jupyter.progress`` reads it from the runs and shows it)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ._schema import run_progress
from ._store import QueueStore


def save_progress(store: QueueStore, run_id: str, cell: int, total: int, source: str, cell_started_at: float) -> None:
    """Record that ``run_id`` is in cell ``cell`` of ``total`` (one row per run, overwritten)."""
    values = dict(cell=cell, total=total, source=source, cell_started_at=cell_started_at, updated_at=time.time())
    try:
        with store._backend.write() as conn:
            updated = conn.execute(
                run_progress.update().where(run_progress.c.run_id == run_id).values(**values)
            ).rowcount
            if not updated:
                conn.execute(run_progress.insert().values(run_id=run_id, **values))
    except IntegrityError:
        pass  # another writer inserted it this instant (a takeover): its row is as fresh as ours


def load_progress(store: QueueStore, run_ids: Sequence[str]) -> dict[str, dict]:
    """{run id: {cell, total, source, cell_started_at, updated_at}} for the runs that have progress."""
    if not run_ids:
        return {}
    with store._backend.read() as conn:
        rows = conn.execute(select(run_progress).where(run_progress.c.run_id.in_(list(run_ids)))).all()
    return {row.run_id: {k: v for k, v in row._mapping.items() if k != "run_id"} for row in rows}
