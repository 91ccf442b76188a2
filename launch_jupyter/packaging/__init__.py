"""Notebook → build context: the notebook, requirements, extra files, a Dockerfile and a content hash."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BuildContext:
    """A folder ready for ``docker build`` plus what the agent needs to know about it."""

    directory: Path  # holds the notebook, requirements.txt, extra files, Dockerfile
    notebook: str  # the notebook's path relative to ``directory``
    content_hash: str  # hex digest over everything that goes into the image; the image tag
    base_image: str = ""
    warnings: list[str] = field(default_factory=list)  # e.g. editable installs that were not pinned

    @property
    def tag(self) -> str:
        return self.content_hash[:20]


# The functions live in submodules; they are looked up lazily so that importing this package
# (which the store and the agent do) costs nothing beyond the dataclass above.
_EXPORTS = {
    "create_context": "context",
    "pack_context": "context",
    "temporary_context": "context",
    "unpack_context": "context",
    "DEFAULT_EXCLUDES": "context",
    "resolve_requirements": "requirements",
    "launch_jupyter_wheel": "requirements",
    "render_dockerfile": "dockerfile",
    "default_base_image": "dockerfile",
    "inject_parameters": "parameters",
    "find_notebook": "discovery",
    "read_notebook_json": "discovery",
    "wait_readable": "discovery",
    "read_parameters": "parameters",
    "check_parameters": "parameters",
    "tag_parameters": "parameters",
    "kernel_id": "discovery",
    "hash_directory": "context",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'launch_jupyter.packaging' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
