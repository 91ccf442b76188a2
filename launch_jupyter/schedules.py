"""Schedules: runs of a notebook on a queue by a cron expression, each tick fired exactly once.

Any agent serving the queue fires a schedule from the store (``fire_due``, one call per loop turn),
so ticks do not depend on one Jupyter server being up. Cron expressions are evaluated by ``cronsim``
(maintained, pure Python, Debian-cron semantics including the day-of-month/day-of-week rule and
daylight saving transitions) in the schedule's IANA time zone (``zoneinfo``).

A tick no agent was there for (all stopped) is *missed*; ``missed="once"`` fires the latest missed
tick once and then goes on, ``missed="skip"`` drops them. A paused schedule owes nothing: resuming
starts from the next tick after now.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .core.errors import ConfigError, LaunchError
from .core.model import Queue, Run
from .core.states import Priority

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from .store import QueueStore

MISSED_POLICIES = ("once", "skip")
# A tick is on time when an agent reaches it within this long (agent loops turn every ≤10 s);
# an older one was missed: no agent served the queue when it came.
ON_TIME_S = 60.0
# A tick claimed this long ago with no word on how it went: its agent died before queueing the run.
STUCK_AFTER_S = 120.0
MAX_COUNTED = 1000  # "missed 1000+ ticks": counting further costs time and says nothing more


@dataclass
class Schedule:
    """A cron schedule of one notebook on one queue."""

    id: int
    name: str
    author: str
    queue_id: int
    queue_name: str
    entity: str
    cron: str
    timezone: str
    missed: str
    follow_file: bool
    notebook: str
    include: list = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    new_parameters: list = field(default_factory=list)
    template_values: dict = field(default_factory=dict)
    resource_args: dict = field(default_factory=dict)
    priority: int = int(Priority.MEDIUM)
    content_hash: str | None = None
    paused: bool = False
    next_fire_at: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def from_row(cls, row: dict) -> Schedule:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})

    @property
    def path(self) -> str:
        return f"{self.author}/{self.name}"

    @property
    def queue_path(self) -> str:
        return f"{self.entity}/{self.queue_name}"

    def next_fire_times(self, count: int = 5, after: float | None = None) -> list[datetime]:
        """The next ``count`` fire times (in the schedule's time zone), from ``after`` (default: now)."""
        return fire_times(self.cron, self.timezone, time.time() if after is None else after, count)


# ---------------------------------------------------------------- cron and time zones


def check_cron(expr: str) -> str:
    """The expression, normalised; ConfigError naming ``cron`` when cronsim refuses it."""
    from cronsim import CronSim, CronSimError  # only where a schedule is made or fired

    parts = (expr or "").split()
    if len(parts) != 5:
        raise ConfigError(
            f"{expr!r} has {len(parts)} field(s); a cron expression has 5: "
            "minute hour day-of-month month day-of-week (e.g. '0 3 * * *')",
            path="cron",
        )
    try:
        CronSim(" ".join(parts), datetime.now(timezone.utc))
    except CronSimError as err:
        raise ConfigError(f"{expr!r} is not a valid cron expression: {err}", path="cron") from None
    return " ".join(parts)


def check_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ConfigError naming ``timezone`` otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin, America/New_York or UTC",
            path="timezone",
        ) from None


def local_timezone() -> str:
    """This machine's IANA time zone name (``TZ``, else /etc/localtime's target), else UTC."""
    named = os.environ.get("TZ", "").lstrip(":")
    candidates = [named] if named else []
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        try:
            check_timezone(name)
            return name
        except ConfigError:
            continue
    return "UTC"


def _at(tz: str, t: float) -> datetime:
    return datetime.fromtimestamp(t, check_timezone(tz))


def fire_times(cron: str, tz: str, after: float, count: int) -> list[datetime]:
    """The first ``count`` fire times strictly after ``after`` (epoch seconds)."""
    from cronsim import CronSim

    found = []
    for when in CronSim(cron, _at(tz, after)):
        found.append(when)
        if len(found) == count:
            break
    return found


def next_fire_after(cron: str, tz: str, after: float) -> float:
    """The first fire time strictly after ``after``, as epoch seconds."""
    return fire_times(cron, tz, after, 1)[0].timestamp()


