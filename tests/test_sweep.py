"""Sweeps end to end on a local-process queue: real notebooks recording values computed from their
parameters, one build context per sweep, --max-parallel from the events, cancel mid-sweep, bad input
that queues nothing, and the claim's sweep limit under concurrent claims on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import nbformat
import pytest
from sqlalchemy import func, select

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.errors import LaunchError, ParameterError
from launch_jupyter.core.states import TERMINAL, RunState
from launch_jupyter.store._schema import run_contexts, runs, sweeps

pytestmark = pytest.mark.slow


def score(lr: float, layers: int) -> float:
    return round(layers * 10 + lr * 100, 6)


@pytest.fixture
def notebook(tmp_path) -> Path:
    """A notebook that records ``score`` (computed from its parameters) and can sleep first."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("lr = 0.1\nlayers = 2\nseconds = 0.0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "import time\nimport launch_jupyter\ntime.sleep(seconds)\n"
            "launch_jupyter.record('score', round(layers * 10 + lr * 100, 6))\n"
            "launch_jupyter.record('label', f'{layers} layers')"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb" / "train.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


def count(table, *where) -> int:
    store = api.open_store()
    with store._backend.read() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


def spans(run_ids) -> list[tuple[float, float]]:
    """(claimed, ended) times of each run, from its events."""
    found = []
    for run_id in run_ids:
        events = api.events(run_id)
        start = next((e.time for e in events if e.state is RunState.CLAIMED), None)
        end = next((e.time for e in events if e.state in TERMINAL), None)
        if start is not None:
            found.append((start, end if end is not None else float("inf")))
    return found


def most_at_once(found) -> int:
    return max((sum(1 for s, e in found if s <= t < e) for t, _ in found), default=0)


def test_a_3x2_grid_records_six_values_built_once_and_sorted(notebook):
    api.create_queue("q", "local-process")
    sweep = api.sweep(notebook, "q", parameters={"lr": "0.1,0.01,0.001", "layers": "2,4"}, max_parallel=2, name="grid")
    assert sweep.sweep["total"] == 6 and sweep.sweep["space"] == {"lr": [0.1, 0.01, 0.001], "layers": [2, 4]}
    queued = sweep.runs()
    assert [r.parameters for r in queued] == [{"lr": lr, "layers": n} for lr in (0.1, 0.01, 0.001) for n in (2, 4)]
    assert len({r.content_hash for r in queued}) == 1 and queued[0].content_hash == sweep.sweep["content_hash"]
    assert count(run_contexts) == 1  # packaged once, stored once
    Agent(["q"], max_jobs=4, poll_interval=0.2).run_forever(until_idle=True)

    table = api.get_sweep(sweep.id, sort="-score")
    assert table["counts"] == {"succeeded": 6}
    expected = sorted((score(lr, n) for lr in (0.1, 0.01, 0.001) for n in (2, 4)), reverse=True)
    assert [row["values"]["score"] for row in table["rows"]] == expected
    for row in table["rows"]:
        p = row["parameters"]
        assert row["values"] == {"score": score(p["lr"], p["layers"]), "label": f"{p['layers']} layers"}
        assert row["state"] == "succeeded" and row["duration"] > 0
    assert table["best"] == table["rows"][0]["id"] and table["rows"][0]["parameters"] == {"lr": 0.1, "layers": 4}
    assert table["parameters"] == ["lr", "layers"] and table["values"] == ["score", "label"]
    # --max-parallel 2 with room for 4 in the agent: two at a time, never three.
    assert most_at_once(spans(r.id for r in queued)) == 2


