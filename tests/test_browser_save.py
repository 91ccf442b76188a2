"""`%launch submit` in JupyterLab saves the notebook first: an edit not yet saved is what gets
submitted. Checked through both ways the save request takes: the app's docmanager:save command,
and the Ctrl+S key binding used when the page does not expose the app object (stock JupyterLab)."""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import nbformat
import pytest

from launch_jupyter import api
from tests.test_browser import KERNEL_IDLE, open_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RAN = """() => {
  const app = window.jupyterapp ?? window.__hiddenApp;
  const panel = app.shell.currentWidget;
  const cells = panel.content.widgets.filter((c) => c.model.type === "code");
  return panel.sessionContext.session?.kernel?.status === "idle"
    && cells.every((c) => c.model.executionCount !== null);
}"""


def write_notebook(path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext launch_jupyter\n"
                                  "%launch queue create saver --resource local-process --exist-ok"),
        nbformat.v4.new_code_cell("%launch submit -q saver"),
    ]
    nbformat.write(nb, path)


@pytest.mark.parametrize("way", ["app-command", "ctrl-s"])
def test_submit_sends_the_notebook_as_edited_not_as_last_saved(browser_page, jupyterlab, way):
    page = browser_page
    name = f"saver-{way}.ipynb"
    write_notebook(jupyterlab.root_dir / name)
    open_notebook(page, jupyterlab, name)
    marker = f"edited-{uuid.uuid4().hex[:8]}"
    # An edit in the browser only: the file on disk does not have it yet.
    page.evaluate("""(marker) => {
      const cell = window.jupyterapp.shell.currentWidget.content.widgets[0];
      cell.model.sharedModel.setSource(`# ${marker}\\n` + cell.model.sharedModel.getSource());
    }""", marker)
    assert marker not in (jupyterlab.root_dir / name).read_text()
    if way == "ctrl-s":
        page.evaluate("() => { window.__hiddenApp = window.jupyterapp; delete window.jupyterapp; }")
        assert page.evaluate("() => window.jupyterapp === undefined")  # the widget must use Ctrl+S
    page.evaluate("() => { void (window.jupyterapp ?? window.__hiddenApp).commands"
                  ".execute('notebook:run-all-cells'); }")
    page.wait_for_function(RAN, timeout=120_000, polling=250)
    if way == "ctrl-s":
        page.evaluate("() => { window.jupyterapp = window.__hiddenApp; }")
        page.wait_for_function(KERNEL_IDLE)
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    assert any("submitted run" in text for text in outputs), outputs
    assert not any("no frontend answered" in text for text in outputs), outputs

    run = next(r for r in api.list_runs(queue="saver") if r.notebook.endswith(name))
    context = api.open_store().get_context(run.id)
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        submitted = json.loads(tar.extractfile(name).read())
    assert marker in "".join(submitted["cells"][0]["source"])
