"""Schedules: cron parsing and time zones, ticks claimed exactly once, missed ticks, pause/resume,
snapshot vs follow-file, the CLI and the magics. Firing is driven through ``fire_due`` (what every
agent loop turn calls) with a clock we set; one test runs real agents against the real clock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launch_jupyter import api, cli
from launch_jupyter.core.errors import ConfigError, LaunchError
from launch_jupyter.core.states import RunState
from launch_jupyter.schedules import fire_due, fire_times, plan_ticks
from launch_jupyter.store import open_store
from launch_jupyter.store._schedules import claim_due
from tests.fixtures.common import EXAMPLES, REPO

QUICKSTART = EXAMPLES / "quickstart.ipynb"
MINUTE = 60.0


@pytest.fixture
def notebook(tmp_path) -> Path:
    """A copy of the quickstart notebook in a folder of its own (tests change or delete it)."""
    folder = tmp_path / "project"
    folder.mkdir()
    path = folder / "report.ipynb"
    shutil.copy(QUICKSTART, path)
    return path


def queues(store_url):
    store = open_store(store_url)
    return store, store.list_queues()


def fired_ticks(name, store_url=None):
    return [t for t in api.schedule_ticks(name, limit=None, store_url=store_url) if t["state"] == "fired"]


# ---------------------------------------------------------------- cron, time zones, create


def test_create_prints_the_next_five_fire_times_in_the_schedules_time_zone(notebook, capsys):
    api.create_queue("laptop", "local-process")
    code = cli.main(
        [
            "schedule",
            "create",
            "nightly",
            str(notebook),
            "-q",
            "laptop",
            "--cron",
            "0 3 * * *",
            "--timezone",
            "Europe/Berlin",
            "-p",
            "name=cron",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    lines = [line.strip() for line in out.splitlines()]
    assert lines[0].startswith("created schedule alice/nightly on alice/laptop: '0 3 * * *' (Europe/Berlin)")
    times = lines[lines.index("next runs:") + 1 :]
    assert len(times) == 5
    assert all(t.endswith(("03:00 CET", "03:00 CEST")) for t in times), times
    days = [t.split()[0] for t in times]
    assert days == sorted(days) and len(set(days)) == 5
    s = api.get_schedule("nightly")
    assert s.parameters == {"name": "cron"} and s.content_hash and not s.follow_file


def test_fire_times_follow_daylight_saving_in_the_time_zone():
    # 2026-03-29 is the night Europe/Berlin goes from CET (+1) to CEST (+2).
    start = 1774652400.0  # 2026-03-28 00:00 CET
    times = fire_times("0 3 * * *", "Europe/Berlin", start, 3)
    assert [t.strftime("%m-%d %H:%M %Z") for t in times] == ["03-28 03:00 CET", "03-29 03:00 CEST", "03-30 03:00 CEST"]
    assert times[1].timestamp() - times[0].timestamp() == 23 * 3600


@pytest.mark.parametrize(
    "argv, complaint",
    [
        (["--cron", "0 3 * *"], "cron: '0 3 * *' has 4 field(s)"),
        (["--cron", "61 3 * * *"], "cron: '61 3 * * *' is not a valid cron expression"),
        (["--cron", "0 3 * * *", "--timezone", "Mars/Olympus"], "timezone: unknown time zone 'Mars/Olympus'"),
        (["--cron", "0 3 * * *", "-q", "nowhere"], 'queue "nowhere" does not exist'),
        (["--cron", "0 3 * * *", "-p", "nmae=1"], 'has no parameter "nmae"'),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(notebook, capsys, argv, complaint):
    api.create_queue("laptop", "local-process")
    args = ["schedule", "create", "bad", str(notebook)]
    if "-q" not in argv:
        args += ["-q", "laptop"]
    code = cli.main(args + argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and complaint in err, err
    assert api.list_schedules() == []


@pytest.mark.parametrize(
    "argv", [["--cron", "0 3 * * *", "--every-day"], ["--cron", "0 3 * * *", "--missed", "twice"], []]
)
def test_unknown_flags_and_missing_options_are_usage_errors(notebook, capsys, argv):
    api.create_queue("laptop", "local-process")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["schedule", "create", "bad", str(notebook), "-q", "laptop", *argv])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert api.list_schedules() == []


def test_a_second_schedule_of_the_same_name_is_refused(notebook):
    api.create_queue("laptop", "local-process")
    api.create_schedule("nightly", notebook, "laptop", cron="0 3 * * *", timezone="UTC")
    with pytest.raises(LaunchError, match='already have a schedule named "nightly"'):
        api.create_schedule("nightly", notebook, "laptop", cron="0 4 * * *", timezone="UTC")
    assert [s.cron for s in api.list_schedules()] == ["0 3 * * *"]


def test_api_refuses_bad_names_and_policies_before_storing(notebook):
    api.create_queue("laptop", "local-process")
    with pytest.raises(ConfigError, match="name"):
        api.create_schedule("no spaces", notebook, "laptop", cron="* * * * *")
    with pytest.raises(ConfigError, match="missed"):
        api.create_schedule("ok", notebook, "laptop", cron="* * * * *", missed="twice")
    assert api.list_schedules() == []


# ---------------------------------------------------------------- exactly once, with a clock we set


def test_each_tick_over_a_window_fires_once_whichever_agent_looks(store_url, notebook):
    api.create_queue("laptop", "local-process", store_url=store_url)
    s = api.create_schedule("minutely", notebook, "laptop", cron="* * * * *", timezone="UTC", store_url=store_url)
    store, served = queues(store_url)
    t0 = s.next_fire_at
    # Two agents turn their loops every 7 s for 30 minutes (the last look at t0 + 1802.5 s), each at
    # its own moments.
    for step in range(0, 30 * 60, 7):
        for agent, offset in (("agent-a", 0.0), ("agent-b", 3.5)):
            fire_due(store, served, agent, now=lambda step=step, offset=offset: t0 + step + offset)
    ticks = fired_ticks("minutely", store_url)
    expected = [t0 + i * MINUTE for i in range(31)]  # t0 … t0 + 30 min
    assert sorted(t["fire_time"] for t in ticks) == expected  # every tick, none twice
    assert {t["agent_id"] for t in ticks} <= {"agent-a", "agent-b"}
    runs = store.list_runs()
    assert sorted(r.id for r in runs) == sorted(t["run_id"] for t in ticks)
    assert {r.content_hash for r in runs} == {s.content_hash}  # the snapshot: one image for every tick
    assert all(r.state is RunState.QUEUED and r.name == "minutely" for r in runs)
    assert all(store.get_context(r.id) for r in runs)


AGENT_SCRIPT = """
import json, sys, time
from pathlib import Path
from launch_jupyter.schedules import fire_due
from launch_jupyter.store import open_store

