"""Delay from a cell's start to the run's stored progress showing it (issue 19; target ≤ 2 s locally).

    .venv/bin/python benchmarks/bench_progress.py [--poll-interval 2.0] [--cells 6] [--cell-seconds 3]

A real agent thread (SQLite store, local-process queue, the given poll interval; 2.0 s is the agent's
default) runs a notebook whose cells each sleep; this script reads ``api.run_progress`` every 20 ms
and prints, per cell, the time from the cell's start (as the entrypoint wrote it) to the store
showing it, then the median and the maximum.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--cell-seconds", type=float, default=3.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-progress-"))
    os.environ.update(XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"),
                      LAUNCH_JUPYTER_USER="bench")
    os.environ.pop("LAUNCH_JUPYTER_DB", None)
    import nbformat

    from launch_jupyter import api
    from launch_jupyter.agent import Agent

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import time; time.sleep({args.cell_seconds})  # cell {k}")
                for k in range(1, args.cells + 1)]
    path = home / "cells.ipynb"
    nbformat.write(nb, path)
    api.create_queue("bench", "local-process")
    agent = Agent(["bench"], poll_interval=args.poll_interval).start()
    delays: dict[int, float] = {}
    try:
        handle = api.submit(path, "bench", save=False)
        deadline = time.monotonic() + 120 + args.cells * args.cell_seconds * 3
        while time.monotonic() < deadline and not handle.refresh().state.is_terminal:
            found = api.run_progress(handle.id).get(handle.id)
            if found and found["cell"] not in delays:
                delays[found["cell"]] = time.time() - found["cell_started_at"]
            time.sleep(0.02)
        state = handle.refresh().state
    finally:
        agent.stop()
    print(f"progress delay, agent poll_interval {args.poll_interval} s, {args.cells} cells of "
          f"{args.cell_seconds} s (run {state}):")
    for cell in sorted(delays):
        print(f"  cell {cell}/{args.cells}: {delays[cell]:.2f} s")
    missing = [k for k in range(1, args.cells + 1) if k not in delays]
    if missing:
        print(f"  never seen: cells {missing}")
    if delays:
        values = list(delays.values())
        print(f"median {statistics.median(values):.2f} s, max {max(values):.2f} s (target ≤ 2 s)")
    return 0 if delays and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
