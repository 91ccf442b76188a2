"""Talking to Vertex AI: per-queue targets, credentials, cached per-endpoint JobService clients,
retries with capped exponential backoff and jitter, and API errors turned into DispatchErrors."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ...core.config import EnvironmentConfig
from ...core.errors import DispatchError, LaunchError

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL"})
_HTTP_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
               404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
               500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
DEFAULT_REGION = "us-central1"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


@dataclass(frozen=True)
class Target:
    """Where one queue's jobs go: project and location, and how to reach the API."""

    project: str
    location: str
    endpoint: str | None = None  # None: the regional Google endpoint
    transport: str = "grpc"  # grpc | rest
    credentials: str = "default"  # default (ADC) | anonymous (emulators)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def api_endpoint(self) -> str:
        return self.endpoint or f"{self.location}-aiplatform.googleapis.com"


# --------------------------------------------------------------------------- credentials

_adc_lock = threading.Lock()
_adc: tuple[Any, str | None] | None = None


def credentials(kind: str) -> Any:
    """The credentials object for ``default`` (ADC) or ``anonymous``."""
    if kind == "anonymous":
        from google.auth.credentials import AnonymousCredentials  # lazy: google-auth

        return AnonymousCredentials()
    return adc()[0]


def adc() -> tuple[Any, str | None]:
    """Application Default Credentials and their project, found once per process."""
    global _adc
    with _adc_lock:
        if _adc is None:
            import google.auth  # lazy: google-auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                _adc = google.auth.default(scopes=SCOPES)
            except DefaultCredentialsError as err:
                raise LaunchError(
                    "no Google credentials found for Vertex AI. Run `gcloud auth application-default "
                    "login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or "
                    "for an emulator set `environment.credentials: anonymous` in launch-config.yaml"
                    f" ({err})"
                ) from None
        return _adc


def resolve_target(spec: dict, env: EnvironmentConfig | None, name: str | None = None) -> Target:
    """Per queue: ``spec.project``/``spec.location``, else the agent's ``environment``, else ADC's
    project and ``GOOGLE_CLOUD_REGION``. A job resource ``name`` wins for project and location."""
    env = env or EnvironmentConfig()
    kind = env.credentials or "default"
    project = spec.get("project") or env.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    location = spec.get("location") or env.region or os.environ.get("GOOGLE_CLOUD_REGION") or DEFAULT_REGION
    if name and name.startswith("projects/"):
        parts = name.split("/")
        project, location = parts[1], parts[3]
    if not project and kind != "anonymous":
        project = adc()[1]
    if not project:
        raise LaunchError(
            "no Google Cloud project for this queue: set spec.project in the queue config, "
            "environment.project in launch-config.yaml, or GOOGLE_CLOUD_PROJECT"
        )
    return Target(str(project), str(location), env.api_endpoint, env.api_transport or "grpc", kind)


# --------------------------------------------------------------------------- clients


class Clients:
    """One ``aiplatform_v1.JobServiceClient`` per (endpoint, transport, location, credentials),
    made once and shared by threads (the clients are thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple, Any] = {}

    def get(self, target: Target) -> Any:
        """The cached client for ``target``."""
        key = (target.api_endpoint, target.transport, target.location, target.credentials)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = _make_client(target)
            return self._clients[key]


def _make_client(target: Target) -> Any:
    from google.api_core.client_options import ClientOptions  # lazy: google-api-core
    from google.cloud import aiplatform_v1  # lazy: ≈0.8 s

    return aiplatform_v1.JobServiceClient(
        credentials=credentials(target.credentials),
        client_options=ClientOptions(api_endpoint=target.api_endpoint),
        transport=target.transport,
    )


# --------------------------------------------------------------------------- errors and retries


def error_code(err: BaseException) -> str:
    """The gRPC status name of an API error (REST errors mapped from their HTTP status)."""
    grpc_code = getattr(err, "grpc_status_code", None)
    if grpc_code is not None:
        return grpc_code.name
    code = getattr(err, "code", None)
    if isinstance(code, int):
        return _HTTP_CODES.get(code, "UNKNOWN")
    if type(err).__name__ in ("ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout"):
        return "UNAVAILABLE"  # requests' errors on the REST transport: the server is not there
    return "UNKNOWN"


def is_api_error(err: BaseException) -> bool:
    """An error from the API or the transport under it (not a bug of ours)."""
    from google.api_core import exceptions  # lazy: google-api-core

    return isinstance(err, exceptions.GoogleAPIError) or error_code(err) == "UNAVAILABLE"


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter."""

    base: float = 1.0
    cap: float = 30.0
    attempts: int = 6

    def call(self, fn: Callable[[], T], before_retry: Callable[[], Any] | None = None) -> T:
        """Call ``fn``; retry transient API errors; re-raise anything else at once.
        ``before_retry`` runs before each retry (e.g. to look for a job the failed call made)."""
        for attempt in range(self.attempts):
            try:
                return fn()
            except Exception as err:
                if not is_api_error(err) or error_code(err) not in TRANSIENT:
                    raise
                if attempt == self.attempts - 1:
                    raise
                delay = random.uniform(0, min(self.cap, self.base * 2**attempt))
                log.info("Vertex AI %s; retrying in %.2fs", error_code(err), delay)
                time.sleep(delay)
                if before_retry is not None:
                    before_retry()
        raise AssertionError("unreachable")


_ADVICE = {
    "PERMISSION_DENIED": "check that the account has the aiplatform.customJobs.create permission "
                         "(e.g. role roles/aiplatform.user) in this project and that the Vertex AI "
                         "API is enabled",
    "INVALID_ARGUMENT": "check the queue config's spec and run; `launch-jupyter submit --dry-run` "
                        "shows the exact request",
    "FAILED_PRECONDITION": "check the queue config's spec and run, and the project's set-up",
    "NOT_FOUND": "check the project and location (spec.project / spec.location or the agent "
                 "config's environment) and that the Vertex AI API is enabled there",
    "UNAUTHENTICATED": "check the credentials (gcloud auth application-default login, "
                       "GOOGLE_APPLICATION_CREDENTIALS, or environment.credentials)",
}


def dispatch_error(err: BaseException, action: str, target: Target) -> DispatchError:
    """An API error as a DispatchError a user can act on."""
    code = error_code(err)
    message = getattr(err, "message", None) or str(err)
    where = f"{target.parent} at {target.api_endpoint}"
    if code in TRANSIENT:
        return DispatchError(
            f"Vertex AI did not answer {action} in {where} ({code}: {message}); gave up after "
            "retries, the agent will try again later",
            transient=True,
        )
    advice = _ADVICE.get(code, "check the message above")
    return DispatchError(f"Vertex AI refused to {action} in {where} ({code}: {message}); {advice}")
