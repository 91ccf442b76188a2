"""The executed notebook of a Vertex run that did not succeed: kept when the entrypoint wrote it.

A cancelled job's container gets SIGTERM (CancelCustomJob stops it), a failed one's notebook stopped
at the cell that raised; either way the entrypoint writes the notebook as far as it ran to the run's
output (``/gcs/…``, i.e. Cloud Storage). The run links it only when the object is really there: a job
that never started, or was killed before it could write, has none.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._api import Target

log = logging.getLogger(__name__)


def existing_output(uri: str | None, target: Target, timeout: float) -> str | None:
    """``uri`` (``gs://bucket/name``) when that object exists, else None. One request with a
    deadline and no library retry (this runs inside a status call that has its own deadline); when
    Cloud Storage cannot be asked, None and a warning: the run ends all the same."""
    if not uri or not uri.startswith("gs://"):
        return None
    # google-cloud-storage is needed only here, once per run that ends without succeeding.
    from google.cloud import storage

    from ._api import credentials

    bucket, _, name = uri.removeprefix("gs://").partition("/")
    try:
        client = storage.Client(project=target.project, credentials=credentials(target.credentials))
        found = client.bucket(bucket).blob(name).exists(timeout=timeout, retry=None)
    except Exception as err:  # noqa: BLE001 - the run's end must not wait on its notebook's link
        log.warning("cannot tell whether %s exists: %s: %s", uri, type(err).__name__, err)
        return None
    return uri if found else None
