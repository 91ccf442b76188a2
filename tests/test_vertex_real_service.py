"""Issue 12, "Would break on real Vertex AI" and "Would misbehave": each numbered item against
the stricter fake (the real SDK at the network edge, gRPC/TLS and REST)."""

from __future__ import annotations

import threading

import pytest

from launch_jupyter.core.config import AgentConfig, EnvironmentConfig
from launch_jupyter.core.errors import DispatchError, LaunchError
from launch_jupyter.core.retry import retry
from launch_jupyter.core.states import RunState
from launch_jupyter.runners.vertex import VertexRunner
from launch_jupyter.runners.vertex._api import Target, resolve_target
from tests.fixtures.vertex import make_job, seed_config

QUOTA_METRIC = "aiplatform.googleapis.com/custom_model_training_nvidia_t4_gpus"


def created(fake):
    return [r.request for r in fake.calls("CreateCustomJob")]


def parent(fake, location="us-central1"):
    return f"projects/{fake.project_number('proj')}/locations/{location}"


# 1 ------------------------------------------------------------------ labels filled from macros


def test_1_labels_from_macros_are_made_valid_and_stay_distinct(fake_vertex, vertex_runner, transport):
    config = seed_config()
    config["spec"]["labels"] = {"nb": "${notebook}", "who": "${author}"}
    runner = vertex_runner(transport)
    runner.submit(make_job(config, notebook="quickstart.ipynb", author="Alice.Smith@Example.com"))
    runner.submit(make_job(config, run_id="run-2", notebook="quickstart_ipynb", author="alice.smith@example.com"))
    first, second = (r["custom_job"]["labels"] for r in created(fake_vertex))  # the fake refuses bad ones
    assert first["nb"].startswith("quickstart-ipynb-") and first["who"].startswith("alice-smith-example-com-")
    assert second["nb"] == "quickstart_ipynb"  # already valid: sent as it is
    assert first["who"] != second["who"]  # different authors, different labels
    assert first["launch-entity"] == "alice"


