"""Live cell progress: a real notebook run by a real agent reports cell i of n as it goes, and the
CLI (runs, run show, logs --follow) and the status widget show it.

Each cell of the notebook waits for a file the test writes once it has seen that cell's progress,
so every step is observed whatever the machine's speed (no timing assumptions)."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from launch_jupyter import api, cli
from launch_jupyter.agent import Agent
from launch_jupyter.core.states import RunState
from launch_jupyter.progress import bar, describe, parse_cell_line

CELLS = 6


def gated_notebook(folder: Path) -> Path:
    """Six code cells; cell k runs until the file go-k exists (or 300 s pass)."""
    nb = nbformat.v4.new_notebook()
    for k in range(1, CELLS + 1):
        nb.cells.append(
            nbformat.v4.new_code_cell(
                f"step = {k}  # wait for the test\n"
                "import pathlib, time\n"
                f"_deadline = time.monotonic() + 300\n"
                f"while not pathlib.Path({str(folder / f'go-{k}')!r}).exists() and time.monotonic() < _deadline:\n"
                "    time.sleep(0.05)\n"
            )
        )
    path = folder / "six.ipynb"
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


def test_a_six_cell_notebook_reports_each_cell_in_order(tmp_path, capsys):
    from launch_jupyter.widgets import RunStatus

    gates = tmp_path / "gates"
    gates.mkdir()
    notebook = gated_notebook(gates)
    api.create_queue("laptop", "local-process")
    agent = Agent(["laptop"], poll_interval=0.2).start()
    try:
        handle = api.submit(notebook, "laptop", save=False)
        status = RunStatus(handle.id)
        seen = []
        for k in range(1, CELLS + 1):
            progress = wait_for(
                lambda k=k: (
                    (api.run_progress(handle.id).get(handle.id) or {}).get("cell") == k
                    and api.run_progress(handle.id)[handle.id]
                ),
                f"cell {k}/{CELLS}",
            )
            seen.append((progress["cell"], progress["total"]))
            assert progress["source"] == f"step = {k}  # wait for the test"
            if k == 3:  # the front ends, mid-run
                capsys.readouterr()
                assert cli.main(["run", "show", handle.id]) == 0
                shown = capsys.readouterr().out
                assert "progress:        [#######-------------] 3/6  cell 3: step = 3" in shown, shown
                assert cli.main(["runs"]) == 0
                listing = capsys.readouterr().out
                assert "PROGRESS" in listing and "[###-------] 3/6" in listing, listing
                wait_for(lambda: status.progress.get("cell") == 3, "the widget to show cell 3")
            (gates / f"go-{k}").write_text("go")
        assert handle.wait(timeout=180) is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in handle.events()]
    finally:
        agent.stop()
    assert seen == [(k, CELLS) for k in range(1, CELLS + 1)]
    capsys.readouterr()
    assert cli.main(["logs", handle.id, "--follow"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "] cell " in line]
    assert [parse_cell_line(line)[:2] for line in lines] == seen
    assert lines[0].startswith("[--------------------] 1/6 [launch] cell 1/6 started: step = 1")
    status.close()


def test_bars_and_descriptions():
    p = {"cell": 3, "total": 4, "source": "train()", "cell_started_at": 100.0}
    assert bar(p, 8) == "[####----] 3/4"
    assert describe(p, now=112.4, width=8) == "[####----] 3/4  cell 3: train()  (12 s)"
    assert bar(None) == "" and describe(None) == ""
    assert parse_cell_line("[launch] cell 2/9 started: import os") == (2, 9, "import os")
    assert parse_cell_line("[launch] succeeded") is None
