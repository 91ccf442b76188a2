"""Install size of the core dependency set beside ``[all]``: ``.venv/bin/python benchmarks/install_size.py``.

Builds two throwaway venvs (``python -m venv``; pip from the same indexes as scripts/setup.sh): one
with pyproject.toml's ``project.dependencies``, one with those plus every extra's requirements
(what ``pip install 'launch-jupyter[all]'`` brings besides launch-jupyter itself), and prints the
size of each one's site-packages (``du``) and its number of distributions. pip itself, in both, is
left out of the count. Takes a few minutes (two resolves and installs).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
SELF = "launch-jupyter["


def requirement_sets() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    every = [req for name in extras["all"][0][len(SELF) : -1].split(",") for req in extras[name]]
    return {"core": project["dependencies"], "all": project["dependencies"] + every}


def measure(requirements: list[str], folder: Path) -> tuple[float, int]:
    """MiB of site-packages and the number of distributions, after installing ``requirements``."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    before = _du(folder)
    subprocess.run([python, "-m", "pip", "install", "-q", *requirements], check=True)
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout.split()
    return (_du(folder) - before) / 2**20, len([line for line in listed if not line.startswith("pip==")])


def _du(folder: Path) -> int:
    site = next(folder.glob("lib/python*/site-packages"))
    return int(subprocess.run(["du", "-sb", str(site)], check=True, capture_output=True, text=True).stdout.split()[0])


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory(prefix="lj-install-size-") as tmp:
        for name, requirements in requirement_sets().items():
            results[name] = measure(requirements, Path(tmp) / name)
    core_mib, core_n = results["core"]
    all_mib, all_n = results["all"]
    print(f"core dependency set : {core_mib:7.1f} MiB in site-packages, {core_n} distributions")
    print(f"[all]               : {all_mib:7.1f} MiB in site-packages, {all_n} distributions")
    print(f"core / [all]        : {core_mib / all_mib:7.2f} (size), the extras add {all_mib - core_mib:.1f} MiB")


if __name__ == "__main__":
    main()
