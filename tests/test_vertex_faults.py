"""Vertex runner under API faults injected in the fake: transient ones are retried with backoff,
permanent ones fail at once with the API's message and what to check."""

from __future__ import annotations

import pytest

from launch_jupyter.core.errors import DispatchError
from launch_jupyter.core.states import RunState
from tests.fixtures.vertex import make_job

TRANSIENT = ["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL"]
PERMANENT = {
    "INVALID_ARGUMENT": "--dry-run",
    "PERMISSION_DENIED": "aiplatform.customJobs.create",
    "NOT_FOUND": "project and location",
}


@pytest.mark.parametrize("code", TRANSIENT)
def test_transient_create_errors_are_retried(fake_vertex, vertex_runner, transport, code):
    runner = vertex_runner(transport)
    fake_vertex.fail("CreateCustomJob", code, times=2)
    name = runner.submit(make_job())
    assert name.endswith("/customJobs/1001")
    assert len(fake_vertex.calls("CreateCustomJob")) == 3
    assert len(fake_vertex.state.jobs) == 1


@pytest.mark.parametrize("code", TRANSIENT)
def test_transient_list_errors_are_retried_in_poll(fake_vertex, vertex_runner, transport, code):
    runner = vertex_runner(transport)
    fake_vertex.script(["RUNNING"])
    job = make_job()
    job.run.external_id = runner.submit(job)
    fake_vertex.fail("ListCustomJobs", code, times=2)
    assert runner.poll([job])[job.run.id].state is RunState.RUNNING


def test_a_create_whose_answer_was_lost_is_not_repeated(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    fake_vertex.fail("CreateCustomJob", "UNAVAILABLE", after=True)  # created, but the answer is lost
    name = runner.submit(make_job())
    assert len(fake_vertex.calls("CreateCustomJob")) == 1
    assert list(fake_vertex.state.jobs) == [name]


def test_transient_errors_that_do_not_stop_give_a_transient_dispatch_error(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc", retry_attempts=3)
    fake_vertex.fail("CreateCustomJob", "UNAVAILABLE", times=10, message="backend overloaded")
    with pytest.raises(DispatchError) as caught:
        runner.submit(make_job())
    assert caught.value.transient is True
    assert "backend overloaded" in str(caught.value)
    assert len(fake_vertex.calls("CreateCustomJob")) == 3
    assert fake_vertex.state.jobs == {}


@pytest.mark.parametrize("code", list(PERMANENT))
def test_permanent_errors_fail_at_once_with_what_to_check(fake_vertex, vertex_runner, transport, code):
    runner = vertex_runner(transport)
    fake_vertex.fail("CreateCustomJob", code, message=f"the API says {code.lower()}")
    with pytest.raises(DispatchError) as caught:
        runner.submit(make_job())
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
        runner.submit(make_job())
    assert caught.value.transient is False
    assert fake_vertex.calls("CreateCustomJob") == []


def test_cancel_retries_transient_errors(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    fake_vertex.script(["RUNNING"])
    job = make_job()
    job.run.external_id = runner.submit(job)
    fake_vertex.fail("CancelCustomJob", "UNAVAILABLE")
    runner.cancel(job)
    assert len(fake_vertex.calls("CancelCustomJob")) == 2
    assert runner.poll([job])[job.run.id].state is RunState.CANCELLING


def test_server_gone_is_a_transient_error(vertex_runner, fake_vertex):
    runner = vertex_runner("rest", retry_attempts=2)
    fake_vertex.stop()
    with pytest.raises(DispatchError) as caught:
        runner.submit(make_job())
    assert caught.value.transient is True
