"""The agent with the sagemaker runner, on the real PostgreSQL store, against moto_server plus the
SageMaker edge fake (tests/fakes/sagemaker_edge.py, for the job lifecycle moto lacks): a run goes
end to end, and an agent SIGKILLed inside the create or while the job runs is followed by a new
agent that reattaches: one training job per run."""

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
from tests.fixtures.aws import IMAGE, sagemaker_config
from tests.fixtures.common import EXAMPLES


@pytest.fixture
def sagemaker_queue(sagemaker, pg_url, tmp_path, monkeypatch):
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
    api.create_queue("sq", "sagemaker", config=yaml.safe_dump(sagemaker_config()))
    return sagemaker, config


def wait_for(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def creates_for(edge, run_id: str) -> int:
    return sum(
        1
        for body in edge.calls("CreateTrainingJob")
        if {"Key": "launch-run-id", "Value": run_id} in body.get("Tags", [])
    )


def finish_with_new_agent() -> None:
    Agent(config=api.agent_config(overrides={"queues": ["sq"]})).run_forever(until_idle=True)


def test_a_run_end_to_end_brings_the_notebook_back(sagemaker_queue):
    edge, _ = sagemaker_queue
    run = api.submit(EXAMPLES / "quickstart.ipynb", "sq", image=IMAGE)
    finish_with_new_agent()
    run = run.refresh()
    assert run.state is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    assert run.run.external_id == f"launch-{run.id}"
    assert run.run.output_notebook and open(run.run.output_notebook, "rb").read() == edge.notebook
    assert creates_for(edge, run.id) == 1


@pytest.mark.parametrize("moment", ["inside-create", "running"])
def test_sigkill_then_a_new_agent_reattaches_with_one_job(sagemaker_queue, moment):
    edge, config = sagemaker_queue
    if moment == "inside-create":
        edge.hang_after("CreateTrainingJob")  # the job exists at SageMaker, its answer never arrives
    else:
        edge.pause_at("Training")
    run = api.submit(EXAMPLES / "quickstart.ipynb", "sq", image=IMAGE)
    agent = subprocess.Popen(
        [sys.executable, "-m", "launch_jupyter.cli", "-c", str(config), "agent", "-q", "sq"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if moment == "inside-create":
            wait_for(lambda: edge.calls("CreateTrainingJob"))
            assert run.refresh().run.external_id is None
        else:
            wait_for(lambda: run.refresh().state is RunState.RUNNING)
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    edge.resume()
    finish_with_new_agent()
    assert run.refresh().state is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    assert creates_for(edge, run.id) == 1
    assert any("reattached" in e.message for e in run.events()), [e.message for e in run.events()]
