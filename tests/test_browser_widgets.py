"""The widgets in a stock JupyterLab 4 and Debian Chromium, as a user drives them: typing into the
queue editor by keyboard, paste-and-Create, a board of 200 runs, Cancel's confirmation, and every
widget saying "disconnected" after a kernel restart."""

from __future__ import annotations

import re

import nbformat
import pytest
from playwright.sync_api import expect

from launch_jupyter import api
from tests.fixtures.jupyterlab import screenshot
from tests.fixtures.vertex import VERTEX_YAML
from tests.test_browser_save import cell, open_stock, run_cell
from tests.test_widgets import fill_board, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A 16-line config, so that lines 2, 8 and 14 exist (the overlay editor drifted a line from about 5).
CONFIG = api.default_config("vertex") + "".join(f"# note {n}\n" for n in range(13, 17))

SETUP = f"""\
from pathlib import Path
from launch_jupyter import api
from launch_jupyter.widgets import AgentPanel, QueueEditor, RunBoard, RunStatus
editor = QueueEditor(resource="vertex")
editor.config_text = {CONFIG!r}
# What the kernel holds, where the test can read it.
editor.observe(lambda change: Path("seen.yaml").write_text(change["new"]), "config_text")
"""


def write_notebook(path, run_id: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(source)
        for source in (SETUP, "editor", "board = RunBoard()\nboard", f"RunStatus({run_id!r})", "AgentPanel()")
    ]
    nbformat.write(nb, path)


