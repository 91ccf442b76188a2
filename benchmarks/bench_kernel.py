"""Figure 6: does the in-kernel agent make the notebook feel slower?

1. A trivial cell (``1+1``) round trip in a real kernel (jupyter_client ``KernelManager``), before and
   after the kernel starts its agent and that agent holds 50 active runs: against the fake Vertex AI
   server (jobs kept RUNNING) and, in a full run, 50 local notebook processes (papermill, each
   sleeping) — ratio of the medians.
2. The idle agent's CPU time per minute: a process that runs only an idle Agent thread for a while,
   beside the same process without it (``resource.getrusage`` deltas; and the agent threads' own
   CPU time from ``psutil``), on SQLite and on PostgreSQL.
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
import textwrap
import time
from pathlib import Path

from _stats import ROOT, figure, median, not_available, spread_text

RUNS = 50
CELLS = 50
GAP = 0.4  # 50 cells over ≈10 s: five of the agent's 2 s status cycles
PARAMS_NOTEBOOK = ROOT / "examples" / "notebooks" / "parameters.ipynb"
QUICKSTART = ROOT / "examples" / "notebooks" / "quickstart.ipynb"
IMAGE = "us-docker.pkg.dev/p/r/img:tag"


# ------------------------------------------------------------------ a real kernel


class Kernel:
    """A python3 kernel of this environment with a blocking client."""

    def __init__(self, cwd: Path):
        from jupyter_client.manager import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(cwd), env=dict(os.environ))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def execute(self, code: str, timeout: float = 120) -> float:
        """Run ``code``; seconds until its execute_reply. Raises if the cell failed."""
        start = time.perf_counter()
        msg_id = self.kc.execute(code, silent=False, store_history=False)
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        elapsed = time.perf_counter() - start
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"kernel cell failed: {content.get('ename')}: {content.get('evalue')}")
        return elapsed

    def round_trips(self, count: int, gap: float = 0.0) -> list[float]:
        """``count`` round trips of the trivial cell, a random pause of up to ``gap`` s between them
        (so the cells span several of the agent's status cycles, as a user's typing would)."""
        times = []
        for _ in range(count):
            times.append(self.execute("1+1"))
            time.sleep(random.uniform(0, gap))
        return times

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _settle(seconds_max: float) -> None:
    """Wait until the machine's CPU is mostly idle again (starting 50 processes takes a while)."""
    import psutil

    deadline = time.monotonic() + seconds_max
    while time.monotonic() < deadline and psutil.cpu_percent(interval=1.0) > 25:
        pass


def _wait_runs(store_url: str, queue: str, states: set[str], count: int, timeout: float) -> None:
    from launch_jupyter import api

    deadline = time.monotonic() + timeout
    while True:
        runs = api.list_runs(queue=queue, store_url=store_url)
        reached = sum(1 for r in runs if str(r.state) in states)
        if reached >= count:
            return
        if time.monotonic() > deadline:
            seen = sorted({str(r.state) for r in runs})
            raise RuntimeError(f"only {reached} of {count} runs reached {sorted(states)} (states: {seen})")
        time.sleep(0.5)


def _kill_local_runs(store_url: str, queue: str) -> None:
    from launch_jupyter import api

    for run in api.list_runs(queue=queue, store_url=store_url):
        if run.external_id and run.external_id.startswith("local:"):
            pid = int(run.external_id.split(":", 1)[1].split("@", 1)[0])
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _start_agent_code(store_url: str, config_path: Path, resource: str, queue: str) -> str:
    """The cell that makes the kernel an agent holding ``RUNS`` runs (the in-kernel way)."""
    if resource == "vertex":
        config = "DEFAULT_CONFIG.replace('<REQUIRED>', 'gs://bench-bucket')"
        submit = f"api.submit({str(QUICKSTART)!r}, {queue!r}, image={IMAGE!r})"
        imports = "from launch_jupyter.runners.vertex import DEFAULT_CONFIG"
    else:
        config, imports = "None", ""
        submit = f"api.submit({str(PARAMS_NOTEBOOK)!r}, {queue!r}, parameters={{'seconds': 600}})"
    return textwrap.dedent(f"""\
        from launch_jupyter import api
        {imports}
        api.configure(store_url={store_url!r}, config_path={str(config_path)!r})
        api.create_queue({queue!r}, {resource!r}, config={config})
        api.start_agent([{queue!r}], max_jobs=-1)
        _bench_runs = [{submit} for _ in range({RUNS})]
        """)


def _status_calls(vertex: dict | None) -> int:
    import bench_dispatch

    if not vertex:
        return 0
    return sum(
        1
        for r in bench_dispatch.fake_requests(vertex["rest_endpoint"])
        if r.get("method") in ("ListCustomJobs", "GetCustomJob")
    )


