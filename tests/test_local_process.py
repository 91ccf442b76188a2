"""The local-process runner: real subprocesses running real notebooks in their own process groups."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from launch_jupyter.core.config import data_home
from launch_jupyter.core.model import Job, Queue, Run
from launch_jupyter.core.states import RunState
from launch_jupyter.packaging import create_context, pack_context, unpack_context
from launch_jupyter.runners import Runner, get_runner
from launch_jupyter.runners.local_process import LocalProcessRunner
from tests.fixtures.common import EXAMPLES, REPO

pytestmark = pytest.mark.slow


def make_job(tmp_path: Path, run_id: str, notebook: str, parameters: dict, config: dict | None = None) -> Job:
    """A job as the agent hands it over: the context packed, then unpacked into the run's folder."""
    config = config or {}
    queue = Queue(entity="alice", name="local", resource="local-process", config=config, created_by="alice", id=1)
    run = Run(
        id=run_id,
        queue_id=1,
        queue_name="local",
        entity="alice",
        author="alice",
        resource="local-process",
        notebook=str(EXAMPLES / notebook),
        parameters=parameters,
        config=config,
    )
    ctx = create_context(EXAMPLES / notebook, tmp_path / "build" / run_id, wheel=False)
    workdir = data_home() / "runs" / run_id  # where the agent puts each run's own folder
    unpack_context(pack_context(ctx.directory), workdir / "context")
    return Job(
        run=run, queue=queue, config=config, workdir=workdir, context_dir=workdir / "context", notebook=ctx.notebook
    )


def wait_for(runner, job, states, timeout=90.0):
    deadline = time.monotonic() + timeout
    while True:
        status = runner.poll([job])[job.run.id]
        if status.state in states or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
                todo.append(int(stat.parent.name))
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    # Only zombies may be left (reaped by their parent later): they run nothing.
    members = [int(s.parent.name) for s in Path("/proc").glob("[0-9]*/stat") if _pgid(s) == pgid]
    return all(gone(pid) for pid in members)


def _pgid(stat: Path):
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError):
        return None


def test_registered_as_the_local_process_resource():
    runner = get_runner("local-process")
    assert isinstance(runner, LocalProcessRunner) and isinstance(runner, Runner)
    assert runner.resource == "local-process" and runner.needs_image is False


def test_a_notebook_succeeds_with_its_parameters_in_the_executed_copy(tmp_path):
    runner = LocalProcessRunner()
    job = make_job(tmp_path, "run-ok", "quickstart.ipynb", {"name": "Ada", "n": 4})
    external_id = runner.submit(job)
    assert external_id.startswith("local:") and (job.workdir / "process.json").is_file()
    status = wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED})
    assert status.state is RunState.SUCCEEDED, (job.workdir / "run.log").read_text()
    executed = nbformat.read(status.output_notebook, as_version=4)
    texts = [o.get("text", "") + json.dumps(o.get("data", {})) for c in executed.cells for o in c.get("outputs", [])]
    assert any("hello, Ada!" in t for t in texts)
    # The run's working folder is its cwd: relative files land in its own context folder.
    assert json.loads((job.context_dir / "result.json").read_text())["squares"] == [0, 1, 4, 9]
    log = "\n".join(runner.logs(job.run))
    assert re.search(r"\[launch\] cell 2/\d+ started", log) and "[launch] succeeded" in log  # any cell count


def test_a_raising_notebook_ends_failed_with_the_traceback_in_the_log(tmp_path):
    runner = LocalProcessRunner()
    job = make_job(tmp_path, "run-fail", "parameters.ipynb", {"seconds": 0, "fail": True})
    runner.submit(job)
    status = wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED})
    assert status.state is RunState.FAILED
    assert "RuntimeError: failing on purpose" in status.message
    log = (job.workdir / "run.log").read_text()
    assert "RuntimeError" in log and "----> 2" in log
    assert status.output_notebook and Path(status.output_notebook).is_file()


def test_two_runs_of_the_same_notebook_have_their_own_folders(tmp_path):
    runner = LocalProcessRunner()
    first = make_job(tmp_path, "run-a", "quickstart.ipynb", {"name": "A"})
    second = make_job(tmp_path, "run-b", "quickstart.ipynb", {"name": "B"})
    runner.submit(first), runner.submit(second)
    for job, name in ((first, "A"), (second, "B")):
        assert wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED}).state is RunState.SUCCEEDED
        assert json.loads((job.context_dir / "result.json").read_text())["greeting"] == f"hello, {name}!"


