"""The one SQL schema, the same on SQLite and PostgreSQL, and its idempotent creation."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from ..core.errors import StoreError
from ..core.states import RunState

# 2: runs.lease_generation and runs.host (fencing, host affinity), the agents table.
# 3: build contexts stored as content-addressed parts (``blobs``, ``context_parts``, ``run_contexts.parts``
#    and ``.archive``).
#    A store made before keeps its contexts inline (``parts`` NULL) and reads them as before; every
#    context written from then on goes to blobs, and ``launch-jupyter gc`` drops the old ones with
#    their runs. Nothing is rewritten in place, so an upgrade is the ALTER TABLE below and no copy.
# 4: runs.running_at and runs.cost (the price at submit; machine hours and estimated cost at the end).
SCHEMA_VERSION = 4

# Any fixed number: it only has to be the same in every process that creates the schema.
_SCHEMA_LOCK_KEY = 0x4C4A5354  # "LJST"

_Json = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData()

store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

queues = Table(
    "queues",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entity", String, nullable=False),
    Column("name", String, nullable=False),
    Column("resource", String, nullable=False),
    Column("config", _Json, nullable=False),
    Column("config_text", Text, nullable=False, default=""),
    Column("prioritization", Boolean, nullable=False, default=False),
    Column("template_vars", _Json, nullable=False),
    Column("created_by", String, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("entity", "name", name="uq_queues_entity_name"),
    # A deleted queue's id must never be handed to a new queue: its old runs keep pointing at it.
    sqlite_autoincrement=True,
)

runs = Table(
    "runs",
    metadata,
    # seq breaks created_at ties so FIFO is exact even for runs enqueued in the same microsecond.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String, nullable=False, unique=True),
    Column("queue_id", Integer, nullable=False),
    Column("queue_name", String, nullable=False),
    Column("entity", String, nullable=False),
    Column("author", String, nullable=False),
    Column("resource", String, nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("notebook", Text, nullable=False, default=""),
    Column("parameters", _Json, nullable=False),
    Column("template_values", _Json, nullable=False),
    Column("resource_args", _Json, nullable=False),
    Column("config", _Json, nullable=False),
    Column("image", Text),
    Column("image_uri", Text),
    Column("content_hash", String),
    Column("external_id", Text),
    Column("agent_id", String),
    Column("lease_expires_at", Float),
    # The fencing token: every claim, reattach and release bumps it; an agent's writes name the one
    # it was given, so a write from an agent that lost the run (a stall past its lease) is refused.
    Column("lease_generation", Integer, nullable=False, default=0, server_default="0"),
    Column("host", String),  # the host identity a host-bound run lives on (None: any host may reattach)
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("stage", String),
    Column("message", Text, nullable=False, default=""),
    Column("output_notebook", Text),
    Column("log_path", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("sweep_id", String),  # the sweep this run is one point of (None: a single submit)
    Column("running_at", Float),  # first reached running: machine hours count from here
    Column("cost", _Json),  # core.cost: the price at submit, machine hours and estimate at the end
    sqlite_autoincrement=True,
)

# Written as SQL literals, not parameters, so that the planners (PostgreSQL with prepared statements,
# SQLite) can prove these conditions match the partial indexes below.
QUEUED = runs.c.state == literal_column(f"'{RunState.QUEUED.value}'")
ACTIVE = runs.c.state.in_([literal_column(f"'{s.value}'") for s in RunState if s.is_active])

# Claim reads the head of a queue or its expired leases through these small partial indexes, so its
# cost grows neither with the queue's length nor with its history of finished runs.
Index(
    "ix_runs_queued_fifo", runs.c.queue_id, runs.c.created_at, runs.c.seq, postgresql_where=QUEUED, sqlite_where=QUEUED
)
Index(
    "ix_runs_queued_priority",
    runs.c.queue_id,
    runs.c.priority,
    runs.c.created_at,
    runs.c.seq,
    postgresql_where=QUEUED,
    sqlite_where=QUEUED,
)
Index("ix_runs_active_lease", runs.c.queue_id, runs.c.lease_expires_at, postgresql_where=ACTIVE, sqlite_where=ACTIVE)
Index("ix_runs_queue_state", runs.c.queue_id, runs.c.state, runs.c.created_at, runs.c.seq)
Index("ix_runs_created", runs.c.created_at, runs.c.seq)
Index("ix_runs_author", runs.c.author, runs.c.created_at)
Index("ix_runs_agent", runs.c.agent_id, runs.c.state)
# How many of a sweep's runs are active (the claim's --max-parallel check) and a sweep's runs in order.
_sweep_index = Index("ix_runs_sweep", runs.c.sweep_id, runs.c.state)

run_events = Table(
    "run_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String, nullable=False),
    Column("time", Float, nullable=False),
    Column("state", String(16), nullable=False),
    Column("message", Text, nullable=False, default=""),
    Column("agent_id", String),  # the agent that wrote it; None for front ends
    sqlite_autoincrement=True,
)
Index("ix_run_events_run", run_events.c.run_id, run_events.c.id)

agents = Table(
    "agents",
    metadata,
    Column("id", String, primary_key=True),  # host:pid:nonce
    Column("host", String, nullable=False),  # the host identity (hostname/digest)
    Column("pid", Integer, nullable=False),
    Column("queues", _Json, nullable=False),  # queue paths it serves
    Column("queue_ids", _Json, nullable=False),
    Column("max_jobs", Integer, nullable=False),
    Column("version", String, nullable=False, default=""),
    Column("lease_seconds", Float, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("stopped_at", Float),
)
Index("ix_agents_heartbeat", agents.c.heartbeat_at)

run_contexts = Table(
    "run_contexts",
    metadata,
    Column("run_id", String, primary_key=True),  # a run id, or sweep_context_key(sweep id)
    # The build context as tar.gz bytes, inline: contexts written before schema 3 (``parts`` NULL).
    # Empty when the context is in blobs (the column stays NOT NULL so older stores need no rebuild).
    Column("data", LargeBinary, nullable=False),
    Column("parts", Integer),  # how many context_parts rows make it up (NULL: inline in ``data``)
    Column("archive", String(64)),  # sha256 of the archive: its context_parts (identical contexts share them)
)
# gc's "is this list of parts still used" and a team store's policy on context_parts read it by hash.
_archive_index = Index("ix_run_contexts_archive", run_contexts.c.archive)

# An archive as its files: one row per file in archive order, naming the blob of its bytes, stored
# once per distinct archive. The archive is rebuilt from them byte for byte (store/_blobs.py); one
# that would not be rebuilt exactly is one part holding the archive itself (mode -1).
context_parts = Table(
    "context_parts",
    metadata,
    Column("archive", String(64), primary_key=True),  # run_contexts.archive
    Column("position", Integer, primary_key=True),
    Column("path", Text, nullable=False),
    Column("mode", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
)
# gc's "is this blob still referenced" and a team store's blob policy read it by hash.
Index("ix_context_parts_blob", context_parts.c.sha256)

# Content-addressed bytes: a file that many contexts hold (the package wheel, an unchanged notebook)
# is stored once. ``sha256`` is of the raw bytes; ``data`` is zlib-compressed when that is smaller.
blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),  # raw bytes
    Column("compressed", Boolean, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

# A schedule fires runs of one notebook on a queue by a cron expression (launch_jupyter.schedules).
schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String, nullable=False),
    Column("author", String, nullable=False),
    Column("queue_id", Integer, nullable=False),
    Column("queue_name", String, nullable=False),
    Column("entity", String, nullable=False),
    Column("cron", String, nullable=False),
    Column("timezone", String, nullable=False),
    Column("missed", String(8), nullable=False),  # once | skip: what to do with ticks no agent was there for
    Column("follow_file", Boolean, nullable=False, default=False),
    Column("notebook", Text, nullable=False),
    Column("include", _Json, nullable=False),
    Column("parameters", _Json, nullable=False),
    Column("new_parameters", _Json, nullable=False),
    Column("template_values", _Json, nullable=False),
    Column("resource_args", _Json, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("content_hash", String),  # of the snapshot (None with follow_file)
    Column("context", LargeBinary),  # the snapshot's build context as tar.gz, stored once at create
    Column("paused", Boolean, nullable=False, default=False),
    Column("next_fire_at", Float, nullable=False),  # the next cron time not yet considered (epoch seconds)
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("author", "name", name="uq_schedules_author_name"),
    sqlite_autoincrement=True,
)
# What an agent loop reads every turn: cheap through this index whatever the number of schedules.
Index("ix_schedules_due", schedules.c.paused, schedules.c.next_fire_at)

# One row per cron time a schedule reached. The unique (schedule, fire time) pair is the claim: an
# insert that conflicts does nothing, so each tick is fired by exactly one agent.
schedule_ticks = Table(
    "schedule_ticks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule_id", Integer, nullable=False),
    Column("fire_time", Float, nullable=False),
    Column("state", String(16), nullable=False),  # claimed | fired | failed | skipped
    Column("run_id", String),  # chosen at claim time, so a retried enqueue can never make a second run
    Column("agent_id", String),
    Column("message", Text, nullable=False, default=""),
    Column("claimed_at", Float, nullable=False),
    UniqueConstraint("schedule_id", "fire_time", name="uq_schedule_ticks_time"),
    sqlite_autoincrement=True,
)
Index("ix_schedule_ticks_state", schedule_ticks.c.state, schedule_ticks.c.claimed_at)
Index("ix_schedule_ticks_run", schedule_ticks.c.run_id)

# A running notebook's progress (launch_jupyter.progress): the cell it is in, one row per run,
# overwritten as it goes (no history: the log has that).
run_progress = Table(
    "run_progress",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("cell", Integer, nullable=False),  # the running cell's number, from 1 (the injected cell not counted)
    Column("total", Integer, nullable=False),  # code cells in the notebook
    Column("source", Text, nullable=False, default=""),  # the running cell's first line
    Column("cell_started_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# A sweep: one notebook queued for every point of a parameter space, packaged once (its context is
# stored once, under ``sweep_context_key(id)``), at most ``max_parallel`` of its runs active at a time.
sweeps = Table(
    "sweeps",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("queue_id", Integer, nullable=False),
    Column("queue_name", String, nullable=False),
    Column("entity", String, nullable=False),
    Column("author", String, nullable=False),
    Column("notebook", Text, nullable=False, default=""),
    Column("method", String(16), nullable=False),  # grid | random
    Column("space", _Json, nullable=False),  # {parameter: the values as the user wrote them}
    Column("seed", Integer),
    Column("max_parallel", Integer),  # None: no limit beyond the agents' own
    Column("total", Integer, nullable=False),
    Column("content_hash", String),
    Column("created_at", Float, nullable=False),
    Column("cancelled_at", Float),
)
Index("ix_sweeps_created", sweeps.c.created_at)

# Values a run recorded with ``launch_jupyter.record(name, value)``, read from its executed notebook.
run_records = Table(
    "run_records",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("name", String, primary_key=True),
    Column("value", _Json),  # a JSON value; None when ``error`` says why it could not be kept
    Column("display", _Json),  # a display bundle (mime type → data) for a plot or a table
    Column("error", Text),
    Column("position", Integer, nullable=False, default=0),  # the order the notebook recorded them in
)


def sweep_context_key(sweep_id: str) -> str:
    """The ``run_contexts`` key under which a sweep's one build context is stored."""
    return f"sweep:{sweep_id}"


