"""Vertex runs keep their partial notebook and show live cell progress.

Real agent, real SDK against the fake Vertex AI, whose worker runs each job's container command as a
local process (tests.fakes.vertex_worker): the real entrypoint, papermill and kernel; ``/gcs/`` is a
folder standing for Cloud Storage FUSE, put into the fake GCS when the container ends; stdout goes to
the fake Cloud Logging. A cancel is SIGTERM to the container, as on the service. The tests wait on
the run's own state and progress, never on a clock.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.states import RunState
from launch_jupyter.core.trust import run_folder
from launch_jupyter.execute import BANNER_TAG
from tests.fakes import gcs_server
from tests.fixtures.vertex import IMAGE, VERTEX_YAML, agent_config_text, make_job


def wait_for(condition, what: str, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def printed(cell) -> str:
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))


def notebook(folder: Path, name: str, sources: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = folder / name
    nbformat.write(nb, path)
    return path


@pytest.fixture
def vertex_worker(vertex_queue, tmp_path, monkeypatch):
    """The ``vq`` queue with jobs run by the fake's worker; cell progress read every 0.2 s.
    Yields (fake, gcs state)."""
    fake, config = vertex_queue
    text = agent_config_text(fake).replace(
        "credentials: anonymous\n", "credentials: anonymous\n  progress_interval: 0.2\n"
    )
    config.write_text(text)
    api.configure(config_path=str(config))
    server, gcs = gcs_server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_port}")
    data_dir = api.agent_config().data_dir
    # The image is the run's build context (our Dockerfile copies it in), here as the agent unpacked it.
    fake.attach_worker(gcs, lambda run_id: run_folder(data_dir, run_id) / "context", tmp_path / "gcs-fuse")
    yield fake, gcs
    server.shutdown()


def agent(queue: str = "vq") -> Agent:
    return Agent(config=api.agent_config(overrides={"queues": [queue]})).start()


def sleeper(folder: Path) -> Path:
    """Cells 1-3 print quickly, cell 4 sleeps for ten minutes, cell 5 would print."""
    return notebook(
        folder,
        "sleeper.ipynb",
        [f"print('cell {k} ran')" for k in (1, 2, 3)] + ["import time\ntime.sleep(600)", "print('cell 5 ran')"],
    )


def stored_notebook(gcs, uri: str) -> dict:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return json.loads(gcs.objects[(bucket, name)])


def events(handle) -> list[str]:
    return [f"{e.state} {e.message}" for e in handle.events()]


def test_a_cancelled_vertex_run_keeps_cells_1_to_3_and_a_banner(vertex_worker, tmp_path):
    fake, gcs = vertex_worker
    path = sleeper(tmp_path)
    worker = agent()
    try:
        handle = api.submit(path, "vq", image=IMAGE, save=False)
        wait_for(
            lambda: (api.run_progress(handle.id).get(handle.id) or {}).get("cell") == 4,
            "cell 4's start to reach the run's progress from Cloud Logging",
        )
        api.cancel(handle.id)
        assert handle.wait(timeout=120) is RunState.CANCELLED, events(handle)
    finally:
        worker.stop()
    states = [e.state for e in handle.events()]
    assert RunState.CANCELLING in states
    assert len(fake.calls("CancelCustomJob")) == 1
    uri = handle.output_notebook
    assert uri == f"gs://my-bucket/launch-runs/{handle.id}/output.ipynb", events(handle)
    banner, *cells = stored_notebook(gcs, uri)["cells"]
    assert banner["cell_type"] == "markdown" and BANNER_TAG in banner["metadata"]["tags"]
    text = "".join(banner["source"])
    assert "stopped in cell 4 of 5 (`import time`)" in text and "SIGTERM" in text, text
    assert [printed(c) for c in cells[:3]] == ["cell 1 ran\n", "cell 2 ran\n", "cell 3 ran\n"]
    assert cells[4]["execution_count"] is None and printed(cells[4]) == ""
    lines = [e["text_payload"] for e in fake.state.logs[handle.run.external_id.rsplit("/", 1)[-1]]]
    assert any(line.startswith("[launch] partial notebook: ") for line in lines), lines


def test_a_timed_out_vertex_run_fails_and_keeps_its_partial_notebook(vertex_worker, tmp_path):
    fake, gcs = vertex_worker
    api.create_queue("vt", "vertex", config=VERTEX_YAML + "run:\n  timeout: 20\n")
    worker = agent("vt")
    try:
        handle = api.submit(sleeper(tmp_path), "vt", image=IMAGE, save=False)
        assert handle.wait(timeout=300) is RunState.FAILED, events(handle)
    finally:
        worker.stop()
    assert "timed out after 20 s (run.timeout)" in handle.run.message
    assert fake.calls("CancelCustomJob") == []  # Vertex AI stopped it, not the agent
    banner, *cells = stored_notebook(gcs, handle.output_notebook)["cells"]
    assert BANNER_TAG in banner["metadata"]["tags"] and "stopped in cell 4 of 5" in "".join(banner["source"])
    assert [printed(c) for c in cells[:3]] == ["cell 1 ran\n", "cell 2 ran\n", "cell 3 ran\n"]


def test_a_failed_vertex_run_links_the_notebook_up_to_the_failing_cell(vertex_worker, tmp_path):
    _, gcs = vertex_worker
    path = notebook(tmp_path, "broken.ipynb", ["print('fine')", "1 / 0", "print('never')"])
    worker = agent()
    try:
        handle = api.submit(path, "vq", image=IMAGE, save=False)
        assert handle.wait(timeout=120) is RunState.FAILED, events(handle)
    finally:
        worker.stop()
    assert "exited with a non-zero status of 1" in handle.run.message
    uri = handle.output_notebook
    assert uri == f"gs://my-bucket/launch-runs/{handle.id}/output.ipynb", events(handle)
    cells = [c for c in stored_notebook(gcs, uri)["cells"] if c["cell_type"] == "code"]  # papermill adds a note
    assert printed(cells[0]) == "fine\n"
    assert any(o.get("ename") == "ZeroDivisionError" for o in cells[1]["outputs"])
    assert cells[2]["execution_count"] is None


def test_a_cancelled_job_that_never_started_has_no_output_notebook(vertex_queue, monkeypatch, tmp_path):
    """No notebook was written (the job was still pending): the run links none, rather than a
    path to nothing."""
    fake, _ = vertex_queue
    server, _gcs = gcs_server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_port}")
    fake.script(["PENDING"] * 10_000)
    worker = agent()
    try:
        handle = api.submit(notebook(tmp_path, "one.ipynb", ["1 + 1"]), "vq", image=IMAGE, save=False)
        wait_for(lambda: handle.refresh().state is RunState.PENDING, "the job to be pending")
        api.cancel(handle.id)
        assert handle.wait(timeout=60) is RunState.CANCELLED, events(handle)
    finally:
        worker.stop()
        server.shutdown()
    assert handle.output_notebook is None


def test_six_cells_show_1_to_6_in_order(vertex_worker, tmp_path):
    """Each cell waits for its gate file, so the test sees every cell's start before the next."""
    fake, _ = vertex_worker
    gates = tmp_path / "gates"
    gates.mkdir()
    cells = [
        f"import os, time\nwhile not os.path.exists({str(gates / str(k))!r}): time.sleep(0.05)" for k in range(1, 7)
    ]
    path = notebook(tmp_path, "six.ipynb", cells)
    worker = agent()
    seen = []
    try:
        handle = api.submit(path, "vq", image=IMAGE, save=False)
        for k in range(1, 7):
            progress = wait_for(
                lambda k=k: (p := api.run_progress(handle.id).get(handle.id)) and p["cell"] >= k and p,
                f"cell {k} in the run's progress",
            )
            seen.append((progress["cell"], progress["total"]))
            assert progress["source"] == "import os, time"
            (gates / str(k)).touch()
        assert handle.wait(timeout=120) is RunState.SUCCEEDED, events(handle)
    finally:
        worker.stop()
    assert seen == [(k, 6) for k in range(1, 7)]
    reads, lists = fake.calls("ListLogEntries"), fake.calls("ListCustomJobs")
    assert reads and len(reads) <= len(lists), "at most one Logging read per status cycle"


