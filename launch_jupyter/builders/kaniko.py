"""The ``kaniko`` builder: no local engine. The build context goes to ``builder.build_context_store``
(gs://…) as a tar.gz, and the kaniko executor runs as a Google Cloud Build build with layer caching.

The tag is the context's content hash; an image already in the registry (one manifest HEAD) is not
built again. ``LAUNCH_JUPYTER_CLOUDBUILD_ENDPOINT`` points the Cloud Build client at another
endpoint (an ``http://`` one is spoken to over REST with anonymous credentials: an emulator);
google-cloud-storage honours ``STORAGE_EMULATOR_HOST`` the same way.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from .._extras import require_extra
from ..core.config import BuilderConfig
from ..core.errors import BuildError, ConfigError
from . import BuildTarget, LogFn, PushingBuilder
from .registry import check_destination

if TYPE_CHECKING:
    from ..core.config import AgentConfig
    from ..packaging import BuildContext

ENDPOINT_ENV = "LAUNCH_JUPYTER_CLOUDBUILD_ENDPOINT"
BUILD_TIMEOUT_SECONDS = 3600
# How long we wait for a build: Cloud Build stops it at BUILD_TIMEOUT_SECONDS (after its queue time),
# so a build still not done well past that is one we stop waiting for.
WAIT_TIMEOUT_SECONDS = BUILD_TIMEOUT_SECONDS + 900
_FIRST_POLL, _MAX_POLL = 0.5, 10.0  # seconds between GetBuild calls, growing
_GET_RETRIES = 8  # transient GetBuild failures in a row before the build is given up on
_RPC_TIMEOUT = 60.0  # seconds; the client's default is no deadline
_DONE = {"SUCCESS", "FAILURE", "INTERNAL_ERROR", "TIMEOUT", "CANCELLED", "EXPIRED"}


def split_gs_uri(uri: str, path: str = "builder.build_context_store") -> tuple[str, str]:
    """``gs://bucket/prefix`` → ``(bucket, prefix)``; anything else is a ConfigError naming ``path``."""
    if not uri or not uri.startswith("gs://") or not uri[5:].split("/", 1)[0]:
        raise ConfigError(
            f"{uri!r} is not a Cloud Storage folder; use gs://BUCKET/PREFIX (where build contexts are uploaded)",
            path=path,
        )
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def executor_args(context_uri: str, image_uri: str, cache_repo: str, platform: str) -> list[str]:
    """The kaniko executor's arguments: Dockerfile, context, destination and layer cache."""
    return [
        "--dockerfile=Dockerfile",
        f"--context={context_uri}",
        f"--destination={image_uri}",
        "--cache=true",
        f"--cache-repo={cache_repo}",
        f"--custom-platform={platform}",
    ]


def check_kaniko_image(ref: str) -> str:
    """The executor image must be pinned (a version tag or a digest): ``:latest`` (or no tag) of an
    executor is whatever was pushed last, so the same context could build differently tomorrow,
    and upstream kaniko's ``:latest`` belongs to a project archived in 2025."""
    from .registry import parse_image

    _, _, reference = parse_image(ref)
    if reference is None or reference == "latest":
        from ..core.config import BuilderConfig

        raise ConfigError(
            f"{ref!r} is not pinned: name a version tag or a digest of the executor, e.g. the "
            f"default {BuilderConfig().kaniko_image} (a maintained kaniko fork; upstream kaniko was "
            "archived in 2025)",
            path="builder.kaniko_image",
        )
    return ref


