"""launch_jupyter: a launch queue in the notebook.

Public API: ``Launcher`` (the client: ``with Launcher() as launcher: launcher.submit(...)``),
``submit``, ``dry_run``, ``sweep``, ``record``, ``Agent``, ``create_queue`` and the rest of
``launch_jupyter.api`` (each module function opens a ``Launcher`` for the call and closes it).
Everything heavy (aiplatform, docker, papermill) is imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Light (stdlib only); bound here so that `launch_jupyter.record` is the function, not its module.
from .record import record as record

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "DryRun",
    "Launcher",
    "RunHandle",
    "SweepHandle",
    "__version__",
    "cancel",
    "cancel_sweep",
    "compare",
    "create_queue",
    "create_schedule",
    "default_config",
    "delete_queue",
    "delete_schedule",
    "dry_run",
    "get_queue",
    "get_run",
    "get_schedule",
    "get_sweep",
    "list_queues",
    "list_runs",
    "list_schedules",
    "list_sweeps",
    "load_ipython_extension",
    "logs",
    "pause_schedule",
    "record",
    "resume_schedule",
    "run_progress",
    "schedule_ticks",
    "submit",
    "sweep",
    "unload_ipython_extension",
    "update_queue",
    "validate_config",
]
_API = set(__all__) - {"Agent", "__version__", "load_ipython_extension", "record", "unload_ipython_extension"}

if TYPE_CHECKING:  # what a type checker sees; at run time the names load on first use (below)
    from .agent import Agent
    from .api import (
        DryRun,
        Launcher,
        RunHandle,
        SweepHandle,
        cancel,
        cancel_sweep,
        compare,
        create_queue,
        create_schedule,
        default_config,
        delete_queue,
        delete_schedule,
        dry_run,
        get_queue,
        get_run,
        get_schedule,
        get_sweep,
        list_queues,
        list_runs,
        list_schedules,
        list_sweeps,
        logs,
        pause_schedule,
        resume_schedule,
        run_progress,
        schedule_ticks,
        submit,
        sweep,
        update_queue,
        validate_config,
    )


def __getattr__(name: str):
    # Lazy so that `import launch_jupyter` stays cheap.
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "Agent":
        from .agent import Agent

        return Agent
    raise AttributeError(f"module 'launch_jupyter' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict]:
    """The Jupyter Server extension (the REST API under /launch/api/), enabled on install."""
    return [{"module": "launch_jupyter.server"}]


def load_ipython_extension(ipython) -> None:
    """``%load_ext launch_jupyter``: register the ``%launch`` magics."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)
