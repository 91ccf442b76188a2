"""Completion as an event: a local run's end reaches the store without waiting for a status poll.

Every agent here polls once an hour (``poll_interval=3600``), so a state that arrives at all arrived
by an event: the process's pidfd, the run folder's ``exit.json`` seen through inotify, or a slot
freed by a run that ended. Nothing here measures time; the benchmarks do (``benchmarks/run.py
--only peers``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from launch_jupyter import api
from launch_jupyter._process import EndWatcher
from launch_jupyter.agent import Agent
from launch_jupyter.core.states import RunState
from launch_jupyter.runners._local import write_json
from tests.fixtures.common import EXAMPLES, REPO

pytestmark = pytest.mark.slow

QUICKSTART = EXAMPLES / "quickstart.ipynb"
AN_HOUR = 3600.0


def gated_notebook(folder: Path) -> Path:
    """A notebook that runs until the file named by its ``go`` parameter exists (no clock involved)."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('go = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "import pathlib, time\nwhile not pathlib.Path(go).exists():\n    time.sleep(0.05)\nprint('through')"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "gated.ipynb"
    nbformat.write(nb, path)
    return path


def wait_for(condition, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what or condition}")
        time.sleep(0.05)


def history(run) -> list[str]:
    return [f"{e.state}: {e.message}" for e in run.events()]


def test_a_run_whose_process_ended_is_succeeded_without_a_poll(tmp_path):
    api.create_queue("q", "local-process")
    go = tmp_path / "go"
    run = api.submit(gated_notebook(tmp_path), "q", parameters={"go": str(go)})
    agent = Agent(["q"], poll_interval=AN_HOUR).start()
    try:
        wait_for(lambda: run.refresh().state is RunState.RUNNING, what="the run to be running")
        go.touch()  # the notebook ends; the next status poll is an hour away
        assert run.wait(timeout=120) is RunState.SUCCEEDED, history(run)
    finally:
        agent.stop()
    assert Path(run.refresh().run.output_notebook).is_file()


def test_a_killed_process_is_failed_without_a_poll(tmp_path):
    api.create_queue("q", "local-process")
    run = api.submit(gated_notebook(tmp_path), "q", parameters={"go": str(tmp_path / "never")})
    agent = Agent(["q"], poll_interval=AN_HOUR).start()
    try:
        wait_for(lambda: run.refresh().state is RunState.RUNNING, what="the run to be running")
        pid = int(run.run.external_id.split(":")[1].split("@")[0])
        os.killpg(pid, signal.SIGKILL)  # no exit.json: only the process's end tells
        assert run.wait(timeout=120) is RunState.FAILED, history(run)
    finally:
        agent.stop()
    assert "without an exit status" in run.refresh().run.message


def test_a_restarted_agent_learns_of_an_adopted_process_end_through_its_status_file(tmp_path, sqlite_url):
    api.configure(store_url=sqlite_url)
    api.create_queue("q", "local-process")
    go = tmp_path / "go"
    run = api.submit(gated_notebook(tmp_path), "q", parameters={"go": str(go)})
    # The first agent is another process: the run's process is its child, not ours.
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "launch_jupyter.cli",
            "--store",
            sqlite_url,
            "agent",
            "-q",
            "q",
            "--poll-interval",
            "0.2",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: run.refresh().state is RunState.RUNNING, what="the first agent to run it")
    finally:
        first.kill()  # it dies holding the run; the run's process lives on in its own session
        first.wait()
    second = Agent(["q"], store_url=sqlite_url, poll_interval=AN_HOUR).start()
    try:
        wait_for(lambda: any("reattached" in e.message for e in run.events()), what="the second agent to adopt it")
        go.touch()
        assert run.wait(timeout=120) is RunState.SUCCEEDED, history(run)
    finally:
        second.stop()


def test_a_freed_slot_starts_the_next_queued_run_without_a_poll(tmp_path):
    api.create_queue("q", "local-process")
    go = tmp_path / "go"
    runs = [api.submit(gated_notebook(tmp_path), "q", parameters={"go": str(go)}) for _ in range(3)]
    agent = Agent(["q"], max_jobs=1, poll_interval=AN_HOUR).start()
    try:
        wait_for(lambda: runs[0].refresh().state is RunState.RUNNING, what="the first run to be running")
        assert [r.refresh().state for r in runs[1:]] == [RunState.QUEUED, RunState.QUEUED]
        go.touch()  # each ends as soon as it starts; the agent's claim clock is an hour
        for run in runs:
            assert run.wait(timeout=120) is RunState.SUCCEEDED, history(run)
    finally:
        agent.stop()


def test_the_watcher_sees_a_status_file_written_by_another_process(tmp_path):
    ends = EndWatcher()
    seen = threading.Event()
    ends.watch_file(tmp_path / "exit.json", seen.set)
    assert not seen.is_set()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from launch_jupyter.runners._local import write_json;"
            "from pathlib import Path; write_json(Path(sys.argv[1]), {'returncode': 0})",
            str(tmp_path / "exit.json"),
        ],
        cwd=REPO,
        check=True,
    )
    assert seen.wait(60), "exit.json was written but the watcher did not call back"
    assert ends.watching() == 0  # a fired watch is dropped


def test_a_status_file_already_there_fires_at_once(tmp_path):
    write_json(tmp_path / "exit.json", {"returncode": 0})
    seen = threading.Event()
    EndWatcher().watch_file(tmp_path / "exit.json", seen.set)
    assert seen.wait(60)


def test_an_idle_watcher_does_not_wake(tmp_path):
    ends = EndWatcher()
    ends.watch_file(tmp_path / "not-yet.json", lambda: None)
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    ended = threading.Event()
    ends.watch_process(process.pid, ended.set, popen=process)
    wait_for(lambda: ends.wakeups >= 1, what="the watcher to take the registrations")
    before = ends.wakeups
    time.sleep(2.0)  # a window: nothing happens in it, so nothing may wake the thread
    assert ends.wakeups == before
    process.stdin.close()
    assert ended.wait(60) and process.returncode == 0  # reaped by the watcher


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_idle_agent_does_not_wake(backend, request, sqlite_url):
    """With no work, every agent thread blocks: on a store notification, or on a lease-driven timer
    (a lease-third at the soonest; the default lease is 30 s), never on a short poll."""
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else sqlite_url
    api.create_queue("idle", "local-process", store_url=url)
    agent = Agent(["idle"], store_url=url).start()
    try:
        wait_for(lambda: agent.status()["activity"] == "idle", what="the agent's first turn")
        before = dict(agent.wakeups)
        # A window with nothing in it, longer than the 10 s claim/heartbeat clock an agent used to keep
        # and shorter than the lease-driven ones (30 s): no thread may wake.
        time.sleep(12.0)
        assert agent.wakeups == before
        run = api.submit(QUICKSTART, "idle", store_url=url)  # and work still wakes it at once
        assert run.wait(timeout=120) is RunState.SUCCEEDED, history(run)
    finally:
        agent.stop()
    assert agent.wakeups["listen"] >= 1 and agent.wakeups["loop"] > before["loop"]
