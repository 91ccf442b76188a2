"""A worker for the fake Vertex AI: runs a CustomJob's container command as a local process.

With a worker attached (``FakeVertex.attach_worker``), a created job no longer walks a script of
states: pool 0's ``container_spec.command + args`` runs here, and the job's state follows the
process, as on the real service. Each rule cites what it follows:

- The container's filesystem is the image's: here, the folder ``image_root(run_id)`` returns (the
  run's build context, which is what our Dockerfile copies into the image); ``python`` is this
  interpreter, which has launch_jupyter installed as the image does.
- ``/gcs/<bucket>/...`` is Cloud Storage FUSE: "Vertex AI mounts Cloud Storage buckets at /gcs/"
  (cloud.google.com/vertex-ai/docs/training/cloud-storage-file-system). Here it is a local folder
  standing for the mount, and what the process wrote there is put into the fake GCS when the
  process ends (Cloud Storage FUSE uploads a file when it is closed, so by then it is all there).
- The container's stdout and stderr become Cloud Logging entries of resource ``ml_job`` with the
  job id label, one per line, time-stamped as they are written ("Vertex AI custom training writes
  the container's stdout and stderr to Cloud Logging": cloud.google.com/vertex-ai/docs/training/
  code-requirements#logging).
- States: the job is JOB_STATE_PENDING from its create until the process starts, then
  JOB_STATE_RUNNING (start_time set), then JOB_STATE_SUCCEEDED on exit status 0, else
  JOB_STATE_FAILED with the service's message for a replica that exited non-zero.
- Cancel (``CancelCustomJob``): the job goes to JOB_STATE_CANCELLING at once ("Starts asynchronous
  cancellation on the CustomJob", JobServiceClient.cancel_custom_job docstring; JobState docstring:
  CANCELLING "may only go to either JOB_STATE_SUCCEEDED, JOB_STATE_FAILED or JOB_STATE_CANCELLED"),
  the container is stopped the way a container runtime stops one, SIGTERM to its main process and
  SIGKILL after a grace period, and once it has exited the job is JOB_STATE_CANCELLED with
  ``error.code = 1`` (Code.CANCELLED, same docstring). A process that ends by itself before the
  cancel lands finishes as it ended (cancel is best effort).
- ``job_spec.scheduling.timeout`` ("The maximum job running time. The default is 7 days",
  Scheduling docstring): when a job runs that long the service cancels it, as a cancel above (a job
  at the 7-day default "gets cancelled", github.com/tensorflow/tfx/issues/6223).
"""

from __future__ import annotations

import datetime as _dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GRACE_S = 30.0  # a container runtime's default stop timeout before SIGKILL (Kubernetes' terminationGracePeriodSeconds)
# What the service says of a replica that exited with a non-zero status (seen in real job errors).
EXIT_MESSAGE = "The replica workerpool0-0 exited with a non-zero status of {code}."


