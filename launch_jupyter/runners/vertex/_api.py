"""Talking to Vertex AI: per-queue targets, credentials, cached per-endpoint JobService clients,
and API errors classified (transient or not) and turned into DispatchErrors. Nothing here retries:
the one retry policy is ``core.retry``, applied by the agent."""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

from ...core.config import EnvironmentConfig
from ...core.errors import DispatchError, LaunchError

log = logging.getLogger(__name__)

# Codes worth another try. RESOURCE_EXHAUSTED only when it is a rate limit, not a quota (see
# quota_refusal); DEADLINE_EXCEEDED is our own per-call timeout firing on a hung connection.
TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", "ABORTED"})
_HTTP_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_REGION = "us-central1"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
# The SDK's default for every RPC is no deadline at all; a hung connection would block a poll or a
# submit worker forever. Every call we make passes this (seconds), or the runner's rpc_timeout.
RPC_TIMEOUT = 60.0
API_BASE_PATH = "aiplatform.googleapis.com"  # google.cloud.aiplatform.constants.base.API_BASE_PATH
MREP_JURISDICTIONS = frozenset({"us", "eu"})  # constants.base.MREP_JURISDICTIONS
_GOOGLE_REGIONAL = re.compile(r"(?:https?://)?([a-z0-9-]+)-aiplatform\.googleapis\.com(?::\d+)?/?")


def default_endpoint(location: str) -> str:
    """The Vertex AI endpoint for ``location``, derived as the SDK's
    ``initializer.global_config.get_client_options`` does: ``aiplatform.us.rep.googleapis.com`` for
    the multi-region jurisdictions (``utils.mrep_endpoint``), ``{region}-aiplatform.googleapis.com``
    otherwise. (``global`` maps to ``aiplatform.googleapis.com``, but CustomJobs are regional, so
    resolve_target refuses it before this is reached.)"""
    location = location.lower()
    if location in MREP_JURISDICTIONS:
        service, domain = API_BASE_PATH.split(".", 1)
        return f"{service}.{location}.rep.{domain}"
    if location == "global":
        return API_BASE_PATH
    return f"{location}-{API_BASE_PATH}"