def test_cancel_of_a_sleeping_notebook_ends_cancelled_quickly_with_no_process_left(tmp_path):
    runner = LocalProcessRunner()
    job = make_job(tmp_path, "run-cancel", "parameters.ipynb", {"seconds": 120})
    runner.submit(job)
    info = json.loads((job.workdir / "process.json").read_text())
    deadline = time.monotonic() + 60
    while "sleeping 120 s" not in (job.workdir / "run.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runner.poll([job])["run-cancel"].state is RunState.RUNNING
    family = descendants(info["pid"])  # the kernel, in a session of its own
    assert family, "the kernel should be running under the entrypoint"
    started = time.monotonic()
    runner.cancel(job)
    status = wait_for(runner, job, {RunState.CANCELLED, RunState.FAILED, RunState.SUCCEEDED}, timeout=120)
    while not (group_gone(info["pgid"]) and all(gone(p) for p in family)) and time.monotonic() - started < 120:
        time.sleep(0.05)
    assert status.state is RunState.CANCELLED
    assert group_gone(info["pgid"]) and all(gone(p) for p in family), "cancel left a process of the run"
    # The entrypoint stopped its kernel itself and recorded how it ended.
    assert json.loads((job.workdir / "exit.json").read_text())["returncode"] == 143


def test_submit_is_idempotent(tmp_path):
    runner = LocalProcessRunner()
    job = make_job(tmp_path, "run-once", "parameters.ipynb", {"seconds": 2})
    first = runner.submit(job)
    again = LocalProcessRunner().submit(job)
    assert again == first
    pid = json.loads((job.workdir / "process.json").read_text())["pid"]
    mine = [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(job.workdir / "exit.json").encode() in _read(p)]
    assert [int(p.parent.name) for p in mine] == [pid]
    assert wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED}).state is RunState.SUCCEEDED
    assert runner.submit(job) == first  # finished: still the same run, not a second one


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_the_exit_status_survives_the_process_that_started_it(tmp_path):
    """Submit from another Python that then exits (a dead agent); a new runner still gets the end."""
    job = make_job(tmp_path, "run-orphan", "parameters.ipynb", {"seconds": 1, "fail": True})
    script = f"""
import sys; sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from launch_jupyter.core.config import data_home
from launch_jupyter.core.model import Job, Queue, Run
from launch_jupyter.runners.local_process import LocalProcessRunner
queue = Queue(entity="alice", name="local", resource="local-process", config={{}}, id=1)
run = Run(id="run-orphan", queue_id=1, queue_name="local", entity="alice", author="alice",
          resource="local-process", parameters={{"seconds": 1, "fail": True}})
job = Job(run=run, queue=queue, config={{}}, workdir=Path({str(job.workdir)!r}),
          context_dir=Path({str(job.context_dir)!r}), notebook={job.notebook!r})
print(LocalProcessRunner().submit(job))
"""
    agent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert agent.returncode == 0, agent.stderr
    runner = LocalProcessRunner()
    assert runner.submit(job) == agent.stdout.strip()
    status = wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED})
    assert status.state is RunState.FAILED and "failing on purpose after 1 s" in status.message
    # And again from a fresh runner object, long after the end.
    assert LocalProcessRunner().poll([job])["run-orphan"].state is RunState.FAILED


def test_a_run_over_its_timeout_is_stopped_and_failed(tmp_path):
    runner = LocalProcessRunner()
    job = make_job(tmp_path, "run-slow", "parameters.ipynb", {"seconds": 120}, config={"timeout": 1})
    runner.submit(job)
    status = wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}, timeout=60)
    assert status.state is RunState.FAILED and "timed out after 1 s" in status.message
    assert runner.poll([job])["run-slow"].state is RunState.FAILED


def test_logs_follow_until_the_process_ends(tmp_path):
    runner = LocalProcessRunner()
    job = make_job(tmp_path, "run-logs", "parameters.ipynb", {"seconds": 1})
    runner.submit(job)
    job.run.log_path = str(job.workdir / "run.log")
    lines = list(runner.logs(job.run, follow=True))
    assert "[launch] succeeded" in lines
    assert runner.poll([job])["run-logs"].state is RunState.SUCCEEDED


def test_pending_before_submit(tmp_path):
    job = make_job(tmp_path, "run-new", "quickstart.ipynb", {})
    assert LocalProcessRunner().poll([job])["run-new"].state is RunState.PENDING


