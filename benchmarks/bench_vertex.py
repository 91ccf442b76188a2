"""Vertex runner figures, measured against the fake Vertex AI server (tests/fakes/vertex_server.py):

- API calls per status cycle with 1, 10, 100, 1000 active runs: our batched ``poll`` (one
  ListCustomJobs per location, paged) vs the SDK's own per-job polling (``CustomJob.state``
  re-reads each job with GetCustomJob, as ``CustomJob.wait()``/``run()`` do every 5 s);
- time from ``submit()`` being called to the fake receiving CreateCustomJob (gRPC and REST).

Run: ``.venv/bin/python benchmarks/bench_vertex.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(HERE), str(ROOT)):  # `_stats` lives here; the fake lives under tests/
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _stats import figure  # noqa: E402

SIZES = (1, 10, 100, 1000)


def _setup():
    os.environ.setdefault("GCE_METADATA_HOST", "127.0.0.1:9")
    from tests.fakes.vertex_server import make_certs

    certs = make_certs()
    os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(certs.ca_file)  # before any channel
    return certs


def _runner(fake, transport="grpc"):
    from launch_jupyter.core.config import AgentConfig, EnvironmentConfig
    from launch_jupyter.runners.vertex import VertexRunner

    endpoint = fake.grpc_endpoint if transport == "grpc" else fake.rest_endpoint
    env = EnvironmentConfig(
        project="proj", region="us-central1", api_endpoint=endpoint, api_transport=transport, credentials="anonymous"
    )
    return VertexRunner(AgentConfig(environment=env))


def calls_per_cycle(certs, n: int) -> dict:
    """Requests one status cycle costs for ``n`` running jobs, ours vs the SDK's per-job polling."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    from tests.fakes.vertex_server import FakeVertex
    from tests.fixtures.vertex import make_job

    fake = FakeVertex(certs)
    try:
        fake.script(["RUNNING"])
        runner = _runner(fake)
        jobs = []
        for i in range(n):
            job = make_job(run_id=f"bench-{i}")
            job.run.external_id = runner.submit(job)
            jobs.append(job)
        before = len(fake.requests)
        started = time.perf_counter()
        statuses = runner.poll(jobs)
        ours_s = time.perf_counter() - started
        ours = len(fake.requests) - before
        assert len(statuses) == n

        aiplatform.init(
            project="proj", location="us-central1", api_endpoint=fake.grpc_endpoint, credentials=AnonymousCredentials()
        )
        sdk_jobs = [aiplatform.CustomJob.get(j.run.external_id) for j in jobs]
        before = len(fake.requests)
        started = time.perf_counter()
        [j.state for j in sdk_jobs]  # what CustomJob.wait()/run() do for each job every cycle
        sdk_s = time.perf_counter() - started
        sdk = len(fake.requests) - before
        return {
            "launch_jupyter_calls": ours,
            "launch_jupyter_ms": round(ours_s * 1000, 1),
            "sdk_per_job_calls": sdk,
            "sdk_per_job_ms": round(sdk_s * 1000, 1),
        }
    finally:
        from google.cloud.aiplatform import initializer

        initializer.global_config.__init__()
        fake.stop()


def submit_latency(certs, transport: str, repeat: int = 30) -> dict:
    """Milliseconds from calling ``submit()`` to the fake receiving CreateCustomJob."""
    from tests.fakes.vertex_server import FakeVertex
    from tests.fixtures.vertex import make_job

    fake = FakeVertex(certs)
    try:
        runner = _runner(fake, transport)
        samples = []
        for i in range(repeat):
            job = make_job(run_id=f"lat-{transport}-{i}")
            started = time.time()
            runner.submit(job)
            received = fake.calls("CreateCustomJob")[-1].time
            samples.append((received - started) * 1000)
        first, rest = samples[0], sorted(samples[1:])
        return {
            "first_ms": round(first, 1),
            "median_ms": round(statistics.median(rest), 2),
            "p90_ms": round(rest[int(len(rest) * 0.9)], 2),
            "n": len(rest),
        }
    finally:
        fake.stop()


def run(quick: bool = False) -> dict:
    """All figures: ``{"figures": [...], "problems": [...], "raw": {...}}`` (see _stats.py)."""
    certs = _setup()
    from google.cloud import aiplatform  # noqa: F401  # pay the SDK import before timing anything

    sizes = SIZES[:3] if quick else SIZES
    latency = {t: submit_latency(certs, t, 10 if quick else 30) for t in ("grpc", "rest")}
    cycles = {n: calls_per_cycle(certs, n) for n in sizes}
    figures, problems = [], []
    for n, c in cycles.items():
        figures.append(
            figure(
                f"Vertex API calls per status cycle, {n} active run(s)",
                c["launch_jupyter_calls"],
                "calls",
                baseline="aiplatform per-job GetCustomJob (CustomJob.wait)",
                baseline_value=c["sdk_per_job_calls"],
                note=f"{c['launch_jupyter_ms']} ms vs {c['sdk_per_job_ms']} ms on the fake; pages of 100",
            )
        )
        if c["launch_jupyter_calls"] > max(1, -(-n // 100)):
            problems.append(f"{n} runs took {c['launch_jupyter_calls']} calls per cycle")
    for transport, lat in latency.items():
        figures.append(
            figure(
                f"submit() → CreateCustomJob received ({transport})",
                lat["median_ms"],
                "ms",
                n=lat["n"],
                spread=f"p90 {lat['p90_ms']}",
                note=f"first call {lat['first_ms']} ms (cold client)",
            )
        )
    return {
        "figures": figures,
        "problems": problems,
        "raw": {"calls_per_status_cycle": cycles, "submit_to_create": latency},
    }


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2, default=str))