@dataclass(frozen=True)
class Target:
    """Where one queue's jobs go: project and location, and how to reach the API."""

    project: str
    location: str
    endpoint: str | None = None  # None: the location's Google endpoint; may hold "{location}"
    transport: str = "grpc"  # grpc | rest
    credentials: str = "default"  # default (ADC) | anonymous (emulators)
    logging_endpoint: str | None = None  # None: Google's Cloud Logging (an emulator sets its own)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def api_endpoint(self) -> str:
        if self.endpoint:
            return self.endpoint.replace("{location}", self.location)
        return default_endpoint(self.location)


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
                # The environment, not the input: a runtime failure (the CLI's exit 1), one line.
                raise DispatchError(
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
    location = str(location)
    problem = location_problem(location)
    if problem:
        where = "spec.location" if spec.get("location") else "environment.region"
        raise LaunchError(f"{where}: {problem}")
    endpoint = env.api_endpoint
    regional = _GOOGLE_REGIONAL.fullmatch(endpoint or "")
    if regional and regional.group(1) != location and "{location}" not in (endpoint or ""):
        raise LaunchError(
            f"environment.api_endpoint: {endpoint} serves {regional.group(1)} only, but this queue "
            f"runs in {location}; leave api_endpoint unset (each location gets its own endpoint) or "
            "write it as {location}-aiplatform.googleapis.com"
        )
    logging_endpoint = getattr(env, "logging_endpoint", None)
    return Target(str(project), location, endpoint, env.api_transport or "grpc", kind, logging_endpoint)


def location_problem(location: str) -> str | None:
    """Why ``location`` cannot hold a CustomJob, or None. Cheap (no SDK import): ``global`` and
    names that are not region-shaped; the full list is checked by ``supported_location``."""
    if location == "global":
        # The SDK maps "global" to aiplatform.googleapis.com; CustomJobs only exist in a region.
        return (
            '"global" is not a location for custom jobs: Vertex AI runs them in a region, '
            "e.g. us-central1 or europe-west4"
        )
    if location in MREP_JURISDICTIONS:
        return None
    if not re.fullmatch(r"[a-z]+(?:-[a-z]+)+[0-9]+", location):
        return f"{location!r} is not a Vertex AI region (e.g. us-central1)"
    return None


def supported_location(location: str) -> str | None:
    """``location_problem``, plus: not in the installed SDK's list of Vertex AI regions."""
    if location == "global":
        return location_problem(location)
    from google.cloud.aiplatform.constants import base as constants  # lazy: heavy SDK import

    from ...core.keys import closest

    if location in constants.SUPPORTED_REGIONS or location in MREP_JURISDICTIONS:
        return None
    guess = closest(location, [r for r in constants.SUPPORTED_REGIONS if r != "global"])
    hint = f'; did you mean "{guess}"?' if guess else ""
    return f"{location!r} is not a Vertex AI region{hint}"


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


def read_log_entries(
    client: Any, project: str, query: str, *, seconds: float, what: str, newest_first: bool = False, **paging: Any
) -> list[Any]:
    """One Cloud Logging ``list_entries`` read of ``project`` (oldest first unless ``newest_first``),
    given up after ``seconds`` (``within``); ``paging``: page_size, max_results."""
    from google.cloud import logging as cloud_logging  # lazy: google-cloud-logging

    order = cloud_logging.DESCENDING if newest_first else cloud_logging.ASCENDING

    def read() -> list[Any]:
        return list(
            client.list_entries(resource_names=[f"projects/{project}"], filter_=query, order_by=order, **paging)
        )

    return within(read, seconds, what)


def within(fn: Any, seconds: float, what: str) -> Any:
    """``fn()``, waited for at most ``seconds``: google-cloud-logging's ``list_entries`` takes no
    deadline, so a hung connection would hang its caller. Past the deadline this raises
    DEADLINE_EXCEEDED (transient, like a JobService call's own timeout); the read is left on its
    daemon thread and its answer, if one ever comes, is dropped."""
    from google.api_core import exceptions  # lazy: google-api-core

    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True, name="launch-vertex-bounded")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise exceptions.DeadlineExceeded(f"{what}: no answer in {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def rest_status(err: BaseException) -> str | None:
    """Over REST, the canonical code is the JSON error body's ``error.status``: the HTTP status alone
    is ambiguous (400 is INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE; google.rpc.Code)."""
    response = getattr(err, "response", None)
    if response is None or not hasattr(response, "status_code") or not hasattr(response, "json"):
        return None
    try:
        status = response.json().get("error", {}).get("status")
    except Exception:  # not JSON: fall back to the HTTP status
        return None
    return status if isinstance(status, str) and status.isupper() else None


def error_code(err: BaseException) -> str:
    """The gRPC status name of an API error (REST errors by their body's ``status``)."""
    status = rest_status(err)
    if status:
        return status
    grpc_code = getattr(err, "grpc_status_code", None)
    if grpc_code is not None:
        return grpc_code.name
    code = getattr(err, "code", None)
    if isinstance(code, int):
        return _HTTP_CODES.get(code, "UNKNOWN")
    name = type(err).__name__
    if name in ("Timeout", "ReadTimeout", "ConnectTimeout"):
        return "DEADLINE_EXCEEDED"  # requests' timeout on the REST transport: our deadline fired
    if name == "ConnectionError":
        return "UNAVAILABLE"  # requests' errors on the REST transport: the server is not there
    return "UNKNOWN"


def is_api_error(err: BaseException) -> bool:
    """An error from the API or the transport under it (not a bug of ours)."""
    from google.api_core import exceptions  # lazy: google-api-core

    return isinstance(err, exceptions.GoogleAPIError) or error_code(err) in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


_QUOTA_TEXT = re.compile(r"exceeds? quota limits?|quota (?:exceeded|limit)", re.IGNORECASE)
_RATE_TEXT = re.compile(r"per (?:second|minute|100 seconds)|rate limit", re.IGNORECASE)


def quota_refusal(err: BaseException) -> str | None:
    """The quota a RESOURCE_EXHAUSTED names when it is a quota refusal (permanent until the user
    raises the quota or frees resources), else None. A refusal carries a ``google.rpc.QuotaFailure``
    detail (gRPC: the unpacked message; REST: a dict with ``@type``) or Vertex AI's text "The
    following quota metrics exceed quota limits: ..."; a request-rate limit (``per minute``) and a
    bare 429 stay transient."""
    if error_code(err) != "RESOURCE_EXHAUSTED":
        return None
    message = str(getattr(err, "message", None) or err)
    subjects: list[str] = []
    found = False
    for detail in getattr(err, "details", None) or ():
        if isinstance(detail, dict):
            if str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
                found = True
                subjects += [v.get("subject") or v.get("description") or "" for v in detail.get("violations") or []]
        elif type(detail).__name__ == "QuotaFailure":
            found = True
            subjects += [v.subject or v.description for v in detail.violations]
    text = " ".join([message, *subjects])
    if _RATE_TEXT.search(text):
        return None
    if not found and not _QUOTA_TEXT.search(message):
        return None
    named = ", ".join(s for s in subjects if s)
    if not named:
        after = message.split("quota limits:", 1)
        named = after[1].strip().rstrip(".") if len(after) == 2 else "a quota"
    return named


def is_transient(err: BaseException) -> bool:
    """Worth another try: a transient code that is not a quota refusal."""
    return is_api_error(err) and error_code(err) in TRANSIENT and quota_refusal(err) is None


# The permission each action needs (IAM permissions of roles/aiplatform.user and
# roles/logging.viewer).
PERMISSIONS = {
    "create": "aiplatform.customJobs.create",
    "get": "aiplatform.customJobs.get",
    "list": "aiplatform.customJobs.list",
    "cancel": "aiplatform.customJobs.cancel",
    "logs": "logging.logEntries.list",
}
_ADVICE = {
    "INVALID_ARGUMENT": "check the queue config's spec and run; `launch-jupyter submit --dry-run` "
    "shows the exact request",
    "FAILED_PRECONDITION": "check the queue config's spec and run, and the project's set-up",
    "NOT_FOUND": "check the project and location (spec.project / spec.location or the agent "
    "config's environment) and that the Vertex AI API is enabled there",
    "UNAUTHENTICATED": "check the credentials (gcloud auth application-default login, "
    "GOOGLE_APPLICATION_CREDENTIALS, or environment.credentials)",
}


def _permission_advice(kind: str) -> str:
    permission = PERMISSIONS.get(kind, PERMISSIONS["create"])
    role = "roles/logging.viewer" if kind == "logs" else "roles/aiplatform.user"
    api = "Cloud Logging" if kind == "logs" else "Vertex AI"
    return (
        f"check that the account has the {permission} permission (e.g. role {role}) in this "
        f"project and that the {api} API is enabled"
    )


_REST_PREFIX = re.compile(r"^(?:GET|POST|PUT|PATCH|DELETE) \S+: ")


def dispatch_error(err: BaseException, action: str, target: Target, kind: str = "create") -> DispatchError:
    """An API error as a DispatchError a user can act on; ``kind`` is one of PERMISSIONS."""
    code = error_code(err)
    # The API's own text; over REST google-api-core prefixes it with the request ("GET <url>: ").
    message = _REST_PREFIX.sub("", getattr(err, "message", None) or str(err))
    where = f"{target.parent} at {target.api_endpoint}"
    quota = quota_refusal(err)
    if quota is not None:
        return DispatchError(
            f"Vertex AI refused to {action} in {where}: over quota ({quota}). This lasts until the "
            "quota is raised (Google Cloud console → IAM & Admin → Quotas) or running jobs finish; "
            f"resubmit then, or choose a machine or region with quota ({message})"
        )
    if is_transient(err):
        return DispatchError(
            f"Vertex AI did not answer {action} in {where} ({code}: {message}); this is usually "
            "temporary and worth another try",
            transient=True,
        )
    advice = _permission_advice(kind) if code == "PERMISSION_DENIED" else _ADVICE.get(code, "check the message above")
    return DispatchError(f"Vertex AI refused to {action} in {where} ({code}: {message}); {advice}")
