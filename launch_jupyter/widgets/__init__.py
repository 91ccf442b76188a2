"""The notebook widgets: QueueEditor, RunBoard, AgentPanel, RunStatus and SweepBoard (anywidget, JS in ``js/``).

Each only declares synced traits and forwards its buttons to ``launch_jupyter.api``.
"""

from __future__ import annotations

from .agent_panel import AgentPanel
from .queue_editor import QueueEditor
from .run_board import RunBoard
from .run_status import RunStatus
from .sweep_board import SweepBoard

__all__ = ["AgentPanel", "QueueEditor", "RunBoard", "RunStatus", "SweepBoard"]
