"""The README's quick start as a user meets it: ``train.ipynb`` (the README's cells, in order) opened
in a stock JupyterLab, each cell run with Ctrl+Enter; the notebook submits itself and the run
succeeds with the parameters of ``%launch submit``. Then the kernel is restarted from the Kernel
menu (clearing the outputs) and the same cells are run again: the queue is unchanged, a new agent serves it, one more run
is queued and succeeds. The test never saves the notebook or starts a kernel itself."""

from __future__ import annotations

import json
import re

import pytest

from launch_jupyter import api
from launch_jupyter.core.states import RunState
from tests.fixtures.jupyterlab import screenshot
from tests.test_browser_save import open_stock, run_cell

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SUBMITTED = re.compile(r"submitted run (\w+) to alice/laptop")
# train.ipynb: a markdown cell, then the README's code cells (tests/test_submit_itself.py checks that)
PARAMETERS, LOOP, LOAD, QUEUE, SUBMIT = 1, 2, 3, 4, 5


def run_the_quick_start(page, lab) -> tuple[str, str]:
    """Run the code cells in order in a fresh kernel; the queue cell's output and the run's id."""
    for count, index in enumerate((PARAMETERS, LOOP, LOAD, QUEUE, SUBMIT), 1):
        out = run_cell(page, index, count, lab)
        if index == LOOP:
            assert "lr=0.01 epochs=1" in out, out  # the notebook's own defaults, here
        if index == QUEUE:
            queue_out = out
    match = SUBMITTED.search(out)
    assert match, out
    assert "no JupyterLab extension answered" not in out, out
    assert "serving alice/laptop" in out, out
    return queue_out, match.group(1)


def executed_output(run_id: str) -> str:
    handle = api.get_run(run_id)
    assert handle.wait(timeout=300) is RunState.SUCCEEDED, [e.message for e in handle.events()]
    nb = json.loads(open(handle.output_notebook).read())
    return "\n".join(
        "".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
    )


def test_the_readme_quick_start_in_a_stock_jupyterlab_then_after_a_kernel_restart(browser_page, stock_jupyterlab):
    page, lab = browser_page, stock_jupyterlab
    open_stock(page, lab, "train.ipynb")

    queue_out, first = run_the_quick_start(page, lab)
    assert "created queue alice/laptop" in queue_out, queue_out
    out = executed_output(first)
    assert "lr=0.1 epochs=3" in out, out  # the -p values took effect in the run
    assert "[launch] inside run" in out and "skipped" in out, out  # its own %launch lines did nothing
    screenshot(page, "browser-quickstart-1-first-run")

    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    # (with its outputs cleared, so each cell's new prompt and output are this kernel's)
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Clear Outputs of All Cells…").click()
    page.locator(".jp-Dialog-button", has_text="Restart").click()
    page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        timeout=120_000
    )
    page.locator(".jp-Notebook .jp-Cell").nth(SUBMIT).locator(".jp-InputPrompt", has_text="[ ]").wait_for(
        timeout=120_000
    )

    queue_out, second = run_the_quick_start(page, lab)
    assert "unchanged" in queue_out, queue_out
    assert second != first
    assert "lr=0.1 epochs=3" in executed_output(second)
    runs = api.list_runs(queue="laptop")
    assert sorted(r.id for r in runs) == sorted([first, second])
    assert {r.state for r in runs} == {RunState.SUCCEEDED}
    screenshot(page, "browser-quickstart-2-after-restart")
