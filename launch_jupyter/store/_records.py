"""Rows ↔ the records of core/model.py."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, TypeVar

from ..core.errors import LaunchError
from ..core.model import Event, Queue, Run, TemplateVar
from ..core.states import Priority, RunState

RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(Run))
_R = TypeVar("_R", Queue, Run, Event)
# The fields each record keeps in a column of its table (Queue.outcome is what a call did, not stored).
_COLUMNS: dict[type, frozenset[str]] = {
    Queue: frozenset(f.name for f in dataclasses.fields(Queue)) - {"outcome"},
    Run: RUN_FIELDS,
    Event: frozenset(f.name for f in dataclasses.fields(Event)),
}
# A run no agent has taken: queued, with none of the fields an agent's hold and its work set.
_UNHELD: dict[str, Any] = {
    "state": RunState.QUEUED,
    "agent_id": None,
    "lease_expires_at": None,
    "started_at": None,
    "finished_at": None,
    "running_at": None,
    "cancel_requested": False,
}
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


def _or_mapping(value: Any) -> Any:
    return value or {}


def _or_text(value: Any) -> Any:
    return value or ""


# How a field is written to its column and read back, where that is not the value as it is (the
# rest are stored as they are). A NULL or empty column reads as the record's empty value.
_WRITE: dict[type, dict[str, Callable[[Any], Any]]] = {
    Queue: {"prioritization": bool, "template_vars": lambda tvars: [v.to_dict() for v in tvars]},
    Run: {
        "state": lambda state: RunState(state).value,
        "priority": lambda priority: int(Priority.parse(priority)),
        "cancel_requested": bool,
    },
    Event: {},
}
_READ: dict[type, dict[str, Callable[[Any], Any]]] = {
    Queue: {
        "config": _or_mapping,
        "config_text": _or_text,
        "prioritization": bool,
        "template_vars": lambda dicts: [TemplateVar.from_dict(d) for d in dicts or []],
    },
    Run: {
        "state": RunState,
        "priority": Priority,
        "cancel_requested": bool,
        "message": _or_text,
        "lease_generation": lambda generation: generation or 0,
        **dict.fromkeys(("parameters", "template_values", "resource_args", "config"), _or_mapping),
    },
    Event: {"state": RunState, "message": _or_text},
}


def _row_values(record: Queue | Run | Event) -> dict[str, Any]:
    """Column values for a record's row: every field its table has a column for."""
    values = {name: getattr(record, name) for name in _COLUMNS[type(record)]}
    for name, write in _WRITE[type(record)].items():
        values[name] = write(values[name])
    return values


def _from_row(cls: type[_R], row: Any) -> _R:
    """A ``cls`` from a row of its table."""
    m = row._mapping
    values = {name: m[name] for name in _COLUMNS[cls]}
    for name, read in _READ[cls].items():
        values[name] = read(values[name])
    return cls(**values)


def queue_values(queue: Queue) -> dict[str, Any]:
    """Column values for a queue row (without id)."""
    values = _row_values(queue)
    values.pop("id")
    return values


def queue_from_row(row: Any) -> Queue:
    """A Queue from a ``queues`` row."""
    return _from_row(Queue, row)


def queued_copy(run: Run, now: float, **more: Any) -> Run:
    """``run`` as it enters a queue: an id if it has none, queued now, held by nobody."""
    import uuid

    fields = {"id": run.id or uuid.uuid4().hex[:12], "created_at": now, "updated_at": now, **_UNHELD, **more}
    return dataclasses.replace(run, **fields)


def run_values(run: Run) -> dict[str, Any]:
    """Column values for a run row."""
    return _row_values(run)


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
    return _from_row(Run, row)


def event_from_row(row: Any) -> Event:
    """An Event from a ``run_events`` row."""
    return _from_row(Event, row)