def test_progress_costs_one_logging_read_per_cycle_and_none_when_nothing_runs(fake_vertex, vertex_runner, tmp_path):
    runner = vertex_runner("grpc", progress_interval=0.0)
    fake_vertex.script(["PENDING"], step=3600)
    jobs = []
    for i in range(3):
        job = make_job(run_id=f"run-{i}")
        job.workdir = tmp_path / "runs" / job.run.id
        job.workdir.mkdir(parents=True)
        job.run.external_id = runner.submit(job)
        job.run.state = RunState.SUBMITTED
        jobs.append(job)
    runner.poll(jobs)
    assert fake_vertex.calls("ListLogEntries") == []  # pending: nothing runs, nothing read
    for job in jobs:
        fake_vertex.script(["RUNNING"], job=job.run.external_id)
    started = time.time() - 30
    for i, job in enumerate(jobs):
        lines = [f"[launch] cell {k}/4 started: step({k})" for k in range(1, i + 2)] + ["some output"]
        for n, line in enumerate(lines):
            fake_vertex.state.append_log(job.run.external_id, line, started + n)
    before = len(fake_vertex.calls("ListLogEntries"))
    runner.poll(jobs)  # the read runs on a thread of its own: a slow Logging never delays a status
    for job in jobs:
        wait_for(lambda job=job: (job.workdir / "progress.json").exists(), f"{job.run.id}'s progress file")
    assert len(fake_vertex.calls("ListLogEntries")) == before + 1  # one read for the whole batch
    for i, job in enumerate(jobs):
        data = json.loads((job.workdir / "progress.json").read_text())
        assert (data["cell"], data["total"], data["source"]) == (i + 1, 4, f"step({i + 1})")
        assert data["cell_started_at"] == pytest.approx(started + i, abs=0.01)  # the entry's own time
    query = fake_vertex.calls("ListLogEntries")[-1].request
    assert 'textPayload:"[launch] cell "' in query["filter"] and query["order_by"] == "timestamp desc"
    runner.poll(jobs)
    wait_for(lambda: len(fake_vertex.calls("ListLogEntries")) == before + 2, "the next cycle's read")