def test_max_parallel_holds_across_two_agents(notebook):
    api.create_queue("q", "local-process")
    sweep = api.sweep(notebook, "q", parameters={"layers": "range(1, 6)", "seconds": "0.5"}, max_parallel=2)
    agents = [Agent(["q"], max_jobs=3, poll_interval=0.2) for _ in range(2)]
    threads = [threading.Thread(target=a.run_forever, kwargs={"until_idle": True}) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    found = sweep.runs()
    assert all(r.state is RunState.SUCCEEDED for r in found), [(r.state, r.message) for r in found]
    assert len({r.agent_id for r in found}) >= 1
    assert most_at_once(spans(r.id for r in found)) <= 2


def test_cancel_mid_sweep_cancels_queued_and_active_runs(notebook):
    api.create_queue("q", "local-process")
    sweep = api.sweep(notebook, "q", parameters={"layers": "1,2,3,4", "seconds": "600.0"}, max_parallel=1)
    agent = Agent(["q"], max_jobs=2, poll_interval=0.2).start()
    try:
        deadline = time.monotonic() + 120
        while not any(r.state is RunState.RUNNING for r in sweep.runs()):
            assert time.monotonic() < deadline, [r.state for r in sweep.runs()]
            time.sleep(0.2)
        done = sweep.cancel()
        assert done == {"id": sweep.id, "cancelled": 3, "cancelling": 1}
        found = sweep.wait(timeout=120)
    finally:
        agent.stop()
    assert [r.state for r in found] == [RunState.CANCELLED] * 4
    running = next(r for r in found if RunState.RUNNING in [e.state for e in api.events(r.id)])
    assert "cancel requested (its sweep was cancelled)" in [e.message for e in api.events(running.id)]
    assert api.get_sweep(sweep.id)["sweep"]["cancelled_at"] is not None


@pytest.mark.parametrize(
    ("parameters", "kwargs", "words"),
    [
        ({"depth": "1,2"}, {}, 'no parameter "depth"'),
        ({"lr": "[]"}, {}, "-p lr: the list of values is empty"),
        ({"layers": "2,'four'"}, {}, "parameter layers is an int"),
        ({"lr": "uniform(0.1, 1)"}, {}, "pass --random N"),
        ({"lr": "0.1,0.2"}, {"random": 0}, "--random: the number of points"),
        ({"layers": "range(1001)"}, {}, "more than the maximum of 1000"),
        ({"layers": "range(3)"}, {"max_points": 2}, "more than the maximum of 2"),
        ({"layers": "1,2"}, {"max_parallel": 0}, "--max-parallel"),
    ],
)
def test_bad_input_is_one_line_and_queues_nothing(notebook, parameters, kwargs, words):
    api.create_queue("q", "local-process")
    with pytest.raises(LaunchError) as caught:
        api.sweep(notebook, "q", parameters=parameters, **kwargs)
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert count(runs) == 0 and count(sweeps) == 0 and count(run_contexts) == 0


def test_a_seeded_random_sweep_is_reproducible(notebook):
    api.create_queue("q", "local-process")
    space = {"lr": "loguniform(1e-4, 1e-1)", "layers": "choice(2, 4, 8)"}
    first = api.sweep(notebook, "q", parameters=space, random=8, seed=42)
    again = api.sweep(notebook, "q", parameters=space, random=8, seed=42)
    other = api.sweep(notebook, "q", parameters=space, random=8, seed=43)
    drawn = [r.parameters for r in first.runs()]
    assert drawn == [r.parameters for r in again.runs()] != [r.parameters for r in other.runs()]
    assert all(isinstance(p["lr"], float) and p["layers"] in (2, 4, 8) for p in drawn)
    assert first.sweep["method"] == "random" and first.sweep["seed"] == 42
    with pytest.raises(ParameterError, match="parameter layers is an int"):
        api.sweep(notebook, "q", parameters={"layers": "uniform(1, 3)"}, random=3, seed=1)


def test_a_thousand_points_queue_in_one_transaction(notebook):
    api.create_queue("q", "local-process")
    sweep = api.sweep(notebook, "q", parameters={"layers": "range(100)", "lr": "range(10)"})
    assert sweep.sweep["total"] == 1000 and count(runs) == 1000 and count(run_contexts) == 1
    listed = api.list_sweeps()
    assert [(s["id"], s["done"], s["counts"]) for s in listed] == [(sweep.id, 0, {"queued": 1000})]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_claims_never_exceed_max_parallel(notebook, backend, request):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    api.configure(store_url=url)
    api.create_queue("q", "local-process")
    sweep = api.sweep(notebook, "q", parameters={"layers": "range(12)"}, max_parallel=3)
    queue_id = api.get_queue("q").id
    claimed: list = []
    barrier = threading.Barrier(6)

    def claimer(n: int) -> None:
        store = api.open_store()
        barrier.wait()
        for _ in range(4):
            run = store.claim([queue_id], f"agent-{n}", 60.0)
            if run is not None:
                claimed.append(run)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(claimed) == 3 and len({r.id for r in claimed}) == 3
    assert count(runs, runs.c.state == "claimed") == 3 and count(runs, runs.c.state == "queued") == 9
    assert all(r.sweep_id == sweep.id for r in claimed)
    # A run outside the sweep is still claimed while the sweep is full.
    single = api.submit(notebook, "q", parameters={"layers": 99}, save=False)
    assert api.open_store().claim([queue_id], "agent-x", 60.0).id == single.id
