"""A fake Artifact Registry host (``us-docker.pkg.dev``) behind an HTTPS proxy, for offline tests.

Clients reach it as they reach the real one: an ``https://us-docker.pkg.dev/...`` URL through the
proxy named by ``https_proxy`` (an HTTP ``CONNECT`` tunnel), TLS verified against this fake's own
throwaway CA (``SSL_CERT_FILE``). Behind the tunnel it answers the Docker registry token protocol
as Artifact Registry does (distribution spec, docs.docker.com/registry/spec/auth/token/;
cloud.google.com/artifact-registry/docs/docker/authentication, "oauth2accesstoken"):

- ``HEAD /v2/<repo>/manifests/<ref>`` without a token: 401 and a ``WWW-Authenticate: Bearer``
  challenge naming ``realm``, ``service`` and ``scope``;
- ``GET /v2/token`` with Basic ``oauth2accesstoken:<ADC access token>``: a registry token, for
  the ADC token this fake was given only;
- ``HEAD`` with that token: 200 for a manifest in ``present``, else 404.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

HOST = "us-docker.pkg.dev"


@dataclass
class RegistryState:
    adc_token: str  # the Google access token the token service accepts
    present: set[str] = field(default_factory=set)  # "repo:ref" manifests that exist
    heads: list[str] = field(default_factory=list)  # "repo:ref" of each authorised HEAD
    registry_token: str = field(default_factory=lambda: f"ar-{uuid.uuid4().hex}")
    ca_file: Path | None = None
    proxy_url: str = ""


def _write_certs(folder: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = _dt.datetime.now(_dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake registry CA")])

    def cert(subject, public_key, ca: bool, extra=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(hours=1))
            .not_valid_after(now + _dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        for ext in extra:
            builder = builder.add_extension(ext, critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    ca = cert(ca_name, ca_key.public_key(), True)
    leaf = cert(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]),
        key.public_key(),
        False,
        [x509.SubjectAlternativeName([x509.DNSName(HOST)])],
    )
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: RegistryState
    tls: ssl.SSLContext

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, headers: dict | None = None, body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def do_CONNECT(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split(":")[0] != HOST:
            return self._answer(502)  # this proxy reaches the fake registry only
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.connection = self.tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb")
        self.close_connection = False  # the tunnel's requests follow (http.client sends CONNECT as HTTP/1.0)

    def do_HEAD(self) -> None:  # noqa: N802
        parts = urlparse(self.path).path.split("/manifests/")
        if len(parts) != 2 or not parts[0].startswith("/v2/"):
            return self._answer(404)
        repo, ref = parts[0][4:], parts[1]
        if self.headers.get("Authorization") != f"Bearer {self.state.registry_token}":
            challenge = f'Bearer realm="https://{HOST}/v2/token",service="{HOST}",scope="repository:{repo}:pull"'
            return self._answer(401, {"WWW-Authenticate": challenge})
        self.state.heads.append(f"{repo}:{ref}")
        self._answer(200 if f"{repo}:{ref}" in self.state.present else 404)

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        if url.path != "/v2/token":
            return self._answer(404)
        basic = "Basic " + base64.b64encode(f"oauth2accesstoken:{self.state.adc_token}".encode()).decode()
        if self.headers.get("Authorization") != basic or not parse_qs(url.query).get("scope"):
            return self._answer(401, {"Content-Type": "application/json"}, b'{"errors": [{"code": "UNAUTHORIZED"}]}')
        body = json.dumps({"token": self.state.registry_token}).encode()
        self._answer(200, {"Content-Type": "application/json"}, body)


def start(folder: Path, adc_token: str) -> tuple[ThreadingHTTPServer, RegistryState]:
    """Serve the proxy on 127.0.0.1 (a free port) in a daemon thread. Point clients at it with
    ``https_proxy=state.proxy_url`` and ``SSL_CERT_FILE=state.ca_file``."""
    ca_file, cert_file, key_file = _write_certs(folder)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    state = RegistryState(adc_token=adc_token, ca_file=ca_file)
    handler = type("Handler", (_Handler,), {"state": state, "tls": tls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.proxy_url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state
