"""Chaos, bounded (≈1.5 min): three agent processes on one PostgreSQL store, one SIGKILLed and restarted every
2–6 s, while Vertex runs (fake, states by time) go through them. Every run ends succeeded with
exactly one CustomJob. The same on SQLite with local-process runs that append to a file: each ran once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from launch_jupyter import api
from launch_jupyter.core.states import RunState
from tests.fixtures.common import EXAMPLES
from tests.fixtures.vertex import IMAGE, VERTEX_YAML
from tests.test_agent_fencing import creates_for, wait_for

RUNS = 30
CHAOS_SECONDS = 45
AGENTS = 3
LOCAL_RUNS = 8
LOCAL_CHAOS_SECONDS = 30

pytestmark = [pytest.mark.slow]


def start(config) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "launch_jupyter.cli", "-c", str(config), "agent", "-q", "vq", "--max-jobs", "3"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.postgres
def test_agents_killed_at_random_leave_every_run_with_one_job(vertex_queue, pg_url, tmp_path, capsys):
    fake, config = vertex_queue
    config.write_text(config.read_text().replace("lease_seconds: 30", "lease_seconds: 3") + f"store: {pg_url}\n")
    api.configure(config_path=str(config))
    api.create_queue("vq", "vertex", config=VERTEX_YAML)
    fake.script(["PENDING"] + ["RUNNING"] * 40 + ["SUCCEEDED"])  # ≈8 s per job on the fake's clock
    runs = [api.submit(EXAMPLES / "quickstart.ipynb", "vq", image=IMAGE) for _ in range(RUNS)]
    agents = [start(config) for _ in range(AGENTS)]
    kills = 0
    rng = random.Random(13)
    try:
        end = time.monotonic() + CHAOS_SECONDS
        while time.monotonic() < end:
            time.sleep(rng.uniform(2, 6))  # the chaos cadence itself, not a wait for a condition
            victim = rng.randrange(AGENTS)
            agents[victim].send_signal(signal.SIGKILL)
            agents[victim].wait()
            agents[victim] = start(config)
            kills += 1
        wait_for(lambda: all(r.refresh().state.is_terminal for r in runs), timeout=240, what="every run to end")
    finally:
        for agent in agents:
            agent.send_signal(signal.SIGTERM)
        for agent in agents:
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                agent.kill()
    for run in runs:
        assert run.refresh().state is RunState.SUCCEEDED, (
            run.run.message + " | " + "; ".join(f"{e.state} {e.message}" for e in run.events()[-6:])
        )
    per_run = [creates_for(fake, r.id) for r in runs]
    assert per_run == [1] * RUNS, per_run
    assert kills >= CHAOS_SECONDS // 6
    reattached = sum(1 for r in runs if any("reattached" in e.message for e in r.events()))
    assert reattached > 0  # the kills did hit agents holding runs
    with capsys.disabled():
        print(f"\n[figure] chaos: {RUNS} runs, {kills} kills, {reattached} runs reattached, creates per run 1")


def test_local_runs_survive_agents_killed_at_random_and_each_runs_once(tmp_path, capsys):
    from tests.test_agent_fencing import marker_notebook

    config = tmp_path / "launch-config.yaml"
    config.write_text("poll_interval: 0.2\nlease_seconds: 3\n")  # SQLite, the default store
    api.configure(config_path=str(config))
    api.create_queue("vq", "local-process")  # start() serves "vq"
    notebook = marker_notebook(tmp_path / "marker.ipynb")
    go = tmp_path / "go"
    markers = [tmp_path / f"ran-{i}.txt" for i in range(LOCAL_RUNS)]
    runs = [api.submit(notebook, "vq", parameters={"marker": str(m), "go": str(go)}) for m in markers]
    agents = [start(config) for _ in range(2)]
    kills = 0
    rng = random.Random(31)
    try:
        end = time.monotonic() + LOCAL_CHAOS_SECONDS
        while time.monotonic() < end:
            time.sleep(rng.uniform(2, 6))  # the chaos cadence itself
            victim = rng.randrange(len(agents))
            agents[victim].send_signal(signal.SIGKILL)
            agents[victim].wait()
            agents[victim] = start(config)
            kills += 1
        go.touch()  # let the notebooks end
        wait_for(lambda: all(r.refresh().state.is_terminal for r in runs), timeout=240, what="every run to end")
    finally:
        go.touch()
        for agent in agents:
            agent.send_signal(signal.SIGTERM)
        for agent in agents:
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                agent.kill()
    for run in runs:
        assert run.refresh().state is RunState.SUCCEEDED, (
            run.run.message + " | " + "; ".join(f"{e.state} {e.message}" for e in run.events()[-6:])
        )
    executions = [len(m.read_text().splitlines()) for m in markers]
    assert executions == [1] * LOCAL_RUNS, executions
    reattached = sum(1 for r in runs if any("reattached" in e.message for e in r.events()))
    with capsys.disabled():
        print(
            f"\n[figure] local chaos (SQLite): {LOCAL_RUNS} runs, {kills} kills, {reattached} reattached, "
            "executions per run 1"
        )
