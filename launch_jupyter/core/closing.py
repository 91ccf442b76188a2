"""Handles that close what they open, as context managers (httpx's ``Client``, SQLAlchemy's
``Connection``): ``with Handle(...) as h:`` closes ``h`` when the block ends, however it ends."""

from __future__ import annotations

from typing import TypeVar

_H = TypeVar("_H", bound="Closing")


class Closing:
    """A handle whose ``close`` runs at the end of its ``with`` block; subclasses write ``close``."""

    def __enter__(self: _H) -> _H:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError
