"""What every launch widget shares: actions sent from the browser become Python method calls."""

from __future__ import annotations

import anywidget
import traitlets

from ..core.errors import LaunchError


class ActionWidget(anywidget.AnyWidget):
    """An anywidget whose frontend sends ``{"action": NAME, "args": {...}}``; NAME must be in ``_actions``.

    Each action is an ordinary public method, so tests (and scripts) call ``editor.create()`` just as
    a click does. A LaunchError becomes the ``error`` line the widget shows, never a traceback.
    """

    _actions: tuple[str, ...] = ()
    error = traitlets.Unicode("").tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.on_msg(self._on_frontend_msg)

    def _on_frontend_msg(self, _widget, content, _buffers) -> None:
        action = content.get("action") if isinstance(content, dict) else None
        if action not in self._actions:
            return
        self.run_action(action, **(content.get("args") or {}))

    def run_action(self, action: str, **args):
        """Call the action method; show a LaunchError's message in the widget and return None."""
        self.error = ""
        self.notice = ""
        try:
            return getattr(self, action)(**args)
        except LaunchError as err:
            self.error = str(err)
        except Exception as err:  # a bug must still show up in the widget, not vanish in the kernel log
            self.error = f"{type(err).__name__}: {err}"
        return None
