"""QueueStore: queues, runs, their event history and the atomic claim with a lease."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..core.closing import Closing
from ..core.cost import finished_cost
from ..core.errors import LaunchError, QueueError, RunError
from ..core.model import Event, Queue, Run
from ..core.states import TERMINAL, RunState
from . import _backend
from ._blobs import get_context, put_context
from ._records import (
    check_json,
    column_values,
    event_from_row,
    queue_from_row,
    queue_values,
    queued_copy,
    run_from_row,
    run_values,
)
from ._retention import RetentionMethods
from ._schema import ACTIVE, QUEUED, agents, queues, run_events, runs
from ._schema import sweep_context_key as sweep_context_key
from ._sweeps import SweepMethods, sweep_has_room, sweep_over_limit, undo_claim

ACTIVE_STATES = tuple(s.value for s in RunState if s.is_active)
TERMINAL_STATES = tuple(s.value for s in TERMINAL)
MIN_PREFIX = 4
Fence = tuple[str, int]  # (agent id, lease generation): who may write a run, under which claim


class LeaseLost(LaunchError):
    """A fenced write was refused: the agent no longer holds this run (another agent took it over,
    or it was released, or it finished). The writer must drop the run without further side effects."""

    def __init__(self, run_id: str, fence: Fence, holder: str | None, generation: int, state: str):
        self.run_id = run_id
        super().__init__(
            f"run {run_id}: lease lost (held by {holder or 'no agent'} under generation {generation}, "
            f"state {state}; this writer had {fence[0]} under generation {fence[1]})"
        )


class QueueStore(Closing, SweepMethods, RetentionMethods):
    """The durable truth: queues, runs and events in one SQL database (SQLite file or PostgreSQL).

    Every method is one transaction. Handles are cheap; handles on one URL in one process share a
    connection pool and the wake-up signal used by ``wait_for_work``.
    """

    def __init__(self, url: str):
        self._backend = _backend.acquire(url)
        self.url: str = self._backend.url
        self.dialect: str = self._backend.dialect
        self._seen = self._backend.generation
        self._closed = False

    def __repr__(self) -> str:
        return f"QueueStore({self._backend.engine.url.render_as_string(hide_password=True)!r})"

    # --- queues ---------------------------------------------------------------------------------

    def create_queue(self, queue: Queue) -> Queue:
        """Store a new queue; QueueError if one with the same entity and name exists."""
        now = time.time()
        created = dataclasses.replace(queue, id=None, created_at=now, updated_at=now)
        values = queue_values(created)
        check_json(values, QueueError, f'queue "{queue.path}"')
        try:
            with self._backend.write() as conn:
                result = conn.execute(queues.insert().values(**values))
                created.id = result.inserted_primary_key[0]
        except IntegrityError:
            raise QueueError(
                f'queue "{queue.path}" already exists; pick another name or edit it with '
                f"`launch-jupyter queue edit {queue.path}`"
            ) from None
        return created

    def get_queue(self, entity: str, name: str) -> Queue:
        """The queue ``entity/name``; QueueError if it does not exist."""
        with self._backend.read() as conn:
            row = conn.execute(select(queues).where(queues.c.entity == entity, queues.c.name == name)).first()
        if row is None:
            raise _no_queue(f"{entity}/{name}")
        return queue_from_row(row)

    def get_queue_by_id(self, queue_id: int) -> Queue:
        """The queue with this id; QueueError if it does not exist (any more)."""
        with self._backend.read() as conn:
            row = conn.execute(select(queues).where(queues.c.id == queue_id)).first()
        if row is None:
            raise QueueError(f"queue #{queue_id} does not exist (was it deleted?)")
        return queue_from_row(row)

    def find_queue(self, name: str, user: str, entity: str | None = None) -> Queue:
        """The queue a user means by ``name`` (or ``entity/name``): their own first, else a shared one."""
        if "/" in name:
            entity, name = name.split("/", 1)
        if entity:
            queue = self.get_queue(entity, name)
            if not _visible(queue, user):
                raise _no_queue(f"{entity}/{name}")
            return queue
        with self._backend.read() as conn:
            rows = conn.execute(select(queues).where(queues.c.name == name).order_by(queues.c.entity)).all()
        candidates = [queue_from_row(r) for r in rows]
        own = [q for q in candidates if q.entity == user]
        if own:
            return own[0]
        shared = [q for q in candidates if q.shared]
        if len(shared) == 1:
            return shared[0]
        if not shared:
            raise _no_queue(name)
        choices = ", ".join(q.path for q in shared)
        raise QueueError(f'queue name "{name}" is ambiguous; name one of: {choices}')

    def list_queues(self, user: str | None = None) -> list[Queue]:
        """Queues visible to ``user`` (all when None), by entity then name."""
        query = select(queues).order_by(queues.c.entity, queues.c.name)
        if user is not None:
            query = query.where(or_(queues.c.entity != queues.c.created_by, queues.c.created_by == user))
        with self._backend.read() as conn:
            return [queue_from_row(r) for r in conn.execute(query)]

    def update_queue(self, queue: Queue) -> Queue:
        """Save a changed queue (found by its id); bumps ``updated_at``."""
        if queue.id is None:
            raise QueueError(f'queue "{queue.path}" has no id; load it from the store before changing it')
        updated = dataclasses.replace(queue, updated_at=time.time())
        values = queue_values(updated)
        del values["created_at"]
        check_json(values, QueueError, f'queue "{queue.path}"')
        try:
            with self._backend.write() as conn:
                result = conn.execute(queues.update().where(queues.c.id == queue.id).values(**values))
                if result.rowcount == 0:
                    raise _no_queue(queue.path)
                row = conn.execute(select(queues).where(queues.c.id == queue.id)).one()
        except IntegrityError:
            raise QueueError(f'queue "{queue.path}" already exists; pick another name') from None
        return queue_from_row(row)

    def delete_queue(self, entity: str, name: str) -> None:
        """Delete a queue with no active run; its queued runs become cancelled. Runs and events stay."""
        path = f"{entity}/{name}"
        with self._backend.write() as conn:
            row = conn.execute(
                select(queues.c.id).where(queues.c.entity == entity, queues.c.name == name).with_for_update()
            ).first()
            if row is None:
                raise _no_queue(path)
            active = conn.execute(
                select(func.count()).where(runs.c.queue_id == row.id, runs.c.state.in_(ACTIVE_STATES))
            ).scalar_one()
            if active:
                raise QueueError(
                    f'queue "{path}" has {active} active run(s); cancel them (`launch-jupyter cancel RUN_ID`) '
                    "or wait until they finish, then delete it"
                )
            queued = (
                conn.execute(select(runs.c.id).where(runs.c.queue_id == row.id, runs.c.state == RunState.QUEUED.value))
                .scalars()
                .all()
            )
            now = time.time()
            for run_id in queued:
                _set(
                    conn,
                    run_id,
                    now,
                    state=RunState.CANCELLED.value,
                    finished_at=now,
                    cancel_requested=True,
                    message=f'queue "{path}" was deleted',
                )
                _event(conn, run_id, now, RunState.CANCELLED, f'queue "{path}" was deleted')
            conn.execute(queues.delete().where(queues.c.id == row.id))

    # --- runs -----------------------------------------------------------------------------------

    def enqueue(self, run: Run, context: bytes | None = None) -> Run:
        """Queue a run (and its build context) in one transaction, then wake waiting agents."""
        now = time.time()
        queued = queued_copy(run, now)
        values = run_values(queued)
        check_json(values, RunError, "run")
        try:
            with self._backend.write() as conn:
                exists = conn.execute(
                    select(queues.c.id).where(queues.c.id == queued.queue_id).with_for_update(read=True, key_share=True)
                ).first()
                if exists is None:
                    raise QueueError(f'queue "{queued.entity}/{queued.queue_name}" does not exist (any more)')
                conn.execute(runs.insert().values(**values))
                _event(conn, queued.id, now, RunState.QUEUED, "")
                if context is not None:
                    put_context(conn, queued.id, context)
                if self.dialect == "postgresql":
                    # Delivered to other processes' LISTEN connections when this transaction commits.
                    conn.execute(
                        text("SELECT pg_notify(:ch, :payload)"),
                        {"ch": self._backend.channel, "payload": f"{self._backend.token}:{queued.id}"},
                    )
        except IntegrityError:
            raise RunError(f"run id {queued.id!r} already exists; leave the id empty to get a fresh one") from None
        self._backend.wake()
        return queued

    def get_run(self, run_id: str) -> Run:
        """A run by id or by a unique prefix of at least 4 characters."""
        with self._backend.read() as conn:
            return run_from_row(_find_run(conn, run_id))

    def list_runs(
        self,
        *,
        queue_id: int | None = None,
        states: Iterable[RunState] | None = None,
        author: str | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs matching every filter given, newest first."""
        query = select(runs).order_by(runs.c.created_at.desc(), runs.c.seq.desc())
        if queue_id is not None:
            query = query.where(runs.c.queue_id == queue_id)
        if states is not None:
            query = query.where(runs.c.state.in_([RunState(s).value for s in states]))
        if author is not None:
            query = query.where(runs.c.author == author)
        if agent_id is not None:
            query = query.where(runs.c.agent_id == agent_id)
        if limit is not None:
            query = query.limit(limit)
        with self._backend.read() as conn:
            return [run_from_row(r) for r in conn.execute(query)]

    def get_context(self, run_id: str) -> bytes | None:
        """The run's build context (tar.gz bytes), or None if it was queued without one. A sweep's
        runs share their sweep's one context."""
        with self._backend.read() as conn:
            data = get_context(conn, run_id)
            if data is None:
                sweep_id = conn.execute(select(runs.c.sweep_id).where(runs.c.id == run_id)).scalar()
                if sweep_id is not None:
                    data = get_context(conn, sweep_context_key(sweep_id))
        return data

    def delete_run(self, run_id: str) -> Run:
        """Forget a finished run: its row, history, own build context, progress and records, in one
        transaction. An active run is refused (an agent still holds it: cancel it first)."""
        from ._schema import run_contexts, run_progress, run_records

        with self._backend.write() as conn:
            row = _find_run(conn, run_id, lock=True)
            if row.state not in TERMINAL_STATES:
                raise RunError(f"run {row.id} is {row.state}; cancel it first, then delete it")
            for table in (run_events, run_contexts, run_progress, run_records):
                conn.execute(table.delete().where(table.c.run_id == row.id))
            conn.execute(runs.delete().where(runs.c.id == row.id))
            return run_from_row(row)

    # --- claim and lease ------------------------------------------------------------------------

    def claim(self, queue_ids: Sequence[int], agent_id: str, lease_s: float, host: str | None = None) -> Run | None:
        """Take at most one run for ``agent_id``: first a run whose agent's lease expired (to reattach),
        else the head of the queue; queues are tried in the order given. Never the same run twice.

        Each claim or reattach bumps the run's ``lease_generation`` (the fencing token the agent's
        writes then name). A run bound to a host (``run.host``) is reattached only by an agent whose
        ``host`` is that one."""
        if not queue_ids:
            return None
        with self._backend.write() as conn:
            now = time.time()
            prioritized = _lock_queues(conn, queue_ids)
            for queue_id in queue_ids:
                if queue_id not in prioritized:
                    continue  # deleted meanwhile
                run = _reattach(conn, queue_id, agent_id, lease_s, now, host) or _take_queued(
                    conn, queue_id, prioritized[queue_id], agent_id, lease_s, now, exact=self.dialect == "postgresql"
                )
                if run is not None:
                    return run
        return None

    def renew(self, run_ids: Sequence[str], agent_id: str, lease_s: float) -> list[str]:
        """Extend the leases ``agent_id`` still holds; returns those run ids (the others were lost)."""
        if not run_ids:
            return []
        now = time.time()
        with self._backend.write() as conn:
            held = _renew_leases(conn, run_ids, agent_id, now + lease_s)
        return held

    def release(self, run_id: str, agent_id: str) -> None:
        """The agent stops: expire its lease now. A run not yet built goes back to the queue."""
        with self._backend.write() as conn:
            row = _lock_run(conn, run_id)
            if row.agent_id != agent_id or row.state not in ACTIVE_STATES:
                return
            now = time.time()
            if row.state in (RunState.CLAIMED.value, RunState.BUILDING.value):
                message = f"released by {agent_id}; back in the queue"
                _set(
                    conn,
                    run_id,
                    now,
                    state=RunState.QUEUED.value,
                    agent_id=None,
                    lease_expires_at=None,
                    started_at=None,
                    message=message,
                    lease_generation=row.lease_generation + 1,
                )
                _event(conn, run_id, now, RunState.QUEUED, message, agent_id)
            else:
                _set(conn, run_id, now, lease_expires_at=now)

    def expire_lease(self, run_id: str, agent_id: str) -> bool:
        """Make a (dead) agent's lease on a run expire now; False if that agent no longer holds it."""
        now = time.time()
        with self._backend.write() as conn:
            result = conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.agent_id == agent_id, runs.c.state.in_(ACTIVE_STATES))
                .values(lease_expires_at=now, updated_at=now)
            )
        return result.rowcount > 0

    def fail_stranded(self, queue_ids: Sequence[int], host: str, grace_s: float) -> list[Run]:
        """Fail the runs bound to another host whose lease lapsed more than ``grace_s`` ago: no agent
        on their host has served them for that long, and no agent elsewhere can. A run bound to this
        machine in an earlier boot fails at once: its process went with that boot."""
        if not queue_ids:
            return []
        from ..core.identity import host_name, how_long, rebooted_from

        now = time.time()
        failed = []
        with self._backend.write() as conn:
            rows = conn.execute(
                select(runs)
                .where(
                    runs.c.queue_id.in_(list(queue_ids)),
                    ACTIVE,
                    runs.c.host.is_not(None),
                    runs.c.host != host,
                    or_(
                        runs.c.lease_expires_at <= now - grace_s,
                        runs.c.host.startswith(host.split("/", 1)[0] + "/", autoescape=True),
                    ),
                )
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                lapsed = now - (row.lease_expires_at or now)
                if rebooted_from(row.host, host):
                    message = f"its host {host_name(row.host)} rebooted: the run's process ended with the earlier boot"
                elif (row.lease_expires_at or now) <= now - grace_s:
                    message = (
                        f"its host {host_name(row.host)} stopped serving it (no agent there for "
                        f"{how_long(lapsed)}); an agent on another host cannot reach a local run"
                    )
                else:
                    continue  # same hostname, another machine (a clone): the grace rule applies
                _set(
                    conn,
                    row.id,
                    now,
                    state=RunState.FAILED.value,
                    message=message,
                    finished_at=now,
                    lease_expires_at=None,
                    stage="run",
                    lease_generation=row.lease_generation + 1,
                )
                _event(conn, row.id, now, RunState.FAILED, message)
                failed.append(run_from_row(_lock_run(conn, row.id)))
        return failed

    # --- agents ---------------------------------------------------------------------------------

    def register_agent(
        self,
        agent_id: str,
        *,
        host: str,
        pid: int,
        queues: Sequence[str],
        queue_ids: Sequence[int],
        max_jobs: int,
        version: str,
        lease_s: float,
    ) -> None:
        """Record a starting agent (or refresh its row): who serves which queues, from where."""
        now = time.time()
        values = dict(
            host=host,
            pid=pid,
            queues=list(queues),
            queue_ids=list(queue_ids),
            max_jobs=max_jobs,
            version=version,
            lease_seconds=lease_s,
            heartbeat_at=now,
            stopped_at=None,
        )
        with self._backend.write() as conn:
            updated = conn.execute(agents.update().where(agents.c.id == agent_id).values(**values)).rowcount
            if not updated:
                conn.execute(agents.insert().values(id=agent_id, started_at=now, **values))

    def agent_heartbeat(self, agent_id: str) -> None:
        """The agent is alive now."""
        with self._backend.write() as conn:
            conn.execute(agents.update().where(agents.c.id == agent_id).values(heartbeat_at=time.time()))

    def heartbeat(self, agent_id: str, run_ids: Sequence[str], lease_s: float) -> list[str]:
        """One transaction for an agent's heartbeat: its registry row and the leases it still holds
        (returned; the others were lost)."""
        now = time.time()
        with self._backend.write() as conn:
            conn.execute(agents.update().where(agents.c.id == agent_id).values(heartbeat_at=now))
            if not run_ids:
                return []
            held = _renew_leases(conn, run_ids, agent_id, now + lease_s)
        return held

    def agent_stopped(self, agent_id: str) -> None:
        """The agent stopped cleanly."""
        with self._backend.write() as conn:
            conn.execute(agents.update().where(agents.c.id == agent_id).values(stopped_at=time.time()))

    def list_agents(self, *, forget_after_s: float = 86400.0) -> list[dict]:
        """Every agent seen within ``forget_after_s`` (older rows are deleted), newest heartbeat first.
        Each is a dict: id, host, pid, queues, queue_ids, max_jobs, version, lease_seconds, started_at,
        heartbeat_at, stopped_at."""
        now = time.time()
        with self._backend.write() as conn:
            conn.execute(agents.delete().where(agents.c.heartbeat_at < now - forget_after_s))
            rows = conn.execute(select(agents).order_by(agents.c.heartbeat_at.desc())).all()
        return [dict(row._mapping) for row in rows]

    # --- state and history ----------------------------------------------------------------------

    def transition(
        self,
        run_id: str,
        state: RunState,
        message: str = "",
        *,
        fence: Fence | None = None,
        with_event: bool = False,
        **fields: Any,
    ) -> Any:
        """Move a run to ``state`` (with any Run fields) and append the event. A finished run is left as is.

        Returns the Run; with ``with_event`` the pair (Run, the stored Event with its id, or None when
        the run had finished already), which is what an agent publishes to its listeners.

        With ``fence`` (agent id, lease generation) the write is a compare-and-set: LeaseLost unless
        that agent still holds the run under that generation and the run is not finished."""
        state = RunState(state)
        values = column_values(fields)
        check_json(values, RunError, "run")
        with self._backend.write() as conn:
            row = _lock_run(conn, run_id)
            _check_fence(row, fence)
            if row.state in TERMINAL_STATES:
                return (run_from_row(row), None) if with_event else run_from_row(row)
            now = time.time()
            values["state"] = state.value
            values["message"] = message  # the run's message is its latest state's: never a stale one
            if state.is_active and row.started_at is None:
                values.setdefault("started_at", now)
            if state == RunState.RUNNING and row.running_at is None:
                values.setdefault("running_at", now)
            if state.is_terminal:
                values.setdefault("finished_at", now)
                values["lease_expires_at"] = None
                cost = finished_cost(
                    values.get("cost", row.cost), row.resource, state.value, row.running_at, values["finished_at"]
                )
                if cost is not None:
                    values["cost"] = cost
            _set(conn, run_id, now, **values)
            event_id = _event(conn, run_id, now, state, message, fence[0] if fence else None)
            run = run_from_row(_lock_run(conn, run_id))
        if not with_event:
            return run
        return run, Event(
            id=event_id, run_id=run_id, time=now, state=state, message=message, agent_id=fence[0] if fence else None
        )

    def update(self, run_id: str, *, fence: Fence | None = None, **fields: Any) -> Run:
        """Save Run fields without a state change or event (e.g. the external id the moment it exists);
        ``fence`` as in ``transition``."""
        values = column_values(fields)
        check_json(values, RunError, "run")
        with self._backend.write() as conn:
            _check_fence(_lock_run(conn, run_id), fence)
            _set(conn, run_id, time.time(), **values)
            return run_from_row(_lock_run(conn, run_id))

    def add_event(
        self, run_id: str, message: str, state: RunState | None = None, *, fence: Fence | None = None
    ) -> Event:
        """Append a history line (e.g. build progress) without changing the run's state; ``fence`` as
        in ``transition``."""
        with self._backend.write() as conn:
            row = _lock_run(conn, run_id)
            _check_fence(row, fence)
            event_state = RunState(state) if state is not None else RunState(row.state)
            event_id = _event(conn, run_id, time.time(), event_state, message, fence[0] if fence else None)
            return event_from_row(conn.execute(select(run_events).where(run_events.c.id == event_id)).one())

    def events(self, run_id: str, after_id: int | None = None) -> list[Event]:
        """A run's history, oldest first (only events after ``after_id`` when given)."""
        query = select(run_events).where(run_events.c.run_id == run_id).order_by(run_events.c.id)
        if after_id is not None:
            query = query.where(run_events.c.id > after_id)
        with self._backend.read() as conn:
            return [event_from_row(r) for r in conn.execute(query)]

    def events_since(self, after_id: int, limit: int = 1000) -> list[Event]:
        """Every run's events with id above ``after_id``, oldest first (what the widgets follow).

        On PostgreSQL two transactions can commit their events out of id order, so a follower polling
        exactly at that moment may see a higher id first; such a late line is still in ``events()``.
        """
        query = select(run_events).where(run_events.c.id > after_id).order_by(run_events.c.id).limit(limit)
        with self._backend.read() as conn:
            return [event_from_row(r) for r in conn.execute(query)]

    def events_for(self, run_ids: Sequence[str]) -> dict[str, list[Event]]:
        """The histories of many runs in one statement: run id → its events, oldest first
        (every id asked for is a key; a run without events maps to [])."""
        if not run_ids:
            return {}
        with self._backend.read() as conn:
            return _events_by_run(conn, run_ids)

    def last_event_id(self) -> int:
        """The id of the newest event (0 when there is none): where a follower starts."""
        with self._backend.read() as conn:
            return int(conn.execute(select(func.max(run_events.c.id))).scalar() or 0)

    def run_counts(self, *, queue: str | None = None, text: str | None = None) -> dict[tuple[str, str], int]:
        """How many runs per (queue "entity/name", state), with the filters of ``board_page`` but the
        state: one statement that gives a board its counts per state, its queues and its total."""
        with self._backend.read() as conn:
            return _counts(conn, queue, text)

    def board_page(
        self,
        *,
        queue: str | None = None,
        states: Iterable[RunState | str] | None = None,
        text: str | None = None,
        sort: str = "created",
        descending: bool = True,
        page: int = 0,
        limit: int = 50,
    ) -> tuple[dict[tuple[str, str], int], int, list[Run], dict[str, list[Event]]]:
        """What a run board shows, in one read transaction of three statements whatever the page's
        size: the counts (as ``run_counts``), the page number actually shown (the last one when
        ``page`` is past the end), the page of runs and their events. The page holds the runs of
        ``queue`` ("entity/name" or a name), in ``states``, whose id, name, author, queue or message
        contains ``text``, sorted by ``sort``."""
        chosen = None if states is None else [RunState(s).value for s in states]
        with self._backend.read() as conn:
            counts = _counts(conn, queue, text)
            total = sum(n for (_q, state), n in counts.items() if chosen is None or state in chosen)
            page = min(max(0, page), max(0, (total - 1) // max(1, limit)))
            query = _page_query(queue, chosen, text, sort, descending, page * limit, limit)
            found = [run_from_row(r) for r in conn.execute(query)]
            events = _events_by_run(conn, [run.id for run in found])
        return counts, page, found, events

    def request_cancel(self, run_id: str) -> Run:
        """Cancel a run: a queued one at once, an active one by flagging it for its agent."""
        with self._backend.write() as conn:
            row = _find_run(conn, run_id, lock=True)
            run_id = row.id
            if row.state in TERMINAL_STATES:
                raise RunError(f"run {run_id} already {row.state}; nothing to cancel")
            if row.cancel_requested and row.state != RunState.QUEUED.value:
                return run_from_row(row)
            now = time.time()
            if row.state == RunState.QUEUED.value:
                _set(
                    conn,
                    run_id,
                    now,
                    state=RunState.CANCELLED.value,
                    cancel_requested=True,
                    finished_at=now,
                    message="cancelled before it started",
                )
                _event(conn, run_id, now, RunState.CANCELLED, "cancelled before it started")
            else:
                _set(conn, run_id, now, cancel_requested=True)
                _event(conn, run_id, now, RunState(row.state), "cancel requested")
            return run_from_row(_lock_run(conn, run_id))

    # --- waiting --------------------------------------------------------------------------------

    def wait_for_work(self, timeout: float) -> bool:
        """Block until a run is enqueued (in this process, or on PostgreSQL in any process) or
        ``timeout`` seconds pass; True if woken. An enqueue since this handle's last call counts."""
        generation = self._backend.wait(self._seen, timeout)
        woken = generation != self._seen
        self._seen = generation
        return woken

    def close(self) -> None:
        """Let go of the connection pool (closed when the process's last handle on this URL closes)."""
        if not self._closed:
            self._closed = True
            _backend.release(self._backend)


# --- helpers (each runs inside the caller's transaction) ------------------------------------------


def _run_filters(query: Any, queue: str | None, text: str | None) -> Any:
    # The board's filters: a queue as "entity/name" or a bare name, and a case-insensitive substring.
    if queue:
        entity, _, name = queue.rpartition("/")
        query = query.where(runs.c.queue_name == name)
        if entity:
            query = query.where(runs.c.entity == entity)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (runs.c.id, runs.c.name, runs.c.author, runs.c.queue_name, runs.c.message)
                )
            )
        )
    return query


