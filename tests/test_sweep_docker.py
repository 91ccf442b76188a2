"""A sweep on a real Docker engine: the docker builder builds the sweep's one image once, even with
two of its runs claimed at the same time, and every point runs in it with its own parameters."""

from __future__ import annotations

import pytest

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.states import RunState
from tests.fixtures.common import EXAMPLES

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_a_sweep_is_built_once(docker_registry, docker_host, python_base_image):
    destination = f"{docker_registry.address}/proj/sweep"
    api.create_queue("box", "local-container", config={"network": "none", "builder": {"base_image": python_base_image}})
    overrides = {
        "queues": ["box"],
        "poll_interval": 0.3,
        "max_jobs": 3,
        "builder": {"type": "docker", "destination": destination, "network": "host"},
    }
    sweep = api.sweep(EXAMPLES / "quickstart.ipynb", "box", parameters={"n": "1,2,3"}, max_parallel=2)
    Agent(config=api.agent_config(overrides=overrides)).run_forever(until_idle=True)

    found = sweep.runs()
    logs = {r.id: "\n".join(f"{e.state} {e.message}" for e in api.events(r.id)) for r in found}
    assert [r.state for r in found] == [RunState.SUCCEEDED] * 3, logs
    built = [run_id for run_id, text in logs.items() if "Step " in text]
    assert len(built) == 1, logs  # one build for the sweep
    assert len({r.image_uri for r in found}) == 1 and found[0].image_uri.startswith(f"{destination}:")
    assert sum("image built for its sweep" in text for text in logs.values()) == 2
