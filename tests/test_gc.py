"""Retention: ``launch-jupyter gc --older-than AGE`` removes what old finished runs leave behind and
nothing a queued or active run, a schedule or an unfinished sweep needs; a finished run's unpacked
context is tidied by the agent, keeping what the run wrote. SQLite and real PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.cli import main
from launch_jupyter.core.errors import ConfigError
from launch_jupyter.core.model import Queue, Run
from launch_jupyter.core.states import RunState
from launch_jupyter.gc import collect, parse_age
from launch_jupyter.packaging import create_context, pack_context
from launch_jupyter.store import open_store
from launch_jupyter.store._schema import blobs, context_parts, run_events, sweeps
from tests.fixtures.common import EXAMPLES

QUICKSTART = EXAMPLES / "quickstart.ipynb"
DAY = 86400.0


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def contexts(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("contexts")
    edited = root / "edited" / "quickstart.ipynb"
    edited.parent.mkdir()
    nb = json.loads(QUICKSTART.read_text())
    nb["cells"].append(
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": ["print('edited')"]}
    )
    edited.write_text(json.dumps(nb))
    return {
        "quickstart": pack_context(create_context(QUICKSTART, root / "a").directory),
        "edited": pack_context(create_context(edited, root / "b").directory),
    }


def make_queue(store) -> Queue:
    return store.create_queue(
        Queue(entity="alice", name="q", resource="local-process", config={}, config_text="", created_by="alice")
    )


def enqueue(store, queue: Queue, context: bytes | None) -> Run:
    return store.enqueue(
        Run(
            id="",
            queue_id=queue.id,
            queue_name=queue.name,
            entity="alice",
            author="alice",
            resource=queue.resource,
            config={},
        ),
        context,
    )


def finish(store, run: Run, days_ago: float, state: RunState = RunState.SUCCEEDED) -> None:
    store.transition(run.id, state, "done", finished_at=time.time() - days_ago * DAY)


def count(store, table, *where) -> int:
    with store._backend.read() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


def run_folder(data_dir: Path, run: Run) -> Path:
    folder = data_dir / "runs" / run.id
    (folder / "context").mkdir(parents=True)
    (folder / "context" / "quickstart.ipynb").write_text("{}")
    (folder / "run.log").write_text("a log line\n")
    return folder


@pytest.fixture
def history(store, contexts, tmp_path):
    """Old finished runs beside live ones sharing their blobs, each with a run folder."""
    queue = make_queue(store)
    runs = {
        "old": enqueue(store, queue, contexts["quickstart"]),  # shares every blob with "queued"
        "old_unique": enqueue(store, queue, b"an archive only this run has"),
        "queued": enqueue(store, queue, contexts["quickstart"]),
        "active": enqueue(store, queue, contexts["edited"]),
        "recent": enqueue(store, queue, contexts["edited"]),
    }
    finish(store, runs["old"], 40)
    finish(store, runs["old_unique"], 31, RunState.FAILED)
    store.transition(runs["active"].id, RunState.RUNNING, "running")
    finish(store, runs["recent"], 1)
    data_dir = tmp_path / "data"
    folders = {name: run_folder(data_dir, run) for name, run in runs.items()}
    for name in ("old", "queued"):
        store.update(runs[name].id, log_path=str(folders[name] / "run.log"))
    return runs, folders, data_dir


def test_gc_removes_old_finished_runs_leftovers_and_keeps_what_live_runs_need(store, contexts, history):
    runs, folders, data_dir = history
    blobs_before = count(store, blobs)
    report = collect(store, "30d", data_dir)
    assert (report.runs, report.events, report.contexts, report.blobs) == (2, 4, 2, 1)
    assert (report.folders, report.logs) == (2, 1) and report.store_bytes > 0 and report.file_bytes > 0
    assert count(store, blobs) == blobs_before - 1  # only the blob no live context names
    for name in ("old", "old_unique"):
        assert store.get_context(runs[name].id) is None
        assert store.events(runs[name].id) == []
        assert not folders[name].exists()
        assert store.get_run(runs[name].id).state.is_terminal  # the run itself stays listed
    assert store.get_context(runs["queued"].id) == contexts["quickstart"]  # the shared wheel and notebook
    assert store.get_context(runs["active"].id) == contexts["edited"]
    assert store.get_context(runs["recent"].id) == contexts["edited"]
    for name in ("queued", "active", "recent"):
        assert store.events(runs[name].id) and folders[name].exists()
    again = collect(store, "30d", data_dir)
    assert (again.events, again.contexts, again.blobs, again.folders) == (0, 0, 0, 0)


def test_a_dry_run_counts_exactly_what_gc_then_removes_and_changes_nothing(store, history):
    runs, folders, data_dir = history
    state = (count(store, blobs), count(store, run_events), count(store, context_parts))
    dry = collect(store, "30d", data_dir, dry_run=True)
    assert (count(store, blobs), count(store, run_events), count(store, context_parts)) == state
    assert all(folder.exists() for folder in folders.values())
    real = collect(store, "30d", data_dir)
    assert dataclasses.replace(dry, dry_run=False) == real
    assert dry.runs == 2 and dry.blobs == 1


def test_blobs_go_when_the_last_context_naming_them_goes(store, contexts, history):
    runs, _, data_dir = history
    for name in ("queued", "active"):
        store.transition(runs[name].id, RunState.CANCELLED, "cancelled")
    for name in ("queued", "active", "recent"):
        store.update(runs[name].id, finished_at=time.time() - 60 * DAY)
    collect(store, "30d", data_dir)
    assert count(store, blobs) == 0 and count(store, context_parts) == 0


def test_a_log_path_outside_the_runs_folder_is_never_removed(store, contexts, tmp_path):
    queue = make_queue(store)
    run = enqueue(store, queue, contexts["quickstart"])
    outside = tmp_path / "precious.txt"
    outside.write_text("not gc's")
    store.update(run.id, log_path=str(outside))  # as an UPDATE in SQL could set it
    finish(store, run, 40)
    report = collect(store, "30d", tmp_path / "data")
    assert outside.read_text() == "not gc's" and report.logs == 0


def test_a_sweeps_context_stays_until_all_its_runs_are_finished_and_old(store, contexts, tmp_path):
    queue = make_queue(store)
    points = [
        Run(
            id="",
            queue_id=queue.id,
            queue_name=queue.name,
            entity="alice",
            author="alice",
            resource=queue.resource,
            config={},
            parameters={"x": i},
        )
        for i in range(2)
    ]
    sweep, (done, waiting) = store.enqueue_sweep(
        {
            "queue_id": queue.id,
            "queue_name": queue.name,
            "entity": "alice",
            "author": "alice",
            "method": "grid",
            "space": {"x": [0, 1]},
        },
        points,
        contexts["quickstart"],
    )
    finish(store, done, 40)
    report = collect(store, "30d", tmp_path)
    assert report.contexts == 0 and report.blobs == 0
    assert store.get_context(waiting.id) == contexts["quickstart"]  # the waiting point still runs
    finish(store, waiting, 1)
    assert collect(store, "30d", tmp_path).contexts == 0  # its last run ended a day ago
    finish(store, waiting, 0)
    assert count(store, sweeps) == 1
    report = collect(store, "0s", tmp_path)
    assert report.contexts == 1 and report.blobs > 0 and count(store, blobs) == 0


def test_a_schedule_still_fires_its_snapshot_after_gc_removed_its_fired_runs(isolated_home):
    from launch_jupyter.schedules import fire_due

    api.create_queue("laptop", "local-process")
    schedule = api.create_schedule("nightly", QUICKSTART, "laptop", cron="* * * * *")
    store = api.open_store()
    queue = api.get_queue("laptop")
    from launch_jupyter.store._schedules import snapshot

    snap = snapshot(store, schedule.id)
    assert snap is not None
    first_tick = time.time() + 120
    assert fire_due(store, [queue], "agent-x", now=lambda: first_tick)
    (fired,) = store.list_runs()
    assert store.get_context(fired.id) == snap
    finish(store, fired, 40)
    report = api.gc("30d")
    assert report.contexts == 1 and report.blobs > 0
    assert snapshot(store, schedule.id) == snap  # the schedule's own copy is untouched
    assert fire_due(store, [queue], "agent-x", now=lambda: first_tick + 120)
    second = next(r for r in store.list_runs() if r.id != fired.id)
    assert store.get_context(second.id) == snap


@pytest.mark.parametrize(
    "argv",
    [
        ["gc", "--older-than", "30x"],
        ["gc", "--older-than=-1d"],
        ["gc", "--older-than", "-1d"],
        ["gc", "--older-than", "d"],
        ["gc"],
    ],
)
def test_a_bad_age_is_one_line_naming_the_flag_exit_2_and_nothing_removed(isolated_home, capsys, argv):
    api.create_queue("laptop", "local-process")
    run = api.submit(QUICKSTART, "laptop", save=False)
    api.open_store().transition(run.id, RunState.FAILED, "x", finished_at=time.time() - 90 * DAY)
    capsys.readouterr()
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--older-than" in err, err
    assert api.open_store().get_context(run.id) is not None and api.events(run.id)


def test_gc_on_the_command_line_says_what_it_removed(isolated_home, capsys):
    api.create_queue("laptop", "local-process")
    run = api.submit(QUICKSTART, "laptop", save=False)
    api.open_store().transition(run.id, RunState.SUCCEEDED, "x", finished_at=time.time() - 90 * DAY)
    assert main(["gc", "--older-than", "30d", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 finished runs older than 30d: would remove 2 events, 1 build contexts" in out, out
    assert api.open_store().get_context(run.id) is not None
    assert main(["gc", "--older-than", "4w"]) == 0
    out = capsys.readouterr().out
    assert "removed 2 events, 1 build contexts" in out and "unreferenced blobs" in out, out
    assert api.open_store().get_context(run.id) is None


def test_parse_age():
    assert parse_age("30d") == 30 * DAY and parse_age("12h") == 12 * 3600 and parse_age("1.5w") == 1.5 * 7 * DAY
    assert parse_age("0s") == 0
    for bad in ("30", "30x", "-1d", "1e3d", "", "30 days"):
        with pytest.raises(ConfigError, match="--older-than"):
            parse_age(bad)


def test_the_agent_tidies_a_finished_runs_context_and_keeps_what_the_run_wrote(isolated_home, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data.csv").write_text("x\n1\n")
    notebook = folder / "writes.ipynb"
    notebook.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "cells": [
                    {
                        "cell_type": "code",
                        "metadata": {},
                        "execution_count": None,
                        "outputs": [],
                        "id": "c1",
                        "source": ["open('result.txt', 'w').write('42')\n", "open('data.csv', 'a').write('2\\n')"],
                    }
                ],
            }
        )
    )
    api.create_queue("laptop", "local-process")
    run = api.submit(notebook, "laptop", include=["data.csv"], save=False)
    Agent(queues=["laptop"], poll_interval=0.2).run_forever(until_idle=True)
    run.refresh()
    assert run.state is RunState.SUCCEEDED, [e.message for e in run.events()]
    context = isolated_home / "data" / "launch_jupyter" / "runs" / run.id / "context"
    left = sorted(p.relative_to(context).as_posix() for p in context.rglob("*"))
    assert left == ["data.csv", "result.txt"]  # the file it wrote, the file it changed; nothing else
    assert (context / "result.txt").read_text() == "42"
    stored = api.open_store().get_run(run.id)
    assert Path(stored.output_notebook).is_file() and Path(stored.log_path).is_file()


def exit_code(argv: list[str]) -> int:
    """The CLI's exit status, whether argparse exits or ``main`` returns it."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code)


