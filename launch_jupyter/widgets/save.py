"""Ask the frontend to save the notebook before it is submitted (used by ``api.submit``)."""

from __future__ import annotations

import traitlets

from . import _assets
from ._base import ActionWidget

_last: list[SaveRequest] = []


class SaveRequest(ActionWidget):
    """A widget with no view: when the frontend creates its model, it saves the current notebook."""

    _esm = _assets.esm("save_request.js")
    requested = traitlets.Bool(True).tag(sync=True)


def ask_frontend_to_save() -> SaveRequest:
    """Send the save request to the frontend (the caller waits for the file to change)."""
    # The previous request has long been handled; close it so requests do not pile up.
    while _last:
        _last.pop().close()
    request = SaveRequest()
    _last.append(request)
    return request
