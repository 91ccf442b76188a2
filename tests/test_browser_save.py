"""`%launch submit` of the notebook you are in, in a stock JupyterLab (no `expose_app_in_browser`),
driven the way a user drives it: type in a cell, do not save, run the submit cell. The JupyterLab
extension saves the notebook and says when the file is written; each run holds that time's edit.
With the extension disabled, the last saved version is submitted and the output says so."""

from __future__ import annotations

import io
import json
import re
import tarfile

import nbformat
import pytest

from launch_jupyter import api
from tests.fixtures.jupyterlab import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SUBMITS = 30
SUBMITTED = re.compile(r"submitted run (\w+) to alice/selfq \((\d+\.\d+) s\)")


def write_notebook(path, queue: str = "selfq") -> None:
    """A notebook that creates ``queue`` and submits itself to it from its own cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("rows = 10")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(f"%load_ext launch_jupyter\n%launch queue create {queue} --resource local-process"),
        nbformat.v4.new_code_cell(f"%launch submit -q {queue} -p rows=4"),
    ]
    nbformat.write(nb, path)


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def run_cell(page, index: int, count: int, lab=None) -> str:
    """Run cell ``index`` with Ctrl+Enter (as a user would) and wait for execution ``count``.

    Under load a key press can land before the cell editor has focus; the prompt then stays
    ``[ ]`` (nothing was queued), and the user presses again. A cell that was queued (``[*]``)
    and never finishes fails the test, with the lab's log.
    """
    from playwright.sync_api import expect

    target = cell(page, index)
    prompt = target.locator(".jp-InputPrompt")
    queued = re.compile(rf"\[(\*|{count})\]")
    for attempt in (1, 2):
        target.locator(".cm-content").click()
        page.keyboard.press("Control+Enter")
        try:
            expect(prompt).to_have_text(queued, timeout=30_000)
            break
        except AssertionError:
            screenshot(page, f"browser-save-cell{index}-run{count}-not-queued-{attempt}")
            if attempt == 2:
                raise
    try:
        target.locator(".jp-InputPrompt", has_text=f"[{count}]").wait_for(timeout=120_000)
    except Exception:
        screenshot(page, f"browser-save-cell{index}-run{count}")
        if lab is not None:
            print(lab.log.read_text()[-4000:])
        print("prompt:", prompt.inner_text(), "output:", target.locator(".jp-OutputArea").inner_text())
        raise
    return "\n".join(target.locator(".jp-OutputArea-output").all_inner_texts())


def edit_first_cell(page, marker: str) -> None:
    cell(page, 0).locator(".cm-content").click()
    page.keyboard.press("Control+Home")
    page.keyboard.type(f"# {marker}\n")


def open_stock(page, lab, name: str) -> None:
    page.goto(lab.lab_url(name))
    page.locator(".jp-Notebook .jp-Cell").nth(2).wait_for(timeout=120_000)
    # The kernel is connected and idle: the notebook's kernel indicator says so. Attached, not visible,
    # and not only in the toolbar: in a narrow window JupyterLab moves it to the toolbar's overflow.
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
        state="attached", timeout=120_000
    )
    assert page.evaluate("() => window.jupyterapp === undefined")  # a stock JupyterLab


def submitted_source(run_id: str, name: str) -> str:
    context = api.open_store().get_context(run_id)
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        return "".join(json.loads(tar.extractfile(name).read())["cells"][0]["source"])


def test_thirty_submits_in_a_row_each_send_that_times_edit(browser_page, stock_jupyterlab):
    page, lab = browser_page, stock_jupyterlab
    write_notebook(lab.root_dir / "self.ipynb")
    open_stock(page, lab, "self.ipynb")
    first = run_cell(page, 1, 1, lab)
    assert "created queue alice/selfq" in first, first
    runs, times = [], []
    for attempt in range(SUBMITS):
        marker = f"edit-{attempt}"
        edit_first_cell(page, marker)
        assert marker not in (lab.root_dir / "self.ipynb").read_text()  # an edit in the browser only
        out = run_cell(page, 2, attempt + 2, lab)
        match = SUBMITTED.search(out)
        assert match, out
        assert "no JupyterLab extension answered" not in out, out
        runs.append((match.group(1), marker))
        times.append(float(match.group(2)))
    assert len(api.list_runs(queue="selfq")) == SUBMITS
    failures = [(run_id, marker) for run_id, marker in runs if marker not in submitted_source(run_id, "self.ipynb")]
    assert failures == []
    times.sort()
    print(
        f"submits of the current notebook: {SUBMITS}/{SUBMITS}; time incl. save p50 {times[len(times) // 2]:.2f} s, "
        f"max {times[-1]:.2f} s"
    )


def test_with_the_extension_disabled_the_last_saved_version_is_submitted_and_said(browser_page, lab_without_extension):
    page, lab = browser_page, lab_without_extension
    write_notebook(lab.root_dir / "self.ipynb")
    open_stock(page, lab, "self.ipynb")
    run_cell(page, 1, 1, lab)
    edit_first_cell(page, "unsaved-edit")
    out = run_cell(page, 2, 2, lab)
    assert SUBMITTED.search(out), out
    assert "no JupyterLab extension answered the save request: submitted self.ipynb as last saved (" in out, out
    (run,) = api.list_runs(queue="selfq")
    source = submitted_source(run.id, "self.ipynb")
    assert source == "rows = 10" and "unsaved-edit" not in source
