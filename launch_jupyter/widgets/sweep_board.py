"""SweepBoard: a sweep's runs compared live — a sortable table (the best row marked) and a plot of a
recorded value against one or two parameters, redrawn as runs finish."""

from __future__ import annotations

import threading
import time

import traitlets

from .. import api
from ..core.errors import LaunchError
from ..core.model import Event
from . import _assets
from ._base import ActionWidget
from ._follow import follow, pinned_store_url

REFRESH_S_PER_RUN = 0.001  # a reload of 1,000 runs waits a second after the last; of 6, 6 ms


class SweepBoard(ActionWidget):
    """One sweep (or any runs, with ``run_ids``) side by side, following agents' events."""

    _esm = _assets.esm("sweep_board.js")
    _css = _assets.css()
    _actions = ("sort_by", "set_plot", "refresh", "cancel_sweep")

    sweep = traitlets.Dict().tag(sync=True)  # id, name, queue, total, done, counts
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    parameters = traitlets.List(traitlets.Unicode()).tag(sync=True)
    values = traitlets.List(traitlets.Unicode()).tag(sync=True)
    sort = traitlets.Unicode("").tag(sync=True)  # "-accuracy": highest first
    best = traitlets.Unicode("").tag(sync=True)  # the best row's run id
    plot_value = traitlets.Unicode("").tag(sync=True)
    plot_x = traitlets.Unicode("").tag(sync=True)
    plot_y = traitlets.Unicode("").tag(sync=True)  # "": the value against plot_x alone
    plot_svg = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        sweep_id: str | None = None,
        *,
        run_ids: list[str] | None = None,
        sort: str = "",
        follow_events: bool = True,
        store_url: str | None = None,
        **kwargs,
    ):
        super().__init__(sort=sort, **kwargs)
        self._sweep_id = sweep_id
        self._run_ids = list(run_ids or [])
        self._store_url = store_url = pinned_store_url(store_url)
        self._lock = threading.RLock()
        self._members: set[str] = set()
        self._refreshed_at = 0.0
        self._stale = False
        self.refresh()
        self._stop_following = follow(self._on_events, self._on_tick, store_url) if follow_events else None

    def __repr__(self) -> str:
        done = sum(1 for r in self.rows if r["state"] in ("succeeded", "failed", "cancelled"))
        return f"SweepBoard({self.sweep.get('id', 'runs')}: {done}/{len(self.rows)} done, best {self.best or '-'})"

    # ---------------------------------------------------------------- data

    def refresh(self) -> None:
        """Reload the table (and redraw the plot) from the store."""
        with self._lock, self.hold_sync():
            self._stale = False
            self._refreshed_at = time.monotonic()
            if self._sweep_id is not None:
                table = api.get_sweep(self._sweep_id, sort=self.sort or None, store_url=self._store_url)
                s = table["sweep"]
                counts = table["counts"]
                done = sum(n for state, n in counts.items() if state in ("succeeded", "failed", "cancelled"))
                self.sweep = {
                    "id": s["id"],
                    "name": s["name"],
                    "queue": f"{s['entity']}/{s['queue_name']}",
                    "total": s["total"],
                    "done": done,
                    "counts": counts,
                    "method": s["method"],
                    "max_parallel": s["max_parallel"],
                    "cancelled": s["cancelled_at"] is not None,
                }
            else:
                table = api.compare(self._run_ids, sort=self.sort or None, store_url=self._store_url)
            self._members = {r["id"] for r in table["rows"]}
            self.parameters = table["parameters"]
            self.values = table["values"]
            self._default_plot()
            self.best = table["best"] or ""
            self.rows = table["rows"]
            self._draw()

    def _default_plot(self) -> None:
        if self.plot_value not in self.values:
            wanted = self.sort.lstrip("+-")
            self.plot_value = wanted if wanted in self.values else (self.values[0] if self.values else "")
        if self.plot_x not in self.parameters:
            self.plot_x = self.parameters[0] if self.parameters else ""
        if self.plot_y and self.plot_y not in self.parameters:
            self.plot_y = ""

    def _draw(self) -> None:
        from .sweep_plot import plot_svg

        if not (self.plot_value and self.plot_x):
            self.plot_svg = ""
            return
        self.plot_svg = plot_svg(self.rows, self.plot_value, self.plot_x, self.plot_y, self.best or None)

    def _on_events(self, events: list[Event]) -> None:
        # A new run id may belong to this sweep only if the sweep is still growing; it is not (one
        # transaction queues it whole), so only the member runs' events matter.
        if not any(e.run_id in self._members for e in events):
            return
        # A big sweep sends many events: reload at once, but not more often than its size allows
        # (the tick, every second, picks up what came in between).
        if time.monotonic() - self._refreshed_at >= self._refresh_interval():
            self.refresh()
        else:
            self._stale = True

    def _on_tick(self) -> None:
        if self._stale and time.monotonic() - self._refreshed_at >= self._refresh_interval():
            self.refresh()

    def _refresh_interval(self) -> float:
        return min(1.0, REFRESH_S_PER_RUN * len(self._members))

    # ---------------------------------------------------------------- actions

    def sort_by(self, key: str) -> None:
        """Sort by a recorded value or parameter (a column header); ``-name``: highest first."""
        with self.hold_sync():  # the new order and the header's arrow reach the browser together
            self.sort = key
            self.refresh()

    def set_plot(self, value: str = "", x: str = "", y: str = "") -> None:
        """Plot ``value`` against parameter ``x`` (and ``y``)."""
        with self._lock:
            self.plot_value, self.plot_x, self.plot_y = value or self.plot_value, x or self.plot_x, y
            self._draw()

    def cancel_sweep(self) -> dict:
        """Cancel the sweep (its queued and active runs)."""
        if self._sweep_id is None:
            raise LaunchError("these runs are not one sweep: cancel them one by one")
        done = api.cancel_sweep(self._sweep_id, store_url=self._store_url)
        self.notice = f"{done['cancelled']} queued runs cancelled, {done['cancelling']} active runs asked to stop"
        self.refresh()
        return done

    def close(self) -> None:
        """Stop following events and close the widget."""
        if self._stop_following is not None:
            self._stop_following()
            self._stop_following = None
        super().close()
