"""Which notebook is this kernel running, and can it be read whole?

In order: the live Jupyter server's ``/api/sessions`` matched by this kernel's id (right even after
a rename), then ``__session__`` / ``JPY_SESSION_NAME`` (set at kernel start, stale after a rename),
then VS Code's ``__vsc_ipynb_file__``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ..core.errors import NotebookError

SERVER_TIMEOUT = 1.0  # seconds per server; a hung server must not hang a submit


def find_notebook(user_ns: Mapping | None = None) -> Path:
    """The absolute path of the notebook this kernel runs; NotebookError saying what was tried."""
    if user_ns is None:
        user_ns = _user_namespace()
    tried: list[str] = []
    found = _from_server(tried)
    if found is None:
        found = _from_session_name(user_ns, tried)
    if found is None:
        found = _from_vscode(user_ns, tried)
    if found is None:
        raise NotebookError(
            "could not tell which notebook this kernel runs; tried: "
            + "; ".join(tried)
            + ". Name the notebook: %launch submit --notebook PATH in a notebook, submit(notebook=...) "
            "in code, or launch-jupyter submit NOTEBOOK in a shell"
        )
    return found


def _user_namespace() -> Mapping:
    # Only look at IPython when it is already loaded: this must not start a shell.
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell.user_ns if shell is not None else {}


def connection_file() -> Path | None:
    """ipykernel's connection file when this code runs in an ipykernel kernel, else None."""
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    if kernelapp is None or not kernelapp.IPKernelApp.initialized():
        return None
    name = kernelapp.IPKernelApp.instance().connection_file
    return Path(name) if name else None


def kernel_id() -> str | None:
    """This kernel's id, from the name of ipykernel's connection file (``kernel-<id>.json``).

    Jupyter servers name the file after the kernel id; other launchers (nbclient) use a temp name.
    """
    path = connection_file()
    match = re.fullmatch(r"kernel-(.+)\.json", path.name) if path else None
    return match.group(1) if match else None


def _from_server(tried: list[str]) -> Path | None:
    kid = kernel_id()
    if kid is None:
        path = connection_file()
        why = (
            "this is not a Jupyter kernel"
            if path is None
            else f"the kernel's connection file {path.name} names no kernel id: not started by a Jupyter server"
        )
        tried.append(f"the Jupyter server's /api/sessions ({why})")
        return None
    servers = list(_running_servers())
    for server in servers:
        path = _session_path(server, kid)
        if path is not None:
            return path
    where = ", ".join(sorted({str(d) for d in _runtime_dirs()}))
    tried.append(
        f"the Jupyter server's /api/sessions ({len(servers)} running server(s) found in {where}; "
        f"none has a session for kernel {kid})"
    )
    return None


def _runtime_dirs() -> list[Path]:
    dirs = []
    path = connection_file()
    if path is not None:
        dirs.append(path.parent)  # a server puts its kernels' files beside its own jpserver file
    from jupyter_core.paths import jupyter_runtime_dir

    dirs.append(Path(jupyter_runtime_dir()))
    return list(dict.fromkeys(d.resolve() for d in dirs if d.is_dir()))


def _running_servers():
    for folder in _runtime_dirs():
        for info_file in sorted(folder.glob("jpserver-*.json")):
            try:
                info = json.loads(info_file.read_text())
            except (OSError, ValueError):
                continue
            if _alive(info.get("pid")):
                yield info


def _alive(pid) -> bool:
    from .._process import process_alive

    # No pid recorded: let the HTTP request decide.
    return process_alive(pid) if isinstance(pid, int) else True


def _session_path(server: dict, kid: str) -> Path | None:
    import urllib.request

    url = server.get("url", "").rstrip("/") + "/api/sessions"
    request = urllib.request.Request(url, headers={"Authorization": f"token {server.get('token', '')}"})
    try:
        with urllib.request.urlopen(request, timeout=SERVER_TIMEOUT) as response:
            sessions = json.loads(response.read())
    except (OSError, ValueError):
        return None
    for session in sessions:
        if (session.get("kernel") or {}).get("id") == kid and session.get("path"):
            root = Path(server.get("root_dir") or server.get("notebook_dir") or ".")
            return (root / session["path"]).absolute()
    return None


def _from_session_name(user_ns: Mapping, tried: list[str]) -> Path | None:
    for name, value in (
        ("__session__", user_ns.get("__session__")),
        ("JPY_SESSION_NAME", os.environ.get("JPY_SESSION_NAME")),
    ):
        if value:
            path = Path(str(value)).expanduser().absolute()
            if path.is_file():
                return path
            tried.append(f"{name} ({path} does not exist)")
        else:
            tried.append(f"{name} (not set)")
    return None


def _from_vscode(user_ns: Mapping, tried: list[str]) -> Path | None:
    value = user_ns.get("__vsc_ipynb_file__")
    if not value:
        tried.append("__vsc_ipynb_file__ (not set)")
        return None
    path = Path(str(value)).absolute()
    if path.is_file():
        return path
    tried.append(f"__vsc_ipynb_file__ ({path} does not exist)")
    return None


def read_notebook_json(path: Path, timeout: float = 3.0) -> dict:
    """The notebook at ``path`` as a dict, read whole. A Jupyter server that is saving it writes
    over the file in place (its "atomic" writing keeps a backup, not a temporary file), so a read
    can see half a file or none: retry such reads for up to ``timeout`` s, then say what is wrong."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            data = json.loads(Path(path).read_bytes())
            if isinstance(data, dict) and "cells" in data:
                return data
            problem = "not a notebook (no cells)"
        except FileNotFoundError:
            problem = "missing"
        except (ValueError, UnicodeDecodeError) as err:
            problem = f"not a notebook (not valid JSON: {err})"
        except OSError as err:
            raise NotebookError(f"cannot read {path}: {err.strerror}") from None
        if time.monotonic() >= deadline:
            raise NotebookError(f"{path} is {problem}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def wait_readable(path: Path, timeout: float = 3.0) -> None:
    """Return once ``path`` reads as a whole notebook (see ``read_notebook_json``)."""
    read_notebook_json(path, timeout)
