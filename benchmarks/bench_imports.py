"""Figure 1: what ``import launch_jupyter`` and ``%load_ext launch_jupyter`` cost in a fresh process.

Each measurement is a fresh subprocess, alternated with its baselines (``python -c pass``,
``from google.cloud import aiplatform``: the cost lazy imports avoid). Structural check: neither the
import nor ``%load_ext`` may pull in aiplatform, docker, papermill or any other ``google.cloud.*``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _stats import alternate, figure, median, not_available, spread_text

HEAVY_PREFIXES = ("google.cloud.aiplatform", "docker", "papermill", "google.cloud.")
REPORT_HEAVY = (
    "import sys, json\n"
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('docker', 'papermill')"
    " or (m.startswith('google.cloud.') and m.count('.') == 2))\n"
)

INTERP_IMPORT = (
    "import time; t = time.perf_counter(); {stmt}; dt = time.perf_counter() - t\n"
    + REPORT_HEAVY
    + "print(json.dumps({{'seconds': dt, 'heavy': heavy}}))\n"
)

SHELL = (
    "import time, json, sys\n"
    "from IPython.core.interactiveshell import InteractiveShell\n"
    "ip = InteractiveShell.instance()\n"
    "t = time.perf_counter()\n"
    "result = ip.run_cell({cell!r}, silent=True)\n"
    "dt = time.perf_counter() - t\n"
    + REPORT_HEAVY
    + "error = repr(result.error_in_exec or result.error_before_exec or '') or ''\n"
    "ok = {check}\n"
    "print(json.dumps({{'seconds': dt, 'heavy': heavy, 'ok': ok, 'error': error}}))\n"
)

LOAD_EXT = "%load_ext launch_jupyter"
LOADED = "'launch' in ip.magics_manager.magics['line']"


def _python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; its JSON line plus the process's wall time."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
    data = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    data["wall"] = wall
    return data


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or "Error" in proc.stdout or "Error" in proc.stderr:
        raise RuntimeError((proc.stdout + proc.stderr).strip()[-300:])
    return wall


def _interp(stmt: str) -> dict:
    return _python(INTERP_IMPORT.format(stmt=stmt))


def _shell(cell: str, check: str = "True") -> dict:
    return _python(SHELL.format(cell=cell, check=check))


def _magics_available() -> str:
    """'' when ``%load_ext launch_jupyter`` registers ``%launch`` here, else the reason."""
    try:
        data = _shell(LOAD_EXT, LOADED)
    except RuntimeError as err:
        return str(err)
    if not data.get("ok"):
        return f"%load_ext did not register %launch ({data.get('error') or 'launch_jupyter/magics.py missing?'})"
    return ""


def _heavy_problems(what: str, samples: list[dict]) -> list[str]:
    heavy = sorted({m for s in samples for m in s.get("heavy", [])})
    return [f"{what} imports heavy modules: {', '.join(heavy)}"] if heavy else []


def _interpreter_figures(repeats: int, heavy: int) -> tuple[list[dict], list[str]]:
    runs = alternate(
        {
            "pass": lambda: _interp("pass"),
            "import": lambda: _interp("import launch_jupyter"),
            "aiplatform": lambda: _interp("from google.cloud import aiplatform"),
        },
        repeats,
        fewer={"aiplatform": heavy},
    )
    wall = {k: [r["wall"] for r in v] for k, v in runs.items()}
    own = {k: [r["seconds"] for r in v] for k, v in runs.items()}
    figures = [
        figure(
            "import launch_jupyter: fresh interpreter, wall",
            1000 * median(wall["import"]),
            "ms",
            baseline="python -c pass",
            baseline_value=1000 * median(wall["pass"]),
            n=repeats,
            spread=spread_text(wall["import"], 1000),
        ),
        figure(
            "import launch_jupyter: the import itself",
            1000 * median(own["import"]),
            "ms",
            baseline="from google.cloud import aiplatform",
            baseline_value=1000 * median(own["aiplatform"]),
            n=repeats,
            spread=spread_text(own["import"], 1000),
            note=f"baseline n={len(own['aiplatform'])}",
        ),
    ]
    return figures, _heavy_problems("import launch_jupyter", runs["import"])


def _shell_figures(repeats: int, heavy: int) -> tuple[list[dict], list[str]]:
    reason = _magics_available()
    if reason:
        return [not_available("%load_ext launch_jupyter: fresh IPython shell", reason)], []
    ipython = str(Path(sys.executable).with_name("ipython"))
    quiet = [ipython, "--quick", "--no-banner", "-c"]
    runs = alternate(
        {
            "pass_wall": lambda: _wall([*quiet, "pass"]),
            "load_wall": lambda: _wall([*quiet, LOAD_EXT]),
            "load": lambda: _shell(LOAD_EXT, LOADED),
            "aiplatform": lambda: _shell("from google.cloud import aiplatform"),
        },
        repeats,
        fewer={"aiplatform": heavy},
    )
    load_own = [r["seconds"] for r in runs["load"]]
    ai_own = [r["seconds"] for r in runs["aiplatform"]]
    figures = [
        figure(
            "%load_ext launch_jupyter: fresh `ipython -c`, wall",
            1000 * median(runs["load_wall"]),
            "ms",
            baseline="ipython -c pass",
            baseline_value=1000 * median(runs["pass_wall"]),
            n=repeats,
            spread=spread_text(runs["load_wall"], 1000),
        ),
        figure(
            "%load_ext launch_jupyter: the cell itself",
            1000 * median(load_own),
            "ms",
            baseline="cell: from google.cloud import aiplatform",
            baseline_value=1000 * median(ai_own),
            n=repeats,
            spread=spread_text(load_own, 1000),
            note=f"baseline n={len(ai_own)}",
        ),
    ]
    problems = _heavy_problems("%load_ext launch_jupyter", runs["load"])
    problems += [f"%load_ext launch_jupyter failed: {r['error']}" for r in runs["load"] if not r.get("ok")][:1]
    return figures, problems


def run(quick: bool = False) -> dict:
    """Figure 1 rows and the structural problems found (heavy modules imported)."""
    repeats, heavy = (10, 3) if quick else (30, 9)  # the aiplatform baseline costs seconds a time
    os.environ.setdefault("GCE_METADATA_HOST", "127.0.0.1:9")  # aiplatform must never wait on metadata
    figures, problems = _interpreter_figures(repeats, heavy)
    more, more_problems = _shell_figures(repeats, heavy)
    return {"figures": figures + more, "problems": problems + more_problems}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