RUN_SORTS = ("created", "name", "state", "queue", "author", "priority", "started", "finished")


def _page_query(
    queue: str | None,
    states: Iterable[RunState | str] | None,
    text: str | None,
    sort: str,
    descending: bool,
    offset: int,
    limit: int,
) -> Any:
    if sort not in RUN_SORTS:
        raise RunError(f"unknown sort {sort!r}; choose from: {', '.join(RUN_SORTS)}")
    column = {
        "created": runs.c.created_at,
        "name": runs.c.name,
        "state": runs.c.state,
        "queue": runs.c.queue_name,
        "author": runs.c.author,
        "priority": runs.c.priority,
        "started": runs.c.started_at,
        "finished": runs.c.finished_at,
    }[sort]
    order = [column.desc() if descending else column.asc()]
    # Tie-breakers keep the order total, so pages neither repeat nor skip a run.
    if sort == "created":
        order.append(runs.c.seq.desc() if descending else runs.c.seq.asc())
    else:
        order += [runs.c.created_at.desc(), runs.c.seq.desc()]
    query = _run_filters(select(runs), queue, text)
    if states is not None:
        query = query.where(runs.c.state.in_([RunState(s).value for s in states]))
    return query.order_by(*order).offset(max(0, offset)).limit(max(1, limit))


