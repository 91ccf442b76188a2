"""The ``noop`` builder: builds nothing, runs the image the run or its queue names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import BuildError
from . import LogFn
from .registry import parse_image

if TYPE_CHECKING:
    from ..core.config import AgentConfig, BuilderConfig
    from ..packaging import BuildContext

HOW_TO_NAME_AN_IMAGE = (
    "give one with `--image URI` (or `image=` when submitting), with resource_args "
    "`spec.worker_pool_specs[0].container_spec.image_uri`, or in the queue config's own image_uri; "
    "or set builder.type to docker or kaniko in launch-config.yaml so the agent builds one"
)


class NoopBuilder:
    """Uses a ready-made image: the one named by ``--image``, ``resource_args`` or the queue config."""

    type = "noop"
    pushes = False  # it only names an image that exists

    def __init__(self, config: BuilderConfig | None = None, agent_config: AgentConfig | None = None):
        self.config = config
        self.agent_config = agent_config

    def preflight(self) -> None:
        """Nothing to check: this builder needs no engine and no credential."""

    def build(
        self,
        context: BuildContext | None,
        destination: str | None,
        platform: str,
        log: LogFn,
        *,
        image: str | None = None,
        stop: object = None,  # nothing to wait for
    ) -> str:
        """Return ``image`` (the run's or queue's image); without one, BuildError says how to give one."""
        if not image:
            raise BuildError(f"this run needs a container image and none was named: {HOW_TO_NAME_AN_IMAGE}")
        parse_image(image)  # a malformed reference fails here, with its own message
        log(f"image given, nothing to build: {image}")
        return image