class KanikoBuilder(PushingBuilder):
    """Uploads the context to Cloud Storage and runs kaniko on Google Cloud Build."""

    type = "kaniko"

    def __init__(self, config: BuilderConfig | None = None, agent_config: AgentConfig | None = None):
        super().__init__(config, agent_config)
        self.last_build_id: str | None = None
        self.last_log_url: str | None = None
        self.wait_timeout = WAIT_TIMEOUT_SECONDS  # the deadline of the wait for one Cloud Build build
        self.location: str | None = None  # the queue's region (the agent sets it from the runner)

    def check_ready(self) -> None:
        """Settings are complete and the Google packages are installed."""
        self.check_settings(None)
        self.require_sdk()

    def require_sdk(self) -> None:
        """The Google packages this builder imports where used are installed (the one pip line if not)."""
        require_extra("kaniko", "the kaniko builder")

    def check_settings(self, repository: str | None) -> None:
        """The repository, the context bucket, the project and the kaniko image."""
        if repository:
            check_destination(repository)
        split_gs_uri(self.config.build_context_store or "")
        self._project()
        check_kaniko_image(self.config.kaniko_image)

    def push_image(
        self, context: BuildContext, target: BuildTarget, platform: str, log: LogFn, stop: threading.Event
    ) -> str:
        """Build ``destination:<content hash>`` on Cloud Build; the wait for the build ends when
        ``stop`` is set (the agent stops or lost the run)."""
        bucket, prefix = split_gs_uri(self.config.build_context_store or "")
        context_uri = self._upload(context, bucket, prefix, log)
        args = executor_args(context_uri, target.uri, f"{target.repository}/cache", platform)
        self._run_build(self._project(), args, target.uri, log, stop)
        log(f"image pushed: {target.uri}")
        return target.uri

    # -- internals -------------------------------------------------------------------------

    def _project(self) -> str:
        environment = self.agent_config.environment if self.agent_config else None
        project = environment.project if environment else None
        if not project:
            raise ConfigError(
                "the kaniko builder runs on Google Cloud Build and needs the project to run it in",
                path="environment.project",
            )
        return project

    def _upload(self, context: BuildContext, bucket: str, prefix: str, log: LogFn) -> str:
        # google-cloud-storage is needed only by this builder.
        import google.cloud.storage as storage  # not `from google.cloud import`: untyped, mypy would not find it
        from google.api_core import exceptions

        from ..packaging.context import pack_context

        name = f"{prefix}/{context.content_hash}.tar.gz" if prefix else f"{context.content_hash}.tar.gz"
        data = pack_context(context.directory)
        try:
            client = storage.Client(project=self._project())
            client.bucket(bucket).blob(name).upload_from_string(data, content_type="application/gzip")
        except exceptions.GoogleAPICallError as err:
            raise BuildError(f"cannot upload the build context to gs://{bucket}/{name}: {err.message}") from None
        log(f"build context uploaded: gs://{bucket}/{name} ({len(data)} bytes)")
        return f"gs://{bucket}/{name}"

    def _client(self):
        # google-cloud-build is needed only by this builder.
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud.devtools import cloudbuild_v1

        endpoint = os.environ.get(ENDPOINT_ENV)
        if not endpoint:
            return cloudbuild_v1.CloudBuildClient()
        transport = "rest" if endpoint.startswith(("http://", "https://")) else "grpc"
        anonymous = endpoint.startswith("http://") or (
            self.agent_config is not None and self.agent_config.environment.credentials == "anonymous"
        )
        return cloudbuild_v1.CloudBuildClient(
            credentials=AnonymousCredentials() if anonymous else None,
            transport=transport,
            client_options=ClientOptions(api_endpoint=endpoint),
        )

    def _parent(self, project: str) -> str:
        """Cloud Build runs in the queue's region (``location``, which the agent sets from the
        runner: ``spec.location``), else the agent's ``environment.region``; ``projects/P/locations/R``.
        The global pool only when no region is known at all."""
        environment = self.agent_config.environment if self.agent_config else None
        region = self.location or (environment.region if environment else None) or "global"
        return f"projects/{project}/locations/{region}"

    def _run_build(self, project: str, args: list[str], uri: str, log: LogFn, stop: threading.Event) -> None:
        from google.api_core import exceptions
        from google.cloud.devtools import cloudbuild_v1  # see _client

        build = cloudbuild_v1.Build(
            steps=[cloudbuild_v1.BuildStep(name=self.config.kaniko_image, args=args)],
            timeout={"seconds": BUILD_TIMEOUT_SECONDS},
            tags=["launch-jupyter"],
        )
        client = self._client()
        try:
            # parent only (no project_id): the regional binding of CreateBuild, /v1/{parent}/builds
            request = cloudbuild_v1.CreateBuildRequest(parent=self._parent(project), build=build)
            operation = client.create_build(request=request, timeout=_RPC_TIMEOUT)
            started = operation.metadata.build
            self.builds += 1
            self.last_build_id, self.last_log_url = started.id, started.log_url
            log(f"Cloud Build {started.id} started for {uri}; build log: {started.log_url}")
            finished = self._follow(client, project, started.id, log, stop)
        except exceptions.GoogleAPICallError as err:
            raise BuildError(f"Cloud Build refused the build of {uri}: {err.message}") from None
        status = cloudbuild_v1.Build.Status(finished.status).name
        if status != "SUCCESS":
            detail = finished.failure_info.detail or finished.status_detail or "no detail given"
            raise BuildError(
                f"Cloud Build {finished.id} for {uri} ended {status}: {detail}; build log: {finished.log_url}"
            )

    def _follow(self, client, project: str, build_id: str, log: LogFn, stop: threading.Event):
        """GetBuild until the build is done, ``stop`` is set (BuildStopped) or ``wait_timeout``
        passes (BuildError). A status read that fails transiently says nothing about the build: it
        is read again on the same clock (the poll is the loop; there is no second retry layer)."""
        from google.api_core import exceptions
        from google.cloud.devtools import cloudbuild_v1  # see _client

        delay, last, failures = _FIRST_POLL, None, 0
        name = f"{self._parent(project)}/builds/{build_id}"
        deadline = time.monotonic() + self.wait_timeout
        while True:
            if stop.is_set():
                raise BuildStopped(f"stopped waiting for Cloud Build {build_id} (it goes on at Cloud Build)")
            try:
                build = client.get_build(request=cloudbuild_v1.GetBuildRequest(name=name), timeout=_RPC_TIMEOUT)
            except (
                exceptions.ServiceUnavailable,
                exceptions.InternalServerError,
                exceptions.DeadlineExceeded,
                exceptions.TooManyRequests,
            ) as err:
                failures += 1
                if failures > _GET_RETRIES:
                    raise
                log(f"Cloud Build {build_id}: status not read ({type(err).__name__}); trying again")
            else:
                failures = 0
                status = cloudbuild_v1.Build.Status(build.status).name
                if status != last:
                    log(f"Cloud Build {build_id}: {status}")
                    last = status
                if status in _DONE:
                    return build
            if time.monotonic() + delay > deadline:
                raise BuildError(
                    f"Cloud Build {build_id} did not finish within {self.wait_timeout:.0f} s "
                    f"(last status {last or 'unknown'}); build log: {self.last_log_url}"
                )
            stop.wait(delay)
            delay = min(delay * 1.5, _MAX_POLL)


class BuildStopped(BuildError):
    """The wait for a build ended because the agent stops (or lost the run); nothing failed."""
