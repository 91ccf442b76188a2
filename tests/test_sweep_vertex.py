"""A sweep on Vertex AI (the real SDK against the fake JobService, REST): one image for the whole
sweep and one CreateCustomJob per point, each carrying its own parameters."""

from __future__ import annotations

import json

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.states import RunState
from launch_jupyter.record import MIME
from tests.fixtures.common import EXAMPLES
from tests.fixtures.vertex import IMAGE


def executed_notebook(accuracy: float) -> bytes:
    """What the entrypoint leaves in the bucket: an output carrying the recorded value."""
    output = {
        "output_type": "display_data",
        "metadata": {"launch_jupyter": {"record": "accuracy"}},
        "data": {MIME: {"name": "accuracy", "value": accuracy}, "text/plain": f"recorded accuracy = {accuracy}"},
    }
    cell = {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": "record(...)", "outputs": [output]}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def env_of(request: dict) -> dict:
    container = request["custom_job"]["job_spec"]["worker_pool_specs"][0]["container_spec"]
    return {e["name"]: e["value"] for e in container["env"]} | {"image_uri": container["image_uri"]}


def test_a_vertex_sweep_runs_one_image_and_creates_one_job_per_point(vertex_queue, gcs):
    fake, _ = vertex_queue
    sweep = api.sweep(
        EXAMPLES / "quickstart.ipynb", "vq", parameters={"n": "range(1, 4)", "name": "a,b"}, image=IMAGE, max_parallel=2
    )
    for run in sweep.runs():  # each job's executed notebook, as its container would write it
        gcs.objects[("my-bucket", f"launch-runs/{run.id}/output.ipynb")] = executed_notebook(run.parameters["n"] / 10)
    Agent(config=api.agent_config(overrides={"queues": ["vq"], "max_jobs": 4})).run_forever(until_idle=True)

    found = sweep.runs()
    assert [r.state for r in found] == [RunState.SUCCEEDED] * 6, [r.message for r in found]
    assert {r.image_uri for r in found} == {IMAGE}
    creates = [env_of(c.request) for c in fake.calls("CreateCustomJob")]
    assert len(creates) == 6
    assert {c["image_uri"] for c in creates} == {IMAGE}
    by_run = {c["LAUNCH_RUN_ID"]: json.loads(c["LAUNCH_PARAMETERS"]) for c in creates}
    assert by_run == {r.id: r.parameters for r in found}
    assert sorted(map(json.dumps, by_run.values())) == sorted(
        json.dumps({"n": n, "name": name}) for n in range(1, 4) for name in "ab"
    )
    assert {c["LAUNCH_OUTPUT"] for c in creates} == {f"/gcs/my-bucket/launch-runs/{r.id}/output.ipynb" for r in found}
    # The recorded values came back from the bucket with each run.
    table = api.get_sweep(sweep.id, sort="-accuracy")
    assert [(row["parameters"]["n"], row["values"]) for row in table["rows"]] == [
        (n, {"accuracy": n / 10}) for n in (3, 3, 2, 2, 1, 1)
    ]
