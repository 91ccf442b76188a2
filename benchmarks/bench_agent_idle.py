"""The idle agent's CPU per minute (issue 13's figure: target ≤ 60 ms/min; 285 ms/min on SQLite before).

A process that runs only an idle Agent thread for a window, beside the same process without one, on
SQLite and PostgreSQL (bench_kernel's measurement, printed on its own). Usage:
``.venv/bin/python benchmarks/bench_agent_idle.py [--quick]``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import bench_kernel


def main(quick: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    window, repeats = (15.0, 1) if quick else (30.0, 3)
    try:
        with bench_kernel._stores(work) as stores:
            for row in bench_kernel.idle_cpu_figures(stores, window, repeats):
                print(f"{row['figure']}: {row['value']:.0f} {row['unit']} ({row.get('note', '')})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
