"""A fake Google Cloud Storage JSON API for offline tests (``STORAGE_EMULATOR_HOST=http://…``).

Enough of the real protocol for the real ``google-cloud-storage`` client: bucket get, multipart and
resumable uploads, object metadata and ``alt=media`` downloads, and objects.list by prefix in pages. Objects live in memory; every
request is recorded as ``(method, path)``.
"""

from __future__ import annotations

import base64
import email
import hashlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlparse


class GcsState:
    """Buckets' objects (``(bucket, name) -> bytes``) and the requests seen."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.uploads: dict[str, dict] = {}  # resumable upload id -> {"bucket", "name", "data"}
        self.updated: dict[tuple[str, str], str] = {}  # RFC 3339 "updated" of an object, when a test sets one
        self.lock = threading.Lock()

    def resource(self, bucket: str, name: str) -> dict:
        data = self.objects[(bucket, name)]
        return {
            "kind": "storage#object", "bucket": bucket, "name": name, "size": str(len(data)),
            "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
            "generation": "1", "contentType": "application/octet-stream",
            "id": f"{bucket}/{name}/1", "selfLink": f"/storage/v1/b/{bucket}/o/{quote(name, safe='')}",
            "updated": self.updated.get((bucket, name), "2026-12-01T00:00:00.000Z"),
        }  # fmt: skip

    def list_page(self, bucket: str, query: dict) -> dict:
        """objects.list (https://cloud.google.com/storage/docs/json_api/v1/objects/list): the bucket's
        objects whose names start with ``prefix``, "in lexicographical order by name"; at most
        ``maxResults`` per page, and never more than 1,000 ("the service uses this parameter or 1,000
        items, whichever is smaller"); ``nextPageToken`` while more remain."""
        prefix = (query.get("prefix") or [""])[0]
        size = min(int((query.get("maxResults") or ["1000"])[0]), 1000)
        start = (query.get("pageToken") or [""])[0]
        names = sorted(n for b, n in self.objects if b == bucket and n.startswith(prefix) and n > start)
        page = {"kind": "storage#objects", "items": [self.resource(bucket, n) for n in names[:size]]}
        if len(names) > size:
            page["nextPageToken"] = names[size - 1]
        return page


class _Handler(BaseHTTPRequestHandler):
    state: GcsState

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict | bytes | None = None, headers: dict | None = None) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _media(self, data: bytes) -> None:
        """An object's bytes; a ``Range: bytes=A-B`` request gets that part as 206 Partial Content
        with ``Content-Range`` (https://cloud.google.com/storage/docs/json_api/v1/objects/get: "Range"
        header for partial downloads; RFC 9110 §14). The client's ``Blob.open("rb")`` reads so."""
        wanted = self.headers.get("Range") or ""
        if not wanted.startswith("bytes="):
            return self._send(200, data)
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        start = int(first or 0)
        end = min(int(last), len(data) - 1) if last else len(data) - 1
        if start >= len(data):
            return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        self._send(206, data[start : end + 1], {"Content-Range": f"bytes {start}-{end}/{len(data)}"})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _not_found(self) -> None:
        self._send(404, {"error": {"code": 404, "message": "No such object", "errors": []}})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlparse(self.path)
        self.state.requests.append(("GET", url.path))
        parts = url.path.split("/")
        if url.path.startswith("/download/storage/v1/b/") and len(parts) >= 8:
            key = (parts[5], unquote("/".join(parts[7:])))
            return self._media(self.state.objects[key]) if key in self.state.objects else self._not_found()
        if url.path.startswith("/storage/v1/b/") and len(parts) == 5:
            return self._send(200, {"kind": "storage#bucket", "name": parts[4], "id": parts[4]})
        if url.path.startswith("/storage/v1/b/") and len(parts) == 6 and parts[5] == "o":
            return self._send(200, self.state.list_page(parts[4], parse_qs(url.query)))
        if url.path.startswith("/storage/v1/b/") and len(parts) >= 7:
            key = (parts[4], unquote("/".join(parts[6:])))
            if key not in self.state.objects:
                return self._not_found()
            if parse_qs(url.query).get("alt") == ["media"]:
                return self._media(self.state.objects[key])
            return self._send(200, self.state.resource(*key))
        self._not_found()

    def do_POST(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        self.state.requests.append(("POST", url.path))
        query = parse_qs(url.query)
        bucket = url.path.split("/")[5] if url.path.startswith("/upload/storage/v1/b/") else ""
        kind = (query.get("uploadType") or [""])[0]
        body = self._body()
        if kind == "multipart":
            message = email.message_from_bytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
            )
            meta_part, data_part = message.get_payload()
            meta = json.loads(meta_part.get_payload(decode=True))
            name = meta.get("name") or (query.get("name") or [""])[0]
            self.state.objects[(bucket, name)] = data_part.get_payload(decode=True)
            return self._send(200, self.state.resource(bucket, name))
        if kind == "resumable":
            meta = json.loads(body or b"{}")
            name = meta.get("name") or (query.get("name") or [""])[0]
            upload = uuid.uuid4().hex
            self.state.uploads[upload] = {"bucket": bucket, "name": name, "data": b""}
            host = self.headers.get("Host")
            location = f"http://{host}/upload/storage/v1/b/{bucket}/o?uploadType=resumable&upload_id={upload}"
            return self._send(200, {}, {"Location": location})
        self._send(400, {"error": {"code": 400, "message": f"unsupported upload {kind!r}"}})

    def do_PUT(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        self.state.requests.append(("PUT", url.path))
        upload = self.state.uploads.get((parse_qs(url.query).get("upload_id") or [""])[0])
        if upload is None:
            return self._not_found()
        upload["data"] += self._body()
        total = (self.headers.get("Content-Range") or "").rsplit("/", 1)[-1]
        if total == "*":
            return self._send(308, b"", {"Range": f"bytes=0-{len(upload['data']) - 1}"})
        self.state.objects[(upload["bucket"], upload["name"])] = upload["data"]
        self._send(200, self.state.resource(upload["bucket"], upload["name"]))


def start(state: GcsState | None = None) -> tuple[ThreadingHTTPServer, GcsState]:
    """Serve on 127.0.0.1 (a free port) in a daemon thread; ``server.server_port`` is the port."""
    state = state or GcsState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state
