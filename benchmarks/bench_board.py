"""Run board benchmark: SQL statements for one board page of 50 runs (target ≤ 3) and the time to
render (refresh) a board page with 10,000 runs in the store (target ≤ 0.3 s), on SQLite and on
PostgreSQL; and the size of the queue editor's bundle (CodeMirror 6, esbuild).

    python benchmarks/bench_board.py [--runs 10000] [--repeat 20]

Statements are counted with SQLAlchemy's ``before_cursor_execute`` event on the store's engine.
The widget is the real RunBoard (no kernel; the trait updates it sends are part of the time).
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (str(HERE), str(HERE.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench_store import make_queue, pg_store_url, sqlite_store_url  # noqa: E402

from launch_jupyter.core.states import RunState  # noqa: E402

STATES = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.RUNNING, RunState.QUEUED)


def bulk_fill(url: str, count: int) -> None:
    """``count`` runs in mixed states, each with its queued/running/final events, inserted in bulk
    (set-up through the schema on purpose: the thing measured is the board, not the inserts)."""
    from launch_jupyter.store import open_store
    from launch_jupyter.store._schema import run_events, runs

    queue = make_queue(url)
    now = time.time() - count
    run_rows, event_rows = [], []
    for i in range(count):
        state = STATES[i % len(STATES)]
        run_id = uuid.uuid4().hex[:12]
        created = now + i
        started = None if state in (RunState.QUEUED,) else created + 1
        finished = created + 5 if state.is_terminal else None
        run_rows.append(
            {
                "id": run_id,
                "queue_id": queue.id,
                "queue_name": queue.name,
                "entity": queue.entity,
                "author": "alice",
                "resource": queue.resource,
                "state": state.value,
                "priority": 2,
                "name": f"job-{i:05d}",
                "notebook": "",
                "parameters": {},
                "template_values": {},
                "resource_args": {},
                "config": {},
                "cancel_requested": False,
                "message": "cell 4 raised RuntimeError: failing on purpose" if state == RunState.FAILED else "",
                "created_at": created,
                "updated_at": finished or created,
                "started_at": started,
                "finished_at": finished,
            }
        )
        event_rows.append({"run_id": run_id, "time": created, "state": "queued", "message": ""})
        if started:
            event_rows.append({"run_id": run_id, "time": started, "state": "running", "message": ""})
        if finished:
            event_rows.append({"run_id": run_id, "time": finished, "state": state.value, "message": ""})
    with open_store(url) as store, store._backend.write() as conn:
        conn.execute(runs.insert(), run_rows)
        conn.execute(run_events.insert(), event_rows)


def measure(url: str, runs: int, repeat: int) -> dict:
    from sqlalchemy import event

    from launch_jupyter import api
    from launch_jupyter.widgets import RunBoard

    bulk_fill(url, runs)
    engine = api.open_store(url)._backend.engine
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    board = RunBoard(follow_events=False, store_url=url)
    board.refresh()  # warm: the agent registry is read (and cached) once
    event.listen(engine, "before_cursor_execute", listen)
    try:
        board.refresh()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    # SQLite's explicit BEGIN (the store's own transaction set-up) is not a query: counted apart.
    statements = len([q for q in seen if not q.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))])
    transaction = len(seen) - statements
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        board.refresh()
        times.append(time.perf_counter() - start)
    filtered = []
    for _ in range(repeat):
        start = time.perf_counter()
        board.set_view(states=["failed"], text="job-0", sort="name", descending=False, page=3)
        filtered.append(time.perf_counter() - start)
        board.set_view(states=[], text="", sort="created", descending=True)
    return {
        "statements": statements,
        "transaction": transaction,
        "rows": len(board.rows),
        "total": board.total,
        "refresh_p50_s": statistics.median(times),
        "refresh_max_s": max(times),
        "filtered_p50_s": statistics.median(filtered),
    }


def bundle_size() -> tuple[int, int] | None:
    from launch_jupyter.widgets import _assets

    try:
        data = _assets.bundle_path("queue_editor.js").read_bytes()
    except FileNotFoundError:
        return None
    return len(data), len(gzip.compress(data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(XDG_CONFIG_HOME=f"{home}/config", XDG_DATA_HOME=f"{home}/data", LAUNCH_JUPYTER_USER="alice")
        problems = []
        for name, store_url in (("sqlite", sqlite_store_url), ("postgresql", pg_store_url)):
            try:
                with store_url() as url:
                    fig = measure(url, args.runs, args.repeat)
            except Exception as err:  # e.g. no PostgreSQL server here
                print(f"{name}: not available: {type(err).__name__}: {err}")
                continue
            print(
                f"{name}: board page of {fig['rows']} runs ({fig['total']} in the store): {fig['statements']} SQL "
                f"statements (target ≤ 3; + {fig['transaction']} BEGIN/COMMIT); refresh p50 {fig['refresh_p50_s'] * 1000:.1f} ms, max "
                f"{fig['refresh_max_s'] * 1000:.1f} ms (target ≤ 300 ms); filtered+sorted page p50 "
                f"{fig['filtered_p50_s'] * 1000:.1f} ms"
            )
            if fig["statements"] > 3:
                problems.append(f"{name}: {fig['statements']} statements for one page")
        size = bundle_size()
        if size:
            print(
                f"queue editor bundle (CodeMirror 6, esbuild --minify): {size[0] / 1024:.0f} KiB, "
                f"{size[1] / 1024:.0f} KiB gzipped"
            )
        for problem in problems:
            print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
