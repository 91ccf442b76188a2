"""Optional installs: which pip extra brings which SDK, and the one line a missing one gives.

The core install serves the embedded default (SQLite store, local-process runner, magics, widgets,
the JupyterLab extension); every other backend's SDK comes with an extra of the same name
(``pip install 'launch-jupyter[vertex]'``). Each backend calls ``require_extra`` where its SDK is
first needed (its preflight; for a runner whose config check and requests are built with the SDK,
``Runner.extra``, also every run made from such a queue, dry runs included), so a user sees that one
command instead of an ImportError traceback. A queue config can still be stored without the SDK: it
gets an "unchecked" warning instead.
"""

from __future__ import annotations

import importlib.util

from .core.errors import LaunchError
from .core.model import Problem

# The modules whose presence means the extra is installed (pyproject.toml's optional-dependencies
# bring them). Probed with importlib.util.find_spec: the SDKs themselves are heavy to import
# (aiplatform ≈2.3 s), and the check runs on every preflight and dry run.
EXTRAS: dict[str, tuple[str, ...]] = {
    "vertex": ("google.cloud.aiplatform", "google.cloud.storage", "google.cloud.logging"),
    "kaniko": ("google.cloud.devtools.cloudbuild_v1", "google.cloud.storage"),
    "docker": ("docker",),
    "postgres": ("psycopg",),
    "sagemaker": ("boto3",),
    "kubernetes": ("kubernetes",),
}


class MissingExtra(LaunchError):
    """An optional SDK is not installed; the message is the pip command that installs it."""

    def __init__(self, extra: str, what: str):
        self.extra = extra
        super().__init__(f"{what} needs launch-jupyter's {extra} extra: pip install 'launch-jupyter[{extra}]'")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing (find_spec imports the parents)
        return False


def missing(extra: str | None) -> bool:
    """True when ``extra`` names an extra whose SDK is not installed (None: nothing needed)."""
    if extra is None:
        return False
    return not all(_installed(module) for module in EXTRAS[extra])


def require_extra(extra: str | None, what: str | None = None) -> None:
    """Raise MissingExtra (one line naming the pip command) unless ``extra``'s SDK is installed.

    ``what`` names who needs it in the message (default: "the <extra> resource").
    """
    if missing(extra):
        assert extra is not None
        raise MissingExtra(extra, what or f"the {extra} resource")


def unchecked(extra: str | None, resource: str) -> list[Problem]:
    """The warning a queue config of ``resource`` gets where its SDK (which the check builds the
    config with) is missing: the queue can still be stored offline, and every run made from it is
    checked (``require_for_runs``)."""
    if extra is None:
        return []
    message = str(MissingExtra(extra, f"checking a {resource} config"))
    return [Problem("", f"not checked here: {message}", severity="warning")]


def require_for_runs(resource: str) -> None:
    """Raise MissingExtra unless the SDK of ``resource``'s runner is installed: a run's config (and
    its overrides) is checked against that SDK before anything is queued or shown as a dry run."""
    from .runners import get_runner

    require_extra(getattr(get_runner(resource), "extra", None), f"the {resource} resource")
