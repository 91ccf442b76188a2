"""The package as a user's tools see it: its public names, and real types for a type checker."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import tomllib

import launch_jupyter


def test_every_public_name_resolves_and_the_package_is_typed():
    for name in launch_jupyter.__all__:
        assert getattr(launch_jupyter, name) is not None, name
    assert resources.files("launch_jupyter").joinpath("py.typed").is_file()


def test_a_type_checker_sees_the_real_signatures_not_any(tmp_path):
    user = tmp_path / "user_code.py"
    user.write_text(
        "import launch_jupyter\n"
        "reveal_type(launch_jupyter.submit)\n"
        "reveal_type(launch_jupyter.Agent)\n"
        "launch_jupyter.list_runs(queue=3.5)\n"  # a wrong argument type the checker must catch
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--follow-imports=silent",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(user),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    out = done.stdout
    assert 'Revealed type is "def (' in out and "notebook" in out, out  # submit's own parameters
    assert "launch_jupyter.agent.Agent" in out, out
    assert 'Argument "queue" to "list_runs" has incompatible type "float"' in out, out


def test_the_code_runs_on_the_oldest_python_the_package_declares():
    # No older interpreter can be installed on this machine, so vermin (a maintained static checker of
    # the minimum Python version per module, function and keyword) checks the declared floor instead.
    root = Path(__file__).resolve().parents[1]
    floor = re.fullmatch(
        r">=(3\.\d+)", tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"]
    ).group(1)
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("vermin")),
            f"-t={floor}-",
            "--no-tips",
            "--violations",
            "--eval-annotations",
            str(root / "launch_jupyter"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_passes_on_the_package_and_strictly_on_core():
    # pyproject.toml's [tool.mypy]: the package checked, launch_jupyter/core/ with strict's flags. The
    # cache in .cache/ is mypy's own (keyed by each file's content), so a rerun checks only what changed.
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(root / ".cache" / "mypy")],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Success: no issues found in \d+ source files", done.stdout), done.stdout


def test_core_is_held_to_strict_mypy(tmp_path):
    # A function without annotations passes the package's check but not core's: the strict flags bite.
    root = Path(__file__).resolve().parents[1]
    module = tmp_path / "launch_jupyter" / "core" / "untyped_probe.py"
    module.parent.mkdir(parents=True)
    (module.parent.parent / "__init__.py").write_text("")
    (module.parent / "__init__.py").write_text("")
    module.write_text("def f(x):\n    return x\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(root / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(module),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "Function is missing a type annotation" in done.stdout, done.stdout
