"""The same labextension in a stock Notebook 7 (``jupyter notebook``, no ``expose_app_in_browser``) and
Debian Chromium, driven as a user drives it: the Launch button of a notebook page, the save handshake
of ``%launch submit`` (an unsaved edit goes with the run), and the Runs tab, which Notebook 7 shows on
its file browser page (/tree) beside Files and Running, opened from the View menu of any page."""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import contextmanager

import pytest

from launch_jupyter import api
from launch_jupyter.core.states import RunState
from tests.fixtures.jupyterlab import screenshot
from tests.test_browser_launch import context_notebook, write_notebook
from tests.test_browser_save import run_cell
from tests.test_browser_save import write_notebook as write_submitting_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SUBMITTED = re.compile(r"submitted run (\w+) to alice/laptop")


@contextmanager
def agent_serving(queue: str):
    """A CLI agent in another process (the test's store, through the environment) until the queue is idle."""
    agent = subprocess.Popen([sys.executable, "-m", "launch_jupyter.cli", "agent", "-q", queue, "--until-idle"])
    try:
        yield agent
    finally:
        agent.wait(timeout=300)


def open_notebook(page, server, name: str, cells: int) -> None:
    page.goto(server.notebook_url(name))
    page.locator(".jp-Notebook .jp-Cell").nth(cells - 1).wait_for(timeout=120_000)
    assert page.evaluate("() => window.jupyterapp === undefined")  # stock: no exposed app
    assert "/notebooks/" in page.url  # Notebook 7's own notebook page, not JupyterLab's


def show_runs_sidebar(page):
    """View > Left Sidebar > Show Launch runs (Notebook 7 lists each side panel there)."""
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    page.locator(".lm-Menu-itemLabel", has_text="Left Sidebar").click()
    page.locator(".lm-Menu-itemLabel", has_text="Show Launch runs").click()
    sidebar = page.locator("#launch-jupyter-runs-sidebar")
    sidebar.wait_for(timeout=60_000)
    return sidebar


def test_the_launch_button_of_a_notebook7_page_submits_and_the_sidebar_sees_the_run_succeed(
    browser_page, stock_notebook7
):
    page, server = browser_page, stock_notebook7
    api.create_queue("laptop", "local-process")
    write_notebook(server.root_dir / "train.ipynb")
    open_notebook(page, server, "train.ipynb", 2)
    try:
        page.locator(".jp-NotebookPanel-toolbar .lj-launch-button").click(timeout=120_000)
        dialog = page.locator(".lj-launch")
        dialog.locator(".lj-launch-queue").wait_for(timeout=60_000)
        assert "alice/laptop · local-process" in dialog.locator(".lj-launch-queue").inner_text()
        labels = dialog.locator(".lj-launch-params .lj-launch-row > span:first-child").all_inner_texts()
        assert labels == ["lr (float)", "epochs (int)", "name (str)", "debug (bool)"]
        dialog.locator('[data-key="p:epochs"]').fill("3")
        dialog.locator(".lj-launch-preview").click()
        preview = dialog.locator(".lj-launch-request")
        preview.wait_for(timeout=60_000)
        assert '{"epochs": 3}' in preview.inner_text(), preview.inner_text()
        assert api.list_runs() == []  # a preview queues nothing
        dialog.locator(".lj-launch-submit").click()
        page.locator(".jp-Notification-Toast-success, .Toastify__toast--success").first.wait_for(timeout=60_000)
        (run,) = api.list_runs(queue="laptop")
        assert run.parameters == {"epochs": 3}
        # The Runs sidebar in Notebook 7's left panel follows the run to the end, live.
        item = show_runs_sidebar(page).locator(f'.lj-sidebar-run[data-run-id="{run.id}"]')
        item.locator(".lj-state-queued").wait_for(timeout=60_000)
        with agent_serving("laptop"):
            item.locator(".lj-state-succeeded").wait_for(timeout=300_000)
        screenshot(page, "notebook7-launch")
        # The notebook page holds only its notebook: the run's page opens in a new browser tab (/tree).
        with page.context.expect_page(timeout=60_000) as opened:
            item.click()
        detail = opened.value.locator(f'.lj-run-detail[data-run-id="{run.id}"]')
        detail.wait_for(timeout=120_000)
        assert "/tree" in opened.value.url
        detail.locator(".lj-state-succeeded").first.wait_for(timeout=60_000)
    except Exception:
        screenshot(page, "notebook7-launch-failed")
        raise
    assert api.get_run(run.id).run.state is RunState.SUCCEEDED


