"""The kaniko builder: the context goes to Cloud Storage, kaniko runs on Cloud Build. Against a fake
Cloud Build API (REST) and a fake GCS, with a real registry on loopback for the skip check."""

from __future__ import annotations

import io
import tarfile
import threading
import uuid

import pytest

from launch_jupyter.builders import get_builder
from launch_jupyter.builders.kaniko import ENDPOINT_ENV, BuildStopped, KanikoBuilder
from launch_jupyter.core.config import AgentConfig, BuilderConfig, EnvironmentConfig
from launch_jupyter.core.errors import BuildError, ConfigError
from launch_jupyter.packaging.context import create_context, pack_context
from tests.fakes import cloudbuild_server
from tests.fixtures.docker import write_notebook

KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"


@pytest.fixture
def cloud_build(monkeypatch, gcs):
    server, state = cloudbuild_server.start(cloudbuild_server.CloudBuildState(gcs=gcs))
    monkeypatch.setenv(ENDPOINT_ENV, state.base_url)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def builder(docker_registry, cloud_build) -> KanikoBuilder:
    config = BuilderConfig(
        type="kaniko", destination=f"{docker_registry.address}/proj/quickstart-{uuid.uuid4().hex[:8]}",
        build_context_store="gs://contexts-bucket/launch/contexts", kaniko_image=KANIKO_IMAGE,
    )  # fmt: skip
    agent_config = AgentConfig(
        builder=config, environment=EnvironmentConfig(project="proj-1", region="europe-west4", credentials="anonymous")
    )
    found = get_builder(config, agent_config)
    assert isinstance(found, KanikoBuilder)
    return found


@pytest.fixture
def context(tmp_path):
    return create_context(
        write_notebook(tmp_path / "nb"), tmp_path / "context", base_image="python:3.11-slim", wheel=False
    )