def _counts(conn: Connection, queue: str | None, text: str | None) -> dict[tuple[str, str], int]:
    path = runs.c.entity + "/" + runs.c.queue_name
    query = _run_filters(select(path.label("queue"), runs.c.state, func.count().label("n")), queue, text)
    query = query.group_by(runs.c.entity, runs.c.queue_name, runs.c.state)
    return {(row.queue, row.state): int(row.n) for row in conn.execute(query)}


def _events_by_run(conn: Connection, run_ids: Iterable[str]) -> dict[str, list[Event]]:
    """Run id → its events, oldest first, in one statement (none for no ids); every id is a key."""
    found: dict[str, list[Event]] = {run_id: [] for run_id in run_ids}
    if found:
        query = select(run_events).where(run_events.c.run_id.in_(list(found))).order_by(run_events.c.id)
        for row in conn.execute(query):
            found[row.run_id].append(event_from_row(row))
    return found


def _renew_leases(conn: Connection, run_ids: Sequence[str], agent_id: str, expires_at: float) -> list[str]:
    """Move to ``expires_at`` the leases ``agent_id`` still holds among ``run_ids``: those ids, in their order."""
    held = set(
        conn.execute(
            runs.update()
            .where(runs.c.id.in_(list(run_ids)), runs.c.agent_id == agent_id, runs.c.state.in_(ACTIVE_STATES))
            .values(lease_expires_at=expires_at)
            .returning(runs.c.id)
        )
        .scalars()
        .all()
    )
    return [run_id for run_id in run_ids if run_id in held]


