"""The Launch button, in a stock JupyterLab and Debian Chromium: a notebook goes to a queue with no
kernel at all, through a typed form generated from its parameters cell."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
import urllib.request

import nbformat
import pytest

from launch_jupyter import api
from tests.fixtures.jupyterlab import screenshot
from tests.test_cost import A100_YAML

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def write_notebook(path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('lr = 0.1\nepochs = 2\nname = "first"\ndebug = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print(lr * epochs, name)")]
    nbformat.write(nb, path)


def lab_api(lab, method: str, path: str):
    request = urllib.request.Request(f"{lab.url}{path}", method=method, headers={"Authorization": f"token {lab.token}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def context_notebook(run_id: str, name: str) -> dict:
    with tarfile.open(fileobj=io.BytesIO(api.open_store().get_context(run_id))) as tar:
        return json.loads(tar.extractfile(name).read())


def test_launch_button_typed_form_preview_and_submit_without_a_kernel(browser_page, stock_jupyterlab):
    page, lab = browser_page, stock_jupyterlab
    api.create_queue("laptop", "local-process")
    write_notebook(lab.root_dir / "train.ipynb")
    page.goto(lab.lab_url("train.ipynb"))
    page.locator(".jp-Notebook .jp-Cell").nth(1).wait_for(timeout=120_000)
    # An edit on screen only; then no kernel at all: the Launch dialog must need none.
    page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n# unsaved-edit")
    # The notebook's own kernel starts a little after the page opens: shut it down once it is there, so
    # none comes up behind the test's back.
    deadline = time.monotonic() + 120
    while not lab_api(lab, "GET", "api/kernels") and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    for kernel in lab_api(lab, "GET", "api/kernels"):
        lab_api(lab, "DELETE", f"api/kernels/{kernel['id']}")

    page.locator(".jp-NotebookPanel-toolbar .lj-launch-button").click()
    dialog = page.locator(".lj-launch")
    try:
        dialog.locator(".lj-launch-queue").wait_for(timeout=60_000)
        assert (
            "alice/laptop · local-process · 0 queued · no agent serving"
            in dialog.locator(".lj-launch-queue").inner_text()
        )
        labels = dialog.locator(".lj-launch-params .lj-launch-row > span:first-child").all_inner_texts()
        assert labels == ["lr (float)", "epochs (int)", "name (str)", "debug (bool)"]
        epochs = dialog.locator('[data-key="p:epochs"]')
        epochs.fill("ten")  # an invalid int is marked before submit, and Submit waits
        assert epochs.get_attribute("aria-invalid") == "true"
        assert "expected a whole number" in dialog.inner_text()
        assert dialog.locator(".lj-launch-submit").is_disabled()
        epochs.fill("3")
        assert epochs.get_attribute("aria-invalid") == "false"
        dialog.locator('[data-key="p:debug"]').check()
        dialog.locator(".lj-launch-preview").click()
        preview = dialog.locator(".lj-launch-request")
        preview.wait_for(timeout=60_000)
        assert '{"epochs": 3, "debug": true}' in preview.inner_text(), preview.inner_text()
        assert api.list_runs() == []  # a preview queues nothing
        screenshot(page, "launch-dialog")
        dialog.locator(".lj-launch-submit").click()
        page.locator(".jp-Notification-Toast-success, .Toastify__toast--success").first.wait_for(timeout=60_000)
    except Exception:
        screenshot(page, "launch-dialog-failed")
        raise
    (run,) = api.list_runs(queue="laptop")
    assert run.parameters == {"epochs": 3, "debug": True}
    sources = ["".join(c["source"]) for c in context_notebook(run.id, "train.ipynb")["cells"]]
    assert "# unsaved-edit" in sources[1]  # the dialog saved what was on screen first
    assert lab_api(lab, "GET", "api/kernels") == []  # and no kernel was needed


def test_launch_notebook_from_the_file_browser_context_menu(browser_page, stock_jupyterlab):
    page, lab = browser_page, stock_jupyterlab
    api.create_queue("laptop", "local-process")
    write_notebook(lab.root_dir / "train.ipynb")
    page.goto(f"{lab.url}lab?token={lab.token}")
    item = page.locator('.jp-DirListing-item[data-file-type="notebook"]', has_text="train.ipynb")
    item.wait_for(timeout=120_000)
    item.click(button="right")
    page.locator(".lm-Menu-item", has_text="Launch notebook…").click()
    dialog = page.locator(".lj-launch")
    dialog.locator(".lj-launch-submit").wait_for(timeout=60_000)
    dialog.locator('[data-key="p:name"]').fill("from-the-browser")
    dialog.locator(".lj-launch-submit").click()
    page.locator(".jp-Notification-Toast-success, .Toastify__toast--success").first.wait_for(timeout=60_000)
    (run,) = api.list_runs(queue="laptop")
    assert run.parameters == {"name": "from-the-browser"}


def test_the_runs_panel_is_live_without_a_kernel_cancels_with_a_confirm_and_survives_a_reload(
    browser_page, stock_jupyterlab
):
    page, lab = browser_page, stock_jupyterlab
    api.create_queue("laptop", "local-process")
    api.create_queue("idle", "local-process")
    write_notebook(lab.root_dir / "train.ipynb")
    quick = api.submit(lab.root_dir / "train.ipynb", "laptop", name="quick", save=False)
    waiting = api.submit(lab.root_dir / "train.ipynb", "idle", name="waiting", save=False)
    page.goto(f"{lab.url}lab?token={lab.token}")
    page.locator(".jp-LauncherCard", has_text="Launch Runs").click()
    panel = page.locator(".lj-runs-panel")
    try:
        panel.locator(f'tr.lj-run[data-run-id="{quick.id}"]').wait_for(timeout=60_000)
        panel.locator(".lj-note", has_text="no agent is serving alice/idle").wait_for(timeout=60_000)
        # An agent in another process moves the run: the panel follows it live (no reload, no kernel).
        agent = subprocess.Popen([sys.executable, "-m", "launch_jupyter.cli", "agent", "-q", "laptop", "--until-idle"])
        try:
            panel.locator(f'tr.lj-run[data-run-id="{quick.id}"] .lj-state-succeeded').wait_for(timeout=180_000)
        finally:
            agent.wait(timeout=180)
        counts = panel.locator(".lj-counts").inner_text()
        assert "succeeded 1" in counts and "queued 1" in counts, counts
        # Cancel asks first.
        row = panel.locator(f'tr.lj-run[data-run-id="{waiting.id}"]')
        row.locator(".lj-btn-cancel").click()
        page.locator(".jp-Dialog").wait_for()  # JupyterLab's own dialog asks
        assert api.get_run(waiting.id).run.state.value == "queued"  # only asked, nothing done yet
        page.locator(".jp-Dialog .jp-mod-accept").click()
        panel.locator(f'tr.lj-run[data-run-id="{waiting.id}"] .lj-state-cancelled').wait_for(timeout=60_000)
        assert api.get_run(waiting.id).run.state.value == "cancelled"
        screenshot(page, "runs-panel")
        # A finished run can be deleted from its row, after the same kind of dialog.
        row.locator(".lj-btn-delete").click()
        page.locator(".jp-Dialog .jp-mod-accept", has_text="Delete run").click()
        row.wait_for(state="detached", timeout=60_000)
        assert [r.id for r in api.list_runs()] == [quick.id]
        page.reload()
        page.locator(f'.lj-runs-panel tr.lj-run[data-run-id="{quick.id}"]').wait_for(timeout=120_000)
    except Exception:
        screenshot(page, "runs-panel-failed")
        raise
    assert lab_api(lab, "GET", "api/kernels") == []


def write_run_notebooks(root) -> None:
    """``writer.ipynb`` writes a results file; ``broken.ipynb`` fails in its second cell."""
    writer = nbformat.v4.new_notebook()
    writer.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("rows = 3")
    params.metadata["tags"] = ["parameters"]
    writer.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from pathlib import Path\n"
            "Path('results').mkdir(exist_ok=True)\n"
            "Path('results/metrics.csv').write_text('step,loss\\n' + ''.join(f'{i},{i * i}\\n' for i in range(rows)))\n"
            "print('wrote', rows, 'rows')"
        ),
    ]
    nbformat.write(writer, root / "writer.ipynb")
    broken = nbformat.v4.new_notebook()
    broken.metadata["kernelspec"] = writer.metadata["kernelspec"]
    broken.cells = [
        nbformat.v4.new_code_cell("lr = -1"),
        nbformat.v4.new_code_cell("raise ValueError(f'learning rate must be positive, got {lr}')"),
    ]
    nbformat.write(broken, root / "broken.ipynb")


def finished_runs(lab, rows: int) -> tuple:
    """On queue laptop: "good" (writer.ipynb with ``rows``) succeeded and "bad" (broken.ipynb)
    failed, run by a CLI agent that has returned."""
    api.create_queue("laptop", "local-process")
    write_run_notebooks(lab.root_dir)
    good = api.submit(lab.root_dir / "writer.ipynb", "laptop", name="good", parameters={"rows": rows}, save=False)
    bad = api.submit(lab.root_dir / "broken.ipynb", "laptop", name="bad", save=False)
    agent = subprocess.run(
        [sys.executable, "-m", "launch_jupyter.cli", "agent", "-q", "laptop", "--until-idle"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert agent.returncode == 0, agent.stdout + agent.stderr
    return good, bad


def test_run_pages_show_outputs_a_failure_alert_downloads_and_delete_asks_first(browser_page, stock_jupyterlab):
    page, lab = browser_page, stock_jupyterlab
    good, bad = finished_runs(lab, rows=4)
    assert [api.get_run(r.id).run.state.value for r in (good, bad)] == ["succeeded", "failed"]

    page.goto(f"{lab.url}lab?token={lab.token}")
    page.locator(".jp-LauncherCard", has_text="Launch Runs").click()
    panel = page.locator(".lj-runs-panel")
    try:
        panel.locator(f'tr.lj-run[data-run-id="{good.id}"] .lj-btn-details').click(timeout=60_000)
        detail = page.locator(f'.lj-run-detail[data-run-id="{good.id}"]')
        detail.locator(".lj-detail-file").first.wait_for(timeout=60_000)
        assert detail.locator(".lj-detail-name").inner_text() == "good"
        assert detail.locator('.lj-detail-facts [data-fact="queue"]').inner_text() == "alice/laptop"
        assert detail.locator('.lj-detail-params tr[data-name="rows"] td').inner_text() == "4"
        assert detail.locator(".lj-detail-events li").last.get_attribute("data-state") == "succeeded"
        assert detail.locator(".lj-alert").count() == 0
        assert "wrote 4 rows" in detail.locator(".lj-detail-log").inner_text()
        names = detail.locator(".lj-detail-file").evaluate_all("rows => rows.map(r => r.dataset.name)")
        assert names == ["output.ipynb", "results/metrics.csv"], names
        with page.expect_download() as download:
            detail.locator('.lj-detail-file[data-name="results/metrics.csv"] .lj-btn-download').click()
        assert download.value.suggested_filename == "metrics.csv"
        assert open(download.value.path()).read() == "step,loss\n0,0\n1,1\n2,4\n3,9\n"
        # The executed notebook, read-only and with no kernel: nbconvert's HTML in a sandboxed frame.
        detail.locator('.lj-detail-file[data-name="output.ipynb"] .lj-btn-view').click()
        frame = page.frame_locator(".lj-notebook-frame")
        frame.locator("body", has_text="wrote 4 rows").wait_for(timeout=60_000)
        assert page.locator(".lj-notebook-frame").get_attribute("sandbox") == ""
        screenshot(page, "run-detail-succeeded")

        page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="Runs").first.click()
        panel.locator(f'tr.lj-run[data-run-id="{bad.id}"] .lj-btn-details').click()
        failed = page.locator(f'.lj-run-detail[data-run-id="{bad.id}"]')
        alert = failed.locator('.lj-alert-error[role="alert"]')
        alert.wait_for(timeout=60_000)
        assert "ValueError: learning rate must be positive, got -1" in alert.inner_text(), alert.inner_text()
        red, green, blue = alert.evaluate("el => getComputedStyle(el).color.match(/\\d+/g).slice(0, 3).map(Number)")
        assert red > green and red > blue, (red, green, blue)  # the theme's error colour
        screenshot(page, "run-detail-failed")

        # Delete asks first: "Keep" keeps it, "Delete run" deletes it and closes its page.
        failed.locator(".lj-btn-delete").click()
        page.locator(".jp-Dialog .jp-mod-reject").click()
        assert api.get_run(bad.id).run.state.value == "failed"
        failed.locator(".lj-btn-delete").click()
        page.locator(".jp-Dialog .jp-mod-accept").click()
        failed.wait_for(state="detached", timeout=60_000)
        assert [r.id for r in api.list_runs()] == [good.id]
        page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="Runs").first.click()
        panel.locator(f'tr.lj-run[data-run-id="{bad.id}"]').wait_for(state="detached", timeout=60_000)
    except Exception:
        screenshot(page, "run-detail-failed-test")
        raise
    assert lab_api(lab, "GET", "api/kernels") == []


def test_a_running_runs_page_follows_its_log_and_state_live(browser_page, stock_jupyterlab):
    from launch_jupyter.core.trust import run_folder

    page, lab = browser_page, stock_jupyterlab
    api.create_queue("laptop", "local-process")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    # The run waits for a file the test writes into its working folder: it is running as long as we like.
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import pathlib, time\nprint('waiting for go', flush=True)\n"
            "while not pathlib.Path('go').exists():\n    time.sleep(0.05)\nprint('got go', flush=True)"
        )
    ]
    nbformat.write(nb, lab.root_dir / "gated.ipynb")
    run = api.submit(lab.root_dir / "gated.ipynb", "laptop", name="gated", save=False)
    go = run_folder(api.agent_config().data_dir, run.id) / "context" / "go"
    agent = subprocess.Popen([sys.executable, "-m", "launch_jupyter.cli", "agent", "-q", "laptop", "--until-idle"])
    try:
        page.goto(f"{lab.url}lab?token={lab.token}")
        page.locator(".jp-LauncherCard", has_text="Launch Runs").click()
        page.locator(f'.lj-runs-panel tr.lj-run[data-run-id="{run.id}"] .lj-btn-details').click(timeout=60_000)
        detail = page.locator(f'.lj-run-detail[data-run-id="{run.id}"]')
        detail.locator(".lj-detail-log", has_text="waiting for go").wait_for(timeout=180_000)
        page.locator(f'.lj-run-detail[data-run-id="{run.id}"][data-state="running"]').wait_for(timeout=60_000)
        assert detail.locator("h3", has_text="Log (following)").count() == 1
        assert detail.locator(".lj-btn-delete").is_disabled()  # an active run is cancelled, not deleted
        go.write_text("")
        page.locator(f'.lj-run-detail[data-run-id="{run.id}"][data-state="succeeded"]').wait_for(timeout=180_000)
        detail.locator(".lj-detail-log", has_text="got go").wait_for(timeout=60_000)
        assert not detail.locator(".lj-btn-delete").is_disabled()
        assert detail.locator(".lj-btn-cancel").count() == 0
        # What appeared in its working folder after packing counts as the run's (here the test's "go").
        assert "go" in detail.locator(".lj-detail-file").evaluate_all("rows => rows.map(r => r.dataset.name)")
        page.reload()  # the run's page comes back with the layout
        page.locator(f'.lj-run-detail[data-run-id="{run.id}"][data-state="succeeded"]').wait_for(timeout=120_000)
    except Exception:
        screenshot(page, "run-detail-live-failed")
        raise
    finally:
        if go.parent.is_dir():
            go.touch()  # never leave the agent waiting on a failed test
        agent.wait(timeout=180)


CONTRAST = """els => els.map(el => {
  const rgb = text => (text.match(/[\\d.]+/g) || []).map(Number);
  const background = node => {
    for (; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const lum = c => {
    const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const a = lum(rgb(getComputedStyle(el).color).slice(0, 3)), b = lum(background(el));
  return [el.className, el.textContent.trim().slice(0, 30), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
})"""


def test_the_runs_tab_and_a_run_page_are_readable_in_the_dark_theme(browser_page, stock_jupyterlab):
    """JupyterLab Dark, chosen from the Settings menu as a user does: every state badge, the rows'
    text and a failed run's alert keep their contrast (≥ 4.5:1 for the badges and text, ≥ 3:1 for
    the alert, WCAG AA), because the styles use the theme's --jp-* colours or colours that hold in both."""
    page, lab = browser_page, stock_jupyterlab
    good, bad = finished_runs(lab, rows=2)
    api.submit(lab.root_dir / "writer.ipynb", "laptop", name="waiting", save=False)  # queued: no agent now
    api.cancel(api.submit(lab.root_dir / "writer.ipynb", "laptop", name="dropped", save=False).id)

    page.goto(f"{lab.url}lab?token={lab.token}")
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=60_000)
    page.locator(".jp-LauncherCard", has_text="Launch Runs").click()
    panel = page.locator(".lj-runs-panel")
    try:
        panel.locator(f'tr.lj-run[data-run-id="{good.id}"]').wait_for(timeout=60_000)
        badges = panel.locator("tr.lj-run .lj-badge")
        badges.first.wait_for()
        states = set(panel.locator("tr.lj-run").evaluate_all("rows => rows.map(r => r.dataset.state)"))
        assert states == {"succeeded", "failed", "queued", "cancelled"}, states
        for cls, text, ratio in badges.evaluate_all(CONTRAST) + panel.locator("tr.lj-run td.lj-col-run").evaluate_all(
            CONTRAST
        ):
            assert ratio >= 4.5, (cls, text, ratio)
        screenshot(page, "runs-tab-dark")
        panel.locator(f'tr.lj-run[data-run-id="{bad.id}"] .lj-btn-details').click()
        alert = page.locator(f'.lj-run-detail[data-run-id="{bad.id}"] .lj-alert-error[role="alert"]')
        alert.wait_for(timeout=60_000)
        [(cls, text, ratio)] = alert.evaluate_all(CONTRAST)
        assert ratio >= 3, (cls, text, ratio)
        screenshot(page, "run-detail-failed-dark")
    except Exception:
        screenshot(page, "runs-tab-dark-failed-test")
        raise


A100_CONFIG = A100_YAML.replace("timeout: 7200", "timeout: 3600")  # one hour: worst case = hourly price


def test_the_launch_dialog_shows_the_price_and_an_over_budget_run_is_refused_with_the_figures(
    browser_page, stock_jupyterlab
):
    page, lab = browser_page, stock_jupyterlab
    api.create_queue("a100", "vertex", config=A100_CONFIG)
    api.create_queue("capped", "vertex", config=A100_CONFIG + "budget:\n  max_run_cost: 2\n")
    write_notebook(lab.root_dir / "train.ipynb")
    page.goto(lab.lab_url("train.ipynb"))
    page.locator(".jp-Notebook .jp-Cell").nth(1).wait_for(timeout=120_000)
    page.locator(".jp-NotebookPanel-toolbar .lj-launch-button").click()
    dialog = page.locator(".lj-launch")
    price = dialog.locator(".lj-launch-price")
    try:
        dialog.locator(".lj-launch-queue").select_option("alice/a100")
        # a2-highgpu-1g + one A100 in us-central1 from the shipped table: $4.22/h, run.timeout 1 h.
        page.wait_for_function(
            "() => (document.querySelector('.lj-launch-price')?.innerText || '').includes('$4.22/h')", timeout=60_000
        )
        assert "Cost: $4.22/h (on-demand, us-central1) · worst case $4.22 for run.timeout 1 h" in price.inner_text()
        # Two A100s on the bigger machine: the price follows the override as it is typed.
        dialog.locator('[data-key="r:spec.worker_pool_specs[0].machine_spec.machine_type"]').fill("a2-highgpu-2g")
        dialog.locator('[data-key="r:spec.worker_pool_specs[0].machine_spec.accelerator_count"]').fill("2")
        page.wait_for_function(
            "() => (document.querySelector('.lj-launch-price')?.innerText || '').includes('$8.45/h')", timeout=60_000
        )
        dialog.locator(".lj-launch-preview").click()
        dialog.locator(".lj-launch-cost").wait_for(timeout=60_000)
        assert "worst case for run.timeout 1 h: $8.45" in dialog.locator(".lj-launch-cost").inner_text()
        dialog.locator(".lj-launch-queue").select_option("alice/capped")
        alert = price.locator(".lj-launch-error")
        alert.wait_for(timeout=60_000)
        assert "over the queue's max_run_cost of $2.00" in alert.inner_text()
        screenshot(page, "launch-dialog-price")
        dialog.locator(".lj-launch-submit").click()
        refused = dialog.locator(".lj-launch-status .lj-launch-error")
        refused.wait_for(timeout=60_000)
        assert "budget.max_run_cost" in refused.inner_text() and "$4.22" in refused.inner_text()
    except Exception:
        screenshot(page, "launch-dialog-price-failed")
        raise
    assert api.list_runs() == []  # refused: nothing queued
