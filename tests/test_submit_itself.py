"""A notebook that submits itself, run in a real kernel (nbclient, which sets no frontend): the
README's quick start shape. One run is queued per execution, the run executes the same notebook,
its own %launch cells print the skip line there, and the parameter takes effect. Running the
notebook again in a new kernel (a restart) finds its queue unchanged and queues one more run."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient

from launch_jupyter import api
from tests.fixtures.common import EXAMPLES, REPO

pytestmark = pytest.mark.slow


def self_submitting(path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("rows = 10  # how many rows")
    params.metadata["tags"] = ["parameters"]
    wait = nbformat.v4.new_code_cell("print('run ended:', _launch_run.wait(timeout=600))")
    wait.metadata["tags"] = ["skip-execution"]  # nbclient, and so papermill, skip it inside the run
    nb.cells = [
        params,
        nbformat.v4.new_code_cell("total = rows * 3\nprint(f'total={total}')"),
        nbformat.v4.new_code_cell("%load_ext launch_jupyter"),
        nbformat.v4.new_code_cell("%%launch queue create selfq --resource local-process\ntimeout: null"),
        nbformat.v4.new_code_cell("%launch agent start -q selfq"),
        nbformat.v4.new_code_cell("%launch submit -q selfq -p rows=4"),
        wait,
    ]
    nbformat.write(nb, path)


def run_in_a_new_kernel(path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "JPY_SESSION_NAME": str(path), "LAUNCH_JUPYTER_POLL_INTERVAL": "0.2"}
    # skip_cells_with_tag="": this is the user's own kernel, where every cell runs.
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        skip_cells_with_tag="",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)
    return nb


def text(cell) -> str:
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))


def test_the_notebook_you_are_in_submits_itself_once_and_runs_with_the_parameter(tmp_path, isolated_home):
    path = tmp_path / "selfsubmit.ipynb"
    self_submitting(path)
    nb = run_in_a_new_kernel(path)
    assert "created queue alice/selfq (local-process)" in text(nb.cells[3])
    assert "submitted run" in text(nb.cells[5])
    assert "submitted selfsubmit.ipynb as last saved" in text(nb.cells[5])  # nbclient: no frontend to save
    assert "run ended: succeeded" in text(nb.cells[6])
    (run,) = api.list_runs(queue="selfq")
    assert run.parameters == {"rows": 4} and run.notebook == str(path)

    executed = nbformat.read(run.output_notebook, as_version=4)
    cells = [c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    assert "total=12" in text(cells[1])  # rows=4 reached the run
    short = run.id[:8]
    assert text(cells[3]).strip() == (
        f'[launch] inside run {short}… of alice/selfq: "%%launch queue create selfq --resource local-process" skipped'
    )
    assert (
        text(cells[4]).strip() == f'[launch] inside run {short}… of alice/selfq: "%launch agent start -q selfq" skipped'
    )
    assert (
        text(cells[5]).strip()
        == f'[launch] inside run {short}… of alice/selfq: "%launch submit -q selfq -p rows=4" skipped'
    )
    assert cells[6].get("outputs") == []  # skip-execution: not run inside the run
    assert len(api.list_runs(queue="selfq")) == 1  # no recursion: the run queued nothing

    again = run_in_a_new_kernel(path)  # a kernel restart and Run All
    assert "unchanged queue alice/selfq (local-process)" in text(again.cells[3])
    assert "run ended: succeeded" in text(again.cells[6])
    runs = api.list_runs(queue="selfq")
    assert len(runs) == 2 and all(str(r.state) == "succeeded" for r in runs)


def readme_quick_start() -> list[str]:
    """The code blocks of the README's quick start, in order."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("From a shell:", 1)[0]
    return [block.split("\n", 1)[1].rstrip("\n") for block in section.split("```")[1::2]]


def test_the_readme_quick_start_is_train_ipynb_and_works_typed_in_and_re_run(tmp_path, isolated_home):
    train = nbformat.read(EXAMPLES / "train.ipynb", as_version=4)
    assert readme_quick_start() == [c.source for c in train.cells if c.cell_type == "code"]
    path = tmp_path / "train.ipynb"
    for attempt in (1, 2):  # typed in and run, then a kernel restart and Run All
        nb = nbformat.read(EXAMPLES / "train.ipynb", as_version=4)
        wait = nbformat.v4.new_code_cell(
            "print('run ended:', _launch_run.wait(timeout=600), _launch_run.refresh().run.message)"
        )
        wait.metadata["tags"] = ["skip-execution"]  # the test's own cell: not part of the run
        nb.cells.append(wait)
        nbformat.write(nb, path)
        done = run_in_a_new_kernel(path)
        queue_line = text(done.cells[4])
        assert ("created" if attempt == 1 else "unchanged") + " queue alice/laptop" in queue_line, queue_line
        assert "submitted run" in text(done.cells[5]) and "run ended: succeeded" in text(done.cells[6])
    runs = api.list_runs(queue="laptop")
    assert len(runs) == 2 and {str(r.state) for r in runs} == {"succeeded"}
    executed = nbformat.read(runs[0].output_notebook, as_version=4)
    assert "lr=0.1 epochs=3 loss=0.7290" in "".join(text(c) for c in executed.cells)


def test_pip_install_enables_the_jupyterlab_extension(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path)}  # no user-level enable/disable in play
    listed = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", "list"], env=env, capture_output=True, text=True, check=True
    )
    line = next(ln for ln in (listed.stdout + listed.stderr).splitlines() if "launch-jupyter" in ln)
    assert "enabled" in line and "OK" in line and "(python, launch-jupyter)" in line, line
