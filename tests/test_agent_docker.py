"""The whole pipeline on a real Docker engine: the agent builds the run's image with the docker
builder, pushes it to a real registry, runs it with the local-container runner and brings the
executed notebook back; a second run of the same notebook builds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.states import RunState
from tests.fixtures.common import EXAMPLES

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def outputs_text(notebook: str) -> str:
    cells = json.loads(Path(notebook).read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def test_agent_builds_pushes_runs_in_a_container_and_skips_an_unchanged_rebuild(
    docker_registry, docker_host, python_base_image
):
    destination = f"{docker_registry.address}/proj/quickstart"
    api.create_queue("box", "local-container", config={"network": "none", "builder": {"base_image": python_base_image}})
    overrides = {
        "queues": ["box"],
        "poll_interval": 0.3,
        "builder": {"type": "docker", "destination": destination, "network": "host"},
    }

    first = api.submit(EXAMPLES / "quickstart.ipynb", "box", parameters={"name": "container"})
    Agent(config=api.agent_config(overrides=overrides)).run_forever(until_idle=True)
    events = "\n".join(f"{e.state} {e.message}" for e in first.events())
    assert first.refresh().state is RunState.SUCCEEDED, events
    assert first.run.image_uri.startswith(f"{destination}:")
    assert "container" in outputs_text(first.run.output_notebook)
    assert "Step " in events  # the build log reached the run's events

    second = api.submit(EXAMPLES / "quickstart.ipynb", "box", parameters={"name": "again"})
    Agent(config=api.agent_config(overrides=overrides)).run_forever(until_idle=True)
    events = "\n".join(f"{e.state} {e.message}" for e in second.events())
    assert second.refresh().state is RunState.SUCCEEDED, events
    assert second.run.image_uri == first.run.image_uri  # parameters are not part of the image
    assert "skipping build" in events and "Step " not in events
    assert "again" in outputs_text(second.run.output_notebook)
