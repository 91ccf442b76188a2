"""The agent's failure, retry, stop and preflight paths against the fake Vertex AI service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.errors import LaunchError
from launch_jupyter.core.states import RunState
from tests.fixtures.common import EXAMPLES
from tests.fixtures.vertex import IMAGE

QUICKSTART = EXAMPLES / "quickstart.ipynb"


def run_until_idle() -> Agent:
    agent = Agent(config=api.agent_config(overrides={"queues": ["vq"]}))
    agent.run_forever(until_idle=True)
    return agent


def messages(run) -> str:
    return "\n".join(f"{e.state} {e.message}" for e in run.events())


def test_a_run_without_an_image_fails_at_stage_build_and_says_how_to_give_one(vertex_queue):
    fake, _ = vertex_queue
    run = api.submit(QUICKSTART, "vq")  # noop builder, no --image, the queue names none
    good = api.submit(QUICKSTART, "vq", image=IMAGE)
    run_until_idle()
    assert run.refresh().state is RunState.FAILED and run.run.stage == "build"
    assert "--image" in run.run.message
    assert good.refresh().state is RunState.SUCCEEDED  # the agent carried on
    assert len(fake.calls("CreateCustomJob")) == 1


def test_a_permanent_api_error_fails_at_stage_submit_with_the_api_message(vertex_queue):
    fake, _ = vertex_queue
    fake.fail("CreateCustomJob", "PERMISSION_DENIED", message="caller lacks aiplatform.customJobs.create")
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    run_until_idle()
    assert run.refresh().state is RunState.FAILED and run.run.stage == "submit"
    assert "aiplatform.customJobs.create" in messages(run)


def test_transient_api_errors_are_retried_then_the_run_goes_on(vertex_queue):
    fake, _ = vertex_queue
    fake.fail("CreateCustomJob", "UNAVAILABLE", times=2)
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    run_until_idle()
    assert run.refresh().state is RunState.SUCCEEDED, messages(run)
    created = fake.calls("CreateCustomJob")
    assert len(created) == 3  # two refused, one made the job
    assert len(fake.state.jobs) == 1


def test_a_failed_vertex_job_brings_its_error_message_to_the_run(vertex_queue):
    fake, _ = vertex_queue
    fake.script(["PENDING", "RUNNING", "FAILED"], error_message="worker pool 0 ran out of memory")
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    run_until_idle()
    assert run.refresh().state is RunState.FAILED and run.run.stage == "run"
    assert "ran out of memory" in messages(run)


def test_cancel_of_a_running_vertex_run_goes_through_cancelling(vertex_queue):
    fake, _ = vertex_queue
    fake.script(["PENDING"] + ["RUNNING"] * 10_000)
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    agent = Agent(config=api.agent_config(overrides={"queues": ["vq"]})).start()
    try:
        deadline = time.monotonic() + 60
        while run.refresh().state is not RunState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        api.cancel(run.id)
        assert run.wait(timeout=30) is RunState.CANCELLED, messages(run)
    finally:
        agent.stop()
    assert len(fake.calls("CancelCustomJob")) == 1
    assert RunState.CANCELLING in [e.state for e in run.events()]


def test_sigterm_stops_the_cli_agent_promptly_and_leaves_the_run_for_reattachment(vertex_queue):
    fake, config = vertex_queue
    fake.script(["PENDING"] + ["RUNNING"] * 10_000)
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    agent = subprocess.Popen(
        [sys.executable, "-m", "launch_jupyter.cli", "-c", str(config), "agent", "-q", "vq"],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while run.refresh().state is not RunState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=10) == 0
    held = run.refresh().run
    assert held.state is RunState.RUNNING and held.external_id
    assert held.lease_expires_at is not None and held.lease_expires_at <= time.time()  # released
    assert "stopped" in agent.stdout.read()


def test_preflight_refuses_a_vertex_queue_without_credentials(vertex_queue, tmp_path, monkeypatch):
    _, config = vertex_queue
    config.write_text(config.read_text().replace("credentials: anonymous", "credentials: default"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(LaunchError, match="credentials|ADC|application-default"):
        Agent(config=api.agent_config(overrides={"queues": ["vq"]})).start()


def test_preflight_refuses_a_missing_queue_among_good_ones(vertex_queue):
    with pytest.raises(LaunchError, match="nope"):
        Agent(config=api.agent_config(overrides={"queues": ["vq", "nope"]})).start()
    assert api.list_runs() == []  # nothing was touched


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("127.0.0.1:5000/proj/notebooks", "cannot reach"),
        ("registry.internal/proj/notebooks", "cannot reach"),
        (None, "needs builder.destination"),
    ],
)
def test_preflight_refuses_a_destination_vertex_cannot_pull_from(vertex_queue, destination, expected):
    _, config = vertex_queue
    builder = {"type": "docker", **({"destination": destination} if destination else {})}
    with pytest.raises(LaunchError, match=expected):
        Agent(config=api.agent_config(overrides={"queues": ["vq"], "builder": builder})).preflight()


def until_idle_agent(config) -> subprocess.Popen:
    """A CLI agent on queue vq that returns when it has nothing left to do; its output in a pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "launch_jupyter.cli", "-c", str(config), "agent", "-q", "vq", "--until-idle"],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_status_call_that_keeps_failing_ends_the_run_and_until_idle_returns(vertex_queue):
    fake, config = vertex_queue
    config.write_text(config.read_text() + "status_timeout: 3\n")
    fake.script(["PENDING"] + ["RUNNING"] * 100_000)
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    agent = until_idle_agent(config)
    try:
        deadline = time.monotonic() + 60
        while run.refresh().state is not RunState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        for method in ("ListCustomJobs", "GetCustomJob"):  # a filter refused, a permission gone
            fake.fail(method, "PERMISSION_DENIED", times=1_000_000, message="caller lacks aiplatform.customJobs.get")
        said, _ = agent.communicate(timeout=120)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, said
    ended = run.refresh().run
    assert ended.state is RunState.FAILED and ended.stage == "run", messages(run)
    assert "could not be read for" in ended.message
    # The API's own code and text, not "the target did not report it".
    assert "(PERMISSION_DENIED: caller lacks aiplatform.customJobs.get)" in ended.message, ended.message
    assert "aiplatform.customJobs.list" in ended.message  # the permission of the batched call that failed
    notes = [e.message for e in run.events() if e.message.startswith("cannot read the job's status")]
    assert len(notes) == 1, notes  # said once, not once per poll