def test_the_uploaded_tarball_is_the_context_and_kaniko_gets_the_right_flags(builder, context, gcs, cloud_build):
    log: list[str] = []
    uri = builder.build(context, None, "linux/amd64", log.append)
    repository = builder.config.destination
    assert uri == f"{repository}:{context.tag}"
    name = f"launch/contexts/{context.content_hash}.tar.gz"
    uploaded = gcs.objects[("contexts-bucket", name)]
    assert uploaded == pack_context(context.directory)
    with tarfile.open(fileobj=io.BytesIO(uploaded), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    on_disk = {
        p.relative_to(context.directory).as_posix(): p.read_bytes() for p in context.directory.rglob("*") if p.is_file()
    }
    assert members == on_disk and "Dockerfile" in members and "quickstart.ipynb" in members

    [build] = cloud_build.created
    [step] = build.steps
    assert step.name == KANIKO_IMAGE
    assert list(step.args) == [
        "--dockerfile=Dockerfile",
        f"--context=gs://contexts-bucket/{name}",
        f"--destination={uri}",
        "--cache=true",
        f"--cache-repo={repository}/cache",
        "--custom-platform=linux/amd64",
    ]
    assert builder.last_log_url and any(builder.last_log_url in line for line in log)
    assert any("SUCCESS" in line for line in log)
    assert builder.builds == 1


def test_cloud_build_runs_in_the_agents_region(builder, context, cloud_build):
    builder.build(context, None, "linux/amd64", lambda line: None)
    assert cloud_build.parents == ["projects/proj-1/locations/europe-west4"]  # not the global pool


def test_cloud_build_runs_in_the_queues_location_the_runner_names(builder, context, cloud_build):
    from launch_jupyter.runners.vertex import VertexRunner

    runner = VertexRunner(builder.agent_config)  # environment.region is europe-west4
    queue = {"spec": {"location": "asia-northeast1"}}
    assert runner.build_location(queue) == "asia-northeast1"
    assert runner.build_location({}) == "europe-west4"
    builder.location = runner.build_location(queue)  # what the agent does before each build
    builder.build(context, None, "linux/amd64", lambda line: None)
    assert cloud_build.parents == ["projects/proj-1/locations/asia-northeast1"]  # not the agent's region


def test_a_transient_status_error_is_read_again(builder, context, cloud_build):
    cloud_build.get_errors = 2  # GetBuild answers 500 INTERNAL twice while the build goes on
    log: list[str] = []
    uri = builder.build(context, None, "linux/amd64", log.append)
    assert uri.endswith(context.tag)
    assert sum("status not read" in line for line in log) == 2
    assert any("SUCCESS" in line for line in log)


def test_a_failed_build_surfaces_its_message_and_log_url(builder, context, cloud_build):
    cloud_build.fail_next('step #0 - "kaniko": error building image: pip install returned exit code 1')
    with pytest.raises(BuildError) as err:
        builder.build(context, None, "linux/amd64", lambda line: None)
    message = str(err.value)
    assert "ended FAILURE" in message
    assert "pip install returned exit code 1" in message
    assert builder.last_log_url and builder.last_log_url in message


def test_an_image_already_in_the_registry_is_neither_uploaded_nor_built(
    builder, context, gcs, cloud_build, docker_registry
):
    repository = builder.config.destination.split("/", 1)[1]
    docker_registry.put_image(repository, context.tag)
    heads = docker_registry.requests("HEAD", "/manifests/")
    log: list[str] = []
    uri = builder.build(context, None, "linux/amd64", log.append)
    assert uri == f"{builder.config.destination}:{context.tag}"
    assert log == [f"image exists, skipping build: {uri}"]
    assert docker_registry.requests("HEAD", "/manifests/") - heads == 1
    assert cloud_build.created == [] and gcs.objects == {}


def test_missing_settings_are_named(context, cloud_build):
    env = EnvironmentConfig(project="proj-1")
    no_store = KanikoBuilder(BuilderConfig(type="kaniko", destination="127.0.0.1:1/p/i"), AgentConfig(environment=env))
    with pytest.raises(ConfigError, match=r"builder\.build_context_store: .*gs://BUCKET/PREFIX"):
        no_store.build(context, None, "linux/amd64", print)
    no_project = KanikoBuilder(
        BuilderConfig(type="kaniko", destination="127.0.0.1:1/p/i", build_context_store="gs://b/p"), AgentConfig()
    )
    with pytest.raises(ConfigError, match=r"environment\.project"):
        no_project.build(context, None, "linux/amd64", print)
    with pytest.raises(ConfigError, match=r"builder\.destination: .*must not carry a tag"):
        no_project.build(context, "127.0.0.1:1/p/i:latest", "linux/amd64", print)
    with pytest.raises(ConfigError, match=r"builder\.build_context_store"):
        KanikoBuilder(
            BuilderConfig(type="kaniko", build_context_store="s3://x"), AgentConfig(environment=env)
        ).preflight()
    assert cloud_build.created == []


def test_the_wait_for_a_build_hears_stop(builder, context, cloud_build):
    cloud_build.hold = True  # the build stays WORKING
    log: list[str] = []
    stop = threading.Event()
    outcome: list[BaseException | str] = []

    def build() -> None:
        try:
            outcome.append(builder.build(context, None, "linux/amd64", log.append, stop=stop))
        except BaseException as err:  # handed to the test
            outcome.append(err)

    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    for _ in range(600):  # until the build is being waited on (a readiness wait, not a timing)
        if any(line.endswith(": WORKING") for line in log):
            break
        worker.join(0.1)
    assert any(line.endswith(": WORKING") for line in log), log
    stop.set()
    worker.join(60)
    assert not worker.is_alive()
    [err] = outcome
    assert isinstance(err, BuildStopped) and "stopped waiting for Cloud Build" in str(err)
    assert len(cloud_build.created) == 1


def test_the_wait_for_a_build_has_a_deadline(builder, context, cloud_build):
    cloud_build.hold = True
    builder.wait_timeout = 1.0
    with pytest.raises(BuildError, match=r"did not finish within 1 s \(last status WORKING\); build log: http"):
        builder.build(context, None, "linux/amd64", lambda line: None)
    assert len(cloud_build.created) == 1


@pytest.mark.parametrize("image", ["gcr.io/kaniko-project/executor:latest", "gcr.io/kaniko-project/executor"])
def test_an_unpinned_executor_is_refused_before_anything_is_uploaded(image, context, gcs, cloud_build):
    config = BuilderConfig(
        type="kaniko", destination="127.0.0.1:1/p/i", build_context_store="gs://b/p", kaniko_image=image
    )
    builder = KanikoBuilder(config, AgentConfig(environment=EnvironmentConfig(project="proj-1")))
    for attempt in (builder.preflight, lambda: builder.build(context, None, "linux/amd64", print)):
        with pytest.raises(ConfigError, match=r"builder\.kaniko_image: .* is not pinned: .*osscontainertools"):
            attempt()
    assert cloud_build.created == [] and gcs.objects == {}


def test_the_default_executor_is_the_maintained_fork_pinned_by_digest():
    from launch_jupyter.builders.kaniko import check_kaniko_image
    from launch_jupyter.builders.registry import parse_image

    default = BuilderConfig().kaniko_image
    registry, repository, reference = parse_image(default)
    assert (registry, repository) == ("ghcr.io", "osscontainertools/kaniko")  # not archived upstream
    assert reference.startswith("sha256:") and len(reference) == len("sha256:") + 64
    assert check_kaniko_image(default) == default
