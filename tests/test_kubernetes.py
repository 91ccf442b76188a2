"""The kubernetes runner through the official ``kubernetes`` client against a FAKE API server:
no Kubernetes API server can be installed on these machines, so tests/fakes/kubernetes_server.py
speaks the real REST paths (/apis/batch/v1/namespaces/{ns}/jobs, /api/v1/namespaces/{ns}/pods,
…/log), validates request bodies with the client's own models and plays the Job controller.

create → track → succeed / fail / cancel / timeout, exactly-once submit, one list of Jobs and one
of Pods per cycle, logs, errors."""

from __future__ import annotations

import pytest

from launch_jupyter.core.errors import DispatchError
from launch_jupyter.core.states import RunState
from launch_jupyter.runners.kubernetes import KubernetesRunner
from tests.fixtures.kubernetes import kubernetes_config, kubernetes_job


def track(runner, job, limit: int = 30) -> list:
    seen = []
    for _ in range(limit):
        status = runner.poll([job])[job.run.id]
        seen.append(status)
        job.run.state = status.state
        if status.state.is_terminal:
            return seen
    raise AssertionError(f"the job never ended: {[s.state for s in seen]}")


def test_create_track_succeed(fake_kubernetes):
    fake_kubernetes.script(["Pending", "Pending", "Running", "Succeeded"])
    runner = KubernetesRunner()
    job = kubernetes_job(run_id="ok1")
    name = runner.submit(job)
    assert name == "launch-ok1"
    job.run.external_id = name
    stored = fake_kubernetes.jobs[("ml", name)]  # the kubeconfig context's namespace
    assert stored["metadata"]["labels"]["launch-run-id"] == "ok1"
    seen = track(runner, job)
    assert [s.state for s in seen] == [RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED]


def test_output_folder_is_the_runs_output(fake_kubernetes):
    runner = KubernetesRunner()
    job = kubernetes_job(kubernetes_config(output="gs://bucket/nb"), run_id="out1")
    job.run.external_id = runner.submit(job)
    container = fake_kubernetes.jobs[("ml", "launch-out1")]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-1] == "gs://bucket/nb/out1/output.ipynb"
    assert track(runner, job)[-1].output_notebook == "gs://bucket/nb/out1/output.ipynb"


def test_a_failed_pod_fails_the_run(fake_kubernetes):
    runner = KubernetesRunner()
    job = kubernetes_job(run_id="bad1")
    job.run.external_id = runner.submit(job)
    fake_kubernetes.script(["Running", "Failed"], name="launch-bad1")
    seen = track(runner, job)
    assert seen[-1].state is RunState.FAILED and "exited 1" in seen[-1].message


def test_past_the_active_deadline_is_a_timeout(fake_kubernetes):
    fake_kubernetes.script(["Running", "DeadlineExceeded"])
    runner = KubernetesRunner()
    job = kubernetes_job(run_id="slow1")
    job.run.external_id = runner.submit(job)
    seen = track(runner, job)
    assert seen[-1].state is RunState.FAILED and "timed out" in seen[-1].message


def test_cancel_deletes_the_job_in_the_background(fake_kubernetes):
    fake_kubernetes.script(["Running"])
    runner = KubernetesRunner()
    job = kubernetes_job(run_id="stop1")
    job.run.external_id = runner.submit(job)
    assert runner.poll([job])["stop1"].state is RunState.RUNNING
    runner.cancel(job)
    ((_, path, _, body),) = fake_kubernetes.calls("DELETE", "/jobs/")
    assert path == "/apis/batch/v1/namespaces/ml/jobs/launch-stop1"
    assert body["propagationPolicy"] == "Background"
    assert not fake_kubernetes.pods  # the pods went with the Job
    assert runner.poll([job])["stop1"].state is RunState.CANCELLED
    runner.cancel(job)  # already gone: not an error


def test_submit_is_idempotent(fake_kubernetes):
    runner = KubernetesRunner()
    job = kubernetes_job(run_id="once1")
    assert runner.find(job) is None
    first = runner.submit(job)
    assert runner.submit(job) == first
    assert KubernetesRunner().create(job) == first  # 409 AlreadyExists: the run's own Job
    assert len(fake_kubernetes.calls("POST", "/jobs")) == 2 and len(fake_kubernetes.jobs) == 1


def test_status_of_many_runs_is_one_list_of_jobs_and_one_of_pods(fake_kubernetes):
    fake_kubernetes.script(["Running"])
    runner = KubernetesRunner()
    jobs = [kubernetes_job(run_id=f"many{i}") for i in range(12)]
    for job in jobs:
        job.run.external_id = runner.submit(job)
    before = len(fake_kubernetes.requests)
    statuses = runner.poll(jobs)
    assert {s.state for s in statuses.values()} == {RunState.RUNNING} and len(statuses) == 12
    calls = [(m, p, q.get("labelSelector")) for m, p, q, _ in fake_kubernetes.requests[before:]]
    assert calls == [
        ("GET", "/apis/batch/v1/namespaces/ml/jobs", "launch-run-id"),
        ("GET", "/api/v1/namespaces/ml/pods", "launch-run-id"),
    ]


def test_logs_come_from_the_pod(fake_kubernetes):
    fake_kubernetes.log_lines = ["starting", "cell 1 ok", "done"]
    runner = KubernetesRunner()
    job = kubernetes_job(run_id="logs1")
    job.run.external_id = runner.submit(job)
    track(runner, job)
    assert list(runner.logs(job.run)) == ["starting", "cell 1 ok", "done"]
    assert list(runner.logs(job.run, follow=True)) == ["starting", "cell 1 ok", "done"]


def test_errors_say_whether_a_retry_may_help(fake_kubernetes):
    runner = KubernetesRunner()
    job = kubernetes_job(run_id="err1")
    fake_kubernetes.fail("POST", "/jobs", 503)
    with pytest.raises(DispatchError) as caught:
        runner.create(job)
    assert caught.value.transient
    fake_kubernetes.fail("POST", "/jobs", 403)
    with pytest.raises(DispatchError) as caught:
        runner.create(job)
    assert not caught.value.transient and "403" in str(caught.value)
    assert not fake_kubernetes.jobs  # nothing half-created
    fake_kubernetes.fail("GET", "/jobs", 500)
    job.run.external_id = "launch-err1"
    assert runner.poll([job]) == {}  # status unknown this cycle


def test_the_fake_refuses_what_the_client_models_refuse(fake_kubernetes):
    """The fake validates bodies with the client's models: a body the real API would refuse is 422."""
    import json
    import urllib.error
    import urllib.request

    body = json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "x"},
            "spec": {"template": {"spec": {"containers": [{"image": "i"}]}}},
        }
    ).encode()
    request = urllib.request.Request(
        f"{fake_kubernetes.url}/apis/batch/v1/namespaces/ml/jobs",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 422 and "containers.0.name" in caught.value.read().decode()


def test_a_job_deleted_behind_our_back_fails_the_run(fake_kubernetes):
    runner = KubernetesRunner()
    job = kubernetes_job(run_id="gone1")
    job.run.external_id = "launch-gone1"
    status = runner.poll([job])["gone1"]
    assert status.state is RunState.FAILED and "no longer exists" in status.message
