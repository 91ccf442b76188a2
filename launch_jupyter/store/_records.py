"""Rows ↔ the records of core/model.py."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..core.errors import LaunchError
from ..core.model import Event, Queue, Run, TemplateVar
from ..core.states import Priority, RunState

RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(Run))
# Fields a caller may set through transition()/update(); the rest belong to the store's own bookkeeping.
UPDATABLE_RUN_FIELDS = RUN_FIELDS - {"id", "state", "queue_id", "created_at", "updated_at", "lease_generation"}


JSON_FIELDS = ("config", "template_vars", "parameters", "template_values", "resource_args", "cost")


def check_json(values: dict[str, Any], error: type[LaunchError], owner: str) -> None:
    """Refuse, before anything is written, a field that JSON cannot hold (a date, a set, an object)."""
    for name in JSON_FIELDS:
        if name in values:
            try:
                json.dumps(values[name], allow_nan=False)
            except (TypeError, ValueError) as err:
                raise error(
                    f"{owner} {name} must hold only JSON values (text, numbers, true/false, "
                    f"null, lists, mappings): {err}"
                ) from None


def queue_values(queue: Queue) -> dict[str, Any]:
    """Column values for a queue row (without id)."""
    return {
        "entity": queue.entity,
        "name": queue.name,
        "resource": queue.resource,
        "config": queue.config,
        "config_text": queue.config_text,
        "prioritization": bool(queue.prioritization),
        "template_vars": [v.to_dict() for v in queue.template_vars],
        "created_by": queue.created_by,
        "created_at": queue.created_at,
        "updated_at": queue.updated_at,
    }


def queue_from_row(row: Any) -> Queue:
    """A Queue from a ``queues`` row."""
    m = row._mapping
    return Queue(
        id=m["id"],
        entity=m["entity"],
        name=m["name"],
        resource=m["resource"],
        config=m["config"] or {},
        config_text=m["config_text"] or "",
        prioritization=bool(m["prioritization"]),
        template_vars=[TemplateVar.from_dict(d) for d in (m["template_vars"] or [])],
        created_by=m["created_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def queued_copy(run: Run, now: float, **more: Any) -> Run:
    """``run`` as it enters a queue: an id if it has none, queued now, held by nobody."""
    import uuid

    return dataclasses.replace(
        run,
        id=run.id or uuid.uuid4().hex[:12],
        state=RunState.QUEUED,
        created_at=now,
        updated_at=now,
        agent_id=None,
        lease_expires_at=None,
        started_at=None,
        finished_at=None,
        running_at=None,
        cancel_requested=False,
        **more,
    )


def run_values(run: Run) -> dict[str, Any]:
    """Column values for a run row."""
    values = {name: getattr(run, name) for name in RUN_FIELDS}
    values["state"] = RunState(run.state).value
    values["priority"] = int(Priority.parse(run.priority))
    values["cancel_requested"] = bool(run.cancel_requested)
    return values


def column_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Check caller-supplied Run fields and convert them to column values."""
    unknown = set(fields) - UPDATABLE_RUN_FIELDS
    if unknown:
        raise TypeError(f"cannot set run field(s) {', '.join(sorted(unknown))} this way")
    values = dict(fields)
    if "priority" in values:
        values["priority"] = int(Priority.parse(values["priority"]))
    return values


def run_from_row(row: Any) -> Run:
    """A Run from a ``runs`` row."""
    m = row._mapping
    values = {name: m[name] for name in RUN_FIELDS}
    values["state"] = RunState(m["state"])
    values["priority"] = Priority(m["priority"])
    values["cancel_requested"] = bool(m["cancel_requested"])
    for name in ("parameters", "template_values", "resource_args", "config"):
        values[name] = values[name] or {}
    values["message"] = values["message"] or ""
    values["lease_generation"] = values["lease_generation"] or 0
    return Run(**values)


def event_from_row(row: Any) -> Event:
    """An Event from a ``run_events`` row."""
    m = row._mapping
    return Event(
        id=m["id"],
        run_id=m["run_id"],
        time=m["time"],
        state=RunState(m["state"]),
        message=m["message"] or "",
        agent_id=m["agent_id"],
    )
