"""The one retry policy: capped exponential backoff with jitter, under a deadline, that a stop
event ends at once.

Runners and builders make one attempt per call and say whether a failure is worth another
(``DispatchError(transient=True)``); whoever drives them (the agent, a log follower) retries here
and nowhere else, so retries never multiply across layers.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import DispatchError

T = TypeVar("T")
BASE_S, CAP_S = 0.5, 10.0


class Stopped(Exception):
    """The stop event was set while waiting to try again."""


def is_transient(err: BaseException) -> bool:
    """What a runner or builder marked as worth another try."""
    return isinstance(err, DispatchError) and err.transient


def retry(
    fn: Callable[[], T],
    *,
    deadline_s: float,
    stop: threading.Event | None = None,
    transient: Callable[[BaseException], bool] = is_transient,
    before_retry: Callable[[], object] | None = None,
    on_retry: Callable[[int, float, BaseException], object] | None = None,
    base_s: float = BASE_S,
    cap_s: float = CAP_S,
) -> T:
    """``fn()``, tried again after a transient failure until ``deadline_s`` would pass; any other
    failure, or the last transient one, is raised. Between tries: ``on_retry(attempt, delay,
    error)``, a wait of ``delay`` plus up to half of it again (``Stopped`` if ``stop`` is set
    meanwhile), then ``before_retry()`` (e.g. look for a job the failed call may have made)."""
    stop = stop or threading.Event()
    deadline = time.monotonic() + deadline_s
    delay = base_s
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as err:
            if not transient(err) or time.monotonic() + delay > deadline:
                raise
            if on_retry is not None:
                on_retry(attempt, delay, err)
            if stop.wait(delay + random.uniform(0, delay / 2)):
                raise Stopped from err
            delay = min(delay * 2, cap_s)
            if before_retry is not None:
                before_retry()
