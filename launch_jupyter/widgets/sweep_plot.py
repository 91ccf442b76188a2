"""The sweep widget's plot: a recorded value against one parameter (a scatter), or against two
(a scatter of the two parameters coloured by the value), drawn with matplotlib as SVG in the kernel.

matplotlib draws server-side so the widget needs no plotting JavaScript at all: nothing to fetch
from a CDN at run time (the machine may be offline) and nothing to bundle (we ship no bundler).
The Figure API is used without pyplot, so drawing from a widget's thread touches no global state.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any, cast


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _axis_values(values: list[Any]) -> tuple[list[float], list[str] | None]:
    """Numbers as they are; text values placed at 0, 1, 2... with their labels."""
    if all(_number(v) is not None for v in values):
        return [float(v) for v in values], None
    labels = list(dict.fromkeys(str(v) for v in values))
    return [float(labels.index(str(v))) for v in values], labels


def plot_svg(rows: Sequence[Mapping[str, Any]], value: str, x: str, y: str = "", best: str | None = None) -> str:
    """An SVG of ``value`` against parameter ``x`` (and ``y``); '' when no row has that value yet."""
    points = [
        (
            r["parameters"].get(x),
            r["parameters"].get(y) if y else None,
            _number(r["values"].get(value)),
            r["id"] == best,
        )
        for r in rows
        if _number(r["values"].get(value)) is not None and x in r["parameters"]
    ]
    if not points:
        return ""
    # matplotlib costs ~0.5 s to import: only a plot needs it.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.4), dpi=96, layout="constrained")
    ax = fig.add_subplot()
    xs, xlabels = _axis_values([p[0] for p in points])
    scores = cast("list[float]", [p[2] for p in points])  # rows without a number were left out above
    if y:
        ys, ylabels = _axis_values([p[1] for p in points])
        drawn = ax.scatter(xs, ys, c=scores, cmap="viridis", s=60, edgecolors="black", linewidths=0.4)
        fig.colorbar(drawn, ax=ax, label=value)
        ax.set_ylabel(y)
        _labels(ax.set_yticks, ylabels)
        marked = [(a, b) for a, b, p in zip(xs, ys, points) if p[3]]
    else:
        ax.scatter(xs, scores, s=40, color="#1f77b4")
        ax.set_ylabel(value)
        marked = [(a, b) for a, b, p in zip(xs, scores, points) if p[3]]
    for mx, my in marked:
        ax.scatter([mx], [my], s=220, facecolors="none", edgecolors="#d62728", linewidths=2, label="best")
    if marked:
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel(x)
    _labels(ax.set_xticks, xlabels)
    if xlabels is None and min(xs) > 0 and max(xs) / min(xs) >= 100:  # lr=0.1,0.01,0.001: spread evenly
        ax.set_xscale("log")
    ax.grid(True, alpha=0.3)
    out = io.StringIO()
    fig.savefig(out, format="svg")
    return out.getvalue()


def _labels(set_ticks: Any, labels: list[str] | None) -> None:
    if labels is not None:
        set_ticks(range(len(labels)), labels)
