"""Vertex queue config validation: the bad-config corpus (tests/bad_configs/, each file naming the
exact key path expected), the seed's default, registry rules, preflight."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from launch_jupyter.core.errors import ConfigError, LaunchError
from launch_jupyter.core.queue_config import parse_config_text
from launch_jupyter.runners.vertex import DEFAULT_CONFIG, VertexRunner
from tests.fixtures.vertex import seed_config

CORPUS = sorted((Path(__file__).parent / "bad_configs").glob("*.yaml"))


def header(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        fields[key] = value
    return fields


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("case", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_config(case):
    text = case.read_text()
    want = header(text)
    if "yaml-error" in want:
        with pytest.raises(ConfigError, match=want["yaml-error"]):
            parse_config_text(text)
        return
    problems = VertexRunner().validate(parse_config_text(text))
    errors = [p for p in problems if p.severity == "error"]
    at_path = [p for p in errors if p.path == want["path"]]
    assert at_path, f"no error at {want['path']!r}; got {[str(p) for p in problems]}"
    assert any(want["message"] in str(p) for p in at_path), [str(p) for p in at_path]
    assert all(str(p).startswith(f"{p.path}: ") for p in errors if p.path)  # the message names the path


def test_seed_default_config_is_exactly_the_seed():
    runner = VertexRunner()
    assert runner.default_config() == DEFAULT_CONFIG
    assert yaml.safe_load(DEFAULT_CONFIG) == {
        "spec": {
            "worker_pool_specs": [
                {
                    "machine_spec": {
                        "machine_type": "n1-standard-4",
                        "accelerator_type": "ACCELERATOR_TYPE_UNSPECIFIED",
                        "accelerator_count": 0,
                    },
                    "replica_count": 1,
                    "container_spec": {"image_uri": "${image_uri}"},
                }
            ],
            "staging_bucket": "<REQUIRED>",
        },
        "run": {"restart_job_on_worker_restart": False},
    }


def test_seed_default_needs_only_the_bucket():
    runner = VertexRunner()
    problems = runner.validate(yaml.safe_load(DEFAULT_CONFIG))
    assert [p.path for p in problems] == ["spec.staging_bucket"]
    assert runner.validate(seed_config()) == []


def test_every_sdk_argument_is_accepted():
    config = seed_config()
    config["spec"].update(
        {
            "display_name": "nightly-${run_name}",
            "base_output_dir": "gs://my-bucket/out",
            "project": "proj",
            "location": "europe-west4",
            "labels": {"team": "ml"},
            "encryption_spec_key_name": "projects/p/locations/l/keyRings/r/cryptoKeys/k",
            "persistent_resource_id": "pool-1",
        }
    )
    config["run"].update(
        {
            "service_account": "sa@proj.iam.gserviceaccount.com",
            "network": "projects/1/global/networks/n",
            "timeout": 3600,
            "enable_web_access": True,
            "scheduling_strategy": "SPOT",
            "max_wait_duration": 600,
            "tensorboard": "projects/p/locations/l/tensorboards/1",
            "disable_retries": True,
            "create_request_timeout": 30.5,
            "sync": False,
            "psc_interface_config": {"network_attachment": "na"},
        }
    )
    pool = config["spec"]["worker_pool_specs"][0]
    pool["machine_spec"].update({"accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 2})
    pool["disk_spec"] = {"boot_disk_type": "pd-ssd", "boot_disk_size_gb": 200}
    pool["container_spec"].update({"env": [{"name": "A", "value": "1"}]})
    assert VertexRunner().validate(config) == []


def test_python_package_pools_are_valid():
    config = seed_config()
    config["spec"]["worker_pool_specs"] = [
        {
            "machine_spec": {"machine_type": "n1-standard-4"},
            "replica_count": 1,
            "python_package_spec": {
                "executor_image_uri": "us-docker.pkg.dev/vertex-ai/training/x:latest",
                "package_uris": ["gs://b/trainer.tar.gz"],
                "python_module": "trainer.task",
            },
        }
    ]
    assert VertexRunner().validate(config) == []


def test_artifact_registry_images_are_fine():
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["container_spec"]["image_uri"] = (
        "us-central1-docker.pkg.dev/p/r/img@sha256:abc"
    )
    assert VertexRunner().validate(config) == []


@pytest.mark.parametrize(
    "uri",
    [
        "gcr.io/proj/img:1",
        "eu.gcr.io/proj/img",
        "python:3.11-slim",
        "library/python",
        "ghcr.io/org/img:tag",
        "quay.io/org/img",
        "docker.io/org/img",
    ],
)
def test_other_registries_are_a_warning_not_silence(uri):
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["container_spec"]["image_uri"] = uri
    (problem,) = VertexRunner().validate(config)
    assert problem.severity == "warning"
    assert problem.path == "spec.worker_pool_specs[0].container_spec.image_uri"


@pytest.mark.parametrize(
    "uri", ["localhost:5000/img", "127.0.0.1:5000/img:1", "10.1.2.3/img", "registry.local/img", "myregistry:5000/img"]
)
def test_unreachable_private_registries_are_errors(uri):
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["container_spec"]["image_uri"] = uri
    (problem,) = VertexRunner().validate(config)
    assert problem.severity == "error"
    assert problem.path == "spec.worker_pool_specs[0].container_spec.image_uri"


def test_other_private_registries_are_warnings():
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["container_spec"]["image_uri"] = "registry.example.com/team/img:1"
    (problem,) = VertexRunner().validate(config)
    assert problem.severity == "warning"
    assert "Artifact Registry" in problem.message


def test_preflight_with_anonymous_credentials(tmp_path):
    from launch_jupyter.core.config import AgentConfig, EnvironmentConfig
    from launch_jupyter.core.model import Queue

    agent = AgentConfig(environment=EnvironmentConfig(project="p", credentials="anonymous"))
    queue = Queue(entity="alice", name="q", resource="vertex", config=seed_config())
    VertexRunner(agent).preflight(queue, agent)


def test_preflight_without_credentials_says_how(monkeypatch, tmp_path):
    from launch_jupyter.core.config import AgentConfig, EnvironmentConfig
    from launch_jupyter.core.model import Queue

    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud ADC file
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    agent = AgentConfig(environment=EnvironmentConfig(project="p", credentials="default"))
    queue = Queue(entity="alice", name="q", resource="vertex", config=seed_config())
    with pytest.raises(LaunchError) as caught:
        VertexRunner(agent).preflight(queue, agent)
    message = str(caught.value)
    assert "gcloud auth application-default login" in message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "credentials: anonymous" in message


def test_preflight_without_a_project_names_the_keys(monkeypatch):
    from launch_jupyter.core.config import AgentConfig, EnvironmentConfig
    from launch_jupyter.core.model import Queue

    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    agent = AgentConfig(environment=EnvironmentConfig(credentials="anonymous"))
    queue = Queue(entity="alice", name="q", resource="vertex", config=seed_config())
    with pytest.raises(LaunchError, match="spec.project"):
        VertexRunner(agent).preflight(queue, agent)


def test_the_runner_is_registered():
    from launch_jupyter.runners import get_runner

    runner = get_runner("vertex")
    assert isinstance(runner, VertexRunner)
    assert runner.resource == "vertex" and runner.needs_image is True
