"""The SQL of schedules and their ticks (``launch_jupyter.schedules`` has the cron and the firing).

A tick is claimed by inserting its (schedule, fire time) row with ``ON CONFLICT DO NOTHING`` in the
same transaction that moves the schedule's ``next_fire_at`` past it (a compare-and-set), so of any
number of agents exactly one gets each tick, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, false, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..core.errors import LaunchError
from ._schema import runs, schedule_ticks, schedules
from ._store import QueueStore

TICK_STATES = ("claimed", "fired", "failed", "skipped")
_COLUMNS_WITHOUT_CONTEXT = [c for c in schedules.c if c.name != "context"]


class ScheduleError(LaunchError):
    """A schedule that does not exist, or one whose name is taken."""


def insert_schedule(store: QueueStore, values: dict[str, Any], context: bytes | None) -> dict:
    """Store a new schedule (and its snapshot); ScheduleError if its author has one of that name."""
    now = time.time()
    try:
        with store._backend.write() as conn:
            result = conn.execute(schedules.insert().values(**values, context=context, created_at=now, updated_at=now))
            schedule_id = result.inserted_primary_key[0]
            return _row(conn, schedule_id)
    except IntegrityError:
        raise ScheduleError(
            f'you already have a schedule named "{values["name"]}"; pick another name or '
            f"delete it with `launch-jupyter schedule delete {values['name']}`"
        ) from None


def find_schedule(store: QueueStore, name: str, author: str) -> dict:
    """The schedule ``name`` of ``author`` (or ``author/name``)."""
    if "/" in name:
        author, name = name.split("/", 1)
    with store._backend.read() as conn:
        row = conn.execute(
            select(*_COLUMNS_WITHOUT_CONTEXT).where(schedules.c.author == author, schedules.c.name == name)
        ).first()
    if row is None:
        raise ScheduleError(f'schedule "{name}" of {author} does not exist; see `launch-jupyter schedule list`')
    return dict(row._mapping)


def list_schedules(store: QueueStore, author: str | None = None) -> list[dict]:
    """Every schedule (one author's when given), by author then name."""
    query = select(*_COLUMNS_WITHOUT_CONTEXT).order_by(schedules.c.author, schedules.c.name)
    if author is not None:
        query = query.where(schedules.c.author == author)
    with store._backend.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def set_paused(store: QueueStore, schedule_id: int, paused: bool, next_fire_at: float | None = None) -> dict:
    """Pause or resume; resuming sets the next fire time (ticks during a pause are not owed)."""
    values: dict[str, Any] = {"paused": paused, "updated_at": time.time()}
    if next_fire_at is not None:
        values["next_fire_at"] = next_fire_at
    with store._backend.write() as conn:
        conn.execute(schedules.update().where(schedules.c.id == schedule_id).values(**values))
        return _row(conn, schedule_id)


def delete_schedule(store: QueueStore, schedule_id: int) -> None:
    """Delete a schedule and its tick history; the runs it fired stay."""
    with store._backend.write() as conn:
        conn.execute(delete(schedule_ticks).where(schedule_ticks.c.schedule_id == schedule_id))
        conn.execute(delete(schedules).where(schedules.c.id == schedule_id))


def snapshot(store: QueueStore, schedule_id: int) -> bytes | None:
    """The build context stored at create (None for a schedule that follows its file)."""
    with store._backend.read() as conn:
        data = conn.execute(select(schedules.c.context).where(schedules.c.id == schedule_id)).scalar()
    return bytes(data) if data is not None else None


def any_due(store: QueueStore, queue_ids: Sequence[int], now: float) -> bool:
    """Whether a schedule on these queues has a tick due: the agent loop's per-turn read (one indexed query)."""
    if not queue_ids:
        return False
    with store._backend.read() as conn:
        # A range read of ix_schedules_due up to now: it costs the due rows, not the schedules.
        found = conn.execute(
            select(schedules.c.id)
            .where(
                schedules.c.paused == false(),
                schedules.c.next_fire_at <= now,
                schedules.c.queue_id.in_(list(queue_ids)),
            )
            .limit(1)
        ).first()
    return found is not None


Plan = Callable[[dict, float], Any]  # (schedule row, now) -> an object with fire, skipped, message, next_fire_at


def claim_due(
    store: QueueStore, queue_ids: Sequence[int], now: float, plan: Plan, agent_id: str, stuck_after_s: float
) -> list[tuple[dict, dict]]:
    """Claim the due ticks of these queues' schedules for ``agent_id``: [(tick, schedule)].

    Also hands back ticks another agent claimed more than ``stuck_after_s`` ago without saying how
    they went (it died between claim and enqueue): their run id was fixed at claim time, so firing
    them again can never make a second run."""
    claimed: list[tuple[dict, dict]] = []
    with store._backend.write() as conn:
        rows = conn.execute(
            select(*_COLUMNS_WITHOUT_CONTEXT)
            .where(
                schedules.c.paused == false(),
                schedules.c.queue_id.in_(list(queue_ids)),
                schedules.c.next_fire_at <= now,
            )
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            schedule = dict(row._mapping)
            decided = plan(schedule, now)
            moved = conn.execute(
                schedules.update()
                .where(schedules.c.id == schedule["id"], schedules.c.next_fire_at == schedule["next_fire_at"])
                .values(next_fire_at=decided.next_fire_at, updated_at=time.time())
            ).rowcount
            if moved != 1:
                continue  # another agent moved it first
            claim = {"schedule_id": schedule["id"], "agent_id": agent_id, "claimed_at": now}
            if decided.skipped is not None:
                _insert_tick(conn, **claim, fire_time=decided.skipped, state="skipped", message=decided.skip_message)
            if decided.fire is not None:
                run_id = uuid.uuid4().hex[:12]
                tick_id = _insert_tick(
                    conn, **claim, fire_time=decided.fire, state="claimed", run_id=run_id, message=decided.message
                )
                if tick_id is not None:
                    claimed.append((_tick(conn, tick_id), schedule))
        claimed += _reclaim_stuck(conn, queue_ids, now, agent_id, stuck_after_s)
    return claimed


def finish_tick(store: QueueStore, tick_id: int, state: str, message: str) -> None:
    """Record how a claimed tick went: fired (its run is queued) or failed (with the reason)."""
    with store._backend.write() as conn:
        conn.execute(schedule_ticks.update().where(schedule_ticks.c.id == tick_id).values(state=state, message=message))


def list_ticks(store: QueueStore, schedule_id: int, limit: int | None = None) -> list[dict]:
    """A schedule's ticks, newest first, each with its run's state (None: no run)."""
    query = (
        select(schedule_ticks, runs.c.state.label("run_state"))
        .select_from(schedule_ticks.outerjoin(runs, runs.c.id == schedule_ticks.c.run_id))
        .where(schedule_ticks.c.schedule_id == schedule_id)
        .order_by(schedule_ticks.c.fire_time.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    with store._backend.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


# --- helpers (inside the caller's transaction) ----------------------------------------------------


def _row(conn: Connection, schedule_id: int) -> dict:
    row = conn.execute(select(*_COLUMNS_WITHOUT_CONTEXT).where(schedules.c.id == schedule_id)).first()
    if row is None:
        raise ScheduleError(f"schedule #{schedule_id} does not exist (any more)")
    return dict(row._mapping)


def _tick(conn: Connection, tick_id: int) -> dict:
    return dict(conn.execute(select(schedule_ticks).where(schedule_ticks.c.id == tick_id)).one()._mapping)


def _insert_tick(conn: Connection, **tick: Any) -> int | None:
    """Insert-or-nothing on (schedule_id, fire_time) of a ``schedule_ticks`` row given as its column
    values: the new tick's id, or None if the tick exists."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]  # the same API
    statement = (
        insert(schedule_ticks)
        .values(**tick)
        .on_conflict_do_nothing(index_elements=["schedule_id", "fire_time"])
        .returning(schedule_ticks.c.id)
    )
    return conn.execute(statement).scalar()


def _reclaim_stuck(
    conn: Connection, queue_ids: Sequence[int], now: float, agent_id: str, stuck_after_s: float
) -> list[tuple[dict, dict]]:
    rows = conn.execute(
        select(schedule_ticks.c.id, schedule_ticks.c.schedule_id)
        .join(schedules, schedules.c.id == schedule_ticks.c.schedule_id)
        .where(
            schedule_ticks.c.state == "claimed",
            schedule_ticks.c.claimed_at < now - stuck_after_s,
            schedules.c.queue_id.in_(list(queue_ids)),
        )
        .with_for_update(of=schedule_ticks, skip_locked=True)
    ).all()
    found = []
    for row in rows:
        conn.execute(
            schedule_ticks.update().where(schedule_ticks.c.id == row.id).values(agent_id=agent_id, claimed_at=now)
        )
        found.append((_tick(conn, row.id), _row(conn, row.schedule_id)))
    return found


def tick_of_run(store: QueueStore, run_id: str) -> dict | None:
    """The tick that fired ``run_id`` with its schedule's author and name, or None (not a scheduled run)."""
    query = (
        select(schedule_ticks, schedules.c.author, schedules.c.name, schedules.c.timezone)
        .join(schedules, schedules.c.id == schedule_ticks.c.schedule_id)
        .where(schedule_ticks.c.run_id == run_id)
    )
    with store._backend.read() as conn:
        row = conn.execute(query).first()
    return dict(row._mapping) if row is not None else None
