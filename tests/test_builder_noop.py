"""The noop builder: the run's or queue's own image, or a clear error saying how to name one."""

from __future__ import annotations

import pytest

from launch_jupyter.builders import get_builder, known_builders
from launch_jupyter.builders.noop import NoopBuilder
from launch_jupyter.core.config import AgentConfig, BuilderConfig
from launch_jupyter.core.errors import BuildError, ConfigError


def test_noop_is_registered_with_docker_and_kaniko():
    assert {"noop", "docker", "kaniko"} <= set(known_builders())
    assert isinstance(get_builder(BuilderConfig(type="noop"), AgentConfig()), NoopBuilder)


def test_unknown_builder_type_lists_the_known_ones():
    with pytest.raises(
        ConfigError, match='builder.type: unknown builder type "podman", choose one of: .*docker.*kaniko.*noop'
    ):
        get_builder(BuilderConfig(type="podman"))


def test_the_named_image_is_used_as_is():
    log: list[str] = []
    image = "us-docker.pkg.dev/proj/repo/trainer:1.2"
    assert NoopBuilder().build(None, None, "linux/amd64", log.append, image=image) == image
    assert log == [f"image given, nothing to build: {image}"]


def test_no_image_says_how_to_give_one():
    with pytest.raises(BuildError) as err:
        NoopBuilder(BuilderConfig(), AgentConfig()).build(None, "us-docker.pkg.dev/p/r/i", "linux/amd64", print)
    message = str(err.value)
    assert "--image URI" in message
    assert "spec.worker_pool_specs[0].container_spec.image_uri" in message
    assert "image_uri" in message and "builder.type" in message


def test_a_malformed_image_is_refused():
    with pytest.raises(ConfigError):
        NoopBuilder().build(None, None, "linux/amd64", print, image="not an image")


def test_preflight_needs_nothing():
    NoopBuilder().preflight()
