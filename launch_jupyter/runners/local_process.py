"""The ``local-process`` resource: run the notebook in a subprocess of this Python, on this machine.

Each run has its own working folder (``job.workdir``, given by the agent) holding:

- ``process.json``: pid, process group and start time, written before ``submit`` returns;
- ``run.log``: the process's stdout and stderr;
- ``exit.json``: written by the entrypoint itself when it ends (``--status-file``), so how a run
  ended is known even when the agent that started it is gone;
- ``cancelled`` / ``timed-out``: markers that explain an ending the process could not report.

The process runs in its own session (process group), so it outlives the agent and a cancel ends
it with everything it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .._process import process_alive
from ..core.errors import DispatchError, LaunchError
from ..core.identity import run_identity
from ..core.model import Problem, Status
from ..core.states import RunState
from . import Runner
from ._local import env_value, local_config_problems, mask
from ._local import last_error_line as _last_error_line
from ._local import read_json as _read_json
from ._local import write_json as _write_json

if TYPE_CHECKING:
    from ..core.config import AgentConfig
    from ..core.model import Job, Queue, Run

PROCESS_FILE, EXIT_FILE, LOG_FILE = "process.json", "exit.json", "run.log"
CANCELLED_MARK, TIMEOUT_MARK, LOCK_FILE = "cancelled", "timed-out", "submit.lock"
OUTPUT_FILE = "output.ipynb"
GRACE_SECONDS = 10.0  # between SIGTERM and SIGKILL: the entrypoint saves the partial notebook in it
LOG_WAIT_SECONDS = 30.0  # how long logs(follow=True) waits for a run that has not started
KEYS = {"timeout": "seconds, or null for no limit", "env": "extra environment variables"}

DEFAULT_CONFIG = """\
# Runs the notebook in a subprocess of this Python on this machine.
timeout: null        # seconds, or null for no limit
env: {}              # extra environment variables for the notebook
"""

# Popen objects of the processes this Python started, so they are reaped (no zombies, no
# "still running" warnings) whichever runner object polls them.
_STARTED: dict[int, subprocess.Popen] = {}


class LocalProcessRunner(Runner):
    """Runs ``python -m launch_jupyter.execute`` in the run's own folder, one process group per run."""

    resource = "local-process"
    needs_image = False
    host_bound = True  # the process and its folder exist on this host only
    call_timeout = 60.0

    def default_config(self) -> str:
        """The YAML a new local-process queue starts from."""
        return DEFAULT_CONFIG

    def validate(self, config: dict) -> list[Problem]:
        """Only ``timeout`` (positive number or null) and ``env`` (a mapping of scalars) are allowed."""
        return local_config_problems(config, KEYS, self.resource)

    def preflight(self, queue: Queue, agent_config: AgentConfig) -> None:
        """This Python must be able to run notebooks: papermill and ipykernel installed."""
        from importlib.util import find_spec

        missing = [name for name in ("papermill", "ipykernel") if find_spec(name) is None]
        if missing:
            raise LaunchError(
                f"queue {queue.path} runs notebooks with {sys.executable}, which lacks "
                f"{', '.join(missing)}; install them there (pip install {' '.join(missing)})"
            )

    def find(self, job: Job) -> str | None:
        """The id of the process already started for this run (from its folder), or None."""
        existing = _read_json(Path(job.workdir) / PROCESS_FILE)
        return existing["external_id"] if existing is not None else None

    def create(self, job: Job) -> str:
        """Start the run's process (once: a second call returns the first process's id)."""
        workdir = Path(job.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        existing = _read_json(workdir / PROCESS_FILE)
        if existing is not None:
            return existing["external_id"]
        command, env, cwd = self._command(job)
        try:
            lock = os.open(workdir / LOCK_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            recovered = _recover(workdir, command)
            if recovered is not None:
                return recovered
            if not (workdir / LOCK_FILE).exists():
                return self.create(job)  # whoever took the lock died before starting it: start it now
            return _wait_for_process_file(workdir)
        try:
            os.write(lock, str(os.getpid()).encode())  # who is starting it, in case it dies midway
            return _start(command, env, cwd, workdir)
        finally:
            os.close(lock)

    def poll(self, jobs: list[Job]) -> dict[str, Status]:
        """Status of each job, keyed by run id, read from its folder and its process."""
        return {job.run.id: self._status(job) for job in jobs}

    def watch(self, job: Job, changed: Callable[[], None]) -> None:
        """``changed()`` when the run's ``exit.json`` appears (inotify on its folder: also for a process
        an earlier agent started) or its process ends (a pidfd; this covers a killed process that wrote
        no exit status)."""
        from .._process import watcher

        workdir = Path(job.workdir)
        ends = watcher()
        ends.watch_file(workdir / EXIT_FILE, changed)
        info = _read_json(workdir / PROCESS_FILE)
        if info is None or info.get("pid", -1) <= 0:
            return
        pid = info["pid"]
        popen = _STARTED.get(pid)
        if popen is not None:
            ends.watch_process(pid, changed, popen=popen)
        elif _alive(info):  # started by an earlier agent: the pidfd must name that very process
            ends.watch_process(pid, changed, still_ours=lambda: _alive(info))
        else:
            changed()

    def cancel(self, job: Job) -> None:
        """End the run's process group: SIGTERM, then SIGKILL after a grace period."""
        workdir = Path(job.workdir)
        _write_json(workdir / CANCELLED_MARK, {"at": time.time()})
        info = _read_json(workdir / PROCESS_FILE)
        if info is not None:
            _terminate(info)

    def logs(self, run: Run, follow: bool = False) -> Iterator[str]:
        """Lines of the run's log; with ``follow``, keep reading until the process ends."""
        path = Path(run.log_path) if run.log_path else self._runs_dir() / run.id / LOG_FILE
        return _read_log(path, follow)

    def log_path(self, job: Job) -> str:
        """Where this run's log is kept on this machine (shown by ``launch-jupyter run show``)."""
        return str(Path(job.workdir) / LOG_FILE)

    def dry_run(self, job: Job) -> dict:
        """The command, folder and added environment ``submit`` would use (secret values masked)."""
        command, env, cwd = self._command(job, check=False)
        added = {k: mask(k, v) for k, v in env.items() if os.environ.get(k) != v}
        workdir = Path(job.workdir)
        return {
            "command": command,
            "cwd": str(cwd),
            "env": added,
            "log": str(workdir / LOG_FILE),
            "output_notebook": command[command.index("--output") + 1],
            "timeout": (job.config or {}).get("timeout"),
        }

    # -- internals -------------------------------------------------------------------------

    def _runs_dir(self) -> Path:
        if self.agent_config is not None:
            return Path(self.agent_config.data_dir) / "runs"
        from ..core.config import data_home

        return data_home() / "runs"

    def _command(self, job: Job, check: bool = True) -> tuple[list[str], dict[str, str], Path]:
        if job.context_dir is None or not job.notebook:
            raise DispatchError(f"run {job.run.id} has no unpacked build context to run")
        notebook = Path(job.context_dir) / job.notebook
        if check and not notebook.is_file():  # a dry run may preview a run not yet packaged
            raise DispatchError(f"run {job.run.id}: notebook {notebook} is missing from its context")
        workdir = Path(job.workdir)
        output = job.output_path or str(workdir / OUTPUT_FILE)
        command = [
            sys.executable,
            "-m",
            "launch_jupyter.execute",
            "--notebook",
            str(notebook),
            "--output",
            output,
            "--parameters",
            json.dumps(job.run.parameters or {}, default=str),
            "--cwd",
            str(job.context_dir),
            "--status-file",
            str(workdir / EXIT_FILE),
        ]
        return command, self._environment(job), Path(job.context_dir)

    def _environment(self, job: Job) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("JPY_SESSION_NAME", "LAUNCH_PARAMETERS")}
        output = job.output_path or str(Path(job.workdir) / OUTPUT_FILE)
        env.update(
            run_identity(
                run_id=job.run.id,
                entity=job.queue.entity,
                queue=job.queue.path,
                author=job.run.author,
                output=output,
                workdir=str(job.workdir),
            )
        )
        env["PYTHONUNBUFFERED"] = "1"
        extra = (job.config or {}).get("env") or {}
        env.update({str(k): env_value(v) for k, v in extra.items()})
        return env

    def _status(self, job: Job) -> Status:
        workdir = Path(job.workdir)
        info = _read_json(workdir / PROCESS_FILE)
        if info is None:
            return Status(RunState.PENDING, "not started yet")
        output = info.get("output")
        alive = _alive(info)  # checked before exit.json: the process writes it just before ending
        ended = _read_json(workdir / EXIT_FILE)
        if ended is None and alive:
            return self._running(job, info)
        if ended is not None and ended.get("returncode") == 0:
            return Status(RunState.SUCCEEDED, "", output_notebook=output)  # finished before a cancel
        if (workdir / CANCELLED_MARK).exists():
            return Status(RunState.CANCELLED, "cancelled", output_notebook=_existing(output))
        if (workdir / TIMEOUT_MARK).exists():
            limit = _read_json(workdir / TIMEOUT_MARK) or {}
            return Status(RunState.FAILED, f"timed out after {limit.get('timeout')} s", _existing(output))
        if ended is None:
            last = _last_error_line(workdir / LOG_FILE)
            return Status(
                RunState.FAILED, f"the process ended without an exit status (killed?) {last}".strip(), _existing(output)
            )
        message = ended.get("error") or _last_error_line(workdir / LOG_FILE)
        return Status(RunState.FAILED, message, output_notebook=_existing(output))

    def _running(self, job: Job, info: dict) -> Status:
        timeout = (job.config or {}).get("timeout")
        if timeout and time.time() - info["started_at"] > float(timeout):
            _write_json(Path(job.workdir) / TIMEOUT_MARK, {"timeout": timeout})
            _terminate(info)
            return Status(RunState.FAILED, f"timed out after {timeout} s", _existing(info.get("output")))
        return Status(RunState.RUNNING, f"process {info['pid']}")


def _start(command: list[str], env: dict[str, str], cwd: Path, workdir: Path) -> str:
    with open(workdir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: survives the agent
        )
    _STARTED[process.pid] = process
    external_id = f"local:{process.pid}@{workdir}"
    _write_json(
        workdir / PROCESS_FILE,
        {
            "external_id": external_id,
            "pid": process.pid,
            "pgid": process.pid,
            "started_at": time.time(),
            "proc_start": _proc_start_time(process.pid),
            "command": command,
            "output": command[command.index("--output") + 1],
        },
    )
    return external_id


def _recover(workdir: Path, command: list[str]) -> str | None:
    """The lock is there but no process was recorded, and the process that took the lock is gone
    (an agent killed between the two): record the run's process if it was started — found by its
    ``--status-file``, which names this run's folder — else clear the lock and start it."""
    try:
        owner = int((workdir / LOCK_FILE).read_text() or "0")
    except (OSError, ValueError):
        owner = 0
    if owner and (owner == os.getpid() or process_alive(owner)):
        return None  # still starting it: wait for its process file
    if not owner and time.time() - _mtime(workdir / LOCK_FILE) < 10.0:
        return None  # taken an instant ago, its pid not written yet
    pid = _find_run_process(workdir / EXIT_FILE)
    if pid is None and (workdir / EXIT_FILE).exists():
        pid = -1  # it ran and ended before anyone recorded it; exit.json tells how
    if pid is None:
        (workdir / LOCK_FILE).unlink(missing_ok=True)
        return None  # never started: the caller starts it
    external_id = f"local:{pid}@{workdir}"
    _write_json(
        workdir / PROCESS_FILE,
        {
            "external_id": external_id,
            "pid": pid,
            "pgid": pid,
            "started_at": _mtime(workdir / LOCK_FILE),
            "proc_start": _proc_start_time(pid) if pid > 0 else None,
            "command": command,
            "output": command[command.index("--output") + 1],
            "recovered": True,
        },
    )
    return external_id


def _find_run_process(status_file: Path) -> int | None:
    """The pid of a live ``launch_jupyter.execute`` writing ``status_file`` (this run's), if any."""
    needle = str(status_file)
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "launch_jupyter.execute" in args and "--status-file" in args:
            at = args.index("--status-file")
            if at + 1 < len(args) and args[at + 1] == needle and _proc_state(int(entry.name)) != "Z":
                return int(entry.name)
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _wait_for_process_file(workdir: Path, timeout: float = 10.0) -> str:
    """Another caller is starting this run right now: return the id it records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = _read_json(workdir / PROCESS_FILE)
        if info is not None:
            return info["external_id"]
        time.sleep(0.05)
    raise DispatchError(
        f"{workdir / LOCK_FILE} exists but no process was recorded; a submit may have crashed. "
        "Remove the lock file to start the run again",
        transient=False,
    )


def _alive(info: dict) -> bool:
    pid = info["pid"]
    process = _STARTED.get(pid)
    if process is not None:
        if process.poll() is None:
            return True
        del _STARTED[pid]  # reaped; from now on the /proc check below answers (no such process)
        return False
    start = _proc_start_time(pid)
    if start is not None:
        # Same pid and same start time: the very process we started, not a reused pid.
        return start == info.get("proc_start") and _proc_state(pid) != "Z"
    if Path("/proc").is_dir():
        return False
    return process_alive(pid)


def _proc_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _proc_start_time(pid: int) -> int | None:
    fields = _proc_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of stat, counted after "(comm)"


def _proc_state(pid: int) -> str | None:
    fields = _proc_fields(pid)
    return fields[0] if fields else None


def _terminate(info: dict) -> None:
    """SIGTERM the group, wait, SIGKILL what is left, including kernels in their own sessions."""
    from ..execute import children

    if not _alive(info):
        return
    pgid = info.get("pgid", info["pid"])
    kernel_groups = _groups(_descendants(info["pid"], children))
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and _alive(info):
        time.sleep(0.05)
    for group in {pgid, *kernel_groups}:
        _signal_group(group, signal.SIGKILL)
    process = _STARTED.get(info["pid"])
    if process is not None:
        process.wait(timeout=GRACE_SECONDS)


def _descendants(pid: int, children) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        found += kids
        todo += kids
    return found


def _groups(pids: list[int]) -> set[int]:
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    return groups


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read_log(path: Path, follow: bool) -> Iterator[str]:
    info_file = path.parent / PROCESS_FILE
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while follow and not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # not started yet
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as log:
        pending = ""
        while True:
            chunk = log.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    yield pending.rstrip("\n")
                    pending = ""
                continue
            info = _read_json(info_file) if follow else None
            if info is None or not _alive(info):
                # One more read: the process may have written its last lines as it ended.
                rest = pending + log.read()
                yield from (line for line in rest.splitlines())
                return
            time.sleep(0.2)


def _existing(path: str | None) -> str | None:
    return path if path and (path.startswith("gs://") or Path(path).exists()) else None