def create_schema(conn: Connection) -> None:
    """Create the tables if missing. Call inside a transaction that serialises schema creation.

    PostgreSQL: a transaction-scoped advisory lock makes several processes opening a fresh database at
    once take turns (CREATE TABLE is transactional there). SQLite: the caller's ``BEGIN IMMEDIATE``
    already holds the write lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
    metadata.create_all(conn, checkfirst=True)
    _add_missing_columns(conn)
    _sweep_index.create(conn, checkfirst=True)  # a store made before sweeps has runs without it
    _archive_index.create(conn, checkfirst=True)  # a store made before blobs has run_contexts without it
    found = conn.execute(store_meta.select().where(store_meta.c.key == "schema_version")).first()
    if found is None:
        conn.execute(store_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
    elif int(found.value) < SCHEMA_VERSION:
        conn.execute(store_meta.update().where(store_meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
    elif int(found.value) > SCHEMA_VERSION:
        raise StoreError(
            f"the store was written by a newer launch_jupyter (schema {found.value}, this one knows "
            f"{SCHEMA_VERSION}); upgrade launch_jupyter"
        )


# Columns added after schema 1, with the DDL that adds them to a store made by an older version.
_ADDED_COLUMNS = {
    "runs": {
        "lease_generation": "INTEGER NOT NULL DEFAULT 0",
        "host": "VARCHAR",
        "sweep_id": "VARCHAR",
        "running_at": "FLOAT",
        "cost": "JSON",
    },
    "run_events": {
        "agent_id": "VARCHAR",
    },
    "run_contexts": {
        "parts": "INTEGER",
        "archive": "VARCHAR(64)",
    },
}


def _add_missing_columns(conn: Connection) -> None:
    from sqlalchemy import inspect

    inspector = inspect(conn)
    for table, columns in _ADDED_COLUMNS.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        for name, ddl in columns.items():
            if name not in have:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))
