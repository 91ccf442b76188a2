"""The walk-through in a real JupyterLab 4 and Debian Chromium: run it, click the widgets, see runs end."""

from __future__ import annotations

import pytest

from launch_jupyter import api
from tests.fixtures.jupyterlab import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KERNEL_IDLE = """() => {
  const panel = window.jupyterapp?.shell?.currentWidget;
  const kernel = panel?.sessionContext?.session?.kernel;
  return !!kernel && kernel.connectionStatus === "connected" && kernel.status === "idle";
}"""

ALL_CELLS_RAN = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session?.kernel;
  const cells = panel.content.widgets.filter((c) => c.model.type === "code");
  return kernel?.status === "idle" && cells.every((c) => c.model.executionCount !== null);
}"""


def open_notebook(page, lab, path: str) -> None:
    page.goto(lab.lab_url(path))
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)


def run_all(page) -> None:
    # Fire and forget: awaiting the command inside evaluate can hang forever.
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_function(ALL_CELLS_RAN, timeout=300_000, polling=500)


def run_row(page, text: str):
    return page.locator(".lj-board tr.lj-run", has_text=text).first


def test_walkthrough_in_jupyterlab(browser_page, jupyterlab):
    page = browser_page
    open_notebook(page, jupyterlab, "walkthrough.ipynb")
    screenshot(page, "browser-01-opened")

    run_all(page)
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    assert errors.count() == 0, errors.all_inner_texts()

    # The run board shows the quickstart run succeeded (the cell that waited for it has returned).
    quick = run_row(page, "quickstart")
    quick.locator(".lj-badge", has_text="succeeded").wait_for()
    page.locator(".lj-status-line .lj-badge", has_text="succeeded").first.wait_for()
    page.locator(".lj-timeline-entry").first.wait_for()
    screenshot(page, "browser-02-ran-all")

    # The queue editor: fill it in and click Create.
    editor = page.locator(".lj-editor").first
    editor.locator('input[name="name"]').fill("clicked")
    editor.locator(".lj-btn-create").click()
    editor.locator(".lj-notice", has_text="created queue alice/clicked").wait_for()
    assert api.get_queue("clicked").resource == "local-process"

    # Typing an unknown key: the problem shows against its key path, and its line is marked.
    editor.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("bogus_key: 1")
    editor.locator(".lj-problems li.lj-severity-error", has_text="bogus_key: unknown key").wait_for()
    assert editor.locator(".cm-line", has_text="bogus_key").locator(".cm-lintRange-error").count() == 1
    editor.scroll_into_view_if_needed()
    screenshot(page, "browser-03-validation")

    # Cancel the long run from its row.
    long_row = run_row(page, "long")
    long_row.locator(".lj-badge", has_text="running").wait_for(timeout=60_000)
    long_row.locator(".lj-btn-cancel").click()
    long_row.locator(".lj-btn-cancel-yes").click()  # Cancel asks first
    try:
        long_row.locator(".lj-badge", has_text="cancelled").wait_for(timeout=30_000)
    except Exception:  # say what the store and the kernel saw (a lost click once hid in the kernel's log)
        print("runs:", [(r.name, str(r.state), r.cancel_requested) for r in api.list_runs()])
        print("lab log tail:", jupyterlab.log.read_text()[-3000:])
        screenshot(page, "browser-04-cancel-failed")
        raise
    long_id = long_row.get_attribute("data-run-id")
    assert api.get_run(long_id).state == "cancelled"
    long_row.scroll_into_view_if_needed()
    screenshot(page, "browser-04-cancelled")

    # The walkthrough sent itself too: its run skipped its own %launch cells and succeeded.
    itself = run_row(page, "walkthrough-itself")
    itself.locator(".lj-badge", has_text="succeeded").wait_for(timeout=180_000)
    assert len([r for r in api.list_runs() if r.name == "walkthrough-itself"]) == 1

    # Logs, then open the executed notebook in JupyterLab.
    quick.locator(".lj-btn-logs").click()
    page.locator(".lj-log", has_text="hello, Ada!").wait_for()
    quick.locator(".lj-btn-open").click()
    page.locator(".lm-TabBar-tab", has_text="quickstart-").wait_for()
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget?.context?.path?.startsWith('launch-outputs/quickstart-')"
    )
    page.locator(".jp-OutputArea-output:visible", has_text="hello, Ada!").first.wait_for()
    screenshot(page, "browser-05-executed-notebook")
