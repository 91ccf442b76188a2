"""One engine per store URL per process, the SQLite transaction set-up, and the wake-up of waiting agents.

Several ``QueueStore`` handles opened on one URL in one process (the kernel's agent thread and the
``%launch`` magics, say) share one ``Backend``: one connection pool, one in-process wake-up signal and,
on PostgreSQL, one LISTEN connection.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from .._extras import require_extra
from .._process import IN_CREATE, IN_MODIFY, IN_MOVED_TO, drain, inotify_folder
from ..core.errors import ConfigError, StoreError
from ._schema import create_schema

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 30.0
IN_ATTRIB = 0x4  # inotify(7), <sys/inotify.h>: metadata changed (here: the mtime, by _announce)
CHANNEL_PREFIX = "launch_jupyter_"

_lock = threading.Lock()
_backends: dict[tuple[int, str], Backend] = {}


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (SQLAlchemy would pick psycopg2 otherwise)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def acquire(url: str) -> Backend:
    """The process's backend for ``url`` (created and its schema made on first use); counts a user."""
    key = (os.getpid(), normalize_url(url))
    with _lock:
        backend = _backends.get(key)
        if backend is None:
            backend = Backend(key[1])
            _backends[key] = backend
        backend.users += 1
        return backend


def release(backend: Backend) -> None:
    """One user fewer; the last one closes the pool and the LISTEN connection."""
    with _lock:
        backend.users -= 1
        if backend.users > 0:
            return
        key = (os.getpid(), backend.url)
        if _backends.get(key) is backend:  # close_all() may have replaced it already
            del _backends[key]
    backend.dispose()


def close_all(url: str | None = None) -> None:
    """Close this process's pools (and LISTEN connections) for ``url``, or for every URL when None.

    For test teardown and shutdown: handles still open keep working and reconnect when next used.
    """
    with _lock:
        keys = [k for k in _backends if k[0] == os.getpid() and (url is None or k[1] == normalize_url(url))]
        closing = [_backends.pop(k) for k in keys]
    for backend in closing:
        backend.dispose()


class Backend:
    """The engine, the schema check and the wake-up signal for one store URL in this process."""

    def __init__(self, url: str):
        self.url = url
        self.users = 0
        self.engine = _create_engine(url)
        self.dialect = self.engine.dialect.name
        self._wake = threading.Condition()
        self.generation = 0  # bumped on every wake-up; waiters compare it
        self._listener: _Listener | _SqliteWatcher | None = None
        self.channel = ""
        # Marks this process's own NOTIFYs: their wake-up already happened in-process.
        self.token = uuid.uuid4().hex
        try:
            with self.write() as conn:
                create_schema(conn)
            if self.dialect == "postgresql":
                self.channel = _channel_name(self.engine)
        except SQLAlchemyError as err:
            self.engine.dispose()
            raise StoreError(f"cannot open the store {_safe(url)}: {_first_line(err)}") from err
        except StoreError:
            self.engine.dispose()
            raise

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that will write: on SQLite ``BEGIN IMMEDIATE`` so writers queue on busy_timeout
        instead of failing when a read lock cannot be upgraded."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # --- wake-ups -------------------------------------------------------------------------------

    def wake(self) -> None:
        """Wake every waiter in this process and, on a SQLite file, tell the other processes' watchers
        (called after an enqueue commits)."""
        self.wake_here()
        if self.dialect == "sqlite":
            self._announce()

    def wake_here(self) -> None:
        """Wake every waiter in this process (after an enqueue, or on news of another process's)."""
        with self._wake:
            self.generation += 1
            self._wake.notify_all()

    def _announce(self) -> None:
        """Touch the database file after the commit: an inotify event in its folder (IN_ATTRIB) that
        every watcher sees once the commit is visible. The commit's own writes cannot be relied on:
        SQLite writes the frames to the -wal file (inotify events), then makes them visible by updating
        the wal-index in the -shm file, a shared mmap whose writes inotify does not report
        (https://sqlite.org/walformat.html, "the wal-index"). A watcher that read ``PRAGMA data_version``
        in between saw no change and slept on until the next write in the folder: 2 of 60 enqueues from
        another process on a loaded 2-core machine, one run claimed 28 s late in benchmarks/bench_peers."""
        database = self.engine.url.database
        if database in (None, "", ":memory:"):
            return
        try:
            os.utime(Path(database).expanduser())  # mtime = now: a commit did change the database
        except OSError:
            pass  # watchers still see the next change in the folder; the agents' polls remain

    def wait(self, seen: int, timeout: float) -> int:
        """Block until ``generation`` differs from ``seen`` or ``timeout`` passes; return the generation."""
        if self.dialect == "postgresql":
            self._ensure_listener()
        elif self.dialect == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
            self._ensure_watcher()
        with self._wake:
            self._wake.wait_for(lambda: self.generation != seen, timeout=max(timeout, 0.0))
            return self.generation

    def _ensure_listener(self) -> None:
        with _lock:
            if self._listener is None:
                self._listener = _Listener(self)
            listener = self._listener
        assert isinstance(listener, _Listener)  # a postgresql backend's: wait() picks by dialect
        listener.ready.wait(timeout=10.0)

    def _ensure_watcher(self) -> None:
        with _lock:
            if self._listener is None:
                self._listener = _SqliteWatcher(self)

    def dispose(self) -> None:
        """Stop the listener and close the pool."""
        with _lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self.engine.dispose()


class _WakeThread:
    """A daemon thread that wakes this process's waiters on ``backend`` (its ``_loop``) and a pipe that
    ends its ``select`` at once when it is stopped. The SQLite watcher and the PostgreSQL listener."""

    NAME = "launch-store-wake"

    def __init__(self, backend: Backend):
        self.backend = backend
        self._stop = threading.Event()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name=self.NAME, daemon=True)

    def stop(self) -> None:
        self._stop.set()
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            os.close(self._stop_r)
            os.close(self._stop_w)

    def _loop(self) -> None:
        raise NotImplementedError


