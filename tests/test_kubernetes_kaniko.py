"""The kaniko-kubernetes builder: the context goes to (fake) Cloud Storage, the kaniko executor runs
as a Job on the FAKE Kubernetes API server (tests/fakes/kubernetes_server.py; no real API server can
be installed here), a real registry on loopback answers the skip check. The fake runs no container:
the image is not really built; what is checked is the Job the builder asks for and how it follows it."""

from __future__ import annotations

import threading
import uuid

import pytest

from launch_jupyter.builders import get_builder
from launch_jupyter.builders.kaniko import executor_args
from launch_jupyter.core.config import AgentConfig, BuilderConfig, EnvironmentConfig
from launch_jupyter.core.errors import BuildError
from launch_jupyter.packaging.context import create_context, pack_context
from launch_jupyter.runners.kubernetes._kaniko import KanikoKubernetesBuilder
from tests.fixtures.docker import write_notebook

KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"


@pytest.fixture
def builder(docker_registry, gcs, fake_kubernetes):
    config = BuilderConfig(
        type="kaniko-kubernetes",
        destination=f"{docker_registry.address}/proj/nb-{uuid.uuid4().hex[:8]}",
        build_context_store="gs://contexts-bucket/launch",
        kaniko_image=KANIKO_IMAGE,
    )
    found = get_builder(config, AgentConfig(builder=config, environment=EnvironmentConfig(project="proj-1")))
    assert isinstance(found, KanikoKubernetesBuilder)
    return found


@pytest.fixture
def context(tmp_path):
    return create_context(
        write_notebook(tmp_path / "nb"), tmp_path / "context", base_image="python:3.11-slim", wheel=False
    )


def test_kaniko_runs_as_a_job_with_the_kaniko_builders_arguments(builder, context, gcs, fake_kubernetes):
    fake_kubernetes.log_lines = ["INFO Pushing image", "INFO Pushed image"]
    log: list[str] = []
    uri = builder.build(context, None, "linux/amd64", log.append)
    assert uri == f"{builder.config.destination}:{context.tag}"
    name = f"launch/{context.content_hash}.tar.gz"
    assert gcs.objects[("contexts-bucket", name)] == pack_context(context.directory)
    [(ns, job_name)] = list(fake_kubernetes.jobs)
    assert ns == "ml" and job_name.startswith("launch-build-")
    [container] = fake_kubernetes.jobs[(ns, job_name)]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == KANIKO_IMAGE
    assert container["args"] == executor_args(
        f"gs://contexts-bucket/{name}", uri, f"{builder.config.destination}/cache", "linux/amd64"
    )
    assert "INFO Pushed image" in log and any("SUCCESS" in line for line in log)
    assert builder.builds == 1


def test_a_failed_kaniko_job_is_a_build_error_with_its_log(builder, context, fake_kubernetes):
    fake_kubernetes.script(["Running", "Failed"])
    fake_kubernetes.log_lines = ["error building image: pip install returned exit code 1"]
    with pytest.raises(BuildError, match="pip install returned exit code 1"):
        builder.build(context, None, "linux/amd64", lambda line: None)


def test_a_build_already_running_for_the_image_is_followed(builder, context, fake_kubernetes):
    builder.build(context, None, "linux/amd64", lambda line: None)
    again = KanikoKubernetesBuilder(builder.config, builder.agent_config)
    log: list[str] = []
    again._run_build("proj-1", ["--x"], f"{builder.config.destination}:{context.tag}", log.append, threading.Event())
    assert any("already building" in line for line in log)
    assert len(fake_kubernetes.jobs) == 1 and again.builds == 0


def test_the_agent_config_takes_the_builder(tmp_path):
    from launch_jupyter.core.config import load_agent_config

    path = tmp_path / "launch-config.yaml"
    path.write_text(
        "builder:\n  type: kaniko-kubernetes\n  destination: 127.0.0.1:5000/p/i\n"
        "  build_context_store: gs://contexts-bucket/launch\nenvironment:\n  region: eu-west-1\n"
    )
    config = load_agent_config(path)
    assert config.builder.type == "kaniko-kubernetes" and config.environment.region == "eu-west-1"


def test_the_wait_for_a_build_job_hears_the_agents_stop(builder, context, fake_kubernetes):
    from launch_jupyter.builders.kaniko import BuildStopped

    fake_kubernetes.script(["Running"] * 1000)  # a build that does not end
    stop = threading.Event()
    stop.set()  # the agent stops (or lost the run) while the Job runs
    with pytest.raises(BuildStopped, match="stopped waiting for the kaniko Job"):
        builder._run_build("proj-1", ["--x"], f"{builder.config.destination}:{context.tag}", lambda line: None, stop)
