"""Vertex fault figures through a real agent (SQLite store) against the fake Vertex AI (REST):

- creates per run under a quota refusal (target 1: a quota is permanent until the user acts) and
  under two transient refusals (UNAVAILABLE: the one retry policy, 3 creates, 1 job);
- time from a hung Vertex status call to the run's next state, beside the call's deadline
  (``rpc_timeout``; target: at most that): every ListCustomJobs/GetCustomJob hangs, and the run
  ends ``failed`` with the call's error once ``status_timeout`` (here 1 s) has passed;
- (full run) time from a create that hangs to the run being submitted, with one job.

Run: ``.venv/bin/python benchmarks/bench_vertex_faults.py [--quick]`` (quick: 2 runs per row).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(HERE), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

QUOTA = "aiplatform.googleapis.com/custom_model_training_cpus"


def _configure(fake, work: Path, extra: str = "") -> None:
    from launch_jupyter import api
    from tests.fixtures.vertex import VERTEX_YAML, agent_config_text  # what the tests use

    config = work / "launch-config.yaml"
    store = f"sqlite:///{work / 'launch.db'}"
    config.write_text(agent_config_text(fake, f"store: {store}\ndata_dir: {work / 'data'}\n{extra}"))
    api.configure(config_path=str(config), store_url=store)
    api.create_queue("vq", "vertex", config=VERTEX_YAML, exist_ok=True)


def _agent():
    from launch_jupyter import api
    from launch_jupyter.agent import Agent

    return Agent(config=api.agent_config(overrides={"queues": ["vq"]}))


def creates_per_run(certs, runs: int, code: str) -> float:
    from launch_jupyter import api
    from launch_jupyter.core.states import RunState
    from tests.fakes.vertex_server import FakeVertex

    fake = FakeVertex(certs)
    work = Path(tempfile.mkdtemp(prefix="bench-vfaults-"))
    try:
        _configure(fake, work)
        fake.script(["SUCCEEDED"])
        if code == "quota":
            fake.fail(
                "CreateCustomJob",
                "RESOURCE_EXHAUSTED",
                times=1_000_000,
                quota=QUOTA,
                message=f"The following quota metrics exceed quota limits: {QUOTA}",
            )
        notebook = ROOT / "examples" / "notebooks" / "quickstart.ipynb"
        submitted = []
        for _ in range(runs):
            if code == "UNAVAILABLE":
                fake.fail("CreateCustomJob", "UNAVAILABLE", times=2)
            submitted.append(api.submit(notebook, "vq", image="us-docker.pkg.dev/proj/launch/nb:1"))
            _agent().run_forever(until_idle=True)
        want = RunState.FAILED if code == "quota" else RunState.SUCCEEDED
        assert all(r.refresh().state is want for r in submitted), [r.run.message for r in submitted]
        return len(fake.calls("CreateCustomJob")) / runs
    finally:
        fake.stop()
        shutil.rmtree(work, ignore_errors=True)


def hung_status_to_next_state(certs) -> tuple[float, float]:
    """Seconds from every status call hanging to the run's next state; and the call's deadline."""
    from launch_jupyter import api
    from launch_jupyter.core.states import RunState
    from launch_jupyter.runners.vertex._api import RPC_TIMEOUT
    from tests.fakes.vertex_server import FakeVertex

    fake = FakeVertex(certs)
    work = Path(tempfile.mkdtemp(prefix="bench-vhang-"))
    agent = None
    try:
        _configure(fake, work, "status_timeout: 1\n")
        fake.script(["PENDING"] + ["RUNNING"] * 1_000_000)
        run = api.submit(
            ROOT / "examples" / "notebooks" / "quickstart.ipynb", "vq", image="us-docker.pkg.dev/proj/launch/nb:1"
        )
        agent = _agent().start()
        deadline = time.monotonic() + 120
        while run.refresh().state is not RunState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        fake.delay("ListCustomJobs", None, times=1_000_000)
        fake.delay("GetCustomJob", None, times=1_000_000)
        calls = len(fake.calls("ListCustomJobs"))
        while len(fake.calls("ListCustomJobs")) == calls:  # the next status call is the hung one
            time.sleep(0.02)
        hung = time.monotonic()
        while run.refresh().state is RunState.RUNNING and time.monotonic() < hung + 10 * RPC_TIMEOUT:
            time.sleep(0.1)
        elapsed = time.monotonic() - hung
        assert run.state is RunState.FAILED and "DEADLINE_EXCEEDED" in run.run.message, run.run.message
        return elapsed, RPC_TIMEOUT
    finally:
        if agent is not None:
            agent.stop()
        fake.release()
        fake.stop()
        shutil.rmtree(work, ignore_errors=True)


def hung_create_to_next_state(certs) -> tuple[float, float]:
    """Seconds from a create that hangs (before it takes effect) to the run being submitted (the
    call times out, the run's job is looked up, the agent's policy tries again); and the agent's
    deadline for one such call (the runner's ``call_timeout``)."""
    from launch_jupyter import api
    from launch_jupyter.core.states import RunState
    from launch_jupyter.runners.vertex import VertexRunner
    from tests.fakes.vertex_server import FakeVertex

    fake = FakeVertex(certs)
    work = Path(tempfile.mkdtemp(prefix="bench-vhang-"))
    agent = None
    try:
        _configure(fake, work)
        fake.script(["PENDING"] + ["RUNNING"] * 1_000_000)
        fake.delay("CreateCustomJob", None, times=1)
        run = api.submit(
            ROOT / "examples" / "notebooks" / "quickstart.ipynb", "vq", image="us-docker.pkg.dev/proj/launch/nb:1"
        )
        agent = _agent().start()
        while not fake.calls("CreateCustomJob"):
            time.sleep(0.02)
        hung = time.monotonic()
        while run.refresh().state in (RunState.CLAIMED, RunState.SUBMITTING) and time.monotonic() < hung + 900:
            time.sleep(0.1)
        elapsed = time.monotonic() - hung
        assert run.state in (RunState.SUBMITTED, RunState.PENDING, RunState.RUNNING), run.run.message
        assert len(fake.state.jobs) == 1
        return elapsed, VertexRunner().call_timeout
    finally:
        if agent is not None:
            agent.stop()
        fake.release()
        fake.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(quick: bool = False) -> None:
    os.environ.setdefault("GCE_METADATA_HOST", "127.0.0.1:9")
    os.environ.setdefault("LAUNCH_JUPYTER_USER", "alice")
    from bench_vertex import _setup

    certs = _setup()
    runs = 2 if quick else 5
    print(f"creates per run, quota refusal (target 1): {creates_per_run(certs, runs, 'quota'):.1f} ({runs} runs)")
    print(
        f"creates per run, 2 transient UNAVAILABLE then success (target 3): "
        f"{creates_per_run(certs, runs, 'UNAVAILABLE'):.1f} ({runs} runs)"
    )
    elapsed, timeout = hung_status_to_next_state(certs)
    print(
        f"hung status call to the run's next state: {elapsed:.1f} s (the call's deadline: {timeout:.0f} s; "
        "status_timeout 1 s)"
    )
    if not quick:
        elapsed, timeout = hung_create_to_next_state(certs)
        print(
            f"hung create to the run submitted (one job): {elapsed:.1f} s (the agent's deadline for the call: "
            f"{timeout:.0f} s)"
        )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
