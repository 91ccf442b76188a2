"""Registry credentials for a push are current at the push: an ADC access token lives about an hour
(the token endpoint says so in ``expires_in``), so a token read before a long build, or when a
long-lived agent started, must be refreshed before the push. Against a fake OAuth 2 token endpoint
that hands out a new token per request, with the lifetimes the test chooses."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from launch_jupyter.builders import BuildTarget
from launch_jupyter.builders.registry import RegistryAuth, registry_auth


class _RotatingTokens(http.server.BaseHTTPRequestHandler):
    """A token endpoint (RFC 6749 §5.1 answer: access_token, expires_in, token_type) that issues
    ``ya29.token-N`` for the N-th request, living ``lifetimes[N-1]`` seconds (the last one after)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server = self.server
        with server.lock:
            server.issued += 1
            n = server.issued
        lifetime = server.lifetimes[min(n, len(server.lifetimes)) - 1]
        body = json.dumps({"access_token": f"ya29.token-{n}", "expires_in": lifetime, "token_type": "Bearer"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def tokens(tmp_path, monkeypatch):
    """ADC (a throwaway service-account key) whose token requests go to _RotatingTokens."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RotatingTokens)
    server.issued, server.lifetimes, server.lock = 0, [3600], threading.Lock()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    key = tmp_path / "adc.json"
    key.write_text(json.dumps({
        "type": "service_account", "project_id": "proj-1", "private_key_id": "k1", "private_key": pem,
        "client_email": "builder@proj-1.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": f"http://127.0.0.1:{server.server_port}/token",
    }))  # fmt: skip
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    yield server
    server.shutdown()
    server.server_close()


def test_a_token_that_has_run_out_is_refreshed_before_the_push(tokens):
    # The first token is what an hour-old one looks like by push time: 60 s left, inside
    # google-auth's refresh margin. The push must not carry it.
    tokens.lifetimes = [60, 3600]
    target = BuildTarget(
        "us-docker.pkg.dev/p/r/img", "us-docker.pkg.dev/p/r/img:abc", RegistryAuth("us-docker.pkg.dev")
    )
    before_build = target.auth()
    at_push = target.auth()
    assert before_build == {"username": "oauth2accesstoken", "password": "ya29.token-1"}
    assert at_push == {"username": "oauth2accesstoken", "password": "ya29.token-2"}
    assert tokens.issued == 2


def test_a_token_still_good_is_not_fetched_again(tokens):
    auth = registry_auth("europe-docker.pkg.dev")
    assert auth.config()["password"] == "ya29.token-1"
    assert registry_auth("europe-docker.pkg.dev") is auth  # one per registry in the process
    for _ in range(3):
        assert auth.config()["password"] == "ya29.token-1"
    assert tokens.issued == 1


def test_other_registries_get_no_google_token(tokens):
    assert RegistryAuth("127.0.0.1:5000").config() is None
    assert tokens.issued == 0
