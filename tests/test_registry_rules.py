"""Registry rules: image references, the destination's tag, which registries Vertex AI can pull from,
the manifest HEAD (with the Bearer token challenge) and registry credentials from ADC."""

from __future__ import annotations

import base64
import http.server
import logging
import threading

import pytest

from launch_jupyter.builders.registry import (
    check_destination,
    google_auth_config,
    image_exists,
    is_google_registry,
    is_public_registry,
    parse_image,
)
from launch_jupyter.core.errors import BuildError, ConfigError
from launch_jupyter.runners.vertex._images import vertex_pull_problem


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("us-docker.pkg.dev/proj/repo/img:abc123", ("us-docker.pkg.dev", "proj/repo/img", "abc123")),
        ("127.0.0.1:5000/proj/img", ("127.0.0.1:5000", "proj/img", None)),
        ("localhost/img:v1", ("localhost", "img", "v1")),
        ("python:3.11-slim", ("docker.io", "library/python", "3.11-slim")),
        ("jupyter/base-notebook", ("docker.io", "jupyter/base-notebook", None)),
        ("gcr.io/p/i@sha256:" + "a" * 64, ("gcr.io", "p/i", "sha256:" + "a" * 64)),
    ],
)
def test_parse_image(ref, expected):
    assert parse_image(ref) == expected


@pytest.mark.parametrize("ref", ["", "has space/img", "Registry.io/Upper/Case"])
def test_parse_image_refuses_what_is_not_a_reference(ref):
    with pytest.raises(ConfigError):
        parse_image(ref)


@pytest.mark.parametrize("destination", ["us-docker.pkg.dev/p/r/img:latest", "127.0.0.1:5000/p/img@sha256:" + "b" * 64])
def test_a_destination_must_not_carry_a_tag(destination):
    with pytest.raises(ConfigError) as err:
        check_destination(destination)
    assert err.value.path == "builder.destination"
    assert "must not carry a tag; the tag is the content hash" in str(err.value)


def test_a_destination_with_a_port_but_no_tag_is_fine():
    assert check_destination("127.0.0.1:5000/proj/img") == "127.0.0.1:5000/proj/img"


def test_google_and_public_registries():
    assert is_google_registry("europe-west4-docker.pkg.dev")
    assert is_google_registry("gcr.io") and is_google_registry("eu.gcr.io")
    assert not is_google_registry("docker.pkg.dev.example.com")
    assert is_public_registry("docker.io") and is_public_registry("ghcr.io")
    assert not is_public_registry("registry.example.com")


def test_vertex_pulls_from_artifact_registry_and_warns_for_everything_else():
    # The policy is the Vertex runner's (issue 12 item 18), not core's.
    assert vertex_pull_problem("us-docker.pkg.dev/p/r/img:1") is None
    severity, gcr = vertex_pull_problem("gcr.io/p/img")
    assert severity == "warning" and "served only by an Artifact Registry gcr.io repository" in gcr
    severity, hub = vertex_pull_problem("python:3.11")
    assert severity == "warning" and "100 per 6 hours" in hub  # Docker Hub's anonymous pull limit
    severity, quay = vertex_pull_problem("quay.io/org/img")
    assert severity == "warning" and "only while it is public" in quay
    severity, elsewhere = vertex_pull_problem("registry.example.com/team/img:1")
    assert severity == "warning"
    assert "outside Google's registries; Vertex AI can pull it only if it is public" in elsewhere
    assert "Artifact Registry" in elsewhere
    severity, local = vertex_pull_problem("127.0.0.1:5000/p/img")
    assert severity == "error" and "private registry (127.0.0.1:5000) that Vertex AI cannot reach" in local
    assert vertex_pull_problem("registry.internal/team/img:1")[0] == "error"


class _TokenRegistry(http.server.BaseHTTPRequestHandler):
    """A registry that wants a Bearer token, and the token service that hands one out for
    ``oauth2accesstoken:<ADC token>`` (what Artifact Registry does)."""

    def do_HEAD(self):  # noqa: N802
        self.server.heads.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") == "Bearer registry-token-1":
            self.send_response(200 if self.path.endswith("/manifests/present") else 404)
            self.end_headers()
            return
        port = self.server.server_port
        self.send_response(401)
        self.send_header(
            "WWW-Authenticate",
            f'Bearer realm="http://127.0.0.1:{port}/token",service="fake",scope="repository:p/img:pull"',
        )
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self.server.token_requests.append((self.path, self.headers.get("Authorization")))
        expected = "Basic " + base64.b64encode(f"oauth2accesstoken:{self.server.adc}".encode()).decode()
        ok = self.headers.get("Authorization") == expected and "scope=repository%3Ap%2Fimg%3Apull" in self.path
        body = b'{"token": "registry-token-1"}' if ok else b'{"errors": [{"code": "UNAUTHORIZED"}]}'
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def token_registry(adc_token):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenRegistry)
    server.heads, server.token_requests, server.adc = [], [], adc_token
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_adc_gives_the_registry_credentials_for_google_registries(adc_token):
    assert google_auth_config("us-docker.pkg.dev") == {"username": "oauth2accesstoken", "password": adc_token}
    assert google_auth_config("127.0.0.1:5000") is None


def test_without_adc_the_error_says_how_to_log_in(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with pytest.raises(BuildError, match="gcloud auth application-default login"):
        google_auth_config("europe-docker.pkg.dev")


def test_head_answers_the_bearer_challenge_with_the_adc_token(token_registry, adc_token, caplog):
    caplog.set_level(logging.DEBUG)
    auth = google_auth_config("us-docker.pkg.dev")
    address = f"127.0.0.1:{token_registry.server_port}"
    assert image_exists(f"{address}/p/img:present", auth) is True
    assert token_registry.heads == [None, "Bearer registry-token-1"]  # one HEAD, repeated with the token
    assert image_exists(f"{address}/p/img:absent", auth) is False
    assert all(adc_token not in record.getMessage() for record in caplog.records)


def test_a_refused_token_is_a_build_error_naming_the_registry(token_registry):
    address = f"127.0.0.1:{token_registry.server_port}"
    with pytest.raises(BuildError, match="refused access .*check the credentials"):
        image_exists(f"{address}/p/img:present", {"username": "oauth2accesstoken", "password": "wrong"})


def test_an_unreachable_registry_is_a_build_error(unused_port):
    with pytest.raises(BuildError, match=f"cannot reach registry 127.0.0.1:{unused_port}"):
        image_exists(f"127.0.0.1:{unused_port}/p/img:t")


@pytest.fixture
def unused_port() -> int:
    from tests.fixtures.docker import free_port

    return free_port()
