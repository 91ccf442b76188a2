"""Vertex runner: the exact CreateCustomJob requests the real SDK sends to the fake Vertex AI,
over gRPC (TLS) and REST; per-queue projects at once; env/labels merging; no secret; reattach."""

from __future__ import annotations

import copy
import hashlib
import json
import threading

import pytest

from launch_jupyter.core.config import EnvironmentConfig
from tests.fixtures.vertex import make_job, seed_config

IMAGE = "us-docker.pkg.dev/proj/repo/train:abc123"
OUT = "/gcs/my-bucket/launch-runs/run-1/output.ipynb"


def run_env(run_id="run-1", queue="alice/q", output=OUT, parameters="{}"):
    return [
        {"name": "LAUNCH_RUN_ID", "value": run_id},
        {"name": "LAUNCH_QUEUE", "value": queue},
        {"name": "LAUNCH_ENTITY", "value": "alice"},
        {"name": "LAUNCH_AUTHOR", "value": "alice"},
        {"name": "LAUNCH_OUTPUT", "value": output},
        {"name": "LAUNCH_PARAMETERS", "value": parameters},
    ]


def expected_seed_request(machine_spec=None, scheduling=None):
    job_spec = {
        "worker_pool_specs": [
            {
                "machine_spec": machine_spec or {"machine_type": "n1-standard-4"},
                "replica_count": "1",
                "container_spec": {
                    "image_uri": IMAGE,
                    "command": ["python", "-m", "launch_jupyter.execute"],
                    "args": ["--notebook", "train.ipynb", "--output", OUT],
                    "env": run_env(),
                },
            }
        ],
        "base_output_directory": {"output_uri_prefix": "gs://my-bucket/launch-runs/run-1"},
    }
    if scheduling:
        job_spec["scheduling"] = scheduling
    return {
        "parent": "projects/proj/locations/us-central1",
        "custom_job": {
            "display_name": "q-run-1",
            "job_spec": job_spec,
            "labels": {
                "launch-run-id": "run-1",
                "launch-queue": "q",
                "launch-author": "alice",
                "launch-entity": "alice",
            },
        },
    }


def created(fake):
    return [r.request for r in fake.calls("CreateCustomJob")]


