"""The one benchmark command: ``.venv/bin/python benchmarks/run.py [--quick] [--only NAME ...] [--json PATH]``.

Runs each area's ``run(quick) -> dict`` in turn, prints one table (figure, value, spread, baseline,
ratio, n) with the machine it ran on, and writes the same as JSON. Exits non-zero, after printing
everything, when a figure is structurally wrong (an area reports ``problems``). An area that is
missing or fails is listed as "not available: <reason>" and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(HERE), str(ROOT)):  # area modules import `_stats`; fakes live under tests/
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _stats import machine_info  # noqa: E402

# (name for --only, module, what it measures) in the order.
AREAS = [
    ("imports", "bench_imports", "1. import launch_jupyter / %load_ext"),
    ("submit", "bench_submit", "2. api.submit() and build-context creation"),
    ("dispatch", "bench_dispatch", "3. dispatch latency: enqueue → runner submit"),
    ("vertex", "bench_vertex", "4. status economy: Vertex API calls per status cycle"),
    ("store", "bench_store", "5. store: claims/s and claim latency"),
    ("kernel", "bench_kernel", "6. kernel responsiveness with the in-kernel agent"),
    ("build", "bench_build", "7. build avoidance"),
    ("lab", "bench_lab_submit", "8. %launch submit of the current notebook in a stock JupyterLab"),
    ("peers", "bench_peers", "9. beside papermill and jupyter-scheduler: latency to file and state, throughput"),
    ("targets", "bench_targets", "10. SageMaker and Kubernetes: calls per status cycle, jobs per run after a crash"),
    ("cost", "bench_cost", "11. what a run costs: estimate time, budget check on submit"),
]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats: the whole run takes a few minutes")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=[a[0] for a in AREAS],
        help="run only these areas: " + ", ".join(a[0] for a in AREAS),
    )
    p.add_argument(
        "--json",
        default=str(HERE / "results.json"),
        metavar="PATH",
        help="where to write the results (default: benchmarks/results.json)",
    )
    p.add_argument("--results-md", action="store_true", help="also rewrite benchmarks/RESULTS.md with this table")
    return p.parse_args(argv)


def _private_environment() -> Path:
    """Private config/data homes so no benchmark touches the user's queues; removed at exit."""
    home = Path(tempfile.mkdtemp(prefix="launch-bench-"))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        (home / var.lower()).mkdir()
        os.environ[var] = str(home / var.lower())
    os.environ["LAUNCH_JUPYTER_USER"] = "bench"
    os.environ.pop("LAUNCH_JUPYTER_DB", None)
    os.environ.pop("LAUNCH_JUPYTER_CONFIG", None)
    os.environ.setdefault("GCE_METADATA_HOST", "127.0.0.1:9")  # never wait on a metadata server
    return home


def _call(module: Any, quick: bool) -> dict:
    params = inspect.signature(module.run).parameters
    if "quick" in params:
        return module.run(quick=quick)
    if "repeat" in params:  # bench_store's knob: its default already is the full run
        return module.run(repeat=1 if quick else params["repeat"].default)
    return module.run()


# A store result grows superlinearly with the queue when p95 at 10,000 queued exceeds this × p95 at 100.
STORE_GROWTH_LIMIT = 5.0


def _store_shape(result: dict) -> bool:
    return isinstance(result.get("sqlite"), dict) and "claims_per_s" in result["sqlite"]


def _store_rows(result: dict) -> dict:
    """bench_store's own shape (per database: claims_per_s, claim_latency_ms) as table rows."""
    figures, problems = [], []
    for key, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        data = result.get(key) or {}
        if "skipped" in data or not data:
            figures.append(
                _row(f"store on {label}", {"note": f"not available: {data.get('skipped')}", "available": False})
            )
            continue
        rates = {int(k): v for k, v in data["claims_per_s"].items()}
        latency = {int(k): v for k, v in data["claim_latency_ms"].items()}
        figures.append(
            _row(
                f"store {label}: claims/s, 4 processes",
                {
                    "value": rates.get(4),
                    "unit": "claims/s",
                    "baseline": "1 process",
                    "baseline_value": rates.get(1),
                    "ratio": _safe_ratio(rates.get(4), rates.get(1)),
                    "note": f"enqueue {data.get('enqueues_per_s')}/s",
                },
            )
        )
        small, large = latency.get(100, {}), latency.get(10_000, {})
        growth = _safe_ratio(large.get("p95"), small.get("p95"))
        figures.append(
            _row(
                f"store {label}: p95 claim latency, 10,000 queued",
                {
                    "value": large.get("p95"),
                    "unit": "ms",
                    "baseline": "100 queued",
                    "baseline_value": small.get("p95"),
                    "ratio": growth,
                    "note": f"p50 {large.get('p50')} vs {small.get('p50')} ms",
                },
            )
        )
        if growth is not None and growth > STORE_GROWTH_LIMIT:
            problems.append(f"store {label}: p95 claim latency grows ×{growth:.1f} from 100 to 10,000 queued")
    return {"figures": figures, "problems": problems, "raw": result}


def _safe_ratio(value: Any, baseline: Any) -> float | None:
    try:
        return float(value) / float(baseline) if baseline else None
    except (TypeError, ValueError):
        return None


def _run_area(name: str, module_name: str, title: str, quick: bool) -> dict:
    """One area's result: ``{"figures": [...], "problems": [...], ...}`` or a not-available row."""
    start = time.monotonic()
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # a missing area must not stop the others
        return _unavailable(title, f"cannot import benchmarks/{module_name}.py: {err}")
    try:
        result = _call(module, quick)
    except Exception as err:
        traceback.print_exc()
        return _unavailable(title, f"{type(err).__name__}: {err}")
    result = _normalise(result, title)
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def _unavailable(title: str, reason: str) -> dict:
    row = {
        "figure": title,
        "value": None,
        "unit": "",
        "spread": "",
        "baseline": "",
        "baseline_value": None,
        "ratio": None,
        "n": None,
        "note": f"not available: {reason}",
        "available": False,
    }
    return {"figures": [row], "problems": []}


