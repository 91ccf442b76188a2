"""The local-container resource: the built image runs on a real Docker engine and its executed
notebook comes back; cancel stops the container."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from launch_jupyter.core.config import AgentConfig
from launch_jupyter.core.errors import DispatchError, LaunchError
from launch_jupyter.core.model import Job, Queue, Run
from launch_jupyter.core.states import RunState
from launch_jupyter.runners import get_runner
from launch_jupyter.runners.local_container import LABEL, LocalContainerRunner
from tests.fixtures.docker import write_notebook

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def make_job(tmp_path: Path, image: str | None, notebook: str, parameters: dict | None = None, **config) -> Job:
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    queue = Queue(entity="alice", name="boxes", resource="local-container", config=dict(config), created_by="alice")
    run = Run(
        id=run_id, queue_id=1, queue_name="boxes", entity="alice", author="alice",
        resource="local-container", parameters=parameters or {}, notebook=notebook,
    )  # fmt: skip
    return Job(
        run=run,
        queue=queue,
        config=dict(config),
        workdir=tmp_path / "runs" / run_id,
        notebook=notebook,
        image_uri=image,
    )


def wait_for(runner: LocalContainerRunner, job: Job, states: set[RunState], timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = runner.poll([job])[job.run.id]
        if status.state in states:
            return status
        time.sleep(0.3)
    raise AssertionError(f"run {job.run.id} did not reach {states} in {timeout} s (last: {status})")


@pytest.fixture
def runner(docker_host, tmp_path) -> LocalContainerRunner:
    found = get_runner("local-container", AgentConfig(data_dir=tmp_path))
    assert isinstance(found, LocalContainerRunner)
    return found


@pytest.fixture
def quickstart_image(docker_builder, make_context, tmp_path) -> str:
    context = make_context(write_notebook(tmp_path / "nb"))
    return docker_builder.build(context, None, "linux/amd64", lambda line: None)


def test_quickstart_runs_in_its_image_and_the_executed_notebook_comes_back(
    runner, quickstart_image, tmp_path, docker_engine
):
    job = make_job(tmp_path, quickstart_image, "quickstart.ipynb", {"name": "Ada", "n": 5})
    container_id = runner.submit(job)
    assert runner.submit(job) == container_id  # idempotent: the label finds the same container
    status = wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED})
    assert status.state is RunState.SUCCEEDED, status.message
    output = Path(status.output_notebook)
    assert output == job.workdir / "outputs" / "output.ipynb"
    nb = nbformat.read(output, as_version=4)
    texts = [out.get("text", "") for cell in nb.cells for out in cell.get("outputs", [])]
    assert any("hello, Ada!" in text for text in texts), texts
    assert any("squares: [0, 1, 4, 9, 16]" in text for text in texts), texts
    log = "\n".join(runner.logs(job.run))
    assert "[launch]" in log and "hello, Ada!" in log
    assert docker_engine.client().containers.list(all=True, filters={"label": f"{LABEL}={job.run.id}"}) == []
    assert runner.poll([job])[job.run.id].state is RunState.SUCCEEDED  # the ending was kept
    assert runner.submit(job) == container_id  # a finished run is not started again
    assert docker_engine.client().containers.list(all=True, filters={"label": f"{LABEL}={job.run.id}"}) == []


def test_a_failing_cell_fails_the_run_with_its_error(runner, docker_builder, make_context, tmp_path):
    folder = tmp_path / "nb"
    notebook = write_notebook(folder)
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("raise ValueError('the data is wrong')"))
    nbformat.write(nb, notebook)
    image = docker_builder.build(make_context(notebook), None, "linux/amd64", lambda line: None)
    job = make_job(tmp_path, image, "quickstart.ipynb")
    runner.submit(job)
    status = wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED})
    assert status.state is RunState.FAILED
    assert "the data is wrong" in status.message
    assert status.output_notebook  # the partly executed notebook still comes back


def test_cancel_stops_the_container(runner, docker_builder, make_context, tmp_path, docker_engine):
    folder = tmp_path / "slow"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import time\nprint('sleeping', flush=True)\ntime.sleep(600)")]
    nbformat.write(nb, folder / "slow.ipynb")
    image = docker_builder.build(make_context(folder / "slow.ipynb"), None, "linux/amd64", lambda line: None)
    job = make_job(tmp_path, image, "slow.ipynb")
    runner.submit(job)
    wait_for(runner, job, {RunState.RUNNING})
    deadline = time.monotonic() + 60
    while "cell 1/1 started" not in "\n".join(runner.logs(job.run)) and time.monotonic() < deadline:
        time.sleep(0.3)
    runner.cancel(job)
    status = wait_for(runner, job, {RunState.CANCELLED, RunState.SUCCEEDED, RunState.FAILED}, timeout=120)
    assert status.state is RunState.CANCELLED
    assert docker_engine.client().containers.list(all=True, filters={"label": f"{LABEL}={job.run.id}"}) == []


def test_dry_run_shows_the_container_with_secrets_masked(tmp_path):
    runner = LocalContainerRunner()
    job = make_job(
        tmp_path,
        "127.0.0.1:5000/p/img:abc",
        "quickstart.ipynb",
        {"n": 2},
        env={"API_TOKEN": "s3cret", "MODE": "fast"},
        network="none",
    )
    request = runner.dry_run(job)
    assert request["image"] == "127.0.0.1:5000/p/img:abc"
    assert request["command"][:4] == ["--notebook", "quickstart.ipynb", "--output", "/outputs/output.ipynb"]
    assert request["environment"]["API_TOKEN"] == "***"
    assert request["environment"]["MODE"] == "fast"
    assert json.loads(request["environment"]["LAUNCH_PARAMETERS"]) == {"n": 2}
    assert request["environment"]["LAUNCH_RUN_ID"] == job.run.id
    assert request["labels"][LABEL] == job.run.id
    assert request["network_mode"] == "none"
    assert request["volumes"][str(job.workdir / "outputs")] == {"bind": "/outputs", "mode": "rw"}
    assert "s3cret" not in json.dumps(request)
    assert not job.workdir.exists()  # a dry run changes nothing


def test_a_run_without_an_image_is_refused(tmp_path):
    with pytest.raises(DispatchError, match="has no image to run"):
        LocalContainerRunner().dry_run(make_job(tmp_path, None, "quickstart.ipynb"))


def test_validate_names_the_wrong_keys():
    runner = LocalContainerRunner()
    assert runner.validate({"network": "none", "env": {"A": 1}, "timeout": 30}) == []
    problems = {p.path: p.message for p in runner.validate({"netwrok": "host", "env": [1], "timeout": -1})}
    assert 'did you mean "network"' in problems["netwrok"]
    assert "mapping" in problems["env"]
    assert "positive" in problems["timeout"]
    import yaml

    assert runner.validate(yaml.safe_load(runner.default_config())) == []


def test_preflight_names_docker_host_when_no_engine_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    queue = Queue(entity="alice", name="boxes", resource="local-container", config={})
    with pytest.raises(LaunchError, match="DOCKER_HOST|none.sock"):
        LocalContainerRunner().preflight(queue, None)


def test_a_run_over_its_timeout_is_stopped_and_failed(runner, docker_builder, make_context, tmp_path):
    folder = tmp_path / "slow"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(600)")]
    nbformat.write(nb, folder / "slow.ipynb")
    image = docker_builder.build(make_context(folder / "slow.ipynb"), None, "linux/amd64", lambda line: None)
    job = make_job(tmp_path, image, "slow.ipynb", timeout=2)
    runner.submit(job)
    status = wait_for(runner, job, {RunState.CANCELLED, RunState.SUCCEEDED, RunState.FAILED}, timeout=60)
    assert status.state is RunState.FAILED
    assert status.message == "timed out after 2 s"


def test_the_container_end_is_told_by_the_engine_without_a_poll(runner, quickstart_image, tmp_path):
    import dataclasses
    import threading

    job = make_job(tmp_path, quickstart_image, "quickstart.ipynb", {"name": "Ada"})
    job.run = dataclasses.replace(job.run, external_id=runner.submit(job))
    ended = threading.Event()
    runner.watch(job, ended.set)  # a thread blocked in the engine's wait call
    assert ended.wait(120), "the container ended but the engine's wait did not say so"
    assert runner.poll([job])[job.run.id].state is RunState.SUCCEEDED  # the first status read after it
