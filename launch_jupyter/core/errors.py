"""The error hierarchy. Front ends print ``str(err)`` for these, never a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Problem


class LaunchError(Exception):
    """Base of every error a user can act on."""


class ConfigError(LaunchError):
    """A config (agent config, queue config, override) is wrong; ``path`` names the key."""

    def __init__(self, message: str, path: str = "", problems: list[Problem] | None = None):
        self.path = path
        self.problems = problems or []
        super().__init__(f"{path}: {message}" if path else message)


class QueueError(LaunchError):
    """A queue is missing, duplicated, or not visible to this user."""


class QueueExistsError(QueueError):
    """A queue of that name exists with another config; ``difference`` says what differs."""

    def __init__(self, message: str, path: str, difference: str):
        self.path = path
        self.difference = difference
        super().__init__(message)


class RunError(LaunchError):
    """A run is missing or cannot do what was asked (e.g. cancel a finished run)."""


class NotebookError(LaunchError):
    """The notebook cannot be found, read or packaged."""


class ParameterError(NotebookError):
    """A ``-p`` value the notebook's ``parameters`` cell does not take (unknown name, wrong type)."""


class SecretError(NotebookError):
    """A file that looks like a credential would have entered a build context."""


class BuildError(LaunchError):
    """An image build failed."""


class DispatchError(LaunchError):
    """The target refused or failed a job. ``transient`` says whether a retry may help."""

    def __init__(self, message: str, transient: bool = False):
        self.transient = transient
        super().__init__(message)


class AccessError(LaunchError):
    """The store refused what this user asked (row-level security, a role's grants): not retryable."""


class StoreError(LaunchError):
    """The store cannot be opened or written."""