def test_1_two_entities_queues_of_the_same_name_do_not_collide(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    runner.submit(make_job(run_id="a1", entity="team-a"))
    runner.submit(make_job(run_id="b1", entity="team-b"))
    labels = [r["custom_job"]["labels"] for r in created(fake_vertex)]
    assert [(lab["launch-queue"], lab["launch-entity"]) for lab in labels] == [("q", "team-a"), ("q", "team-b")]


def test_1_too_many_labels_are_refused_offline():
    config = seed_config()
    config["spec"]["labels"] = {f"k{i}": "v" for i in range(61)}  # + launch_jupyter's 4 = 65
    problems = VertexRunner().validate(config)
    assert [p.path for p in problems] == ["spec.labels"]
    assert "at most 64" in problems[0].message


# 2 ------------------------------------------------------------------ experiments


@pytest.mark.parametrize("key", ["experiment", "experiment_run"])
def test_2_experiments_are_refused_with_why(key):
    config = seed_config()
    config["run"][key] = "my-experiment"
    (problem,) = VertexRunner().validate(config)
    assert problem.path == f"run.{key}"
    assert "aiplatform.init" in problem.message and "notebook" in problem.message


# 3 ------------------------------------------------------------------ global and endpoints


def test_3_global_is_refused_in_the_queue_and_the_agent_config():
    config = seed_config()
    config["spec"]["location"] = "global"
    (problem,) = VertexRunner().validate(config)
    assert problem.path == "spec.location" and "region" in problem.message
    from launch_jupyter.core.model import Queue

    agent = AgentConfig(environment=EnvironmentConfig(project="p", region="global", credentials="anonymous"))
    queue = Queue(entity="alice", name="q", resource="vertex", config=seed_config())
    with pytest.raises(LaunchError, match="environment.region"):
        VertexRunner(agent).preflight(queue, agent)


def test_3_environment_region_is_checked_like_spec_location():
    from launch_jupyter.core.model import Queue

    agent = AgentConfig(environment=EnvironmentConfig(project="p", region="us-centrall", credentials="anonymous"))
    queue = Queue(entity="alice", name="q", resource="vertex", config=seed_config())
    with pytest.raises(LaunchError, match='environment.region.*did you mean "us-central1"'):
        VertexRunner(agent).preflight(queue, agent)


def test_3_every_endpoint_is_the_one_the_sdk_derives(reset_aiplatform):
    from google.cloud.aiplatform import initializer
    from google.cloud.aiplatform.constants import base as constants

    for location in sorted((constants.SUPPORTED_REGIONS - {"global"}) | constants.MREP_JURISDICTIONS):
        sdk = initializer.global_config.get_client_options(location_override=location).api_endpoint
        assert Target("p", location).api_endpoint == sdk, location
    assert Target("p", "us").api_endpoint == "aiplatform.us.rep.googleapis.com"


# 4 ------------------------------------------------------------------ endpoints per location, Logging


def test_4_an_endpoint_for_one_region_is_not_used_for_another():
    env = EnvironmentConfig(project="p", api_endpoint="europe-west4-aiplatform.googleapis.com")
    with pytest.raises(LaunchError, match="environment.api_endpoint.*europe-west4.*us-central1"):
        resolve_target({"location": "us-central1"}, env)
    assert resolve_target({"location": "europe-west4"}, env).api_endpoint == "europe-west4-aiplatform.googleapis.com"
    per_location = EnvironmentConfig(project="p", api_endpoint="{location}-aiplatform.googleapis.com")
    assert (
        resolve_target({"location": "asia-east1"}, per_location).api_endpoint == "asia-east1-aiplatform.googleapis.com"
    )


def test_4_logs_are_read_from_the_logging_endpoint_not_vertex(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    job = make_job()
    job.run.external_id = name = runner.submit(job)
    fake_vertex.add_logs(name, ["hello"])
    assert list(runner.logs(job.run)) == ["hello"]
    # Without a logging endpoint the client goes to Google's Logging API, never to Vertex AI's.
    from launch_jupyter.runners.vertex import _logging_client

    target = resolve_target(
        {},
        EnvironmentConfig(
            project="p", api_endpoint=fake_vertex.rest_endpoint, credentials="anonymous", api_transport="rest"
        ),
    )
    client = _logging_client(target)
    assert "127.0.0.1" not in str(client._connection.API_BASE_URL)


# 5 ------------------------------------------------------------------ logs older than 24 h


def test_5_logs_older_than_a_day_are_read(fake_vertex, vertex_runner, transport):
    import time

    runner = vertex_runner(transport)
    fake_vertex.advance(-3 * 86400)  # the job was created three days ago
    job = make_job()
    job.run.external_id = name = runner.submit(job)
    fake_vertex.advance(3 * 86400)
    fake_vertex.add_logs(name, ["old line"], start=time.time() - 2 * 86400)
    assert list(runner.logs(job.run)) == ["old line"]
    (call,) = fake_vertex.calls("ListLogEntries")
    assert call.request["filter"].count("timestamp>=") == 1  # ours; the client added no "now-24h"


# 6 ------------------------------------------------------------------ aiplatform.init leaks


def test_6_a_kernels_aiplatform_init_never_reaches_a_job(fake_vertex, vertex_runner, reset_aiplatform, transport):
    from google.cloud import aiplatform

    aiplatform.init(
        service_account="kernel@other.iam.gserviceaccount.com",
        encryption_spec_key_name="projects/o/locations/europe-west4/keyRings/r/cryptoKeys/k",
    )
    runner = vertex_runner(transport)
    runner.submit(make_job())
    (request,) = created(fake_vertex)
    assert "service_account" not in request["custom_job"]["job_spec"]
    assert "encryption_spec" not in request["custom_job"]
    own = seed_config()
    own["run"]["service_account"] = "queue@proj.iam.gserviceaccount.com"
    runner.submit(make_job(own, run_id="own"))
    assert created(fake_vertex)[1]["custom_job"]["job_spec"]["service_account"] == "queue@proj.iam.gserviceaccount.com"


def test_6_the_in_kernel_agent_sends_neither(vertex_queue, reset_aiplatform):
    from google.cloud import aiplatform

    from launch_jupyter import api
    from launch_jupyter.agent import Agent
    from tests.fixtures.common import EXAMPLES
    from tests.fixtures.vertex import IMAGE

    fake, _ = vertex_queue
    aiplatform.init(
        service_account="kernel@other.iam.gserviceaccount.com",
        encryption_spec_key_name="projects/o/locations/europe-west4/keyRings/r/cryptoKeys/k",
    )
    run = api.submit(EXAMPLES / "quickstart.ipynb", "vq", image=IMAGE)
    Agent(config=api.agent_config(overrides={"queues": ["vq"]})).run_forever(until_idle=True)
    assert run.refresh().state is RunState.SUCCEEDED
    (request,) = created(fake)
    assert "service_account" not in request["custom_job"]["job_spec"]
    assert "encryption_spec" not in request["custom_job"]


# 7 ------------------------------------------------------------------ quota


@pytest.mark.parametrize("details", [True, False], ids=["QuotaFailure", "message"])
def test_7_a_quota_refusal_fails_at_once_naming_the_metric(fake_vertex, vertex_runner, transport, details):
    message = f"The following quota metrics exceed quota limits: {QUOTA_METRIC}"
    fake_vertex.fail(
        "CreateCustomJob", "RESOURCE_EXHAUSTED", times=50, message=message, quota=QUOTA_METRIC if details else None
    )
    with pytest.raises(DispatchError) as caught:
        vertex_runner(transport).submit(make_job())
    assert caught.value.transient is False
    assert QUOTA_METRIC in str(caught.value) and "quota" in str(caught.value)
    assert "try again later" not in str(caught.value)
    assert len(fake_vertex.calls("CreateCustomJob")) == 1


def test_7_a_rate_limit_stays_transient(fake_vertex, vertex_runner, transport):
    fake_vertex.fail("CreateCustomJob", "RESOURCE_EXHAUSTED", times=2, message="Too many requests", retry_after=0.01)
    runner = vertex_runner(transport)
    with pytest.raises(DispatchError) as caught:  # one attempt, marked worth another
        runner.submit(make_job())
    assert caught.value.transient is True
    assert retry(lambda: runner.submit(make_job()), deadline_s=30, base_s=0.01).endswith("/customJobs/1001")
    assert len(fake_vertex.calls("CreateCustomJob")) == 3


def test_7_through_the_agent_one_create_per_run(vertex_queue):
    from launch_jupyter import api
    from launch_jupyter.agent import Agent
    from tests.fixtures.common import EXAMPLES
    from tests.fixtures.vertex import IMAGE

    fake, _ = vertex_queue
    fake.fail(
        "CreateCustomJob",
        "RESOURCE_EXHAUSTED",
        times=100,
        quota=QUOTA_METRIC,
        message=f"The following quota metrics exceed quota limits: {QUOTA_METRIC}",
    )
    run = api.submit(EXAMPLES / "quickstart.ipynb", "vq", image=IMAGE)
    Agent(config=api.agent_config(overrides={"queues": ["vq"]})).run_forever(until_idle=True)
    assert run.refresh().state is RunState.FAILED
    assert QUOTA_METRIC in run.run.message
    assert len(fake.calls("CreateCustomJob")) == 1


# 8 ------------------------------------------------------------------ unknown future states


def test_8_an_unknown_state_keeps_the_run_where_it_is_until_the_job_ends(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    fake_vertex.script(["RUNNING", "JOB_STATE_FUTURE"], step=3600)
    job = make_job()
    job.run.external_id = runner.submit(job)
    status = runner.poll([job])[job.run.id]
    assert status.state is RunState.RUNNING
    job.run.state = RunState.RUNNING
    fake_vertex.advance(3600)
    status = runner.poll([job])[job.run.id]
    assert status.state is RunState.RUNNING  # not back to submitted
    assert "Vertex AI reported state" in status.message
    raw = "99" if transport == "grpc" else "JOB_STATE_UNSPECIFIED"  # REST drops unknown enum names
    assert raw in status.message
    fake_vertex.finish_unknown(job.run.external_id)
    status = runner.poll([job])[job.run.id]
    assert status.state is RunState.SUCCEEDED and "ended at" in status.message


# 9 ------------------------------------------------------------------ deadlines


def test_9_a_hung_status_call_gives_up_at_the_timeout(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport, rpc_timeout=1.0)
    fake_vertex.script(["RUNNING"], step=3600)
    job = make_job()
    job.run.external_id = runner.submit(job)
    fake_vertex.delay("ListCustomJobs", None)  # hangs until released
    fake_vertex.delay("GetCustomJob", None)
    result: list = []

    def poll() -> None:
        try:
            result.append(runner.poll([job]))
        except DispatchError as err:
            result.append(err)

    poller = threading.Thread(target=poll)
    poller.start()
    poller.join(60)
    assert not poller.is_alive(), "poll hung on a hung connection"
    [err] = result  # nothing read this cycle, and why: the next cycle tries again
    assert isinstance(err, DispatchError) and err.transient and "DEADLINE_EXCEEDED" in str(err)


def test_9_a_hung_create_is_deadline_exceeded_and_retried(fake_vertex, vertex_runner, transport):
    from launch_jupyter.runners.vertex._api import error_code, is_transient

    runner = vertex_runner(transport, rpc_timeout=1.0)
    fake_vertex.delay("CreateCustomJob", None)  # the first create hangs before it takes effect
    name = retry(lambda: runner.submit(make_job()), deadline_s=60, base_s=0.01)
    assert name.endswith("/customJobs/1001")
    assert len(fake_vertex.state.jobs) == 1
    from google.api_core.exceptions import DeadlineExceeded

    assert error_code(DeadlineExceeded("x")) == "DEADLINE_EXCEEDED" and is_transient(DeadlineExceeded("x"))


@pytest.mark.timeout(120)  # without a deadline the read hangs: fail in minutes, not at the suite's limit
def test_9_a_hung_logging_read_is_given_up_and_read_again(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport, rpc_timeout=1.0)
    job = make_job()
    job.run.external_id = name = runner.submit(job)
    fake_vertex.add_logs(name, ["first"])
    fake_vertex.delay("ListLogEntries", None)  # the first read hangs until the fake is released
    try:
        assert list(runner.logs(job.run)) == ["first"]
        assert len(fake_vertex.calls("ListLogEntries")) == 2  # the hung read, then one that answered
    finally:
        fake_vertex.release()


# 10 ----------------------------------------------------------------- log ingestion lag


def test_10_following_logs_waits_for_late_lines_after_the_end(fake_vertex, vertex_runner):
    runner = vertex_runner("rest")
    fake_vertex.script(["SUCCEEDED"])
    job = make_job()
    job.run.external_id = name = runner.submit(job)
    fake_vertex.add_logs(name, ["first"])
    # Ingested after the job ended: the 2nd poll (the first after the end) is empty, the 3rd sees it.
    # The old rule "stop at the first empty poll after the end" loses it.
    fake_vertex.add_logs(name, ["late"], hidden_for=2)
    assert list(runner.logs(job.run, follow=True)) == ["first", "late"]


# 13 ----------------------------------------------------------------- REST error status, cancel


def test_13_rest_failed_precondition_is_read_from_the_body(fake_vertex, vertex_runner):
    fake_vertex.fail("CreateCustomJob", "FAILED_PRECONDITION", message="the network is not peered")
    with pytest.raises(DispatchError, match="FAILED_PRECONDITION"):
        vertex_runner("rest").submit(make_job())


def test_13_cancel_does_not_swallow_an_invalid_argument(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    job = make_job()
    job.run.external_id = runner.submit(job)
    fake_vertex.fail("CancelCustomJob", "INVALID_ARGUMENT", message="bad name")
    with pytest.raises(DispatchError, match="INVALID_ARGUMENT"):
        runner.cancel(job)


def test_13_cancel_of_a_job_that_is_gone_is_nothing_to_cancel(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    job = make_job()
    job.run.external_id = f"{parent(fake_vertex)}/customJobs/424242"
    runner.cancel(job)  # NOT_FOUND: nothing to cancel, no error
    assert len(fake_vertex.calls("CancelCustomJob")) == 1


# 14 ----------------------------------------------------------------- cancel never moves back


def test_14_after_a_cancel_the_run_never_moves_back_and_a_late_success_is_success(
    fake_vertex, vertex_runner, transport
):
    runner = vertex_runner(transport)
    fake_vertex.script(["RUNNING"], step=3600)
    job = make_job()
    job.run.external_id = name = runner.submit(job)
    runner.cancel(job)
    fake_vertex.script(["RUNNING"], job=name, step=3600)  # the next read still says RUNNING
    assert runner.poll([job])[job.run.id].state is RunState.CANCELLING
    restarted = vertex_runner(transport)  # a new agent knows from the run's own record
    job.run.cancel_requested, job.run.state = True, RunState.CANCELLING
    assert restarted.poll([job])[job.run.id].state is RunState.CANCELLING
    fake_vertex.script(["SUCCEEDED"], job=name)  # best effort: the job finished anyway
    status = runner.poll([job])[job.run.id]
    assert status.state is RunState.SUCCEEDED and "before the cancel" in status.message


def test_14_cancel_is_best_effort_at_the_fake(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    fake_vertex.script(["RUNNING"], step=3600)
    fake_vertex.state.cancel_wins = False
    job = make_job()
    job.run.external_id = runner.submit(job)
    runner.cancel(job)
    fake_vertex.advance(3 * 3600)
    assert runner.poll([job])[job.run.id].state is RunState.SUCCEEDED


# 15 ----------------------------------------------------------------- lost create and list lag


def test_15_a_lost_create_reply_with_a_lagging_list_makes_one_job(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    fake_vertex.state.list_lag = 1  # the new job is missing from the first list after it was made
    fake_vertex.fail("CreateCustomJob", "UNAVAILABLE", after=True)
    name = runner.submit(make_job())
    assert len(fake_vertex.calls("CreateCustomJob")) == 1
    assert list(fake_vertex.state.jobs) == [name]


# 16 ----------------------------------------------------------------- poll cost, unreadable reply


def test_16_poll_cost_follows_active_runs_not_history(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    fake_vertex.seed_finished(parent(fake_vertex), 1000, labels={"launch-run-id": "old"})
    fake_vertex.script(["RUNNING"], step=3600)
    jobs = []
    for i in range(3):
        job = make_job(run_id=f"active-{i}", created_at=0)  # no time bound at all
        job.run.external_id = runner.submit(job)
        jobs.append(job)
    fake_vertex.state.listed_jobs.clear()
    before = len(fake_vertex.requests)
    statuses = runner.poll(jobs)
    assert {s.state for s in statuses.values()} == {RunState.RUNNING} and len(statuses) == 3
    cycle = [r.method for r in fake_vertex.requests[before:]]
    assert cycle in (["ListCustomJobs"], ["ListCustomJobs", "ListLogEntries"])  # + the running cells, once
    assert fake_vertex.state.listed_jobs == [3]
    fake_vertex.script(["SUCCEEDED"], job=jobs[0].run.external_id)  # one finishes: one Get for it
    before = len(fake_vertex.requests)
    assert runner.poll(jobs)[jobs[0].run.id].state is RunState.SUCCEEDED
    jobs_calls = [r.method for r in fake_vertex.requests[before:] if r.method != "ListLogEntries"]
    assert jobs_calls == ["ListCustomJobs", "GetCustomJob"]


def test_16_a_create_whose_reply_cannot_be_read_is_found_by_label(fake_vertex, vertex_runner):
    fake_vertex.fail("CreateCustomJob", "GARBLED", after=True)  # 200, body cut off
    name = vertex_runner("rest").submit(make_job())
    assert list(fake_vertex.state.jobs) == [name]
    assert len(fake_vertex.calls("CreateCustomJob")) == 1
