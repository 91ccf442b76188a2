"""Is this code running inside a run? ``python -m launch_jupyter.execute`` says so in the
environment of the kernel it starts, so a notebook that submits itself queues exactly one run."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

INSIDE_RUN_ENV = "LAUNCH_INSIDE_RUN"


@dataclass(frozen=True)
class InsideRun:
    """The run this process belongs to."""

    run_id: str
    queue: str

    def describe(self) -> str:
        short = self.run_id[:8] + ("…" if len(self.run_id) > 8 else "")
        return f"inside run {short} of {self.queue}" if self.queue else f"inside run {short}"


def mark(run_id: str, queue: str) -> dict[str, str]:
    """The environment entry that marks a kernel as inside ``run_id``."""
    return {INSIDE_RUN_ENV: json.dumps({"run": run_id, "queue": queue})}


def inside_run(environ: Mapping[str, str] | None = None) -> InsideRun | None:
    """The run this process executes in, or None outside any run."""
    raw = (os.environ if environ is None else environ).get(INSIDE_RUN_ENV)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"run": raw}
    if not isinstance(data, dict):
        data = {"run": str(data)}
    return InsideRun(str(data.get("run") or "?"), str(data.get("queue") or ""))
