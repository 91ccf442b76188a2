"""Store growth: bytes a SQLite store gains per submitted run, and the projection per 10,000 runs.

    .venv/bin/python benchmarks/bench_store_growth.py [--runs N] [--edited N]

Submits ``--runs`` runs (default 2,000) of examples/notebooks/quickstart.ipynb with ``save=False``,
each with its own parameter value (as a user's runs differ), to a fresh SQLite store in private XDG
folders (removed afterwards), then ``--edited`` more (default 200) of a copy of the notebook edited
before every submit, so each of those brings a notebook of its own. It prints the store file's
growth per run (after a WAL checkpoint and VACUUM, so free pages do not count), the same per table
(SQLite's ``dbstat``), and beside it the inline figure: the packed context each run would hold
without blobs (what schema 2 stored per run). Target (issue 14): ≤ 50 MB per 10,000 runs plus the
notebooks themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUICKSTART = ROOT / "examples" / "notebooks" / "quickstart.ipynb"
TABLES = ("runs", "run_events", "run_contexts", "context_parts", "blobs")


def _settle(db: Path) -> int:
    """The store file's size once the WAL is folded in and free pages are given back."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


def _table_bytes(db: Path) -> dict[str, int]:
    """Bytes per table, its indexes included (dbstat), or {} where SQLite was built without it."""
    with sqlite3.connect(db) as conn:
        try:
            names = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
            sizes: dict[str, int] = {}
            for name, pgsize in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                table = names.get(name, name)
                sizes[table] = sizes.get(table, 0) + pgsize
            return sizes
        except sqlite3.OperationalError:
            return {}


def _submit(api, notebook: Path, count: int, start: int, edit: bool) -> tuple[int, float]:
    """Submit ``count`` runs; returns (packed context bytes they carry, seconds)."""
    store = api.open_store()
    inline = 0
    began = time.perf_counter()
    for i in range(start, start + count):
        if edit:
            nb = json.loads(notebook.read_text())
            nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": [f"edit {i}"]})
            notebook.write_text(json.dumps(nb))
        run = api.submit(notebook, "bench", parameters={"name": f"run {i}"}, save=False)
        inline += len(store.get_context(run.id) or b"")
    return inline, time.perf_counter() - began


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs of the unchanged notebook (default 2,000)")
    parser.add_argument("--edited", type=int, default=200, help="runs of a notebook edited before each (default 200)")
    args = parser.parse_args()
    if args.runs < 1 or args.edited < 0:
        parser.error("--runs must be at least 1 and --edited at least 0")
    home = Path(tempfile.mkdtemp(prefix="lj-growth-"))
    try:
        for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data")):
            os.environ[var] = str(home / sub)
        os.environ.pop("LAUNCH_JUPYTER_DB", None)
        os.environ.setdefault("LAUNCH_JUPYTER_USER", "bench")
        from launch_jupyter import api

        api.create_queue("bench", "local-process")
        db = home / "data" / "launch_jupyter" / "launch.db"
        empty = _settle(db)
        inline, seconds = _submit(api, QUICKSTART, args.runs, 0, edit=False)
        after = _settle(db)
        per_run = (after - empty) / args.runs
        tables = _table_bytes(db)
        print(
            f"store growth, SQLite, {args.runs} runs of quickstart.ipynb (one parameter value each), "
            f"save=False, {seconds / args.runs * 1000:.0f} ms per submit"
        )
        print(f"  bytes per run: {per_run:,.0f}   per 10,000 runs: {_mb(per_run * 10_000)}   (target ≤ 50 MB)")
        print(
            f"  inline (schema 2, a packed context per run): {inline / args.runs:,.0f} bytes per run, "
            f"{_mb(inline / args.runs * 10_000)} per 10,000 runs; ratio {per_run / (inline / args.runs):.3f}"
        )
        if tables:
            print(
                "  per table, indexes included, per run: "
                + ", ".join(f"{t} {tables.get(t, 0) / args.runs:,.0f}" for t in TABLES)
            )
        if args.edited:
            edited = home / "project" / "quickstart.ipynb"
            edited.parent.mkdir()
            shutil.copy(QUICKSTART, edited)
            _submit(api, edited, args.edited, args.runs, edit=True)
            grown = _settle(db)
            notebook = len(edited.read_bytes())
            extra = (grown - after) / args.edited
            print(
                f"  {args.edited} runs of a notebook edited before each submit: {extra:,.0f} bytes per run "
                f"(its notebook {notebook:,} bytes raw, stored compressed), per 10,000 runs: {_mb(extra * 10_000)}"
            )
        from launch_jupyter.store import close_all

        close_all()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
