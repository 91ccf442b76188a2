"""The agent end to end on this machine: local-process queues, real notebooks, real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.errors import LaunchError
from launch_jupyter.core.states import RunState
from tests.fixtures.common import EXAMPLES, REPO

QUICKSTART = EXAMPLES / "quickstart.ipynb"
SLEEPER = EXAMPLES / "parameters.ipynb"


def claimed_order(runs):
    """Run ids in the order an agent claimed them (from the event history)."""
    claims = []
    for run in runs:
        for event in api.events(run.id):
            if event.state is RunState.CLAIMED:
                claims.append((event.time, event.id, run.id))
    return [run_id for _, _, run_id in sorted(claims)]


def run_until_idle(**kwargs) -> Agent:
    agent = Agent(poll_interval=0.2, **kwargs)
    agent.run_forever(until_idle=True)
    return agent


def test_thread_agent_runs_a_submitted_notebook():
    api.create_queue("laptop", "local-process")
    agent = Agent(["laptop"], poll_interval=0.2).start()
    try:
        run = api.submit(QUICKSTART, "laptop", parameters={"name": "agent", "n": 4})
        assert run.wait(timeout=120) is RunState.SUCCEEDED, [str(e.state) + e.message for e in run.events()]
    finally:
        agent.stop()
    executed = json.loads(Path(run.output_notebook).read_text())
    outputs = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert "agent" in outputs
    states = [e.state for e in run.events()]
    assert states[0] is RunState.QUEUED and states[-1] is RunState.SUCCEEDED
    assert RunState.SUBMITTED in states and RunState.RUNNING in states
    assert run.run.author == "alice"
    assert Path(run.run.log_path).is_file() and "".join(run.logs())  # run show / logs reach it


def test_max_jobs_is_never_exceeded():
    api.create_queue("q", "local-process")
    runs = [api.submit(SLEEPER, "q", parameters={"seconds": 2}) for _ in range(5)]
    run_until_idle(queues=["q"], max_jobs=2)
    spans = []
    for run in runs:
        run.refresh()
        assert run.state is RunState.SUCCEEDED
        events = run.events()
        start = next(e.time for e in events if e.state is RunState.CLAIMED)
        end = next(e.time for e in events if e.state is RunState.SUCCEEDED)
        spans.append((start, end))
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2


def test_two_queues_are_served_in_turn():
    api.create_queue("a", "local-process")
    api.create_queue("b", "local-process")
    a_runs = [api.submit(QUICKSTART, "a", name=f"a{i}") for i in range(3)]
    b_runs = [api.submit(QUICKSTART, "b", name=f"b{i}") for i in range(2)]
    run_until_idle(queues=["a", "b"], max_jobs=1)
    names = {r.id: r.run.name for r in a_runs + b_runs}
    order = [names[i] for i in claimed_order(a_runs + b_runs)]
    # b's runs came later, yet b is not starved behind all of a's.
    assert order[:4] in (["a0", "b0", "a1", "b1"], ["b0", "a0", "b1", "a1"]), order


def test_priority_first_then_fifo_on_a_prioritized_queue():
    api.create_queue("prio", "local-process", prioritization=True)
    submitted = [
        api.submit(QUICKSTART, "prio", priority=p, name=n)
        for p, n in [
            ("low", "low"),
            ("medium", "medium1"),
            ("critical", "critical"),
            ("high", "high"),
            ("medium", "medium2"),
        ]
    ]
    run_until_idle(queues=["prio"], max_jobs=1)
    names = {r.id: r.run.name for r in submitted}
    assert [names[i] for i in claimed_order(submitted)] == ["critical", "high", "medium1", "medium2", "low"]


def test_a_failing_notebook_fails_at_stage_run_and_the_agent_carries_on():
    api.create_queue("q", "local-process")
    bad = api.submit(SLEEPER, "q", parameters={"seconds": 0, "fail": True})
    good = api.submit(QUICKSTART, "q")
    run_until_idle(queues=["q"])
    bad.refresh()
    good.refresh()
    assert bad.state is RunState.FAILED and bad.run.stage == "run"
    assert "Traceback" in "".join(bad.logs()) or "Error" in "".join(bad.logs())
    assert good.state is RunState.SUCCEEDED


def test_cancel_reaches_a_queued_and_a_running_run():
    api.create_queue("q", "local-process")
    long = api.submit(SLEEPER, "q", parameters={"seconds": 120})
    queued = api.submit(QUICKSTART, "q")
    assert api.cancel(queued.id).state is RunState.CANCELLED  # queued: at once, no agent needed
    agent = Agent(["q"], poll_interval=0.2).start()
    try:
        _wait_for(lambda: long.refresh().state is RunState.RUNNING, 60)
        api.cancel(long.id)
        assert long.wait(timeout=20) is RunState.CANCELLED
    finally:
        agent.stop()
    states = [e.state for e in long.events()]
    assert RunState.CANCELLING in states


def test_stopped_agent_leaves_its_run_to_the_next_which_reattaches():
    api.create_queue("q", "local-process")
    run = api.submit(SLEEPER, "q", parameters={"seconds": 4})
    first = Agent(["q"], poll_interval=0.2).start()
    _wait_for(lambda: run.refresh().state is RunState.RUNNING, 60)
    first.stop()
    held = run.refresh().run
    assert held.external_id and held.state is RunState.RUNNING
    run_until_idle(queues=["q"])
    assert run.refresh().state is RunState.SUCCEEDED
    messages = [e.message for e in run.events()]
    assert any("reattached" in m for m in messages)
    assert sum(1 for e in run.events() if e.state is RunState.SUBMITTED) == 1


def test_killed_cli_agent_is_taken_over_at_once_on_the_same_host(tmp_path):
    api.create_queue("q", "local-process")
    run = api.submit(SLEEPER, "q", parameters={"seconds": 3})
    cli = [sys.executable, "-m", "launch_jupyter.cli", "agent", "-q", "q", "--poll-interval", "0.2"]
    proc = subprocess.Popen(cli, env=os.environ.copy(), stdout=subprocess.DEVNULL)
    try:
        _wait_for(lambda: run.refresh().state is RunState.RUNNING, 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The lease (30 s) has not expired, but the dead agent lived on this host: no waiting for it.
    dead_lease_ends = run.refresh().run.lease_expires_at
    run_until_idle(queues=["q"])
    assert run.refresh().state is RunState.SUCCEEDED
    (taken,) = [e for e in run.events() if "reattached by" in e.message]
    assert taken.time < dead_lease_ends, "taken over only once the dead agent's lease ran out"
    assert sum(1 for e in run.events() if e.state is RunState.SUBMITTED) == 1


def test_cli_agent_until_idle_prints_each_transition(tmp_path):
    api.create_queue("q", "local-process")
    run = api.submit(QUICKSTART, "q")
    log_file = tmp_path / "agent.log"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch_jupyter.cli",
            "agent",
            "-q",
            "q",
            "--until-idle",
            "--poll-interval",
            "0.2",
            "-l",
            str(log_file),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert f"{run.id} q succeeded" in done.stdout
    assert "succeeded" in log_file.read_text()


def test_agent_refuses_to_start_for_a_missing_queue():
    api.create_queue("q", "local-process")
    with pytest.raises(LaunchError, match='"alice/nope" does not exist|nope'):
        Agent(["nope"]).start()


def test_thread_agent_does_not_block_the_caller():
    api.create_queue("q", "local-process")
    agent = Agent(["q"], poll_interval=0.2).start()
    assert agent.status()["state"] in ("starting", "running")  # start() returned with the thread under way
    agent.stop()
    assert not agent.is_alive()


def test_subscribers_see_each_transition():
    api.create_queue("q", "local-process")
    seen = []
    agent = Agent(["q"], poll_interval=0.2)
    agent.subscribe(seen.append)
    agent.start()
    try:
        run = api.submit(QUICKSTART, "q")
        assert run.wait(timeout=120) is RunState.SUCCEEDED
        _wait_for(lambda: any(e.state is RunState.SUCCEEDED for e in seen), 10)
    finally:
        agent.stop()
    assert {RunState.CLAIMED, RunState.SUBMITTED, RunState.SUCCEEDED} <= {e.state for e in seen}
    assert {e.run_id for e in seen} == {run.id}


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


@pytest.mark.postgres
def test_two_agents_on_postgresql_share_a_queue_without_double_work(pg_url):
    api.configure(store_url=pg_url)
    api.create_queue("shared", "local-process")
    runs = [api.submit(SLEEPER, "shared", parameters={"seconds": 1}) for _ in range(6)]
    agents = [Agent(["shared"], max_jobs=2, poll_interval=0.2, store_url=pg_url) for _ in range(2)]
    threads = [threading.Thread(target=a.run_forever, kwargs={"until_idle": True}) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    holders = set()
    for run in runs:
        assert run.refresh().state is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
        events = run.events()
        assert sum(1 for e in events if e.state is RunState.CLAIMED) == 1
        assert sum(1 for e in events if e.state is RunState.SUBMITTED) == 1
        holders.add(run.run.agent_id)
    assert len(holders) == 2  # both agents took work
