"""The agent: claim → build → submit → track, as a thread in the kernel or in the foreground (CLI).

The life cycle of a run is written once here, around the few methods a builder and a runner have.
The store is the only shared truth: every transition is an event row, the external id is saved the
moment it exists, and a lease that is not renewed hands the run to the next agent, which reattaches
(tracks the existing job) instead of starting a second one.

Fencing: each claim or reattach gives the run a new lease generation, and every write this agent
makes for a run is a compare-and-set on (run, agent, generation). A write that lost (the agent
stalled past its lease and another agent took the run) raises ``LeaseLost``; the worker then drops
the run without another side effect. The lease is checked once more right before a job is created
at the target (recorded as ``submitting``), so a stale "no job yet" answer never creates a second job.
Leases are renewed by a heartbeat thread of their own, and every runner call has a deadline, so a
hung call neither lets leases lapse nor freezes the loop.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._process import process_alive
from .core.config import AgentConfig, builder_for, current_user
from .core.errors import BuildError, ConfigError, DispatchError, LaunchError
from .core.identity import host_identity, host_name, macro_values
from .core.model import Event, Job, Queue, Run
from .core.states import AT_TARGET, TERMINAL, RunState
from .progress import record as record_progress
from .schedules import fire_due
from .store import LeaseLost

if TYPE_CHECKING:
    from .runners import Runner

T = TypeVar("T")
ACTIVE_STATES = [s for s in RunState if s.is_active]  # held by an agent, not finished
TAKEOVER_EVERY_S = 30.0  # a dead agent's lease lapses on its own by then; --until-idle looks at once
IDLE_LOOK_S = 60.0  # with no lease in sight to lapse, claims are looked for this often (new work wakes us)
LISTEN_REARM_S = 600.0  # the listen thread's wait ends this often only to re-arm; an enqueue ends it at once
STRANDED_EVERY_S = 60.0
SUBMIT_DEADLINE_S = 300.0  # how long transient errors of one submit are retried
RETRY_BASE_S, RETRY_CAP_S = 0.5, 10.0


def make_agent_id() -> str:
    """``host:pid:nonce`` — the host and process name where the agent lives."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def agent_is_dead_here(agent_id: str | None, host: str | None = None) -> bool:
    """True when ``agent_id`` names a process on this host that no longer exists.

    ``host`` is the agent's registered host identity when known (it tells cloned machines with one
    hostname apart); without it the hostname in the id decides.
    """
    if not agent_id:
        return False
    parts = agent_id.split(":")
    if len(parts) < 2 or not parts[1].isdigit():
        return False
    here = host == host_identity() if host else parts[0] == socket.gethostname()
    if not here:
        return False
    pid = int(parts[1])
    return pid != os.getpid() and not process_alive(pid)


def build_job(
    run: Run,
    queue: Queue,
    config: AgentConfig,
    *,
    context_dir: Path | None,
    notebook: str,
    image_uri: str | None,
    workdir: Path | None = None,
) -> Job:
    """The Job a runner receives: the run's config with the dispatch macros filled."""
    from .core.templates import fill_macros

    values = macro_values(
        run_id=run.id, entity=queue.entity, queue=queue.name, author=run.author, notebook=notebook, image_uri=image_uri
    )
    from .core.cost import runner_config

    return Job(
        run=run,
        queue=queue,
        config=fill_macros(runner_config(run.config), values),
        workdir=workdir or config.data_dir / "runs" / run.id,
        context_dir=context_dir,
        notebook=notebook,
        image_uri=image_uri,
        environment=config.environment,
    )


class _Abandoned(Exception):
    """This agent lost the run (or is stopping): unwind the worker without another side effect."""


@dataclass
class _Active:
    """A run this agent holds, under the lease generation it was given."""

    run: Run
    queue: Queue
    runner: Runner
    fence: tuple[str, int]
    job: Job | None = None
    phase: str = "preparing"  # preparing (build + submit on a worker) | tracking
    stage: str = "build"
    cancel_requested: bool = False
    cancel_sent: bool = False
    lost: bool = False
    status_ok_at: float = field(default_factory=time.monotonic)  # the last time its status was read
    status_error: str = ""
    said: str = ""  # the last status message recorded (a new one in the same state is one event)
    halt: threading.Event = field(default_factory=threading.Event)  # set when lost or stopping: ends waits
    due: bool = False  # its runner said it may have ended: read its status now, not at the next poll


@dataclass
class _Poll:
    """A status call under way for one resource's runs."""

    started: float
    actives: list[_Active]
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[dict[str, Any], str] | None = None


