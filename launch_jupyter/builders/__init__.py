"""Builders: turn a build context into a container image. Keyed by ``builder.type``.

Registered through the ``launch_jupyter.builders`` entry-point group, loaded lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from ..core.config import AgentConfig, BuilderConfig
    from ..packaging import BuildContext

GROUP = "launch_jupyter.builders"

LogFn = Callable[[str], None]


@runtime_checkable
class Builder(Protocol):
    type: str

    def preflight(self) -> None:
        """Raise LaunchError if this builder cannot work here (no engine, no package, no credential)."""

    def build(
        self, context: BuildContext, destination: str | None, platform: str, log: LogFn
    ) -> str:
        """Build (or find) the image for ``context`` and return its full URI.

        The tag is ``context.content_hash``; if ``destination:tag`` already exists (one manifest HEAD),
        nothing is built. ``log`` receives build output line by line (never a secret)."""


def known_builders() -> list[str]:
    from importlib.metadata import entry_points

    return sorted(ep.name for ep in entry_points(group=GROUP))


def get_builder(config: BuilderConfig, agent_config: AgentConfig | None = None) -> Builder:
    """The builder for ``config.type``; an unknown type lists the known ones."""
    from importlib.metadata import entry_points

    matches = [ep for ep in entry_points(group=GROUP) if ep.name == config.type]
    if not matches:
        known = ", ".join(known_builders())
        raise ConfigError(f'unknown builder type "{config.type}", choose one of: {known}', path="builder.type")
    return matches[0].load()(config, agent_config)