class FakeWorker:
    """Runs the jobs of one VertexState as local processes (see the module docstring)."""

    def __init__(self, state: Any, gcs: Any, image_root: Callable[[str], Path], mount: Path, grace: float = GRACE_S):
        self.state = state  # tests.fakes.vertex_server.VertexState
        self.gcs = gcs  # tests.fakes.gcs_server.GcsState: where /gcs/ writes end up
        self.image_root = image_root
        self.mount = Path(mount)
        self.grace = grace
        self.processes: dict[str, subprocess.Popen] = {}  # job name -> its container's main process
        self.cancelled: set[str] = set()
        self.lock = threading.Lock()

    # ------------------------------------------------------------ called by VertexState
    def start(self, entry: Any) -> None:
        """Run the job's container command on a thread of its own."""
        threading.Thread(
            target=self._run, args=(entry,), daemon=True, name=f"fake-vertex-worker {entry.proto.name}"
        ).start()

    def cancel(self, entry: Any) -> None:
        """CANCELLING now; SIGTERM to the container's main process, SIGKILL after the grace period."""
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        name = entry.proto.name
        with self.state.lock:
            entry.proto.state = aiplatform_v1.JobState.JOB_STATE_CANCELLING
            entry.proto.update_time = _now()
        with self.lock:
            self.cancelled.add(name)
            process = self.processes.get(name)
        if process is not None:
            threading.Thread(target=self._stop, args=(process,), daemon=True).start()

    def stop_all(self) -> None:
        """Stop every container still running (the fake is going away): SIGTERM first, so the
        entrypoint ends the kernel it started in a session of its own, then SIGKILL."""
        with self.lock:
            processes = list(self.processes.values())
        for process in processes:
            try:
                process.send_signal(signal.SIGTERM)
                process.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            _kill_group(process, signal.SIGKILL)

    # ------------------------------------------------------------ the container
    def _run(self, entry: Any) -> None:
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        JobState = aiplatform_v1.JobState
        name = entry.proto.name
        pool = entry.proto.job_spec.worker_pool_specs[0]
        spec = pool.container_spec
        argv = [self._path(a) for a in list(spec.command) + list(spec.args)]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
        env.update({e.name: self._path(e.value) for e in spec.env})
        env["PYTHONUNBUFFERED"] = "1"
        run_id = env.get("LAUNCH_RUN_ID", "")  # which run's image (build context) this job runs
        with self.lock:  # never with the state's lock held: cancel() takes that one first
            early = name in self.cancelled  # cancelled while still pending: it never starts
            process = None if early else self._spawn(argv, env, run_id)
            if process is not None:
                self.processes[name] = process
        if process is None:
            self._end(
                entry,
                JobState.JOB_STATE_CANCELLED if early else JobState.JOB_STATE_FAILED,
                "" if early else EXIT_MESSAGE.format(code=127),
            )
            return
        with self.state.lock:
            entry.proto.state = JobState.JOB_STATE_RUNNING
            entry.proto.start_time = entry.proto.update_time = _now()
        limit = entry.proto.job_spec.scheduling.timeout
        if limit:
            timer = threading.Timer(limit.total_seconds(), self._time_out, args=(entry, process))
            timer.daemon = True
            timer.start()
        for line in process.stdout:
            self.state.append_log(name, line.rstrip("\n"), time.time())
        code = process.wait()
        _kill_group(process, signal.SIGKILL)  # what is left of the container goes with it
        self._upload()
        with self.lock:
            cancelled = name in self.cancelled
            self.processes.pop(name, None)
        if cancelled and code != 0:
            self._end(entry, JobState.JOB_STATE_CANCELLED)
        elif code == 0:
            self._end(entry, JobState.JOB_STATE_SUCCEEDED)
        else:
            self._end(entry, JobState.JOB_STATE_FAILED, EXIT_MESSAGE.format(code=code))

    def _time_out(self, entry: Any, process: subprocess.Popen) -> None:
        if process.poll() is None:
            self.cancel(entry)

    def _spawn(self, argv: list[str], env: dict, run_id: str) -> subprocess.Popen | None:
        try:
            return subprocess.Popen(
                argv,
                cwd=str(self.image_root(run_id)),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        except OSError:
            return None  # no such command or folder in the "image": the replica fails to start

    def _stop(self, process: subprocess.Popen) -> None:
        try:
            process.send_signal(signal.SIGTERM)  # the main process only, as a container runtime does
            process.wait(self.grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            _kill_group(process, signal.SIGKILL)

    def _end(self, entry: Any, state: Any, message: str = "") -> None:
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        with self.state.lock:
            entry.proto.state = state
            entry.proto.end_time = entry.proto.update_time = _now()
            if state == aiplatform_v1.JobState.JOB_STATE_CANCELLED:
                entry.proto.error = {"code": 1, "message": "CANCELED"}
            elif state == aiplatform_v1.JobState.JOB_STATE_FAILED:
                entry.proto.error = {"code": 3, "message": message}

    # ------------------------------------------------------------ Cloud Storage FUSE
    def _path(self, text: str) -> str:
        """``/gcs/b/x`` as the folder that stands for the mount here."""
        return str(self.mount / text[len("/gcs/") :]) if text.startswith("/gcs/") else text

    def _upload(self) -> None:
        for path in self.mount.rglob("*"):
            if path.is_file():
                bucket, _, name = path.relative_to(self.mount).as_posix().partition("/")
                with self.gcs.lock:
                    self.gcs.objects[(bucket, name)] = path.read_bytes()


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
