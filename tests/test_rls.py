"""Row-level security on a shared PostgreSQL store, with three real roles on the real server.

Each scenario of the red team is tried through raw SQL as bob (not through our client), so a
refusal is the database's. A fresh database of the test's own, roles with a random suffix,
all dropped afterwards."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy.engine import make_url

from launch_jupyter.store import open_store
from launch_jupyter.store._team import add_person, init_team
from tests.fixtures.pg import libpq_dsn


@pytest.fixture
def team_db(pg_server):
    """(url maker, names): a database lj_rls_<hex> with the team SQL and roles alice, bob, admin."""
    import psycopg

    suffix = uuid.uuid4().hex[:8]
    db = f"lj_rls_{suffix}"
    names = {who: f"{who}_{suffix}" for who in ("alice", "bob", "admin")}
    group = f"lj_users_{suffix}"
    server = libpq_dsn(pg_server)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
        for role in names.values():
            conn.execute(f"CREATE ROLE {role} LOGIN")
    base = make_url(pg_server).set(database=db)

    def url(role: str = "postgres") -> str:
        return base.set(username=role).render_as_string(hide_password=False)

    try:
        init_team(url(), group=group)
        for role in names.values():
            add_person(url(), role, group=group)
        names["group"] = group
        yield url, names
    finally:
        from launch_jupyter.store import close_all

        close_all()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            for role in {*names.values(), group}:
                conn.execute(f"DROP ROLE IF EXISTS {role}")


def connect(url: str):
    import psycopg

    return psycopg.connect(libpq_dsn(url), autocommit=True)


def add_queue(conn, entity: str, name: str, config: dict | None = None, created_by: str = "") -> int:
    now = time.time()
    row = conn.execute(
        "INSERT INTO queues (entity, name, resource, config, config_text, prioritization, template_vars,"
        " created_by, created_at, updated_at) VALUES (%s, %s, 'local-process', %s, '', false, '[]', %s, %s, %s)"
        " RETURNING id",
        (entity, name, json.dumps(config or {}), created_by, now, now),
    ).fetchone()
    return row[0]


def add_run(conn, queue_id: int, entity: str, queue: str, author: str = "") -> str:
    run_id = uuid.uuid4().hex[:12]
    now = time.time()
    conn.execute(
        "INSERT INTO runs (id, queue_id, queue_name, entity, author, resource, state, priority, name, notebook,"
        " parameters, template_values, resource_args, config, cancel_requested, message, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, 'local-process', 'queued', 2, 'n', 'n.ipynb', '{}', '{}', '{}',"
        ' \'{"env": {"SECRET": "alice"}}\', false, \'\', %s, %s)',
        (run_id, queue_id, queue, entity, author, now, now),
    )
    conn.execute(
        "INSERT INTO run_events (run_id, time, state, message) VALUES (%s, %s, 'queued', 'queued')", (run_id, now)
    )
    conn.execute("INSERT INTO run_contexts (run_id, data) VALUES (%s, %s)", (run_id, b"alice's context"))
    return run_id


def refused(conn, sql: str, params=()) -> bool:
    """True when the database refuses the statement (an RLS violation or permission error)."""
    import psycopg

    try:
        conn.execute(sql, params)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


def test_the_database_refuses_every_red_team_scenario(team_db):
    url, who = team_db
    alice, bob, admin = who["alice"], who["bob"], who["admin"]
    with connect(url(alice)) as a, connect(url(bob)) as b, connect(url(admin)) as t:
        # Set-up by each person as themselves: alice's private queue and run; a team run by admin.
        private = add_queue(a, alice, "gpu", {"env": {"MODE": "fast"}})
        alices_run = add_run(a, private, alice, "gpu")
        t.execute("INSERT INTO entities (name, kind) VALUES ('ml_team', 'team')")
        t.execute(
            "INSERT INTO entity_members (entity, member, role) VALUES ('ml_team', %s, 'member'), "
            "('ml_team', %s, 'member')",
            (alice, bob),
        )
        team_q = add_queue(t, "ml_team", "vertex", {"image": "good"})
        add_run(a, team_q, "ml_team", "vertex")  # alice submits to the team queue

        scenarios = {
            "bob lists alice's private queue": b.execute(
                "SELECT count(*) FROM queues WHERE entity = %s", (alice,)
            ).fetchone()[0]
            == 0,
            "bob lists alice's private runs": b.execute(
                "SELECT count(*) FROM runs WHERE id = %s", (alices_run,)
            ).fetchone()[0]
            == 0,
            "bob reads the resolved config of alice's run": b.execute(
                "SELECT config FROM runs WHERE entity = %s", (alice,)
            ).fetchall()
            == [],
            "bob reads alice's run events": b.execute(
                "SELECT count(*) FROM run_events WHERE run_id = %s", (alices_run,)
            ).fetchone()[0]
            == 0,
            "bob reads alice's build context": b.execute(
                "SELECT count(*) FROM run_contexts WHERE run_id = %s", (alices_run,)
            ).fetchone()[0]
            == 0,
            "bob cancels alice's private run": b.execute(
                "UPDATE runs SET cancel_requested = true, state = 'cancelled' WHERE id LIKE %s", (alices_run[:4] + "%",)
            ).rowcount
            == 0,
            "bob rewrites alice's context": b.execute(
                "UPDATE run_contexts SET data = 'evil' WHERE run_id = %s", (alices_run,)
            ).rowcount
            == 0,
            "bob points alice's run log at /etc/passwd": b.execute(
                "UPDATE runs SET log_path = '/etc/passwd' WHERE id = %s", (alices_run,)
            ).rowcount
            == 0,
            "bob deletes alice's private queue": b.execute("DELETE FROM queues WHERE id = %s", (private,)).rowcount
            == 0,
            "bob creates a queue in alice's entity": refused(
                b,
                "INSERT INTO queues (entity, name, resource, config, config_text, prioritization,"
                " template_vars, created_by, created_at, updated_at) VALUES (%s, 'gpu2', 'local-process',"
                " '{}', '', false, '[]', %s, 0, 0)",
                (alice, alice),
            ),
            "bob creates a team entity named alice": refused(
                b, "INSERT INTO entities (name, kind) VALUES (%s, 'team')", (alice,)
            ),
            "bob creates a user entity for alice": refused(
                b, "INSERT INTO entities (name, kind) VALUES (%s, 'user')", (alice,)
            ),
            "bob (a member) edits the team queue": b.execute(
                'UPDATE queues SET config = \'{"image": "bobs"}\' WHERE id = %s', (team_q,)
            ).rowcount
            == 0,
            "bob (a member) deletes the team queue": b.execute("DELETE FROM queues WHERE id = %s", (team_q,)).rowcount
            == 0,
            "bob (a member) makes himself admin": refused(
                b,
                "INSERT INTO entity_members (entity, member, role) VALUES ('ml_team', %s, 'admin') "
                "ON CONFLICT (entity, member) DO UPDATE SET role = 'admin'",
                (bob,),
            ),
            "bob adds a member to the team": refused(
                b, "INSERT INTO entity_members (entity, member) VALUES ('ml_team', 'mallory')"
            ),
            "bob creates a queue in the team": refused(
                b,
                "INSERT INTO queues (entity, name, resource, config, config_text, prioritization,"
                " template_vars, created_by, created_at, updated_at) VALUES ('ml_team', 'bobs',"
                " 'local-process', '{}', '', false, '[]', %s, 0, 0)",
                (bob,),
            ),
            "bob submits to alice's private queue": refused(
                b,
                "INSERT INTO runs (id, queue_id, queue_name, entity, author, resource, state, priority,"
                " name, notebook, parameters, template_values, resource_args, config, cancel_requested,"
                " message, created_at, updated_at) VALUES ('bobrun', %s, 'gpu', %s, %s, 'local-process',"
                " 'queued', 2, 'n', 'n', '{}', '{}', '{}', '{}', false, '', 0, 0)",
                (private, alice, alice),
            ),
            "bob slips a run into alice's private queue under the team's name": refused(
                b,
                "INSERT INTO runs (id, queue_id, queue_name, entity, author, resource, state, priority,"
                " name, notebook, parameters, template_values, resource_args, config, cancel_requested,"
                " message, created_at, updated_at) VALUES ('bobrun2', %s, 'gpu', 'ml_team', %s,"
                " 'local-process', 'queued', 2, 'n', 'n', '{}', '{}', '{}', '{}', false, '', 0, 0)",
                (private, bob),
            ),
        }
        # Authorship comes from the database: bob's run claiming alice as author is bob's.
        bobs_run = add_run(b, team_q, "ml_team", "vertex", author=alice)
        scenarios["bob submits as alice"] = (
            b.execute("SELECT author FROM runs WHERE id = %s", (bobs_run,)).fetchone()[0] == bob
        )
        scenarios["bob rewrites the author of his run to alice"] = (
            b.execute("UPDATE runs SET author = %s WHERE id = %s", (alice, bobs_run)).rowcount == 1
            and b.execute("SELECT author FROM runs WHERE id = %s", (bobs_run,)).fetchone()[0] == bob
        )
        scenarios["bob moves his run into alice's entity"] = refused(
            b, "UPDATE runs SET entity = %s, queue_id = %s WHERE id = %s", (alice, private, bobs_run)
        )
        scenarios["bob moves his run into alice's private queue"] = refused(
            b, "UPDATE runs SET queue_id = %s WHERE id = %s", (private, bobs_run)
        )
        failed = [name for name, held in scenarios.items() if not held]
        assert failed == [], failed
        assert len(scenarios) == 23

        # Nothing changed for alice, and what is allowed still works.
        assert a.execute("SELECT state, log_path FROM runs WHERE id = %s", (alices_run,)).fetchone() == ("queued", None)
        assert (
            a.execute("SELECT data FROM run_contexts WHERE run_id = %s", (alices_run,)).fetchone()[0]
            == b"alice's context"
        )
        assert a.execute("SELECT count(*) FROM queues").fetchone()[0] == 2  # her own and the team's
        assert b.execute("SELECT count(*) FROM queues").fetchone()[0] == 1  # the team's only
        assert (
            b.execute("SELECT count(*) FROM runs WHERE entity = 'ml_team'").fetchone()[0] == 2
        )  # members see team runs
        assert t.execute('UPDATE queues SET config = \'{"image": "v2"}\' WHERE id = %s', (team_q,)).rowcount == 1
        assert a.execute("SELECT config FROM queues WHERE id = %s", (team_q,)).fetchone()[0] == {"image": "v2"}


def test_our_client_as_bob_sees_only_what_the_database_shows_him(team_db, monkeypatch):
    url, who = team_db
    with connect(url(who["alice"])) as a:
        add_queue(a, who["alice"], "private")
    monkeypatch.setenv("LAUNCH_JUPYTER_USER", who["bob"])
    bobs_store = open_store(url(who["bob"]))
    assert [q.path for q in bobs_store.list_queues(who["bob"])] == []
    assert bobs_store.list_runs() == []


def test_the_cli_sets_up_entities_and_the_database_checks_who_may(team_db, capsys):
    from launch_jupyter.cli import main

    url, who = team_db
    # Running the set-up again changes nothing (idempotent), and prints where it went.
    assert main(["--store", url(), "store", "init", "--team", "--group", who["group"]]) == 0
    assert "row-level security installed" in capsys.readouterr().out
    assert main(["--store", url(who["admin"]), "entity", "create", "vision"]) == 0
    assert main(["--store", url(who["admin"]), "entity", "add-member", "vision", who["alice"]]) == 0
    capsys.readouterr()
    # bob is no admin of vision, and may not name a team after alice.
    assert main(["--store", url(who["bob"]), "entity", "add-member", "vision", who["bob"], "--admin"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "the database refused it" in err and "row-level security" in err
    assert main(["--store", url(who["bob"]), "entity", "create", who["alice"]]) == 2
    assert "the database refused it" in capsys.readouterr().err
    with connect(url(who["bob"])) as b:
        members = b.execute("SELECT member, role FROM entity_members WHERE entity = 'vision'").fetchall()
        owners = b.execute("SELECT name, owner FROM entities ORDER BY name").fetchall()
    assert members == [(who["alice"], "member")]
    assert owners == [("vision", who["admin"])]


def test_print_sql_shows_what_init_would_run(capsys):
    from launch_jupyter.cli import main

    assert main(["store", "init", "--team", "--print-sql"]) == 0
    out = capsys.readouterr().out
    assert "ENABLE ROW LEVEL SECURITY" in out and "CREATE POLICY lj_read ON runs" in out


def test_a_sqlite_store_is_created_for_its_owner_only(tmp_path):
    import stat

    path = tmp_path / "new-folder" / "launch.db"
    open_store(f"sqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
