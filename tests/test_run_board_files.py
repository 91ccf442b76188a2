"""The notebook's run board shows what a finished run wrote (the list the server serves: one source of
truth), copies a file beside the notebook on request, and deletes finished runs only."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from launch_jupyter import api
from launch_jupyter.core.errors import RunError
from launch_jupyter.widgets import RunBoard


@pytest.fixture
def store(sqlite_url, monkeypatch):
    monkeypatch.setenv("LAUNCH_JUPYTER_DB", sqlite_url)
    return sqlite_url


def frontend_click(widget, action: str, **args) -> None:
    """What a click in the browser sends: a custom comm message naming the action."""
    widget._handle_custom_msg({"action": action, "args": args}, [])


def finished_writer_run(folder):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from pathlib import Path\nPath('out').mkdir()\nPath('out/model.txt').write_text('weights')"
        )
    ]
    nbformat.write(nb, folder / "writer.ipynb")
    (folder / "input.csv").write_text("a,b\n")  # packed with it, read by nobody: not an output
    api.create_queue("local", "local-process")
    run = api.submit(folder / "writer.ipynb", "local", save=False)
    done = subprocess.run(
        [sys.executable, "-m", "launch_jupyter.cli", "agent", "-q", "local", "--until-idle"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert api.get_run(run.id).state.value == "succeeded"
    return run


def test_details_list_the_files_a_run_wrote_and_open_copies_one_beside_the_notebook(store, tmp_path, monkeypatch):
    source = tmp_path / "project"
    source.mkdir()
    run = finished_writer_run(source)
    board = RunBoard(follow_events=False)
    try:
        frontend_click(board, "show_files", run_id=run.id)
        assert board.error == ""
        assert board.files_run == run.id
        assert [(f["name"], f["kind"]) for f in board.files] == [
            ("output.ipynb", "notebook"),
            ("out/model.txt", "file"),
        ]
        assert board.files == api.run_files(run.id)["files"]  # the server's list, the same function

        kernel_folder = tmp_path / "notebooks"
        kernel_folder.mkdir()
        monkeypatch.chdir(kernel_folder)
        frontend_click(board, "open_file", run_id=run.id, name="out/model.txt")
        copy = kernel_folder / "launch-outputs" / run.id / "out" / "model.txt"
        assert board.error == "" and copy.read_text() == "weights"
        assert board.open_request["path"].endswith(f"launch-outputs/{run.id}/out/model.txt")
        frontend_click(board, "open_file", run_id=run.id, name="../../input.csv")
        assert board.error.startswith("name: ") and "leaves the run's folder" in board.error
        frontend_click(board, "open_file", run_id=run.id, name="input.csv")
        assert "wrote no file 'input.csv'" in board.error
    finally:
        board.close()


def test_delete_refuses_an_active_run_and_forgets_a_finished_one(store, tmp_path):
    api.create_queue("idle", "local-process")
    nb = nbformat.v4.new_notebook()
    nbformat.write(nb, tmp_path / "empty.ipynb")
    waiting = api.submit(tmp_path / "empty.ipynb", "idle", save=False)
    over = api.submit(tmp_path / "empty.ipynb", "idle", save=False)
    api.cancel(over.id)
    board = RunBoard(follow_events=False)
    try:
        frontend_click(board, "delete", run_id=waiting.id)
        assert board.error == f"run {waiting.id} is queued; cancel it first, then delete it"
        assert {r["id"] for r in board.rows} == {waiting.id, over.id}
        frontend_click(board, "delete", run_id=over.id)
        assert board.error == "" and board.notice == "deleted empty"  # the run is named after its notebook
        assert [r["id"] for r in board.rows] == [waiting.id]
        assert [r.id for r in api.list_runs()] == [waiting.id]
    finally:
        board.close()


def test_delete_on_postgresql_takes_the_runs_history_and_context_with_it(pg_url, tmp_path):
    from sqlalchemy import func, select

    from launch_jupyter.store._schema import run_events

    api.create_queue("idle", "local-process", store_url=pg_url)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "empty.ipynb")
    kept = api.submit(tmp_path / "empty.ipynb", "idle", save=False, store_url=pg_url)
    gone = api.submit(tmp_path / "empty.ipynb", "idle", save=False, store_url=pg_url)
    api.cancel(gone.id, store_url=pg_url)
    store = api.open_store(pg_url)
    assert store.get_context(gone.id) is not None
    with pytest.raises(RunError, match="cancel it first"):
        api.delete_run(kept.id, store_url=pg_url)
    assert api.delete_run(gone.id[:6], store_url=pg_url).id == gone.id  # a unique prefix, as everywhere
    assert [r.id for r in api.list_runs(store_url=pg_url)] == [kept.id]
    assert store.get_context(gone.id) is None and store.get_context(kept.id) is not None
    with store._backend.read() as conn:
        left = conn.execute(select(func.count()).select_from(run_events).where(run_events.c.run_id == gone.id)).scalar()
    assert left == 0
