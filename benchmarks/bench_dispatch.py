"""Figure 3: dispatch latency, enqueue → runner submit, with an idle agent.

Measured from a run's ``queued`` event to its ``submitted`` event (both in the store), one run at a
time: submit, wait for ``submitted``, end the work at once, wait for a final state, repeat. Agents:
in-process (a thread of this process) and cross-process (``launch-jupyter agent`` subprocess), on
SQLite and on PostgreSQL (a fresh database, dropped afterwards); targets: ``local-process`` and,
when the fake Vertex AI server is here, ``vertex`` (noop builder, ``image=`` given). The baseline is
what a poll-only agent averages: half its poll interval.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from _stats import ROOT, figure, not_available, percentile, spread_text, summary

POLL_INTERVAL = 2.0
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
IMAGE = "us-docker.pkg.dev/p/r/img:tag"
NOTEBOOK = ROOT / "examples" / "notebooks" / "quickstart.ipynb"
SUBMIT_TIMEOUT = 60.0
FINISH_TIMEOUT = 60.0


# ------------------------------------------------------------------ parts: PostgreSQL, fake Vertex


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this run (dropped afterwards); its SQLAlchemy URL."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        from launch_jupyter.store import close_all

        close_all(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")  # stop LISTEN retries first
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fake_vertex_server(work: Path) -> Iterator[dict]:
    """The fake Vertex AI server as a subprocess (``tests.fakes.vertex_server`` standalone mode)."""
    port_file = work / "vertex-ports.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.vertex_server", "--port-file", str(port_file)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fake Vertex server did not start: {proc.stderr.read().decode()[-300:]}")
            time.sleep(0.1)
        info = json.loads(port_file.read_text())
        _post(info["rest_endpoint"] + "/_debug/script", {"states": ["JOB_STATE_SUCCEEDED"]})
        yield info
    finally:
        proc.terminate()
        proc.wait(10)


def _post(url: str, data: dict) -> None:
    req = urllib.request.Request(
        url, data=json.dumps(data).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req, timeout=10).read()


def fake_requests(endpoint: str) -> list[dict]:
    """Every request the fake recorded (``GET /_debug/requests``)."""
    with urllib.request.urlopen(endpoint + "/_debug/requests", timeout=10) as answer:
        return json.loads(answer.read())


def write_agent_config(work: Path, vertex: dict | None) -> Path:
    """A launch-config.yaml: noop builder, and the fake Vertex endpoint when there is one."""
    lines = ["builder:", "  type: noop", "max_jobs: -1"]
    if vertex:
        lines += [
            "environment:",
            f"  api_endpoint: {vertex['rest_endpoint']}",
            "  api_transport: rest",
            "  credentials: anonymous",
            "  project: p",
            "  region: us-central1",
        ]
    path = work / "launch-config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ agents


@contextlib.contextmanager
def in_process_agent(config_path: Path, store_url: str, queue: str) -> Iterator[None]:
    """An Agent thread in this process."""
    from launch_jupyter.agent import Agent
    from launch_jupyter.core.config import load_agent_config

    agent = Agent(
        [queue], config=load_agent_config(str(config_path)), store_url=store_url, poll_interval=POLL_INTERVAL
    ).start()
    try:
        yield
    finally:
        agent.stop()


@contextlib.contextmanager
def cross_process_agent(config_path: Path, store_url: str, queue: str, work: Path) -> Iterator[None]:
    """A ``launch-jupyter agent`` subprocess, stopped with SIGTERM (then killed) at the end."""
    log = work / f"agent-{queue}.log"
    argv = [
        sys.executable,
        "-m",
        "launch_jupyter.cli",
        "-c",
        str(config_path),
        "--store",
        store_url,
        "agent",
        "-q",
        queue,
        "--poll-interval",
        str(POLL_INTERVAL),
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "serving" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not start: {log.read_text()[-300:]}")
            time.sleep(0.05)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# ------------------------------------------------------------------ one measurement


class DispatchStalled(RuntimeError):
    """A run was never submitted, or never ended: the agent is broken, not just slow."""


def _event_time(events: list, state: str) -> float | None:
    return next((e.time for e in events if str(e.state) == state), None)


def _wait_submitted(run_id: str, store_url: str) -> list:
    from launch_jupyter import api

    deadline = time.monotonic() + SUBMIT_TIMEOUT
    while time.monotonic() < deadline:
        events = api.events(run_id, store_url=store_url)
        states = {str(e.state) for e in events}
        if "submitted" in states:
            return events
        if states & {"failed", "cancelled"}:
            raise DispatchStalled(f"run {run_id} ended before it was submitted: {events[-1].message}")
        time.sleep(0.02)
    raise DispatchStalled(f"run {run_id} was not submitted within {SUBMIT_TIMEOUT:.0f} s")


def _end_local_process(external_id: str) -> None:
    """Kill the run's process group at once: the measurement is done, the notebook need not run."""
    pid = int(external_id.split(":", 1)[1].split("@", 1)[0])
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _wait_final(run_id: str, store_url: str) -> None:
    from launch_jupyter import api
    from launch_jupyter.core.states import TERMINAL

    deadline = time.monotonic() + FINISH_TIMEOUT
    while api.get_run(run_id, store_url=store_url).state not in TERMINAL:
        if time.monotonic() > deadline:
            raise DispatchStalled(f"run {run_id} did not end within {FINISH_TIMEOUT:.0f} s")
        time.sleep(0.05)


