"""Vertex runner: a job's Cloud Logging lines (resource ml_job) read from the fake Logging API,
over the same endpoint and transport as the queue's Vertex AI API."""

from __future__ import annotations

import threading

import pytest

from launch_jupyter.core.errors import RunError
from tests.fixtures.vertex import make_job


def test_logs_of_a_job(fake_vertex, vertex_runner, transport):
    runner = vertex_runner(transport)
    job = make_job()
    job.run.external_id = name = runner.submit(job)
    other = runner.submit(make_job(run_id="other"))
    fake_vertex.add_logs(name, ["Executing notebook train.ipynb", "cell 1/3", "done"])
    fake_vertex.add_logs(other, ["not mine"])
    assert list(runner.logs(job.run)) == ["Executing notebook train.ipynb", "cell 1/3", "done"]
    (call,) = fake_vertex.calls("ListLogEntries")
    assert call.transport == transport
    job_id = name.rsplit("/", 1)[-1]
    assert call.request["filter"].startswith(f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"')
    assert call.request["resource_names"] == [f"projects/{fake_vertex.project_number('proj')}"]


def test_follow_until_the_job_ends(fake_vertex, vertex_runner):
    runner = vertex_runner("rest")
    fake_vertex.script(["RUNNING", "RUNNING", "RUNNING", "SUCCEEDED"])
    job = make_job()
    job.run.external_id = name = runner.submit(job)
    fake_vertex.add_logs(name, ["first"])
    lines: list[str] = []
    seen_first = threading.Event()

    def follow():
        for line in runner.logs(job.run, follow=True):
            lines.append(line)
            seen_first.set()

    reader = threading.Thread(target=follow)
    reader.start()
    assert seen_first.wait(10)
    fake_vertex.add_logs(name, ["second", "third"])
    reader.join(20)
    assert not reader.is_alive()
    assert lines == ["first", "second", "third"]  # nothing twice, nothing lost
    assert len(fake_vertex.calls("GetCustomJob")) >= 1  # it asked whether the job had ended


def test_logs_of_a_run_without_a_job(vertex_runner):
    with pytest.raises(RunError, match="no Vertex AI job yet"):
        list(vertex_runner("grpc").logs(make_job().run))


@pytest.mark.parametrize("follow", [[], ["--follow"]])
def test_logs_without_google_credentials_is_one_line_saying_how_exit_1(
    vertex_queue, tmp_path, monkeypatch, capsys, follow
):
    """The run went to the fake with the agent's credentials; the reader has none (no ADC file, no
    GOOGLE_APPLICATION_CREDENTIALS, no metadata server): the environment's failure, not bad input."""
    from launch_jupyter import api
    from launch_jupyter.agent import Agent
    from launch_jupyter.cli import main
    from tests.fixtures.common import EXAMPLES
    from tests.fixtures.vertex import IMAGE

    fake, config = vertex_queue
    run = api.submit(EXAMPLES / "quickstart.ipynb", "vq", image=IMAGE, save=False)
    Agent(config=api.agent_config(overrides={"queues": ["vq"]})).run_forever(until_idle=True)
    assert api.open_store().get_run(run.id).external_id
    config.write_text(config.read_text().replace("credentials: anonymous", "credentials: default"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    capsys.readouterr()
    assert main(["-c", str(config), "logs", run.id, *follow]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "no Google credentials" in err and "GOOGLE_APPLICATION_CREDENTIALS" in err
    assert "gcloud auth application-default login" in err and "credentials: anonymous" in err