def test_a_list_the_service_refuses_falls_back_to_one_get_per_job_and_the_run_is_tracked(vertex_queue):
    """ListCustomJobs answering 400 (a filter the endpoint rejects) is permanent: asking it again
    cannot help, but GetCustomJob still answers for each job (jobs.get takes a name, no filter), so
    the run is followed to its end instead of failing after status_timeout."""
    fake, config = vertex_queue
    config.write_text(config.read_text() + "status_timeout: 600\n")
    fake.script(["PENDING"] + ["RUNNING"] * 3 + ["SUCCEEDED"])
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    agent = until_idle_agent(config)
    try:
        deadline = time.monotonic() + 60
        while run.refresh().run.external_id is None and time.monotonic() < deadline:
            time.sleep(0.05)
        fake.fail("ListCustomJobs", "INVALID_ARGUMENT", times=1_000_000, message="Unsupported filter")
        said, _ = agent.communicate(timeout=180)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, said
    assert run.refresh().state is RunState.SUCCEEDED, messages(run)
    assert "reading each job with GetCustomJob instead" in said, said


def test_sigterm_is_prompt_while_a_status_call_hangs(vertex_queue):
    fake, config = vertex_queue
    fake.script(["PENDING"] + ["RUNNING"] * 100_000)
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    agent = subprocess.Popen(
        [sys.executable, "-m", "launch_jupyter.cli", "-c", str(config), "agent", "-q", "vq"],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while run.refresh().state is not RunState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    fake.delay("ListCustomJobs", None, times=1_000_000)  # every status call hangs from now on
    calls = len(fake.calls("ListCustomJobs"))
    while len(fake.calls("ListCustomJobs")) == calls and time.monotonic() < deadline + 30:
        time.sleep(0.05)  # the agent is inside a hung call now
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=20) == 0  # not the call's own deadline: the hung call is left behind
    held = run.refresh().run
    assert held.state is RunState.RUNNING and held.lease_expires_at <= time.time()  # released for the next
    fake.release()


def test_a_cancel_goes_out_while_the_status_call_hangs(vertex_queue):
    fake, _ = vertex_queue
    fake.script(["PENDING"] + ["RUNNING"] * 100_000)
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    agent = Agent(config=api.agent_config(overrides={"queues": ["vq"]})).start()
    try:
        deadline = time.monotonic() + 60
        while run.refresh().state is not RunState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        fake.delay("ListCustomJobs", None, times=1_000_000)  # every status call hangs from now on
        calls = len(fake.calls("ListCustomJobs"))
        while len(fake.calls("ListCustomJobs")) == calls and time.monotonic() < deadline + 30:
            time.sleep(0.05)
        api.cancel(run.id)
        while run.refresh().state is not RunState.CANCELLING and time.monotonic() < deadline + 60:
            time.sleep(0.05)
        assert run.state is RunState.CANCELLING, messages(run)  # sent while the status call still hangs
        assert len(fake.calls("CancelCustomJob")) == 1
        fake.release()
        assert run.wait(timeout=60) is RunState.CANCELLED, messages(run)
    finally:
        agent.stop()


def test_same_state_new_message_is_one_event_per_change_not_per_poll(vertex_queue):
    fake, _ = vertex_queue
    # RUNNING, then UPDATING (also running, with its own message), then RUNNING, then done; the fake
    # clock moves only when the test says, so each state is polled many times.
    fake.script(["RUNNING", "UPDATING", "RUNNING", "SUCCEEDED"], step=3600)
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    agent = Agent(config=api.agent_config(overrides={"queues": ["vq"]})).start()

    def polls_go_by(n: int = 4) -> None:
        seen = len(fake.calls("ListCustomJobs"))
        deadline = time.monotonic() + 60
        while len(fake.calls("ListCustomJobs")) < seen + n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fake.calls("ListCustomJobs")) >= seen + n

    try:
        deadline = time.monotonic() + 60
        while run.refresh().state is not RunState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        polls_go_by()
        fake.advance(3600)  # UPDATING
        polls_go_by()
        fake.advance(3600)  # RUNNING again
        polls_go_by()
        fake.advance(3600)  # SUCCEEDED
        assert run.wait(timeout=60) is RunState.SUCCEEDED, messages(run)
    finally:
        agent.stop()
    updating = [e for e in run.events() if e.message == "Vertex AI is updating the job"]
    assert len(updating) == 1, messages(run)
    assert updating[0].state is RunState.RUNNING
