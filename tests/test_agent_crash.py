"""Crash safety with real processes: SIGKILL the CLI agent at each moment of a run's life, start a
new agent, and check that every run ends with exactly one job at the (fake) Vertex AI service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.states import RunState
from tests.fixtures.common import EXAMPLES
from tests.fixtures.vertex import IMAGE


def start_cli_agent(config) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "launch_jupyter.cli", "-c", str(config), "agent", "-q", "vq"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def creates_for(fake, run_id: str) -> int:
    return sum(
        1 for r in fake.calls("CreateCustomJob") if r.request["custom_job"]["labels"].get("launch-run-id") == run_id
    )


def finish_with_new_agent(config) -> None:
    agent = Agent(config=api.agent_config(overrides={"queues": ["vq"]}))
    agent.run_forever(until_idle=True)


def submit():
    return api.submit(EXAMPLES / "quickstart.ipynb", "vq", image=IMAGE)


MOMENTS = ["building", "inside-create", "after-submit", "running"]


@pytest.mark.parametrize("moment", MOMENTS)
def test_sigkill_at_each_moment_still_gives_exactly_one_job(vertex_queue, moment):
    fake, config = vertex_queue
    if moment == "building":
        fake.delay("ListCustomJobs", 60)  # the agent's look-up before create hangs: no job yet
    if moment == "inside-create":
        fake.delay("CreateCustomJob", 60, after=True)  # the job exists, its name never comes back
    run = submit()
    agent = start_cli_agent(config)
    try:
        if moment == "building":
            wait_for(lambda: fake.calls("ListCustomJobs"))
            # The look-up before create: under "submitting" when the runner looks inside its submit.
            assert run.refresh().state in (RunState.BUILDING, RunState.SUBMITTING)
        elif moment == "inside-create":
            wait_for(lambda: fake.calls("CreateCustomJob"))
            assert run.refresh().run.external_id is None
        elif moment == "after-submit":
            wait_for(lambda: run.refresh().run.external_id is not None)
        else:
            wait_for(lambda: run.refresh().state is RunState.RUNNING)
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    finish_with_new_agent(config)
    assert run.refresh().state is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    assert creates_for(fake, run.id) == 1
    assert any("reattached" in e.message for e in run.events())


def test_a_process_killed_while_holding_a_claim_loses_the_run_to_the_next_agent(vertex_queue, isolated_home):
    fake, config = vertex_queue
    run = submit()
    queue = api.get_queue("vq")
    # A real process claims the run as an agent would, then dies without renewing or releasing.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import os, socket, time
        from launch_jupyter.store import open_store
        store = open_store({api.open_store().url!r})
        got = store.claim([{queue.id}], f"{{socket.gethostname()}}:{{os.getpid()}}:dead", 30)
        print(got.id, flush=True)
        time.sleep(600)
    """),
        ],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == run.id
        assert run.refresh().state is RunState.CLAIMED
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    dead_lease_ends = run.refresh().run.lease_expires_at
    finish_with_new_agent(config)
    assert run.refresh().state is RunState.SUCCEEDED
    # Taken while the dead holder's 30 s lease still ran: its process was gone, so no waiting for it.
    taken = [e for e in run.events() if "reattached by" in e.message or "claimed by" in e.message][-1]
    assert taken.time < dead_lease_ends
    assert creates_for(fake, run.id) == 1


def test_several_runs_and_two_kills_each_end_with_one_job(vertex_queue):
    fake, config = vertex_queue
    runs = [submit() for _ in range(4)]
    for _ in range(2):
        agent = start_cli_agent(config)
        try:
            wait_for(lambda: any(r.refresh().state is RunState.RUNNING for r in runs))
        finally:
            agent.send_signal(signal.SIGKILL)
            agent.wait()
    finish_with_new_agent(config)
    for run in runs:
        assert run.refresh().state is RunState.SUCCEEDED
        assert creates_for(fake, run.id) == 1