def latest_fire_until(cron: str, tz: str, until: float) -> float:
    """The last fire time at or before ``until`` (epoch seconds)."""
    from cronsim import CronSim

    # cronsim's reverse iteration yields times strictly before a whole-second start.
    start = _at(tz, float(int(until))).replace(microsecond=0) + timedelta(seconds=1)
    return next(iter(CronSim(cron, start, reverse=True))).timestamp()


def _count_between(cron: str, tz: str, first: float, last: float) -> int:
    """How many fire times lie in [first, last] (at most MAX_COUNTED)."""
    from cronsim import CronSim

    count = 0
    for when in CronSim(cron, _at(tz, first - 1)):
        if when.timestamp() > last or count >= MAX_COUNTED:
            break
        count += 1
    return count


# ---------------------------------------------------------------- which tick fires


@dataclass(frozen=True)
class TickPlan:
    """What an agent does with a schedule that is due: fire one tick, record skipped ones, move on."""

    fire: float | None  # the tick to fire (epoch seconds), if any
    skipped: float | None  # the latest tick not fired, recorded as skipped
    message: str
    skip_message: str
    next_fire_at: float


def plan_ticks(schedule: dict, now: float) -> TickPlan:
    """Decide which of a due schedule's ticks to fire at ``now`` under its missed-tick policy."""
    cron, tz = schedule["cron"], schedule["timezone"]
    first = schedule["next_fire_at"]
    latest = latest_fire_until(cron, tz, now)
    next_at = next_fire_after(cron, tz, now)
    due = _count_between(cron, tz, first, latest)
    late = now - latest > ON_TIME_S
    missed = due - (0 if late else 1)  # ticks whose moment passed with no agent there
    count = f"{missed}{'+' if due >= MAX_COUNTED else ''}"
    when = _at(tz, latest).strftime("%Y-%m-%d %H:%M %Z")
    if missed <= 0:
        return TickPlan(latest, None, f"tick {when}", "", next_at)
    if schedule["missed"] == "once":
        return TickPlan(
            latest,
            None,
            f"tick {when}: {count} tick(s) came while no agent served the queue; fired the latest once (--missed once)",
            "",
            next_at,
        )
    if late:  # skip, and even the latest is stale
        return TickPlan(
            None,
            latest,
            "",
            f"{count} tick(s) up to {when} came while no agent served the queue; skipped (--missed skip)",
            next_at,
        )
    previous = latest_fire_until(cron, tz, latest - 1)
    prev_when = _at(tz, previous).strftime("%Y-%m-%d %H:%M %Z")
    return TickPlan(
        latest,
        previous,
        f"tick {when}",
        f"{count} tick(s) up to {prev_when} came while no agent served the queue; skipped (--missed skip)",
        next_at,
    )


# ---------------------------------------------------------------- firing (the agent's side)


def fire_due(
    store: QueueStore,
    queues: Sequence[Queue],
    agent_id: str,
    say: Callable[[str], None] | None = None,
    now: Callable[[], float] = time.time,
) -> bool:
    """Fire the due ticks of schedules on ``queues``; True if a run was queued. Never raises: an agent
    loop calls this every turn (one indexed read when nothing is due)."""
    from .store._schedules import any_due, claim_due

    say = say or (lambda _line: None)
    queue_ids = [q.id for q in queues if q.id is not None]
    t = now()
    try:
        if not any_due(store, queue_ids, t):
            return False
        claimed = claim_due(store, queue_ids, t, plan_ticks, agent_id, STUCK_AFTER_S)
    except Exception as err:  # the store is unreachable: the next turn tries again
        say(f"schedules: could not look for due ticks: {err}")
        return False
    fired = False
    for tick, row in claimed:
        fired = _fire(store, Schedule.from_row(row), tick, say) or fired
    return fired