def one_dispatch(queue: str, store_url: str, resource: str) -> float:
    """Submit one run, return queued→submitted seconds, then end it and wait for its final state."""
    from launch_jupyter import api

    # A random phase, so that enqueues do not lock step with a polling agent's loop.
    time.sleep(random.uniform(0, POLL_INTERVAL))
    image = IMAGE if resource == "vertex" else None
    handle = api.submit(NOTEBOOK, queue, store_url=store_url, image=image)
    events = _wait_submitted(handle.id, store_url)
    queued, submitted = _event_time(events, "queued"), _event_time(events, "submitted")
    if resource == "local-process":
        _end_local_process(api.get_run(handle.id, store_url=store_url).run.external_id or "")
    _wait_final(handle.id, store_url)  # the fake Vertex answers SUCCEEDED at the first status call
    return submitted - queued


def measure(mode: str, store_url: str, resource: str, config_path: Path, work: Path, runs: int) -> list[float]:
    """``runs`` dispatch latencies (after one warm-up run) for one agent mode / store / target."""
    from launch_jupyter import api
    from launch_jupyter.runners.vertex import DEFAULT_CONFIG

    queue = f"{mode}-{resource}-{uuid.uuid4().hex[:6]}"
    config = DEFAULT_CONFIG.replace("<REQUIRED>", "gs://bench-bucket") if resource == "vertex" else None
    api.create_queue(queue, resource, config=config, store_url=store_url)
    agent = (
        in_process_agent(config_path, store_url, queue)
        if mode == "in-process"
        else cross_process_agent(config_path, store_url, queue, work)
    )
    with agent:
        one_dispatch(queue, store_url, resource)  # warm-up: first SDK import, first connection
        return [one_dispatch(queue, store_url, resource) for _ in range(runs)]


# ------------------------------------------------------------------ figures


def _row(mode: str, store: str, resource: str, values: list[float]) -> dict:
    s = summary(values)
    baseline = POLL_INTERVAL / 2
    return figure(
        f"dispatch {mode}, {store}, {resource}: p50",
        1000 * s["p50"],
        "ms",
        baseline=f"poll-only agent (poll_interval/2, {POLL_INTERVAL:g} s)",
        baseline_value=1000 * baseline,
        n=len(values),
        spread=spread_text(values, 1000),
        note=f"p95 {1000 * percentile(values, 95):.0f} ms (×{percentile(values, 95) / baseline:.2g})",
    )


def _stores(stack: contextlib.ExitStack, work: Path) -> tuple[dict[str, str], list[dict]]:
    stores = {"SQLite": f"sqlite:///{work / 'launch.db'}"}
    try:
        stores["PostgreSQL"] = stack.enter_context(postgres_database())
        return stores, []
    except Exception as err:  # no server here: measure SQLite only, and say so
        return stores, [not_available("dispatch on PostgreSQL", f"{type(err).__name__}: {err}")]


def _vertex(stack: contextlib.ExitStack, work: Path) -> tuple[dict | None, list[dict]]:
    try:
        import launch_jupyter.runners.vertex  # noqa: F401

        return stack.enter_context(fake_vertex_server(work)), []
    except Exception as err:
        return None, [not_available("dispatch to vertex (fake)", f"{type(err).__name__}: {err}")]


def run(quick: bool = False, runs: int | None = None) -> dict:
    """Figure 3 rows: p50/p95 dispatch latency per agent mode, store and target."""
    runs = runs or (12 if quick else 50)
    work = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    figures: list[dict] = []
    problems: list[str] = []
    try:
        with contextlib.ExitStack() as stack:
            stores, rows = _stores(stack, work)
            figures += rows
            vertex, rows = _vertex(stack, work)
            figures += rows
            config_path = write_agent_config(work, vertex)
            resources = ["local-process"] + (["vertex"] if vertex else [])
            for resource in resources:
                for store, url in stores.items():
                    for mode in ("in-process", "cross-process"):
                        try:
                            values = measure(mode, url, resource, config_path, work, runs)
                        except Exception as err:
                            figures.append(
                                not_available(f"dispatch {mode}, {store}, {resource}", f"{type(err).__name__}: {err}")
                            )
                            if isinstance(err, DispatchStalled):
                                problems.append(f"dispatch {mode}, {store}, {resource}: {err}")
                            continue
                        figures.append(_row(mode, store, resource, values))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"figures": figures, "problems": problems}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