def test_seed_config_request_is_exact(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    name = runner.submit(make_job())
    # names come back with the project number, not the id we sent
    assert name == f"projects/{fake_vertex.project_number('proj')}/locations/us-central1/customJobs/1001"
    assert created(fake_vertex) == [expected_seed_request()]
    assert {r.transport for r in fake_vertex.requests} == {transport}


def test_dry_run_is_the_request_submit_sends(fake_vertex, vertex_runner):
    runner = vertex_runner("grpc")
    job = make_job()
    planned = runner.dry_run(job)
    assert fake_vertex.requests == []  # a dry run sends nothing
    runner.submit(job)
    assert created(fake_vertex) == [planned]


def test_dry_run_yaml(vertex_runner):
    from launch_jupyter.core.queue_config import dump_config  # what a dry run prints

    text = dump_config(vertex_runner("grpc").dry_run(make_job()))
    assert text.startswith("parent: projects/proj/locations/us-central1\ncustom_job:\n")
    assert "output_uri_prefix: gs://my-bucket/launch-runs/run-1" in text


def test_gpu_override(fake_vertex, vertex_runner, transport):
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["machine_spec"] = {
        "machine_type": "n1-standard-8",
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 2,
    }
    vertex_runner(transport).submit(make_job(config))
    gpu = {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 2}
    assert created(fake_vertex) == [expected_seed_request(machine_spec=gpu)]


def test_spot_scheduling(fake_vertex, vertex_runner, transport):
    config = seed_config()
    config["run"].update({"scheduling_strategy": "SPOT", "timeout": 3600, "max_wait_duration": 1800})
    vertex_runner(transport).submit(make_job(config))
    scheduling = {"timeout": "3600s", "strategy": "SPOT", "max_wait_duration": "1800s"}
    assert created(fake_vertex) == [expected_seed_request(scheduling=scheduling)]


def test_run_arguments_reach_the_request(fake_vertex, vertex_runner):
    config = seed_config()
    config["run"] = {
        "service_account": "trainer@proj.iam.gserviceaccount.com",
        "network": "projects/123/global/networks/vpc",
        "enable_web_access": True,
        "restart_job_on_worker_restart": True,
    }
    config["spec"]["encryption_spec_key_name"] = "projects/proj/locations/us-central1/keyRings/r/cryptoKeys/k"
    vertex_runner("grpc").submit(make_job(config))
    job = created(fake_vertex)[0]["custom_job"]
    spec = job["job_spec"]
    assert spec["service_account"] == "trainer@proj.iam.gserviceaccount.com"
    assert spec["network"] == "projects/123/global/networks/vpc"
    assert spec["enable_web_access"] is True
    assert spec["scheduling"] == {"restart_job_on_worker_restart": True}
    assert job["encryption_spec"] == {"kms_key_name": config["spec"]["encryption_spec_key_name"]}


def test_env_and_labels_merge_with_the_pools_own(fake_vertex, vertex_runner):
    config = seed_config()
    config["spec"]["labels"] = {"team": "ml", "cost-center": "42"}
    config["spec"]["worker_pool_specs"][0]["container_spec"].update({"env": [{"name": "MY_VAR", "value": "1"}]})
    job = make_job(
        config, run_id="Run_ID.With/Odd:Chars", queue="GPU Queue", author="Bob@Example.com", parameters={"lr": 0.1}
    )
    vertex_runner("grpc").submit(job)
    sent = created(fake_vertex)[0]["custom_job"]
    container = sent["job_spec"]["worker_pool_specs"][0]["container_spec"]
    assert container["command"] == ["python", "-m", "launch_jupyter.execute"]
    output = "/gcs/my-bucket/launch-runs/Run_ID.With/Odd:Chars/output.ipynb"
    assert container["env"][0] == {"name": "MY_VAR", "value": "1"}
    assert container["env"][1:] == [
        {"name": "LAUNCH_RUN_ID", "value": "Run_ID.With/Odd:Chars"},
        {"name": "LAUNCH_QUEUE", "value": "alice/GPU Queue"},  # entity/name, as on every target
        {"name": "LAUNCH_ENTITY", "value": "alice"},
        {"name": "LAUNCH_AUTHOR", "value": "Bob@Example.com"},
        {"name": "LAUNCH_OUTPUT", "value": output},
        {"name": "LAUNCH_PARAMETERS", "value": '{"lr": 0.1}'},
    ]

    def tag(text):  # sanitised values keep a short hash of the original, so they stay distinct
        return hashlib.sha256(text.encode()).hexdigest()[:6]

    assert sent["labels"] == {
        "team": "ml",
        "cost-center": "42",
        "launch-run-id": f"run_id-with-odd-chars-{tag('Run_ID.With/Odd:Chars')}",
        "launch-queue": f"gpu-queue-{tag('GPU Queue')}",
        "launch-author": f"bob-example-com-{tag('Bob@Example.com')}",
        "launch-entity": "alice",
    }


def test_staging_folder_is_kept(fake_vertex, vertex_runner):
    vertex_runner("grpc").submit(make_job(seed_config("gs://my-bucket/team/")))
    sent = created(fake_vertex)[0]["custom_job"]
    prefix = sent["job_spec"]["base_output_directory"]["output_uri_prefix"]
    assert prefix == "gs://my-bucket/team/launch-runs/run-1"


def test_pool_without_image_gets_the_built_one_and_base_output_dir_is_per_run(fake_vertex, vertex_runner):
    config = seed_config()
    config["spec"]["base_output_dir"] = "gs://other/out"
    config["spec"]["display_name"] = "nightly"
    config["spec"]["worker_pool_specs"][0]["container_spec"] = {}
    vertex_runner("grpc").submit(make_job(config))
    sent = created(fake_vertex)[0]["custom_job"]
    assert sent["display_name"] == "nightly"
    assert sent["job_spec"]["base_output_directory"] == {"output_uri_prefix": "gs://other/out/run-1"}
    container = sent["job_spec"]["worker_pool_specs"][0]["container_spec"]
    assert container["image_uri"] == IMAGE
    assert container["args"][-1] == "/gcs/other/out/run-1/output.ipynb"


def test_no_secret_reaches_any_request(fake_vertex, vertex_runner, monkeypatch):
    secrets = {
        "GOOGLE_APPLICATION_CREDENTIALS": "/home/alice/keys/sa-key-5f3a9.json",
        "AWS_SECRET_ACCESS_KEY": "aws-sekrit-8d1c",
        "WANDB_API_KEY": "wandb-sekrit-77aa",
        "HF_TOKEN": "hf_sekrit_token_42",
        "GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.sekrit-token",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    runner = vertex_runner("rest")
    job = make_job()
    job.run.external_id = runner.submit(job)
    runner.poll([job])
    runner.cancel(job)
    dumped = json.dumps([r.to_json() for r in fake_vertex.requests])
    for key, value in secrets.items():
        assert value not in dumped
        assert key not in dumped
    assert not any("authorization" in r.metadata for r in fake_vertex.requests)


def test_reattach_instead_of_a_second_create(fake_vertex, vertex_runner, transport):
    job = make_job()
    first = vertex_runner(transport).submit(job)
    again = vertex_runner(transport).submit(copy.deepcopy(job))  # a restarted agent
    assert again == first
    assert len(fake_vertex.calls("CreateCustomJob")) == 1
    lookups = fake_vertex.calls("ListCustomJobs")
    assert lookups[-1].request["filter"] == 'labels.launch-run-id="run-1"'


def test_two_queues_in_two_projects_at_once(fake_vertex, vertex_runner):
    from google.cloud.aiplatform import initializer

    runner = vertex_runner("grpc")
    rest_env = EnvironmentConfig(
        project="ignored",
        region="us-central1",
        api_endpoint=fake_vertex.rest_endpoint,
        api_transport="rest",
        credentials="anonymous",
    )
    jobs = []
    for i in range(8):
        config_a = seed_config()
        config_a["spec"].update({"project": "proj-a", "location": "us-central1"})
        config_b = seed_config("bucket-b")  # a bare bucket name works too
        config_b["spec"].update({"project": "proj-b", "location": "europe-west4"})
        jobs.append(make_job(config_a, run_id=f"a-{i}", queue="queue-a"))
        job_b = make_job(config_b, run_id=f"b-{i}", queue="queue-b")
        job_b.environment = rest_env  # this queue also talks REST to another endpoint
        jobs.append(job_b)
    names: dict[str, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def submit(job):
        try:
            barrier.wait()
            names[job.run.id] = runner.submit(job)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=submit, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    num_a, num_b = fake_vertex.project_number("proj-a"), fake_vertex.project_number("proj-b")
    for run_id, name in names.items():
        want = (
            f"projects/{num_a}/locations/us-central1/"
            if run_id.startswith("a-")
            else f"projects/{num_b}/locations/europe-west4/"
        )
        assert name.startswith(want)
    by_run = {r.request["custom_job"]["labels"]["launch-run-id"]: r for r in fake_vertex.calls("CreateCustomJob")}
    assert len(by_run) == 16
    for run_id, record in by_run.items():
        a = run_id.startswith("a-")
        assert record.transport == ("grpc" if a else "rest")
        assert record.request["parent"] == (
            "projects/proj-a/locations/us-central1" if a else "projects/proj-b/locations/europe-west4"
        )
        bucket = "my-bucket" if a else "bucket-b"
        assert (
            record.request["custom_job"]["job_spec"]["base_output_directory"]["output_uri_prefix"]
            == f"gs://{bucket}/launch-runs/{run_id}"
        )
    # the SDK's process-global config was never set by the runner
    assert initializer.global_config._project is None
    assert initializer.global_config.api_endpoint is None


def test_macros_filled_once_even_if_the_agent_already_did(fake_vertex, vertex_runner):
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["container_spec"]["image_uri"] = IMAGE  # already filled
    config["spec"]["display_name"] = "${queue}-${run_id}"
    vertex_runner("grpc").submit(make_job(config))
    sent = created(fake_vertex)[0]["custom_job"]
    assert sent["display_name"] == "q-run-1"
    assert sent["job_spec"]["worker_pool_specs"][0]["container_spec"]["image_uri"] == IMAGE


@pytest.mark.parametrize("transport_name", ["grpc", "rest"])
def test_an_emulator_needs_only_endpoint_and_anonymous_credentials(fake_vertex, transport_name):
    """What a user writes in launch-config.yaml to point the agent at an emulator."""
    from launch_jupyter.core.config import AgentConfig
    from launch_jupyter.runners import get_runner

    endpoint = fake_vertex.grpc_endpoint if transport_name == "grpc" else fake_vertex.rest_endpoint
    env = EnvironmentConfig(project="emu", api_endpoint=endpoint, api_transport=transport_name, credentials="anonymous")
    runner = get_runner("vertex", AgentConfig(environment=env))
    assert runner.submit(make_job()).startswith(
        f"projects/{fake_vertex.project_number('emu')}/locations/us-central1/customJobs/"
    )


def test_the_run_identity_is_the_one_every_target_gives(vertex_runner):
    from launch_jupyter.core.identity import run_identity

    job = make_job()
    request = vertex_runner("grpc").dry_run(job)
    container = request["custom_job"]["job_spec"]["worker_pool_specs"][0]["container_spec"]
    env = {e["name"]: e["value"] for e in container["env"]}
    expected = run_identity(
        run_id=job.run.id, entity=job.queue.entity, queue=job.queue.path, author=job.run.author, output=OUT
    )
    assert {name: env[name] for name in expected} == expected  # the local runners' names and meanings
    assert env["LAUNCH_QUEUE"] == "alice/q"  # entity/name, not the bare queue name


def test_the_readme_dry_run_example_has_the_labels_the_dry_run_prints(vertex_runner):
    from pathlib import Path

    from launch_jupyter.core.queue_config import dump_config  # what a dry run prints

    text = dump_config(vertex_runner("grpc").dry_run(make_job()))
    printed = [line.split(":")[0].strip() for line in text.splitlines() if line.strip().startswith("launch-")]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("custom_job:\n", 1)[1].split("```", 1)[0]
    shown = [line.split(":")[0].strip() for line in example.splitlines() if line.strip().startswith("launch-")]
    # Compared as sets: the labels are a proto map, whose printed order the protobuf runtime picks.
    assert sorted(shown) == sorted(printed) == ["launch-author", "launch-entity", "launch-queue", "launch-run-id"]
