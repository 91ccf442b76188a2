"""Delay from a cell's start to the run's stored progress showing it (issue 19; target ≤ 2 s locally).

    .venv/bin/python benchmarks/bench_progress.py [--poll-interval 2.0] [--cells 6] [--cell-seconds 3]
    .venv/bin/python benchmarks/bench_progress.py --vertex [--progress-interval 5.0] ...

A real agent thread (SQLite store, local-process queue, the given poll interval; 2.0 s is the agent's
default) runs a notebook whose cells each sleep; this script reads ``api.run_progress`` every 20 ms
and prints, per cell, the time from the cell's start (as the entrypoint wrote it) to the store
showing it, then the median and the maximum.

With ``--vertex`` the queue is a Vertex one against the fake Vertex AI (REST), whose worker runs the
job's container command here; the cell starts reach the store through the fake Cloud Logging, read
at most every ``environment.progress_interval`` seconds (5.0 by default: the Logging read quota).
The cell's start is then the log entry's time stamp (when the entrypoint printed the line).
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
    parser.add_argument("--vertex", action="store_true", help="a Vertex queue against the fake Vertex AI")
    parser.add_argument("--progress-interval", type=float, default=5.0, help="environment.progress_interval")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-progress-"))
    os.environ.update(
        XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"), LAUNCH_JUPYTER_USER="bench"
    )
    os.environ.pop("LAUNCH_JUPYTER_DB", None)
    import nbformat

    from launch_jupyter import api
    from launch_jupyter.agent import Agent

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import time; time.sleep({args.cell_seconds})  # cell {k}")
        for k in range(1, args.cells + 1)
    ]
    path = home / "cells.ipynb"
    nbformat.write(nb, path)
    fakes: list = []
    if args.vertex:
        image = _vertex_queue(home, args, fakes)
    else:
        api.create_queue("bench", "local-process")
        image = None
    agent = Agent(
        ["bench"], poll_interval=args.poll_interval, config=api.agent_config() if args.vertex else None
    ).start()
    delays: dict[int, float] = {}
    try:
        handle = api.submit(path, "bench", save=False, image=image)
        deadline = time.monotonic() + 120 + args.cells * args.cell_seconds * 3
        while time.monotonic() < deadline and not handle.refresh().state.is_terminal:
            found = api.run_progress(handle.id).get(handle.id)
            if found and found["cell"] not in delays:
                delays[found["cell"]] = time.time() - found["cell_started_at"]
            time.sleep(0.02)
        state = handle.refresh().state
    finally:
        agent.stop()
        for stop in fakes:
            stop()
    where = f"vertex (fake), progress_interval {args.progress_interval} s" if args.vertex else "local-process"
    print(
        f"progress delay, {where}, agent poll_interval {args.poll_interval} s, {args.cells} cells of "
        f"{args.cell_seconds} s (run {state}):"
    )
    for cell in sorted(delays):
        print(f"  cell {cell}/{args.cells}: {delays[cell]:.2f} s")
    missing = [k for k in range(1, args.cells + 1) if k not in delays]
    if missing:
        print(f"  never seen: cells {missing}")
    if delays:
        values = list(delays.values())
        print(f"median {statistics.median(values):.2f} s, max {max(values):.2f} s (target ≤ 2 s)")
    return 0 if delays and not missing else 1


def _vertex_queue(home: Path, args: argparse.Namespace, fakes: list) -> str:
    """A Vertex queue ``bench`` against the fake Vertex AI with its worker and a fake GCS; the
    agent config written to launch-config.yaml. Returns the image to submit with."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from launch_jupyter import api
    from launch_jupyter.core.trust import run_folder
    from tests.fakes import gcs_server
    from tests.fakes.vertex_server import FakeVertex
    from tests.fixtures.vertex import VERTEX_YAML, agent_config_text

    fake = FakeVertex()
    server, gcs = gcs_server.start()
    fakes += [fake.stop, server.shutdown]
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{server.server_port}"
    os.environ["GCE_METADATA_HOST"] = "127.0.0.1:9"
    config = home / "launch-config.yaml"
    config.write_text(
        agent_config_text(fake).replace(
            "credentials: anonymous\n", f"credentials: anonymous\n  progress_interval: {args.progress_interval}\n"
        )
    )
    api.configure(config_path=str(config))
    api.create_queue("bench", "vertex", config=VERTEX_YAML)
    data_dir = api.agent_config().data_dir
    fake.attach_worker(gcs, lambda run_id: run_folder(data_dir, run_id) / "context", home / "gcs-fuse")
    return "us-docker.pkg.dev/proj/launch/notebooks:1"


if __name__ == "__main__":
    sys.exit(main())
