"""Which registries Vertex AI can pull a job's image from: a Vertex AI policy, so it lives with the
Vertex runner (``core.images`` only parses references)."""

from __future__ import annotations

import ipaddress

from ...core.images import DOCKER_HUB, is_public_registry, parse_image

AR_ADVICE = "push to Artifact Registry (REGION-docker.pkg.dev/PROJECT/REPO) instead"


def is_artifact_registry(host: str) -> bool:
    """``REGION-docker.pkg.dev``: Artifact Registry, which Vertex AI pulls from with the job's identity."""
    return host.lower().endswith("-docker.pkg.dev")


def is_container_registry(host: str) -> bool:
    """``gcr.io`` and its regional hosts."""
    host = host.lower()
    return host == "gcr.io" or host.endswith(".gcr.io")


def is_unreachable_from_google(host: str) -> bool:
    """A registry host Vertex AI cannot reach at all: this machine, a private network, a
    single-label or ``.local``-style name."""
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 else host.strip("[]")
    if name == "localhost" or name.endswith((".local", ".internal", ".localdomain", ".lan")):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return "." not in name
    return ip.is_private or ip.is_loopback or ip.is_link_local


def vertex_pull_problem(uri: str) -> tuple[str, str] | None:
    """Why Vertex AI may not pull ``uri`` (an image or a repository), as ``(severity, message)``:
    an unreachable registry is an ``error``; anything but Artifact Registry is a ``warning``
    saying what can go wrong; None for Artifact Registry."""
    registry, _, _ = parse_image(uri)
    if is_artifact_registry(registry):
        return None
    if is_container_registry(registry):
        # Container Registry was shut down in 2025 (cloud.google.com/artifact-registry/docs/
        # transition/transition-from-gcr): gcr.io paths are served by Artifact Registry only.
        return "warning", (
            f"{uri!r}: Container Registry is shut down; gcr.io is served only by an Artifact "
            "Registry gcr.io repository in that project (set one up, or use "
            "REGION-docker.pkg.dev)"
        )
    if registry == DOCKER_HUB:
        # docs.docker.com/docker-hub/usage/: unauthenticated pulls are limited per IP address, and
        # Vertex AI pulls without Docker Hub credentials from Google's shared addresses.
        return "warning", (
            f"{uri!r} is on Docker Hub, which limits anonymous pulls (100 per 6 hours per "
            "IP address); Vertex AI pulls anonymously, so a job may fail to start. Prefer a "
            "copy in Artifact Registry (or an Artifact Registry remote repository)"
        )
    if is_unreachable_from_google(registry):
        return "error", (
            f"{uri!r} is in a private registry ({registry}) that Vertex AI cannot reach "
            f"(it pulls only from Artifact Registry or public registries); {AR_ADVICE}"
        )
    if is_public_registry(registry):
        return "warning", (
            f"{uri!r} is outside Artifact Registry and Docker Hub; Vertex AI can pull it only "
            "while it is public and the registry answers anonymous pulls"
        )
    return "warning", (
        f"{uri!r} is outside Google's registries; Vertex AI can pull it only if it is "
        "public. Prefer Artifact Registry (REGION-docker.pkg.dev)"
    )
