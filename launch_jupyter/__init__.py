"""launch_jupyter: a launch queue in the notebook.

Public API: ``submit``, ``sweep``, ``record``, ``Agent``, ``create_queue`` and the rest of
``launch_jupyter.api``.
Everything heavy (aiplatform, docker, papermill) is imported lazily.
"""

from __future__ import annotations

# Light (stdlib only); bound here so that `launch_jupyter.record` is the function, not its module.
from .record import record as record

__version__ = "0.1.0"

_API = {
    "submit", "create_queue", "update_queue", "delete_queue", "get_queue", "list_queues",
    "list_runs", "get_run", "cancel", "logs", "default_config", "validate_config", "RunHandle",
    "sweep", "get_sweep", "list_sweeps", "cancel_sweep", "compare",
}


def __getattr__(name: str):
    # Lazy so that `import launch_jupyter` stays cheap.
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "Agent":
        from .agent import Agent

        return Agent
    raise AttributeError(f"module 'launch_jupyter' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """``%load_ext launch_jupyter``: register the ``%launch`` magics."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)