def test_config_env_reaches_the_notebook_and_dry_run_masks_secrets(tmp_path):
    config = {"env": {"GREETING_NAME": "from-env", "API_TOKEN": "s3cret"}}
    job = make_job(tmp_path, "run-env", "quickstart.ipynb", {}, config=config)
    plan = LocalProcessRunner().dry_run(job)
    assert plan["command"][:3] == [sys.executable, "-m", "launch_jupyter.execute"]
    assert plan["env"]["LAUNCH_RUN_ID"] == "run-env" and plan["env"]["GREETING_NAME"] == "from-env"
    assert plan["env"]["API_TOKEN"] == "***" and "s3cret" not in json.dumps(plan)
    assert plan["cwd"] == str(job.context_dir)
    assert not (job.workdir / "process.json").exists()  # a dry run starts nothing


def test_default_config_is_valid_and_validation_names_the_key():
    runner = LocalProcessRunner()
    assert runner.validate(yaml.safe_load(runner.default_config())) == []
    problems = runner.validate({"timout": 5, "env": {"A": [1]}})
    assert [p.path for p in problems] == ["timout", "env.A"]
    assert 'did you mean "timeout"' in problems[0].message
    assert [p.path for p in runner.validate({"timeout": -1})] == ["timeout"]
    assert [p.path for p in runner.validate({"timeout": True})] == ["timeout"]
    assert [p.path for p in runner.validate({"env": "A=1"})] == ["env"]


def test_cancel_before_start_and_signals_of_a_finished_run_are_harmless(tmp_path):
    runner = LocalProcessRunner()
    job = make_job(tmp_path, "run-early", "parameters.ipynb", {"seconds": 0})
    runner.submit(job)
    assert wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED}).state is RunState.SUCCEEDED
    runner.cancel(job)  # too late: the run already succeeded, and stays so
    assert runner.poll([job])["run-early"].state is RunState.SUCCEEDED
    assert signal.SIGTERM  # (the group is gone: nothing was signalled)


def test_the_run_identity_is_the_same_on_every_local_target(tmp_path):
    from launch_jupyter.runners.local_container import LocalContainerRunner

    job = make_job(tmp_path, "run-id", "quickstart.ipynb", {})
    process = LocalProcessRunner().dry_run(job)["env"]
    job.image_uri = "127.0.0.1:5000/p/img:abc"
    container = LocalContainerRunner().dry_run(job)["environment"]
    for env in (process, container):
        assert env["LAUNCH_RUN_ID"] == "run-id"
        assert env["LAUNCH_QUEUE"] == "alice/local"  # entity/name on every target
        assert env["LAUNCH_ENTITY"] == "alice" and env["LAUNCH_AUTHOR"] == "alice"
        assert env["LAUNCH_OUTPUT"].endswith("output.ipynb")
    assert process["LAUNCH_WORKDIR"] == str(job.workdir)  # the run's own folder, where it has one


def test_the_runner_contract_says_which_runs_are_bound_to_their_host():
    from launch_jupyter.runners import as_runner
    from launch_jupyter.runners.local_container import LocalContainerRunner
    from launch_jupyter.runners.vertex import VertexRunner

    assert LocalProcessRunner.host_bound and LocalContainerRunner.host_bound
    vertex = as_runner(VertexRunner())
    assert isinstance(vertex, Runner) and not vertex.host_bound
    assert vertex.list_lag_seconds > 0  # a job just created may be missing from the list a while
    assert as_runner(LocalProcessRunner()).retries is False  # one attempt per call: the agent retries


def test_a_start_cut_short_by_a_killed_agent_is_recovered_not_failed(tmp_path):
    runner = LocalProcessRunner()
    job = make_job(tmp_path, "run-cut", "quickstart.ipynb", {})
    job.workdir.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (job.workdir / "submit.lock").write_text(str(dead.pid))  # it took the lock, then died
    first = runner.create(job)  # nothing was started: it starts the run now
    assert runner.find(job) == first
    status = wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED})
    assert status.state is RunState.SUCCEEDED, (job.workdir / "run.log").read_text()


def test_a_process_started_but_never_recorded_is_found_by_its_status_file(tmp_path):
    runner = LocalProcessRunner()
    job = make_job(tmp_path, "run-lost", "quickstart.ipynb", {})
    job.workdir.mkdir(parents=True, exist_ok=True)
    started = runner.create(job)
    pid = json.loads((job.workdir / "process.json").read_text())["pid"]
    (job.workdir / "process.json").unlink()  # as if the agent died right after starting it
    (job.workdir / "submit.lock").write_text("999999999")
    recovered = runner.create(job)
    assert recovered == started and f"local:{pid}@" in recovered
    status = wait_for(runner, job, {RunState.SUCCEEDED, RunState.FAILED})
    assert status.state is RunState.SUCCEEDED
