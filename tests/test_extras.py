"""The core install and its extras: a venv with only the core dependencies serves the embedded
default (SQLite + local-process) end to end, and a backend whose extra is missing says the one pip
command that installs it, never an ImportError traceback.

The core venv is real (``python -m venv``, the project installed ``--no-deps`` beside exactly the
``project.dependencies`` of pyproject.toml, from the same indexes the set-up uses). It is built once
and kept in ``.cache/`` between runs while its inputs (``_fingerprint``) stay the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from launch_jupyter import _extras

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CACHE = REPO / ".cache" / "core-venv"
# Modules each extra brings, that the core install must not have (else the test below proves nothing).
NOT_IN_CORE = (
    "google.cloud.aiplatform",
    "google.cloud.storage",
    "docker",
    "psycopg",
    "boto3",
    "kubernetes",
    "hatchling",
)


def _fingerprint() -> str:
    """What the core venv depends on: the core dependencies, the installed metadata (entry points,
    scripts) and the interpreter; not the extras nor the tools' sections."""
    project = PYPROJECT["project"]
    inputs = {key: project.get(key) for key in ("dependencies", "entry-points", "scripts", "version")}
    inputs["build-system"] = PYPROJECT["build-system"]
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()[:16]


def _build_core_venv(target: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *PYPROJECT["project"]["dependencies"]], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(REPO)], check=True)


@pytest.fixture(scope="session")
def core_venv() -> Path:
    """A venv with only the core dependencies and launch-jupyter (editable, ``--no-deps``)."""
    target = CACHE / _fingerprint()
    if not (target / "ready").is_file():  # "ready" is written last: a half-built venv is built again
        shutil.rmtree(CACHE, ignore_errors=True)  # this or an older fingerprint's (its inputs changed)
        CACHE.mkdir(parents=True)
        _build_core_venv(target)
        (target / "ready").write_text("")
    return target


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUNCH_JUPYTER_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        LAUNCH_JUPYTER_USER="alice",
        PATH=f"{home / 'venv-bin'}:{env.get('PATH', '')}",
    )
    return env


def _lj(venv: Path, env: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "launch-jupyter"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def core(core_venv, tmp_path):
    """Runs ``launch-jupyter`` of the core venv with private folders; the venv's bin first on PATH
    (the local-process run starts its kernel from there)."""
    (tmp_path / "venv-bin").symlink_to(core_venv / "bin")
    env = _env(tmp_path)
    shutil.copy(REPO / "examples" / "notebooks" / "train.ipynb", tmp_path / "train.ipynb")
    return lambda *args: _lj(core_venv, env, *args, cwd=tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the first run builds the core venv (pip, from the local indexes)
def test_the_core_install_has_none_of_the_extras_and_imports_every_front_end(core_venv):
    probe = (
        "import importlib.util, json\n"
        "import launch_jupyter, launch_jupyter.magics, launch_jupyter.widgets, launch_jupyter.server\n"
        f"print(json.dumps({{m: importlib.util.find_spec(m.split('.')[0]) is not None and "
        f"importlib.util.find_spec(m) is not None for m in {list(NOT_IN_CORE)!r}}}))\n"
    )
    done = subprocess.run([str(core_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == dict.fromkeys(NOT_IN_CORE, False)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_quickstart_runs_on_local_process_in_the_core_install(core):
    assert core("queue", "create", "laptop", "--resource", "local-process").returncode == 0
    queued = core("submit", "train.ipynb", "-q", "laptop", "-p", "lr", "0.1", "-p", "epochs=3")
    assert queued.returncode == 0, queued.stderr
    run_id = next(line.split()[2] for line in queued.stdout.splitlines() if line.startswith("queued run"))
    served = core("agent", "-q", "laptop", "--until-idle", "--poll-interval", "0.2")
    assert served.returncode == 0, served.stdout + served.stderr
    shown = core("run", "show", run_id, "--json")
    assert json.loads(shown.stdout)["state"] == "succeeded", shown.stdout + served.stdout + served.stderr
    assert "Traceback" not in served.stdout + served.stderr


ONE_LINE = "launch-jupyter: error: the vertex resource needs launch-jupyter's vertex extra: pip install 'launch-jupyter[vertex]'\n"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_vertex_queue_is_stored_offline_and_its_dry_run_says_the_pip_command(core, core_venv, tmp_path):
    config = tmp_path / "vertex.yaml"
    default = core("queue", "default-config", "vertex")
    assert default.returncode == 0, default.stderr
    config.write_text(default.stdout.replace("<REQUIRED>", "gs://my-bucket"))
    created = core("queue", "create", "gpu", "--resource", "vertex", "--config", str(config))
    assert created.returncode == 0, created.stderr
    assert "gpu" in core("queue", "list").stdout

    dry = core("submit", "train.ipynb", "-q", "gpu", "--image", "us-docker.pkg.dev/p/r/i:t", "--dry-run")
    assert (dry.returncode, dry.stdout, dry.stderr) == (2, "", ONE_LINE)
    queued = core("submit", "train.ipynb", "-q", "gpu")
    assert (queued.returncode, queued.stderr) == (2, ONE_LINE)
    assert json.loads(core("runs", "--queue", "gpu", "--json").stdout) == [], "nothing is queued"

    # What the queue editor and the server's validate endpoint show for it: one warning, no error.
    probe = (
        "import sys, launch_jupyter as lj\n"
        "print([(p.severity, p.message) for p in lj.validate_config('vertex', open(sys.argv[1]).read())])"
    )
    shown = subprocess.run(
        [str(core_venv / "bin" / "python"), "-c", probe, str(config)], capture_output=True, text=True, timeout=300
    )
    assert shown.stdout.strip() == repr(
        [
            (
                "warning",
                "not checked here: checking a vertex config needs "
                "launch-jupyter's vertex extra: pip install 'launch-jupyter[vertex]'",
            )
        ]
    ), shown.stdout + shown.stderr


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_an_agent_for_a_queue_whose_extra_is_missing_says_the_pip_command(core):
    assert core("queue", "create", "cluster", "--resource", "kubernetes").returncode == 0
    served = core("agent", "-q", "cluster", "--until-idle")
    assert served.returncode != 0
    assert "pip install 'launch-jupyter[kubernetes]'" in served.stderr, served.stderr
    assert "Traceback" not in served.stdout + served.stderr


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_postgresql_store_without_the_postgres_extra_says_the_pip_command(core):
    done = core("--store", "postgresql://alice@127.0.0.1:9/none", "runs")
    assert (done.returncode, done.stderr) == (
        2,
        "launch-jupyter: error: a postgresql:// store needs "
        "launch-jupyter's postgres extra: pip install 'launch-jupyter[postgres]'\n",
    )


def test_every_extra_the_code_names_is_declared_and_all_and_test_pull_them():
    declared = PYPROJECT["project"]["optional-dependencies"]
    assert set(_extras.EXTRAS) <= set(declared)
    assert declared["all"] == [f"launch-jupyter[{','.join(_extras.EXTRAS)}]"]
    assert "launch-jupyter[all]" in declared["test"]


def test_no_extra_sdk_is_a_core_dependency():
    core_names = {_name(req) for req in PYPROJECT["project"]["dependencies"]}
    for extra in _extras.EXTRAS:
        for req in PYPROJECT["project"]["optional-dependencies"][extra]:
            assert _name(req) not in core_names, f"{req} ([{extra}]) is also a core dependency"


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(requirement).name.lower()
