"""The compact Runs sidebar in a stock JupyterLab and Debian Chromium: the newest runs, live from the
server's event stream, with no kernel; a click opens a run's page, a button the full Runs tab."""

from __future__ import annotations

import subprocess
import sys

import pytest

from launch_jupyter import api
from tests.fixtures.jupyterlab import screenshot
from tests.test_browser_launch import lab_api, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_runs_sidebar_follows_a_run_to_succeeded_and_opens_its_page(browser_page, stock_jupyterlab):
    page, lab = browser_page, stock_jupyterlab
    api.create_queue("laptop", "local-process")
    write_notebook(lab.root_dir / "train.ipynb")
    run = api.submit(lab.root_dir / "train.ipynb", "laptop", name="side-quick", save=False)
    page.goto(f"{lab.url}lab?token={lab.token}")
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="launch-jupyter-runs-sidebar"]').click(timeout=120_000)
    sidebar = page.locator("#launch-jupyter-runs-sidebar")
    try:
        item = sidebar.locator(f'.lj-sidebar-run[data-run-id="{run.id}"]')
        item.locator(".lj-state-queued").wait_for(timeout=60_000)
        assert "side-quick" in item.inner_text() and "laptop" in item.inner_text()
        # An agent in another process moves the run: the sidebar follows it live (no reload, no kernel).
        agent = subprocess.Popen([sys.executable, "-m", "launch_jupyter.cli", "agent", "-q", "laptop", "--until-idle"])
        try:
            item.locator(".lj-state-succeeded").wait_for(timeout=180_000)
        finally:
            agent.wait(timeout=180)
        counts = sidebar.locator(".lj-sidebar-counts").inner_text()
        assert "succeeded 1" in counts, counts
        screenshot(page, "runs-sidebar")
        item.click()
        page.locator(f'.lj-run-detail[data-run-id="{run.id}"]').wait_for(timeout=60_000)
        sidebar.locator(".lj-sidebar-all").click()
        page.locator(f'.lj-runs-panel tr.lj-run[data-run-id="{run.id}"]').wait_for(timeout=60_000)
    except Exception:
        screenshot(page, "runs-sidebar-failed")
        raise
    assert lab_api(lab, "GET", "api/kernels") == []
