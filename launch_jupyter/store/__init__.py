"""The store: queues, runs and their history in SQL (a SQLite file by default, PostgreSQL for teams).

``open_store()`` is the one way in; see ``QueueStore`` for what it does.
"""

from __future__ import annotations

from ..core.config import default_store_url
from ._backend import close_all
from ._store import Fence, LeaseLost, QueueStore

__all__ = ["Fence", "LeaseLost", "QueueStore", "close_all", "open_store"]


def open_store(url: str | None = None) -> QueueStore:
    """Open the store at ``url`` (default: ``LAUNCH_JUPYTER_DB`` or the SQLite file in the data folder).

    The tables are created on first use. ``postgresql://`` URLs use psycopg 3. Handles on the same URL
    in one process share one connection pool; close each with ``close()`` (or use ``with``).
    """
    return QueueStore(url or default_store_url())
