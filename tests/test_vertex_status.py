"""Vertex runner: every JobState maps to a run state, status is read in batches, cancel."""

from __future__ import annotations

import pytest

from launch_jupyter.core.states import RunState
from tests.fixtures.vertex import make_job, seed_config

STATES = {
    "JOB_STATE_UNSPECIFIED": RunState.SUBMITTED,  # no state yet: the run keeps its own
    "JOB_STATE_QUEUED": RunState.PENDING,
    "JOB_STATE_PENDING": RunState.PENDING,
    "JOB_STATE_RUNNING": RunState.RUNNING,
    "JOB_STATE_SUCCEEDED": RunState.SUCCEEDED,
    "JOB_STATE_FAILED": RunState.FAILED,
    "JOB_STATE_CANCELLING": RunState.CANCELLING,
    "JOB_STATE_CANCELLED": RunState.CANCELLED,
    "JOB_STATE_PAUSED": RunState.PENDING,
    "JOB_STATE_EXPIRED": RunState.FAILED,
    "JOB_STATE_UPDATING": RunState.RUNNING,
    "JOB_STATE_PARTIALLY_SUCCEEDED": RunState.FAILED,
}


def submitted(runner, n=1, prefix="run"):
    jobs = []
    for i in range(n):
        job = make_job(run_id=f"{prefix}-{i}")
        job.run.external_id = runner.submit(job)
        job.run.state = RunState.SUBMITTED  # as the agent records it
        jobs.append(job)
    return jobs


def job_service(requests):
    """The JobService calls among the fake's requests (running jobs' cell progress is read from
    Cloud Logging, at most once a cycle: test_vertex_partial)."""
    return [r for r in requests if r.method != "ListLogEntries"]


def parent(fake, location="us-central1"):
    return f"projects/{fake.project_number('proj')}/locations/{location}"


def test_every_job_state_is_mapped():
    from google.cloud.aiplatform_v1 import JobState

    assert set(STATES) == set(JobState.__members__)


@pytest.mark.parametrize("job_state", list(STATES))
def test_job_state_maps_to_run_state(fake_vertex, vertex_runner, job_state):
    runner = vertex_runner("grpc")
    fake_vertex.script([job_state])
    (job,) = submitted(runner)
    status = runner.poll([job])[job.run.id]
    assert status.state is STATES[job_state]


def test_states_over_rest_walk_the_script_by_time(fake_vertex, vertex_runner):
    runner = vertex_runner("rest")
    fake_vertex.script(["QUEUED", "PENDING", "RUNNING", "SUCCEEDED"], step=3600)
    (job,) = submitted(runner)
    seen = []
    for _ in range(4):
        seen.append(runner.poll([job])[job.run.id].state)
        assert runner.poll([job])[job.run.id].state is seen[-1]  # a poll alone moves nothing
        fake_vertex.advance(3600)
    assert seen == [RunState.PENDING, RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED]
    final = runner.poll([job])[job.run.id]
    assert final.output_notebook == "gs://my-bucket/launch-runs/run-0/output.ipynb"


def test_failed_job_message_reaches_the_status(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    fake_vertex.script(["FAILED"], error_message="The replica workerpool0-0 exited with a non-zero status of 1.")
    (job,) = submitted(runner)
    status = runner.poll([job])[job.run.id]
    assert status.state is RunState.FAILED
    assert "exited with a non-zero status of 1" in status.message


def test_expired_and_partial_say_why(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    fake_vertex.script(["EXPIRED"])
    (job,) = submitted(runner, prefix="exp")
    assert "expired" in runner.poll([job])[job.run.id].message
    fake_vertex.script(["PARTIALLY_SUCCEEDED"])
    (job,) = submitted(runner, prefix="part")
    assert "part of the job" in runner.poll([job])[job.run.id].message


def test_hundred_running_jobs_cost_one_list_call_per_cycle(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    fake_vertex.script(["RUNNING"])
    jobs = submitted(runner, 100)
    for _ in range(3):
        before = len(fake_vertex.requests)
        statuses = runner.poll(jobs)
        cycle = job_service(fake_vertex.requests[before:])
        assert [r.method for r in cycle] == ["ListCustomJobs"]
        assert len(fake_vertex.requests[before:]) - len(cycle) <= 1  # the running cells: one Logging read at most
        assert {s.state for s in statuses.values()} == {RunState.RUNNING}
        assert len(statuses) == 100
    assert cycle[0].request["filter"].startswith('labels.launch-run-id:* AND state!="JOB_STATE_SUCCEEDED"')
    assert ' AND create_time>="' in cycle[0].request["filter"]


def test_one_list_call_per_location_and_paging(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    fake_vertex.script(["RUNNING"])
    fake_vertex.state.page_size_cap = 7  # make the fake page small so paging is exercised
    jobs = submitted(runner, 20, prefix="c")
    config = seed_config()
    config["spec"]["location"] = "europe-west4"
    for i in range(5):
        job = make_job(config, run_id=f"e-{i}")
        job.run.external_id = runner.submit(job)
        jobs.append(job)
    before = len(fake_vertex.requests)
    statuses = runner.poll(jobs)
    cycle = job_service(fake_vertex.requests[before:])
    assert len(statuses) == 25
    parents = [r.request["parent"] for r in cycle]
    assert parents.count(parent(fake_vertex)) == 3  # 20 jobs, pages of 7
    assert parents.count(parent(fake_vertex, "europe-west4")) == 1
    assert {r.method for r in cycle} == {"ListCustomJobs"}
    assert [r.request.get("page_token", "") for r in cycle if "us-central1" in r.request["parent"]] == ["", "7", "14"]


def test_a_job_missing_from_the_list_is_read_once(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    fake_vertex.script(["RUNNING"])
    (job,) = submitted(runner)
    job.run.created_at = 0  # unknown start: the list is not time-bounded, still batched
    gone = make_job(run_id="gone")
    gone.run.external_id = f"{parent(fake_vertex)}/customJobs/999999"
    before = len(fake_vertex.requests)
    statuses = runner.poll([job, gone])
    assert [r.method for r in job_service(fake_vertex.requests[before:])] == ["ListCustomJobs", "GetCustomJob"]
    assert statuses["run-0"].state is RunState.RUNNING
    assert statuses["gone"].state is RunState.FAILED
    assert "no longer exists" in statuses["gone"].message


def test_cancel_goes_cancelling_then_cancelled(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    fake_vertex.script(["RUNNING"], step=3600)
    (job,) = submitted(runner)
    assert runner.poll([job])[job.run.id].state is RunState.RUNNING
    runner.cancel(job)
    (cancel,) = fake_vertex.calls("CancelCustomJob")
    assert cancel.request == {"name": job.run.external_id}
    assert runner.poll([job])[job.run.id].state is RunState.CANCELLING
    fake_vertex.advance(3600)
    assert runner.poll([job])[job.run.id].state is RunState.CANCELLED


def test_cancel_of_a_finished_job_is_quiet(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    fake_vertex.script(["SUCCEEDED"])
    (job,) = submitted(runner)
    assert runner.poll([job])[job.run.id].state is RunState.SUCCEEDED
    runner.cancel(job)  # FAILED_PRECONDITION from Vertex: nothing to do
    assert runner.poll([job])[job.run.id].state is RunState.SUCCEEDED


def test_cancel_before_the_name_was_saved_finds_the_job_by_label(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    fake_vertex.script(["RUNNING"])
    job = make_job()
    name = runner.submit(job)  # the agent died before saving the name
    runner.cancel(job)
    assert [r.request["name"] for r in fake_vertex.calls("CancelCustomJob")] == [name]
