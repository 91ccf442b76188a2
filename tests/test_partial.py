"""Partial notebooks: a cancelled or timed-out run keeps its executed notebook as far as it got, with
a banner cell on top saying where it stopped and why; ``output_notebook`` points at it. Real agent,
real local processes, real papermill; the test waits on the run's own progress, never on a clock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.states import RunState
from launch_jupyter.execute import BANNER_TAG


def sleeper(folder: Path) -> Path:
    """Cells 1-3 print quickly, cell 4 sleeps for ten minutes, cell 5 would print."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"print('cell {k} ran')") for k in (1, 2, 3)]
    nb.cells.append(nbformat.v4.new_code_cell("import time\ntime.sleep(600)"))
    nb.cells.append(nbformat.v4.new_code_cell("print('cell 5 ran')"))
    path = folder / "sleeper.ipynb"
    nbformat.write(nb, path)
    return path


def wait_for(condition, what: str, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def printed(cell) -> str:
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))


def test_cancel_after_cell_3_keeps_cells_1_to_3_and_a_banner(tmp_path):
    api.create_queue("laptop", "local-process")
    agent = Agent(["laptop"], poll_interval=0.2).start()
    try:
        handle = api.submit(sleeper(tmp_path), "laptop", save=False)
        wait_for(lambda: (api.run_progress(handle.id).get(handle.id) or {}).get("cell") == 4, "cell 4 to start")
        api.cancel(handle.id)
        assert handle.wait(timeout=120) is RunState.CANCELLED, [f"{e.state} {e.message}" for e in handle.events()]
    finally:
        agent.stop()
    assert handle.output_notebook, "a cancelled run keeps its partial notebook"
    nb = json.loads(Path(handle.output_notebook).read_text())
    banner, *cells = nb["cells"]
    assert banner["cell_type"] == "markdown" and BANNER_TAG in banner["metadata"]["tags"]
    text = "".join(banner["source"])
    assert "stopped in cell 4 of 5 (`import time`): cancelled" in text, text
    assert [printed(c) for c in cells[:3]] == ["cell 1 ran\n", "cell 2 ran\n", "cell 3 ran\n"]
    assert all(c["execution_count"] for c in cells[:4])  # 1-3 ran, 4 was running
    assert cells[4]["execution_count"] is None and printed(cells[4]) == ""
    assert "partial notebook: " in Path(handle.run.log_path).read_text()


def test_a_timed_out_run_keeps_its_partial_notebook(tmp_path):
    api.create_queue("slow", "local-process", config="timeout: 20\nenv: {}\n")
    agent = Agent(["slow"], poll_interval=0.2).start()
    try:
        handle = api.submit(sleeper(tmp_path), "slow", save=False)
        assert handle.wait(timeout=300) is RunState.FAILED
    finally:
        agent.stop()
    assert "timed out after 20 s" in handle.run.message
    assert handle.output_notebook
    nb = json.loads(Path(handle.output_notebook).read_text())
    banner, *cells = nb["cells"]
    text = "".join(banner["source"])
    assert BANNER_TAG in banner["metadata"]["tags"] and "timed out after 20 s" in text, text
    # Wherever the clock caught it, every cell before the one named in the banner ran to the end.
    stopped_at = int(text.split("stopped in cell ")[1].split(" ")[0]) if "stopped in cell " in text else 0
    assert all(c["execution_count"] for c in cells[:stopped_at])
    assert all(c["execution_count"] is None for c in cells[stopped_at:])
