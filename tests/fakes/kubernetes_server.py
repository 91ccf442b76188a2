"""A FAKE Kubernetes API server: no real API server can be installed on these machines, so the
kubernetes runner's tests talk to this one, over HTTP at the real REST paths, through the official
``kubernetes`` client (a kubeconfig pointing at it).

What it serves (paths and shapes from the Kubernetes API reference, batch/v1 Job and core/v1 Pod):
- ``POST   /apis/batch/v1/namespaces/{ns}/jobs``: the body is built as the client's ``V1Job`` model
  (pydantic, unknown fields refused), else ``422 Invalid`` (a ``Status`` naming the field);
  ``metadata.name`` required; a taken name is ``409 AlreadyExists`` (API conventions: "Conflict").
- ``GET    /apis/batch/v1/namespaces/{ns}/jobs[?labelSelector=]`` and ``…/jobs/{name}`` (``404 NotFound``).
- ``DELETE /apis/batch/v1/namespaces/{ns}/jobs/{name}``: the body is a ``V1DeleteOptions``; with
  ``propagationPolicy: Background`` the Job goes at once and its pods after it (garbage collection,
  "Background cascading deletion"); with ``Orphan`` the pods stay.
- ``GET    /api/v1/namespaces/{ns}/pods[?labelSelector=]`` and ``…/pods/{name}/log``.
- Label selectors: ``key``, ``key=value``, ``key==value``, ``key!=value``, and the set-based
  ``key in (v1,v2)`` / ``key notin (…)``, comma-joined (AND) ("Labels and Selectors", equality- and
  set-based requirements).
- Lists are paged with ``limit`` and ``continue`` ("API Concepts", retrieving large results sets in
  chunks): a page of at most ``limit`` items, ``metadata.continue`` set while more remain (and
  ``remainingItemCount``), the continued pages from the same snapshot.

Standing in for the Job controller and the kubelet, each Job gets one pod (labels from the pod
template plus ``batch.kubernetes.io/job-name`` and ``controller-uid``, as the controller sets) that
walks a script of phases, one step per Job list: Pending → Running → Succeeded / Failed, the Job's
``status`` (active, ready, succeeded, failed, and the Complete / Failed conditions) following.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HAPPY = ["Pending", "Running", "Running", "Succeeded"]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def _terms(selector: str) -> list[str]:
    """The requirements of a selector: split at the commas outside ``( )``."""
    terms, depth, current = [], 0, ""
    for char in selector or "":
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    return [t.strip() for t in [*terms, current] if t.strip()]


def matches(selector: str, labels: dict) -> bool:
    for term in _terms(selector):
        words = term.split(None, 2)
        if len(words) == 3 and words[1] in ("in", "notin"):
            key, op, values = words
            chosen = {v.strip() for v in values.strip().removeprefix("(").removesuffix(")").split(",")}
            if (labels.get(key) in chosen) != (op == "in") or (op == "in" and key not in labels):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeKubernetes:
    """``.url``, ``.requests`` [(method, path, query, body)], ``.script(phases[, name])``,
    ``.logs[pod]``, ``.jobs``, ``.pods``, ``.fail(method, path_part, code)``, ``.pause_at(phase)``,
    ``.hang_after(method, path_part)``."""

    def __init__(self, tls: tuple[str, str] | None = None):
        """``tls``: (certificate file, key file) to serve https, as an API server in a cluster does."""
        self.lock = threading.Lock()
        self.authorizations: list[str] = []  # the Authorization header of each request
        self.requests: list[tuple[str, str, dict, Any]] = []
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.default_script = list(HAPPY)
        self.scripts: dict[str, list[str]] = {}
        self.steps: dict[str, int] = {}
        self.reasons: dict[str, str] = {}
        self.log_lines = ["executing the notebook", "executed notebook"]
        self.paused_at: str | None = None
        self._faults: list[dict] = []
        self._hangs: set[tuple[str, str]] = set()
        self._snapshots: dict[str, tuple[list, int]] = {}
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with fake.lock:
                    fake.authorizations.append(self.headers.get("Authorization") or "")
                code, body, ctype = fake._handle(method, self.path, raw)
                if fake._hangs_on(method, self.path):
                    fake._release.wait()  # the request took effect; its answer never comes (a lost reply)
                    return
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    # ------------------------------------------------------------------ the test's handles
    def kubeconfig(self, path, namespace: str = "default") -> str:
        """A kubeconfig file pointing at this server (plain http on loopback, a dummy token)."""
        import yaml

        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}
                    ],
                }
            )
        )
        return str(path)

    def script(self, phases: list[str], name: str | None = None, reason: str = "") -> None:
        with self.lock:
            if name is None:
                self.default_script = list(phases)
            else:
                self.scripts[name], self.steps[name] = list(phases), 0
                if reason:
                    self.reasons[name] = reason

    def pause_at(self, phase: str | None) -> None:
        with self.lock:
            self.paused_at = phase

    def fail(self, method: str, path_part: str, code: int, times: int = 1) -> None:
        with self.lock:
            self._faults.append({"method": method, "part": path_part, "code": code, "times": times})

    def hang_after(self, method: str, path_part: str) -> None:
        """Requests ``method`` on a path containing ``path_part`` take effect, then are never
        answered (until ``stop``): a client killed inside the call, or a reply lost on the way."""
        with self.lock:
            self._hangs.add((method, path_part))

    def resume(self) -> None:
        """Answer every request again and let paused Jobs go on."""
        with self.lock:
            self._hangs.clear()
            self.paused_at = None

    def _hangs_on(self, method: str, path: str) -> bool:
        with self.lock:
            return any(m == method and part in path for m, part in self._hangs)

    def calls(self, method: str, path_part: str) -> list[tuple]:
        with self.lock:
            return [r for r in self.requests if r[0] == method and path_part in r[1]]

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ the API
    def _handle(self, method: str, raw_path: str, raw: bytes) -> tuple[int, Any, str]:
        parsed = urllib.parse.urlsplit(raw_path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        body = json.loads(raw) if raw else None
        path = parsed.path
        with self.lock:
            self.requests.append((method, path, query, body))
            fault = next((f for f in self._faults if f["method"] == method and f["part"] in path and f["times"]), None)
            if fault:
                fault["times"] -= 1
                return fault["code"], _status(fault["code"], "InternalError", "injected"), "application/json"
            parts = path.strip("/").split("/")
            if parts[:4] == ["apis", "batch", "v1", "namespaces"] and len(parts) >= 6 and parts[5] == "jobs":
                return self._jobs(method, parts[4], parts[6] if len(parts) > 6 else None, query, body)
            if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "pods":
                return self._pods(method, parts[3], parts[5] if len(parts) > 5 else None, parts[6:], query)
        return (
            404,
            _status(404, "NotFound", f"the server could not find the requested resource {path}"),
            "application/json",
        )

    def _jobs(self, method: str, ns: str, name: str | None, query: dict, body: Any) -> tuple[int, Any, str]:
        if method == "POST" and name is None:
            return self._create(ns, body)
        if method == "GET" and name is None:
            if not query.get("continue"):
                self._advance(ns)  # one controller step per list, not per page
            items = [
                j
                for (n, _), j in sorted(self.jobs.items())
                if n == ns and matches(query.get("labelSelector", ""), j["metadata"].get("labels") or {})
            ]
            return 200, self._page("JobList", "batch/v1", items, query), "application/json"
        job = self.jobs.get((ns, name or ""))
        if job is None:
            return (
                404,
                _status(
                    404, "NotFound", f'jobs.batch "{name}" not found', {"name": name, "group": "batch", "kind": "jobs"}
                ),
                "application/json",
            )
        if method == "GET":
            return 200, job, "application/json"
        if method == "DELETE":
            from kubernetes import client

            options = client.V1DeleteOptions.model_validate(body or {})
            del self.jobs[(ns, name)]
            if options.propagation_policy != "Orphan":
                for key in [k for k, p in self.pods.items() if p["metadata"]["labels"].get("job-name") == name]:
                    del self.pods[key]
            return 200, _status(200, "", "") | {"status": "Success"}, "application/json"
        return 405, _status(405, "MethodNotAllowed", method), "application/json"

    def _create(self, ns: str, body: Any) -> tuple[int, Any, str]:
        from kubernetes import client
        from pydantic import ValidationError

        try:
            client.V1Job.model_validate(body)
        except ValidationError as err:
            causes = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in err.errors()]
            return 422, _status(422, "Invalid", f"Job is invalid: {causes}", {"causes": causes}), "application/json"
        name = (body.get("metadata") or {}).get("name")
        if not name:
            return 422, _status(422, "Invalid", "Job is invalid: metadata.name: Required value"), "application/json"
        if body["metadata"].get("namespace", ns) != ns:
            return (
                400,
                _status(400, "BadRequest", "the namespace of the object does not match the request"),
                "application/json",
            )
        if (ns, name) in self.jobs:
            return (
                409,
                _status(
                    409,
                    "AlreadyExists",
                    f'jobs.batch "{name}" already exists',
                    {"name": name, "group": "batch", "kind": "jobs"},
                ),
                "application/json",
            )
        job = json.loads(json.dumps(body))
        uid = str(uuid.uuid4())
        job["metadata"].update({"namespace": ns, "uid": uid, "creationTimestamp": _now(), "resourceVersion": "1"})
        job["status"] = {}
        self.jobs[(ns, name)] = job
        self.scripts.setdefault(name, list(self.default_script))
        self.steps.setdefault(name, 0)
        template = job["spec"].get("template") or {}
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.update({"batch.kubernetes.io/job-name": name, "job-name": name, "controller-uid": uid})
        pod_name = f"{name}-{uid[:5]}"
        containers = template.get("spec", {}).get("containers") or []
        self.pods[(ns, pod_name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": ns,
                "labels": labels,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
            },
            "spec": template.get("spec"),
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": c.get("name", "c"),
                        "image": c.get("image", ""),
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                    }
                    for c in containers
                ],
            },
        }
        self._sync(ns, name)
        return 201, job, "application/json"

    def _advance(self, ns: str) -> None:
        for n, name in list(self.jobs):
            if n != ns:
                continue
            script = self.scripts.get(name, ["Succeeded"])
            current = script[min(self.steps.get(name, 0), len(script) - 1)]
            if current != self.paused_at:
                self.steps[name] = self.steps.get(name, 0) + 1
            self._sync(ns, name)

    def _sync(self, ns: str, name: str) -> None:
        """The pod's phase from the script, and the Job's status from its pod (the controller's part)."""
        script = self.scripts.get(name, ["Succeeded"])
        phase = script[min(self.steps.get(name, 0), len(script) - 1)]
        job = self.jobs[(ns, name)]
        pods = [p for p in self.pods.values() if p["metadata"]["labels"].get("job-name") == name]
        for pod in pods:  # DeadlineExceeded: the controller kills the pod and fails the Job
            pod["status"]["phase"] = "Failed" if phase == "DeadlineExceeded" else phase
            for cs in pod["status"]["containerStatuses"]:
                if phase == "Running":
                    cs.update(ready=True, state={"running": {"startedAt": _now()}})
                elif phase in ("Succeeded", "Failed", "DeadlineExceeded"):
                    code = 0 if phase == "Succeeded" else 1
                    cs.update(
                        ready=False,
                        state={
                            "terminated": {
                                "exitCode": code,
                                "reason": "Completed" if not code else "Error",
                                "finishedAt": _now(),
                            }
                        },
                    )
        status: dict[str, Any] = {"startTime": job["metadata"]["creationTimestamp"]}
        if phase in ("Pending", "Running"):
            status.update(active=1, ready=1 if phase == "Running" else 0)
        elif phase == "Succeeded":
            status.update(
                succeeded=1,
                completionTime=_now(),
                conditions=[{"type": "Complete", "status": "True", "lastTransitionTime": _now()}],
            )
        elif phase == "DeadlineExceeded":
            status.update(
                failed=1,
                conditions=[
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "DeadlineExceeded",
                        "message": "Job was active longer than specified deadline",
                        "lastTransitionTime": _now(),
                    }
                ],
            )
        else:
            status.update(
                failed=1,
                conditions=[
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": self.reasons.get(name, "Job has reached the specified backoff limit"),
                        "lastTransitionTime": _now(),
                    }
                ],
            )
        job["status"] = status

    def _page(self, kind: str, api_version: str, items: list, query: dict) -> dict:
        """One page of a list: ``continue`` is the offset of the next page in this list's snapshot."""
        token = query.get("continue")
        if token:
            snapshot, offset = self._snapshots[token]
        else:
            snapshot, offset = json.loads(json.dumps(items)), 0
        limit = int(query.get("limit") or 0) or len(snapshot) or 1
        page, rest = snapshot[offset : offset + limit], snapshot[offset + limit :]
        metadata: dict = {"resourceVersion": "1"}
        if rest:
            next_token = uuid.uuid4().hex
            self._snapshots[next_token] = (snapshot, offset + limit)
            metadata |= {"continue": next_token, "remainingItemCount": len(rest)}
        return {"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": page}

    def _pods(self, method: str, ns: str, name: str | None, rest: list[str], query: dict) -> tuple[int, Any, str]:
        if method != "GET":
            return 405, _status(405, "MethodNotAllowed", method), "application/json"
        if name is None:
            items = [
                p
                for (n, _), p in sorted(self.pods.items())
                if n == ns and matches(query.get("labelSelector", ""), p["metadata"].get("labels") or {})
            ]
            return 200, self._page("PodList", "v1", items, query), "application/json"
        pod = self.pods.get((ns, name))
        if pod is None:
            return 404, _status(404, "NotFound", f'pods "{name}" not found'), "application/json"
        if rest == ["log"]:
            if pod["status"]["phase"] == "Pending":
                return (
                    400,
                    _status(400, "BadRequest", f'container in pod "{name}" is waiting to start'),
                    "application/json",
                )
            return 200, ("\n".join(self.log_lines) + "\n").encode(), "text/plain"
        return 200, pod, "application/json"