def _fire(store: QueueStore, schedule: Schedule, tick: dict, say: Callable[[str], None]) -> bool:
    from .core.errors import RunError
    from .store._schedules import finish_tick

    try:
        run, context = _make_run(store, schedule, tick)
        store.enqueue(run, context)
    except Exception as err:
        # A run with this id exists: an agent that claimed this tick earlier queued it before it stopped.
        if not (isinstance(err, RunError) and _run_exists(store, tick["run_id"])):
            # The file is gone, the queue was deleted, the store failed…: the tick fails, the schedule goes on.
            why = str(err) if isinstance(err, LaunchError) else f"{type(err).__name__}: {err}"
            finish_tick(store, tick["id"], "failed", why)
            say(f'schedule "{schedule.path}": tick failed: {why}')
            return False
    finish_tick(store, tick["id"], "fired", tick["message"])
    say(f'schedule "{schedule.path}": queued run {tick["run_id"]} ({tick["message"]})')
    return True


def _run_exists(store: QueueStore, run_id: str) -> bool:
    from .core.errors import RunError

    try:
        store.get_run(run_id)
        return True
    except RunError:
        return False


def _make_run(store: QueueStore, schedule: Schedule, tick: dict) -> tuple[Run, bytes | None]:
    """The run of one tick and its build context: the snapshot, or the file packaged as it is now."""
    from .core.cost import check_budget, runner_config
    from .runners import get_runner
    from .store._schedules import snapshot

    queue = store.get_queue_by_id(schedule.queue_id)
    config = resolve_config(queue, schedule.template_values, schedule.resource_args)
    estimate = get_runner(queue.resource).estimate(runner_config(config))
    check_budget(estimate, config.get("budget"))  # the queue's budget may have changed since: the tick fails
    context: bytes | None
    content_hash: str | None
    if schedule.follow_file:
        context, content_hash, parameters = package_notebook(schedule, config, queue.resource)
    else:
        context, content_hash, parameters = snapshot(store, schedule.id), schedule.content_hash, schedule.parameters
    run = Run(
        id=tick["run_id"],
        queue_id=queue.id or 0,
        queue_name=queue.name,
        entity=queue.entity,
        author=schedule.author,
        resource=queue.resource,
        priority=Priority(schedule.priority),
        name=schedule.name,
        notebook=schedule.notebook,
        parameters=parameters,
        template_values=dict(schedule.template_values),
        resource_args=dict(schedule.resource_args),
        config=config,
        content_hash=content_hash,
        message=f'fired by schedule "{schedule.path}" ({tick["message"]})',
        cost=estimate.record() if estimate is not None else None,
    )
    return run, context


def resolve_config(queue: Queue, template_values: dict, resource_args: dict) -> dict:
    """The queue's config with a schedule's overrides and template values (as a submit resolves it)."""
    from .core.overrides import deep_merge
    from .core.templates import fill_template_vars

    return fill_template_vars(deep_merge(queue.config, dict(resource_args)), queue.template_vars, template_values)


def package_notebook(schedule: Schedule, config: dict, resource: str) -> tuple[bytes, str, dict]:
    """Package the schedule's notebook file as it is now, as a submit to ``resource`` would: (context
    tar.gz, content hash, parameters). NotebookError when the file is gone or its parameters no
    longer fit."""
    from .api import agent_config
    from .core.errors import NotebookError
    from .packaging import check_parameters, pack_context, read_notebook_json, temporary_context
    from .runners import as_runner, get_runner

    path = Path(schedule.notebook)
    if not path.is_file():
        raise NotebookError(f"notebook {path} is gone (the schedule follows the file; on host {os.uname().nodename})")
    parameters = check_parameters(
        read_notebook_json(path), path.name, dict(schedule.parameters), schedule.new_parameters
    )
    # The data dir never ships (as for a submit); a followed file's outputs are stripped.
    with temporary_context(
        path,
        include=schedule.include,
        base_image=(config.get("builder") or {}).get("base_image"),
        protected=[agent_config().data_dir],
        wheel=as_runner(get_runner(resource)).needs_image,  # as a submit packs it
    ) as context:
        return pack_context(context.directory), context.content_hash, parameters


def describe_time(schedule: Schedule, t: float | None) -> str:
    """A time in the schedule's zone, for people."""
    if not t:
        return "-"
    return _at(schedule.timezone, t).strftime("%Y-%m-%d %H:%M %Z")


def check_missed(missed: str) -> str:
    if missed not in MISSED_POLICIES:
        raise ConfigError(f"must be one of {', '.join(MISSED_POLICIES)}, not {missed!r}", path="missed")
    return missed
