"""A fake Vertex AI JobService (+ Cloud Logging ``entries.list``) for offline tests.

It speaks the real protocols so the real ``google-cloud-aiplatform`` SDK can talk to it unpatched:
gRPC over TLS (a throwaway CA; clients trust it through ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``) and
REST over plain http (the JSON mapping of ``google.cloud.aiplatform.v1``). Both transports share one
in-memory state, driven by a per-test *script* of job states and injected *faults*, and every
request is recorded (method, transport, request as a dict, metadata).

Standalone: ``python -m tests.fakes.vertex_server --port-file F`` writes
``{"grpc_endpoint", "rest_endpoint", "ca_file", ...}`` to F and serves debug endpoints on the REST
port: ``GET /_debug/requests``, ``POST /_debug/script`` ``{"states": [...], "error_message": ...}``,
``POST /_debug/fail`` ``{"method", "code", "times"}``, ``POST /_debug/delay``
``{"method", "seconds", "times", "after"}``.

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
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
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
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


# --------------------------------------------------------------------------- shared state


class FakeError(Exception):
    """An injected or natural API error: a gRPC status name and a message."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


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
    step: int = 0


class VertexState:
    """The in-memory JobService both transports serve."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.jobs: dict[str, _Job] = {}
        self.requests: list[Recorded] = []
        self.default_script: list[str] = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
        self.default_error = "the job failed"
        self.faults: dict[str, list[tuple[str, str, bool]]] = {}
        self.delays: dict[str, list[tuple[float, bool]]] = {}  # method -> (seconds, after the effect)
        self.logs: dict[str, list[dict]] = {}  # numeric job id -> log entries
        self.page_size_cap = 100  # the real service caps pages too; small enough to exercise paging
        self._next_id = 1000

    # -- test controls ------------------------------------------------------------------
    def script(self, states: list[str], error_message: str | None = None, job: str | None = None) -> None:
        """Jobs created from now on (or ``job``, a resource name) walk ``states``, one per Get/List."""
        states = [s if s.startswith("JOB_STATE_") else f"JOB_STATE_{s}" for s in states]
        with self.lock:
            if job is None:
                self.default_script = states
                if error_message is not None:
                    self.default_error = error_message
                return
            entry = self.jobs[job]
            entry.script, entry.step = states, 0
            if error_message is not None:
                entry.error_message = error_message

    def fail(self, method: str, code: str, times: int = 1, message: str | None = None,
             after: bool = False) -> None:
        """The next ``times`` calls of ``method`` fail with gRPC status ``code``; with ``after`` the
        call takes effect first and only its answer is lost (e.g. a job created, then UNAVAILABLE)."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {METHODS}")
        message = message or f"injected {code} for {method}"
        with self.lock:
            self.faults.setdefault(method, []).extend([(code, message, after)] * times)

    def delay(self, method: str, seconds: float, times: int = 1, after: bool = False) -> None:
        """The next ``times`` calls of ``method`` are slow: they sleep ``seconds`` before doing
        anything, or with ``after`` once the call took effect (a job created, its answer late)."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {METHODS}")
        with self.lock:
            self.delays.setdefault(method, []).extend([(seconds, after)] * times)

    def _take_delay(self, method: str, after: bool) -> float:
        with self.lock:
            pending = self.delays.get(method) or []
            if pending and pending[0][1] == after:
                return pending.pop(0)[0]
        return 0.0

    def add_logs(self, job_name: str, lines: list[str], start: float | None = None) -> None:
        """Log lines for a job (by resource name), as Cloud Logging entries of resource ml_job."""
        job_id = job_name.rsplit("/", 1)[-1]
        base = start or time.time()
        with self.lock:
            entries = self.logs.setdefault(job_id, [])
            for i, line in enumerate(lines, start=len(entries)):
                stamp = _dt.datetime.fromtimestamp(base + i * 0.001, _dt.timezone.utc)
                entries.append(
                    {
                        "log_name": f"projects/{_project_of(job_name)}/logs/workerpool0-0",
                        "resource": {"type": "ml_job", "labels": {"job_id": job_id}},
                        "text_payload": line,
                        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "insert_id": f"{job_id}-{i:06d}",
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
        time.sleep(self._take_delay(method, after=False))
        with self.lock:
            pending = self.faults.get(method)
            if not pending:
                return None
            code, message, after = pending.pop(0)
        if after:
            return FakeError(code, message)
        raise FakeError(code, message)

    def create(self, request: Any) -> Any:
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        parent = request.parent
        if not re.fullmatch(r"projects/[^/]+/locations/[^/]+", parent):
            raise FakeError("INVALID_ARGUMENT", f"bad parent {parent!r}")
        job = aiplatform_v1.CustomJob(request.custom_job)
        if not job.job_spec.worker_pool_specs:
            raise FakeError("INVALID_ARGUMENT", "job_spec.worker_pool_specs is required")
        with self.lock:
            self._next_id += 1
            job.name = f"{parent}/customJobs/{self._next_id}"
            now = time.time()
            job.create_time = _dt.datetime.fromtimestamp(now, _dt.timezone.utc)
            job.update_time = job.create_time
            job.state = aiplatform_v1.JobState.JOB_STATE_PENDING
            self.jobs[job.name] = _Job(job, list(self.default_script), self.default_error)
        time.sleep(self._take_delay("CreateCustomJob", after=True))
        return aiplatform_v1.CustomJob(job)

    def get(self, name: str) -> Any:
        with self.lock:
            entry = self.jobs.get(name)
            if entry is None:
                raise FakeError("NOT_FOUND", f"CustomJob {name} not found")
            self._advance(entry)
            return type(entry.proto)(entry.proto)

    def list(self, request: Any) -> Any:
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        match = _parse_filter(request.filter)
        with self.lock:
            names = sorted(
                n for n, j in self.jobs.items()
                if n.startswith(request.parent + "/") and match(j.proto)
            )
            start = int(request.page_token or 0)
            size = min(request.page_size or self.page_size_cap, self.page_size_cap)
            page = names[start : start + size]
            out = []
            for name in page:
                self._advance(self.jobs[name])
                out.append(aiplatform_v1.CustomJob(self.jobs[name].proto))
            token = str(start + size) if start + size < len(names) else ""
            return aiplatform_v1.ListCustomJobsResponse(custom_jobs=out, next_page_token=token)

    def cancel(self, name: str) -> None:
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        with self.lock:
            entry = self.jobs.get(name)
            if entry is None:
                raise FakeError("NOT_FOUND", f"CustomJob {name} not found")
            state = entry.proto.state
            done = {
                aiplatform_v1.JobState.JOB_STATE_SUCCEEDED,
                aiplatform_v1.JobState.JOB_STATE_FAILED,
                aiplatform_v1.JobState.JOB_STATE_CANCELLED,
            }
            if state in done:
                raise FakeError("FAILED_PRECONDITION", f"CustomJob {name} is already finished")
            entry.proto.state = aiplatform_v1.JobState.JOB_STATE_CANCELLING
            entry.script, entry.step = ["JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"], 0

    def log_entries(self, filter_text: str, page_token: str, page_size: int) -> tuple[list[dict], str]:
        m = re.search(r'resource\.labels\.job_id\s*=\s*"?(\d+)"?', filter_text or "")
        bounds = [_dt.datetime.fromisoformat(t) for t in re.findall(r'timestamp\s*>=\s*"([^"]+)"', filter_text or "")]
        with self.lock:
            entries = list(self.logs.get(m.group(1), [])) if m else []
        for bound in bounds:
            entries = [e for e in entries if _dt.datetime.fromisoformat(e["timestamp"]) >= bound]
        start = int(page_token or 0)
        size = page_size or 1000
        token = str(start + size) if start + size < len(entries) else ""
        return entries[start : start + size], token

    def _advance(self, entry: _Job) -> None:
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        if not entry.script:
            return
        name = entry.script[min(entry.step, len(entry.script) - 1)]
        entry.step += 1
        state = aiplatform_v1.JobState[name]
        if state != entry.proto.state:
            entry.proto.state = state
            entry.proto.update_time = _dt.datetime.now(_dt.timezone.utc)
        if state == aiplatform_v1.JobState.JOB_STATE_FAILED:
            entry.proto.error = {"code": 13, "message": entry.error_message}


def _project_of(name: str) -> str:
    return name.split("/")[1] if name.startswith("projects/") else "p"


def _parse_filter(text: str):
    """A matcher for the subset of Vertex list filters the runner uses: terms joined by AND, each
    ``labels.K="V"``, ``labels.K:*``, ``state="JOB_STATE_X"`` / ``state!=...`` or
    ``create_time>="RFC3339"``; OR-groups in parentheses."""
    text = (text or "").strip()
    if not text:
        return lambda job: True
    terms = [t.strip() for t in re.split(r"\s+AND\s+", text)]
    preds = [_parse_or(t) for t in terms]
    return lambda job: all(p(job) for p in preds)


def _parse_or(term: str):
    if term.startswith("(") and term.endswith(")"):
        parts = [_parse_term(t.strip()) for t in re.split(r"\s+OR\s+", term[1:-1])]
        return lambda job: any(p(job) for p in parts)
    return _parse_term(term)


def _parse_term(term: str):
    m = re.fullmatch(r'labels\.([a-z0-9_-]+)\s*:\s*\*', term)
    if m:
        key = m.group(1)
        return lambda job: key in job.labels
    m = re.fullmatch(r'labels\.([a-z0-9_-]+)\s*=\s*"([^"]*)"', term)
    if m:
        key, value = m.group(1), m.group(2)
        return lambda job: job.labels.get(key) == value
    m = re.fullmatch(r'state\s*(!?=)\s*"?(JOB_STATE_[A-Z_]+)"?', term)
    if m:
        want, neg = m.group(2), m.group(1) == "!="
        return lambda job: (job.state.name == want) != neg
    m = re.fullmatch(r'create_time\s*>=\s*"([^"]+)"', term)
    if m:
        since = _dt.datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
        return lambda job: job.create_time >= since
    raise FakeError("INVALID_ARGUMENT", f"unsupported filter term: {term!r}")


# --------------------------------------------------------------------------- gRPC transport


def _grpc_handlers(state: VertexState):
    import grpc
    from google.cloud import aiplatform_v1
    from google.cloud.logging_v2.types import ListLogEntriesRequest, ListLogEntriesResponse
    from google.protobuf import empty_pb2

    def wrap(method: str, fn):
        def handler(request, context):
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            try:
                late = state.record(method, "grpc", request, metadata)
                answer = fn(request)
                if late is not None:
                    raise late
                return answer
            except FakeError as err:
                context.abort(getattr(grpc.StatusCode, err.code), err.message)

        return handler

    def list_logs(request):
        entries, token = state.log_entries(request.filter, request.page_token, request.page_size)
        return ListLogEntriesResponse(entries=entries, next_page_token=token)

    def cancel(request):
        state.cancel(request.name)
        return empty_pb2.Empty()

    def rpc(method, fn, req_cls, serialize):
        return grpc.unary_unary_rpc_method_handler(
            wrap(method, fn), request_deserializer=req_cls.deserialize, response_serializer=serialize
        )

    v1 = aiplatform_v1
    jobs = grpc.method_handlers_generic_handler(
        JOB_SERVICE,
        {
            "CreateCustomJob": rpc("CreateCustomJob", state.create, v1.CreateCustomJobRequest, v1.CustomJob.serialize),
            "GetCustomJob": rpc("GetCustomJob", lambda r: state.get(r.name), v1.GetCustomJobRequest, v1.CustomJob.serialize),
            "ListCustomJobs": rpc("ListCustomJobs", state.list, v1.ListCustomJobsRequest, v1.ListCustomJobsResponse.serialize),
            "CancelCustomJob": rpc("CancelCustomJob", cancel, v1.CancelCustomJobRequest, empty_pb2.Empty.SerializeToString),
        },
    )
    logs = grpc.method_handlers_generic_handler(
        LOGGING_SERVICE,
        {"ListLogEntries": rpc("ListLogEntries", list_logs, ListLogEntriesRequest, ListLogEntriesResponse.serialize)},
    )
    return [jobs, logs]


def start_grpc(state: VertexState, certs: Certs, port: int = 0):
    """Serve ``state`` over gRPC with TLS on 127.0.0.1; returns (server, port)."""
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers(_grpc_handlers(state))
    creds = grpc.ssl_server_credentials([(certs.key_file.read_bytes(), certs.cert_file.read_bytes())])
    bound = server.add_secure_port(f"127.0.0.1:{port}", creds)
    server.start()
    return server, bound


# --------------------------------------------------------------------------- REST transport

_JOB_PATH = re.compile(r"/v1/(projects/[^/]+/locations/[^/]+)/customJobs(?:/([^/:]+))?(:cancel)?")


class _RestHandler(BaseHTTPRequestHandler):
    state: VertexState  # set on the subclass made per server

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
            self.state.script(data["states"], data.get("error_message"), data.get("job"))
        elif path == "/_debug/fail":
            self.state.fail(data["method"], data["code"], int(data.get("times", 1)), data.get("message"),
                            bool(data.get("after", False)))
        elif path == "/_debug/delay":
            self.state.delay(data["method"], float(data["seconds"]), int(data.get("times", 1)),
                             bool(data.get("after", False)))
        elif path == "/_debug/logs":
            self.state.add_logs(data["job"], data["lines"])
        else:
            self._json(404, {"error": {"code": 404, "message": path, "status": "NOT_FOUND"}})
            return
        self._json(200, {})

    def _serve(self, url, body: bytes | None) -> None:
        from google.cloud import aiplatform_v1  # lazy: the fake runs in tests only

        metadata = {k.lower(): v for k, v in self.headers.items()}
        try:
            if url.path == "/v2/entries:list" and body is not None:
                self._list_logs(json.loads(body or b"{}"), metadata)
                return
            m = _JOB_PATH.fullmatch(url.path)
            if not m:
                raise FakeError("NOT_FOUND", f"no such path {url.path}")
            parent, job_id, cancel = m.groups()
            v1 = aiplatform_v1
            if body is not None and not job_id:
                job = v1.CustomJob.from_json(body or b"{}", ignore_unknown_fields=True)
                req = v1.CreateCustomJobRequest(parent=parent, custom_job=job)
                late = self.state.record("CreateCustomJob", "rest", req, metadata)
                self._proto(v1.CustomJob, _raise_late(self.state.create(req), late))
            elif body is not None and cancel:
                req = v1.CancelCustomJobRequest(name=f"{parent}/customJobs/{job_id}")
                late = self.state.record("CancelCustomJob", "rest", req, metadata)
                _raise_late(self.state.cancel(req.name), late)
                self._json(200, {})
            elif job_id:
                req = v1.GetCustomJobRequest(name=f"{parent}/customJobs/{job_id}")
                late = self.state.record("GetCustomJob", "rest", req, metadata)
                self._proto(v1.CustomJob, _raise_late(self.state.get(req.name), late))
            else:
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                req = v1.ListCustomJobsRequest(
                    parent=parent,
                    filter=q.get("filter", ""),
                    page_size=int(q.get("pageSize", 0)),
                    page_token=q.get("pageToken", ""),
                )
                late = self.state.record("ListCustomJobs", "rest", req, metadata)
                self._proto(v1.ListCustomJobsResponse, _raise_late(self.state.list(req), late))
        except FakeError as err:
            status = HTTP_FOR_CODE.get(err.code, 500)
            self._json(status, {"error": {"code": status, "message": err.message, "status": err.code}})

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
        entries, token = self.state.log_entries(req.filter, req.page_token, req.page_size)
        out = [_camel_entry(e) for e in entries]
        self._json(200, {"entries": out, **({"nextPageToken": token} if token else {})})

    def _proto(self, cls, message) -> None:
        self._send(200, cls.to_json(message).encode())

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


def start_rest(state: VertexState, port: int = 0):
    """Serve ``state`` over REST (plain http) on 127.0.0.1; returns (server, port)."""
    handler = type("Handler", (_RestHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="fake-vertex-rest").start()
    return server, server.server_address[1]


# --------------------------------------------------------------------------- the whole fake


class FakeVertex:
    """Both transports over one state. ``grpc_endpoint`` is ``localhost:PORT`` (TLS),
    ``rest_endpoint`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, certs: Certs | None = None):
        self.state = VertexState()
        self.certs = certs or make_certs()
        self._grpc, self.grpc_port = start_grpc(self.state, self.certs)
        self._rest, self.rest_port = start_rest(self.state)
        self.grpc_endpoint = f"localhost:{self.grpc_port}"
        self.rest_endpoint = f"http://127.0.0.1:{self.rest_port}"

    @property
    def requests(self) -> list[Recorded]:
        """Every request received so far, oldest first."""
        with self.state.lock:
            return list(self.state.requests)

    def script(self, states: list[str], error_message: str | None = None, job: str | None = None) -> None:
        """See VertexState.script."""
        self.state.script(states, error_message, job)

    def fail(self, method: str, code: str, times: int = 1, message: str | None = None,
             after: bool = False) -> None:
        """See VertexState.fail."""
        self.state.fail(method, code, times, message, after)

    def calls(self, method: str) -> list[Recorded]:
        """Recorded requests of one method."""
        return self.state.calls(method)

    def delay(self, method: str, seconds: float, times: int = 1, after: bool = False) -> None:
        """See VertexState.delay."""
        self.state.delay(method, seconds, times, after)

    def add_logs(self, job_name: str, lines: list[str]) -> None:
        """See VertexState.add_logs."""
        self.state.add_logs(job_name, lines)

    def stop(self) -> None:
        self._grpc.stop(grace=None)
        self._rest.shutdown()
        self._rest.server_close()


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
