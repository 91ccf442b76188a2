"""What a run costs: how long an estimate takes (pricing alone, and the whole ``Launcher.estimate``
with the config check a submit does anyway), what the estimate and budget check add to a submit to a
Vertex AI queue, and whether a submit or an estimate imports the Vertex SDK's client (it must not:
the price comes from a JSON table).

    .venv/bin/python benchmarks/bench_cost.py [--repeats N]

Runs in private XDG folders and a fresh SQLite store, removed afterwards. Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CONFIG = """\
spec:
  worker_pool_specs:
    - machine_spec: {machine_type: a2-highgpu-1g, accelerator_type: NVIDIA_TESLA_A100, accelerator_count: 1}
      replica_count: 1
      container_spec: {image_uri: '${image_uri}'}
  staging_bucket: gs://my-bucket
run:
  timeout: 3600
"""

PROBE = """
import json, sys, time
from launch_jupyter import api
from launch_jupyter.core.cost import runner_config
with api.Launcher() as client:
    config = runner_config(client.get_queue("gpu").config)
    t = time.perf_counter()
    client.estimate_config("vertex", config)
    took = time.perf_counter() - t
print(json.dumps({"took": took, "sdk_client": "google.cloud.aiplatform_v1.services.job_service.client" in sys.modules}))
"""


def _timings(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def run(repeat: int = 30) -> dict:
    from _stats import figure, iqr, median

    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        env = {"XDG_DATA_HOME": f"{tmp}/data", "XDG_CONFIG_HOME": f"{tmp}/cfg"}
        os.environ.update(env)
        from launch_jupyter import api
        from launch_jupyter.core.cost import runner_config

        notebook = ROOT / "examples" / "notebooks" / "quickstart.ipynb"
        with api.Launcher() as client:
            client.create_queue("gpu", "vertex", config=CONFIG)
            client.create_queue("capped", "vertex", config=CONFIG + "budget:\n  max_run_cost: 10\n")
            config = runner_config(client.get_queue("gpu").config)
            pricing = _timings(lambda: client.estimate_config("vertex", config), repeat)
            whole = _timings(lambda: client.estimate("gpu"), repeat)
            image = "us-docker.pkg.dev/p/r/i:1"
            plain = _timings(lambda: client.submit(notebook, "gpu", save=False, image=image), repeat)
            capped = _timings(lambda: client.submit(notebook, "capped", save=False, image=image), repeat)
        probe = subprocess.run(  # the queue exists: only the estimate runs in the fresh process
            [sys.executable, "-c", PROBE, CONFIG], capture_output=True, text=True, env={**os.environ, **env}, check=True
        )
        fresh = json.loads(probe.stdout.strip().splitlines()[-1])

    def ms(values: list[float]) -> tuple[float, str]:
        lo, hi = iqr(values)
        return median(values) * 1000, f"{lo * 1000:.2f}–{hi * 1000:.2f}"

    rows = []
    value, spread = ms(pricing)
    rows.append(
        figure("cost: price a config against the table (estimate_config)", value, "ms", n=repeat, spread=spread)
    )
    value, spread = ms(whole)
    rows.append(
        figure(
            "cost: Launcher.estimate (config check + price)",
            value,
            "ms",
            n=repeat,
            spread=spread,
            note="the config check is the one every submit does",
        )
    )
    base, _ = ms(plain)
    value, spread = ms(capped)
    rows.append(
        figure(
            "cost: api.submit to a vertex queue with a budget",
            value,
            "ms",
            baseline="the same queue without one",
            baseline_value=base,
            n=repeat,
            spread=spread,
        )
    )
    rows.append(
        figure(
            "cost: first pricing in a fresh process (no config check)",
            fresh["took"] * 1000,
            "ms",
            note="the Vertex SDK's JobService client imported: " + ("yes" if fresh["sdk_client"] else "no"),
        )
    )
    problems = ["pricing a run imported the Vertex SDK's JobService client"] if fresh["sdk_client"] else []
    return {"figures": rows, "problems": problems}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    result = run(parser.parse_args().repeats)
    for row in result["figures"]:
        print(f"{row['figure']}: {row['value']:.2f} {row['unit']} {row['spread']} {row['note']}")
    for problem in result["problems"]:
        print("PROBLEM:", problem)
