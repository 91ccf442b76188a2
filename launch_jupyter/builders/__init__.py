"""Builders: turn a build context into a container image. Keyed by ``builder.type``.

Registered through the ``launch_jupyter.builders`` entry-point group, loaded lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    ) -> str:
        """Build (or find) the image for ``context`` and return its full URI.

        ``image`` is one the run or queue names: it is used as it is. Otherwise the tag is the
        context's content hash; if ``destination:tag`` already exists (one manifest HEAD), nothing is
        built. ``log`` receives build output line by line (never a secret)."""


@dataclass(frozen=True)
class BuildTarget:
    """Where a build goes: the repository, the full ``repository:<content hash>`` and its credentials."""

    repository: str
    uri: str
    auth: dict | None  # registry credentials from ADC; never logged


def reuse_or_target(
    builder_type: str, context: BuildContext, destination: str | None, image: str | None, log: LogFn
) -> str | BuildTarget:
    """The first step every builder shares: an image the run names is used as it is, an image the
    registry already holds under the content-hash tag is reused (one manifest HEAD); otherwise the
    BuildTarget to build and push."""
    from .registry import check_destination, google_auth_config, image_exists, parse_image

    if image:
        log(f"image given, nothing to build: {image}")
        return image
    if not destination:
        raise ConfigError(
            f"the {builder_type} builder needs a repository to push to, e.g. "
            "us-docker.pkg.dev/PROJECT/REPO/IMAGE (builder.destination or registry.uri in launch-config.yaml)",
            path="builder.destination",
        )
    from .docker import ecr_auth_config

    repository = check_destination(destination)
    host = parse_image(repository)[0]
    target = BuildTarget(repository, f"{repository}:{context.tag}", google_auth_config(host) or ecr_auth_config(host))
    if image_exists(target.uri, target.auth):
        log(f"image exists, skipping build: {target.uri}")
        return target.uri
    return target


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
