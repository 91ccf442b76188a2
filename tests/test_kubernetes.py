"""The kubernetes runner through the official ``kubernetes`` client against a FAKE API server:
no Kubernetes API server can be installed on these machines, so tests/fakes/kubernetes_server.py
speaks the real REST paths (/apis/batch/v1/namespaces/{ns}/jobs, /api/v1/namespaces/{ns}/pods,
…/log), validates request bodies with the client's own models and plays the Job controller.

create → track → succeed / fail / cancel / timeout, exactly-once submit, one list of Jobs and one
of Pods per cycle, logs, errors."""

from __future__ import annotations

from pathlib import Path

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


def the_pod_writes_its_notebook(fake_kubernetes, name: str, text: str, tmp_path) -> str:
    """What the container's entrypoint does when the notebook ends (the fake runs no container):
    launch_jupyter.execute's own upload of the file to the ``--output`` its args name."""
    from launch_jupyter import execute

    container = fake_kubernetes.jobs[("ml", name)]["spec"]["template"]["spec"]["containers"][0]
    target = container["args"][container["args"].index("--output") + 1]
    local = tmp_path / "in-pod.ipynb"
    local.write_text(text)
    if target.startswith(("gs://", "s3://")):
        execute._upload(local, target)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text)
    return target


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_a_bucket_output_lands_and_comes_back_into_the_run_folder(scheme, request, fake_kubernetes, tmp_path):
    if scheme == "gs":
        request.getfixturevalue("gcs")
    else:
        request.getfixturevalue("moto")
        from tests.fixtures.aws import boto

        boto("s3").create_bucket(Bucket="bucket")
    runner = KubernetesRunner()
    job = kubernetes_job(kubernetes_config(output=f"{scheme}://bucket/nb/"), run_id="out1")
    job.workdir = tmp_path / "run"
    job.run.external_id = runner.submit(job)
    target = the_pod_writes_its_notebook(fake_kubernetes, "launch-out1", '{"cells": []}', tmp_path)
    assert target == f"{scheme}://bucket/nb/out1/output.ipynb"
    final = track(runner, job)[-1]
    assert final.state is RunState.SUCCEEDED
    assert final.output_notebook == str(tmp_path / "run" / "outputs" / "output.ipynb")
    assert Path(final.output_notebook).read_text() == '{"cells": []}'


def test_a_volume_output_the_agent_also_mounts_is_copied(fake_kubernetes, tmp_path):
    volume = tmp_path / "volume"  # the same PersistentVolume mounted in the agent and in the pod
    config = kubernetes_config(output=str(volume / "nb"))
    pod = config["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "results", "persistentVolumeClaim": {"claimName": "results"}}]
    pod["containers"][0]["volumeMounts"] = [{"name": "results", "mountPath": str(volume)}]
    assert KubernetesRunner().validate(config) == []
    runner = KubernetesRunner()
    job = kubernetes_job(config, run_id="vol1")
    job.workdir = tmp_path / "run"
    job.run.external_id = runner.submit(job)
    the_pod_writes_its_notebook(fake_kubernetes, "launch-vol1", "{}", tmp_path)
    assert Path(track(runner, job)[-1].output_notebook).read_text() == "{}"


def test_an_output_that_cannot_be_fetched_is_named_not_lost(fake_kubernetes, gcs, tmp_path):
    runner = KubernetesRunner()
    job = kubernetes_job(kubernetes_config(output="gs://bucket/nb"), run_id="gone1")
    job.workdir = tmp_path / "run"
    job.run.external_id = runner.submit(job)  # the pod uploads nothing (it died before the upload)
    assert track(runner, job)[-1].output_notebook == "gs://bucket/nb/gone1/output.ipynb"


def test_without_output_the_run_has_no_notebook(fake_kubernetes):
    runner = KubernetesRunner()
    job = kubernetes_job(run_id="none1")
    job.run.external_id = runner.submit(job)
    assert track(runner, job)[-1].output_notebook is None


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
    """Selected by the active runs' ids: Jobs of runs long over (history) are not listed."""
    fake_kubernetes.script(["Running"])
    runner = KubernetesRunner()
    old = [kubernetes_job(run_id=f"old{i}") for i in range(5)]  # earlier runs, their Jobs still in the namespace
    jobs = [kubernetes_job(run_id=f"many{i}") for i in range(12)]
    for job in old + jobs:
        job.run.external_id = runner.submit(job)
    before = len(fake_kubernetes.requests)
    statuses = runner.poll(jobs)
    assert {s.state for s in statuses.values()} == {RunState.RUNNING} and len(statuses) == 12
    calls = [(m, p, q.get("labelSelector")) for m, p, q, _ in fake_kubernetes.requests[before:]]
    selector = f"launch-run-id in ({','.join(sorted(j.run.id for j in jobs))})"
    assert calls == [
        ("GET", "/apis/batch/v1/namespaces/ml/jobs", selector),
        ("GET", "/api/v1/namespaces/ml/pods", selector),
    ]


def test_the_status_lists_follow_their_pages(fake_kubernetes):
    fake_kubernetes.script(["Running"])
    runner = KubernetesRunner()
    runner.page_size = 5
    jobs = [kubernetes_job(run_id=f"page{i}") for i in range(12)]
    for job in jobs:
        job.run.external_id = runner.submit(job)
    before = len(fake_kubernetes.requests)
    statuses = runner.poll(jobs)
    assert {s.state for s in statuses.values()} == {RunState.RUNNING} and len(statuses) == 12
    calls = [
        (p.rsplit("/", 1)[-1], q.get("limit"), "continue" in q) for _, p, q, _ in fake_kubernetes.requests[before:]
    ]
    assert calls == [("jobs", "5", False), ("jobs", "5", True), ("jobs", "5", True)] + [
        ("pods", "5", False),
        ("pods", "5", True),
        ("pods", "5", True),
    ]


def test_many_active_runs_are_listed_in_chunks_of_the_selector(fake_kubernetes):
    fake_kubernetes.script(["Running"])
    runner = KubernetesRunner()
    runner.selector_runs = 4
    jobs = [kubernetes_job(run_id=f"chunk{i}") for i in range(10)]
    for job in jobs:
        job.run.external_id = runner.submit(job)
    before = len(fake_kubernetes.requests)
    assert len(runner.poll(jobs)) == 10
    assert len(fake_kubernetes.requests[before:]) == 2 * 3  # ceil(10 / 4) selectors, a Job and a Pod list each


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
