"""Build contexts stored as content-addressed parts, so the store grows by what changed, not per run.

A context (a deterministic tar.gz, ``packaging.pack_context``) is kept as its files: each run's
``run_contexts`` row names the sha256 of its archive; each distinct archive has one
``context_parts`` row per file naming the sha256 of its bytes; each distinct file's bytes are
stored once in ``blobs``. The package wheel that every context carries is stored once, and so is a
notebook that did not change between submits. Reading rebuilds the archive with the same writer,
byte for byte, and checks it against the archive's hash; an archive that would not come back
identical (not ours, or written by another zlib) is kept whole as a single blob, so what is read
is always exactly what was written.

PostgreSQL: enqueues hold a shared advisory lock while they reference blobs and gc holds it
exclusively while it deletes unreferenced ones, so a blob another transaction is about to reference
is never deleted under it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, exists, func, select, text
from sqlalchemy.engine import Connection

from ..core.errors import StoreError
from ._schema import blobs, context_parts, run_contexts

WHOLE_ARCHIVE = -1  # a part's mode when the part is the archive itself, kept as is
_MODES = (0o644, 0o755)  # the only modes pack_context writes
_BLOB_LOCK_KEY = 0x4C4A424C  # "LJBL": any fixed number, the same in every process
_BATCH = 500  # keys per IN (...) list: well inside SQLite's and PostgreSQL's parameter limits

Part = tuple[str, int, bytes]  # path, mode, bytes


def put_context(conn: Connection, key: str, data: bytes) -> None:
    """Store the archive ``data`` under ``key`` (a run id or a sweep's key) as parts and blobs.

    The run_contexts row goes first, then the archive's parts (once per distinct archive), then the
    missing blobs: on a team store each is only writable once the row it follows is there
    (store/_team.py)."""
    archive = hashlib.sha256(data).hexdigest()
    _lock_blobs(conn, shared=True)
    listed = conn.execute(
        select(func.count()).select_from(context_parts).where(context_parts.c.archive == archive)
    ).scalar()
    if listed:  # an identical context is stored: its parts and blobs serve this one too
        conn.execute(run_contexts.insert().values(run_id=key, data=b"", parts=listed, archive=archive))
        return
    parts = split_archive(data) or [("", WHOLE_ARCHIVE, data)]
    digests = [hashlib.sha256(raw).hexdigest() for _, _, raw in parts]
    conn.execute(run_contexts.insert().values(run_id=key, data=b"", parts=len(parts), archive=archive))
    # Parts of the same archive that another role stored (invisible here) are skipped on conflict.
    conn.execute(
        _insert_new(conn, context_parts, ["archive", "position"]).values(
            [
                {"archive": archive, "position": i, "path": path, "mode": mode, "sha256": digest}
                for i, ((path, mode, _), digest) in enumerate(zip(parts, digests))
            ]
        )
    )
    wanted = dict(zip(digests, (raw for _, _, raw in parts)))
    have = set(conn.execute(select(blobs.c.sha256).where(blobs.c.sha256.in_(list(wanted)))).scalars())
    now = time.time()
    rows = [_blob_row(digest, raw, now, conn.dialect.name) for digest, raw in wanted.items() if digest not in have]
    if rows:
        conn.execute(_insert_new(conn, blobs, ["sha256"]).values(rows))


def get_context(conn: Connection, key: str) -> bytes | None:
    """The archive stored under ``key``, byte for byte as it was put; None if there is none."""
    row = conn.execute(
        select(run_contexts.c.data, run_contexts.c.parts, run_contexts.c.archive).where(run_contexts.c.run_id == key)
    ).first()
    if row is None:
        return None
    if row.parts is None:
        return bytes(row.data)  # stored inline before schema 3
    parts = conn.execute(
        select(context_parts.c.path, context_parts.c.mode, context_parts.c.sha256)
        .where(context_parts.c.archive == row.archive)
        .order_by(context_parts.c.position)
    ).all()
    if len(parts) != row.parts:
        raise StoreError(
            f"the build context of {key} is incomplete in the store ({len(parts)} of {row.parts} "
            "parts); submit it again"
        )
    found = _read_blobs(conn, {p.sha256 for p in parts}, key)
    if len(parts) == 1 and parts[0].mode == WHOLE_ARCHIVE:
        data = found[parts[0].sha256]
    else:
        data = pack_parts([(p.path, p.mode, found[p.sha256]) for p in parts])
    # The archive's hash names its parts: a list of parts changed (or planted) after the fact shows here.
    if hashlib.sha256(data).hexdigest() != row.archive:
        raise StoreError(
            f"the build context of {key} is damaged in the store (its parts do not rebuild archive "
            f"{str(row.archive)[:12]}); submit it again"
        )
    return data


def delete_contexts(conn: Connection, keys: Sequence[str]) -> tuple[int, int]:
    """Drop the contexts under ``keys`` (their parts and blobs stay until ``delete_unreferenced``).
    Returns (contexts removed, inline bytes freed)."""
    removed = freed = 0
    for batch in _batches(keys):
        freed += (
            conn.execute(
                select(func.coalesce(func.sum(func.length(run_contexts.c.data)), 0)).where(
                    run_contexts.c.run_id.in_(batch)
                )
            ).scalar()
            or 0
        )
        removed += conn.execute(delete(run_contexts).where(run_contexts.c.run_id.in_(batch))).rowcount or 0
    return removed, int(freed)


def delete_unreferenced(conn: Connection) -> tuple[int, int]:
    """Delete the parts of archives no context names, then every blob no part names. Call with the
    exclusive lock held (``lock_for_gc``). Returns (blobs removed, stored bytes freed)."""
    _lock_blobs(conn, shared=False)  # taken already by gc; here for any other caller
    conn.execute(delete(context_parts).where(~exists().where(run_contexts.c.archive == context_parts.c.archive)))
    orphan = ~exists().where(context_parts.c.sha256 == blobs.c.sha256)
    count, size = conn.execute(
        select(func.count(), func.coalesce(func.sum(func.length(blobs.c.data)), 0)).where(orphan)
    ).one()
    if count:
        conn.execute(delete(blobs).where(orphan))
    return int(count), int(size)


def lock_for_gc(conn: Connection) -> None:
    """Hold off every enqueue's blob references until this transaction ends (PostgreSQL)."""
    _lock_blobs(conn, shared=False)


def split_archive(data: bytes) -> list[Part] | None:
    """The files of a context archive, if rebuilding it from them gives ``data`` exactly; else None."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            parts: list[Part] = []
            for member in tar:
                if not member.isfile() or member.mode not in _MODES:
                    return None
                source = tar.extractfile(member)
                if source is None:
                    return None
                parts.append((member.name, member.mode, source.read()))
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        return None
    return parts if pack_parts(parts) == data else None


def pack_parts(parts: Iterable[Part]) -> bytes:
    """The archive of ``parts`` exactly as ``packaging.pack_context`` writes one (sorted paths, mtime
    0, owner 0/0 without names, PAX, gzip without a name or time). The store keeps its own copy of
    the writer because it sits below packaging; ``split_archive`` checks that the two agree."""
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path, mode, data in parts:
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = mode
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def blob_bytes(conn: Connection) -> int:
    """Stored bytes of all blobs (what the benchmark and gc report)."""
    return int(conn.execute(select(func.coalesce(func.sum(func.length(blobs.c.data)), 0))).scalar() or 0)


def _read_blobs(conn: Connection, digests: set[str], key: str) -> dict[str, bytes]:
    rows = conn.execute(
        select(blobs.c.sha256, blobs.c.compressed, blobs.c.data).where(blobs.c.sha256.in_(sorted(digests)))
    ).all()
    found: dict[str, bytes] = {}
    for row in rows:
        raw = zlib.decompress(row.data) if row.compressed else bytes(row.data)
        # The hash is the name: bytes that do not match it were changed or planted after the fact.
        if hashlib.sha256(raw).hexdigest() != row.sha256:
            raise StoreError(
                f"the build context of {key} is damaged in the store (blob {row.sha256[:12]} does "
                "not match its hash); submit it again"
            )
        found[row.sha256] = raw
    missing = digests - found.keys()
    if missing:
        raise StoreError(
            f"the build context of {key} is incomplete in the store (blob {min(missing)[:12]} is "
            "missing); submit it again"
        )
    return found


def _blob_row(digest: str, raw: bytes, now: float, dialect: str) -> dict:
    if dialect == "postgresql":
        # Raw: PostgreSQL compresses large values itself (TOAST), and a team store's CHECK
        # recomputes the hash of what is stored (store/_team.py).
        return {"sha256": digest, "size": len(raw), "compressed": False, "data": raw, "created_at": now}
    packed = zlib.compress(raw, 6) if _compressible(raw) else raw
    smaller = len(packed) < len(raw)
    return {
        "sha256": digest,
        "size": len(raw),
        "compressed": smaller,
        "data": packed if smaller else raw,
        "created_at": now,
    }


def _compressible(raw: bytes) -> bool:
    """Whether zlib is worth running over ``raw``: a fast trial on its start. The wheel (a zip) and
    other packed files would cost a full compression pass each for nothing."""
    sample = raw[:65536]
    return len(zlib.compress(sample, 1)) < len(sample) * 0.9


def _insert_new(conn: Connection, table: Any, key: list[str]) -> Any:
    """An insert that skips rows another transaction stored meanwhile (same key, same content)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=key)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=key)


def _lock_blobs(conn: Connection, shared: bool) -> None:
    """PostgreSQL only (a SQLite write transaction already excludes every other writer)."""
    if conn.dialect.name != "postgresql":
        return
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    conn.execute(text(f"SELECT {fn}(:key)"), {"key": _BLOB_LOCK_KEY})


def _batches(keys: Sequence[str]) -> Iterable[list[str]]:
    keys = list(keys)
    for start in range(0, len(keys), _BATCH):
        yield keys[start : start + _BATCH]
