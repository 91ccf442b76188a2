"""Follow run events for the widgets without blocking the kernel.

Two sources feed every listener: events pushed from the in-process agent thread
(``api.subscribe``) and one daemon thread per store reading the event log (``api.events_since``),
so runs served by agents in other processes or machines show up too. A run may be reported by
both; listeners do idempotent refreshes keyed by run id, so that is harmless. One poller per store
serves any number of widgets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .. import api
from ..core.model import Event

Listener = Callable[[list[Event]], None]
Ticker = Callable[[], None]

_hubs: dict[str, EventHub] = {}
_hubs_lock = threading.Lock()


def pinned_store_url(store_url: str | None = None) -> str:
    """The store a widget shows, fixed when it is made: a later ``configure()`` or
    ``LAUNCH_JUPYTER_DB`` change gives new widgets the new store and leaves open ones where they were
    (a board made for one store must not start reading another from its background ticks)."""
    return store_url or api.open_store().url


def latest_event_id(store_url: str | None = None) -> int:
    """The id of the newest event in the store (0 when there is none), in one statement."""
    return api.open_store(store_url).last_event_id()


class EventHub:
    """Delivers new events of one store to its listeners, and calls its tickers every ``interval`` s."""

    def __init__(self, store_url: str, interval: float = 1.0):
        self.store_url = store_url
        self._interval = interval
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._tickers: list[Ticker] = []
        self._last_id = latest_event_id(store_url)
        self._stopped = threading.Event()
        self._unsubscribe = api.subscribe(self._pushed)
        self._thread = threading.Thread(target=self._poll, name="launch-widget-events", daemon=True)
        self._thread.start()

    def add(self, listener: Listener | None = None, ticker: Ticker | None = None) -> Callable[[], None]:
        """Register callbacks (called from background threads); returns the function that removes them."""
        with self._lock:
            if listener is not None:
                self._listeners.append(listener)
            if ticker is not None:
                self._tickers.append(ticker)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
                if ticker in self._tickers:
                    self._tickers.remove(ticker)
                idle = not self._listeners and not self._tickers
            if idle:
                self._stop_if_idle()

        return remove

    def _stop_if_idle(self) -> None:
        # The last widget left: the poller ends and the next follow() starts a fresh hub.
        with _hubs_lock, self._lock:
            if self._listeners or self._tickers or self._stopped.is_set():
                return
            self._stopped.set()
            if _hubs.get(self.store_url) is self:
                del _hubs[self.store_url]
        self._unsubscribe()

    def _pushed(self, event: Event) -> None:
        # Runs in the agent thread; the in-process agent writes the same store, whatever its URL.
        self._deliver([event])

    def _deliver(self, events: list[Event]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(events)
            except Exception:  # a widget bug must not kill the agent thread or the poller
                pass

    def _poll(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                batch = api.events_since(self._last_id, store_url=self.store_url)
            except Exception:  # the store may be briefly locked or gone; try again next tick
                batch = []
            if batch:
                self._last_id = max(self._last_id, *(e.id or 0 for e in batch))
                self._deliver(batch)
            with self._lock:
                tickers = list(self._tickers)
            for ticker in tickers:
                try:
                    ticker()
                except Exception:
                    pass


def follow(
    listener: Listener | None = None, ticker: Ticker | None = None, store_url: str | None = None
) -> Callable[[], None]:
    """Call ``listener(events)`` for new events and ``ticker()`` about every second, from
    background threads, until the returned function is called."""
    url = pinned_store_url(store_url)
    with _hubs_lock:
        hub = _hubs.get(url)
        if hub is None:
            hub = _hubs[url] = EventHub(url)
        return hub.add(listener, ticker)