url, agent, t0, go = sys.argv[1], sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])
store = open_store(url)
served = store.list_queues()
deadline = time.monotonic() + 120
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
fired = 0
for step in range(0, 60 * 60, 5):
    fired += fire_due(store, served, agent, now=lambda: t0 + step)
print(json.dumps({"fired": fired}))
"""


@pytest.mark.postgres
def test_two_agent_processes_on_postgres_fire_each_tick_once(pg_url, notebook, tmp_path):
    api.create_queue("team", "local-process", store_url=pg_url)
    s = api.create_schedule("hourly-report", notebook, "team", cron="* * * * *", timezone="UTC", store_url=pg_url)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", AGENT_SCRIPT, pg_url, name, repr(s.next_fire_at), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("host-a-agent", "host-b-agent")
    ]
    go.write_text("go")  # releases both at once
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    ticks = fired_ticks("hourly-report", pg_url)
    assert sorted(t["fire_time"] for t in ticks) == [s.next_fire_at + i * MINUTE for i in range(60)]
    fired_by_each = [json.loads(out)["fired"] for out, _ in outputs]
    assert sum(fired_by_each) == 60, fired_by_each  # together they queued 60 runs, no more
    assert len(open_store(pg_url).list_runs()) == 60


def test_a_tick_claimed_by_an_agent_that_died_is_queued_once_by_another(sqlite_url, notebook):
    api.create_queue("laptop", "local-process", store_url=sqlite_url)
    s = api.create_schedule("nightly", notebook, "laptop", cron="* * * * *", timezone="UTC", store_url=sqlite_url)
    store, served = queues(sqlite_url)
    t0 = s.next_fire_at
    # An agent claims the tick and dies before it queues the run.
    [(tick, _)] = claim_due(store, [q.id for q in served], t0 + 1, plan_ticks, "dead-agent", 120.0)
    assert store.list_runs() == []
    assert not fire_due(store, served, "agent-b", now=lambda: t0 + 30)  # still within its time: not taken over
    fire_due(store, served, "agent-b", now=lambda: t0 + MINUTE + 200)  # the next tick, and the stuck one
    ticks = {t["fire_time"]: t for t in api.schedule_ticks("nightly", limit=None, store_url=sqlite_url)}
    assert ticks[t0]["state"] == "fired" and ticks[t0]["run_id"] == tick["run_id"]
    assert store.get_run(tick["run_id"]).state is RunState.QUEUED
    assert len(store.list_runs()) == 2


# ---------------------------------------------------------------- missed ticks


@pytest.mark.parametrize(
    "missed, late, fires_latest, skipped",
    [
        ("once", False, True, False),  # agents back within a minute of the latest tick: it fires
        ("once", True, True, False),  # agents back long after: the latest missed one still fires, once
        ("skip", False, True, True),  # the latest is on time: it fires; the earlier ones are skipped
        ("skip", True, False, True),  # all stale: nothing fires, the schedule goes on
    ],
)
def test_ticks_missed_while_agents_were_stopped(sqlite_url, notebook, missed, late, fires_latest, skipped):
    api.create_queue("laptop", "local-process", store_url=sqlite_url)
    s = api.create_schedule(
        "m", notebook, "laptop", cron="*/5 * * * *", timezone="UTC", missed=missed, store_url=sqlite_url
    )
    store, served = queues(sqlite_url)
    t0 = s.next_fire_at
    fire_due(store, served, "agent-a", now=lambda: t0 + 1)  # fires t0, then every agent stops
    back = t0 + 30 * MINUTE + (4 * MINUTE if late else 10)  # six ticks later (t0+5 … t0+30 min)
    fire_due(store, served, "agent-b", now=lambda: back)
    ticks = api.schedule_ticks("m", limit=None, store_url=sqlite_url)
    fired = sorted(t["fire_time"] for t in ticks if t["state"] == "fired")
    latest = t0 + 30 * MINUTE
    assert fired == ([t0, latest] if fires_latest else [t0])
    skips = [t for t in ticks if t["state"] == "skipped"]
    assert bool(skips) is skipped
    if skips:
        assert "skipped (--missed skip)" in skips[0]["message"]
    if missed == "once":
        [late_tick] = [t for t in ticks if t["fire_time"] == latest]
        assert "fired the latest once" in late_tick["message"]
    # ... and then the schedule goes on at its next tick, once.
    after = api.get_schedule("m", store_url=sqlite_url).next_fire_at
    assert after == latest + 5 * MINUTE
    assert fire_due(store, served, "agent-b", now=lambda: after + 1)
    assert not fire_due(store, served, "agent-a", now=lambda: after + 2)


# ---------------------------------------------------------------- pause, resume, delete


def test_pause_stops_firing_and_resume_starts_from_the_next_tick(sqlite_url, notebook, capsys):
    api.create_queue("laptop", "local-process", store_url=sqlite_url)
    api.configure(store_url=sqlite_url)
    s = api.create_schedule("m", notebook, "laptop", cron="* * * * *", timezone="UTC")
    store, served = queues(sqlite_url)
    assert cli.main(["schedule", "pause", "m"]) == 0
    for minute in range(10):
        assert not fire_due(store, served, "agent", now=lambda minute=minute: s.next_fire_at + minute * MINUTE)
    assert api.schedule_ticks("m") == []
    assert cli.main(["schedule", "list"]) == 0
    assert "paused" in capsys.readouterr().out
    assert cli.main(["schedule", "resume", "m"]) == 0
    resumed = api.get_schedule("m")
    assert not resumed.paused and resumed.next_fire_at > time.time()
    assert fire_due(store, served, "agent", now=lambda: resumed.next_fire_at + 1)
    assert [t["fire_time"] for t in api.schedule_ticks("m")] == [resumed.next_fire_at]  # nothing owed
    assert cli.main(["schedule", "delete", "m"]) == 0
    assert api.list_schedules() == [] and len(store.list_runs()) == 1  # its runs stay


# ---------------------------------------------------------------- snapshot vs follow-file


def test_snapshot_ticks_ignore_later_edits_and_follow_file_packages_each_tick(sqlite_url, notebook):
    api.create_queue("laptop", "local-process", store_url=sqlite_url)
    snap = api.create_schedule("snap", notebook, "laptop", cron="* * * * *", timezone="UTC", store_url=sqlite_url)
    live = api.create_schedule(
        "live", notebook, "laptop", cron="* * * * *", timezone="UTC", follow_file=True, store_url=sqlite_url
    )
    assert live.content_hash is None
    store, served = queues(sqlite_url)
    t0 = snap.next_fire_at
    assert live.next_fire_at == t0
    fire_due(store, served, "agent", now=lambda: t0 + 1)
    nb = json.loads(notebook.read_text())
    nb["cells"].append(
        {"cell_type": "code", "metadata": {}, "source": "print('edited')", "outputs": [], "execution_count": None}
    )
    notebook.write_text(json.dumps(nb))
    fire_due(store, served, "agent", now=lambda: t0 + MINUTE + 1)

    def hashes(name):
        return [
            store.get_run(t["run_id"]).content_hash
            for t in sorted(fired_ticks(name, sqlite_url), key=lambda t: t["fire_time"])
        ]

    assert hashes("snap") == [snap.content_hash, snap.content_hash]
    first, second = hashes("live")
    assert first == snap.content_hash and second != first  # the edit went into the second tick's run

    notebook.unlink()  # a tick whose file is gone fails with the reason; the schedule goes on
    fire_due(store, served, "agent", now=lambda: t0 + 2 * MINUTE + 1)
    newest = api.schedule_ticks("live", limit=1, store_url=sqlite_url)[0]
    assert newest["state"] == "failed" and "is gone" in newest["message"] and newest["run_state"] is None
    assert api.get_schedule("live", store_url=sqlite_url).next_fire_at == t0 + 3 * MINUTE
    assert len(fired_ticks("snap", sqlite_url)) == 3  # the snapshot does not need the file


def test_a_tick_on_a_deleted_queue_fails_with_the_reason(sqlite_url, notebook):
    api.create_queue("laptop", "local-process", store_url=sqlite_url)
    s = api.create_schedule("m", notebook, "laptop", cron="* * * * *", timezone="UTC", store_url=sqlite_url)
    store, served = queues(sqlite_url)
    api.delete_queue("laptop", store_url=sqlite_url)
    assert not fire_due(store, served, "agent", now=lambda: s.next_fire_at + 1)
    [tick] = api.schedule_ticks("m", store_url=sqlite_url)
    assert tick["state"] == "failed" and "does not exist" in tick["message"]


# ---------------------------------------------------------------- show, magics, a real agent


def test_show_lists_the_schedules_runs_with_their_states(sqlite_url, notebook, capsys):
    api.create_queue("laptop", "local-process", store_url=sqlite_url)
    api.configure(store_url=sqlite_url)
    s = api.create_schedule("m", notebook, "laptop", cron="* * * * *", timezone="UTC")
    store, served = queues(sqlite_url)
    fire_due(store, served, "agent", now=lambda: s.next_fire_at + 1)
    [tick] = api.schedule_ticks("m")
    capsys.readouterr()
    assert cli.main(["schedule", "show", "m"]) == 0
    out = capsys.readouterr().out
    assert "cron:          * * * * *" in out and tick["run_id"] in out and "queued" in out
    assert cli.main(["schedule", "show", "m", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ticks"][0]["run_id"] == tick["run_id"] and len(shown["next_fire_times"]) == 5
    assert cli.main(["run", "show", tick["run_id"]]) == 0  # and the run names its schedule
    assert f"schedule:        alice/m ({tick['message']})" in capsys.readouterr().out


def test_magics_schedule_commands_call_the_same_api(sqlite_url, notebook, capsys):
    from IPython.core.error import UsageError

    from tests.test_magics import TestingShell, complete

    ip = TestingShell.instance()
    try:
        ip.run_line_magic("load_ext", "launch_jupyter")
        ip.run_cell(f"%config LaunchMagics.store = {sqlite_url!r}")
        api.create_queue("laptop", "local-process", store_url=sqlite_url)
        ip.run_cell(f"%launch schedule create weekly {notebook} -q laptop --cron '0 6 * * 1' --timezone UTC")
        assert "next runs:" in capsys.readouterr().out
        assert [s.name for s in api.list_schedules(store_url=sqlite_url)] == ["weekly"]
        ip.run_cell("%launch schedule pause weekly")
        assert api.get_schedule("weekly", store_url=sqlite_url).paused
        with pytest.raises(UsageError):
            ip.run_cell(f"%launch schedule create x {notebook} -q laptop")  # no --cron
        assert complete(ip, "%launch schedule ") == sorted(["create", "list", "show", "pause", "resume", "delete"])
        assert {"--cron", "--timezone", "--missed", "--follow-file"} <= set(
            complete(ip, "%launch schedule create a b --")
        )
    finally:
        TestingShell.clear_instance()


def test_a_real_agent_fires_a_minutely_schedule_and_runs_it(sqlite_url, notebook):
    """The real clock: the next minute boundary comes within 60 s; the agent fires it and runs it."""
    from launch_jupyter.agent import Agent

    api.create_queue("laptop", "local-process", store_url=sqlite_url)
    api.create_schedule(
        "m", notebook, "laptop", cron="* * * * *", timezone="UTC", parameters={"name": "tick"}, store_url=sqlite_url
    )
    agent = Agent(["laptop"], store_url=sqlite_url, poll_interval=0.2).start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = [t for t in fired_ticks("m", sqlite_url) if t["run_state"] in ("succeeded", "failed")]
            if done:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no tick ran within 300 s: {api.schedule_ticks('m', store_url=sqlite_url)}")
    finally:
        agent.stop()
    run = open_store(sqlite_url).get_run(done[0]["run_id"])
    assert run.state is RunState.SUCCEEDED, run.message
    assert "tick" in Path(run.output_notebook).read_text()
    assert run.name == "m" and run.parameters == {"name": "tick"}


def test_no_schedule_is_created_inside_a_run(notebook, monkeypatch):
    from launch_jupyter.core.inside import mark

    api.create_queue("laptop", "local-process")
    [(name, value)] = mark("r1", "alice/laptop").items()
    monkeypatch.setenv(name, value)
    with pytest.raises(LaunchError, match="no schedule is created inside a run"):
        api.create_schedule("self", notebook, "laptop", cron="* * * * *")
    monkeypatch.delenv(name)
    assert api.list_schedules() == []


@pytest.mark.postgres
def test_two_real_agents_on_postgres_fire_the_next_minute_once(pg_url, notebook, tmp_path):
    """Two `launch-jupyter agent` processes serve the queue; the next minute's tick fires once and runs."""
    api.create_queue("team", "local-process", store_url=pg_url)
    api.create_schedule("m", notebook, "team", cron="* * * * *", timezone="UTC", store_url=pg_url)
    logs = [tmp_path / f"agent-{i}.log" for i in (1, 2)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "LAUNCH_JUPYTER_POLL_INTERVAL": "0.5"}
    agents = [
        subprocess.Popen(
            [sys.executable, "-m", "launch_jupyter.cli", "--store", pg_url, "agent", "-q", "team", "-l", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for log in logs
    ]
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = [t for t in fired_ticks("m", pg_url) if t["run_state"] in ("succeeded", "failed")]
            if done:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no tick ran within 300 s: {api.schedule_ticks('m', store_url=pg_url)}")
    finally:
        for agent in agents:
            agent.terminate()
        for agent in agents:
            agent.wait(timeout=60)
    ticks = fired_ticks("m", pg_url)
    assert len({t["fire_time"] for t in ticks}) == len(ticks)
    runs = open_store(pg_url).list_runs()
    assert sorted(r.id for r in runs) == sorted(t["run_id"] for t in ticks)  # one run per tick, no other
    said = sum(log.read_text().count('schedule "alice/m": queued run') for log in logs)
    assert said == len(ticks)
    assert open_store(pg_url).get_run(done[0]["run_id"]).state is RunState.SUCCEEDED
