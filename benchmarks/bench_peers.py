"""Peers (issue 21): launch_jupyter beside papermill and jupyter-scheduler, measured interleaved.

1. Latency, the quickstart notebook with a parameter (its ``%launch`` cells dropped, so every path
   runs the same cells), ``rounds`` rounds, the paths in a fresh random order each round:
   the ``papermill`` CLI (the floor), ``python -m launch_jupyter.execute``, ``launch-jupyter submit``
   served by a ``launch-jupyter agent`` (SQLite), ``%launch submit`` served by the kernel's own agent,
   and jupyter-scheduler's ``POST /scheduler/jobs`` on a Jupyter server it starts on loopback.
   *To file*: from the command's start to the executed notebook's last write (its mtime). *To
   state*: to the run's ``succeeded`` event (jupyter-scheduler: the job's ``end_time``). The lag
   between the two is the news of the ending; above ``MAX_LAG_S`` the area reports a problem. For the
   launch paths the rows also note how soon the run was claimed after it was queued (its events);
   one claim later than ``MAX_CLAIM_S`` is a problem: the agent missed the news of the run.
2. Throughput: ``count`` notebooks that sleep 1 s, N = 1, 2, 4 at a time: ``xargs -P N papermill``
   beside a ``launch-jupyter agent --max-jobs N`` (all runs queued before it starts; timed from its
   start to the last ``succeeded``), and jupyter-scheduler, which runs every job at once.

jupyter-scheduler is installed from PyPI (``pip install jupyter_scheduler``) into a venv of its own
under ``~/.cache/launch-jupyter-bench`` (made once, reused), so it shares nothing with ours.
``python benchmarks/bench_peers.py [--quick]`` prints the rows alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from _stats import ROOT, figure, median, not_available, spread_text

QUICKSTART = ROOT / "examples" / "notebooks" / "quickstart.ipynb"
SLEEPER = ROOT / "examples" / "notebooks" / "parameters.ipynb"
BIN = Path(sys.executable).parent
MAX_LAG_S = 0.5  # state later than the file by more than this, locally: a structural regression
# A claim later than this after the queued event: the agent missed the wake-up and found the run on a
# later write or poll (seen at 7-28 s before the SQLite watcher was told of commits after the fact).
MAX_CLAIM_S = 2.0
SCHEDULER_HOME = (
    Path.home() / ".cache" / "launch-jupyter-bench" / f"jupyter-scheduler-py{sys.version_info[0]}{sys.version_info[1]}"
)


def _load_note() -> str:
    """The 1-minute load average when a figure was taken: on a 2-core machine shared with other work,
    the absolute times move with it, the interleaved ratios much less."""
    import os

    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when measured"


# ------------------------------------------------------------------ notebooks


def _plain_notebook(source: Path, target: Path) -> Path:
    """``source`` without its ``%launch`` cells (and the markdown that introduces them)."""
    nb = json.loads(source.read_text())
    cells = []
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if "%launch" in text or "%load_ext" in text or "Send this notebook" in text:
            continue
        cells.append(cell)
    nb["cells"] = cells
    target.write_text(json.dumps(nb))
    return target


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _wait(condition, timeout: float, what: str, step: float = 0.01):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


# ------------------------------------------------------------------ launch_jupyter paths


def _succeeded(run_id: str, timeout: float = 300) -> tuple[float, str]:
    """(time of the run's terminal event, output notebook) once it ended; raises unless succeeded."""
    from launch_jupyter import api
    from launch_jupyter.core.states import TERMINAL, RunState

    run = _wait(lambda: (r := api.get_run(run_id)) and r.state in TERMINAL and r, timeout, f"run {run_id}")
    if run.state is not RunState.SUCCEEDED:
        raise RuntimeError(f"run {run_id} ended {run.state}: {run.run.message}")
    at = max(e.time for e in api.events(run_id) if e.state is RunState.SUCCEEDED)
    return at, run.output_notebook


class _CliAgent:
    """A ``launch-jupyter agent`` subprocess serving ``queue``."""

    def __init__(self, queue: str, *extra: str):
        self.proc = subprocess.Popen(
            [str(BIN / "launch-jupyter"), "agent", "-q", queue, *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        _end(self.proc)


def _end(proc: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL when it is still there 30 s later."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _latency_papermill(notebook: Path, out: Path, name: str) -> dict:
    output = out / f"papermill-{name}.ipynb"
    t0 = time.time()
    subprocess.run(
        [str(BIN / "papermill"), str(notebook), str(output), "-p", "name", name, "-k", "python3", "--cwd", str(out)],
        check=True,
        capture_output=True,
    )
    return {"file": _mtime(output) - t0}


def _latency_execute(notebook: Path, out: Path, name: str) -> dict:
    output = out / f"execute-{name}.ipynb"
    t0 = time.time()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "launch_jupyter.execute",
            "--notebook",
            str(notebook),
            "--output",
            str(output),
            "--parameters",
            json.dumps({"name": name}),
            "--cwd",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return {"file": _mtime(output) - t0}


def _claim_lag(run_id: str) -> float:
    """Seconds from the run's ``queued`` event to its ``claimed`` one: how soon the agent heard of it."""
    from launch_jupyter import api
    from launch_jupyter.core.states import RunState

    events = api.events(run_id)
    queued = min(e.time for e in events if e.state is RunState.QUEUED)
    return min(e.time for e in events if e.state is RunState.CLAIMED) - queued


def _latency_cli(notebook: Path, queue: str, name: str) -> dict:
    # Like for like with the other paths: the agent was started once, before any round and outside
    # the timer (as the kernel's agent and jupyter-scheduler's server are); the timer includes the
    # `launch-jupyter submit` process's start and imports, as papermill's and execute's include theirs.
    t0 = time.time()
    done = subprocess.run(
        [str(BIN / "launch-jupyter"), "submit", str(notebook), "-q", queue, "-p", f"name={name}"],
        check=True,
        capture_output=True,
        text=True,
    )
    run_id = done.stdout.split("queued run ", 1)[1].split()[0]
    at, output = _succeeded(run_id)
    return {"file": _mtime(Path(output)) - t0, "state": at - t0, "claim": _claim_lag(run_id)}


def _latency_magic(kernel, notebook: Path, queue: str, name: str) -> dict:
    from launch_jupyter import api

    before = {r.id for r in api.list_runs(queue=queue)}
    t0 = time.time()
    kernel.execute(f"%launch submit --notebook {notebook} -q {queue} -p name={name}")
    run_id = next(r.id for r in api.list_runs(queue=queue) if r.id not in before)
    at, output = _succeeded(run_id)
    return {"file": _mtime(Path(output)) - t0, "state": at - t0, "claim": _claim_lag(run_id)}


# ------------------------------------------------------------------ jupyter-scheduler


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scheduler_venv() -> Path:
    """The venv holding jupyter-scheduler (made and filled from PyPI on first use)."""
    python = SCHEDULER_HOME / "bin" / "python"
    marker = SCHEDULER_HOME / ".installed"
    if marker.exists():
        return SCHEDULER_HOME
    shutil.rmtree(SCHEDULER_HOME, ignore_errors=True)
    SCHEDULER_HOME.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(SCHEDULER_HOME)], check=True, capture_output=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "jupyter_scheduler", "ipykernel"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install jupyter_scheduler failed: {done.stderr.strip()[-300:]}")
    marker.write_text(time.strftime("%Y-%m-%d"))
    return SCHEDULER_HOME


class Scheduler:
    """A Jupyter server of jupyter-scheduler's venv on loopback, driven through its REST API."""

    def __init__(self, work: Path):
        venv = scheduler_venv()
        self.root = work / "scheduler-root"
        self.root.mkdir()
        home = work / "scheduler-home"
        self.data = home / "data"
        for folder in ("config", "data", "runtime"):  # its SQLite database goes in the data folder
            (home / folder).mkdir(parents=True)
        env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_DATA_DIR=str(self.data),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            JUPYTER_PLATFORM_DIRS="1",
            PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        env.pop("PYTHONPATH", None)
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(work / "scheduler-server.log", "w")
        self.proc = subprocess.Popen(
            [
                str(venv / "bin" / "jupyter"),
                "server",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                "--allow-root",
                f"--ServerApp.root_dir={self.root}",
                # its default lists conda environments; the static one names one environment, no conda
                "--SchedulerApp.environment_manager_class=jupyter_scheduler.environments.StaticEnvironmentManager",
            ],
            env=env,
            cwd=self.root,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait(self._up, 120, "the jupyter-scheduler server", step=0.2)
        except Exception:
            self.stop()
            raise
        self.version = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import jupyter_scheduler; print(jupyter_scheduler.__version__)"],
            capture_output=True,
            text=True,
        ).stdout.strip()

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
        return json.loads(text) if text else {}

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the jupyter server exited with {self.proc.returncode}")
        try:
            self._request("GET", "/scheduler/jobs")  # the extension answers, its database open
            return True
        except OSError:  # not listening yet, or the extension not loaded yet (404)
            return False

    def submit(self, notebook: Path, name: str, parameters: dict) -> str:
        """``POST /scheduler/jobs`` for ``notebook`` (copied into the server's root); the job id."""
        shutil.copy(notebook, self.root / notebook.name)
        job = self._request(
            "POST",
            "/scheduler/jobs",
            {
                "name": name,
                "input_uri": notebook.name,
                "runtime_environment_name": "jupyterlab-env",
                "output_formats": ["ipynb"],
                "parameters": parameters,
            },
        )
        return job["job_id"]

    def finished(self, job_id: str) -> dict | None:
        """The job once it is no longer queued or running (raises unless it completed)."""
        job = self._request("GET", f"/scheduler/jobs/{job_id}")
        if job["status"] in ("CREATED", "QUEUED", "IN_PROGRESS"):
            return None
        if job["status"] == "STOPPED" and not job.get("start_time"):
            return None  # its row's default status until the spawned executor marks it IN_PROGRESS
        if job["status"] != "COMPLETED":
            raise RuntimeError(f"jupyter-scheduler job {job_id} ended {job['status']}: {job.get('status_message')}")
        return job

    def output_mtime(self, job_id: str, input_name: str) -> float | None:
        """When the executed notebook of the job was written: its staging folder holds the input copy
        and the output (``<staging_path>/<job id>/``, staging_path = the Jupyter data dir's
        ``scheduler_staging_area``)."""
        folder = self.data / "scheduler_staging_area" / job_id
        times = [_mtime(p) for p in folder.glob("*.ipynb") if p.name != input_name]
        return max((t for t in times if t), default=None)

    def latency(self, notebook: Path, name: str) -> dict:
        t0 = time.time()
        # It writes each parameter as `key = value` verbatim: a string goes in with its quotes.
        job_id = self.submit(notebook, f"lat-{name}", {"name": json.dumps(name)})
        job = _wait(lambda: self.finished(job_id), 300, f"jupyter-scheduler job {job_id}", step=0.02)
        seen = time.time()
        end = (job.get("end_time") or 0) / 1000 or seen  # ms since the epoch
        staged = self.output_mtime(job_id, notebook.name)
        return {"file": (staged or end) - t0, "state": end - t0, "observed": seen - t0}

    def throughput(self, notebook: Path, count: int) -> float:
        t0 = time.time()
        ids = [self.submit(notebook, f"tp-{i}", {"seconds": 1}) for i in range(count)]
        jobs = [_wait(lambda j=j: self.finished(j), 900, f"job {j}", step=0.1) for j in ids]
        return max((j.get("end_time") or 0) / 1000 or time.time() for j in jobs) - t0

    def stop(self) -> None:
        _end(self.proc)
        self.log.close()


# ------------------------------------------------------------------ throughput


def _xargs(notebook: Path, out: Path, count: int, parallel: int) -> float:
    out.mkdir(parents=True)
    t0 = time.monotonic()
    subprocess.run(
        [
            "xargs",
            "-P",
            str(parallel),
            "-I{}",
            str(BIN / "papermill"),
            str(notebook),
            str(out / "{}.ipynb"),
            "-p",
            "seconds",
            "1",
            "-k",
            "python3",
            "--cwd",
            str(out),
        ],
        input="\n".join(str(i) for i in range(count)) + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - t0


def _agent_throughput(notebook: Path, queue: str, count: int, parallel: int) -> float:
    from launch_jupyter import api

    api.create_queue(queue, "local-process")
    ids = [api.submit(notebook, queue, parameters={"seconds": 1}).id for _ in range(count)]
    t0 = time.time()
    agent = _CliAgent(queue, "--max-jobs", str(parallel), "--until-idle")
    try:
        ends = [_succeeded(run_id, timeout=900)[0] for run_id in ids]
        agent.proc.wait(120)
    finally:
        agent.stop()
    return max(ends) - t0


# ------------------------------------------------------------------ the area


@contextlib.contextmanager
def _store_env(url: str) -> Iterator[None]:
    """Every process of this area (CLI, agents, the kernel) uses the one SQLite store."""
    saved = os.environ.get("LAUNCH_JUPYTER_DB")
    os.environ["LAUNCH_JUPYTER_DB"] = url
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("LAUNCH_JUPYTER_DB", None)
        else:
            os.environ["LAUNCH_JUPYTER_DB"] = saved


def _latency_rows(results: dict[str, list[dict]], rounds: int) -> tuple[list[dict], list[str]]:
    floor = [r["file"] for r in results.get("papermill", [])]
    base = median(floor) if floor else None
    labels = {
        "execute": "python -m launch_jupyter.execute",
        "cli": "launch-jupyter submit + CLI agent (SQLite)",
        "magic": "%launch submit + in-kernel agent",
        "scheduler": "jupyter-scheduler REST (POST /scheduler/jobs)",
    }
    rows = [
        figure(
            "peers: papermill CLI, executed notebook on disk (the floor)",
            base,
            "s",
            n=len(floor),
            spread=spread_text(floor),
            note=_load_note(),
        )
    ]
    problems = []
    for key, label in labels.items():
        got = results.get(key)
        if not got:
            continue
        files = [r["file"] for r in got]
        claims = [r["claim"] for r in got if "claim" in r]
        rows.append(
            figure(
                f"peers: {label}, executed notebook on disk",
                median(files),
                "s",
                baseline="papermill CLI",
                baseline_value=base,
                n=len(files),
                spread=spread_text(files),
                note=f"claimed after queued: median {median(claims):.3f} s, max {max(claims):.3f} s" if claims else "",
            )
        )
        if claims and max(claims) > MAX_CLAIM_S:
            problems.append(
                f"{label}: a run was claimed {max(claims):.1f} s after it was queued (median "
                f"{median(claims):.2f} s of {len(claims)}): the agent did not hear of it at once"
            )
        if "state" in got[0]:
            states = [r["state"] for r in got]
            lags = [r["state"] - r["file"] for r in got]
            note = f"state after the file: median {median(lags):.3f} s, max {max(lags):.3f} s"
            if key == "scheduler":
                note += f"; seen by a 20 ms REST poll at {median([r['observed'] for r in got]):.2f} s"
            rows.append(
                figure(
                    f"peers: {label}, run reported succeeded",
                    median(states),
                    "s",
                    baseline="papermill CLI file",
                    baseline_value=base,
                    n=len(states),
                    spread=spread_text(states),
                    note=note,
                )
            )
            if key in ("cli", "magic") and median(lags) > MAX_LAG_S:
                problems.append(
                    f"{label}: the run's state lags its executed notebook by {median(lags):.2f} s "
                    f"(median of {len(lags)}; more than {MAX_LAG_S} s means completion is polled again)"
                )
    return rows, problems


def run(quick: bool = False) -> dict:
    from launch_jupyter import api

    rounds, count = (3, 8) if quick else (12, 40)
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    figures: list[dict] = []
    problems: list[str] = []
    url = f"sqlite:///{work / 'launch.db'}"
    try:
        with _store_env(url), contextlib.ExitStack() as stack:
            # A folder of their own: a submit packs the notebook's folder, which must hold nothing else.
            (work / "nb").mkdir()
            notebook = _plain_notebook(QUICKSTART, work / "nb" / "quickstart.ipynb")
            sleeper = _plain_notebook(SLEEPER, work / "nb" / "sleeper.ipynb")
            out = work / "out"
            out.mkdir()
            api.create_queue("lat-cli", "local-process")
            api.create_queue("lat-kernel", "local-process")
            cli_agent = _CliAgent("lat-cli")
            stack.callback(cli_agent.stop)
            import bench_kernel

            kernel = bench_kernel.Kernel(work)
            stack.callback(kernel.stop)
            kernel.execute("%load_ext launch_jupyter\n%launch agent start -q lat-kernel")
            try:
                scheduler = Scheduler(work)
                stack.callback(scheduler.stop)
            except Exception as err:
                scheduler = None
                figures.append(not_available("peers: jupyter-scheduler", f"{type(err).__name__}: {err}"))
            paths = {
                "papermill": lambda name: _latency_papermill(notebook, out, name),
                "execute": lambda name: _latency_execute(notebook, out, name),
                "cli": lambda name: _latency_cli(notebook, "lat-cli", name),
                "magic": lambda name: _latency_magic(kernel, notebook, "lat-kernel", name),
            }
            if scheduler is not None:
                paths["scheduler"] = lambda name: scheduler.latency(notebook, name)
            results: dict[str, list[dict]] = {key: [] for key in paths}
            for warm in paths.values():  # one unmeasured round: caches, kernels, imports
                warm("warmup")
            for i in range(rounds):
                order = list(paths)
                random.shuffle(order)
                for key in order:
                    results[key].append(paths[key](f"r{i}"))
            rows, problems = _latency_rows(results, rounds)
            figures += rows
            kernel.execute("%launch agent stop")
            cli_agent.stop()
            try:
                figures += _throughput_rows(scheduler, sleeper, work, count)
            except Exception as err:  # the latency rows stand on their own
                figures.append(not_available("peers: throughput", f"{type(err).__name__}: {err}"))
    finally:
        from launch_jupyter.store import close_all

        close_all(url)
        shutil.rmtree(work, ignore_errors=True)
    return {"figures": figures, "problems": problems}


def _throughput_rows(scheduler: Scheduler | None, sleeper: Path, work: Path, count: int) -> list[dict]:
    figures = []
    for parallel in (1, 2, 4):
        order = ["xargs", "agent"]
        random.shuffle(order)
        took = {}
        for key in order:
            if key == "xargs":
                took[key] = _xargs(sleeper, work / f"xargs-{parallel}", count, parallel)
            else:
                took[key] = _agent_throughput(sleeper, f"tp{parallel}", count, parallel)
        figures.append(
            figure(
                f"peers: {count} notebooks sleeping 1 s, {parallel} at a time: launch agent",
                took["agent"],
                "s",
                baseline=f"xargs -P {parallel} papermill",
                baseline_value=took["xargs"],
                n=1,
                note="from the agent's start to the last succeeded; " + _load_note(),
            )
        )
    if scheduler is not None:
        took_all = scheduler.throughput(sleeper, count)
        figures.append(
            figure(
                f"peers: {count} notebooks sleeping 1 s, jupyter-scheduler (all at once)",
                took_all,
                "s",
                baseline="xargs -P 4 papermill",
                baseline_value=took["xargs"],
                n=1,
                note=f"jupyter-scheduler {scheduler.version}; from the first POST to the last end_time",
            )
        )
    return figures


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
