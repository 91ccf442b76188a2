"""Vertex runner under API faults injected in the fake: one attempt per call, the error classified
(transient or permanent) with the API's code and message; transient ones go through the one retry
policy (``core.retry``, what the agent applies), permanent ones fail at once with what to check."""

from __future__ import annotations

import pytest

from launch_jupyter.core.errors import DispatchError
from launch_jupyter.core.retry import retry
from launch_jupyter.core.states import RunState
from tests.fixtures.vertex import make_job

TRANSIENT = ["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL"]
PERMANENT = {
    "INVALID_ARGUMENT": "--dry-run",
    "PERMISSION_DENIED": "aiplatform.customJobs.create",
    "NOT_FOUND": "project and location",
}


def with_retries(fn, deadline_s: float = 30.0):
    """The agent's policy with short waits (the agent's own base is 0.5 s)."""
    return retry(fn, deadline_s=deadline_s, base_s=0.01, cap_s=0.05)


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("CreateCustomJob", "submit"),
        ("ListCustomJobs", "poll"),
        ("GetCustomJob", "poll"),
        ("CancelCustomJob", "cancel"),
    ],
)
def test_the_runner_makes_one_attempt_per_call(fake_vertex, vertex_runner, method, call):
    runner = vertex_runner("grpc")
    job = make_job()
    if call != "submit":
        # A finished job is not in the active list: the poll reads it with a Get.
        fake_vertex.script(["SUCCEEDED"] if method == "GetCustomJob" else ["RUNNING"], step=3600)
        job.run.external_id = runner.submit(job)
    before = len(fake_vertex.calls(method))
    fake_vertex.fail(method, "UNAVAILABLE", times=1, message="backend overloaded")
    with pytest.raises(DispatchError) as caught:
        if call == "submit":
            runner.submit(job)
        elif call == "poll":
            runner.poll([job])
        else:
            runner.cancel(job)
    assert len(fake_vertex.calls(method)) - before == 1  # no retry inside the runner
    assert caught.value.transient is True
    assert "UNAVAILABLE: backend overloaded" in str(caught.value)  # the API's code and text


@pytest.mark.parametrize("code", TRANSIENT)
def test_transient_create_errors_are_retried_by_the_policy(fake_vertex, vertex_runner, transport, code):
    runner = vertex_runner(transport)
    fake_vertex.fail("CreateCustomJob", code, times=2)
    name = with_retries(lambda: runner.submit(make_job()))
    assert name.endswith("/customJobs/1001")
    assert len(fake_vertex.calls("CreateCustomJob")) == 3
    assert len(fake_vertex.state.jobs) == 1


@pytest.mark.parametrize("code", TRANSIENT)
def test_a_transient_list_error_in_poll_carries_its_code_and_the_next_poll_reads(
    fake_vertex, vertex_runner, transport, code
):
    runner = vertex_runner(transport)
    fake_vertex.script(["RUNNING"])
    job = make_job()
    job.run.external_id = runner.submit(job)
    fake_vertex.fail("ListCustomJobs", code, times=1, message="try me later")
    with pytest.raises(DispatchError, match=f"{code}: .*try me later") as caught:
        runner.poll([job])
    assert caught.value.transient is True
    assert runner.poll([job])[job.run.id].state is RunState.RUNNING


def test_a_create_whose_answer_was_lost_is_not_repeated(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    fake_vertex.fail("CreateCustomJob", "UNAVAILABLE", after=True)  # created, but the answer is lost
    name = runner.submit(make_job())
    assert len(fake_vertex.calls("CreateCustomJob")) == 1
    assert list(fake_vertex.state.jobs) == [name]


def test_transient_errors_that_do_not_stop_give_a_transient_dispatch_error(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    fake_vertex.fail("CreateCustomJob", "UNAVAILABLE", times=1_000, message="backend overloaded")
    tries = []

    def submit():
        tries.append(1)
        return runner.submit(make_job())

    with pytest.raises(DispatchError) as caught:
        with_retries(submit, deadline_s=0.5)
    assert caught.value.transient is True
    assert "backend overloaded" in str(caught.value)
    assert len(fake_vertex.calls("CreateCustomJob")) == len(tries) >= 2  # one create per try, no more
    assert fake_vertex.state.jobs == {}


@pytest.mark.parametrize("code", list(PERMANENT))
def test_permanent_errors_fail_at_once_with_what_to_check(fake_vertex, vertex_runner, transport, code):
    runner = vertex_runner(transport)
    fake_vertex.fail("CreateCustomJob", code, message=f"the API says {code.lower()}")
    with pytest.raises(DispatchError) as caught:
        with_retries(lambda: runner.submit(make_job()))
    err = caught.value
    assert err.transient is False
    assert f"the API says {code.lower()}" in str(err)
    assert PERMANENT[code] in str(err)
    assert "projects/proj/locations/us-central1" in str(err)
    assert len(fake_vertex.calls("CreateCustomJob")) == 1
    assert fake_vertex.state.jobs == {}


def test_permission_denied_on_the_lookup_fails_too(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    fake_vertex.fail("ListCustomJobs", "PERMISSION_DENIED", message="caller lacks aiplatform.customJobs.list")
    with pytest.raises(DispatchError, match="customJobs.list") as caught:
        with_retries(lambda: runner.submit(make_job()))
    assert caught.value.transient is False
    assert fake_vertex.calls("CreateCustomJob") == []


def test_cancel_errors_are_retried_by_the_policy(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    fake_vertex.script(["RUNNING"])
    job = make_job()
    job.run.external_id = runner.submit(job)
    fake_vertex.fail("CancelCustomJob", "UNAVAILABLE")
    with_retries(lambda: runner.cancel(job))
    assert len(fake_vertex.calls("CancelCustomJob")) == 2
    assert runner.poll([job])[job.run.id].state is RunState.CANCELLING


def test_server_gone_is_a_transient_error(vertex_runner, fake_vertex):
    runner = vertex_runner("rest")
    fake_vertex.stop()
    with pytest.raises(DispatchError) as caught:
        runner.submit(make_job())
    assert caught.value.transient is True