def _no_queue(path: str) -> QueueError:
    return QueueError(f'queue "{path}" does not exist; see `launch-jupyter queue list`')


def _visible(queue: Queue, user: str) -> bool:
    """Shared (team) queues are visible to everyone; a private one only to its creator."""
    return queue.shared or queue.created_by == user


def _find_run(conn: Connection, run_id: str, lock: bool = False) -> Any:
    query = select(runs).where(runs.c.id == run_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is not None:
        return row
    if len(run_id) >= MIN_PREFIX:
        pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = select(runs).where(runs.c.id.like(pattern, escape="\\")).limit(2)
        rows = conn.execute(query.with_for_update() if lock else query).all()
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise RunError(f"run id prefix {run_id!r} matches several runs; give more characters")
    raise RunError(f"run {run_id!r} does not exist; see `launch-jupyter runs`")


def _lock_run(conn: Connection, run_id: str) -> Any:
    row = conn.execute(select(runs).where(runs.c.id == run_id).with_for_update()).first()
    if row is None:
        raise RunError(f"run {run_id!r} does not exist; see `launch-jupyter runs`")
    return row


def _check_fence(row: Any, fence: Fence | None) -> None:
    if fence is None:
        return
    if row.agent_id != fence[0] or row.lease_generation != fence[1] or row.state in TERMINAL_STATES:
        raise LeaseLost(row.id, fence, row.agent_id, row.lease_generation, row.state)


def _set(conn: Connection, run_id: str, now: float, **values: Any) -> None:
    conn.execute(runs.update().where(runs.c.id == run_id).values(updated_at=now, **values))


def _event(
    conn: Connection, run_id: str, now: float, state: RunState, message: str, agent_id: str | None = None
) -> int:
    result = conn.execute(
        run_events.insert().values(run_id=run_id, time=now, state=state.value, message=message, agent_id=agent_id)
    )
    return result.inserted_primary_key[0]  # type: ignore[index]  # an INSERT's row always has one


def _lock_queues(conn: Connection, queue_ids: Sequence[int]) -> dict[int, bool]:
    """{queue id: prioritization} for the queues that exist. The KEY SHARE lock keeps a concurrent
    delete_queue from cancelling runs under a claim (claims do not block each other)."""
    rows = conn.execute(
        select(queues.c.id, queues.c.prioritization)
        .where(queues.c.id.in_(list(queue_ids)))
        .with_for_update(read=True, key_share=True)
    )
    return {row.id: bool(row.prioritization) for row in rows}


def _reattach(
    conn: Connection, queue_id: int, agent_id: str, lease_s: float, now: float, host: str | None
) -> Run | None:
    """An active run whose lease expired (its agent died or stopped): the new agent takes it over as is.
    A run bound to a host is only for an agent on that host."""
    same_host = runs.c.host.is_(None) if host is None else or_(runs.c.host.is_(None), runs.c.host == host)
    expired = (
        select(runs.c.seq)
        .where(
            runs.c.queue_id == queue_id,
            ACTIVE,
            or_(runs.c.lease_expires_at.is_(None), runs.c.lease_expires_at <= now),
            same_host,
        )
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    row = conn.execute(
        runs.update()
        .where(runs.c.seq == expired)
        .values(
            agent_id=agent_id,
            lease_expires_at=now + lease_s,
            updated_at=now,
            lease_generation=runs.c.lease_generation + 1,
        )
        .returning(*runs.c)
    ).first()
    if row is None:
        return None
    _event(conn, row.id, now, RunState(row.state), f"reattached by {agent_id}", agent_id)
    return run_from_row(row)


def _take_queued(
    conn: Connection,
    queue_id: int,
    prioritized: bool,
    agent_id: str,
    lease_s: float,
    now: float,
    exact: bool = False,
) -> Run | None:
    """The head of the queue: by priority then FIFO on a prioritised queue, else FIFO, skipping the
    runs of a sweep that has ``max_parallel`` runs active already.
    One UPDATE ... WHERE seq = (SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING: one round trip.

    SQLite runs one writer at a time, so the sweep condition is exact there. On PostgreSQL
    (``exact``) concurrent claims cannot see each other's uncommitted runs: a claim of a sweep's run
    then locks the sweep and counts again, and puts the run back if it went over."""
    full: list[str] = []
    while True:
        row = _take_head(conn, queue_id, prioritized, agent_id, lease_s, now, full)
        if row is None:
            return None
        if not (exact and row.sweep_id is not None and sweep_over_limit(conn, row.sweep_id)):
            break
        undo_claim(conn, row)
        full.append(row.sweep_id)
    _event(conn, row.id, now, RunState.CLAIMED, f"claimed by {agent_id}", agent_id)
    return run_from_row(row)


def _take_head(
    conn: Connection, queue_id: int, prioritized: bool, agent_id: str, lease_s: float, now: float, full: Sequence[str]
) -> Any:
    order = [runs.c.created_at, runs.c.seq]
    if prioritized:
        order.insert(0, runs.c.priority)
    head = (
        select(runs.c.seq)
        .where(runs.c.queue_id == queue_id, QUEUED, runs.c.cancel_requested.is_(False), sweep_has_room(full))
        .order_by(*order)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return conn.execute(
        runs.update()
        .where(runs.c.seq == head)
        .values(
            state=RunState.CLAIMED.value,
            agent_id=agent_id,
            lease_expires_at=now + lease_s,
            started_at=func.coalesce(runs.c.started_at, now),
            updated_at=now,
            lease_generation=runs.c.lease_generation + 1,
        )
        .returning(*runs.c)
    ).first()
