"""Small statistics and bookkeeping shared by the benchmark modules (stdlib only).

A benchmark module's ``run(quick=False) -> dict`` returns ``{"figures": [figure(...), ...],
"problems": ["..."]}``: each figure is one row of the table, measured beside its baseline in the
same run; a problem is a structurally wrong result (the command then exits non-zero).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PACKAGES = (
    "launch-jupyter",
    "google-cloud-aiplatform",
    "grpcio",
    "sqlalchemy",
    "psycopg",
    "papermill",
    "ipykernel",
    "ipython",
    "jupyter_client",
    "docker",
    "nbclient",
    "psutil",
)


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) with linear interpolation between order statistics."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def iqr(values: Sequence[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles (the spread we report for repeated runs)."""
    return percentile(values, 25), percentile(values, 75)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, p50/p95, min/max and count of ``values``."""
    q1, q3 = iqr(values)
    return {
        "n": len(values),
        "median": median(values),
        "q1": q1,
        "q3": q3,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "min": min(values) if values else math.nan,
        "max": max(values) if values else math.nan,
    }


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``; NaN when the baseline is zero or missing."""
    if baseline is None or value is None or baseline == 0 or math.isnan(baseline):
        return math.nan
    return value / baseline


def spread_text(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    """The interquartile range as ``q1–q3`` (scaled, e.g. ×1000 for ms)."""
    if len(values) < 2:
        return ""
    q1, q3 = iqr(values)
    return f"{q1 * scale:.{digits}f}–{q3 * scale:.{digits}f}"


def figure(
    name: str,
    value: float | None,
    unit: str,
    *,
    baseline: str = "",
    baseline_value: float | None = None,
    ratio_value: float | None = None,
    n: int | None = None,
    spread: str = "",
    note: str = "",
    available: bool = True,
) -> dict[str, Any]:
    """One row of the results table. ``ratio`` is value/baseline unless given."""
    if ratio_value is None and value is not None and baseline_value is not None:
        ratio_value = ratio(value, baseline_value)
    return {
        "figure": name,
        "value": value,
        "unit": unit,
        "spread": spread,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": ratio_value,
        "n": n,
        "note": note,
        "available": available,
    }


def not_available(name: str, reason: str) -> dict[str, Any]:
    """A row for a figure that could not be measured here, with the reason."""
    return figure(name, None, "", note=f"not available: {reason}", available=False)


def alternate(
    measures: dict[str, Callable[[], Any]], repeats: int, fewer: dict[str, int] | None = None
) -> dict[str, list[Any]]:
    """Call each measurement in turn, ``repeats`` rounds, so drift hits all of them alike.
    ``fewer`` gives a smaller count for slow ones (spread evenly over the rounds)."""
    fewer = fewer or {}
    results: dict[str, list[Any]] = {key: [] for key in measures}
    for i in range(repeats):
        for key, measure in measures.items():
            count = min(fewer.get(key, repeats), repeats)
            if (i * count) // repeats != ((i + 1) * count) // repeats:
                results[key].append(measure())
    return results


@contextmanager
def timer() -> Iterable[Callable[[], float]]:
    """``with timer() as elapsed: ...`` then ``elapsed()`` gives seconds (frozen at exit)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _memory_gb() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return math.nan


def machine_info() -> dict[str, Any]:
    """Where the figures were measured: cores, CPU, memory, OS, Python, package versions, commit."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in PACKAGES},
        "commit": _git_commit(),
    }