def _normalise(result: Any, title: str) -> dict:
    """Accept the shared shape (``figures`` + ``problems``) or any plain dict of numbers."""
    if not isinstance(result, dict):
        return _unavailable(title, f"run() returned {type(result).__name__}, not a dict")
    if _store_shape(result):
        return _store_rows(result)
    out = dict(result)
    if "figures" not in out:
        out = {"figures": [_row(key, value) for key, value in _flatten(result)], "raw": result}
    out["figures"] = [
        _row(f.get("figure") or f.get("name") or "?", f) if isinstance(f, dict) else _row("?", f)
        for f in out["figures"]
    ]
    problems = out.get("problems") or out.get("errors") or []
    if out.get("ok") is False and not problems:
        problems = [f"{title}: reported ok=False"]
    out["problems"] = [str(p) for p in problems]
    return out


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in data.items():
        if key in ("problems", "errors", "ok", "machine"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not ({"value", "median"} & set(value)):
            rows += _flatten(value, name + ".")
        else:
            rows.append((name, value))
    return rows


def _row(name: str, value: Any) -> dict:
    if not isinstance(value, dict):
        value = {"value": value}
    row = {
        "figure": name,
        "value": value.get("value", value.get("median")),
        "unit": value.get("unit", ""),
        "spread": value.get("spread", ""),
        "baseline": value.get("baseline", ""),
        "baseline_value": value.get("baseline_value"),
        "ratio": value.get("ratio"),
        "n": value.get("n"),
        "note": value.get("note", ""),
        "available": value.get("available", True),
    }
    return row


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 0.01 or magnitude == 0:
            return f"{value:.2f}"
        return f"{value:.2g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)[:40]
    return str(value)


def _ratio(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"×{_fmt(float(value))}"


def table_rows(results: dict) -> list[list[str]]:
    """The table as text cells: figure, value, spread, baseline, ratio, n, note."""
    rows = []
    for area in results["areas"]:
        for f in area["figures"]:
            value = f"{_fmt(f['value'])} {f['unit']}".strip()
            baseline = f["baseline"]
            if f.get("baseline_value") is not None:
                baseline = f"{baseline}: {_fmt(f['baseline_value'])} {f['unit']}".strip(": ")
            rows.append(
                [
                    f["figure"],
                    value,
                    f.get("spread") or "",
                    baseline,
                    _ratio(f.get("ratio")),
                    _fmt(f.get("n")),
                    f.get("note") or "",
                ]
            )
    return rows


HEADER = ["figure", "value", "spread (IQR)", "baseline", "ratio", "n", "note"]


def print_table(results: dict) -> None:
    """A plain-text table on stdout, then the machine and any problems."""
    rows = [HEADER] + table_rows(results)
    widths = [min(max(len(r[i]) for r in rows), 64) for i in range(len(HEADER))]
    widths[-1] = 0  # the note is last: never cut
    for i, row in enumerate(rows):
        print("  ".join(cell[:w].ljust(w) if w else cell for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    m = results["machine"]
    print(
        f"\nmachine: {m['cores']} cores, {m['cpu']}, {m['memory_gb']} GB, {m['os']}, Python {m['python']}, "
        f"commit {m['commit']}"
    )
    print("packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()))
    for problem in results["problems"]:
        print(f"STRUCTURAL PROBLEM: {problem}")


def markdown_table(results: dict) -> str:
    """The same table in Markdown (for RESULTS.md)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in table_rows(results):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def write_results_md(results: dict, path: Path) -> None:
    """RESULTS.md: the date, the command, the machine and the table."""
    m = results["machine"]
    command = "benchmarks/run.py" + (" --quick" if results["quick"] else "")
    lines = [
        "# Benchmark results",
        "",
        f"Date: {results['date']}. Command: `.venv/bin/python {command}` ({results['seconds']:.0f} s). "
        f"Commit {m['commit']}."
        + (" `--quick`: fewer repeats (dispatch n=12 per row; the full run takes 50)." if results["quick"] else ""),
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, {m['os']}, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + ".",
        "",
        "What each figure means: [README.md](README.md). Spread is the interquartile range in the value's "
        "unit; ratio is value / baseline, both measured in the same run.",
        "",
        markdown_table(results),
        "",
        "Structural problems: " + ("; ".join(results["problems"]) if results["problems"] else "none") + ".",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Run the selected areas, print the table, write JSON; 1 if any figure is structurally wrong."""
    args = _parse(argv)
    home = _private_environment()
    selected = [a for a in AREAS if not args.only or a[0] in args.only]
    started = time.time()
    areas = []
    try:
        for name, module_name, title in selected:
            print(f"== {title} ({module_name})", file=sys.stderr, flush=True)
            result = _run_area(name, module_name, title, args.quick)
            result.update(name=name, title=title)
            areas.append(result)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    results = {
        "date": time.strftime("%Y-%m-%d", time.localtime(started)),
        "quick": args.quick,
        "seconds": round(time.time() - started, 1),
        "machine": machine_info(),
        "areas": areas,
        "problems": [p for a in areas for p in a["problems"]],
    }
    print_table(results)
    Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {args.json} ({results['seconds']} s)")
    if args.results_md:
        write_results_md(results, HERE / "RESULTS.md")
        print(f"wrote {HERE / 'RESULTS.md'}")
    return 1 if results["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
