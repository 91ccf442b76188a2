"""The sagemaker runner against moto in server mode (PyPI ``moto[server]``, a third-party AWS
emulator, as a subprocess on loopback): the real boto3 clients over HTTP, S3 and CloudWatch Logs
served by moto. What moto does not emulate for SageMaker (a job's lifecycle, StopTrainingJob, unique
job names, the artifacts and logs a finished job leaves) is added by a small fake at the HTTP edge in
front of moto, tests/fakes/sagemaker_edge.py, each rule citing its source.

create → track → succeed / fail / cancel / timeout, exactly-once submit, batched status, logs, faults.
"""

from __future__ import annotations

import json

import pytest

from launch_jupyter.core.errors import DispatchError
from launch_jupyter.core.states import RunState
from launch_jupyter.runners.sagemaker import SageMakerRunner
from tests.fixtures.aws import BUCKET, REGION, boto, sagemaker_job

NOTEBOOK = json.dumps(
    {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": "done"}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
).encode()


def track(runner, job, limit: int = 50) -> list:
    """Poll until the run ends (the edge moves a job one step per list): the statuses seen."""
    seen = []
    for _ in range(limit):
        status = runner.poll([job])[job.run.id]
        seen.append(status)
        job.run.state = status.state
        if status.state.is_terminal:
            return seen
    raise AssertionError(f"the job never ended: {[s.state for s in seen]}")


def moto_jobs() -> list[str]:
    """The training jobs moto itself holds (straight to moto, not through the edge)."""
    import os

    import boto3

    client = boto3.client("sagemaker", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=REGION)
    return [s["TrainingJobName"] for s in client.list_training_jobs()["TrainingJobSummaries"]]


def test_create_track_succeed_and_fetch_the_notebook(sagemaker, tmp_path):
    sagemaker.notebook = NOTEBOOK
    runner = SageMakerRunner()
    job = sagemaker_job(run_id="ok1", workdir=tmp_path)
    name = runner.submit(job)
    assert name == "launch-ok1"
    job.run.external_id = name
    described = boto("sagemaker").describe_training_job(TrainingJobName=name)
    assert described["AlgorithmSpecification"]["TrainingImage"] == job.image_uri
    tags = boto("sagemaker").list_tags(ResourceArn=described["TrainingJobArn"])["Tags"]
    assert {"Key": "launch-run-id", "Value": "ok1"} in tags
    seen = track(runner, job)
    states = [s.state for s in seen]
    assert states[0] is RunState.PENDING and RunState.RUNNING in states and states[-1] is RunState.SUCCEEDED
    output = seen[-1].output_notebook
    assert output == str(tmp_path / "outputs" / "output.ipynb")
    assert (tmp_path / "outputs" / "output.ipynb").read_bytes() == NOTEBOOK
    key = f"runs/{name}/output/model.tar.gz"
    assert boto("s3").head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0


def test_a_failed_job_fails_the_run_with_its_reason(sagemaker, tmp_path):
    runner = SageMakerRunner()
    job = sagemaker_job(run_id="bad1", workdir=tmp_path)
    job.run.external_id = runner.submit(job)
    sagemaker.script(
        [("InProgress", "Training"), ("Failed", "Failed")],
        name=job.run.external_id,
        reason="AlgorithmError: the notebook raised ValueError in cell 3",
    )
    seen = track(runner, job)
    assert seen[-1].state is RunState.FAILED
    assert "cell 3" in seen[-1].message and seen[-1].output_notebook is None


def test_cancel_stops_the_training_job(sagemaker, tmp_path):
    sagemaker.script([("InProgress", "Training")])  # runs until stopped
    runner = SageMakerRunner()
    job = sagemaker_job(run_id="stop1", workdir=tmp_path)
    job.run.external_id = runner.submit(job)
    assert runner.poll([job])["stop1"].state is RunState.RUNNING
    runner.cancel(job)
    assert sagemaker.calls("StopTrainingJob") == [{"TrainingJobName": "launch-stop1"}]
    seen = track(runner, job)
    assert [s.state for s in seen] == [RunState.CANCELLING, RunState.CANCELLED]
    runner.cancel(job)  # a second cancel of an ended job is not an error


def test_a_job_past_its_max_runtime_fails_as_timed_out(sagemaker, tmp_path):
    """SageMaker stops a job at StoppingCondition.MaxRuntimeInSeconds: Stopped / MaxRuntimeExceeded."""
    sagemaker.script([("InProgress", "Training"), ("Stopped", "MaxRuntimeExceeded")])
    runner = SageMakerRunner()
    job = sagemaker_job(run_id="slow1", workdir=tmp_path)
    job.run.external_id = runner.submit(job)
    seen = track(runner, job)
    assert seen[-1].state is RunState.FAILED and "timed out" in seen[-1].message


def test_submit_is_idempotent(sagemaker, tmp_path):
    runner = SageMakerRunner()
    job = sagemaker_job(run_id="once1", workdir=tmp_path)
    assert runner.find(job) is None
    first = runner.submit(job)
    assert runner.submit(job) == first  # found by name: no second create
    assert SageMakerRunner().create(job) == first  # a blind create is refused (ResourceInUse): the same job
    assert len(sagemaker.calls("CreateTrainingJob")) == 2
    assert moto_jobs() == [first]


def test_a_create_whose_answer_is_lost_is_found_again(sagemaker, tmp_path):
    sagemaker.hang_after("CreateTrainingJob")  # reaches moto, the answer never comes back
    runner = SageMakerRunner(rpc_timeout=3)
    job = sagemaker_job(run_id="lost1", workdir=tmp_path)
    with pytest.raises(DispatchError) as caught:
        runner.create(job)
    assert caught.value.transient
    assert runner.find(job) == "launch-lost1"
    assert moto_jobs() == ["launch-lost1"]


def test_status_of_many_runs_is_one_list_call(sagemaker, tmp_path):
    sagemaker.script([("InProgress", "Training")])
    runner = SageMakerRunner()
    jobs = [sagemaker_job(run_id=f"many{i}", workdir=tmp_path / str(i)) for i in range(12)]
    for job in jobs:
        job.run.external_id = runner.submit(job)
    before = len(sagemaker.requests)
    statuses = runner.poll(jobs)
    assert {s.state for s in statuses.values()} == {RunState.RUNNING} and len(statuses) == 12
    assert sagemaker.operations()[before:] == ["ListTrainingJobs"]


def test_logs_come_from_cloudwatch(sagemaker, tmp_path):
    sagemaker.log_lines = ["starting", "cell 1 ok", "executed notebook: /opt/ml/model/output.ipynb"]
    runner = SageMakerRunner()
    job = sagemaker_job(run_id="logs1", workdir=tmp_path)
    job.run.external_id = runner.submit(job)
    track(runner, job)
    assert list(runner.logs(job.run)) == sagemaker.log_lines
    assert list(runner.logs(job.run, follow=True)) == sagemaker.log_lines  # ended: follow returns


def test_errors_say_whether_a_retry_may_help(sagemaker, tmp_path):
    runner = SageMakerRunner()
    job = sagemaker_job(run_id="err1", workdir=tmp_path)
    sagemaker.fail("CreateTrainingJob", "ThrottlingException")
    with pytest.raises(DispatchError) as caught:
        runner.create(job)
    assert caught.value.transient and "ThrottlingException" in str(caught.value)
    sagemaker.fail("CreateTrainingJob", "AccessDeniedException", message="not allowed to pass the role")
    with pytest.raises(DispatchError) as caught:
        runner.create(job)
    assert not caught.value.transient and "not allowed" in str(caught.value)
    assert moto_jobs() == []  # nothing half-created
    sagemaker.fail("ListTrainingJobs", "InternalFailure", status=500)
    job.run.external_id = "launch-err1"
    assert runner.poll([job]) == {}  # status unknown this cycle, not a failure


def test_a_job_deleted_at_sagemaker_fails_the_run(sagemaker, tmp_path):
    runner = SageMakerRunner()
    job = sagemaker_job(run_id="gone1", workdir=tmp_path)
    job.run.external_id = "launch-gone1"  # never created
    status = runner.poll([job])["gone1"]
    assert status.state is RunState.FAILED and "no longer exists" in status.message
