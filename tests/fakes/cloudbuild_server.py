"""A fake Google Cloud Build API (REST, ``google.devtools.cloudbuild.v1``) for offline tests.

The real ``google-cloud-build`` client talks to it with ``transport="rest"`` and an ``http://``
``api_endpoint``. ``CreateBuild`` answers with the long-running Operation (its metadata holds the
build), ``GetBuild`` walks the build through QUEUED → WORKING → SUCCESS, or FAILURE when a failure
was injected (``state.fail_next(message)``) or when the ``--context=gs://…`` object is missing from
the paired fake GCS. Every create request's Build is recorded.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class CloudBuildState:
    """Builds by id, the recorded create requests, and the failures to inject."""

    def __init__(self, gcs=None) -> None:
        self.gcs = gcs  # a tests.fakes.gcs_server.GcsState to check --context against, or None
        self.builds: dict[str, object] = {}
        self.created: list[object] = []  # the Build of each CreateBuild request, as sent
        self.gets = 0
        self.parents: list[str] = []  # the parent (projects/P or projects/P/locations/R) of each create
        self.get_errors = 0  # the next GetBuild calls that answer 500 INTERNAL (transient, and not
        # in the client library's own GetBuild retry, which covers UNAVAILABLE and DEADLINE_EXCEEDED)
        self.hold = False  # builds stay WORKING while set (a real build takes as long as its steps)
        self._failures: list[str] = []
        self.base_url = ""
        self.lock = threading.Lock()

    def fail_next(self, message: str) -> None:
        """The next build created ends in FAILURE with ``message`` as its failure detail."""
        self._failures.append(message)

    def create(self, project: str, body: dict) -> dict:
        from google.cloud.devtools import cloudbuild_v1  # heavy: only when a request arrives

        build = cloudbuild_v1.Build.from_json(json.dumps(body), ignore_unknown_fields=True)
        self.created.append(cloudbuild_v1.Build.from_json(json.dumps(body), ignore_unknown_fields=True))
        build.id = uuid.uuid4().hex
        build.project_id = project
        build.status = cloudbuild_v1.Build.Status.QUEUED
        build.log_url = f"{self.base_url}/logs/{build.id}"
        build.create_time = _now()
        with self.lock:
            self.builds[build.id] = (build, self._failures.pop(0) if self._failures else None)
        return _operation(project, build)

    def get(self, build_id: str) -> dict | None:
        from google.cloud.devtools import cloudbuild_v1  # see create

        Status = cloudbuild_v1.Build.Status
        with self.lock:
            self.gets += 1
            if build_id not in self.builds:
                return None
            build, failure = self.builds[build_id]
            if build.status == Status.QUEUED:
                build.status = Status.WORKING
                build.start_time = _now()
            elif build.status == Status.WORKING and not self.hold:
                failure = failure or self._missing_context(build)
                build.status = Status.FAILURE if failure else Status.SUCCESS
                build.finish_time = _now()
                if failure:
                    build.status_detail = failure
                    build.failure_info = cloudbuild_v1.Build.FailureInfo(
                        type_=cloudbuild_v1.Build.FailureInfo.FailureType.USER_BUILD_STEP, detail=failure
                    )
            return json.loads(cloudbuild_v1.Build.to_json(build))

    def _missing_context(self, build) -> str | None:
        if self.gcs is None:
            return None
        for step in build.steps:
            for arg in step.args:
                if arg.startswith("--context=gs://"):
                    bucket, _, name = arg[len("--context=gs://") :].partition("/")
                    if (bucket, name) not in self.gcs.objects:
                        return f"error resolving build context: {arg[10:]} does not exist"
        return None


def _now():
    from google.protobuf import timestamp_pb2

    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(time.time_ns())
    return stamp


def _operation(project: str, build) -> dict:
    from google.cloud.devtools import cloudbuild_v1
    from google.longrunning import operations_pb2
    from google.protobuf import any_pb2, json_format

    metadata = any_pb2.Any()
    metadata.Pack(cloudbuild_v1.BuildOperationMetadata.pb(cloudbuild_v1.BuildOperationMetadata(build=build)))
    op = operations_pb2.Operation(name=f"operations/build/{project}/{build.id}", metadata=metadata, done=False)
    return json.loads(json_format.MessageToJson(op))


class _Handler(BaseHTTPRequestHandler):
    state: CloudBuildState

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(404, {"error": {"code": 404, "message": f"{self.path} not found", "status": "NOT_FOUND"}})

    def _parts(self) -> list[str]:
        """The path with a regional ``locations/R`` taken out (Cloud Build serves both forms:
        /v1/projects/P/builds and /v1/projects/P/locations/R/builds)."""
        parts = urlparse(self.path).path.strip("/").split("/")
        self.parent = "/".join(parts[1:3])
        if len(parts) >= 5 and parts[3] == "locations":
            self.parent = "/".join(parts[1:5])
            parts = parts[:3] + parts[5:]
        return parts

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        parts = self._parts()
        if len(parts) == 4 and parts[0] == "v1" and parts[1] == "projects" and parts[3] == "builds":
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            self.state.parents.append(self.parent)
            return self._send(200, self.state.create(parts[2], body))
        self._not_found()

    def do_GET(self) -> None:  # noqa: N802
        parts = self._parts()
        if len(parts) == 5 and parts[0] == "v1" and parts[1] == "projects" and parts[3] == "builds":
            with self.state.lock:
                failing = self.state.get_errors > 0
                self.state.get_errors -= failing
            if failing:
                return self._send(500, {"error": {"code": 500, "message": "internal error", "status": "INTERNAL"}})
            build = self.state.get(parts[4])
            return self._send(200, build) if build is not None else self._not_found()
        self._not_found()


def start(state: CloudBuildState | None = None) -> tuple[ThreadingHTTPServer, CloudBuildState]:
    """Serve on 127.0.0.1 (a free port) in a daemon thread; ``state.base_url`` is its http:// URL."""
    state = state or CloudBuildState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.base_url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state
