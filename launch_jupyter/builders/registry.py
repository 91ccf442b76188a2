"""Container registries: image references, the manifest HEAD that lets a build be skipped
(and registry credentials from Application Default Credentials).

Credentials built here are handed to the docker SDK or to one HTTP request; they are never logged.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..core.errors import BuildError, ConfigError
from ..core.images import (  # noqa: F401  (re-exported: the builders' names for these)
    DOCKER_HUB,
    check_destination,
    is_google_registry,
    is_loopback,
    is_public_registry,
    parse_image,
)

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])  # fmt: skip
TIMEOUT = 30.0


class RegistryAuth:
    """Credentials for one registry, current whenever they are asked for.

    For a Google registry: Application Default Credentials, found once, and their access token
    refreshed whenever it has expired or is about to (google-auth's ``valid`` already allows for
    its refresh margin). So a push right after a long build, or by an agent that has run for
    hours, never carries a token that ran out (ADC tokens live about an hour). Amazon ECR: a token
    from ``ecr.get_authorization_token``, asked for each time. Any other registry: None (the engine's
    own credentials, if any). Never log what ``config`` returns."""

    def __init__(self, registry: str):
        self.registry = registry
        self._credentials: Any = None  # google.auth credentials, made on first use
        self._lock = threading.Lock()

    def config(self) -> dict | None:
        """``{"username": "oauth2accesstoken", "password": <current ADC token>}``, or None."""
        if not is_google_registry(self.registry):
            # Amazon ECR: a fresh token from boto3; any other registry: None.
            from .docker import ecr_auth_config

            return ecr_auth_config(self.registry)
        # google.auth is only needed when a Google registry is in play.
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests

        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials, _ = google.auth.default(
                        scopes=["https://www.googleapis.com/auth/cloud-platform"]
                    )
                if not self._credentials.valid:
                    self._credentials.refresh(google.auth.transport.requests.Request())
            except google.auth.exceptions.GoogleAuthError as err:
                raise BuildError(
                    f"no usable Application Default Credentials for {self.registry} ({type(err).__name__}); "
                    "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
                ) from None
            return {"username": "oauth2accesstoken", "password": self._credentials.token}


_auths: dict[tuple[str, str], RegistryAuth] = {}
_auths_lock = threading.Lock()


def registry_auth(registry: str) -> RegistryAuth:
    """The process's one RegistryAuth for ``registry`` (its token is refreshed only when stale),
    per ADC key file (a changed GOOGLE_APPLICATION_CREDENTIALS is other credentials)."""
    key = (registry, os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", ""))
    with _auths_lock:
        if key not in _auths:
            _auths[key] = RegistryAuth(registry)
        return _auths[key]


def google_auth_config(registry: str) -> dict | None:
    """``{"username": "oauth2accesstoken", "password": <ADC access token>}`` for a Google registry,
    None for any other: a fresh RegistryAuth's ``config``. Never log it."""
    return RegistryAuth(registry).config()


def manifest_url(uri: str) -> str:
    """The ``/v2/<repository>/manifests/<tag>`` URL for ``uri`` (http on loopback, https elsewhere)."""
    registry, repository, reference = parse_image(uri)
    if reference is None:
        raise ConfigError(f"{uri!r} has no tag or digest to look up")
    host = "registry-1.docker.io" if registry == DOCKER_HUB else registry
    scheme = "http" if is_loopback(registry) else "https"
    return f"{scheme}://{host}/v2/{repository}/manifests/{reference}"


def image_exists(uri: str, auth: dict | None = None) -> bool:
    """Whether ``uri`` (with a tag or digest) is in its registry: one manifest HEAD request.

    A ``401`` Bearer challenge is answered with a registry token fetched with ``auth``
    (``username``/``password``), or for a Google registry with an ADC access token, then the HEAD is
    sent once more. 404 → False; any other failure raises BuildError naming the registry."""
    url = manifest_url(uri)
    status, headers = _head(url, {})
    if status == 401:
        challenge = headers.get("WWW-Authenticate", "")
        if auth is None:
            auth = google_auth_config(parse_image(uri)[0])
        if _parse_challenge(challenge)[0] == "basic" and auth and auth.get("username"):
            status, headers = _head(url, {"Authorization": _basic(auth)})  # e.g. Amazon ECR
        else:
            token = _bearer_token(challenge, auth, uri)
            status, headers = _head(url, {"Authorization": f"Bearer {token}"})
    if status == 200:
        return True
    if status == 404:
        return False
    hint = " (check the credentials for this registry)" if status in (401, 403) else ""
    raise BuildError(f"registry {parse_image(uri)[0]} answered HTTP {status} for {uri}{hint}")


def _head(url: str, extra: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES, **extra})
    try:
        with _opener(url).open(request, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)
    except (urllib.error.URLError, OSError) as err:
        host = urllib.parse.urlsplit(url).netloc
        raise BuildError(f"cannot reach registry {host}: {getattr(err, 'reason', err)}") from None


def _opener(url: str) -> urllib.request.OpenerDirector:
    # A registry on this machine is never reached through the environment's proxy.
    if is_loopback(urllib.parse.urlsplit(url).netloc):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _parse_challenge(challenge: str) -> tuple[str, dict]:
    scheme, _, params = challenge.partition(" ")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
    return scheme.lower(), fields


def _basic(auth: dict) -> str:
    pair = f"{auth['username']}:{auth.get('password', '')}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def _bearer_token(challenge: str, auth: dict | None, uri: str) -> str:
    """Answer a registry's Bearer challenge (the Docker token protocol) and return the token."""
    scheme, fields = _parse_challenge(challenge)
    if scheme != "bearer" or "realm" not in fields:
        raise BuildError(f"registry for {uri} asks for {scheme or 'unknown'} authentication, not a token")
    query = {k: v for k, v in fields.items() if k in ("service", "scope")}
    url = fields["realm"] + ("?" + urllib.parse.urlencode(query) if query else "")
    headers = {}
    if auth and auth.get("username"):
        headers["Authorization"] = _basic(auth)
    try:
        with _opener(url).open(urllib.request.Request(url, headers=headers), timeout=TIMEOUT) as resp:
            body = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        raise BuildError(
            f"the registry's token service refused access to {uri} (HTTP {err.code}); "
            "check the credentials for this registry"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise BuildError(f"cannot get a registry token for {uri}: {err}") from None
    token = body.get("token") or body.get("access_token")
    if not token:
        raise BuildError(f"the registry's token service gave no token for {uri}")
    return token
