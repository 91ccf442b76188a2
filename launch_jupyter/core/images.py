"""Container image references and registries: parsing and naming registries. Pure functions (no
network): the builders and the runners share them. Which registries a target can pull from is
the target's policy (Vertex AI: runners/vertex/_images.py)."""

from __future__ import annotations

import ipaddress
import re

from .errors import ConfigError

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
# Registries that serve public images to anyone, without credentials.
_PUBLIC = _HUB_ALIASES | {
    "quay.io", "ghcr.io", "public.ecr.aws", "mcr.microsoft.com", "registry.k8s.io", "nvcr.io",
}  # fmt: skip
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def parse_image(ref: str) -> tuple[str, str, str | None]:
    """``host[:port]/path/name[:tag|@digest]`` → ``(registry, repository, tag or digest or None)``.

    A first component without a dot, a colon or ``localhost`` is a Docker Hub path, as in docker."""
    ref = ref.strip()
    if not ref or any(c.isspace() for c in ref):
        raise ConfigError(f"{ref!r} is not an image reference (expected host/path/name[:tag])")
    reference = None
    if "@" in ref:
        ref, reference = ref.split("@", 1)
    else:
        last = ref.rsplit("/", 1)[-1]
        if ":" in last:
            ref, reference = ref.rsplit(":", 1)
            if not _TAG.match(reference):
                raise ConfigError(f"{reference!r} is not a valid image tag in {ref}:{reference}")
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, ref
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"
    if not repository or repository != repository.lower() or "//" in repository:
        raise ConfigError(f"{ref!r}: a repository name must be lowercase, e.g. host/project/image")
    return registry, repository, reference


def check_destination(destination: str) -> str:
    """The builder's destination repository, refused when it carries a tag or digest (ours is the hash)."""
    _, _, reference = parse_image(destination)
    if reference is not None:
        raise ConfigError(
            f"{destination!r} must not carry a tag; the tag is the content hash "
            f"(use {destination.split('@')[0].rsplit(':', 1)[0]!r})",
            path="builder.destination",
        )
    return destination.strip().rstrip("/")


def is_loopback(host: str) -> bool:
    """Whether ``host[:port]`` is this machine (plain http is fine there)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_google_registry(host: str) -> bool:
    """Artifact Registry (``*-docker.pkg.dev``) or Container Registry (``gcr.io`` and its regions)."""
    host = host.lower()
    return host.endswith("-docker.pkg.dev") or host == "gcr.io" or host.endswith(".gcr.io")


def is_public_registry(host: str) -> bool:
    """A registry known to serve public images without credentials (Docker Hub, quay.io, ghcr.io…)."""
    return host.lower() in _PUBLIC


# Amazon ECR private registries: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]
# (docs.aws.amazon.com/AmazonECR/latest/userguide/Registries.html; the .cn suffix for China regions).
_ECR = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


def is_ecr_registry(host: str) -> bool:
    """An Amazon ECR private registry host (``123456789012.dkr.ecr.us-east-1.amazonaws.com``)."""
    return _ECR.match(host.lower()) is not None


def ecr_region(host: str) -> str | None:
    """The AWS region of an ECR registry host, None for any other host."""
    match = _ECR.match(host.lower())
    return match.group(2) if match else None
