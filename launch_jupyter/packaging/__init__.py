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
