"""Build contexts stored content-addressed: the wheel once, identical contexts once, read back byte for
byte — on SQLite and on real PostgreSQL; an old store's inline contexts still read; damage is named."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile

import pytest
from sqlalchemy import func, select, text

from launch_jupyter.core.errors import StoreError
from launch_jupyter.core.model import Queue, Run
from launch_jupyter.packaging import create_context, pack_context
from launch_jupyter.store import open_store
from launch_jupyter.store._blobs import WHOLE_ARCHIVE, pack_parts, split_archive
from launch_jupyter.store._schema import SCHEMA_VERSION, blobs, context_parts, run_contexts
from tests.fixtures.common import EXAMPLES
from tests.test_rls import team_db  # noqa: F401  (the three-role database fixture)

QUICKSTART = EXAMPLES / "quickstart.ipynb"


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def contexts(tmp_path_factory) -> dict[str, bytes]:
    """Real packed contexts: the quickstart notebook (with the package wheel), and an edited copy."""
    root = tmp_path_factory.mktemp("contexts")
    made = {"quickstart": pack_context(create_context(QUICKSTART, root / "a").directory)}
    edited = root / "edited" / "quickstart.ipynb"
    edited.parent.mkdir()
    nb = json.loads(QUICKSTART.read_text())
    nb["cells"].append(
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": ["print('one more cell')"],
        }
    )
    edited.write_text(json.dumps(nb))
    made["edited"] = pack_context(create_context(edited, root / "b").directory)
    return made


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
            entity=queue.entity,
            author="alice",
            resource=queue.resource,
            config={},
        ),
        context,
    )


def count(store, table) -> int:
    with store._backend.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def stored_bytes(store) -> int:
    with store._backend.read() as conn:
        return conn.execute(select(func.coalesce(func.sum(func.length(blobs.c.data)), 0))).scalar()


def archive_of(store, run: Run) -> str:
    with store._backend.read() as conn:
        return conn.execute(select(run_contexts.c.archive).where(run_contexts.c.run_id == run.id)).scalar()


def members(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return [m.name for m in tar.getmembers()]


def test_a_context_reads_back_byte_for_byte_from_its_parts(store, contexts):
    queue = make_queue(store)
    packed = contexts["quickstart"]
    run = enqueue(store, queue, packed)
    assert store.get_context(run.id) == packed
    names = members(packed)
    assert any(n.endswith(".whl") for n in names), names  # the case that made every run cost ~200 KB
    with store._backend.read() as conn:
        parts = (
            conn.execute(
                select(context_parts.c.path)
                .where(context_parts.c.archive == archive_of(store, run))
                .order_by(context_parts.c.position)
            )
            .scalars()
            .all()
        )
        inline = conn.execute(select(run_contexts.c.data).where(run_contexts.c.run_id == run.id)).scalar()
    assert parts == names  # one part per file, in archive order
    assert bytes(inline) == b""  # nothing kept per run but the list of parts


def test_the_wheel_and_identical_contexts_are_stored_once(store, contexts):
    queue = make_queue(store)
    first = enqueue(store, queue, contexts["quickstart"])
    once = (count(store, blobs), stored_bytes(store))
    for _ in range(9):
        enqueue(store, queue, contexts["quickstart"])
    assert (count(store, blobs), stored_bytes(store)) == once  # nine more runs of it: no new bytes
    assert count(store, context_parts) == len(members(contexts["quickstart"]))  # and one list of its parts
    edited = enqueue(store, queue, contexts["edited"])
    # An edited notebook adds its notebook and whatever else changed (its Dockerfile names no file
    # of it, so the wheel and requirements are shared), never a second wheel.
    added = count(store, blobs) - once[0]
    assert 1 <= added < len(members(contexts["edited"]))
    wheel = max(len(b) for b in _files(contexts["edited"]).values())
    assert stored_bytes(store) - once[1] < wheel / 4
    assert store.get_context(edited.id) == contexts["edited"]
    assert store.get_context(first.id) == contexts["quickstart"]


def test_an_archive_the_store_would_not_rebuild_exactly_is_kept_whole(store):
    queue = make_queue(store)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:  # another writer: mtimes, names, a folder entry
        info = tarfile.TarInfo("nb.ipynb")
        info.size, info.mtime, info.uname = 2, 1_700_000_000, "alice"
        tar.addfile(info, io.BytesIO(b"{}"))
        folder = tarfile.TarInfo("data")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    for data in (raw.getvalue(), b"not an archive at all"):
        run = enqueue(store, queue, data)
        assert store.get_context(run.id) == data
        with store._backend.read() as conn:
            modes = (
                conn.execute(select(context_parts.c.mode).where(context_parts.c.archive == archive_of(store, run)))
                .scalars()
                .all()
            )
        assert modes == [WHOLE_ARCHIVE]


def test_pack_parts_is_the_packagers_writer(contexts):
    for packed in contexts.values():
        parts = split_archive(packed)
        assert parts is not None and pack_parts(parts) == packed


def test_a_run_without_a_context_has_none(store):
    run = enqueue(store, make_queue(store), None)
    assert store.get_context(run.id) is None


def test_a_sweeps_context_is_stored_once_as_parts(store, contexts):
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
        for i in range(3)
    ]
    sweep, runs = store.enqueue_sweep(
        {
            "queue_id": queue.id,
            "queue_name": queue.name,
            "entity": "alice",
            "author": "alice",
            "method": "grid",
            "space": {"x": [0, 1, 2]},
        },
        points,
        contexts["quickstart"],
    )
    assert {store.get_context(r.id) for r in runs} == {contexts["quickstart"]}
    assert count(store, run_contexts) == 1
    assert count(store, blobs) == len(set(_files(contexts["quickstart"]).values()))


def test_a_blob_changed_in_the_store_is_refused_by_name(store, contexts):
    run = enqueue(store, make_queue(store), contexts["quickstart"])
    with store._backend.write() as conn:
        digest = (
            conn.execute(
                select(context_parts.c.sha256)
                .where(context_parts.c.archive == archive_of(store, run))
                .order_by(context_parts.c.position)
            )
            .scalars()
            .first()
        )
        conn.execute(blobs.update().where(blobs.c.sha256 == digest).values(data=b"evil", compressed=False))
    with pytest.raises(StoreError, match=f"build context of {run.id} is damaged.*{digest[:12]}"):
        store.get_context(run.id)


def test_parts_pointed_at_other_valid_bytes_are_refused_by_the_archive_hash(store, contexts):
    """Someone with write access rewrites a part to name a blob they planted under its true hash."""
    run = enqueue(store, make_queue(store), contexts["quickstart"])
    evil = b'{"cells": [], "note": "planted"}'
    digest = hashlib.sha256(evil).hexdigest()
    with store._backend.write() as conn:
        conn.execute(blobs.insert().values(sha256=digest, size=len(evil), compressed=False, data=evil, created_at=0))
        conn.execute(
            context_parts.update()
            .where(context_parts.c.archive == archive_of(store, run), context_parts.c.path == "quickstart.ipynb")
            .values(sha256=digest)
        )
    with pytest.raises(StoreError, match=f"build context of {run.id} is damaged.*do not rebuild archive"):
        store.get_context(run.id)


def test_a_missing_part_or_blob_is_refused_by_name(store, contexts):
    queue = make_queue(store)
    run, other = enqueue(store, queue, contexts["quickstart"]), enqueue(store, queue, contexts["edited"])
    with store._backend.write() as conn:
        conn.execute(
            context_parts.delete().where(
                context_parts.c.archive == archive_of(store, run), context_parts.c.position == 0
            )
        )
        conn.execute(blobs.delete())
    with pytest.raises(StoreError, match=f"build context of {run.id} is incomplete"):
        store.get_context(run.id)
    with pytest.raises(StoreError, match=f"build context of {other.id} is incomplete.*missing"):
        store.get_context(other.id)


def test_a_store_made_before_blobs_keeps_reading_its_inline_contexts(tmp_path, contexts):
    """Schema 2 → 4: the tables and columns are added (3: blobs; 4: runs.running_at and runs.cost),
    old contexts are read inline as before, new ones go to blobs."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(url)
    queue = make_queue(store)
    old = enqueue(store, queue, None)
    store.close()
    from launch_jupyter.store import close_all

    close_all(url)
    with sqlite3.connect(tmp_path / "old.db") as conn:  # what a schema-2 store looks like
        conn.execute("DROP TABLE blobs")
        conn.execute("DROP TABLE context_parts")
        conn.execute("DROP INDEX ix_run_contexts_archive")
        conn.execute("ALTER TABLE run_contexts DROP COLUMN parts")
        conn.execute("ALTER TABLE run_contexts DROP COLUMN archive")
        conn.execute("ALTER TABLE runs DROP COLUMN running_at")
        conn.execute("ALTER TABLE runs DROP COLUMN cost")
        conn.execute("UPDATE store_meta SET value = '2' WHERE key = 'schema_version'")
        conn.execute("INSERT INTO run_contexts (run_id, data) VALUES (?, ?)", (old.id, contexts["quickstart"]))
    store = open_store(url)
    try:
        assert store.get_context(old.id) == contexts["quickstart"]
        new = enqueue(store, queue, contexts["edited"])
        assert store.get_context(new.id) == contexts["edited"]
        assert count(store, blobs) > 0
        with store._backend.read() as conn:
            version = conn.execute(text("SELECT value FROM store_meta WHERE key = 'schema_version'")).scalar()
        assert int(version) == SCHEMA_VERSION == 4
        assert store.get_run(old.id).cost is None and store.get_run(old.id).running_at is None
    finally:
        store.close()


