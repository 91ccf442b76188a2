"""The agent with the kubernetes runner, on the real PostgreSQL store, against the FAKE Kubernetes
API server (tests/fakes/kubernetes_server.py; no real API server can be installed here): a run end
to end, and an agent SIGKILLed inside the Job create (the create took effect, its answer lost) or
while the Job runs is followed by a new agent that reattaches: one Job per run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.states import RunState
from tests.fixtures.common import EXAMPLES
from tests.fixtures.kubernetes import IMAGE, kubernetes_config


@pytest.fixture
def kubernetes_queue(fake_kubernetes, pg_url, tmp_path, monkeypatch):
    config = tmp_path / "launch-config.yaml"
    config.write_text(
        textwrap.dedent("""
        poll_interval: 0.2
        lease_seconds: 30
        builder:
          type: noop
    """)
    )
    monkeypatch.setenv("LAUNCH_JUPYTER_DB", pg_url)
    api.configure(store_url=pg_url, config_path=str(config))
    api.create_queue("kq", "kubernetes", config=yaml.safe_dump(kubernetes_config()))
    return fake_kubernetes, config


def wait_for(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def creates_for(fake, run_id: str) -> int:
    return sum(
        1 for _, _, _, body in fake.calls("POST", "/jobs") if body["metadata"]["labels"].get("launch-run-id") == run_id
    )


def finish_with_new_agent() -> None:
    Agent(config=api.agent_config(overrides={"queues": ["kq"]})).run_forever(until_idle=True)


def test_a_run_end_to_end(kubernetes_queue):
    fake, _ = kubernetes_queue
    run = api.submit(EXAMPLES / "quickstart.ipynb", "kq", image=IMAGE)
    finish_with_new_agent()
    run = run.refresh()
    assert run.state is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    assert run.run.external_id == f"launch-{run.id}" and creates_for(fake, run.id) == 1


@pytest.mark.parametrize("moment", ["inside-create", "running"])
def test_sigkill_then_a_new_agent_reattaches_with_one_job(kubernetes_queue, moment):
    fake, config = kubernetes_queue
    if moment == "inside-create":
        fake.hang_after("POST", "/jobs")  # the Job exists in the cluster, the create's answer never arrives
    else:
        fake.pause_at("Running")
    run = api.submit(EXAMPLES / "quickstart.ipynb", "kq", image=IMAGE)
    agent = subprocess.Popen(
        [sys.executable, "-m", "launch_jupyter.cli", "-c", str(config), "agent", "-q", "kq"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if moment == "inside-create":
            wait_for(lambda: fake.calls("POST", "/jobs"))
            assert run.refresh().run.external_id is None
        else:
            wait_for(lambda: run.refresh().state is RunState.RUNNING)
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    fake.resume()  # a second create would now be answered (409) and counted
    finish_with_new_agent()
    assert run.refresh().state is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    assert creates_for(fake, run.id) == 1
    assert any("reattached" in e.message for e in run.events()), [e.message for e in run.events()]