def write_self_submitting(path) -> None:
    write_submitting_notebook(path, queue="laptop")


def test_launch_submit_in_a_notebook7_cell_sends_the_unsaved_edit(browser_page, stock_notebook7):
    page, server = browser_page, stock_notebook7
    write_self_submitting(server.root_dir / "self.ipynb")
    open_notebook(page, server, "self.ipynb", 3)
    page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        timeout=120_000
    )
    out = run_cell(page, 1, 1, server)
    assert "created queue alice/laptop" in out, out
    page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".cm-content").click()
    page.keyboard.press("Control+Home")
    page.keyboard.type("# unsaved-in-notebook7\n")
    assert "unsaved-in-notebook7" not in (server.root_dir / "self.ipynb").read_text()  # on screen only
    out = run_cell(page, 2, 2, server)
    match = SUBMITTED.search(out)
    assert match, out
    assert "no JupyterLab extension answered" not in out, out
    source = "".join(context_notebook(match.group(1), "self.ipynb")["cells"][0]["source"])
    assert source.startswith("# unsaved-in-notebook7\n"), source


def test_the_runs_tab_opens_from_a_notebook7_page_in_a_new_browser_tab_and_follows_a_run(browser_page, stock_notebook7):
    page, server = browser_page, stock_notebook7
    api.create_queue("laptop", "local-process")
    write_notebook(server.root_dir / "train.ipynb")
    run = api.submit(server.root_dir / "train.ipynb", "laptop", name="nb7-run", save=False)
    open_notebook(page, server, "train.ipynb", 2)
    # A notebook page holds only its notebook: View > Launch Runs opens the /tree page's Runs tab.
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    errors = []
    page.context.on("console", lambda m: errors.append(m.text) if m.type == "error" and m.page != page else None)
    with page.context.expect_page(timeout=60_000) as opened:
        page.locator(".lm-Menu-itemLabel", has_text="Launch Runs").click()
    tree = opened.value
    tree.set_default_timeout(60_000)
    try:
        tab = tree.locator(".lm-TabBar-tab.lm-mod-current", has_text="Runs")
        tab.wait_for(timeout=120_000)
        assert "/tree" in tree.url
        assert tree.locator(".lm-TabBar-tab", has_text="Files").count() == 1  # beside Notebook 7's own tabs
        row = tree.locator(f'.lj-runs-panel tr.lj-run[data-run-id="{run.id}"]')
        row.locator(".lj-state-queued").wait_for(timeout=60_000)
        assert "nb7-run" in row.inner_text()
        assert errors == []  # the extension's plugins start cleanly on Notebook 7's /tree page
        with agent_serving("laptop"):
            row.locator(".lj-state-succeeded").wait_for(timeout=300_000)
        # A run's page is one more tab there.
        row.locator("button", has_text="Details").click()
        detail = tree.locator(f'.lj-run-detail[data-run-id="{run.id}"]')
        detail.locator(".lj-state-succeeded").first.wait_for(timeout=60_000)
        assert "null" not in detail.inner_text().splitlines()  # a run with no alert shows none
        assert tree.locator(".lm-TabBar-tab.lm-mod-current").inner_text().startswith("Run ")
        screenshot(tree, "notebook7-runs-tab")
    except Exception:
        screenshot(tree, "notebook7-runs-tab-failed")
        raise
