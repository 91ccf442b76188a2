"""The sweep board in a real JupyterLab 4 and Debian Chromium: `%launch sweep` then `%launch sweep
show` — the table fills in live, the best row is starred, the plot is there, a header click sorts."""

from __future__ import annotations

import nbformat
import pytest

from launch_jupyter import api
from tests.fixtures.jupyterlab import screenshot
from tests.test_browser import open_notebook, run_all

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def write(path, cells, tagged_first=False):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    if tagged_first:
        nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_sweep_board_in_jupyterlab(browser_page, jupyterlab):
    root = jupyterlab.root_dir
    write(
        root / "train.ipynb",
        [
            "lr = 0.1\nlayers = 2",
            "import launch_jupyter\nlaunch_jupyter.record('accuracy', round(layers / 10 + lr, 6))",
        ],
        tagged_first=True,
    )
    write(
        root / "sweep.ipynb",
        [
            "%load_ext launch_jupyter",
            "%launch queue create sw --resource local-process",
            "%launch agent start -q sw --max-jobs 4",
            "%launch sweep --notebook train.ipynb -q sw -p lr=0.1,0.2 -p layers=1,2 --max-parallel 2",
            "%launch sweep show {_launch_sweep.id} --sort -accuracy",
        ],
    )
    page = browser_page
    open_notebook(page, jupyterlab, "sweep.ipynb")
    run_all(page)
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    assert errors.count() == 0, errors.all_inner_texts()

    board = page.locator(".lj-sweep-board").first
    board.locator(".lj-progress", has_text="4/4 done").wait_for(timeout=300_000)
    board.locator(".lj-sweep-plot svg").wait_for()
    best = board.locator("tr.lj-best")
    assert best.count() == 1 and "★" in best.inner_text() and "0.4" in best.inner_text()
    values = board.locator("td.lj-value")
    assert values.all_inner_texts() == ["0.4", "0.3", "0.3", "0.2"]
    screenshot(page, "sweep-01-board")

    board.locator("th.lj-sortable", has_text="accuracy").click()  # ▼ → ▲: lowest first
    board.locator("th.lj-sortable", has_text="accuracy ▲").wait_for()
    board.locator("tr.lj-run").first.locator("td.lj-value", has_text="0.2").wait_for()
    assert values.all_inner_texts() == ["0.2", "0.3", "0.3", "0.4"]
    (sweep,) = api.list_sweeps()
    assert sweep["done"] == 4
    screenshot(page, "sweep-02-sorted")
