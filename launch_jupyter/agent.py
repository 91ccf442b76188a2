"""The agent: claim → build → submit → track, as a thread in the kernel or in the foreground (CLI).

The life cycle of a run is written once here, around the few methods a builder and a runner have.
The store is the only shared truth: every transition is an event row, the external id is saved the
moment it exists, and a lease that is not renewed hands the run to the next agent, which reattaches
(tracks the existing job) instead of starting a second one.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._process import process_alive
from .core.config import AgentConfig, builder_for, current_user
from .core.errors import BuildError, ConfigError, DispatchError, LaunchError
from .core.model import Event, Job, Queue, Run
from .core.states import AT_TARGET, TERMINAL, RunState

if TYPE_CHECKING:
    from .runners import Runner

SUBMIT_RETRIES = 4
ACTIVE_STATES = [s for s in RunState if s.is_active]  # held by an agent, not finished
TAKEOVER_EVERY_S = 10.0


def make_agent_id() -> str:
    """``host:pid:nonce`` — the host and process name where the agent lives."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def agent_is_dead_here(agent_id: str | None) -> bool:
    """True when ``agent_id`` names a process on this host that no longer exists."""
    if not agent_id:
        return False
    parts = agent_id.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
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

    values = {
        "image_uri": image_uri,
        "run_id": run.id,
        "queue": queue.name,
        "entity": queue.entity,
        "author": run.author,
        "notebook": notebook,
    }
    runner_config = {k: v for k, v in run.config.items() if k != "builder"}
    return Job(
        run=run,
        queue=queue,
        config=fill_macros(runner_config, values),
        workdir=workdir or config.data_dir / "runs" / run.id,
        context_dir=context_dir,
        notebook=notebook,
        image_uri=image_uri,
        environment=config.environment,
    )


def configured_image(run_config: dict) -> str | None:
    """An image the queue config names outright (not the ``${image_uri}`` macro)."""
    spec = run_config.get("spec") or {}
    for pool in spec.get("worker_pool_specs") or []:
        image = ((pool or {}).get("container_spec") or {}).get("image_uri")
        if image and "${" not in str(image):
            return str(image)
    image = run_config.get("image_uri")
    return str(image) if image and "${" not in str(image) else None


