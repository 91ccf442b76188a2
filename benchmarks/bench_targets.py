"""API calls per status cycle with 100 active runs, and creates per run after a crash, for the
sagemaker and kubernetes runners. Prints the figures; not a test.

    .venv/bin/python benchmarks/bench_targets.py [--runs 100]

SageMaker: moto_server (PyPI moto[server]) behind the SageMaker edge fake of the tests
(tests/fakes/sagemaker_edge.py), the real boto3 client over HTTP. Kubernetes: the fake API server
of the tests (tests/fakes/kubernetes_server.py), the official client over HTTP. The calls are
counted at the server side (every HTTP request the runner made), beside the naive baseline of one
read per run and cycle.

"After a crash": every run's create reaches the target and its answer is lost (the agent dies):
for five runs the fake really hangs after the create took effect, for the rest the agent died
before saving the answer; a fresh runner then does what a restarted agent does (``find``, and
``create`` only when find says there is none). The figure is the number of jobs at the target per run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # _stats, for run()


def sagemaker_figures(runs: int) -> dict[str, float]:
    from launch_jupyter.core.states import RunState
    from launch_jupyter.runners.sagemaker import SageMakerRunner
    from tests.fakes.sagemaker_edge import SageMakerEdge
    from tests.fixtures.aws import BUCKET, REGION, Moto, boto, sagemaker_job

    with tempfile.TemporaryDirectory() as folder:
        moto = Moto(Path(folder))
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": moto.url,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            }
        )
        edge = SageMakerEdge(moto.url, REGION)
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = edge.url
        try:
            boto("s3").create_bucket(Bucket=BUCKET)
            edge.script([("InProgress", "Training")])
            runner = SageMakerRunner()
            jobs = [sagemaker_job(run_id=f"bench{i}", workdir=Path(folder) / str(i)) for i in range(runs)]
            for job in jobs:
                job.run.external_id = runner.submit(job)
            cycles = 5
            before = len(edge.requests)
            for _ in range(cycles):
                statuses = runner.poll(jobs)
                assert len(statuses) == runs and all(s.state is RunState.RUNNING for s in statuses.values())
            per_cycle = (len(edge.requests) - before) / cycles
            # One run in ten ends in a cycle: those are described once (failure reason, artifacts).
            for job in jobs[: runs // 10]:
                edge.script([("Completed", "Completed")], name=job.run.external_id)
            before = len(edge.requests)
            runner.poll(jobs)
            ending_cycle = len(edge.requests) - before

            # After a crash: every create's answer lost.
            moto.reset()
            boto("s3").create_bucket(Bucket=BUCKET)
            crash = [sagemaker_job(run_id=f"crash{i}", workdir=Path(folder) / f"c{i}") for i in range(runs)]
            edge2 = SageMakerEdge(moto.url, REGION)
            os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = edge2.url
            edge2.hang_after("CreateTrainingJob")
            dying = SageMakerRunner(rpc_timeout=1)
            for job in crash[:5]:  # a few lost answers for real (each waits its read timeout)
                try:
                    dying.create(job)
                except Exception:
                    pass
            edge2._hangs.clear()
            for job in crash[5:]:  # the rest: the create got through, the agent died before saving it
                dying.create(job)
            restarted = SageMakerRunner()
            for job in crash:
                restarted.find(job) or restarted.create(job)
            listed = boto("sagemaker").list_training_jobs(MaxResults=100)
            names = [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]]
            while listed.get("NextToken"):
                listed = boto("sagemaker").list_training_jobs(MaxResults=100, NextToken=listed["NextToken"])
                names += [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]]
            creates_per_run = len([n for n in names if n.startswith("launch-crash")]) / runs
            edge2.stop()
        finally:
            edge.stop()
            moto.stop()
    return {
        "calls_per_cycle": per_cycle,
        "calls_in_a_cycle_where_10pct_end": ending_cycle,
        "naive_calls_per_cycle": runs,
        "jobs_per_run_after_crash": creates_per_run,
    }


def kubernetes_figures(runs: int) -> dict[str, float]:
    from launch_jupyter.core.states import RunState
    from launch_jupyter.runners.kubernetes import KubernetesRunner
    from tests.fakes.kubernetes_server import FakeKubernetes
    from tests.fixtures.kubernetes import kubernetes_job

    fake = FakeKubernetes()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["KUBECONFIG"] = fake.kubeconfig(Path(folder) / "kubeconfig", namespace="ml")
        try:
            fake.script(["Running"])
            runner = KubernetesRunner()
            jobs = [kubernetes_job(run_id=f"bench{i}") for i in range(runs)]
            for job in jobs:
                job.run.external_id = runner.submit(job)
            cycles = 5
            before = len(fake.requests)
            for _ in range(cycles):
                statuses = runner.poll(jobs)
                assert len(statuses) == runs and all(s.state is RunState.RUNNING for s in statuses.values())
            per_cycle = (len(fake.requests) - before) / cycles
            # One run in ten ends in a cycle: still one list of Jobs and one of Pods (no read per run).
            for job in jobs[: runs // 10]:
                fake.script(["Succeeded"], name=job.run.external_id)
            before = len(fake.requests)
            runner.poll(jobs)
            ending_cycle = len(fake.requests) - before
            # Old Jobs in the namespace (history) are not listed: the selector names the active runs.
            history = [kubernetes_job(run_id=f"old{i}") for i in range(runs)]
            for job in history:
                runner.create(job)
            before = len(fake.requests)
            runner.poll(jobs)
            with_history = len(fake.requests) - before

            # After a crash: a few creates whose answer is really lost (the fake hangs after the
            # effect; each waits its read timeout), the rest created before the agent could save them.
            crash = [kubernetes_job(run_id=f"crash{i}") for i in range(runs)]
            fake.hang_after("POST", "/jobs")
            dying = KubernetesRunner(rpc_timeout=1)
            for job in crash[:5]:
                try:
                    dying.create(job)
                except Exception:
                    pass
            fake.resume()
            for job in crash[5:]:
                dying.create(job)
            restarted = KubernetesRunner()
            for job in crash:
                restarted.find(job) or restarted.create(job)
            jobs_per_run = len([k for k in fake.jobs if k[1].startswith("launch-crash")]) / runs
        finally:
            fake.stop()
    return {
        "calls_per_cycle": per_cycle,
        "calls_in_a_cycle_where_10pct_end": ending_cycle,
        "calls_per_cycle_with_as_many_old_jobs": with_history,
        "naive_calls_per_cycle": 2 * runs,
        "jobs_per_run_after_crash": jobs_per_run,
    }


def run(quick: bool = False) -> dict:
    """The figures for benchmarks/run.py: ``{"figures": [...], "problems": [...], "raw": {...}}``."""
    from _stats import figure

    runs = 100
    results = {"sagemaker": sagemaker_figures(runs), "kubernetes": kubernetes_figures(runs)}
    figures, problems = [], []
    for target, f in results.items():
        figures.append(
            figure(
                f"{target}: API calls per status cycle, {runs} active runs",
                f["calls_per_cycle"],
                "calls",
                baseline="one read per run",
                baseline_value=f["naive_calls_per_cycle"],
            )
        )
        figures.append(
            figure(
                f"{target}: API calls in a cycle where 10 % of {runs} runs end",
                f["calls_in_a_cycle_where_10pct_end"],
                "calls",
                baseline="one read per run",
                baseline_value=f["naive_calls_per_cycle"],
            )
        )
        if "calls_per_cycle_with_as_many_old_jobs" in f:
            figures.append(
                figure(
                    f"{target}: calls per cycle with {runs} old launch Jobs also in the namespace",
                    f["calls_per_cycle_with_as_many_old_jobs"],
                    "calls",
                    baseline="without them",
                    baseline_value=f["calls_per_cycle"],
                )
            )
        figures.append(figure(f"{target}: jobs per run after a crash", f["jobs_per_run_after_crash"], "jobs"))
        if f["calls_per_cycle"] > 2 or f["jobs_per_run_after_crash"] != 1:
            problems.append(
                f"{target}: {f['calls_per_cycle']} calls per cycle, {f['jobs_per_run_after_crash']} jobs/run"
            )
    return {"figures": figures, "problems": problems, "raw": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    start = time.monotonic()
    results = {"sagemaker": sagemaker_figures(args.runs), "kubernetes": kubernetes_figures(args.runs)}
    print(f"{'target':<12} {'figure':<36} {'value':>8}")
    for target, figures in results.items():
        for name, value in figures.items():
            print(f"{target:<12} {name:<36} {value:>8.2f}")
    print(f"({args.runs} active runs per target; {time.monotonic() - start:.0f} s)")
    bad = [t for t, f in results.items() if f["calls_per_cycle"] > 2 or f["jobs_per_run_after_crash"] != 1]
    if bad:
        print(f"structurally wrong for: {', '.join(bad)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
