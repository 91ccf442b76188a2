"""A small fake at the HTTP edge in front of moto_server, for the parts of SageMaker moto does not
emulate. Everything else is moto's: the job records, S3 and CloudWatch Logs.

The boto3 ``sagemaker`` client is pointed here (``AWS_ENDPOINT_URL_SAGEMAKER``); each request is
forwarded to moto unchanged, and this edge adds only what moto lacks, each rule with its source:

- **Job lifecycle.** moto creates every training job as ``Completed`` at once (moto
  ``sagemaker/models.py`` FakeTrainingJob) and has no ``StopTrainingJob``. Here a job walks a
  scripted list of (``TrainingJobStatus``, ``SecondaryStatus``) pairs, values from the service
  model's ``TrainingJobStatus``/``SecondaryStatus`` enums; one step per ``ListTrainingJobs`` that
  lists it, the last step sticky. ``DescribeTrainingJob`` and the list answer show the current step.
- **Stop.** ``StopTrainingJob`` on an ``InProgress`` job moves it to ``Stopping`` then ``Stopped``
  (API reference, StopTrainingJob: "the training job status changes to Stopping … then Stopped");
  on an ended job a ``ValidationException``; an unknown name ``ResourceNotFound`` (the operation's
  errors in botocore's service model).
- **Unique names.** A second ``CreateTrainingJob`` with a taken name is refused with
  ``ResourceInUse`` (CreateTrainingJob errors in the service model; moto overwrites the job).
- **What the job leaves behind.** When a job reaches ``Completed``, SageMaker has uploaded
  ``/opt/ml/model`` as ``<S3OutputPath>/<job>/output/model.tar.gz`` and the container's output is in
  CloudWatch Logs ``/aws/sagemaker/TrainingJobs``, stream ``<job>/algo-1-<epoch>`` (SageMaker
  developer guide: "How Amazon SageMaker processes training output", "Log Amazon SageMaker events
  with Amazon CloudWatch"). No container runs here, so the edge writes both into moto, with the
  executed notebook and log lines the test gives it.
- Faults for the tests: ``fail(op, code, status, times)`` and ``hang_after(op)`` (the request reaches
  moto, the answer never comes back).
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HAPPY = [
    ("InProgress", "Starting"),
    ("InProgress", "Downloading"),
    ("InProgress", "Training"),
    ("InProgress", "Uploading"),
    ("Completed", "Completed"),
]


class SageMakerEdge:
    """The edge server: ``.url``, ``.calls(op)``, ``.script(...)``, ``.fail(...)``, ``.hang_after(...)``."""

    def __init__(self, moto_url: str, region: str = "us-east-1"):
        self.moto_url = moto_url
        self.region = region
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict]] = []
        self.default_script: list[tuple[str, str]] = list(HAPPY)
        self.scripts: dict[str, list[tuple[str, str]]] = {}
        self.steps: dict[str, int] = {}
        self.reasons: dict[str, str] = {}
        self.notebook = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
        self.log_lines = ["executing the notebook", "executed notebook: /opt/ml/model/output.ipynb"]
        self.output_paths: dict[str, str] = {}
        self.delivered: set[str] = set()
        self._faults: list[dict] = []
        self._hangs: set[str] = set()
        self._release = threading.Event()
        self.paused_at: str | None = None  # a SecondaryStatus jobs wait at until resume()
        edge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # the JSON protocol: POST / with X-Amz-Target
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, payload = edge._handle(self.headers, body)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a hung answer after its read timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ the test's handles
    def calls(self, operation: str) -> list[dict]:
        with self.lock:
            return [body for op, body in self.requests if op == operation]

    def operations(self) -> list[str]:
        with self.lock:
            return [op for op, _ in self.requests]

    def script(self, steps: list[tuple[str, str]], name: str | None = None, reason: str = "") -> None:
        """The lifecycle of job ``name`` (or of every job created from now on)."""
        with self.lock:
            if name is None:
                self.default_script = list(steps)
            else:
                self.scripts[name], self.steps[name] = list(steps), 0
            if reason and name:
                self.reasons[name] = reason

    def fail(self, operation: str, code: str, status: int = 400, times: int = 1, message: str = "") -> None:
        with self.lock:
            self._faults.append(
                {
                    "op": operation,
                    "code": code,
                    "status": status,
                    "times": times,
                    "message": message or f"injected {code}",
                }
            )

    def hang_after(self, operation: str) -> None:
        """Forward ``operation`` to moto, then never answer (until ``stop``)."""
        with self.lock:
            self._hangs.add(operation)

    def pause_at(self, secondary: str) -> None:
        """Jobs that reach ``secondary`` stay there until ``resume()`` (a run held "running")."""
        with self.lock:
            self.paused_at = secondary

    def resume(self) -> None:
        with self.lock:
            self.paused_at = None

    def state(self, name: str) -> tuple[str, str]:
        with self.lock:
            return self._current(name)

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ internals
    def _current(self, name: str) -> tuple[str, str]:
        script = self.scripts.get(name) or [("Completed", "Completed")]
        return script[max(0, min(self.steps.get(name, 0), len(script) - 1))]

    def _handle(self, headers: Any, body: bytes) -> tuple[int, dict, bytes]:
        target = headers.get("X-Amz-Target", "")
        op = target.rsplit(".", 1)[-1]
        args = json.loads(body or b"{}")
        with self.lock:
            self.requests.append((op, args))
            fault = next((f for f in self._faults if f["op"] == op and f["times"] > 0), None)
            if fault is not None:
                fault["times"] -= 1
        if fault is not None:
            return _error(fault["status"], fault["code"], fault["message"])
        name = args.get("TrainingJobName", "")
        if op == "CreateTrainingJob":
            with self.lock:
                if name in self.scripts:
                    return _error(
                        400,
                        "ResourceInUse",
                        "Training job names must be unique within an AWS "
                        f"account and region, and a training job with this name already exists ({name})",
                    )
                self.scripts[name], self.steps[name] = list(self.default_script), 0
                self.output_paths[name] = (args.get("OutputDataConfig") or {}).get("S3OutputPath", "")
        if op == "StopTrainingJob":
            return self._stop(name)
        status, out_headers, payload = self._forward(headers, body)
        if op in self._hangs:
            self._release.wait()
            return 500, {}, b""
        if status == 200 and op in ("DescribeTrainingJob", "ListTrainingJobs"):
            payload = self._overlay(op, json.loads(payload or b"{}"))
        return status, out_headers, payload

    def _forward(self, headers: Any, body: bytes) -> tuple[int, dict, bytes]:
        keep = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(self.moto_url + "/", data=body, headers=keep, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=60) as response:
                return response.status, {"Content-Type": response.headers.get("Content-Type", "")}, response.read()
        except urllib.error.HTTPError as err:
            return err.code, {"Content-Type": err.headers.get("Content-Type", "")}, err.read()

    def _overlay(self, op: str, payload: dict) -> bytes:
        if op == "ListTrainingJobs":
            ended: list[str] = []
            with self.lock:
                for summary in payload.get("TrainingJobSummaries") or []:
                    name = summary["TrainingJobName"]
                    if name in self.scripts and self._current(name)[1] != self.paused_at:
                        self.steps[name] = self.steps.get(name, 0) + 1
                    summary["TrainingJobStatus"], summary["SecondaryStatus"] = self._current(name)
                    if summary["TrainingJobStatus"] != "InProgress":
                        ended.append(name)
            for name in ended:
                self._leave_behind(name)
        else:
            with self.lock:
                name = payload.get("TrainingJobName", "")
                payload["TrainingJobStatus"], payload["SecondaryStatus"] = self._current(name)
                if name in self.reasons and payload["TrainingJobStatus"] == "Failed":
                    payload["FailureReason"] = self.reasons[name]
                if payload["TrainingJobStatus"] != "Completed":
                    payload.pop("ModelArtifacts", None)
                done = payload["TrainingJobStatus"] != "InProgress"
            if done:
                self._leave_behind(name)
        return json.dumps(payload, default=str).encode()

    def _leave_behind(self, name: str) -> None:
        """Once per ended job: its log lines into CloudWatch Logs, and for a completed one the
        model.tar.gz with the executed notebook into S3 (what SageMaker itself does)."""
        import boto3

        with self.lock:
            if name in self.delivered:
                return
            self.delivered.add(name)
            status = self._current(name)[0]
            output = self.output_paths.get(name, "")
        endpoint = {"endpoint_url": self.moto_url, "region_name": self.region}
        logs = boto3.client("logs", **endpoint)
        group = "/aws/sagemaker/TrainingJobs"
        try:
            logs.create_log_group(logGroupName=group)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        stream = f"{name}/algo-1-{int(time.time())}"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(self.log_lines)],
        )
        if status != "Completed" or not output.startswith("s3://"):
            return
        bucket, _, prefix = output.removeprefix("s3://").partition("/")
        key = f"{prefix.strip('/')}/{name}/output/model.tar.gz".lstrip("/")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            info = tarfile.TarInfo("output.ipynb")
            info.size = len(self.notebook)
            archive.addfile(info, io.BytesIO(self.notebook))
        boto3.client("s3", **endpoint).put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())

    def _stop(self, name: str) -> tuple[int, dict, bytes]:
        with self.lock:
            if name not in self.scripts:
                return _error(400, "ResourceNotFound", f"Requested resource not found: {name}")
            status = self._current(name)[0]
            if status != "InProgress":
                return _error(
                    400,
                    "ValidationException",
                    f"The request was rejected because the training job is in status {status}.",
                )
            # -1: the next list (one step) shows Stopping, the one after Stopped
            self.scripts[name], self.steps[name] = [("Stopping", "Stopping"), ("Stopped", "Stopped")], -1
        return 200, {"Content-Type": "application/x-amz-json-1.1"}, b"{}"


def _error(status: int, code: str, message: str) -> tuple[int, dict, bytes]:
    body = json.dumps({"__type": code, "message": message}).encode()
    return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}, body
