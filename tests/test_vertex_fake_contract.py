"""The fake Vertex AI is a contract: each rule the real service enforces, as the fake enforces it
to a raw ``aiplatform_v1.JobServiceClient`` (the real SDK), and the runner handling it. The source
of each rule is cited next to its code in tests/fakes/vertex_server.py."""

from __future__ import annotations

import pytest

from launch_jupyter.core.states import RunState
from tests.fixtures.vertex import make_job


@pytest.fixture
def raw(fake_vertex, transport):
    """A bare JobServiceClient on the fake (no runner in between)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    endpoint = fake_vertex.grpc_endpoint if transport == "grpc" else fake_vertex.rest_endpoint
    return aiplatform_v1.JobServiceClient(
        credentials=AnonymousCredentials(), transport=transport, client_options=ClientOptions(api_endpoint=endpoint)
    )


PARENT = "projects/proj/locations/us-central1"


def job(**fields):
    from google.cloud import aiplatform_v1

    base = {
        "display_name": "j",
        "job_spec": {
            "worker_pool_specs": [
                {
                    "machine_spec": {"machine_type": "n1-standard-4"},
                    "replica_count": 1,
                    "container_spec": {"image_uri": "us-docker.pkg.dev/p/r/i:1"},
                }
            ]
        },
    }
    base.update(fields)
    return aiplatform_v1.CustomJob(base)


def refused(raw, custom_job, parent=PARENT) -> str:
    from google.api_core import exceptions

    with pytest.raises(exceptions.GoogleAPICallError) as caught:
        raw.create_custom_job(parent=parent, custom_job=custom_job)
    return str(caught.value)


# ----------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "labels", [{"Team": "ml"}, {"team": "ML"}, {"team": "a.b"}, {"t": "x" * 64}, {f"k{i}": "v" for i in range(65)}]
)
def test_labels_rules_and_count(raw, labels):
    assert "label" in refused(raw, job(labels=labels))


def test_international_lowercase_labels_are_fine(raw):
    assert raw.create_custom_job(parent=PARENT, custom_job=job(labels={"équipe": "données"})).name


def test_display_name_is_required_and_at_most_128(raw):
    assert "display_name" in refused(raw, job(display_name=""))
    assert "128" in refused(raw, job(display_name="x" * 129))


def test_at_most_100_env_vars(raw):
    pool = {
        "machine_spec": {"machine_type": "n1-standard-4"},
        "replica_count": 1,
        "container_spec": {"image_uri": "i", "env": [{"name": f"V{i}", "value": "1"} for i in range(101)]},
    }
    assert "100" in refused(raw, job(job_spec={"worker_pool_specs": [pool]}))


def test_accelerator_type_needs_a_count(raw):
    pool = {
        "machine_spec": {"machine_type": "n1-standard-4", "accelerator_type": "NVIDIA_TESLA_T4"},
        "replica_count": 1,
        "container_spec": {"image_uri": "i"},
    }
    assert "accelerator_count" in refused(raw, job(job_spec={"worker_pool_specs": [pool]}))


def test_no_global_location(raw):
    assert "global" in refused(raw, job(), parent="projects/proj/locations/global")


def test_a_regional_endpoint_serves_its_region_only(transport):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    from tests.fakes.vertex_server import FakeVertex
    from tests.fixtures.vertex import CERTS

    fake = FakeVertex(CERTS, region="europe-west4")
    try:
        endpoint = fake.grpc_endpoint if transport == "grpc" else fake.rest_endpoint
        client = aiplatform_v1.JobServiceClient(
            credentials=AnonymousCredentials(), transport=transport, client_options=ClientOptions(api_endpoint=endpoint)
        )
        assert "does not match" in refused(client, job())
        assert client.create_custom_job(parent="projects/p/locations/europe-west4", custom_job=job()).name
    finally:
        fake.stop()


def test_unknown_json_fields_are_refused_over_rest(fake_vertex):
    import requests

    body = {"displayName": "j", "jobSpec": {"workerPoolSpecs": [{}]}, "notAField": 1}
    answer = requests.post(f"{fake_vertex.rest_endpoint}/v1/{PARENT}/customJobs", json=body, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "Unknown" in answer.json()["error"]["message"] or "notAField" in answer.json()["error"]["message"]


# ----------------------------------------------------------------------- list filters


def test_the_documented_filter_grammar(fake_vertex, raw):
    from google.cloud import aiplatform_v1

    for name, labels in (("alpha_1", {"team": "ml"}), ("alpha_2", {"team": "web"}), ("beta", {})):
        raw.create_custom_job(parent=PARENT, custom_job=job(display_name=name, labels=labels))

    def names(text):
        request = aiplatform_v1.ListCustomJobsRequest(parent=PARENT, filter=text)
        return sorted(j.display_name for j in raw.list_custom_jobs(request=request))

    assert names("labels.team=ml") == ["alpha_1"]  # unquoted value
    assert names('labels.team="web"') == ["alpha_2"]
    assert names("labels.team:*") == ["alpha_1", "alpha_2"]
    assert names('display_name:"alpha_*"') == ["alpha_1", "alpha_2"]
    assert names('NOT display_name="beta"') == ["alpha_1", "alpha_2"]
    assert names('display_name="beta" OR labels.team=ml') == ["alpha_1", "beta"]
    assert names('state!="JOB_STATE_FAILED" AND display_name="beta"') == ["beta"]
    assert names('create_time>"2000-01-01T00:00:00Z"') == ["alpha_1", "alpha_2", "beta"]
    assert names('create_time<"2000-01-01T00:00:00Z"') == []
    from google.api_core import exceptions

    with pytest.raises(exceptions.BadRequest):  # InvalidArgument over gRPC, 400 over REST
        names("machine_type=n1")  # not a supported field


# ----------------------------------------------------------------------- behaviour


def test_names_carry_the_project_number(fake_vertex, raw, vertex_runner, transport):
    name = raw.create_custom_job(parent=PARENT, custom_job=job()).name
    assert name.startswith(f"projects/{fake_vertex.project_number('proj')}/")
    assert raw.get_custom_job(name=name.replace(fake_vertex.project_number("proj"), "proj")).name == name
    # the runner never compares a returned name with the id it sent: it tracks by job id
    runner = vertex_runner(transport)
    fake_vertex.script(["RUNNING"], step=3600)
    tracked = make_job(run_id="r")
    tracked.run.external_id = runner.submit(tracked)
    assert runner.poll([tracked])[tracked.run.id].state is RunState.RUNNING


def test_states_advance_by_time_not_per_call(fake_vertex, raw):
    fake_vertex.script(["PENDING", "RUNNING", "SUCCEEDED"], step=3600)
    name = raw.create_custom_job(parent=PARENT, custom_job=job()).name
    assert {raw.get_custom_job(name=name).state.name for _ in range(5)} == {"JOB_STATE_PENDING"}
    fake_vertex.advance(3600)
    assert raw.get_custom_job(name=name).state.name == "JOB_STATE_RUNNING"
    fake_vertex.advance(3600)
    done = raw.get_custom_job(name=name)
    assert done.state.name == "JOB_STATE_SUCCEEDED" and done.end_time and done.start_time


def test_failed_jobs_carry_varied_error_codes(fake_vertex, raw, vertex_runner, transport):
    fake_vertex.script(["FAILED"])
    codes = {
        raw.get_custom_job(name=raw.create_custom_job(parent=PARENT, custom_job=job()).name).error.code
        for _ in range(4)
    }
    assert len(codes) > 1 and 0 not in codes
    runner = vertex_runner(transport)
    failed = make_job(run_id="f")
    failed.run.external_id = runner.submit(failed)
    assert runner.poll([failed])[failed.run.id].state is RunState.FAILED


def test_cancelled_jobs_have_error_code_1(fake_vertex, raw):
    fake_vertex.script(["RUNNING"], step=3600)
    name = raw.create_custom_job(parent=PARENT, custom_job=job()).name
    raw.cancel_custom_job(name=name)
    fake_vertex.advance(3600)
    cancelled = raw.get_custom_job(name=name)
    assert cancelled.state.name == "JOB_STATE_CANCELLED" and cancelled.error.code == 1


def test_cancel_is_best_effort(fake_vertex, raw, vertex_runner, transport):
    fake_vertex.script(["RUNNING"], step=3600)
    fake_vertex.state.cancel_wins = False
    runner = vertex_runner(transport)
    tracked = make_job(run_id="c")
    tracked.run.external_id = runner.submit(tracked)
    runner.cancel(tracked)
    fake_vertex.advance(3600)
    status = runner.poll([tracked])[tracked.run.id]
    assert status.state is RunState.SUCCEEDED and "before the cancel" in status.message


def test_lists_can_lag_behind_creates(fake_vertex, raw):
    from google.cloud import aiplatform_v1

    fake_vertex.state.list_lag = 2
    raw.create_custom_job(parent=PARENT, custom_job=job())
    request = aiplatform_v1.ListCustomJobsRequest(parent=PARENT)
    seen = [len(list(raw.list_custom_jobs(request=request))) for _ in range(3)]
    assert seen == [0, 0, 1]


def test_logging_has_its_own_port(fake_vertex, vertex_runner, transport):
    import requests

    assert fake_vertex.logging_rest_port != fake_vertex.rest_port
    answer = requests.post(f"{fake_vertex.rest_endpoint}/v2/entries:list", json={}, timeout=10)
    assert answer.status_code == 404  # Vertex AI's endpoint does not serve Logging
    runner = vertex_runner(transport)
    tracked = make_job()
    tracked.run.external_id = name = runner.submit(tracked)
    fake_vertex.add_logs(name, ["line"])
    assert list(runner.logs(tracked.run)) == ["line"]


def test_a_call_whose_answer_is_late_has_still_taken_effect(fake_vertex, raw):
    import requests
    from google.api_core import exceptions

    fake_vertex.script(["RUNNING"], step=3600)
    name = raw.create_custom_job(parent=PARENT, custom_job=job()).name
    fake_vertex.delay("CancelCustomJob", None, after=True)  # the cancel happens, its answer hangs
    with pytest.raises((exceptions.DeadlineExceeded, requests.exceptions.Timeout)):  # gRPC, REST
        raw.cancel_custom_job(name=name, timeout=1.0)
    assert raw.get_custom_job(name=name).state.name == "JOB_STATE_CANCELLING"


# Where a rule above is shown only to a raw JobServiceClient, the runner's side of it is tested here
# (the module, then the test). The check below fails if one of them is renamed or removed.
RUNNER_SIDE = {
    "test_labels_rules_and_count": [
        ("test_vertex_real_service", "test_1_labels_from_macros_are_made_valid_and_stay_distinct"),
        ("test_vertex_real_service", "test_1_too_many_labels_are_refused_offline"),
    ],
    "test_display_name_is_required_and_at_most_128": [
        ("test_vertex_wandb_configs", "test_17_display_name_after_macros_is_checked_before_anything_is_created")
    ],
    "test_at_most_100_env_vars": [("test_vertex_wandb_configs", "test_17_env_count_is_checked_offline")],
    "test_accelerator_type_needs_a_count": [
        ("test_vertex_wandb_configs", "test_25_an_accelerator_without_a_count_is_caught_offline")
    ],
    "test_no_global_location": [
        ("test_vertex_real_service", "test_3_global_is_refused_in_the_queue_and_the_agent_config")
    ],
    "test_a_regional_endpoint_serves_its_region_only": [
        ("test_vertex_real_service", "test_4_an_endpoint_for_one_region_is_not_used_for_another")
    ],
    "test_unknown_json_fields_are_refused_over_rest": [
        ("test_vertex_wandb_configs", "test_24_camel_case_hint_suggests_only_real_fields")
    ],
    "test_the_documented_filter_grammar": [
        ("test_vertex_real_service", "test_16_poll_cost_follows_active_runs_not_history")
    ],
    "test_cancelled_jobs_have_error_code_1": [
        ("test_vertex_real_service", "test_14_after_a_cancel_the_run_never_moves_back_and_a_late_success_is_success")
    ],
    "test_lists_can_lag_behind_creates": [
        ("test_vertex_real_service", "test_15_a_lost_create_reply_with_a_lagging_list_makes_one_job")
    ],
}


def test_each_raw_only_rule_names_a_runner_test_that_exists():
    import importlib

    for contract, runner_tests in RUNNER_SIDE.items():
        assert contract in globals(), contract
        for module, name in runner_tests:
            assert hasattr(importlib.import_module(f"tests.{module}"), name), f"{contract}: tests/{module}.py::{name}"