@pytest.mark.postgres
def test_gc_waits_for_an_enqueue_that_reuses_blobs_it_would_delete(pg_url, contexts, tmp_path):
    """An enqueue of an archive already stored only names it; gc, meanwhile, finds that archive's
    one run old. Without the blob lock gc deletes the parts and blobs under the enqueue."""
    import threading

    import psycopg

    from launch_jupyter.store._blobs import put_context
    from tests.fixtures.pg import libpq_dsn

    store = open_store(pg_url)
    try:
        old = enqueue(store, make_queue(store), contexts["quickstart"])
        finish(store, old, 40)
        reports: list = []
        with store._backend.write() as conn:
            put_context(conn, "next-run", contexts["quickstart"])  # uncommitted: invisible to gc
            gc = threading.Thread(target=lambda: reports.append(collect(store, "30d", tmp_path)))
            gc.start()
            with psycopg.connect(libpq_dsn(pg_url), autocommit=True) as watcher:
                deadline = time.monotonic() + 60
                # Until gc waits for the enqueue's lock, or (without one) has finished before it.
                while (
                    gc.is_alive()
                    and not watcher.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    ).fetchone()[0]
                ):
                    assert time.monotonic() < deadline, "gc neither waited nor finished"
                    time.sleep(0.05)
        gc.join(60)
        assert not gc.is_alive() and reports[0].contexts == 1 and reports[0].blobs == 0
        assert store.get_context("next-run") == contexts["quickstart"]
    finally:
        store.close()
