"""A fake Vertex AI JobService (+ Cloud Logging ``entries.list``) for offline tests.

It speaks the real protocols so the real ``google-cloud-aiplatform`` SDK can talk to it unpatched:
gRPC over TLS (a throwaway CA; clients trust it through ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``) and
REST over plain http (the JSON mapping of ``google.cloud.aiplatform.v1``). Both transports share one
in-memory state, driven by a per-test *script* of job states and injected *faults*, and every
request is recorded (method, transport, request as a dict, metadata).

Standalone: ``python -m tests.fakes.vertex_server --port-file F`` writes
``{"grpc_endpoint", "rest_endpoint", "ca_file", ...}`` to F and serves debug endpoints on the REST
port: ``GET /_debug/requests``, ``POST /_debug/script`` ``{"states": [...], "error_message": ...}``,
``POST /_debug/fail`` ``{"method", "code", "times", "quota"}``, ``POST /_debug/delay``
``{"method", "seconds", "times", "after"}``, ``POST /_debug/advance`` ``{"seconds"}``.

It behaves as the real service does where the runner depends on it (each rule cites its source
next to the code): names carry the project *number*, job states move by (fake) time, failed jobs
carry varied error codes, cancelled ones ``error.code = 1``, cancel is best effort, lists may lag
behind creates, labels/display_name/env limits and unknown JSON fields are refused, and the list
filter grammar is the documented one.

Top-level imports are stdlib only, so ``make_certs`` is cheap to import from a conftest plugin.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

JOB_SERVICE = "google.cloud.aiplatform.v1.JobService"
LOGGING_SERVICE = "google.logging.v2.LoggingServiceV2"
METHODS = ("CreateCustomJob", "GetCustomJob", "ListCustomJobs", "CancelCustomJob", "ListLogEntries")

# gRPC status name -> HTTP status of the JSON error (google.rpc code mapping).
HTTP_FOR_CODE = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


# --------------------------------------------------------------------------- TLS material


@dataclass(frozen=True)
class Certs:
    """Paths of the throwaway CA and of the server's key pair (SAN localhost, 127.0.0.1)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_certs(directory: Path | None = None) -> Certs:
    """Create (or reuse, while still valid) a throwaway CA and a localhost server certificate."""
    directory = Path(directory or Path(tempfile.gettempdir()) / "launch_jupyter_test_ca")
    certs = Certs(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    if _still_valid(certs):
        return certs
    # Written into a fresh folder and renamed into place, so concurrent test processes never
    # see a key that does not match its certificate.
    tmp = Path(tempfile.mkdtemp(prefix=".ca-", dir=directory.parent))
    _write_certs(tmp)
    if _still_valid(certs):  # another process finished first: keep its files, someone may trust them
        shutil.rmtree(tmp, ignore_errors=True)
        return certs
    try:
        if directory.exists():
            old = directory.with_name(f"{directory.name}.old-{uuid.uuid4().hex}")
            directory.rename(old)
        tmp.rename(directory)
    except OSError:
        pass  # another process won the race; its files are as good as ours
    return certs


def _still_valid(certs: Certs) -> bool:
    if not all(p.exists() for p in (certs.ca_file, certs.cert_file, certs.key_file)):
        return False
    from cryptography import x509  # lazy: only when certs exist

    cert = x509.load_pem_x509_certificate(certs.cert_file.read_bytes())
    return cert.not_valid_after_utc > _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=1)