class _SqliteWatcher(_WakeThread):
    """SQLite has no NOTIFY: a daemon thread waits for the database's folder to change (inotify on
    Linux: the thread sleeps in ``select`` until a file there is written; elsewhere a look ten times a
    second) and then reads ``PRAGMA data_version`` (a counter SQLite bumps when another connection
    commits a change); when it moved, the newest run's ``seq`` (the rowid: one B-tree step) tells
    whether a run was queued, and only then are this process's waiters woken — as a NOTIFY does on
    PostgreSQL, which is sent by an enqueue only. A run queued by another process is seen at once,
    not at the agent's next poll, and the agent's own heartbeats and claims wake nobody. An enqueue
    touches the database file once its commit is visible (``Backend._announce``): the commit's own
    writes may all be seen before it is."""

    INTERVAL = 0.1  # without inotify
    NAME = "launch-store-watch"

    def __init__(self, backend: Backend):
        super().__init__(backend)
        self.wakeups = 0  # changes in the folder looked at (tests count them)
        self._thread.start()

    def _loop(self) -> None:
        import select
        import sqlite3

        database = self.backend.engine.url.database or ""  # set: only a file store gets a watcher
        folder = str(Path(database).expanduser().absolute().parent)
        changes = inotify_folder(folder, IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_ATTRIB)  # ATTRIB: _announce
        conn = sqlite3.connect(database, timeout=30, check_same_thread=False)
        try:
            generation = self.backend.generation
            try:
                last = conn.execute("PRAGMA data_version").fetchone()[0]
                newest = _newest_run(conn)
            except sqlite3.Error:
                last = newest = None
            while not self._stop.is_set():
                watched = [self._stop_r] + ([changes] if changes is not None else [])
                readable, _, _ = select.select(watched, [], [], None if changes is not None else self.INTERVAL)
                if self._stop_r in readable:
                    return
                if changes is not None:
                    drain(changes)
                self.wakeups += 1
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    queued = _newest_run(conn) if version != last else newest
                except sqlite3.Error:
                    continue
                # A run that came with an in-process wake-up was this process's own enqueue.
                if queued != newest and self.backend.generation == generation:
                    self.backend.wake_here()
                last, newest, generation = version, queued, self.backend.generation
        finally:
            conn.close()
            if changes is not None:
                os.close(changes)


def _newest_run(conn) -> int | None:
    """The highest run ``seq`` (None before the schema or the first run exists)."""
    try:
        return conn.execute("SELECT max(seq) FROM runs").fetchone()[0]
    except Exception:  # noqa: BLE001 - no table yet: nothing queued
        return None


class _Listener(_WakeThread):
    """A daemon thread holding one autocommit psycopg connection that LISTENs on the store's channel
    and turns every NOTIFY into a wake-up in this process. It blocks in ``select`` on the connection's
    socket and a stop pipe (no timeout loop: an idle process costs nothing here). It reconnects after
    errors; wake-ups lost meanwhile only delay agents until their next poll."""

    NAME = "launch-store-listen"

    def __init__(self, backend: Backend):
        super().__init__(backend)
        self.ready = threading.Event()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as err:  # noqa: BLE001 - any connection trouble: retry after a pause
                if self._stop.is_set():
                    return
                log.warning("store LISTEN connection lost (%s); retrying", _first_line(err))
                self.ready.set()  # never keep a waiter blocked on us; it falls back to its timeout
                self._stop.wait(2.0)

    def _listen(self) -> None:
        import select

        import psycopg  # the driver itself: SQLAlchemy's pool has no notification API

        dsn = self.backend.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'LISTEN "{self.backend.channel}"')
            self.ready.set()
            pgconn = conn.pgconn
            while not self._stop.is_set():
                readable, _, _ = select.select([pgconn.socket, self._stop_r], [], [])
                if self._stop_r in readable:
                    return
                pgconn.consume_input()  # raises on a lost connection: the loop reconnects
                while (note := pgconn.notifies()) is not None:
                    if not note.extra.decode(errors="replace").startswith(self.backend.token):
                        self.backend.wake_here()


def _create_engine(url: str) -> Engine:
    # A URL that cannot name a store is bad input (ConfigError: exit 2), not a store that failed.
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:  # ValueError: a port that is not a number
        raise ConfigError(f"store URL {_safe(url)} is not a database URL: {err}", path="store") from None
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(parsed)
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            f"store URL {_safe(url)}: only sqlite:/// and postgresql:// stores are supported", path="store"
        )
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigError(f"store URL {_safe(url)}: port {parsed.port} is not a TCP port (1-65535)", path="store")
    require_extra("postgres", "a postgresql:// store")  # SQLAlchemy's psycopg dialect imports it
    return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _create_sqlite_engine(parsed) -> Engine:
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        try:
            # One person's file: a folder we create is 0700, a new store file 0600 (SQLite gives
            # its -wal/-shm files the store file's mode).
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(Path(database).expanduser(), os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as err:
            raise StoreError(f"cannot create the store folder {folder}: {err.strerror}") from err
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # We issue BEGIN ourselves (below); the driver's own implicit BEGIN would be DEFERRED.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")  # readers never block the writer, nor it them
        cur.execute("PRAGMA synchronous = NORMAL")  # safe with WAL: a crash never corrupts
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _channel_name(engine: Engine) -> str:
    """The NOTIFY channel: one per database schema, so stores in different schemas do not wake each other."""
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar() or "public"
    return (CHANNEL_PREFIX + schema)[:63]


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