@dataclass
class _Active:
    """A run this agent holds."""

    run: Run
    queue: Queue
    runner: Runner
    job: Job | None = None
    phase: str = "preparing"  # preparing (build + submit on a worker) | tracking
    stage: str = "build"
    cancel_requested: bool = False
    cancel_sent: bool = False


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
        self._log = log
        self._queues: list[Queue] = []
        self._runners: dict[str, Runner] = {}
        self._active: dict[str, _Active] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._subscribers: list[Callable[[Event], None]] = []
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._state = "stopped"
        self._activity = ""
        self._rotation = 0
        self._store: Any = None

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
        from .runners import get_runner

        user = current_user()
        if self.config.queues:
            queues = []
            for ref in self.config.queues:
                entity, _, name = ref.rpartition("/")
                queues.append(self.store.find_queue(name, user, entity or None))
        else:
            queues = self.store.list_queues(user)
            if not queues:
                raise LaunchError("no queues to serve: create one, or name them with -q QUEUE")
        for queue in queues:
            runner = self._runners.get(queue.resource) or get_runner(queue.resource, self.config)
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
        """Run in this thread (the CLI way); with ``until_idle`` return once nothing is queued or active."""
        self.preflight()
        self._run(until_idle)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop promptly; active runs keep their external ids and their leases are released."""
        self._stopping.set()
        self._wake.set()
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
            active = {rid: {"state": str(a.run.state), "phase": a.phase, "queue": a.queue.name}
                      for rid, a in self._active.items()}
        return {
            "state": self._state,
            "agent_id": self.agent_id,
            "queues": [q.path for q in self._queues],
            "max_jobs": self.config.max_jobs,
            "capacity": self.config.max_jobs,  # -1: no limit
            "active": len(active),
            "runs": active,
            "activity": self._activity,
        }

    # ------------------------------------------------------------ the loop

    def _run(self, until_idle: bool = False) -> None:
        workers = self.config.max_jobs if self.config.max_jobs > 0 else 8
        self._pool = ThreadPoolExecutor(max_workers=min(workers, 16), thread_name_prefix="launch-agent-job")
        self._state = "running"
        threading.Thread(target=self._listen, name="launch-agent-listen", daemon=True).start()
        last_takeover = last_renew = 0.0
        last_track: dict[str, float] = {}
        self._say(f"agent {self.agent_id} serving {', '.join(q.path for q in self._queues)}")
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now - last_takeover >= TAKEOVER_EVERY_S:
                    self._take_over_dead_local_agents()
                    last_takeover = now
                self._sync_with_store()
                self._claim_while_capacity()
                self._track(last_track)
                if now - last_renew >= self.config.lease_seconds / 3:
                    self._renew()
                    last_renew = now
                if until_idle and self._idle():
                    break
                self._activity = f"{len(self._active)} active" if self._active else "idle"
                self._wake.wait(self._next_wait(last_track))
                self._wake.clear()
        finally:
            self._shutdown()

    def _listen(self) -> None:
        # Wakes the loop when a run is queued elsewhere (PostgreSQL NOTIFY) or in this process.
        while not self._stopping.is_set():
            try:
                if self.store.wait_for_work(self.config.poll_interval):
                    self._wake.set()
            except Exception:
                time.sleep(self.config.poll_interval)

    def _next_wait(self, last_track: dict[str, float]) -> float:
        wait = self.config.poll_interval
        now = time.monotonic()
        for resource in {a.queue.resource for a in self._active.values() if a.phase == "tracking"}:
            due = last_track.get(resource, 0.0) + self._track_interval(resource)
            wait = min(wait, max(due - now, 0.01))
        return wait

    def _track_interval(self, resource: str) -> float:
        return getattr(self._runners[resource], "poll_interval", None) or self.config.poll_interval

    def _has_capacity(self) -> bool:
        return self.config.max_jobs < 0 or len(self._active) < self.config.max_jobs

    def _idle(self) -> bool:
        if self._active:
            return False
        for queue in self._queues:
            if self.store.list_runs(queue_id=queue.id, states=[RunState.QUEUED], limit=1):
                return False
        return True

    # ------------------------------------------------------------ claiming

    def _claim_while_capacity(self) -> None:
        queue_ids = [q.id for q in self._queues]
        while queue_ids and self._has_capacity() and not self._stopping.is_set():
            start = self._rotation % len(queue_ids)
            self._rotation += 1  # rotate the order so that no queue starves another
            run = self.store.claim(queue_ids[start:] + queue_ids[:start], self.agent_id, self.config.lease_seconds)
            if run is None:
                return
            self._adopt(run)

    def _adopt(self, run: Run) -> None:
        queue = next(q for q in self._queues if q.id == run.queue_id)
        active = _Active(run=run, queue=queue, runner=self._runners[queue.resource])
        with self._lock:
            self._active[run.id] = active
        reattached = run.state is not RunState.CLAIMED
        self._emit(run, run.state, f"reattached by {self.agent_id}" if reattached else f"claimed by {self.agent_id}")
        if run.state in AT_TARGET and run.external_id:
            active.job = self._job(run, queue, run.image_uri)
            active.phase = "tracking"
            return
        assert self._pool is not None
        self._pool.submit(self._prepare, active)

    def _take_over_dead_local_agents(self) -> None:
        # An agent on this host whose process is gone cannot renew: its runs are ours at once.
        for queue in self._queues:
            for run in self.store.list_runs(queue_id=queue.id, states=ACTIVE_STATES):
                if run.agent_id != self.agent_id and agent_is_dead_here(run.agent_id):
                    self.store.expire_lease(run.id, run.agent_id)

    # ------------------------------------------------------------ build + submit (worker threads)

    def _context(self, run: Run) -> tuple[Path, str]:
        from .packaging import unpack_context

        context_dir = self.config.data_dir / "runs" / run.id / "context"
        if not context_dir.exists():
            data = self.store.get_context(run.id)
            if data is None:
                raise LaunchError(f"run {run.id} has no build context in the store")
            partial = context_dir.with_name(f"context.partial-{uuid.uuid4().hex[:6]}")
            unpack_context(data, partial)
            try:
                partial.rename(context_dir)
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)  # another attempt won the race
        return context_dir, Path(run.notebook).name

    def _job(self, run: Run, queue: Queue, image_uri: str | None) -> Job:
        context_dir = self.config.data_dir / "runs" / run.id / "context"
        return build_job(run, queue, self.config, context_dir=context_dir, notebook=Path(run.notebook).name,
                         image_uri=image_uri)

    def _prepare(self, active: _Active) -> None:
        run = active.run
        try:
            context_dir, notebook = self._context(run)
            image_uri = run.image_uri
            if active.runner.needs_image and not image_uri:
                image_uri = self._build(active, context_dir, notebook)
            if self._stopping.is_set():
                return
            if active.cancel_requested:
                self._finish(active, RunState.CANCELLED, "cancelled before dispatch")
                return
            active.stage = "submit"
            job = build_job(run, active.queue, self.config, context_dir=context_dir, notebook=notebook,
                            image_uri=image_uri)
            external_id = self._submit_with_retries(active, job)
            log_path = getattr(active.runner, "log_path", None)
            active.run = self.store.transition(run.id, RunState.SUBMITTED, f"submitted: {external_id}",
                                               external_id=external_id, image_uri=image_uri,
                                               log_path=log_path(job) if log_path else None)
            self._emit(active.run, RunState.SUBMITTED, f"submitted: {external_id}")
            job.run = active.run  # the runner tracks by the saved external id
            active.job = job
            active.phase = "tracking"
            active.stage = "run"
        except Exception as err:  # any failure of one run must not stop the agent
            if not self._stopping.is_set():
                message = str(err) if isinstance(err, LaunchError) else f"{type(err).__name__}: {err}"
                self._finish(active, RunState.FAILED, f"{active.stage} failed: {message}", stage=active.stage)
        finally:
            self._wake.set()

    def _build(self, active: _Active, context_dir: Path, notebook: str) -> str:
        from .builders import get_builder
        from .packaging import BuildContext

        run = active.run
        bconf = builder_for(self.config, run.config)
        active.run = self.store.transition(run.id, RunState.BUILDING, f"building with {bconf.type}")
        self._emit(active.run, RunState.BUILDING, f"building with {bconf.type}")
        log_path = self.config.data_dir / "runs" / run.id / "build.log"
        context = BuildContext(directory=context_dir, notebook=notebook, content_hash=run.content_hash or "")
        with open(log_path, "a", encoding="utf-8") as build_log:

            def log(line: str) -> None:
                build_log.write(line.rstrip("\n") + "\n")
                build_log.flush()
                if line.startswith(("Step ", "ERROR", "error", "image ")) or "skipping build" in line:
                    self.store.add_event(run.id, line.strip()[:500])
                    self._emit(active.run, RunState.BUILDING, line.strip()[:500])

            builder = get_builder(bconf, self.config)
            image = run.image or configured_image(run.config)
            image_uri = builder.build(context, bconf.destination, bconf.platform, log, image=image)
        if not image_uri:
            raise BuildError("the builder returned no image")
        self.store.update(run.id, image_uri=image_uri)
        return image_uri

    def _submit_with_retries(self, active: _Active, job: Job) -> str:
        delay = 0.5
        for attempt in range(SUBMIT_RETRIES + 1):
            try:
                return active.runner.submit(job)
            except DispatchError as err:
                if not err.transient or attempt == SUBMIT_RETRIES or self._stopping.is_set():
                    raise
                self.store.add_event(job.run.id, f"submit retry {attempt + 1}: {err}")
                time.sleep(delay + random.uniform(0, delay / 2))
                delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ tracking

    def _track(self, last_track: dict[str, float]) -> None:
        now = time.monotonic()
        by_resource: dict[str, list[_Active]] = {}
        with self._lock:
            for active in self._active.values():
                if active.phase == "tracking" and active.job is not None:
                    by_resource.setdefault(active.queue.resource, []).append(active)
        for resource, actives in by_resource.items():
            if now - last_track.get(resource, 0.0) < self._track_interval(resource):
                continue
            last_track[resource] = now
            try:
                statuses = self._runners[resource].poll([a.job for a in actives if a.job])
            except Exception as err:  # a failed status call is retried next cycle
                self._activity = f"status of {resource} failed: {err}"
                continue
            for active in actives:
                status = statuses.get(active.run.id)
                if status is not None:
                    self._apply(active, status)

    def _apply(self, active: _Active, status: Any) -> None:
        run = active.run
        extra = {"output_notebook": status.output_notebook} if status.output_notebook else {}
        if status.state in TERMINAL:
            stage = {"stage": "run"} if status.state is RunState.FAILED else {}
            self._finish(active, status.state, status.message, **extra, **stage)
            return
        if status.state is run.state and not extra:
            return
        if status.state is not run.state:
            active.run = self.store.transition(run.id, status.state, status.message, **extra)
            self._emit(active.run, status.state, status.message)
        else:
            active.run = self.store.update(run.id, **extra)
        if active.job is not None:
            active.job.run = active.run

    def _finish(self, active: _Active, state: RunState, message: str, **fields: Any) -> None:
        active.run = self.store.transition(active.run.id, state, message, **fields)
        self._emit(active.run, state, message)
        with self._lock:
            self._active.pop(active.run.id, None)
        self._wake.set()

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
            if row is None or row.state in TERMINAL:
                with self._lock:
                    self._active.pop(run_id, None)
                continue
            if row.cancel_requested and not active.cancel_sent:
                self._cancel(active)

    def _cancel(self, active: _Active) -> None:
        active.cancel_requested = True
        if active.phase != "tracking" or active.job is None:
            return  # the worker sees the flag before it submits
        active.cancel_sent = True
        try:
            active.runner.cancel(active.job)
        except Exception as err:
            self.store.add_event(active.run.id, f"cancel failed: {err}")
            active.cancel_sent = False
            return
        active.run = self.store.transition(active.run.id, RunState.CANCELLING, "cancel sent")
        self._emit(active.run, RunState.CANCELLING, "cancel sent")

    def _renew(self) -> None:
        with self._lock:
            ids = list(self._active)
        if not ids:
            return
        held = set(self.store.renew(ids, self.agent_id, self.config.lease_seconds))
        with self._lock:
            for run_id in ids:
                if run_id not in held:
                    self._active.pop(run_id, None)

    def _shutdown(self) -> None:
        self._state = "stopping"
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            held = list(self._active)
            self._active.clear()
        for run_id in held:
            try:
                self.store.release(run_id, self.agent_id)
            except Exception:
                pass  # the lease expires on its own
        self._state = "stopped"
        self._activity = ""
        self._say(f"agent {self.agent_id} stopped")

    # ------------------------------------------------------------ events

    def _emit(self, run: Run, state: RunState, message: str) -> None:
        event = Event(run_id=run.id, time=time.time(), state=state, message=message)
        self._say(f"{run.id} {run.queue_name} {state}{': ' + message if message else ''}")
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                pass  # a broken subscriber must not stop the agent

    def _say(self, line: str) -> None:
        if self._log is not None:
            self._log(f"{time.strftime('%H:%M:%S')} {line}")