def test_progress_reads_are_throttled(fake_vertex, vertex_runner, tmp_path):
    runner = vertex_runner("rest", progress_interval=3600.0)
    fake_vertex.script(["RUNNING"])
    job = make_job()
    job.workdir = tmp_path / "runs" / job.run.id
    job.workdir.mkdir(parents=True)
    job.run.external_id = runner.submit(job)
    fake_vertex.state.append_log(job.run.external_id, "[launch] cell 1/2 started: a = 1", time.time())
    for _ in range(3):
        runner.poll([job])
    wait_for(lambda: (job.workdir / "progress.json").exists(), "the progress file")
    assert len(fake_vertex.calls("ListLogEntries")) == 1
    assert json.loads((job.workdir / "progress.json").read_text())["cell"] == 1


def test_a_hung_logging_read_never_holds_up_the_status(fake_vertex, vertex_runner, tmp_path):
    runner = vertex_runner("grpc", progress_interval=0.0)
    fake_vertex.script(["RUNNING"])
    fake_vertex.delay("ListLogEntries", None)  # hangs until the fake is released
    job = make_job()
    job.workdir = tmp_path / "runs" / job.run.id
    job.workdir.mkdir(parents=True)
    job.run.external_id = runner.submit(job)
    lists = len(fake_vertex.calls("ListCustomJobs"))
    for _ in range(3):
        assert runner.poll([job])[job.run.id].state is RunState.RUNNING
    wait_for(lambda: fake_vertex.calls("ListLogEntries"), "the Logging read to be sent")
    assert len(fake_vertex.calls("ListLogEntries")) == 1  # one read at a time, the others skipped
    assert len(fake_vertex.calls("ListCustomJobs")) == lists + 3
    fake_vertex.release()


def test_a_hung_logging_read_is_given_up_and_the_next_cycle_reads_again(fake_vertex, vertex_runner, tmp_path):
    runner = vertex_runner("grpc", progress_interval=0.0, rpc_timeout=1.0)
    fake_vertex.script(["RUNNING"])
    fake_vertex.delay("ListLogEntries", None)  # the first read hangs until the fake is released
    job = make_job()
    job.workdir = tmp_path / "runs" / job.run.id
    job.workdir.mkdir(parents=True)
    job.run.external_id = runner.submit(job)
    try:
        # Each poll starts a read unless one is under way: a second read means the first was given up.
        wait_for(
            lambda: runner.poll([job]) and len(fake_vertex.calls("ListLogEntries")) >= 2,
            "a second Logging read after the hung one",
            timeout=60.0,
        )
    finally:
        fake_vertex.release()


def test_a_job_cancelled_elsewhere_before_its_time_limit_stays_cancelled(fake_vertex, vertex_runner):
    """Vertex AI cancels a job at run.timeout (then the run failed: timed out); a job cancelled
    sooner, by someone in the console, was cancelled."""
    runner = vertex_runner("grpc")
    config = make_job().config
    config["run"] = {"timeout": 3600}
    fake_vertex.script(["RUNNING", "CANCELLED"], step=1)
    job = make_job(config)
    job.run.external_id = runner.submit(job)
    fake_vertex.advance(5)
    status = runner.poll([job])[job.run.id]
    assert status.state is RunState.CANCELLED


def test_more_running_jobs_than_one_query_may_name_are_read_in_turn(fake_vertex, vertex_runner, tmp_path, monkeypatch):
    from launch_jupyter.runners.vertex import _progress

    monkeypatch.setattr(_progress, "MAX_JOBS_PER_READ", 2)  # the 20,000-character query limit, scaled down
    runner = vertex_runner("grpc", progress_interval=0.0)
    fake_vertex.script(["RUNNING"])
    jobs = []
    for i in range(3):
        job = make_job(run_id=f"run-{i}")
        job.workdir = tmp_path / "runs" / job.run.id
        job.workdir.mkdir(parents=True)
        job.run.external_id = runner.submit(job)
        fake_vertex.state.append_log(job.run.external_id, "[launch] cell 1/1 started: x", time.time())
        jobs.append(job)
    for reads in (1, 2):
        runner.poll(jobs)
        wait_for(lambda reads=reads: len(fake_vertex.calls("ListLogEntries")) == reads, f"read {reads}")
    for job in jobs:  # every job had its turn within two reads
        wait_for(lambda job=job: (job.workdir / "progress.json").exists(), f"{job.run.id}'s progress")
    import re

    named = [
        re.search(r"job_id=\(([^)]*)\)", r.request["filter"])[1].split(" OR ")
        for r in fake_vertex.calls("ListLogEntries")
    ]
    assert [len(ids) for ids in named] == [2, 2]
    assert {i for ids in named for i in ids} == {f'"{j.run.external_id.rsplit("/", 1)[-1]}"' for j in jobs}
