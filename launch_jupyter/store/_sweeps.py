"""The store's sweep side: a sweep and all its runs queued in one transaction, cancelling a sweep,
recorded values, and the claim condition that holds a sweep to its ``max_parallel``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, literal_column, or_, select, text
from sqlalchemy.engine import Connection

from ..core.errors import RunError
from ..core.model import Run
from ..core.states import RunState
from ._blobs import put_context
from ._records import check_json, queued_copy, run_from_row, run_values
from ._schema import queues, run_events, run_records, runs, sweep_context_key, sweeps

_ACTIVE_VALUES = [s.value for s in RunState if s.is_active]
_TERMINAL_VALUES = [s.value for s in RunState if s.is_terminal]


def sweep_has_room(excluded: Sequence[str] = ()) -> Any:
    """The claim's condition on a candidate run: not in a sweep, or in one with fewer than its
    ``max_parallel`` runs active (and not among ``excluded``, sweeps found full in this claim)."""
    other = runs.alias("sweep_mates")
    active = (
        select(func.count())
        .select_from(other)
        .where(
            other.c.sweep_id == runs.c.sweep_id, other.c.state.in_([literal_column(f"'{s}'") for s in _ACTIVE_VALUES])
        )
        .scalar_subquery()
    )
    limit = select(sweeps.c.max_parallel).where(sweeps.c.id == runs.c.sweep_id).scalar_subquery()
    room = or_(runs.c.sweep_id.is_(None), limit.is_(None), active < limit)
    if excluded:
        room = room & or_(runs.c.sweep_id.is_(None), runs.c.sweep_id.not_in(list(excluded)))
    return room


def sweep_over_limit(conn: Connection, sweep_id: str) -> bool:
    """PostgreSQL: after claiming a run of ``sweep_id``, lock the sweep row (claims of one sweep take
    turns) and count again, now seeing every committed claim: True if this claim went over."""
    limit = conn.execute(select(sweeps.c.max_parallel).where(sweeps.c.id == sweep_id).with_for_update()).scalar()
    if limit is None:
        return False
    active = conn.execute(
        select(func.count()).select_from(runs).where(runs.c.sweep_id == sweep_id, runs.c.state.in_(_ACTIVE_VALUES))
    ).scalar()
    return active > limit


def undo_claim(conn: Connection, row: Any) -> None:
    """Put back a run claimed in this transaction (before its claim event was written)."""
    conn.execute(
        runs.update()
        .where(runs.c.seq == row.seq)
        .values(
            state=RunState.QUEUED.value,
            agent_id=None,
            lease_expires_at=None,
            started_at=None,
            lease_generation=row.lease_generation - 1,
        )
    )


class SweepMethods:
    """Mixed into QueueStore (uses its ``_backend`` and ``dialect``)."""

    _backend: Any
    dialect: str

    def enqueue_sweep(self, sweep: dict, points: Sequence[Run], context: bytes | None) -> tuple[dict, list[Run]]:
        """Store a sweep, one queued run per point and the sweep's one build context in one
        transaction (batch inserts), then wake waiting agents. Returns the stored sweep and runs."""
        now = time.time()
        sweep = {
            **sweep,
            "id": sweep.get("id") or uuid.uuid4().hex[:12],
            "created_at": now,
            "cancelled_at": None,
            "total": len(points),
        }
        queued = [queued_copy(run, now, sweep_id=sweep["id"]) for run in points]
        values = [run_values(run) for run in queued]
        for row in values[:1]:  # every point has the same shape; its parameters are checked one by one below
            check_json(row, RunError, "run")
        for run in queued:
            check_json({"parameters": run.parameters}, RunError, f"sweep point {run.parameters}")
        with self._backend.write() as conn:
            exists = conn.execute(
                select(queues.c.id).where(queues.c.id == sweep["queue_id"]).with_for_update(read=True, key_share=True)
            ).first()
            if exists is None:
                raise RunError(f'queue "{sweep["entity"]}/{sweep["queue_name"]}" does not exist (any more)')
            conn.execute(sweeps.insert().values(**sweep))
            if context is not None:
                put_context(conn, sweep_context_key(sweep["id"]), context)
            conn.execute(runs.insert(), values)
            conn.execute(
                run_events.insert(),
                [
                    {
                        "run_id": run.id,
                        "time": now,
                        "state": RunState.QUEUED.value,
                        "message": f"sweep {sweep['id']}",
                        "agent_id": None,
                    }
                    for run in queued
                ],
            )
            if self.dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_notify(:ch, :payload)"),
                    {"ch": self._backend.channel, "payload": f"{self._backend.token}:{sweep['id']}"},
                )
        self._backend.wake()
        return sweep, queued

    def get_sweep(self, sweep_id: str) -> dict:
        """A sweep row (as a dict) by id or unique prefix; RunError when there is none."""
        with self._backend.read() as conn:
            row = conn.execute(select(sweeps).where(sweeps.c.id == sweep_id)).first()
            if row is None and len(sweep_id) >= 4:
                rows = conn.execute(
                    select(sweeps).where(sweeps.c.id.startswith(sweep_id, autoescape=True)).limit(2)
                ).all()
                if len(rows) > 1:
                    raise RunError(f"sweep id prefix {sweep_id!r} matches several sweeps; give more characters")
                row = rows[0] if rows else None
        if row is None:
            raise RunError(f"sweep {sweep_id!r} does not exist; see `launch-jupyter sweeps`")
        return dict(row._mapping)

    def list_sweeps(self, limit: int | None = None) -> list[dict]:
        """Sweeps, newest first, each with ``counts``: {state: number of its runs}."""
        query = select(sweeps).order_by(sweeps.c.created_at.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._backend.read() as conn:
            found = [dict(r._mapping) for r in conn.execute(query)]
            ids = [s["id"] for s in found]
            counts: dict[str, dict[str, int]] = {i: {} for i in ids}
            if ids:
                rows = conn.execute(
                    select(runs.c.sweep_id, runs.c.state, func.count())
                    .where(runs.c.sweep_id.in_(ids))
                    .group_by(runs.c.sweep_id, runs.c.state)
                )
                for sweep_id, state, n in rows:
                    counts[sweep_id][state] = n
        for sweep in found:
            sweep["counts"] = counts[sweep["id"]]
        return found

    def sweep_runs(self, sweep_id: str) -> list[Run]:
        """A sweep's runs in the order they were queued (the order of its points)."""
        with self._backend.read() as conn:
            rows = conn.execute(select(runs).where(runs.c.sweep_id == sweep_id).order_by(runs.c.seq))
            return [run_from_row(r) for r in rows]

    def cancel_sweep(self, sweep_id: str) -> tuple[int, int]:
        """Cancel a sweep: its queued runs at once (one statement), its active ones by flagging them
        for their agents. Returns (cancelled, flagged). Runs are locked before the sweep row, the
        order a claim locks them in."""
        now = time.time()
        with self._backend.write() as conn:
            queued = (
                conn.execute(
                    runs.update()
                    .where(runs.c.sweep_id == sweep_id, runs.c.state == RunState.QUEUED.value)
                    .values(
                        state=RunState.CANCELLED.value,
                        cancel_requested=True,
                        finished_at=now,
                        updated_at=now,
                        message="cancelled with its sweep before it started",
                    )
                    .returning(runs.c.id)
                )
                .scalars()
                .all()
            )
            active = conn.execute(
                runs.update()
                .where(
                    runs.c.sweep_id == sweep_id, runs.c.state.in_(_ACTIVE_VALUES), runs.c.cancel_requested.is_(False)
                )
                .values(cancel_requested=True, updated_at=now)
                .returning(runs.c.id, runs.c.state)
            ).all()
            events = [
                {
                    "run_id": i,
                    "time": now,
                    "state": RunState.CANCELLED.value,
                    "message": "cancelled with its sweep before it started",
                    "agent_id": None,
                }
                for i in queued
            ]
            events += [
                {
                    "run_id": i,
                    "time": now,
                    "state": state,
                    "message": "cancel requested (its sweep was cancelled)",
                    "agent_id": None,
                }
                for i, state in active
            ]
            if events:
                conn.execute(run_events.insert(), events)
            conn.execute(sweeps.update().where(sweeps.c.id == sweep_id).values(cancelled_at=now))
        return len(queued), len(active)

    def sweep_image(self, sweep_id: str, content_hash: str) -> str | None:
        """The image a run of this sweep was built into from this content, if one was already."""
        with self._backend.read() as conn:
            return conn.execute(
                select(runs.c.image_uri)
                .where(runs.c.sweep_id == sweep_id, runs.c.content_hash == content_hash, runs.c.image_uri.is_not(None))
                .limit(1)
            ).scalar()

    # --- recorded values ------------------------------------------------------------------------

    def save_records(self, run_id: str, records: Sequence[dict]) -> None:
        """Store what a run recorded (each {name, value, display, error}), replacing earlier ones."""
        rows = []
        for position, record in enumerate(records):
            row = {
                "run_id": run_id,
                "name": str(record["name"]),
                "value": record.get("value"),
                "display": record.get("display"),
                "error": record.get("error"),
                "position": position,
            }
            try:
                json.dumps([row["value"], row["display"]], allow_nan=False)
            except (TypeError, ValueError) as err:
                row.update(value=None, display=None, error=f"cannot be stored as JSON: {err}")
            rows.append(row)
        with self._backend.write() as conn:
            conn.execute(run_records.delete().where(run_records.c.run_id == run_id))
            if rows:
                conn.execute(run_records.insert(), rows)

    def records(self, run_ids: Sequence[str]) -> dict[str, list[dict]]:
        """{run id: its recorded values in the order recorded} for these runs."""
        found: dict[str, list[dict]] = {run_id: [] for run_id in run_ids}
        if not run_ids:
            return found
        with self._backend.read() as conn:
            rows = conn.execute(
                select(run_records)
                .where(run_records.c.run_id.in_(list(run_ids)))
                .order_by(run_records.c.run_id, run_records.c.position)
            )
            for row in rows:
                found[row.run_id].append(
                    {"name": row.name, "value": row.value, "display": row.display, "error": row.error}
                )
        return found
