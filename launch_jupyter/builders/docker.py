"""The ``docker`` builder: build the context on a Docker engine (``DOCKER_HOST`` honoured) and push.

The tag is the context's content hash, so an image that is already in the registry (one manifest
HEAD) is not built again, and a code-only change rebuilds only the layers after the dependencies.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from .._extras import require_extra
from ..core.config import BuilderConfig
from ..core.errors import BuildError, LaunchError
from . import BuildTarget, LogFn, PushingBuilder

if TYPE_CHECKING:
    from ..core.config import AgentConfig
    from ..packaging import BuildContext

DEFAULT_HOST = "unix:///var/run/docker.sock"
ENGINE_TIMEOUT = 600  # seconds; a RUN pip install can be slow
_PUSH_STEPS = ("Pushed", "Layer already exists", "Mounted from")


def engine_client():
    """A docker SDK client for the engine named by ``DOCKER_HOST`` (or the default socket)."""
    # The docker SDK is imported only when an engine is actually used.
    import docker

    try:
        return docker.from_env(timeout=ENGINE_TIMEOUT)
    except docker.errors.DockerException as err:
        raise LaunchError(_no_engine(err)) from None


def ping_engine() -> None:
    """Raise LaunchError naming ``DOCKER_HOST`` when no Docker engine answers."""
    import docker  # see engine_client

    client = engine_client()
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as err:
        raise LaunchError(_no_engine(err)) from None
    finally:
        client.close()


def _no_engine(err: Exception) -> str:
    host = os.environ.get("DOCKER_HOST") or f"{DEFAULT_HOST} (DOCKER_HOST is not set)"
    return (
        f"no Docker engine answers at {host}: {err}. Start Docker or point DOCKER_HOST at a running "
        "engine, or use builder.type kaniko (no local engine needed)"
    )


class DockerBuilder(PushingBuilder):
    """Builds with the docker SDK's build API, pushes to ``builder.destination``, records the digest."""

    type = "docker"

    def __init__(self, config: BuilderConfig | None = None, agent_config: AgentConfig | None = None):
        super().__init__(config, agent_config)
        self.last_digest: str | None = None  # the digest of the last image pushed

    def check_ready(self) -> None:
        """The docker extra is installed and the engine answers."""
        require_extra("docker", "the docker builder")
        ping_engine()

    def push_image(
        self, context: BuildContext, target: BuildTarget, platform: str, log: LogFn, stop: threading.Event
    ) -> str:
        """Build and push ``destination:<content hash>``. The registry credentials are read again
        right before the push (a build can outlive a token)."""
        client = engine_client()
        try:
            self._build(client, context, target.uri, platform, log)
            if stop.is_set():
                raise BuildError(f"stopped before pushing {target.uri}")
            self.last_digest = self._push(client, target.repository, context.tag, target.auth(), log)
        finally:
            client.close()
        log(f"image pushed: {target.uri} digest {self.last_digest}")
        return target.uri

    def _build(self, client, context: BuildContext, uri: str, platform: str, log: LogFn) -> None:
        import docker  # see engine_client

        self.builds += 1
        log(f"building {uri} for {platform}")
        lines: list[str] = []
        try:
            stream = client.api.build(
                path=str(context.directory), tag=uri, platform=platform,
                network_mode=self.config.network, rm=True, forcerm=True, decode=True,
            )  # fmt: skip
            for item in stream:
                for line in _item_lines(item):
                    lines.append(line)
                    log(line)
                if "error" in item or "errorDetail" in item:
                    raise BuildError(_build_failure(uri, item, lines))
        except docker.errors.APIError as err:
            raise BuildError(f"docker build of {uri} failed: {err.explanation or err}") from None

    def _push(self, client, repository: str, tag: str, auth: dict | None, log: LogFn) -> str:
        """Push and return the digest. The SDK does not raise on a failed push: read the stream."""
        import docker  # see engine_client

        digest = None
        try:
            stream = client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
            for item in stream:
                if "error" in item or "errorDetail" in item:
                    message = item.get("error") or (item.get("errorDetail") or {}).get("message")
                    raise BuildError(f"push of {repository}:{tag} failed: {message}")
                status = str(item.get("status") or "")
                if status.startswith(_PUSH_STEPS):
                    log(f"push {item.get('id', '')}: {status}")
                digest = (item.get("aux") or {}).get("Digest") or digest
        except docker.errors.APIError as err:
            raise BuildError(f"push of {repository}:{tag} failed: {err.explanation or err}") from None
        if not digest:
            raise BuildError(f"push of {repository}:{tag} reported no digest")
        return digest


def ecr_auth_config(registry: str) -> dict | None:
    """``{"username": "AWS", "password": <token>}`` for an Amazon ECR registry, from boto3's
    ``ecr.get_authorization_token`` in the registry's region (the default credentials chain,
    ``AWS_PROFILE`` honoured); None for any other registry. For ``auth_config`` only: never log it."""
    from ..core.images import ecr_region

    region = ecr_region(registry)
    if region is None:
        return None
    import base64

    try:
        import boto3  # lazy: only when an ECR registry is in play
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as err:
        raise BuildError(f"pushing to {registry} needs boto3 ({err}); pip install boto3") from None
    try:
        answer = boto3.client("ecr", region_name=region).get_authorization_token()
        token = answer["authorizationData"][0]["authorizationToken"]
    except (BotoCoreError, ClientError, KeyError, IndexError) as err:
        raise BuildError(f"no ECR credentials for {registry}: {type(err).__name__}: {err}") from None
    username, _, password = base64.b64decode(token).decode().partition(":")
    return {"username": username, "password": password}


def _item_lines(item: dict) -> list[str]:
    text = item.get("stream") or ""
    if "error" in item:
        text += f"ERROR: {item['error']}\n"
    return [line for line in text.splitlines() if line.strip()]


def _build_failure(uri: str, item: dict, lines: list[str]) -> str:
    """The engine's error plus the build's own error lines (e.g. pip's) so the user sees the cause."""
    error = item.get("error") or (item.get("errorDetail") or {}).get("message") or "unknown error"
    causes = [line for line in lines if line.lstrip().upper().startswith("ERROR")]
    causes = [line for line in causes if error not in line][-10:] or lines[-10:]
    return f"docker build of {uri} failed: {error}\n" + "\n".join(causes)
