"""Store benchmark: claims per second (1 and 4 claiming processes) and claim latency with a short and a
long queue, on SQLite and on PostgreSQL.

    python benchmarks/bench_store.py [--repeat N]

PostgreSQL is taken from ``LAUNCH_JUPYTER_TEST_PG`` (default the local test server); each measurement
uses a throw-away schema. ``run(repeat)`` returns the figures as a dict for a benchmark runner.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from launch_jupyter.core.model import Queue, Run
from launch_jupyter.core.states import RunState
from launch_jupyter.store import open_store

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
THROUGHPUT_RUNS = 2000
LATENCY_SIZES = (100, 10_000)
LATENCY_CLAIMS = 50

CLAIMER = """
import json, sys, time
from launch_jupyter.store import open_store
url, agent, queue_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_store(url)
print("ready", flush=True)
sys.stdin.readline()
start = time.perf_counter_ns(), time.time()
n = 0
while store.claim([queue_id], agent, 600) is not None:
    n += 1
print(json.dumps({"n": n, "start": start[1], "end": time.time()}), flush=True)
store.close()
"""


@contextmanager
def sqlite_store_url():
    """A fresh SQLite file."""
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'launch.db'}"


@contextmanager
def pg_store_url():
    """A fresh schema on the PostgreSQL server, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = os.environ.get("LAUNCH_JUPYTER_TEST_PG") or PG_DEFAULT
    server = server.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"lj_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            make_url(server)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def make_queue(url: str) -> Queue:
    with open_store(url) as store:
        return store.create_queue(
            Queue(entity="team", name="bench", resource="local-process", config={}, created_by="alice")
        )


def fill(url: str, queue: Queue, count: int) -> float:
    """Enqueue ``count`` runs through the public API; returns enqueues per second."""
    with open_store(url) as store:
        start = time.perf_counter()
        for _ in range(count):
            store.enqueue(
                Run(
                    id="",
                    queue_id=queue.id,
                    queue_name=queue.name,
                    entity=queue.entity,
                    author="alice",
                    resource=queue.resource,
                )
            )
        return count / (time.perf_counter() - start)


def bulk_fill(url: str, queue: Queue, count: int) -> None:
    """Insert ``count`` queued runs in one statement (only to set up the long-queue latency case fast)."""
    from launch_jupyter.store._schema import (
        runs,  # private on purpose: set-up, not the thing measured
    )

    now = time.time()
    rows = [
        {
            "id": uuid.uuid4().hex[:12],
            "queue_id": queue.id,
            "queue_name": queue.name,
            "entity": queue.entity,
            "author": "alice",
            "resource": queue.resource,
            "state": RunState.QUEUED.value,
            "priority": 2,
            "name": "",
            "notebook": "",
            "parameters": {},
            "template_values": {},
            "resource_args": {},
            "config": {},
            "cancel_requested": False,
            "message": "",
            "created_at": now + i * 1e-6,
            "updated_at": now,
        }
        for i in range(count)
    ]
    with open_store(url) as store, store._backend.write() as conn:
        conn.execute(runs.insert(), rows)


def claims_per_second(url: str, processes: int) -> float:
    """Claim THROUGHPUT_RUNS runs with ``processes`` agent processes started together."""
    queue = make_queue(url)
    bulk_fill(url, queue, THROUGHPUT_RUNS)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, url, f"agent-{n}", str(queue.id)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a claiming process failed to start")
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.communicate(timeout=600)[0].strip().splitlines()[-1]) for proc in procs]
    claimed = sum(r["n"] for r in results)
    if claimed != THROUGHPUT_RUNS:
        raise RuntimeError(f"claimed {claimed} of {THROUGHPUT_RUNS} runs")
    return claimed / (max(r["end"] for r in results) - min(r["start"] for r in results))


def claim_latencies_ms(url: str, queued: int) -> list[float]:
    """Latency of single claims from a queue holding ``queued`` runs."""
    queue = make_queue(url)
    bulk_fill(url, queue, queued)
    latencies = []
    with open_store(url) as store:
        store.claim([queue.id], "warm-up", 600)
        for _ in range(LATENCY_CLAIMS):
            start = time.perf_counter()
            store.claim([queue.id], "agent", 600)
            latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_dialect(make_url, repeat: int) -> dict:
    """All figures for one kind of database."""
    figures: dict = {"claims_per_s": {}, "claim_latency_ms": {}}
    with make_url() as url:
        queue = make_queue(url)
        figures["enqueues_per_s"] = round(fill(url, queue, 500), 1)
    for processes in (1, 4):
        rates = []
        for _ in range(repeat):
            with make_url() as url:
                rates.append(claims_per_second(url, processes))
        figures["claims_per_s"][processes] = round(statistics.median(rates), 1)
    for size in LATENCY_SIZES:
        latencies: list[float] = []
        for _ in range(repeat):
            with make_url() as url:
                latencies += claim_latencies_ms(url, size)
        figures["claim_latency_ms"][size] = {
            "p50": round(percentile(latencies, 50), 3),
            "p95": round(percentile(latencies, 95), 3),
        }
    return figures


def pg_available() -> str | None:
    """None when the server answers, else why not."""
    try:
        with pg_store_url():
            return None
    except Exception as err:  # noqa: BLE001 - any failure means: no server to measure
        return str(err).splitlines()[0]


def run(repeat: int = 3) -> dict:
    """Measure everything; PostgreSQL figures are replaced by ``{"skipped": reason}`` without a server."""
    results = {"sqlite": bench_dialect(sqlite_store_url, repeat)}
    reason = pg_available()
    results["postgresql"] = {"skipped": reason} if reason else bench_dialect(pg_store_url, repeat)
    results["cpus"] = os.cpu_count()
    return results


def report(results: dict) -> str:
    lines = [f"store benchmark ({results['cpus']} CPUs)"]
    for name in ("sqlite", "postgresql"):
        fig = results[name]
        if "skipped" in fig:
            lines.append(f"  {name}: skipped ({fig['skipped']})")
            continue
        lines.append(f"  {name}: enqueue {fig['enqueues_per_s']:.0f}/s")
        for processes, rate in fig["claims_per_s"].items():
            lines.append(f"    claims/s with {processes} process(es): {rate:.0f}")
        for size, lat in fig["claim_latency_ms"].items():
            lines.append(f"    claim latency, {size} queued: p50 {lat['p50']:.2f} ms  p95 {lat['p95']:.2f} ms")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    results = run(args.repeat)
    print(json.dumps(results, indent=2) if args.json else report(results))


if __name__ == "__main__":
    main()
