"""The agent checks what it reads from the store: contexts against the content hash, run ids and
log paths against its data folder; it serves only its user's own queues unless told otherwise."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.cli import main
from launch_jupyter.core.errors import LaunchError
from launch_jupyter.core.states import RunState
from launch_jupyter.packaging import create_context, pack_context
from tests.fixtures.common import EXAMPLES

QUICKSTART = EXAMPLES / "quickstart.ipynb"


def store_file(isolated_home: Path) -> Path:
    return isolated_home / "data" / "launch_jupyter" / "launch.db"


def sql(isolated_home: Path, statement: str, *args) -> None:
    """Raw SQL on the store file, as someone with write access to it (not through our code)."""
    with sqlite3.connect(store_file(isolated_home)) as conn:
        conn.execute(statement, args)


def run_until_idle(lines: list[str] | None = None, **kwargs) -> Agent:
    agent = Agent(poll_interval=0.2, log=(lines.append if lines is not None else None), **kwargs)
    agent.run_forever(until_idle=True)
    return agent


def test_a_context_rewritten_in_the_store_is_not_used(isolated_home, tmp_path):
    api.create_queue("laptop", "local-process")
    run = api.submit(QUICKSTART, "laptop", parameters={"name": "ok"})
    # Someone swaps the stored context for another notebook's (a valid tar.gz, another hash).
    other = tmp_path / "evil" / "quickstart.ipynb"
    other.parent.mkdir()
    shutil.copy(EXAMPLES / "parameters.ipynb", other)
    evil = create_context(other, tmp_path / "evil-ctx", wheel=False)
    sql(
        isolated_home,
        "UPDATE run_contexts SET data = ?, parts = NULL WHERE run_id = ?",
        pack_context(evil.directory),
        run.id,
    )
    run_until_idle(queues=["laptop"])
    run.refresh()
    assert run.state is RunState.FAILED
    assert "does not match the run's content hash" in run.events()[-1].message
    assert not (isolated_home / "data" / "launch_jupyter" / "runs" / run.id / "context").exists()


def test_an_untampered_context_passes_the_check_and_runs(isolated_home):
    api.create_queue("laptop", "local-process")
    run = api.submit(QUICKSTART, "laptop", parameters={"name": "ok"})
    run_until_idle(queues=["laptop"])
    run.refresh()
    assert run.state is RunState.SUCCEEDED, [e.message for e in run.events()]


def test_a_run_id_that_would_escape_the_data_folder_is_refused(isolated_home):
    api.create_queue("laptop", "local-process")
    run = api.submit(QUICKSTART, "laptop", parameters={"name": "ok"})
    bad = "../../../../escaped"
    for table, column in (("runs", "id"), ("run_contexts", "run_id"), ("run_events", "run_id")):
        sql(isolated_home, f"UPDATE {table} SET {column} = ? WHERE {column} = ?", bad, run.id)
    run_until_idle(queues=["laptop"])
    stored = api.get_run(bad)
    assert stored.state is RunState.FAILED
    assert "refusing run id" in api.events(bad)[-1].message
    assert not any(p.name == "escaped" for p in isolated_home.parent.rglob("escaped"))


def test_logs_read_only_inside_the_runs_folder(isolated_home, capsys):
    api.create_queue("laptop", "local-process")
    run = api.submit(QUICKSTART, "laptop", parameters={"name": "ok"})
    run_until_idle(queues=["laptop"])
    assert "".join(api.logs(run.id))  # its own log reads fine
    sql(isolated_home, "UPDATE runs SET log_path = ? WHERE id = ?", "/etc/passwd", run.id)
    with pytest.raises(LaunchError, match="refusing to read the log /etc/passwd"):
        list(api.logs(run.id))
    capsys.readouterr()
    assert main(["logs", run.id]) == 2
    out, err = capsys.readouterr()
    assert "root:" not in out and len(err.strip().splitlines()) == 1 and "refusing to read" in err


def test_without_q_the_agent_serves_only_its_users_own_queues_and_says_so(isolated_home, monkeypatch):
    monkeypatch.setenv("LAUNCH_JUPYTER_USER", "bob")
    api.create_queue("shared", "local-process", entity="team")
    bobs = api.submit(QUICKSTART, "team/shared", parameters={"name": "bob"})
    monkeypatch.setenv("LAUNCH_JUPYTER_USER", "alice")
    api.create_queue("mine", "local-process")
    alices = api.submit(QUICKSTART, "mine", parameters={"name": "alice"})
    lines: list[str] = []
    agent = run_until_idle(lines)
    assert agent.status()["queues"] == ["alice/mine"]
    assert any("no -q given: serving the queues alice created (alice/mine)" in line for line in lines)
    assert api.get_run(alices.id).state is RunState.SUCCEEDED
    assert api.get_run(bobs.id).state is RunState.QUEUED  # bob's notebook did not run as alice
    # Named with -q, the shared queue is served.
    run_until_idle(queues=["team/shared"])
    assert api.get_run(bobs.id).state is RunState.SUCCEEDED


def test_an_agent_whose_data_folder_is_not_writable_refuses_to_start(isolated_home, tmp_path, capsys):
    api.create_queue("laptop", "local-process")
    run = api.submit(QUICKSTART, "laptop")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = replace(api.agent_config(), data_dir=blocker / "data")
    with pytest.raises(LaunchError, match="data_dir .*a-file/data is not writable"):
        Agent(["laptop"], config=config).run_forever(until_idle=True)
    assert api.get_run(run.id).state is RunState.QUEUED  # nothing claimed, nothing failed
