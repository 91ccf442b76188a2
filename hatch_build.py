"""Wheel build hook: put the widgets' modules in the wheel, and build the JupyterLab extension (js/labextension) with the official
@jupyterlab/builder from npm, so the wheel ships it prebuilt and `pip install` enables it.

JupyterLab 4.6's `jupyter labextension build` moved to a separate package; the node builder it
wraps only needs JupyterLab's core package.json (``--core-path``), which the jupyterlab in this
build environment has. Skipped when the built extension is newer than its sources.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ROOT = Path(__file__).parent
SOURCE = ROOT / "js" / "labextension"
BUILT = ROOT / "launch_jupyter" / "labextension"
WIDGETS = ROOT / "js"
# Widget modules that import npm packages: esbuild bundles each into js/dist/ (not committed).
BUNDLED = ("queue_editor.js",)


def _newest(paths) -> float:
    return max((p.stat().st_mtime for p in paths if p.is_file()), default=0.0)


def up_to_date() -> bool:
    """True when the built extension is newer than every source file."""
    built = BUILT / "install.json"  # written last
    # The styles too: style/index.css imports the widgets' launch.css.
    sources = [SOURCE / "package.json", *(SOURCE / "src").glob("*.js"), *(SOURCE / "style").glob("*.css")]
    sources.append(WIDGETS / "launch.css")
    return built.is_file() and built.stat().st_mtime >= _newest(sources)


def node_modules_stale(folder: Path) -> bool:
    """True when ``folder``'s node_modules is missing or older than its package-lock.json (npm writes
    node_modules/.package-lock.json at each install): a dependency was added since the last npm ci."""
    installed, lock = folder / "node_modules" / ".package-lock.json", folder / "package-lock.json"
    return not installed.is_file() or (lock.is_file() and lock.stat().st_mtime > installed.stat().st_mtime)


def build_labextension() -> None:
    """npm install (first time, and again when package-lock.json changed), then @jupyterlab/builder's
    build-labextension."""
    import jupyterlab

    npm = shutil.which("npm")
    node = shutil.which("node")
    if npm is None or node is None:
        raise RuntimeError("building the JupyterLab extension needs Node.js and npm on PATH")
    if not (SOURCE / "node_modules" / "@jupyterlab" / "builder").is_dir() or node_modules_stale(SOURCE):
        lock = (SOURCE / "package-lock.json").is_file()
        subprocess.run([npm, "ci" if lock else "install", "--no-audit", "--no-fund"], cwd=SOURCE, check=True)
    core = Path(jupyterlab.__file__).parent / "staging"
    builder = SOURCE / "node_modules" / "@jupyterlab" / "builder" / "lib" / "build-labextension.js"
    subprocess.run(
        [node, str(builder), "--core-path", str(core), "."],
        cwd=SOURCE,
        check=True,
        env={**os.environ, "NODE_ENV": "production"},
    )
    # Tells `jupyter labextension list` how this extension was installed.
    (BUILT / "install.json").write_text(
        '{"packageManager": "python", "packageName": "launch-jupyter", '
        '"uninstallInstructions": "pip uninstall launch-jupyter"}\n'
    )


def build_widget_bundles() -> list[Path]:
    """esbuild (npm, js/package.json) bundles the widget modules that import npm packages
    (CodeMirror 6 for the queue editor) into js/dist/; skipped when newer than js/*.js."""
    outputs = [WIDGETS / "dist" / name for name in BUNDLED]
    sources = [*WIDGETS.glob("*.js"), WIDGETS / "package-lock.json"]
    if all(out.is_file() and out.stat().st_mtime >= _newest(sources) for out in outputs):
        return outputs
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("building the widgets' JavaScript needs Node.js and npm on PATH")
    if not (WIDGETS / "node_modules" / ".bin" / "esbuild").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WIDGETS, check=True)
    esbuild = WIDGETS / "node_modules" / ".bin" / "esbuild"
    for name in BUNDLED:
        subprocess.run(
            [
                str(esbuild),
                name,
                "--bundle",
                "--format=esm",
                "--minify",
                "--target=es2020",
                "--legal-comments=eof",
                f"--outfile=dist/{name}",
            ],
            cwd=WIDGETS,
            check=True,
        )
    return outputs


class LabextensionBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        if not up_to_date():
            build_labextension()
        # The widgets' ES modules, read at run time from launch_jupyter/_js (widgets/_assets.py):
        # the bundles from js/dist/, the others as they are.
        bundles = build_widget_bundles()
        for path in sorted([*(ROOT / "js").glob("*.js"), *(ROOT / "js").glob("*.css")]):
            if path.name not in BUNDLED and not path.name.endswith(".test.mjs"):
                build_data["force_include"][str(path)] = f"launch_jupyter/_js/{path.name}"
        for path in bundles:
            build_data["force_include"][str(path)] = f"launch_jupyter/_js/{path.name}"
