"""Schedule ticks fired vs expected, with several agents racing (issue 19; target: equal, none twice).

    .venv/bin/python benchmarks/bench_schedules.py [--store postgresql://127.0.0.1:5432/postgres]
        [--agents 2] [--hours 6]

Creates a per-minute schedule, then starts ``--agents`` processes that each call
``schedules.fire_due`` (what every agent loop turn calls) over the same ``--hours`` of clock we set,
one look every 5 s, released together. Prints the ticks expected, fired, fired twice (must be 0),
the runs queued, how the ticks split between the agents, and the cost of one look when nothing is
due (the price every agent loop turn pays), with 0 and with 1,000 schedules that are not due.
Default store: a fresh SQLite file; with ``--store postgresql://…`` a fresh schema there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOOKER = """
import json, sys, time
from pathlib import Path
from launch_jupyter.schedules import fire_due
from launch_jupyter.store import open_store
url, agent, t0, steps, go = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
store = open_store(url)
served = store.list_queues()
while not go.exists():
    time.sleep(0.005)
fired = sum(fire_due(store, served, agent, now=lambda: t0 + 5 * i) for i in range(steps))
print(json.dumps({"fired": fired}))
"""


def _pg_schema(url: str) -> tuple[str, str]:
    import psycopg
    from sqlalchemy.engine import make_url

    schema = f"bench_sched_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False), schema


def _look_cost(store, queues, repeats: int = 300) -> float:
    from launch_jupyter.schedules import fire_due

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fire_due(store, queues, "bench", now=time.time)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", help="postgresql://… (default: a fresh SQLite file)")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--hours", type=float, default=6.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-schedules-"))
    os.environ.update(
        XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"), LAUNCH_JUPYTER_USER="bench"
    )
    schema = None
    url = f"sqlite:///{home / 'launch.db'}"
    if args.store:
        url, schema = _pg_schema(args.store)
    from launch_jupyter import api
    from launch_jupyter.store import open_store

    try:
        api.create_queue("bench", "local-process", store_url=url)
        notebook = home / "nb.ipynb"
        shutil.copy(REPO / "examples" / "notebooks" / "quickstart.ipynb", notebook)
        store = open_store(url)
        idle_empty = _look_cost(store, store.list_queues())
        s = api.create_schedule("minutely", notebook, "bench", cron="* * * * *", timezone="UTC", store_url=url)
        steps = int(args.hours * 3600 / 5)
        go = home / "go"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", LOOKER, url, f"agent-{i}", repr(s.next_fire_at), str(steps), str(go)],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for i in range(args.agents)
        ]
        time.sleep(2.0)  # let the processes import and connect; the file releases them together
        started = time.monotonic()
        go.write_text("go")
        outputs = [json.loads(p.communicate()[0]) for p in procs]
        wall = time.monotonic() - started
        ticks = api.schedule_ticks("minutely", limit=None, store_url=url)
        last_look = s.next_fire_at + 5 * (steps - 1)
        expected = int((last_look - s.next_fire_at) // 60) + 1
        fired = [t for t in ticks if t["state"] == "fired"]
        twice = sum(n - 1 for n in Counter(t["fire_time"] for t in fired).values() if n > 1)
        runs = len(store.list_runs())
        split = Counter(t["agent_id"] for t in fired)
        for i in range(1000):  # schedules that are not due: what a look costs when a store has many
            api.create_schedule(
                f"later-{i}", notebook, "bench", cron="0 0 1 1 *", timezone="UTC", store_url=url, follow_file=True
            )
        api.delete_schedule("minutely", store_url=url)
        idle_many = _look_cost(store, store.list_queues())
        print(
            f"store {store.dialect}, {args.agents} agents, {args.hours:g} h of a per-minute schedule, "
            f"one look per agent every 5 s ({wall:.1f} s of real time):"
        )
        print(f"  ticks expected {expected}, fired {len(fired)}, fired twice {twice}, runs queued {runs}")
        print(
            f"  fired by agent: {dict(sorted(split.items()))}; reported by the agents: {[o['fired'] for o in outputs]}"
        )
        print(
            f"  one look with nothing due: {idle_empty:.2f} ms (no schedules), {idle_many:.2f} ms "
            "(1,000 schedules not due)"
        )
        ok = len(fired) == expected == runs and twice == 0
        print("OK" if ok else "MISMATCH")
        return 0 if ok else 1
    finally:
        from launch_jupyter.store import close_all

        close_all()
        if schema:
            import psycopg

            with psycopg.connect(args.store.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as c:
                c.execute(f'DROP SCHEMA "{schema}" CASCADE')
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