def _write_certs(folder: Path) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = _dt.datetime.now(_dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "launch_jupyter test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


# --------------------------------------------------------------------------- shared state


class FakeError(Exception):
    """An injected or natural API error: a gRPC status name, a message, and optionally the
    google.rpc details Vertex AI attaches (QuotaFailure for quota, RetryInfo for rate limits)."""

    def __init__(self, code: str, message: str, quota: str | None = None, retry_after: float | None = None):
        self.code = code
        self.message = message
        self.quota = quota
        self.retry_after = retry_after
        super().__init__(f"{code}: {message}")

    def details_pb(self) -> list:
        """The details as google.rpc messages (for gRPC's grpc-status-details-bin)."""
        from google.rpc import error_details_pb2

        out = []
        if self.quota:
            out.append(
                error_details_pb2.QuotaFailure(
                    violations=[error_details_pb2.QuotaFailure.Violation(subject=self.quota, description=self.message)]
                )
            )
        if self.retry_after is not None:
            info = error_details_pb2.RetryInfo()
            info.retry_delay.FromNanoseconds(int(self.retry_after * 1e9))
            out.append(info)
        return out

    def details_json(self) -> list[dict]:
        """The details as the REST error body carries them (JSON with ``@type``)."""
        from google.protobuf import json_format

        out = []
        for detail in self.details_pb():
            data = json_format.MessageToDict(detail)
            out.append({"@type": f"type.googleapis.com/{detail.DESCRIPTOR.full_name}", **data})
        return out

    def body(self) -> dict:
        """The REST error body (google.rpc.Status as JSON: code, message, status, details)."""
        status = HTTP_FOR_CODE.get(self.code, 500)
        error = {"code": status, "message": self.message, "status": self.code}
        if self.details_pb():
            error["details"] = self.details_json()
        return {"error": error}


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    transport: str  # grpc | rest
    request: dict  # the request proto as a dict (enum names, snake_case fields, no defaults)
    metadata: dict = field(default_factory=dict)
    time: float = 0.0

    def to_json(self) -> dict:
        return {
            "method": self.method,
            "transport": self.transport,
            "request": self.request,
            "metadata": self.metadata,
            "time": self.time,
        }


@dataclass
class _Job:
    proto: Any  # aiplatform_v1.CustomJob
    script: list[str]
    error_message: str
    error_code: int
    step: float  # seconds each script state lasts
    started: float  # fake clock time the script started
    raw_state: Any = None  # a state this SDK does not know (int over gRPC, name over REST)
    hidden_lists: int = 0  # List calls that do not see the job yet (list lag)
    worked: bool = False  # a FakeWorker runs it: its state follows the process


# Rules of the real service, each with its source.
# labels: CustomJob.labels docstring (aiplatform_v1/types/custom_job.py) and
# cloud.google.com/resource-manager/docs/labels-overview: lowercase letters, digits, "_" and "-",
# international letters allowed, keys start with a letter, at most 63 characters, at most 64 labels.
LABEL_MAX, LABELS_MAX = 63, 64
# CustomJob.display_name docstring: "Required. The display name of the CustomJob. The name can be
# up to 128 characters long and can consist of any UTF-8 characters."
DISPLAY_NAME_MAX = 128
# ContainerSpec.env docstring: "Environment variables to be passed to the container. Maximum limit
# is 100."
ENV_MAX = 100
# google.rpc.Code: CANCELLED is 1 (CancelCustomJob docstring: a cancelled job gets error.code 1).
CODE_CANCELLED = 1
# Codes a FAILED job carries (google.rpc.Code), cycled when a script does not name one.
FAILED_CODES = (13, 3, 9, 8)
TERMINAL = (
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
)


def _label_ok(text: str, key: bool) -> bool:
    def ok(c: str) -> bool:
        return (
            c in "_-"
            or (c.isascii() and (c.islower() or c.isdigit()))
            or (not c.isascii() and c.isalpha() and not c.isupper())
        )

    if key and not (text[:1].isalpha() and not text[:1].isupper()):
        return False
    return len(text) <= LABEL_MAX and all(ok(c) for c in text)


def project_number(project: str) -> str:
    """The project number the fake gives a project id (names that come back carry the number:
    NOTES.md, "Job states and real Vertex")."""
    if project.isdigit():
        return project
    import hashlib

    return str(100_000_000_000 + int(hashlib.sha256(project.encode()).hexdigest()[:8], 16))


class VertexState:
    """The in-memory JobService both transports serve."""

    def __init__(self, region: str | None = None) -> None:
        self.lock = threading.RLock()
        self.jobs: dict[str, _Job] = {}
        self.requests: list[Recorded] = []
        self.region = region  # a regional endpoint serves one location; None: an emulator for all
        self.default_script: list[str] = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
        self.default_error = "the job failed"
        self.default_error_code: int | None = None
        self.step = 0.2  # seconds per script state, on the fake clock
        self.offset = 0.0  # fake clock = real time + offset (tests move it with advance())
        self.faults: dict[str, list[tuple[str, str, bool, dict]]] = {}
        self.delays: dict[str, list[tuple[float | None, bool]]] = {}  # method -> (seconds, after)
        self.released = threading.Event()  # ends every hang
        self.logs: dict[str, list[dict]] = {}  # numeric job id -> log entries
        self.hidden_logs: dict[str, int] = {}  # insert id -> ListLogEntries calls still blind to it
        self.page_size_cap = 100  # the real service caps pages too; small enough to exercise paging
        self.list_lag = 0  # a new job is missing from this many List calls (eventual consistency)
        self.list_lag_s = 0.0  # ... and from every List call this many seconds (fake clock) after its create
        self.cancel_wins = True  # False: a cancelled job still succeeds (cancel is best effort)
        self.listed_jobs: list[int] = []  # how many jobs each ListCustomJobs call returned
        self.worker: Any = None  # a FakeWorker (tests.fakes.vertex_worker): jobs run as local processes
        self._next_id = 1000
        self._failed = 0

    def now(self) -> float:
        return time.time() + self.offset

    # -- test controls ------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the fake clock: job states follow it (they advance by time, not per call)."""
        with self.lock:
            self.offset += seconds

    def script(
        self,
        states: list[str],
        error_message: str | None = None,
        job: str | None = None,
        step: float | None = None,
        error_code: int | None = None,
    ) -> None:
        """Jobs created from now on (or ``job``, a resource name) walk ``states``, each lasting
        ``step`` seconds of the fake clock (default 0.2 s). A state name this SDK does not know
        (``JOB_STATE_FUTURE``) or an int is sent as a future state would be."""
        states = [s if isinstance(s, int) or s.startswith("JOB_STATE_") else f"JOB_STATE_{s}" for s in states]
        with self.lock:
            if job is None:
                self.default_script = states
                if error_message is not None:
                    self.default_error = error_message
                if step is not None:
                    self.step = step
                self.default_error_code = error_code
                return
            entry = self._find(job)
            entry.script, entry.started = states, self.now()
            if step is not None:
                entry.step = step
            if error_message is not None:
                entry.error_message = error_message
            if error_code is not None:
                entry.error_code = error_code

    def fail(
        self,
        method: str,
        code: str,
        times: int = 1,
        message: str | None = None,
        after: bool = False,
        quota: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` fail with gRPC status ``code``; with ``after`` the
        call takes effect first and only its answer is lost (e.g. a job created, then UNAVAILABLE).
        ``quota`` adds a google.rpc.QuotaFailure naming that metric (as Vertex AI does for quota
        refusals); ``retry_after`` a google.rpc.RetryInfo (a rate limit). ``code="GARBLED"`` with
        ``after`` answers 200 with a body that is not JSON (REST)."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {METHODS}")
        message = message or f"injected {code} for {method}"
        extra = {"quota": quota, "retry_after": retry_after}
        with self.lock:
            self.faults.setdefault(method, []).extend([(code, message, after, extra)] * times)

    def delay(self, method: str, seconds: float | None, times: int = 1, after: bool = False) -> None:
        """The next ``times`` calls of ``method`` are slow: they sleep ``seconds`` before doing
        anything, or with ``after`` once the call took effect (a job created, its answer late).
        ``seconds=None`` hangs until ``release()`` (or the fake stops)."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {METHODS}")
        with self.lock:
            self.delays.setdefault(method, []).extend([(seconds, after)] * times)

    def release(self) -> None:
        """End every hang now and from now on."""
        self.released.set()

    def _wait(self, method: str, after: bool) -> None:
        with self.lock:
            pending = self.delays.get(method) or []
            if not pending or pending[0][1] != after:
                return
            seconds = pending.pop(0)[0]
        self.released.wait(300 if seconds is None else seconds)

    def add_logs(self, job_name: str, lines: list[str], start: float | None = None, hidden_for: int = 0) -> None:
        """Log lines for a job (by resource name), as Cloud Logging entries of resource ml_job;
        ``hidden_for`` ListLogEntries calls do not see them yet (ingestion lag)."""
        job_id = job_name.rsplit("/", 1)[-1]
        base = start or time.time()
        with self.lock:
            entries = self.logs.setdefault(job_id, [])
            for i, line in enumerate(lines, start=len(entries)):
                stamp = _dt.datetime.fromtimestamp(base + i * 0.001, _dt.timezone.utc)
                insert_id = f"{job_id}-{i:06d}"
                entries.append(
                    {
                        "log_name": f"projects/{_project_of(job_name)}/logs/workerpool0-0",
                        "resource": {"type": "ml_job", "labels": {"job_id": job_id}},
                        "text_payload": line,
                        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "insert_id": insert_id,
                    }
                )
                if hidden_for:
                    self.hidden_logs[insert_id] = hidden_for

    def append_log(self, job_name: str, line: str, when: float) -> None:
        """One log line a job's container wrote at ``when`` (the worker's stdout), as an entry."""
        job_id = job_name.rsplit("/", 1)[-1]
        stamp = _dt.datetime.fromtimestamp(when, _dt.timezone.utc)
        with self.lock:
            entries = self.logs.setdefault(job_id, [])
            entries.append(
                {
                    "log_name": f"projects/{_project_of(job_name)}/logs/workerpool0-0",
                    "resource": {"type": "ml_job", "labels": {"job_id": job_id}},
                    "text_payload": line,
                    "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "insert_id": f"{job_id}-{len(entries):06d}",
                }
            )

    def calls(self, method: str) -> list[Recorded]:
        """Recorded requests of one method."""
        with self.lock:
            return [r for r in self.requests if r.method == method]

    def reset_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    # -- the service ----------------------------------------------------------------------
    def record(self, method: str, transport: str, request: Any, metadata: dict) -> FakeError | None:
        """Record a request; raise an injected fault pending for ``method``, or return it when it
        is to be raised after the call took effect."""
        as_dict = type(request).to_dict(
            request, use_integers_for_enums=False, always_print_fields_with_no_presence=False
        )
        with self.lock:
            self.requests.append(Recorded(method, transport, as_dict, metadata, time.time()))
        self._wait(method, after=False)
        with self.lock:
            pending = self.faults.get(method)
            if not pending:
                return None
            code, message, after, extra = pending.pop(0)
        err = FakeError(code, message, **extra)
        if after:
            return err
        raise err

    def _parent(self, parent: str) -> str:
        """The parent with the project number; refuses what the real service refuses."""
        m = re.fullmatch(r"projects/([^/]+)/locations/([^/]+)", parent)
        if not m:
            raise FakeError("INVALID_ARGUMENT", f"bad parent {parent!r}")
        location = m.group(2)
        # CustomJobs are regional (the SDK maps "global" to aiplatform.googleapis.com, which does
        # not serve them).
        if location == "global":
            raise FakeError("INVALID_ARGUMENT", "Location global is not supported for custom jobs")
        # A regional endpoint serves its own region only.
        if self.region and location != self.region:
            raise FakeError(
                "INVALID_ARGUMENT", f"Location {location} does not match the endpoint's region {self.region}"
            )
        return f"projects/{project_number(m.group(1))}/locations/{location}"

    def _check_job(self, job: Any) -> None:
        if not job.display_name:
            raise FakeError("INVALID_ARGUMENT", "CustomJob.display_name is required")
        if len(job.display_name) > DISPLAY_NAME_MAX:
            raise FakeError("INVALID_ARGUMENT", f"display_name is longer than {DISPLAY_NAME_MAX} characters")
        if len(job.labels) > LABELS_MAX:
            raise FakeError("INVALID_ARGUMENT", f"at most {LABELS_MAX} labels are allowed")
        for key, value in job.labels.items():
            if not _label_ok(key, key=True) or not _label_ok(value, key=False):
                raise FakeError(
                    "INVALID_ARGUMENT",
                    f"invalid label {key!r}: {value!r}; label keys and values "
                    "can only contain lowercase letters, numeric characters, "
                    "underscores and dashes",
                )
        pools = job.job_spec.worker_pool_specs
        if not pools:
            raise FakeError("INVALID_ARGUMENT", "job_spec.worker_pool_specs is required")
        for i, pool in enumerate(pools):
            if i > 0 and type(pool).pb(pool).ByteSize() == 0:
                continue  # empty placeholder pools after the first are allowed
            if len(pool.container_spec.env) > ENV_MAX:
                raise FakeError("INVALID_ARGUMENT", f"worker_pool_specs[{i}]: at most {ENV_MAX} env vars")
            machine = pool.machine_spec
            if machine.accelerator_type and not machine.accelerator_count:
                raise FakeError(
                    "INVALID_ARGUMENT",
                    f"worker_pool_specs[{i}].machine_spec: accelerator_count must be set with accelerator_type",
                )
            if pool.replica_count < 1:
                raise FakeError("INVALID_ARGUMENT", f"worker_pool_specs[{i}].replica_count must be at least 1")

    def create(self, request: Any) -> Any:
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        parent = self._parent(request.parent)
        job = aiplatform_v1.CustomJob(request.custom_job)
        self._check_job(job)
        with self.lock:
            self._next_id += 1
            job.name = f"{parent}/customJobs/{self._next_id}"
            now = self.now()
            job.create_time = _dt.datetime.fromtimestamp(now, _dt.timezone.utc)
            job.update_time = job.create_time
            job.state = aiplatform_v1.JobState.JOB_STATE_PENDING
            code = self.default_error_code or FAILED_CODES[self._failed % len(FAILED_CODES)]
            self._failed += 1
            script = [] if self.worker is not None else list(self.default_script)  # the process drives it
            entry = self.jobs[job.name] = _Job(
                job, script, self.default_error, code, self.step, now, hidden_lists=self.list_lag
            )
            if self.worker is not None:
                entry.worked = True
                self.worker.start(entry)
            return aiplatform_v1.CustomJob(job)

    def _find(self, name: str) -> _Job:
        m = re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/customJobs/([^/]+)", name)
        key = f"{self._parent(m.group(1))}/customJobs/{m.group(2)}" if m else name
        entry = self.jobs.get(key)
        if entry is None:
            raise FakeError("NOT_FOUND", f"CustomJob {name} not found")
        return entry

    def get(self, name: str) -> Any:
        with self.lock:
            entry = self._find(name)
            self._advance(entry)
            return entry

    def list(self, request: Any) -> tuple[list[_Job], str]:
        parent = self._parent(request.parent)
        match = _parse_filter(request.filter)
        with self.lock:
            chosen = []
            for name in sorted(self.jobs):
                entry = self.jobs[name]
                if not name.startswith(parent + "/"):
                    continue
                if entry.hidden_lists > 0:
                    entry.hidden_lists -= 1
                    continue
                if self.now() - entry.proto.create_time.timestamp() < self.list_lag_s:
                    continue  # eventual consistency by time: a real list lags for a while, not per call
                self._advance(entry)
                if match(entry.proto):
                    chosen.append(entry)
            start = int(request.page_token or 0)
            size = min(request.page_size or self.page_size_cap, self.page_size_cap)
            page = chosen[start : start + size]
            self.listed_jobs.append(len(page))
            token = str(start + size) if start + size < len(chosen) else ""
            return page, token

    def cancel(self, name: str) -> None:
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        # JobServiceClient.cancel_custom_job docstring: "Starts asynchronous cancellation on the
        # CustomJob. The server makes a best effort to cancel the job, but success is not guaranteed
        # ... On successful cancellation, the CustomJob is not deleted; instead it becomes a job with
        # a CustomJob.error value with a google.rpc.Status.code of 1, corresponding to
        # Code.CANCELLED, and CustomJob.state is set to CANCELLED." JobState docstring:
        # JOB_STATE_CANCELLING "The job is being cancelled. From this state the job may only go to
        # either JOB_STATE_SUCCEEDED, JOB_STATE_FAILED or JOB_STATE_CANCELLED."
        with self.lock:
            entry = self._find(name)
            self._advance(entry)
            if entry.proto.state.name in TERMINAL:
                raise FakeError("FAILED_PRECONDITION", f"CustomJob {name} is already finished")
            if entry.worked:
                self.worker.cancel(entry)  # CANCELLING until the container has stopped
                return
            entry.proto.state = aiplatform_v1.JobState.JOB_STATE_CANCELLING
            entry.raw_state = None
            end = "JOB_STATE_CANCELLED" if self.cancel_wins else "JOB_STATE_SUCCEEDED"
            entry.script, entry.started = ["JOB_STATE_CANCELLING", end], self.now()

    def log_entries(
        self, filter_text: str, page_token: str, page_size: int, order_by: str = ""
    ) -> tuple[list[dict], str]:
        # The Logging query language (cloud.google.com/logging/docs/view/logging-query-language):
        # a value may be a parenthesised OR of values (`resource.labels.job_id=("1" OR "2")`), and
        # `textPayload:"x"` is the "has" operator, a substring match on the text. order_by is
        # "timestamp asc" (the default) or "timestamp desc" (ListLogEntriesRequest.order_by).
        text = filter_text or ""
        m = re.search(r'resource\.labels\.job_id\s*=\s*(\([^)]*\)|"?\d+"?)', text)
        job_ids = re.findall(r"\d+", m.group(1)) if m else []
        bounds = [_dt.datetime.fromisoformat(t) for t in re.findall(r'timestamp\s*>=\s*"([^"]+)"', text)]
        has = re.findall(r'textPayload\s*:\s*"([^"]*)"', text)
        with self.lock:
            entries = [e for job_id in job_ids for e in self.logs.get(job_id, [])]
            visible = []
            for e in entries:
                if self.hidden_logs.get(e["insert_id"], 0) > 0:
                    self.hidden_logs[e["insert_id"]] -= 1
                else:
                    visible.append(e)
        for bound in bounds:
            visible = [e for e in visible if _dt.datetime.fromisoformat(e["timestamp"]) >= bound]
        for needle in has:
            visible = [e for e in visible if needle in e["text_payload"]]
        visible.sort(key=lambda e: e["timestamp"], reverse=order_by.strip().lower().endswith("desc"))
        start = int(page_token or 0)
        size = page_size or 1000
        token = str(start + size) if start + size < len(visible) else ""
        return visible[start : start + size], token

    def _advance(self, entry: _Job) -> None:
        """Bring the job to the state its script gives for the fake clock's time."""
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        if not entry.script:
            return
        index = (
            min(int((self.now() - entry.started) / entry.step), len(entry.script) - 1)
            if entry.step
            else len(entry.script) - 1
        )
        name = entry.script[index]
        known = isinstance(name, str) and name in aiplatform_v1.JobState.__members__
        when = _dt.datetime.fromtimestamp(entry.started + index * entry.step, _dt.timezone.utc)
        if not known:
            entry.raw_state = name
            return
        entry.raw_state = None
        state = aiplatform_v1.JobState[name]
        if state == entry.proto.state:
            return
        entry.proto.state = state
        entry.proto.update_time = when
        if state == aiplatform_v1.JobState.JOB_STATE_RUNNING and not entry.proto.start_time:
            entry.proto.start_time = when
        if name in TERMINAL:
            entry.proto.end_time = when
        if state == aiplatform_v1.JobState.JOB_STATE_FAILED:
            entry.proto.error = {"code": entry.error_code, "message": entry.error_message}
        if state == aiplatform_v1.JobState.JOB_STATE_CANCELLED:
            entry.proto.error = {"code": CODE_CANCELLED, "message": "CANCELED"}

    def seed_finished(
        self, parent: str, count: int, labels: dict[str, str] | None = None, state: str = "JOB_STATE_SUCCEEDED"
    ) -> None:
        """``count`` old jobs that already ended (a project's history), without a create each."""
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        parent = self._parent(parent)
        with self.lock:
            for i in range(count):
                self._next_id += 1
                job = aiplatform_v1.CustomJob(
                    display_name=f"old-{i}", labels=labels or {}, state=aiplatform_v1.JobState[state]
                )
                job.name = f"{parent}/customJobs/{self._next_id}"
                job.create_time = job.end_time = _dt.datetime.fromtimestamp(self.now() - 60, _dt.timezone.utc)
                self.jobs[job.name] = _Job(job, [], "", 0, self.step, self.now())

    def finish_unknown(self, job: str) -> None:
        """Give a job in an unknown state an end_time (a future terminal state)."""
        with self.lock:
            entry = self._find(job)
            entry.proto.end_time = _dt.datetime.fromtimestamp(self.now(), _dt.timezone.utc)


def _project_of(name: str) -> str:
    return name.split("/")[1] if name.startswith("projects/") else "p"


# --------------------------------------------------------------------------- list filters
# The documented grammar of ListCustomJobsRequest.filter (aiplatform_v1/types/job_service.py) and
# AIP-160 (google.aip.dev/160): fields display_name (=, !=, : wildcard), state (=, !=),
# create_time (=, !=, <, <=, >, >=; RFC 3339), labels.key=value and labels.key:*; AND, OR
# (binds tighter than AND, as in AIP-160), NOT / "-", parentheses; values quoted or bare.

_TOKEN = re.compile(r'\s*(\(|\)|"[^"]*"|<=|>=|!=|=|<|>|:|[^\s()"<>=!:]+)')


def _parse_filter(text: str):
    """A matcher for a ListCustomJobs filter; anything outside the grammar is INVALID_ARGUMENT."""
    tokens = [t for t in _TOKEN.findall(text or "") if t]
    if not tokens:
        return lambda job: True
    parser = _FilterParser(tokens)
    pred = parser.expression()
    if parser.pos != len(tokens):
        raise FakeError("INVALID_ARGUMENT", f"invalid filter {text!r} near {tokens[parser.pos]!r}")
    return pred


class _FilterParser:
    def __init__(self, tokens: list[str]):
        self.tokens, self.pos = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise FakeError("INVALID_ARGUMENT", "invalid filter: unexpected end")
        self.pos += 1
        return token

    def expression(self):
        parts = [self.factor()]
        while self.peek() == "AND":
            self.take()
            parts.append(self.factor())
        return lambda job: all(p(job) for p in parts)

    def factor(self):
        parts = [self.term()]
        while self.peek() == "OR":
            self.take()
            parts.append(self.term())
        return lambda job: any(p(job) for p in parts)

    def term(self):
        if self.peek() in ("NOT", "-"):
            self.take()
            inner = self.term()
            return lambda job: not inner(job)
        if self.peek() == "(":
            self.take()
            inner = self.expression()
            if self.take() != ")":
                raise FakeError("INVALID_ARGUMENT", "invalid filter: missing )")
            return inner
        return self.comparison()

    def comparison(self):
        field_name, op, raw = self.take(), self.take(), self.take()
        value = raw[1:-1] if raw.startswith('"') else raw
        if field_name.startswith("labels."):
            key = field_name[len("labels.") :]
            if op == ":" and value == "*":
                return lambda job: key in job.labels
            if op in ("=", "!="):
                return lambda job: (job.labels.get(key) == value) == (op == "=")
        elif field_name == "state" and op in ("=", "!="):
            return lambda job: (job.state.name == value) == (op == "=")
        elif field_name == "display_name" and op in ("=", "!=", ":"):
            if op == ":":
                pattern = re.compile(".*".join(re.escape(p) for p in value.split("*")))
                return lambda job: bool(pattern.fullmatch(job.display_name))
            return lambda job: (job.display_name == value) == (op == "=")
        elif field_name == "create_time" and op in ("=", "!=", "<", "<=", ">", ">="):
            try:
                bound = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise FakeError("INVALID_ARGUMENT", f"create_time must be RFC 3339, got {value!r}") from None
            compare = {
                "=": lambda a: a == bound,
                "!=": lambda a: a != bound,
                "<": lambda a: a < bound,
                "<=": lambda a: a <= bound,
                ">": lambda a: a > bound,
                ">=": lambda a: a >= bound,
            }[op]
            return lambda job: compare(job.create_time)
        raise FakeError("INVALID_ARGUMENT", f"unsupported filter term: {field_name}{op}{raw}")


# --------------------------------------------------------------------------- wire forms

FUTURE_STATE_NUMBER = 99  # what a JobState added after this SDK looks like on the wire (gRPC)


def _job_pb(entry: _Job) -> Any:
    """The job's protobuf, with an unknown state as its raw number."""
    from google.cloud import aiplatform_v1

    pb = type(aiplatform_v1.CustomJob.pb(entry.proto))()
    pb.CopyFrom(aiplatform_v1.CustomJob.pb(entry.proto))
    if entry.raw_state is not None:
        pb.state = entry.raw_state if isinstance(entry.raw_state, int) else FUTURE_STATE_NUMBER
    return pb


def _job_json(entry: _Job) -> dict:
    """The job as the REST API shows it: enum names, an unknown state by its (new) name."""
    from google.cloud import aiplatform_v1

    data = json.loads(aiplatform_v1.CustomJob.to_json(entry.proto, use_integers_for_enums=False))
    if entry.raw_state is not None:
        data["state"] = entry.raw_state if isinstance(entry.raw_state, str) else f"JOB_STATE_{entry.raw_state}"
    return data


# --------------------------------------------------------------------------- gRPC transport


def _abort(context, err: FakeError) -> None:
    import grpc

    details = err.details_pb()
    if not details:
        context.abort(getattr(grpc.StatusCode, err.code), err.message)
    from google.protobuf import any_pb2
    from google.rpc import status_pb2
    from grpc_status import rpc_status

    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    code = getattr(grpc.StatusCode, err.code).value[0]
    context.abort_with_status(rpc_status.to_status(status_pb2.Status(code=code, message=err.message, details=packed)))


def _grpc_jobs_handler(state: VertexState):
    import grpc
    from google.cloud import aiplatform_v1
    from google.protobuf import empty_pb2

    def wrap(method: str, fn):
        def handler(request, context):
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            try:
                late = state.record(method, "grpc", request, metadata)
                answer = fn(request)
                state._wait(method, after=True)  # the call took effect; its answer is late
                if late is not None:
                    raise late
                return answer
            except FakeError as err:
                _abort(context, err)

        return handler

    def one_job(entry: _Job) -> bytes:
        return _job_pb(entry).SerializeToString()

    def job_list(answer) -> bytes:
        entries, token = answer
        response = aiplatform_v1.ListCustomJobsResponse.pb(aiplatform_v1.ListCustomJobsResponse())
        for entry in entries:
            response.custom_jobs.add().CopyFrom(_job_pb(entry))
        response.next_page_token = token
        return response.SerializeToString()

    def create(request) -> bytes:
        return aiplatform_v1.CustomJob.serialize(state.create(request))

    def cancel(request):
        state.cancel(request.name)
        return empty_pb2.Empty()

    def rpc(method, fn, req_cls, serialize):
        return grpc.unary_unary_rpc_method_handler(
            wrap(method, fn), request_deserializer=req_cls.deserialize, response_serializer=serialize
        )

    v1 = aiplatform_v1
    return grpc.method_handlers_generic_handler(
        JOB_SERVICE,
        {
            "CreateCustomJob": rpc("CreateCustomJob", create, v1.CreateCustomJobRequest, lambda b: b),
            "GetCustomJob": rpc("GetCustomJob", lambda r: state.get(r.name), v1.GetCustomJobRequest, one_job),
            "ListCustomJobs": rpc("ListCustomJobs", state.list, v1.ListCustomJobsRequest, job_list),
            "CancelCustomJob": rpc(
                "CancelCustomJob", cancel, v1.CancelCustomJobRequest, empty_pb2.Empty.SerializeToString
            ),
        },
    )


def _grpc_logging_handler(state: VertexState):
    import grpc
    from google.cloud.logging_v2.types import ListLogEntriesRequest, ListLogEntriesResponse

    def handler(request, context):
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        try:
            late = state.record("ListLogEntries", "grpc", request, metadata)
            entries, token = state.log_entries(request.filter, request.page_token, request.page_size, request.order_by)
            if late is not None:
                raise late
            return ListLogEntriesResponse(entries=entries, next_page_token=token)
        except FakeError as err:
            _abort(context, err)

    rpc = grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=ListLogEntriesRequest.deserialize,
        response_serializer=ListLogEntriesResponse.serialize,
    )
    return grpc.method_handlers_generic_handler(LOGGING_SERVICE, {"ListLogEntries": rpc})


def start_grpc(state: VertexState, certs: Certs, port: int = 0, service: str = "jobs"):
    """Serve ``state``'s JobService (or, with ``service="logging"``, Cloud Logging: it has its own
    endpoint, logging.googleapis.com) over gRPC with TLS on 127.0.0.1; returns (server, port)."""
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    handler = _grpc_jobs_handler(state) if service == "jobs" else _grpc_logging_handler(state)
    server.add_generic_rpc_handlers([handler])
    creds = grpc.ssl_server_credentials([(certs.key_file.read_bytes(), certs.cert_file.read_bytes())])
    bound = server.add_secure_port(f"127.0.0.1:{port}", creds)
    server.start()
    return server, bound


# --------------------------------------------------------------------------- REST transport

_JOB_PATH = re.compile(r"/v1/(projects/[^/]+/locations/[^/]+)/customJobs(?:/([^/:]+))?(:cancel)?")


class _RestHandler(BaseHTTPRequestHandler):
    state: VertexState  # set on the subclass made per server
    service: str = "jobs"  # jobs | logging

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/_debug/requests":
            with self.state.lock:
                self._json(200, [r.to_json() for r in self.state.requests])
            return
        self._serve(url, None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        if url.path.startswith("/_debug/"):
            self._debug(url.path, json.loads(body or b"{}"))
            return
        self._serve(url, body)

    def _debug(self, path: str, data: dict) -> None:
        if path == "/_debug/script":
            self.state.script(data["states"], data.get("error_message"), data.get("job"), data.get("step"))
        elif path == "/_debug/fail":
            self.state.fail(
                data["method"],
                data["code"],
                int(data.get("times", 1)),
                data.get("message"),
                bool(data.get("after", False)),
                data.get("quota"),
            )
        elif path == "/_debug/delay":
            seconds = data.get("seconds")
            self.state.delay(
                data["method"],
                None if seconds is None else float(seconds),
                int(data.get("times", 1)),
                bool(data.get("after", False)),
            )
        elif path == "/_debug/logs":
            self.state.add_logs(data["job"], data["lines"])
        elif path == "/_debug/advance":
            self.state.advance(float(data["seconds"]))
        else:
            self._json(404, {"error": {"code": 404, "message": path, "status": "NOT_FOUND"}})
            return
        self._json(200, {})

    def _serve(self, url, body: bytes | None) -> None:
        metadata = {k.lower(): v for k, v in self.headers.items()}
        try:
            if self.service == "logging":
                if url.path != "/v2/entries:list" or body is None:
                    raise FakeError("NOT_FOUND", f"no such path {url.path}")
                self._list_logs(json.loads(body or b"{}"), metadata)
                return
            self._serve_jobs(url, body, metadata)
        except FakeError as err:
            self._json(HTTP_FOR_CODE.get(err.code, 500), err.body())

    def _serve_jobs(self, url, body: bytes | None, metadata: dict) -> None:
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only
        from google.protobuf import json_format

        m = _JOB_PATH.fullmatch(url.path)
        if not m:
            raise FakeError("NOT_FOUND", f"no such path {url.path}")
        parent, job_id, cancel = m.groups()
        v1 = aiplatform_v1
        if body is not None and not job_id:
            try:  # the real API refuses unknown fields: "Invalid JSON payload received. Unknown name"
                job = v1.CustomJob.from_json(body or b"{}", ignore_unknown_fields=False)
            except json_format.ParseError as err:
                raise FakeError("INVALID_ARGUMENT", f"Invalid JSON payload received. {err}") from None
            req = v1.CreateCustomJobRequest(parent=parent, custom_job=job)
            late = self.state.record("CreateCustomJob", "rest", req, metadata)
            created = self.state.create(req)
            self.state._wait("CreateCustomJob", after=True)
            if late is not None and late.code == "GARBLED":
                self._send(200, b'{"name": "' + created.name.encode())  # cut off: not JSON
                return
            self._send(200, v1.CustomJob.to_json(_raise_late(created, late), use_integers_for_enums=False).encode())
        elif body is not None and cancel:
            req = v1.CancelCustomJobRequest(name=f"{parent}/customJobs/{job_id}")
            late = self.state.record("CancelCustomJob", "rest", req, metadata)
            self.state.cancel(req.name)
            self.state._wait("CancelCustomJob", after=True)
            _raise_late(None, late)
            self._json(200, {})
        elif job_id:
            req = v1.GetCustomJobRequest(name=f"{parent}/customJobs/{job_id}")
            late = self.state.record("GetCustomJob", "rest", req, metadata)
            entry = self.state.get(req.name)
            self.state._wait("GetCustomJob", after=True)
            self._json(200, _job_json(_raise_late(entry, late)))
        else:
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            req = v1.ListCustomJobsRequest(
                parent=parent,
                filter=q.get("filter", ""),
                page_size=int(q.get("pageSize", 0)),
                page_token=q.get("pageToken", ""),
            )
            late = self.state.record("ListCustomJobs", "rest", req, metadata)
            answer = self.state.list(req)
            self.state._wait("ListCustomJobs", after=True)
            entries, token = _raise_late(answer, late)
            out: dict = {"customJobs": [_job_json(e) for e in entries]} if entries else {}
            if token:
                out["nextPageToken"] = token
            self._json(200, out)

    def _list_logs(self, data: dict, metadata: dict) -> None:
        from google.cloud.logging_v2.types import ListLogEntriesRequest

        req = ListLogEntriesRequest(
            resource_names=data.get("resourceNames", []),
            filter=data.get("filter", ""),
            order_by=data.get("orderBy", ""),
            page_size=int(data.get("pageSize", 0)),
            page_token=data.get("pageToken", ""),
        )
        _raise_late(None, self.state.record("ListLogEntries", "rest", req, metadata))
        entries, token = self.state.log_entries(req.filter, req.page_token, req.page_size, req.order_by)
        out = [_camel_entry(e) for e in entries]
        self._json(200, {"entries": out, **({"nextPageToken": token} if token else {})})

    def _json(self, status: int, data) -> None:
        self._send(status, json.dumps(data).encode())

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _raise_late(answer: Any, late: FakeError | None) -> Any:
    if late is not None:
        raise late
    return answer


def _camel_entry(entry: dict) -> dict:
    return {
        "logName": entry["log_name"],
        "resource": entry["resource"],
        "textPayload": entry["text_payload"],
        "timestamp": entry["timestamp"],
        "insertId": entry["insert_id"],
    }


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up (its deadline fired): what a hung call is for
        super().handle_error(request, client_address)


def start_rest(state: VertexState, port: int = 0, service: str = "jobs"):
    """Serve ``state`` over REST (plain http) on 127.0.0.1; returns (server, port)."""
    handler = type("Handler", (_RestHandler,), {"state": state, "service": service})
    server = _QuietServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name=f"fake-vertex-rest-{service}").start()
    return server, server.server_address[1]


# --------------------------------------------------------------------------- the whole fake


class FakeVertex:
    """Both transports over one state. ``grpc_endpoint`` is ``localhost:PORT`` (TLS),
    ``rest_endpoint`` is ``http://127.0.0.1:PORT``; Cloud Logging has its own ports
    (``logging_grpc_endpoint``, ``logging_rest_endpoint``), as logging.googleapis.com is not
    Vertex AI's endpoint."""

    def __init__(self, certs: Certs | None = None, region: str | None = None):
        self.state = VertexState(region)
        self.certs = certs or make_certs()
        self._grpc, self.grpc_port = start_grpc(self.state, self.certs)
        self._rest, self.rest_port = start_rest(self.state)
        self._log_grpc, self.logging_grpc_port = start_grpc(self.state, self.certs, service="logging")
        self._log_rest, self.logging_rest_port = start_rest(self.state, service="logging")
        self.grpc_endpoint = f"localhost:{self.grpc_port}"
        self.rest_endpoint = f"http://127.0.0.1:{self.rest_port}"
        self.logging_grpc_endpoint = f"localhost:{self.logging_grpc_port}"
        self.logging_rest_endpoint = f"http://127.0.0.1:{self.logging_rest_port}"

    @property
    def requests(self) -> list[Recorded]:
        """Every request received so far, oldest first."""
        with self.state.lock:
            return list(self.state.requests)

    def __getattr__(self, name: str):
        # script, fail, delay, release, advance, calls, add_logs, finish_unknown: see VertexState.
        if name in (
            "script",
            "fail",
            "delay",
            "release",
            "advance",
            "calls",
            "add_logs",
            "finish_unknown",
            "seed_finished",
        ):
            return getattr(self.state, name)
        raise AttributeError(name)

    @staticmethod
    def project_number(project: str) -> str:
        """See project_number."""
        return project_number(project)

    def attach_worker(self, gcs: Any, image_root: Any, mount: Path, grace: float | None = None) -> Any:
        """Run the jobs created from now on as local processes (tests.fakes.vertex_worker)."""
        from tests.fakes.vertex_worker import GRACE_S, FakeWorker

        self.state.worker = FakeWorker(self.state, gcs, image_root, mount, GRACE_S if grace is None else grace)
        return self.state.worker

    def stop(self) -> None:
        self.state.release()
        if self.state.worker is not None:
            self.state.worker.stop_all()
        for server in (self._grpc, self._log_grpc):
            server.stop(grace=None)
        for server in (self._rest, self._log_rest):
            server.shutdown()
            server.server_close()


def main(argv: list[str] | None = None) -> None:
    """Run the fake until killed; write its endpoints to ``--port-file``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--script", default="", help="comma-separated default job states")
    args = parser.parse_args(argv)
    fake = FakeVertex()
    if args.script:
        fake.script(args.script.split(","))
    info = {
        "grpc_endpoint": fake.grpc_endpoint,
        "rest_endpoint": fake.rest_endpoint,
        "logging_grpc_endpoint": fake.logging_grpc_endpoint,
        "logging_rest_endpoint": fake.logging_rest_endpoint,
        "grpc_port": fake.grpc_port,
        "rest_port": fake.rest_port,
        "ca_file": str(fake.certs.ca_file),
        "pid": os.getpid(),
    }
    tmp = Path(args.port_file).with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(args.port_file)  # atomic: a reader never sees half a file
    threading.Event().wait()


if __name__ == "__main__":
    main()
