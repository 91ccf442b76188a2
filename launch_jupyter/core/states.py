"""Run states and priorities."""

from __future__ import annotations

from enum import Enum


class RunState(str, Enum):
    """States of a run, in the order a run normally passes through them."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    BUILDING = "building"
    SUBMITTING = "submitting"  # the create at the target is under way: a job may or may not exist
    SUBMITTED = "submitted"
    PENDING = "pending"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_active(self) -> bool:
        """Claimed by an agent and not finished."""
        return self not in TERMINAL and self is not RunState.QUEUED


TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})
# States in which a job may exist at the target (so a new agent must reattach, not resubmit).
AT_TARGET = frozenset({RunState.SUBMITTED, RunState.PENDING, RunState.RUNNING, RunState.CANCELLING})


class Priority(int, Enum):
    """Run priority; lower value is served first on a prioritised queue."""

    CRITICAL = 0
    HIGH = 1
    MEDIUM = 2
    LOW = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | Priority | None) -> Priority:
        """``'high'`` / ``1`` / ``None`` (medium) → Priority; a bad value raises ValueError naming the choices."""
        if value is None:
            return cls.MEDIUM
        if isinstance(value, Priority):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            choices = ", ".join(p.name.lower() for p in cls)
            raise ValueError(f"unknown priority {value!r}; choose one of: {choices}") from None
