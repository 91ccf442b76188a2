"""Many agents claiming at once: every run is claimed exactly once (real processes, real databases)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter

import pytest

from launch_jupyter.core.model import Queue, Run
from launch_jupyter.core.states import RunState
from launch_jupyter.store import open_store

pytestmark = pytest.mark.slow

# An agent process: open the store, say ready, wait for "go", claim until nothing is left, print the ids.
CLAIMER = """
import json, sys
from launch_jupyter.store import open_store
url, agent, queue_ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
store = open_store(url)
print("ready", flush=True)
sys.stdin.readline()
claimed = []
while (run := store.claim(queue_ids, agent, 600)) is not None:
    claimed.append(run.id)
print(json.dumps(claimed), flush=True)
store.close()
"""

OPENER = """
import sys
from launch_jupyter.store import open_store
store = open_store(sys.argv[1])
store.list_queues()
store.close()
"""


def fill(url: str, runs_per_queue: int, queues: int = 2) -> tuple[list[int], list[str]]:
    """Create ``queues`` queues holding ``runs_per_queue`` queued runs each."""
    queue_ids, run_ids = [], []
    with open_store(url) as store:
        for i in range(queues):
            queue = store.create_queue(
                Queue(entity="team", name=f"q{i}", resource="local-process", config={}, created_by="alice")
            )
            queue_ids.append(queue.id)
            for _ in range(runs_per_queue):
                run_ids.append(
                    store.enqueue(
                        Run(
                            id="",
                            queue_id=queue.id,
                            queue_name=queue.name,
                            entity=queue.entity,
                            author="alice",
                            resource=queue.resource,
                        )
                    ).id
                )
    return queue_ids, run_ids


def claim_in_processes(url: str, queue_ids: list[int], agents: int) -> dict[str, list[str]]:
    """Start ``agents`` claiming processes, release them together, return {agent id: run ids claimed}."""
    procs = {}
    for n in range(agents):
        order = queue_ids[n % len(queue_ids) :] + queue_ids[: n % len(queue_ids)]  # rotated, as agents do
        procs[f"agent-{n}"] = subprocess.Popen(
            [sys.executable, "-c", CLAIMER, url, f"agent-{n}", json.dumps(order)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    for proc in procs.values():
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs.values():
        proc.stdin.write("go\n")
        proc.stdin.flush()
    claimed = {}
    for agent, proc in procs.items():
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"{agent} failed"
        claimed[agent] = json.loads(out.strip().splitlines()[-1])
    return claimed


def assert_claimed_exactly_once(url: str, run_ids: list[str], claimed: dict[str, list[str]]) -> None:
    every_claim = [run_id for ids in claimed.values() for run_id in ids]
    duplicates = [run_id for run_id, n in Counter(every_claim).items() if n > 1]
    assert duplicates == []
    assert sorted(every_claim) == sorted(run_ids)
    with open_store(url) as store:
        owner = {run.id: run.agent_id for run in store.list_runs()}
        assert all(run.state is RunState.CLAIMED for run in store.list_runs())
        claim_events = Counter(e.run_id for e in store.events_since(0, limit=100_000) if e.state is RunState.CLAIMED)
    assert set(claim_events.values()) == {1} and len(claim_events) == len(run_ids)
    for agent, ids in claimed.items():
        assert all(owner[run_id] == agent for run_id in ids)


@pytest.mark.postgres
def test_four_processes_claim_a_thousand_runs_from_postgresql_exactly_once(pg_url):
    queue_ids, run_ids = fill(pg_url, runs_per_queue=600)
    claimed = claim_in_processes(pg_url, queue_ids, agents=4)
    assert_claimed_exactly_once(pg_url, run_ids, claimed)
    assert sum(1 for ids in claimed.values() if ids) >= 2  # the work really was shared


def test_two_processes_claim_a_thousand_runs_from_sqlite_exactly_once(sqlite_url):
    queue_ids, run_ids = fill(sqlite_url, runs_per_queue=500)
    claimed = claim_in_processes(sqlite_url, queue_ids, agents=3)
    assert_claimed_exactly_once(sqlite_url, run_ids, claimed)


def test_threads_sharing_one_process_claim_exactly_once(store_url):
    queue_ids, run_ids = fill(store_url, runs_per_queue=100)
    claimed: dict[str, list[str]] = {}

    def agent(name: str) -> None:
        with open_store(store_url) as store:
            ids = []
            while (run := store.claim(queue_ids, name, 600)) is not None:
                ids.append(run.id)
            claimed[name] = ids

    threads = [threading.Thread(target=agent, args=(f"thread-{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert_claimed_exactly_once(store_url, run_ids, claimed)


def test_several_processes_can_create_the_schema_at_once(store_url):
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, store_url]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    with open_store(store_url) as store:
        assert store.list_queues() == []