def test_sqlite_blobs_are_compressed_and_named_by_their_raw_bytes(sqlite_url, contexts):
    store = open_store(sqlite_url)
    try:
        enqueue(store, make_queue(store), contexts["quickstart"])
        with store._backend.read() as conn:
            rows = conn.execute(select(blobs)).all()
        notebook = _files(contexts["quickstart"])["quickstart.ipynb"]
        by_hash = {r.sha256: r for r in rows}
        row = by_hash[hashlib.sha256(notebook).hexdigest()]
        assert row.compressed and len(row.data) < len(notebook) and row.size == len(notebook)
        total = sum(len(r.data) for r in rows)
        assert total < len(contexts["quickstart"]) * 1.05  # no bigger than the archive it replaces
    finally:
        store.close()


def _files(packed: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def db_refuses(conn, sql: str, params=()) -> bool:
    """True when the database refuses the statement (a policy, a grant or a CHECK constraint)."""
    import psycopg

    try:
        conn.execute(sql, params)
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.CheckViolation):
        return True
    return False


@pytest.mark.postgres
def test_on_a_team_store_the_database_keeps_blobs_to_those_who_may_read_a_context_naming_them(team_db, contexts):  # noqa: F811
    """Tried through raw SQL as bob, so every refusal is the database's (store/_team.py policies)."""
    from tests.test_rls import add_queue, add_run, connect

    url, who = team_db
    alice, bob = who["alice"], who["bob"]
    alices = open_store(url(alice))
    queue = alices.create_queue(
        Queue(entity=alice, name="gpu", resource="local-process", config={}, config_text="", created_by=alice)
    )
    run = alices.enqueue(
        Run(
            id="", queue_id=queue.id, queue_name="gpu", entity=alice, author=alice, resource="local-process", config={}
        ),
        contexts["quickstart"],
    )
    edited = _files(contexts["edited"])["quickstart.ipynb"]  # a file alice will store later
    future = hashlib.sha256(edited).hexdigest()
    with connect(url(bob)) as b:
        # bob's own run and context row, with a part naming the hash of alice's future notebook
        bobs = add_run(b, add_queue(b, bob, "cpu"), bob, "cpu")
        b.execute("UPDATE run_contexts SET archive = 'bobs', parts = 1 WHERE run_id = %s", (bobs,))
        scenarios = {
            "bob lists alice's blobs": b.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0,
            "bob lists alice's context parts": b.execute("SELECT count(*) FROM context_parts").fetchone()[0] == 0,
            "bob deletes every blob": b.execute("DELETE FROM blobs").rowcount == 0,
            "bob rewrites every blob": b.execute("UPDATE blobs SET data = 'evil'").rowcount == 0,
            "bob adds a part to alice's archive": db_refuses(
                b,
                "INSERT INTO context_parts (archive, position, path, mode, sha256) "
                "SELECT archive, 99, 'evil.py', 420, 'x' FROM run_contexts WHERE run_id = %s",
                (run.id,),
            )
            or b.execute("SELECT count(*) FROM context_parts WHERE position = 99").fetchone()[0] == 0,
            "bob adds a blob no context of his names": db_refuses(
                b,
                "INSERT INTO blobs (sha256, size, compressed, data, created_at) VALUES (%s, 4, false, 'evil', 0)",
                (hashlib.sha256(b"evil").hexdigest(),),
            ),
        }
        # bob names alice's archive from his own row (an identical context would): he may read its
        # parts then, never change or delete them
        b.execute("UPDATE run_contexts SET archive = %s WHERE run_id = %s", (archive_of(alices, run), bobs))
        scenarios["bob deletes the parts of an archive alice's context uses"] = (
            b.execute("DELETE FROM context_parts WHERE archive = %s", (archive_of(alices, run),)).rowcount == 0
        )
        scenarios["bob repoints a part of it"] = (
            b.execute("UPDATE context_parts SET sha256 = 'x' WHERE archive = %s", (archive_of(alices, run),)).rowcount
            == 0
        )
        b.execute("UPDATE run_contexts SET archive = 'bobs' WHERE run_id = %s", (bobs,))
        b.execute(
            "INSERT INTO context_parts (archive, position, path, mode, sha256) VALUES "
            "('bobs', 0, 'quickstart.ipynb', 420, %s)",
            (future,),
        )
        scenarios["bob plants other bytes under the hash of alice's next notebook"] = db_refuses(
            b,
            "INSERT INTO blobs (sha256, size, compressed, data, created_at) VALUES (%s, 4, false, 'evil', 0)",
            (future,),
        )
        scenarios["bob plants them marked compressed"] = db_refuses(
            b,
            "INSERT INTO blobs (sha256, size, compressed, data, created_at) VALUES (%s, 4, true, 'evil', 0)",
            (future,),
        )
    failed = [name for name, held in scenarios.items() if not held]
    assert failed == [] and len(scenarios) == 10, failed
    later = alices.enqueue(
        Run(
            id="", queue_id=queue.id, queue_name="gpu", entity=alice, author=alice, resource="local-process", config={}
        ),
        contexts["edited"],
    )
    assert alices.get_context(run.id) == contexts["quickstart"]
    assert alices.get_context(later.id) == contexts["edited"]
    alices.close()
