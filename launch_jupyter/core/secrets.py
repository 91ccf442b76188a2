"""What a credential looks like: PEM private keys, Google key files, common API token formats.

One table used by the build context (file contents), queue configs (values) and ``run show``
(masking). No I/O here: callers pass text or bytes. Each rule has a literal anchor that must be
present before its regular expression runs, so scanning a large file costs a few ``in`` checks.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One credential-looking match: what kind, and the line it is on (1-based)."""

    kind: str
    line: int


# (kind, anchors (any must occur), pattern). Formats from the vendors' own documentation of
# their token prefixes (GitHub "About authentication", AWS IAM identifiers, Slack, Google API
# keys, OpenAI/Anthropic/Hugging Face/npm/PyPI/Stripe/GitLab token docs).
_RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("PEM private key", ("PRIVATE KEY",), r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    (
        "Google service-account key",
        ("service_account",),
        r"""["']?type["']?\s*[:=]\s*["']?service_account\b[\s\S]{0,4000}?private_key""",
    ),
    (
        "Google user credential (refresh token)",
        ("refresh_token",),
        r"""["']?refresh_token["']?\s*[:=]\s*["']?1//[0-9A-Za-z_-]{20,}""",
    ),
    ("Google OAuth client secret", ("GOCSPX-",), r"GOCSPX-[0-9A-Za-z_-]{20,}"),
    ("Google API key", ("AIza",), r"\bAIza[0-9A-Za-z_-]{35}"),
    (
        "GitHub token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"\b(?:gh[pousr]_[0-9A-Za-z]{36,}|github_pat_[0-9A-Za-z_]{22,})",
    ),
    ("GitLab token", ("glpat-",), r"\bglpat-[0-9A-Za-z_-]{20,}"),
    ("AWS access key id", ("AKIA", "ASIA"), r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    (
        "AWS secret access key",
        ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        r"""(?i)aws_secret_access_key["']?\s*[:=]\s*["']?[0-9A-Za-z/+=]{40}""",
    ),
    ("Slack token", ("xox",), r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    ("OpenAI/Anthropic API key", ("sk-",), r"\bsk-(?:ant-|proj-|svcacct-|admin-)?[0-9A-Za-z_-]{32,}"),
    ("Stripe secret key", ("sk_live_", "rk_live_"), r"\b[rs]k_live_[0-9A-Za-z]{24,}"),
    ("Hugging Face token", ("hf_",), r"\bhf_[0-9A-Za-z]{34,}"),
    ("npm token", ("npm_",), r"\bnpm_[0-9A-Za-z]{36}\b"),
    ("PyPI token", ("pypi-AgE",), r"\bpypi-AgE[0-9A-Za-z_-]{50,}"),
    (
        "W&B API key",
        ("wandb_api_key", "WANDB_API_KEY", "api.wandb.ai"),
        r"""(?i)(?:wandb_api_key["']?\s*[:=]\s*["']?|api\.wandb\.ai\s+login\s+\S+\s+password\s+)[0-9a-f]{40}\b""",
    ),
    ("Docker registry auth", ('"auths"',), r'"auths"\s*:\s*\{[\s\S]{0,2000}?"auth"\s*:\s*"[0-9A-Za-z+/=]{8,}"'),
)
_COMPILED = tuple((kind, anchors, re.compile(pattern)) for kind, anchors, pattern in _RULES)


def _base64_shifts(marker: bytes) -> tuple[str, ...]:
    """``marker`` as it appears inside base64 text at each of the three byte alignments."""
    shifts = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + marker + b"\0\0").decode()
        start = (pad * 8 + 5) // 6  # characters that mix in the padding bytes are not the marker's
        end = ((pad + len(marker)) * 8) // 6
        shifts.append(encoded[start:end])
    return tuple(shifts)


# A key file stored base64-encoded (a Kubernetes Secret manifest, an env file): the markers above
# as base64 at every alignment.
_BASE64_RULES = (
    ("PEM private key (base64)", _base64_shifts(b"PRIVATE KEY-----")),
    ("Google service-account key (base64)", _base64_shifts(b'"service_account"')),
)


def find_secrets(text: str) -> Iterator[Finding]:
    """Every credential-looking match in ``text``, in rule order."""
    for kind, anchors, pattern in _COMPILED:
        if not any(a in text for a in anchors):
            continue
        for match in pattern.finditer(text):
            yield Finding(kind, text.count("\n", 0, match.start()) + 1)
    for kind, shifts in _BASE64_RULES:
        for shifted in shifts:
            at = text.find(shifted)
            if at >= 0:
                yield Finding(kind, text.count("\n", 0, at) + 1)
                break


def first_secret(text: str) -> Finding | None:
    """The first credential-looking match in ``text``, or None."""
    return next(find_secrets(text), None)


def decoded_views(data: bytes) -> Iterator[str]:
    """``data`` as text in each encoding a key file may use: bytes as Latin-1 (any ASCII token in
    UTF-8 or binary data stays as is) and, when the data holds NUL bytes, UTF-16 LE and BE."""
    yield data.decode("latin-1")
    if b"\0" in data:
        for encoding in ("utf-16-le", "utf-16-be"):
            yield data.decode(encoding, errors="ignore")
            yield data[1:].decode(encoding, errors="ignore")  # the other byte alignment


def scan_bytes(data: bytes) -> Finding | None:
    """The first credential-looking match in ``data`` in any of its text views, or None."""
    for text in decoded_views(data):
        found = first_secret(text)
        if found is not None:
            return found
    return None


_MASK = "****"
_PEM_BLOCK = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*-----|$)")


def mask_secrets(text: str) -> str:
    """``text`` with every credential-looking match replaced by ``****`` (for display)."""
    text = _PEM_BLOCK.sub(_MASK, text)
    for _kind, anchors, pattern in _COMPILED:
        if any(a in text for a in anchors):
            text = pattern.sub(_MASK, text)
    return text
