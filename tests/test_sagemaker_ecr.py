"""Amazon ECR as the builder's destination: the docker builder's credentials come from boto3's
``ecr.get_authorization_token`` (moto_server answers it), and the manifest HEAD that skips a build
answers ECR's Basic challenge with them."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from launch_jupyter.builders.docker import ecr_auth_config
from launch_jupyter.builders.registry import image_exists

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def test_ecr_credentials_come_from_get_authorization_token(moto):
    auth = ecr_auth_config(ECR)
    assert auth is not None and auth["username"] == "AWS" and auth["password"]
    assert ecr_auth_config("us-docker.pkg.dev") is None
    assert ecr_auth_config("localhost:5000") is None


def test_a_basic_challenge_is_answered_with_the_credentials():
    """ECR answers an anonymous /v2/ request with 401 and ``WWW-Authenticate: Basic`` (the registry
    API's auth scheme for ECR, docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html)."""
    want = "Basic " + base64.b64encode(b"AWS:secret-token").decode()
    seen: list[str] = []

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            header = self.headers.get("Authorization", "")
            seen.append(header)
            if header != want:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="https://ecr.example/",service="ecr.amazonaws.com"')
            else:
                self.send_response(200 if self.path.endswith("/manifests/abc") else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        auth = {"username": "AWS", "password": "secret-token"}
        assert image_exists(f"{host}/train:abc", auth) is True
        assert image_exists(f"{host}/train:other", auth) is False
        assert seen == ["", want, "", want]
    finally:
        server.shutdown()
        server.server_close()


def test_registry_auth_for_an_ecr_host_is_the_ecr_token(moto):
    """The wiring the builders use (RegistryAuth → ecr_auth_config → get_authorization_token), not
    only the helper: moto's token decodes to AWS:<password>."""
    from launch_jupyter.builders.docker import ecr_auth_config
    from launch_jupyter.builders.registry import RegistryAuth, registry_auth
    from tests.fixtures.aws import boto

    token = boto("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    want = dict(zip(("username", "password"), base64.b64decode(token).decode().split(":", 1)))
    assert RegistryAuth(ECR).config() == want
    assert registry_auth(ECR).config() == want
    assert ecr_auth_config(ECR) == want
    assert RegistryAuth("localhost:5000").config() is None  # neither Google nor ECR: the engine's own
