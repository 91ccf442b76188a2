"""Builders: turn a build context into a container image. Keyed by ``builder.type``.

Registered through the ``launch_jupyter.builders`` entry-point group, loaded lazily.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..core.config import BUILDER_GROUP
from ..core.errors import ConfigError

if TYPE_CHECKING:
    from ..core.config import AgentConfig, BuilderConfig
    from ..packaging import BuildContext
    from .registry import RegistryAuth

GROUP = BUILDER_GROUP

LogFn = Callable[[str], None]


@runtime_checkable
class Builder(Protocol):
    type: str
    pushes: bool  # True: it puts images in builder.destination (a registry the target must reach)

    def preflight(self) -> None:
        """Raise LaunchError if this builder cannot work here (no engine, no package, no credential)."""

    def build(
        self,
        context: BuildContext,
        destination: str | None,
        platform: str,
        log: LogFn,
        *,
        image: str | None = None,
        stop: threading.Event | None = None,
    ) -> str:
        """Build (or find) the image for ``context`` and return its full URI.

        ``image`` is one the run or queue names: it is used as it is. Otherwise the tag is the
        context's content hash; if ``destination:tag`` already exists (one manifest HEAD), nothing is
        built. ``log`` receives build output line by line (never a secret). One attempt: a failure
        is a BuildError; every wait the builder makes ends when ``stop`` is set."""


@dataclass(frozen=True)
class BuildTarget:
    """Where a build goes: the repository, the full ``repository:<content hash>`` and its
    credentials, asked for (``credentials.config()``) right before each use: a token read before a
    long build would have run out by the push."""

    repository: str
    uri: str
    credentials: RegistryAuth

    def auth(self) -> dict | None:
        """The registry credentials as they are now (never logged)."""
        return self.credentials.config()


def reuse_or_target(
    builder_type: str, context: BuildContext, destination: str | None, image: str | None, log: LogFn
) -> str | BuildTarget:
    """The first step every builder shares: an image the run names is used as it is, an image the
    registry already holds under the content-hash tag is reused (one manifest HEAD); otherwise the
    BuildTarget to build and push."""
    from .registry import check_destination, image_exists, parse_image, registry_auth

    if image:
        log(f"image given, nothing to build: {image}")
        return image
    if not destination:
        raise ConfigError(
            f"the {builder_type} builder needs a repository to push to, e.g. "
            "us-docker.pkg.dev/PROJECT/REPO/IMAGE (builder.destination or registry.uri in launch-config.yaml)",
            path="builder.destination",
        )
    repository = check_destination(destination)
    target = BuildTarget(repository, f"{repository}:{context.tag}", registry_auth(parse_image(repository)[0]))
    if image_exists(target.uri, target.auth()):
        log(f"image exists, skipping build: {target.uri}")
        return target.uri
    return target


class PushingBuilder:
    """What the builders that push to a registry share, written once (papermill's template method):
    the settings, the destination check of the preflight, and ``build`` — an image the run names or
    the registry already holds is reused, and otherwise the one method each builder writes,
    ``push_image``, builds and pushes it."""

    type: str
    pushes = True

    def __init__(self, config: BuilderConfig | None = None, agent_config: AgentConfig | None = None):
        from ..core.config import BuilderConfig

        self.config = config or BuilderConfig(type=self.type)
        self.agent_config = agent_config
        self.builds = 0  # builds this builder started (a reused image does not count)

    def preflight(self) -> None:
        """The destination is well formed, then what this builder needs (``check_ready``)."""
        from .registry import check_destination

        if self.config.destination:
            check_destination(self.config.destination)
        self.check_ready()

    def build(
        self,
        context: BuildContext,
        destination: str | None,
        platform: str,
        log: LogFn,
        *,
        image: str | None = None,
        stop: threading.Event | None = None,
    ) -> str:
        """See ``Builder.build``: settings first (whether or not a build turns out to be needed),
        then reuse, then ``push_image``."""
        repository = destination or self.config.destination
        if not image:
            self.check_settings(repository)
        target = reuse_or_target(self.type, context, repository, image, log)
        if isinstance(target, str):
            return target
        return self.push_image(context, target, platform or self.config.platform, log, stop or threading.Event())

    def check_ready(self) -> None:
        """Raise LaunchError if this builder cannot work here (an engine, a package, a setting)."""

    def check_settings(self, repository: str | None) -> None:
        """Raise ConfigError for a setting a build needs that is wrong or missing."""

    def push_image(
        self, context: BuildContext, target: BuildTarget, platform: str, log: LogFn, stop: threading.Event
    ) -> str:
        """Build ``target.uri`` from ``context``, push it, return its URI (one attempt: BuildError)."""
        raise NotImplementedError


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
