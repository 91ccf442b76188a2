"""Where a file is for the JupyterLab that shows this kernel: the path relative to its server root."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _server_roots() -> list[Path]:
    # Running servers announce themselves in jpserver-*.json files in the runtime folder.
    from jupyter_core.paths import jupyter_runtime_dir

    roots = []
    for info in Path(jupyter_runtime_dir()).glob("jpserver-*.json"):
        try:
            root = json.loads(info.read_text()).get("root_dir")
        except (OSError, ValueError):
            continue
        if root:
            roots.append(Path(root).expanduser().resolve())
    return roots


def server_relative(path: Path) -> str | None:
    """``path`` relative to the root of a running Jupyter server that serves it, or None."""
    path = path.resolve()
    for root in sorted(_server_roots(), key=lambda r: len(r.parts), reverse=True):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return None


def viewable_copy(source: Path, name: str) -> Path:
    """``source`` itself when it is under the kernel's folder, else a copy in ``./launch-outputs/``
    (a server can only open files below its root, and the kernel's folder is below it)."""
    cwd = Path(os.getcwd()).resolve()
    if source.resolve().is_relative_to(cwd):
        return source
    target = cwd / "launch-outputs" / name
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(source.read_bytes())
    return target


def open_request(run_id: str, store_url: str | None = None) -> dict:
    """What the frontend needs to open a run's executed notebook in JupyterLab (a copy beside this
    notebook if it lives elsewhere): ``{"path": server-relative path, "nonce": n, "file": path}``."""
    import time

    from .. import api
    from ..core.errors import RunError

    run = api.get_run(run_id, store_url=store_url).run
    if not run.output_notebook or not Path(run.output_notebook).is_file():
        raise RunError(f"run {run.id} has no executed notebook yet (state {run.state})")
    shown = viewable_copy(Path(run.output_notebook), f"{run.name or 'run'}-{run.id}.ipynb")
    return {"path": server_relative(shown) or str(shown), "nonce": time.time(), "file": str(shown)}


def log_tail(run_id: str, store_url: str | None = None, lines: int = 200) -> list[str]:
    """The last ``lines`` lines of a run's log, or the one line saying why there is none."""
    from .. import api
    from ..core.errors import LaunchError

    try:
        found = list(api.logs(run_id, store_url=store_url))
    except LaunchError as err:
        found = [str(err)]
    return [line.rstrip("\n") for line in found[-lines:]]
