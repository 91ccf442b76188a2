"""The docker builder on a real Docker engine, pushing to a real registry on loopback."""

from __future__ import annotations

import uuid
from pathlib import Path

import nbformat
import pytest

from launch_jupyter.builders.docker import DockerBuilder
from launch_jupyter.builders.registry import image_exists
from launch_jupyter.core.config import BuilderConfig
from launch_jupyter.core.errors import BuildError, ConfigError, LaunchError
from tests.fixtures.docker import write_notebook

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def change_code(notebook: Path) -> None:
    """A code-only change: one more cell, same imports (so the same requirements)."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(f"print('changed {uuid.uuid4().hex[:6]}')"))
    nbformat.write(nb, notebook)


@pytest.fixture
def builder(docker_builder) -> DockerBuilder:
    assert isinstance(docker_builder, DockerBuilder)
    return docker_builder


def test_build_pushes_and_a_manifest_head_finds_it(builder, make_context, tmp_path, docker_registry):
    context = make_context(write_notebook(tmp_path / "nb"))
    log: list[str] = []
    uri = builder.build(context, None, "linux/amd64", log.append)
    repository = builder.config.destination
    assert uri == f"{repository}:{context.tag}"
    assert builder.builds == 1
    assert builder.last_digest and builder.last_digest.startswith("sha256:")
    assert image_exists(uri)
    assert image_exists(f"{repository}@{builder.last_digest}")
    assert not image_exists(f"{repository}:not-pushed")
    assert any(line.startswith("Step ") for line in log), log
    assert f"image pushed: {uri} digest {builder.last_digest}" in log


def test_unchanged_context_builds_nothing_after_one_head(builder, make_context, tmp_path, docker_registry):
    notebook = write_notebook(tmp_path / "nb")
    first = builder.build(make_context(notebook), None, "linux/amd64", lambda line: None)
    heads_before = docker_registry.requests("HEAD", "/manifests/")
    gets_before = docker_registry.requests("GET")
    log: list[str] = []
    again = builder.build(make_context(notebook), None, "linux/amd64", log.append)
    assert again == first
    assert builder.builds == 1  # the engine was asked to build once in all
    assert docker_registry.requests("HEAD", "/manifests/") - heads_before == 1
    assert docker_registry.requests("GET") == gets_before  # no listing, no manifest fetch
    assert log == [f"image exists, skipping build: {first}"]


def test_code_only_change_reuses_the_dependency_layer(builder, make_context, tmp_path):
    notebook = write_notebook(tmp_path / "nb")
    first = builder.build(make_context(notebook), None, "linux/amd64", lambda line: None)
    change_code(notebook)
    log: list[str] = []
    second = builder.build(make_context(notebook), None, "linux/amd64", log.append)
    assert second != first and builder.builds == 2
    pip_step = next(i for i, line in enumerate(log) if "pip install -r" in line)
    assert "Using cache" in log[pip_step + 1], log[pip_step : pip_step + 3]
    code_step = next(i for i, line in enumerate(log) if line.startswith("Step ") and "COPY . " in line)
    assert "Using cache" not in log[code_step + 1]


def test_failing_run_step_raises_build_error_with_the_pip_error(builder, make_context, tmp_path):
    notebook = write_notebook(tmp_path / "nb")
    bad = "launch-jupyter-no-such-package-zz==0.0.1\n"
    context = make_context(notebook, requirements=bad)
    log: list[str] = []
    with pytest.raises(BuildError) as err:
        builder.build(context, None, "linux/amd64", log.append)
    message = str(err.value)
    assert "returned a non-zero code" in message
    assert "launch-jupyter-no-such-package-zz" in message
    assert "No matching distribution" in message or "Could not find a version" in message
    assert any("No matching distribution" in line for line in log)
    assert not image_exists(f"{builder.config.destination}:{context.tag}")


def test_destination_with_a_tag_is_refused_before_any_build(docker_registry, docker_host, make_context, tmp_path):
    context = make_context(write_notebook(tmp_path / "nb"))
    builder = DockerBuilder(BuilderConfig(type="docker"))
    with pytest.raises(ConfigError, match=r"builder\.destination: .*must not carry a tag; the tag is the content hash"):
        builder.build(context, f"{docker_registry.address}/proj/img:v1", "linux/amd64", print)
    with pytest.raises(ConfigError, match=r"builder\.destination"):
        builder.build(context, None, "linux/amd64", print)
    assert builder.builds == 0


def test_an_image_the_run_names_is_used_without_building(builder, make_context, tmp_path):
    context = make_context(write_notebook(tmp_path / "nb"))
    log: list[str] = []
    assert builder.build(context, None, "linux/amd64", log.append, image="example.com/x/y:1") == "example.com/x/y:1"
    assert builder.builds == 0


def test_preflight_names_docker_host_when_no_engine_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(LaunchError, match="no Docker engine answers at unix://.*no-engine.sock"):
        DockerBuilder(BuilderConfig(type="docker")).preflight()


def test_preflight_passes_on_a_running_engine(docker_host):
    DockerBuilder(BuilderConfig(type="docker", destination="127.0.0.1:5000/p/i")).preflight()


def test_agent_fails_the_run_at_stage_build_with_the_pip_error_in_its_events(
    docker_builder, python_base_image, tmp_path
):
    """End to end: a notebook whose requirements.txt names a package that does not exist."""
    from dataclasses import replace

    from launch_jupyter import api
    from launch_jupyter.agent import Agent
    from launch_jupyter.core.config import AgentConfig
    from launch_jupyter.core.states import RunState

    folder = tmp_path / "bad"
    notebook = write_notebook(folder)
    (folder / "requirements.txt").write_text("launch-jupyter-no-such-package-zz==0.0.1\n")
    api.create_queue(
        "boxes", "local-container", config={"network": "none", "builder": {"base_image": python_base_image}}
    )
    run = api.submit(notebook, "boxes")
    config = AgentConfig(builder=replace(docker_builder.config), queues=["boxes"])
    Agent(config=config, poll_interval=0.2).run_forever(until_idle=True)
    run.refresh()
    assert run.state is RunState.FAILED
    assert run.run.stage == "build"
    events = "\n".join(event.message for event in run.events())
    assert "No matching distribution found for launch-jupyter-no-such-package-zz" in events, events