def kernel_ratio(resource: str, work: Path, store_url: str, config_path: Path, vertex: dict | None = None) -> dict:
    """Median ``1+1`` round trip before and after the kernel's agent holds ``RUNS`` runs."""
    queue = f"kernel-{resource}"
    kernel = Kernel(work)
    try:
        kernel.round_trips(5)  # warm-up
        before = kernel.round_trips(CELLS, GAP)
        kernel.execute(_start_agent_code(store_url, config_path, resource, queue), timeout=300)
        states = {"submitted", "pending", "running"} if resource == "vertex" else {"running"}
        _wait_runs(store_url, queue, states, RUNS, timeout=600)
        _settle(120)
        calls = _status_calls(vertex)
        started = time.monotonic()
        after = kernel.round_trips(CELLS, GAP)
        calls = _status_calls(vertex) - calls
        took = time.monotonic() - started
        kernel.execute("api.stop_agent()")
    finally:
        kernel.stop()
        if resource == "local-process":
            _kill_local_runs(store_url, queue)
    what = "50 vertex runs (fake, RUNNING)" if resource == "vertex" else "50 local papermill processes"
    return figure(
        f"kernel: `1+1` round trip, agent holding {what}",
        1000 * median(after),
        "ms",
        baseline="same kernel before the agent",
        baseline_value=1000 * median(before),
        n=CELLS,
        spread=spread_text(after, 1000),
        note=(f"{calls} Vertex status calls in those {took:.1f} s" if resource == "vertex" else ""),
    )


# ------------------------------------------------------------------ idle agent CPU

IDLE_SCRIPT = textwrap.dedent("""\
    import json, resource, sys, threading, time
    import psutil
    from launch_jupyter import api
    from launch_jupyter.agent import Agent
    url, queue, with_agent, window = sys.argv[1], sys.argv[2], sys.argv[3] == "1", float(sys.argv[4])
    api.create_queue(queue, "local-process", store_url=url)
    agent = Agent([queue], store_url=url).start() if with_agent else None
    time.sleep(2.0)  # past start-up
    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    def agent_threads():
        ids = {t.native_id for t in threading.enumerate() if t.name.startswith("launch-agent")}
        return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id in ids)
    c0, a0, t0 = cpu(), agent_threads(), time.monotonic()
    time.sleep(window)
    c1, a1, t1 = cpu(), agent_threads(), time.monotonic()
    if agent is not None:
        agent.stop()
    print(json.dumps({"cpu": c1 - c0, "threads": a1 - a0, "wall": t1 - t0}))
    """)


def _idle_cpu(store_url: str, queue: str, with_agent: bool, window: float) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", IDLE_SCRIPT, store_url, queue, "1" if with_agent else "0", str(window)],
        capture_output=True,
        text=True,
        timeout=window + 120,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-300:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def idle_cpu_figures(stores: dict[str, str], window: float, repeats: int) -> list[dict]:
    """CPU ms per minute of an idle agent, beside the same process without one."""
    figures = []
    for name, url in stores.items():
        with_agent, without = [], []
        for i in range(repeats):
            a = _idle_cpu(url, f"idle-a{i}", True, window)
            b = _idle_cpu(url, f"idle-b{i}", False, window)
            with_agent.append(60_000 * a["cpu"] / a["wall"])
            without.append(60_000 * b["cpu"] / b["wall"])
            threads = 60_000 * a["threads"] / a["wall"]
        added = [a - b for a, b in zip(with_agent, without)]
        figures.append(
            figure(
                f"idle agent: CPU per minute ({name})",
                median(added),
                "ms/min",
                baseline="one core-minute",
                baseline_value=60_000.0,
                n=repeats,
                spread=spread_text(added),
                note=f"process with agent {median(with_agent):.0f} vs without {median(without):.0f} "
                f"ms/min; agent threads alone {threads:.0f} ms/min; window {window:.0f} s",
            )
        )
    return figures


@contextlib.contextmanager
def _stores(work: Path):
    import bench_dispatch  # the PostgreSQL database helper lives there

    stores = {"SQLite": f"sqlite:///{work / 'launch.db'}"}
    with contextlib.ExitStack() as stack:
        try:
            stores["PostgreSQL"] = stack.enter_context(bench_dispatch.postgres_database())
        except Exception:
            pass  # measured on SQLite only; bench_dispatch reports PostgreSQL as not available
        yield stores


def run(quick: bool = False) -> dict:
    """Figure 6 rows: kernel round trip with/without the agent holding 50 runs; idle agent CPU."""
    import bench_dispatch

    work = Path(tempfile.mkdtemp(prefix="bench-kernel-"))
    figures: list[dict] = []
    try:
        with _stores(work) as stores, contextlib.ExitStack() as stack:
            try:
                vertex = stack.enter_context(bench_dispatch.fake_vertex_server(work))
                bench_dispatch._post(vertex["rest_endpoint"] + "/_debug/script", {"states": ["JOB_STATE_RUNNING"]})
            except Exception as err:
                vertex = None
                figures.append(not_available("kernel with 50 vertex runs", f"{type(err).__name__}: {err}"))
            config_path = bench_dispatch.write_agent_config(work, vertex)
            targets = (["vertex"] if vertex else []) + ([] if quick and vertex else ["local-process"])
            for resource in targets:
                try:
                    figures.append(
                        kernel_ratio(
                            resource, work, stores["SQLite"], config_path, vertex if resource == "vertex" else None
                        )
                    )
                except Exception as err:
                    figures.append(not_available(f"kernel with 50 {resource} runs", f"{type(err).__name__}: {err}"))
            window, repeats = (15.0, 1) if quick else (30.0, 2)
            figures += idle_cpu_figures(stores, window, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"figures": figures, "problems": []}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