class Agent:
    """Takes runs off queues and sees each through to a final state."""

    def __init__(
        self,
        queues: list[str] | tuple[str, ...] = (),
        *,
        max_jobs: int | None = None,
        config: AgentConfig | None = None,
        config_path: str | None = None,
        store_url: str | None = None,
        poll_interval: float | None = None,
        log: Callable[[str], None] | None = None,
    ):
        from .core.config import load_agent_config

        cfg = config or load_agent_config(config_path)
        if queues:
            cfg = replace(cfg, queues=list(queues))
        if max_jobs is not None:
            cfg = replace(cfg, max_jobs=max_jobs)
        if store_url:
            cfg = replace(cfg, store=store_url)
        if poll_interval is not None:
            cfg = replace(cfg, poll_interval=poll_interval)
        if cfg.max_jobs == 0 or cfg.max_jobs < -1:
            raise ConfigError("must be a positive number or -1 (no limit)", path="max_jobs")
        self.config = cfg
        self.agent_id = make_agent_id()
        self.host = host_identity()
        self._log = log
        self._queues: list[Queue] = []
        self._runners: dict[str, Runner] = {}
        self._active: dict[str, _Active] = {}
        self._lock = threading.RLock()
        self._build_locks: dict[str, threading.Lock] = {}  # content hash → lock: a sweep builds once
        self._wake = threading.Event()
        self._beat = threading.Event()  # the heartbeat's wake-up: a run was taken, or the agent stops
        self._next_lapse: float | None = None  # (monotonic) the earliest lease another agent holds here
        self._last_scan = float("-inf")  # (monotonic) the last look for dead local agents' runs
        self.wakeups = {"loop": 0, "heartbeat": 0, "listen": 0}  # how often each thread woke (tests count)
        self._stopping = threading.Event()
        self._calls: set[threading.Event] = set()  # runner calls under way: stop() ends their waits
        self._polls: dict[str, _Poll] = {}  # status calls under way, by resource (the loop's own)
        self._subscribers: list[Callable[[Event], None]] = []
        self._thread: threading.Thread | None = None
        self._state = "stopped"
        self._activity = ""
        self._rotation = 0
        self._store: Any = None
        self.left: list[Run] = []  # what --until-idle left (runs bound to other hosts)

    # ------------------------------------------------------------ public

    @property
    def store(self):
        if self._store is None:
            from .store import open_store

            self._store = open_store(self.config.store)
        return self._store

    def preflight(self) -> None:
        """Refuse to start (LaunchError) when a queue is missing or its runner/builder cannot work here."""
        from .builders import get_builder
        from .runners import as_runner, get_runner

        user = current_user()
        if self.config.queues:
            queues = []
            for ref in self.config.queues:
                entity, _, name = ref.rpartition("/")
                queues.append(self.store.find_queue(name, user, entity or None))
        else:
            # Without -q only the queues this user created: a shared queue someone else made must
            # not run that person's notebooks under this user's credentials.
            queues = [q for q in self.store.list_queues(user) if q.created_by == user]
            if not queues:
                raise LaunchError(f"no queues to serve: {user} created none; create one, or name them with -q QUEUE")
            self._say(
                f"no -q given: serving the queues {user} created ({', '.join(q.path for q in queues)}); "
                "name others' shared queues with -q ENTITY/QUEUE"
            )
        _check_writable(self.config.data_dir)
        for queue in queues:
            runner = self._runners.get(queue.resource) or as_runner(get_runner(queue.resource, self.config))
            runner.preflight(queue, self.config)
            self._runners[queue.resource] = runner
            if runner.needs_image:
                get_builder(builder_for(self.config, queue.config), self.config).preflight()
        self._queues = queues

    def start(self) -> Agent:
        """Run in a daemon thread and return at once (the in-kernel way)."""
        self.preflight()
        self._thread = threading.Thread(target=self._run, name=f"launch-agent {self.agent_id}", daemon=True)
        self._state = "starting"
        self._thread.start()
        atexit.register(self.stop, 5.0)
        return self

    def run_forever(self, until_idle: bool = False) -> None:
        """Run in this thread (the CLI way); with ``until_idle`` return once nothing is queued or
        active here (runs bound to another host are left, and listed in ``left``)."""
        self.preflight()
        self._run(until_idle)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop promptly; active runs keep their external ids and their leases are released."""
        self._stopping.set()
        self._wake.set()
        self._beat.set()
        for done in list(self._calls):
            done.set()
        with self._lock:
            for active in self._active.values():
                active.halt.set()  # a builder waiting on a remote build hears it
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wake(self) -> None:
        """Look at the store now (a run was queued or a cancel requested in this process)."""
        self._wake.set()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` from the agent thread for every transition; returns unsubscribe."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def status(self) -> dict:
        """State, queues, capacity used/total, active runs and current activity."""
        with self._lock:
            active = {
                rid: {"state": str(a.run.state), "phase": a.phase, "queue": a.queue.name}
                for rid, a in self._active.items()
            }
        return {
            "state": self._state,
            "agent_id": self.agent_id,
            "host": self.host,
            "queues": [q.path for q in self._queues],
            "max_jobs": self.config.max_jobs,
            "capacity": self.config.max_jobs,  # -1: no limit
            "active": len(active),
            "runs": active,
            "activity": self._activity,
        }

    # ------------------------------------------------------------ the loop

    def _run(self, until_idle: bool = False) -> None:
        from . import __version__

        self._state = "running"
        self.store.register_agent(
            self.agent_id,
            host=self.host,
            pid=os.getpid(),
            queues=[q.path for q in self._queues],
            queue_ids=[q.id for q in self._queues],
            max_jobs=self.config.max_jobs,
            version=__version__,
            lease_s=self.config.lease_seconds,
        )
        threading.Thread(target=self._listen, name="launch-agent-listen", daemon=True).start()
        threading.Thread(target=self._heartbeat, name="launch-agent-heartbeat", daemon=True).start()
        last_takeover = last_stranded = last_claim = float("-inf")
        last_track: dict[str, float] = {}
        self._say(f"agent {self.agent_id} on {host_name(self.host)} serving {', '.join(q.path for q in self._queues)}")
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                woken = self._wake.is_set()
                self._wake.clear()
                if now - last_takeover >= self._takeover_every():
                    self._take_over_dead_local_agents()
                    last_takeover = self._last_scan = now
                if now - last_stranded >= STRANDED_EVERY_S:
                    self._fail_stranded()
                    last_stranded = now
                woken = fire_due(self.store, self._queues, self.agent_id, self._say) or woken  # schedules' ticks
                self._sync_with_store()
                # New work wakes us (NOTIFY, the SQLite watcher, this process); leases that lapse
                # are looked for on a slower clock, so an idle agent costs next to nothing.
                if woken or now - last_claim >= self._claim_interval():
                    self._claim_while_capacity()
                    last_claim = now
                self._track(last_track)
                with self._lock:  # workers add and remove runs from their own threads
                    jobs = [a.job for a in self._active.values() if a.job is not None]
                record_progress(self.store, jobs)
                if until_idle and self._idle():
                    break
                with self._lock:
                    self._activity = f"{len(self._active)} active" if self._active else "idle"
                self._wake.wait(self._next_wait(last_track, last_claim))
                self.wakeups["loop"] += 1
        finally:
            self._shutdown()

    def _claim_interval(self) -> float:
        """Seconds from one claim look to the next when nothing wakes us: until the earliest lease
        another agent holds in these queues can lapse (seen by the takeover scan), else ``IDLE_LOOK_S``."""
        floor = max(self.config.poll_interval, min(self.config.lease_seconds / 3, 10.0))
        if self._next_lapse is None:
            return max(IDLE_LOOK_S, floor)
        return max(self._next_lapse - time.monotonic(), floor)

    def _takeover_every(self) -> float:
        return min(TAKEOVER_EVERY_S, self.config.lease_seconds)

    def _listen(self) -> None:
        # Wakes the loop when a run is queued elsewhere (PostgreSQL NOTIFY) or in this process.
        while not self._stopping.is_set():
            try:
                woken = self.store.wait_for_work(LISTEN_REARM_S)  # at once on an enqueue; the timeout re-arms
                self.wakeups["listen"] += 1
                if woken:
                    self._wake.set()
            except Exception:
                self._stopping.wait(self.config.poll_interval)

    def _heartbeat(self) -> None:
        # Leases are renewed here, never on the loop or a worker: a slow runner call cannot let them lapse.
        # Holding runs: a beat per third of a lease. Holding none: one per lease (the registry counts an
        # agent alive with a beat within two), and a claim wakes this thread onto the short clock.
        while not self._stopping.is_set():
            with self._lock:
                holding = bool(self._active)
            taken = self._beat.wait(self.config.lease_seconds / 3 if holding else self.config.lease_seconds)
            self.wakeups["heartbeat"] += 1
            if self._stopping.is_set():
                return
            if taken:
                self._beat.clear()
                if not holding:
                    continue  # the new lease is fresh: renew it a third of a lease from now
            with self._lock:
                held = dict(self._active)
            try:
                kept = set(self.store.heartbeat(self.agent_id, list(held), self.config.lease_seconds))
            except Exception as err:  # the store is unreachable: try again next beat
                self._activity = f"heartbeat failed: {err}"
                continue
            for run_id, active in held.items():
                if run_id not in kept:
                    self._lose(active, "its lease was taken over or released")

    def _next_wait(self, last_track: dict[str, float], last_claim: float) -> float:
        now = time.monotonic()
        wait = max(last_claim + self._claim_interval() - now, 0.01)
        wait = min(wait, max(self._last_scan + self._takeover_every() - now, 0.01))
        with self._lock:
            tracking = {a.queue.resource for a in self._active.values() if a.phase == "tracking"}
            if self._active:
                wait = min(wait, self.config.poll_interval)  # cancel requests are read on this clock
        for resource in tracking - set(self._polls):
            due = last_track.get(resource, float("-inf")) + self._track_interval(resource)
            wait = min(wait, max(due - now, 0.01))
        for resource, poll in self._polls.items():  # a finished one wakes the loop itself
            wait = min(wait, max(poll.started + self._runners[resource].call_timeout - now, 0.01))
        return wait

    def _track_interval(self, resource: str) -> float:
        return self._runners[resource].poll_interval or self.config.poll_interval

    def _has_capacity(self) -> bool:
        with self._lock:
            return self.config.max_jobs < 0 or len(self._active) < self.config.max_jobs

    def _idle(self) -> bool:
        """Nothing queued, nothing held here, and nothing this agent could reattach (a lapsed lease, or
        one held by a dead agent on this host). Runs bound to another host are left."""
        with self._lock:
            if self._active:
                return False
        now = time.time()
        left = []
        for queue in self._queues:
            if self.store.list_runs(queue_id=queue.id, states=[RunState.QUEUED], limit=1):
                return False
            for run in self.store.list_runs(queue_id=queue.id, states=ACTIVE_STATES):
                if run.host not in (None, self.host):
                    left.append(run)
                elif run.lease_expires_at is None or run.lease_expires_at <= now:
                    return False
                elif agent_is_dead_here(run.agent_id, self._agent_host(run.agent_id)):
                    self.store.expire_lease(run.id, run.agent_id or "")
                    return False
        self.left = left
        for run in left:
            self._say(f"left {run.id} ({run.state}): it is bound to host {host_name(run.host)}")
        return True

    # ------------------------------------------------------------ claiming

    def _claim_while_capacity(self) -> None:
        queue_ids = [q.id for q in self._queues]
        while queue_ids and self._has_capacity() and not self._stopping.is_set():
            start = self._rotation % len(queue_ids)
            self._rotation += 1  # rotate the order so that no queue starves another
            run = self.store.claim(
                queue_ids[start:] + queue_ids[:start], self.agent_id, self.config.lease_seconds, host=self.host
            )
            if run is None:
                return
            self._adopt(run)

    def _adopt(self, run: Run) -> None:
        queue = next(q for q in self._queues if q.id == run.queue_id)
        active = _Active(
            run=run,
            queue=queue,
            runner=self._runners[queue.resource],
            fence=(self.agent_id, run.lease_generation),
            said=run.message or "",
        )
        with self._lock:
            self._active[run.id] = active
        self._beat.set()
        reattached = run.state is not RunState.CLAIMED
        self._emit(run, run.state, f"reattached by {self.agent_id}" if reattached else f"claimed by {self.agent_id}")
        if run.state in AT_TARGET and run.external_id:
            active.job = self._job(run, queue, run.image_uri)
            active.phase = "tracking"
            active.stage = "run"
            self._watch(active)
            return
        threading.Thread(target=self._prepare, args=(active,), name=f"launch-agent-run {run.id}", daemon=True).start()

    def _agent_host(self, agent_id: str | None) -> str | None:
        if not agent_id:
            return None
        row = next((a for a in self.store.list_agents() if a["id"] == agent_id), None)
        return row["host"] if row else None

    def _take_over_dead_local_agents(self) -> None:
        # An agent on this host whose process is gone cannot renew: its runs are ours at once.
        hosts: dict[str, str | None] | None = None
        lapses = []
        for queue in self._queues:
            for run in self.store.list_runs(queue_id=queue.id, states=ACTIVE_STATES):
                if run.agent_id != self.agent_id:
                    lapses.append(run.lease_expires_at or 0.0)
                if not run.agent_id or run.agent_id == self.agent_id:
                    continue
                if hosts is None:
                    hosts = {a["id"]: a["host"] for a in self.store.list_agents()}
                if agent_is_dead_here(run.agent_id, hosts.get(run.agent_id)):
                    self.store.expire_lease(run.id, run.agent_id)
                    self._wake.set()
        # The claim clock follows the leases: the earliest one another agent holds here can lapse then.
        self._next_lapse = time.monotonic() + max(min(lapses) - time.time(), 0.0) if lapses else None

    def _fail_stranded(self) -> None:
        for run in self.store.fail_stranded([q.id for q in self._queues], self.host, self.config.host_grace_seconds):
            self._emit(run, RunState.FAILED, run.message)

    # ------------------------------------------------------------ fenced writes

    def _transition(self, active: _Active, state: RunState, message: str, **fields: Any) -> Run:
        """A state write under this agent's lease; LeaseLost drops the run (raises _Abandoned)."""
        try:
            run, stored = self.store.transition(
                active.run.id, state, message, fence=active.fence, with_event=True, **fields
            )
        except LeaseLost as err:
            self._lose(active, str(err))
            raise _Abandoned from None
        active.run = run
        if active.job is not None:
            active.job.run = run
        self._emit(run, state, message, stored)
        return run

    def _update(self, active: _Active, **fields: Any) -> None:
        try:
            active.run = self.store.update(active.run.id, fence=active.fence, **fields)
        except LeaseLost as err:
            self._lose(active, str(err))
            raise _Abandoned from None

    def _note(self, active: _Active, message: str) -> None:
        """A history line under this agent's lease."""
        try:
            stored = self.store.add_event(active.run.id, message[:500], fence=active.fence)
        except LeaseLost as err:
            self._lose(active, str(err))
            raise _Abandoned from None
        self._emit(active.run, active.run.state, message[:500], stored)

    def _lose(self, active: _Active, why: str) -> None:
        if active.lost:
            return
        active.lost = True
        active.halt.set()
        with self._lock:
            if self._active.get(active.run.id) is active:
                del self._active[active.run.id]
        self._say(f"{active.run.id} dropped: {why}")
        self._wake.set()

    # ------------------------------------------------------------ runner calls

    def _call(self, runner: Runner, fn: Callable[[], T], what: str) -> T:
        """``fn()`` on a daemon thread with the runner's deadline; a call that hangs is left behind
        (DispatchError, transient) and ``stop()`` ends the wait at once (_Abandoned)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as err:  # handed to the caller
                box["error"] = err
            finally:
                done.set()

        self._calls.add(done)
        try:
            threading.Thread(target=target, name=f"launch-agent-call {what}", daemon=True).start()
            done.wait(runner.call_timeout)
        finally:
            self._calls.discard(done)
        if "error" in box:
            raise box["error"]
        if "value" in box:
            return box["value"]
        if self._stopping.is_set():
            raise _Abandoned
        raise DispatchError(
            f"{runner.resource}: {what} did not answer within {runner.call_timeout:.0f} s", transient=True
        )

    def _retry(
        self,
        active: _Active,
        what: str,
        fn: Callable[[], T],
        before_retry: Callable[[], Any] | None = None,
        deadline_s: float = SUBMIT_DEADLINE_S,
    ) -> T:
        """The one retry policy (``core.retry``): transient DispatchErrors are retried with capped,
        jittered backoff until ``deadline_s`` passes or the agent stops; anything else is raised at
        once. A runner that retries by itself (an older one) gets one attempt."""
        from .core.retry import Stopped, is_transient, retry

        runner = active.runner

        def note(attempt: int, delay: float, err: BaseException) -> None:
            self._note(active, f"{what}: retry {attempt} in {delay:.1f} s: {err}")

        try:
            return retry(
                lambda: self._call(runner, fn, what),
                deadline_s=deadline_s,
                stop=self._stopping,
                transient=lambda err: is_transient(err) and not runner.retries,
                before_retry=before_retry,
                on_retry=note,
                base_s=RETRY_BASE_S,
                cap_s=RETRY_CAP_S,
            )
        except Stopped:
            raise _Abandoned from None

    # ------------------------------------------------------------ build + submit (worker threads)

    def _context(self, run: Run) -> tuple[Path, str]:
        from .core.trust import run_folder
        from .packaging import unpack_context

        context_dir = run_folder(self.config.data_dir, run.id) / "context"
        if not context_dir.exists():
            data = self.store.get_context(run.id)
            if data is None:
                raise LaunchError(f"run {run.id} has no build context in the store")
            partial = context_dir.with_name(f"context.partial-{uuid.uuid4().hex[:6]}")
            unpack_context(data, partial)
            try:
                _check_context_hash(run, partial)
                partial.rename(context_dir)
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)  # another attempt won the race
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
        return context_dir, Path(run.notebook).name

    def _job(self, run: Run, queue: Queue, image_uri: str | None) -> Job:
        context_dir = self.config.data_dir / "runs" / run.id / "context"
        return build_job(
            run, queue, self.config, context_dir=context_dir, notebook=Path(run.notebook).name, image_uri=image_uri
        )

    def _prepare(self, active: _Active) -> None:
        run = active.run
        try:
            context_dir, notebook = self._context(run)
            image_uri = run.image_uri
            if active.runner.needs_image and not image_uri:
                image_uri = self._build(active, context_dir, notebook)
            if self._stopping.is_set() or active.lost:
                return
            if active.cancel_requested:
                self._finish(active, RunState.CANCELLED, "cancelled before dispatch")
                return
            active.stage = "submit"
            job = build_job(
                active.run, active.queue, self.config, context_dir=context_dir, notebook=notebook, image_uri=image_uri
            )
            external_id = self._submit(active, job)
            self._transition(
                active,
                RunState.SUBMITTED,
                f"submitted: {external_id}",
                external_id=external_id,
                image_uri=image_uri,
                log_path=active.runner.log_path(job),
            )
            job.run = active.run  # the runner tracks by the saved external id
            active.job = job
            active.status_ok_at = time.monotonic()
            active.stage = "run"
            active.phase = "tracking"
            self._watch(active)
        except _Abandoned:
            return
        except _CancelledBeforeCreate:
            try:
                self._finish(active, RunState.CANCELLED, "cancelled before dispatch")
            except _Abandoned:
                return
        except Exception as err:  # any failure of one run must not stop the agent
            if not self._stopping.is_set() and not active.lost:
                message = str(err) if isinstance(err, LaunchError) else f"{type(err).__name__}: {err}"
                try:
                    self._finish(active, RunState.FAILED, f"{active.stage} failed: {message}", stage=active.stage)
                except _Abandoned:
                    return
        finally:
            self._wake.set()

    def _build(self, active: _Active, context_dir: Path, notebook: str) -> str:
        """The run's image: built once per sweep (its runs share one content hash and one image), else
        built here. Runs of one content hash take turns, so the second finds the first one's image."""
        run = active.run
        if run.sweep_id is None or not run.content_hash:
            return self._build_image(active, context_dir, notebook)
        with self._lock:
            lock = self._build_locks.setdefault(run.content_hash, threading.Lock())
        with lock:
            built = self.store.sweep_image(run.sweep_id, run.content_hash)
            if built:
                self._note(active, f"image built for its sweep, nothing to build: {built}")
                self._update(active, image_uri=built)
                return built
            return self._build_image(active, context_dir, notebook)

    def _build_image(self, active: _Active, context_dir: Path, notebook: str) -> str:
        from .builders import get_builder
        from .packaging import BuildContext

        run = active.run
        bconf = builder_for(self.config, run.config)
        self._transition(active, RunState.BUILDING, f"building with {bconf.type}")
        log_path = self.config.data_dir / "runs" / run.id / "build.log"
        context = BuildContext(directory=context_dir, notebook=notebook, content_hash=run.content_hash or "")
        with open(log_path, "a", encoding="utf-8") as build_log:

            def log(line: str) -> None:
                build_log.write(line.rstrip("\n") + "\n")
                build_log.flush()
                if active.lost or self._stopping.is_set():
                    raise _Abandoned  # stops the builder at its next line
                if (
                    line.startswith(("Step ", "ERROR", "error", "image "))
                    or "skipping build" in line
                    or (line.startswith("Cloud Build ") and "status not read" not in line)
                ):  # a stage change
                    self._note(active, line.strip())

            builder = get_builder(bconf, self.config)
            if hasattr(builder, "location"):  # a cloud builder builds in the queue's region
                builder.location = active.runner.build_location(run.config)
            image = run.image or active.runner.configured_image(run.config)
            image_uri = builder.build(context, bconf.destination, bconf.platform, log, image=image, stop=active.halt)
        if active.lost:
            raise _Abandoned
        if not image_uri:
            raise BuildError("the builder returned no image")
        self._update(active, image_uri=image_uri)
        return image_uri

    def _submit(self, active: _Active, job: Job) -> str:
        """Find the run's job at the target, else check the lease (recorded as ``submitting``) and
        create it. A run left ``submitting`` by another agent waits out the target's list lag first."""
        runner = active.runner
        if active.run.state is RunState.SUBMITTING:
            self._wait_list_lag(active)
        existing = self._retry(active, "look for the run's job", lambda: runner.find(job))
        if existing:
            self._note(active, f"found its job at the target: {existing}")
            return existing
        bound = {"host": self.host} if runner.host_bound else {}
        self._transition(active, RunState.SUBMITTING, f"submitting to {runner.resource}", **bound)
        if active.cancel_requested:
            raise _CancelledBeforeCreate
        found: list[str] = []

        def look_again() -> None:  # a create that failed may still have made the job
            name = self._call(runner, lambda: runner.find(job), "look for the run's job")
            if name:
                found.append(name)
            self._check_lease(active)

        def create() -> str:
            return found[0] if found else runner.create(job)

        return self._retry(active, "create the job", create, before_retry=look_again)

    def _wait_list_lag(self, active: _Active) -> None:
        lag = active.runner.list_lag_seconds
        if lag <= 0:
            return
        started = max((e.time for e in self.store.events(active.run.id) if e.state is RunState.SUBMITTING), default=0.0)
        remaining = started + lag - time.time()
        if remaining > 0 and self._stopping.wait(remaining):
            raise _Abandoned

    def _check_lease(self, active: _Active) -> None:
        self._update(active)

    # ------------------------------------------------------------ tracking

    def _track(self, last_track: dict[str, float]) -> None:
        """Start one status call per resource when it is due, on a thread of its own, and apply the
        answers that came back: a slow or hung status call never holds up cancels, claims or stop."""
        self._collect_polls()
        now = time.monotonic()
        by_resource: dict[str, list[_Active]] = {}
        with self._lock:
            for active in self._active.values():
                if active.phase == "tracking" and active.job is not None:
                    by_resource.setdefault(active.queue.resource, []).append(active)
        for resource, actives in by_resource.items():
            due = any(a.due for a in actives)  # a watched run ended: read now, whatever the clock says
            if resource in self._polls or (
                not due and now - last_track.get(resource, float("-inf")) < self._track_interval(resource)
            ):
                continue
            for active in actives:
                active.due = False
            last_track[resource] = now
            poll = _Poll(started=now, actives=actives)
            self._polls[resource] = poll

            def read(runner: Runner = self._runners[resource], poll: _Poll = poll) -> None:
                try:
                    poll.result = self._poll(runner, poll.actives)
                finally:
                    poll.done.set()
                    self._wake.set()

            threading.Thread(target=read, name=f"launch-agent-poll {resource}", daemon=True).start()

    def _watch(self, active: _Active) -> None:
        """Ask the runner to say when the run may have ended (a local process or container): its status
        is then read at once. Batched polling goes on regardless, so a watch that fails only costs time."""
        job = active.job
        assert job is not None  # an active run's job is built before it is watched

        def changed() -> None:
            active.due = True
            self._wake.set()

        try:
            active.runner.watch(job, changed)
        except Exception as err:  # noqa: BLE001 - polling still sees the run end
            self._say(f"{active.run.id}: cannot watch for its end ({_describe(err)}); polling instead")

    def _collect_polls(self) -> None:
        now = time.monotonic()
        for resource, poll in list(self._polls.items()):
            deadline = self._runners[resource].call_timeout
            if poll.done.is_set() and poll.result is not None:
                statuses, error = poll.result
            elif poll.done.is_set():
                statuses, error = {}, "the status call failed"
            elif now - poll.started > deadline:
                statuses, error = {}, f"the status call did not answer within {deadline:.0f} s"  # left behind
            else:
                continue
            del self._polls[resource]
            for active in poll.actives:
                with self._lock:
                    current = self._active.get(active.run.id) is active
                if not current or active.phase != "tracking":
                    continue
                try:
                    self._apply_or_age(active, statuses.get(active.run.id), error)
                except _Abandoned:
                    continue

    def _poll(self, runner: Runner, actives: list[_Active]) -> tuple[dict[str, Any], str]:
        """One batched status call; when it fails, one call per run (a batch the target refuses, a
        filter it rejects, must not hide runs it would answer for one by one)."""
        jobs = [a.job for a in actives if a.job is not None]
        try:
            return runner.poll(jobs), ""
        except Exception as err:
            error = _describe(err)
        self._activity = f"status of {runner.resource} failed: {error}"
        statuses: dict[str, Any] = {}
        if len(jobs) > 1:
            for job in jobs:
                if self._stopping.is_set():
                    break
                try:
                    statuses.update(runner.poll([job]))
                except Exception as err:
                    error = _describe(err)
        return statuses, error

    def _apply_or_age(self, active: _Active, status: Any, error: str) -> None:
        if status is not None:
            active.status_ok_at = time.monotonic()
            active.status_error = ""
            self._apply(active, status)
            return
        if error and error != active.status_error:
            active.status_error = error
            self._note(active, f"cannot read the job's status: {error}")
        unread = time.monotonic() - active.status_ok_at
        if unread >= self.config.status_timeout:
            why = active.status_error or "the target did not report it"
            self._finish(
                active, RunState.FAILED, f"its status could not be read for {unread:.0f} s: {why}", stage="run"
            )

    def _apply(self, active: _Active, status: Any) -> None:
        run = active.run
        extra = {"output_notebook": status.output_notebook} if status.output_notebook else {}
        if status.state in TERMINAL:
            stage = {"stage": "run"} if status.state is RunState.FAILED else {}
            self._save_records(active, status.output_notebook)
            self._finish(active, status.state, status.message, **extra, **stage)
            return
        if status.state is run.state:
            if status.message and status.message != active.said:
                active.said = status.message  # same state, new message: one event per change, not per poll
                self._note(active, status.message)
            if not extra:
                return
        if status.state is not run.state:
            active.said = status.message
            self._transition(active, status.state, status.message, **extra)
        else:
            self._update(active, **extra)
        if active.job is not None:
            active.job.run = active.run

    def _save_records(self, active: _Active, output_notebook: str | None) -> None:
        """Store what the run recorded with ``launch_jupyter.record``, read from its executed notebook
        (a local file: the local runners'), before its final state, so whoever sees it end sees them."""
        if not output_notebook:
            return
        from .record import read_records_file, read_records_gcs

        try:
            if output_notebook.startswith("gs://"):
                records = read_records_gcs(output_notebook, self.config.environment)
            elif "://" not in output_notebook and Path(output_notebook).is_file():
                records = read_records_file(output_notebook)
            else:
                return
        except ValueError as err:
            self._note(active, str(err))
            return
        if records:
            self.store.save_records(active.run.id, records)
        for entry in records:
            if entry.get("error"):
                self._note(active, f"recorded value not kept: {entry['error']}")

    def _finish(self, active: _Active, state: RunState, message: str, **fields: Any) -> None:
        try:
            self._transition(active, state, message, **fields)
            self._tidy_context(active.run)
        finally:
            with self._lock:
                if self._active.get(active.run.id) is active:
                    del self._active[active.run.id]
            self._wake.set()

    def _tidy_context(self, run: Run) -> None:
        """A finished run's unpacked context goes (the store keeps it); what the run wrote or changed
        in it stays (the local-process runner runs the notebook there), and so do its log and
        executed notebook beside it. A folder left over is ``launch-jupyter gc``'s to remove."""
        from .core.trust import run_folder
        from .gc import tidy_context

        try:
            folder = run_folder(self.config.data_dir, run.id) / "context"
            if folder.is_dir() and not folder.is_symlink():
                data = self.store.get_context(run.id)
                if data is not None:
                    tidy_context(folder, data)
        except (OSError, LaunchError):
            return

    # ------------------------------------------------------------ leases and cancel

    def _sync_with_store(self) -> None:
        """Pick up cancel requests and notice runs whose lease another agent took."""
        with self._lock:
            mine = dict(self._active)
        if not mine:
            return
        rows = {r.id: r for r in self.store.list_runs(agent_id=self.agent_id, states=ACTIVE_STATES)}
        for run_id, active in mine.items():
            row = rows.get(run_id)
            if row is None or row.state in TERMINAL or row.lease_generation != active.fence[1]:
                self._lose(active, "another agent holds it now, or it ended")
                continue
            if row.cancel_requested and not active.cancel_sent:
                try:
                    self._cancel(active)
                except _Abandoned:
                    continue

    def _cancel(self, active: _Active) -> None:
        active.cancel_requested = True
        if active.phase != "tracking" or active.job is None:
            return  # the worker sees the flag before it creates the job
        active.cancel_sent = True
        job, runner = active.job, active.runner
        try:
            self._call(runner, lambda: runner.cancel(job), "cancel the job")
        except _Abandoned:
            raise
        except Exception as err:
            self._note(active, f"cancel failed: {_describe(err)}")
            active.cancel_sent = False
            return
        self._transition(active, RunState.CANCELLING, "cancel sent")

    def _shutdown(self) -> None:
        self._state = "stopping"
        self._stopping.set()
        with self._lock:
            held = list(self._active)
            for active in self._active.values():
                active.halt.set()
            self._active.clear()
        for run_id in held:
            try:
                self.store.release(run_id, self.agent_id)
            except Exception:
                pass  # the lease expires on its own
        try:
            self.store.agent_stopped(self.agent_id)
        except Exception:
            pass  # it ages out of the registry
        self._state = "stopped"
        self._activity = ""
        self._say(f"agent {self.agent_id} stopped")

    # ------------------------------------------------------------ events

    def _emit(self, run: Run, state: RunState, message: str, stored: Event | None = None) -> None:
        # Listeners get the stored event (with its id) when there is one: one event path, not two.
        event = stored or Event(run_id=run.id, time=time.time(), state=state, message=message)
        self._say(f"{run.id} {run.queue_name} {state}{': ' + message if message else ''}")
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                pass  # a broken subscriber must not stop the agent

    def _say(self, line: str) -> None:
        if self._log is not None:
            self._log(f"{time.strftime('%H:%M:%S')} {line}")


def _check_writable(data_dir: Path) -> None:
    """Refuse to start when runs could not be unpacked: else every claimed run would fail."""
    import tempfile

    try:
        runs = Path(data_dir) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=runs)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise LaunchError(
            f"data_dir {data_dir} is not writable ({err.strerror or err}): the agent unpacks "
            "each run there; set data_dir in launch-config.yaml (or XDG_DATA_HOME) to a "
            "folder you can write"
        ) from None


def _check_context_hash(run: Run, folder: Path) -> None:
    """The context must be the one submitted: its hash is the run's ``content_hash``."""
    from .packaging import hash_directory

    if not run.content_hash:
        raise LaunchError(f"run {run.id} has no content hash, so its build context cannot be checked; not used")
    actual = hash_directory(folder)
    if actual != run.content_hash:
        raise LaunchError(
            f"run {run.id}: the build context in the store does not match the run's content hash "
            f"({actual[:12]} ≠ {run.content_hash[:12]}): it was changed after submit; not used"
        )


class _CancelledBeforeCreate(LaunchError):
    """A cancel arrived between the look-up and the create: nothing was started."""


def _describe(err: BaseException) -> str:
    return str(err) if isinstance(err, LaunchError) else f"{type(err).__name__}: {err}"