def test_widgets_in_a_stock_jupyterlab(browser_page, stock_jupyterlab):
    page, lab = browser_page, stock_jupyterlab
    page.set_viewport_size({"width": 1000, "height": 1000})
    api.create_queue("big")
    ids = fill_board(None, "big", 200)
    running = next(run_id for i, run_id in enumerate(ids) if i % 3 == 0 and i % 5 and i % 7)
    write_notebook(lab.root_dir / "widgets.ipynb", ids[0])
    open_stock(page, lab, "widgets.ipynb")
    for index in range(5):
        run_cell(page, index, index + 1, lab)
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    assert errors.count() == 0, errors.all_inner_texts()

    # ---- the editor: keyboard edits at lines 2, 8 and 14 land on those lines in the kernel.
    editor = cell(page, 1).locator(".lj-editor")
    editor.locator(".cm-content").wait_for()
    seen = lab.root_dir / "seen.yaml"
    for line in (2, 8, 14):
        editor.locator(".cm-line").nth(line - 1).click()
        page.keyboard.press("End")
        page.keyboard.type(f" # edit{line}")
    wait_for(lambda: seen.is_file() and "# edit14" in seen.read_text(), 60, "the kernel to hold the edits")
    lines = seen.read_text().splitlines()
    for line in (2, 8, 14):
        assert lines[line - 1] == CONFIG.splitlines()[line - 1] + f" # edit{line}", lines
    assert sum("# edit" in text for text in lines) == 3
    # The missing bucket is a lint diagnostic on its own line, once the kernel has checked this text.
    editor.locator(".lj-problems li.lj-severity-error", has_text="spec.staging_bucket").wait_for()
    bucket_line = next(i for i, text in enumerate(lines) if "staging_bucket" in text)
    assert editor.locator(".cm-line").nth(bucket_line).locator(".cm-lintRange-error").count() == 1
    editor.scroll_into_view_if_needed()
    screenshot(page, "widgets-01-editor")

    # ---- paste a whole config and click Create at once: what is stored is what is on screen.
    editor.locator('input[name="name"]').fill("pasted")
    editor.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    editor.locator(".cm-content").evaluate(
        """(el, text) => { const data = new DataTransfer(); data.setData("text/plain", text);
        el.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true })); }""",
        VERTEX_YAML,
    )
    editor.locator(".lj-btn-create").click()
    editor.locator(".lj-notice", has_text="created queue alice/pasted").wait_for()
    assert api.get_queue("pasted").config_text == VERTEX_YAML
    # Delete asks first.
    editor.locator(".lj-btn-delete").click()
    editor.locator(".lj-confirm-question", has_text="Delete queue alice/pasted?").wait_for()
    editor.locator(".lj-confirm-no").click()
    assert api.get_queue("pasted").name == "pasted"

    # ---- the board at 200 runs: counts, paging, filters, sort, fits a narrow and a wide cell, failures visible.
    board = cell(page, 2).locator(".lj-board")
    board.locator(".lj-page-info", has_text="1–50 of 200 runs").wait_for()
    counts = {
        s: sum(
            1
            for i in range(200)
            if s == ("failed" if i % 5 == 0 else "cancelled" if i % 7 == 0 else "running" if i % 3 == 0 else "queued")
        )
        for s in ("failed", "cancelled", "running", "queued")
    }
    for state, n in counts.items():
        assert board.locator(f'.lj-count[data-state="{state}"]').inner_text().endswith(f" {n}")
    assert board.locator("tr.lj-run").count() == 50
    failure = board.locator(".lj-failure-line").first
    assert failure.is_visible() and "raised RuntimeError" in failure.inner_text()
    overflow = board.evaluate(
        "el => [el.scrollWidth, el.clientWidth, el.closest('.jp-OutputArea-output').scrollWidth,"
        " el.closest('.jp-OutputArea-output').clientWidth]"
    )
    assert overflow[0] <= overflow[1] and overflow[2] <= overflow[3], overflow
    board.scroll_into_view_if_needed()
    screenshot(page, "widgets-02-board-200-runs")
    # The cell beside the open file browser is narrow (< 720 px): the optional columns go, the rest
    # widen and stay readable, nothing overflows; a wide window brings them back.
    who = board.locator("th.lj-col-who")
    assert board.evaluate("el => el.clientWidth") <= 720
    who.wait_for(state="hidden", timeout=30_000)
    narrow = board.evaluate(
        "el => [el.querySelector('table.lj-runs').scrollWidth, el.clientWidth,"
        " el.querySelector('td.lj-col-run').clientWidth, el.querySelector('td.lj-col-state').clientWidth]"
    )
    assert narrow[0] <= narrow[1], narrow  # the table fits the cell
    assert narrow[2] >= 0.28 * narrow[1] and narrow[3] >= 0.17 * narrow[1], narrow  # the kept columns widened
    assert board.locator("tr.lj-run").first.locator(".lj-col-actions button").first.is_visible()
    page.set_viewport_size({"width": 1600, "height": 1000})
    who.wait_for(state="visible", timeout=30_000)
    wide = board.evaluate("el => [el.querySelector('table.lj-runs').scrollWidth, el.clientWidth]")
    assert wide[1] > 720 and wide[0] <= wide[1], wide
    board.scroll_into_view_if_needed()
    screenshot(page, "widgets-02b-board-wide-cell")
    page.set_viewport_size({"width": 1000, "height": 1000})
    who.wait_for(state="hidden", timeout=30_000)
    board.locator(".lj-btn-next").click()
    board.locator(".lj-page-info", has_text="51–100 of 200 runs").wait_for()
    board.locator('.lj-count[data-state="failed"]').click()
    board.locator(".lj-page-info", has_text=f"1–{counts['failed']} of {counts['failed']} runs").wait_for()
    assert set(board.locator("tr.lj-run").evaluate_all("rows => rows.map(r => r.dataset.state)")) == {"failed"}
    board.locator('.lj-count[data-state=""]').click()
    board.locator('th[data-sort="name"]').click()
    board.locator('th[data-sort="name"][aria-sort="ascending"]').wait_for()
    # The header says the sort at once; the sorted page follows from the kernel (wait for it, no clock).
    expect(board.locator("tr.lj-run").first.locator(".lj-col-run")).to_have_text(
        re.compile(r"job-000$"), timeout=60_000
    )
    board.locator('input[name="text"]').fill("job-19")
    board.locator(".lj-page-info", has_text="1–10 of 10 runs").wait_for()

    # ---- Cancel asks first; "Keep running" keeps it.
    board.locator('input[name="text"]').fill(api.get_run(running).run.name)
    row = board.locator(f'tr.lj-run[data-run-id="{running}"]')
    row.wait_for()
    row.locator(".lj-btn-cancel").click()
    row.locator(".lj-confirm-question", has_text="Cancel ").wait_for()
    row.locator(".lj-confirm-no").click()
    assert not api.get_run(running).run.cancel_requested
    row.locator(".lj-btn-cancel").click()
    row.locator(".lj-btn-cancel-yes").click()
    wait_for(lambda: api.get_run(running).run.cancel_requested, 60, "the confirmed cancel to reach the store")

    # ---- restart the kernel: every widget of the old kernel says so and stops.
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel…").click()
    page.locator(".jp-Dialog-button", has_text="Restart").click()
    disconnected = page.locator(".lj-disconnected:visible", has_text="disconnected — re-run this cell")
    try:
        wait_for(lambda: disconnected.count() == 4, 120, "all four widgets to show disconnected")
    except AssertionError:
        print(
            "widgets:",
            page.locator(".lj-widget").count(),
            "disconnected:",
            disconnected.count(),
            "manager-disconnected views:",
            page.locator(".jupyter-widgets-disconnected").count(),
        )
        screenshot(page, "widgets-03-disconnected-failed")
        raise
    for index in range(1, 5):
        widget = cell(page, index).locator(".lj-widget")
        assert widget.locator("button:enabled").count() == 0, index
    cell(page, 3).scroll_into_view_if_needed()
    screenshot(page, "widgets-03-disconnected")
    # The widgets say "disconnected" as the restart begins; let it finish before the server stops
    # (a server stopped mid-restart hits jupyter_client's InvalidStateError on the kernel's pending
    # `ready` future, never exits, and is killed only after the fixture's 15 s).
    wait_for(lambda: "Kernel restarted" in lab.log.read_text(errors="replace"), 120, "the kernel restart to finish")
