"""Sweeps: time to queue a 1,000-point sweep (beside one single submit of the same notebook),
contexts and builds per sweep, and the time from a sweep's last run ending to the SweepBoard
table showing it (in-kernel agent: events pushed; agent in another process: the board's poll).

    .venv/bin/python benchmarks/bench_sweep.py [--repeats N] [--points N]

Runs in private XDG folders and a fresh SQLite store (and a fresh PostgreSQL schema when
127.0.0.1:5432 answers), removed afterwards. Builds per sweep are counted from the runs' events
with the docker builder on a local-container queue when a Docker engine answers (DOCKER_HOST),
else that figure says why it is not available.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": "lr = 0.1\nlayers = 2",
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "import launch_jupyter\nlaunch_jupyter.record('accuracy', layers / 10 + lr)",
        },
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def _notebook(folder: Path) -> Path:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.ipynb"
    path.write_text(json.dumps(NOTEBOOK))
    return path


def _pg_url() -> str | None:
    try:
        import psycopg

        schema = f"lj_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True, connect_timeout=3
        ) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return f"postgresql://postgres@127.0.0.1:5432/postgres?options=-csearch_path%3D{schema}"
    except Exception as err:  # no server here: that figure is not available
        print(f"  postgresql: not available: {type(err).__name__}: {err}")
        return None


def queue_times(url: str, notebook: Path, points: int, repeats: int) -> tuple[list[float], list[float]]:
    from launch_jupyter import api

    api.configure(store_url=url)
    api.create_queue("bench", "local-process", exist_ok=True)
    side = int(points**0.5)
    grid = {"layers": f"range({side})", "lr": f"range({points // side})"}
    sweeps, singles = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        handle = api.sweep(notebook, "bench", parameters=grid, save=False)
        sweeps.append(time.perf_counter() - start)
        assert handle.sweep["total"] == side * (points // side)
        start = time.perf_counter()
        api.submit(notebook, "bench", parameters={"layers": 3}, save=False)
        singles.append(time.perf_counter() - start)
        api.cancel_sweep(handle.id)
    return sweeps, singles


def contexts_per_sweep(url: str) -> tuple[int, int]:
    from sqlalchemy import func, select

    from launch_jupyter import api
    from launch_jupyter.store._schema import run_contexts, runs

    store = api.open_store(url)
    sweep = store.list_sweeps(limit=1)[0]
    with store._backend.read() as conn:
        hashes = conn.execute(
            select(func.count(func.distinct(runs.c.content_hash))).where(runs.c.sweep_id == sweep["id"])
        ).scalar()
        stored = conn.execute(
            select(func.count()).select_from(run_contexts).where(run_contexts.c.run_id == f"sweep:{sweep['id']}")
        ).scalar()
    return stored, hashes


def table_lag(url: str, notebook: Path, agent_elsewhere: bool) -> float:
    """Seconds from the last run's final event to the SweepBoard rows showing every run ended."""
    from launch_jupyter import api
    from launch_jupyter.widgets import SweepBoard

    api.configure(store_url=url)
    api.create_queue("lag", "local-process", exist_ok=True)
    handle = api.sweep(notebook, "lag", parameters={"layers": "1,2,3"}, save=False)
    board = SweepBoard(handle.id, store_url=url)
    process = None
    try:
        if agent_elsewhere:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "launch_jupyter.cli",
                    "--store",
                    url,
                    "agent",
                    "-q",
                    "lag",
                    "--poll-interval",
                    "0.2",
                    "--until-idle",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            api.start_agent(["lag"], store_url=url)
        deadline = time.monotonic() + 600
        while not all(r["state"] == "succeeded" for r in board.rows):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sweep did not finish: {[r['state'] for r in board.rows]}")
            time.sleep(0.01)
        seen = time.time()
    finally:
        board.close()
        api.stop_agent()
        if process is not None:
            process.wait(timeout=120)
    last_end = max(e.time for r in handle.runs() for e in api.events(r.id) if e.state.is_terminal)
    return seen - last_end


def builds_per_sweep(notebook: Path) -> str:
    if not os.environ.get("DOCKER_HOST"):
        return "not available: no Docker engine (set DOCKER_HOST to one) for the docker builder"
    from launch_jupyter import api
    from launch_jupyter.agent import Agent
    from launch_jupyter.core.states import RunState

    api.create_queue("docker", "local-container", exist_ok=True)
    handle = api.sweep(notebook, "docker", parameters={"layers": "1,2,3,4"}, max_parallel=2, save=False)
    Agent(config=api.agent_config(overrides={"queues": ["docker"], "builder": {"type": "docker"}})).run_forever(
        until_idle=True
    )
    builds = sum(1 for r in handle.runs() for e in api.events(r.id) if e.state is RunState.BUILDING)
    return f"{builds} (4-point sweep, docker builder)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--points", type=int, default=1000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lj-bench-sweep-"))
    os.environ.update(
        XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"), LAUNCH_JUPYTER_USER="bench"
    )
    try:
        notebook = _notebook(home / "nb")
        stores = {"sqlite": f"sqlite:///{home / 'launch.db'}"}
        pg = _pg_url()
        if pg:
            stores["postgresql"] = pg
        print(f"sweeps ({args.points} points, {args.repeats} repeats, median [min-max])")
        for name, url in stores.items():
            sweeps, singles = queue_times(url, notebook, args.points, args.repeats)
            print(
                f"  queue a {args.points}-point sweep, {name}: {statistics.median(sweeps):.3f} s "
                f"[{min(sweeps):.3f}-{max(sweeps):.3f}]; one single submit: {statistics.median(singles):.3f} s "
                f"(ratio {statistics.median(sweeps) / statistics.median(singles):.2f})"
            )
            stored, hashes = contexts_per_sweep(url)
            print(f"  build contexts stored per sweep, {name}: {stored}; content hashes per sweep: {hashes}")
        url = stores["sqlite"]
        for elsewhere in (False, True):
            lags = [table_lag(url, notebook, elsewhere) for _ in range(max(1, args.repeats // 2))]
            where = "agent in another process (board polls every 1 s)" if elsewhere else "in-kernel agent"
            print(
                f"  last run's end → SweepBoard shows it, {where}: {statistics.median(lags):.3f} s "
                f"[{min(lags):.3f}-{max(lags):.3f}]"
            )
        print(f"  builds per sweep: {builds_per_sweep(notebook)}")
    finally:
        from launch_jupyter.store import close_all

        close_all()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
