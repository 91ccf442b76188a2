"""Comparing runs: `launch-jupyter sweep show` (table, --json, --csv, --sort), `sweeps`, `compare`,
`%launch sweep` in a real InteractiveShell, and the live SweepBoard widget through its Python side."""

from __future__ import annotations

import csv
import io
import json
import time

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.cli import main
from launch_jupyter.core.states import RunState
from launch_jupyter.widgets import SweepBoard

pytestmark = pytest.mark.slow


@pytest.fixture
def notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("lr = 0.1\nlayers = 2")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "import launch_jupyter\nlaunch_jupyter.record('accuracy', round(layers / 10 + lr, 6))"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb" / "train.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


@pytest.fixture
def store(sqlite_url, monkeypatch):
    monkeypatch.setenv("LAUNCH_JUPYTER_DB", sqlite_url)
    api.create_queue("q", "local-process")
    return sqlite_url


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def wait_for(predicate, timeout=180.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_cli_sweep_show_sweeps_and_compare(store, notebook, capsys):
    code, out, err = cli(
        capsys,
        "sweep",
        str(notebook),
        "-q",
        "q",
        "-p",
        "lr=0.1,0.2",
        "-p",
        "layers",
        "range(1,3)",
        "--max-parallel",
        "2",
        "--name",
        "lr-grid",
    )
    assert code == 0, err
    sweep_id = out.split()[2]
    assert out.startswith(f"queued sweep {sweep_id} (4 runs) on alice/q")
    Agent(["q"], max_jobs=2, poll_interval=0.2).run_forever(until_idle=True)

    code, out, _ = cli(capsys, "sweep", "show", sweep_id, "--sort", "-accuracy")
    lines = out.splitlines()
    assert lines[0].startswith(f"sweep {sweep_id} 'lr-grid' on alice/q: 4/4 done (grid, at most 2 at a time)")
    assert lines[1].split() == ["RUN", "STATE", "lr", "layers", "accuracy", "DURATION"]
    assert lines[2].startswith("*") and lines[2].split()[2:6] == ["succeeded", "0.2", "2", "0.4"]
    assert [line.split()[4] for line in lines[3:]] == ["0.3", "0.3", "0.2"]
    code, out, _ = cli(capsys, "sweep", "show", sweep_id, "--csv", "--sort=accuracy")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [float(r["accuracy"]) for r in rows] == [0.2, 0.3, 0.3, 0.4]
    assert [(r["lr"], r["layers"]) for r in rows] == [("0.1", "1"), ("0.1", "2"), ("0.2", "1"), ("0.2", "2")]
    code, out, _ = cli(capsys, "sweep", "show", sweep_id, "--json", "--sort=-accuracy")
    table = json.loads(out)
    assert table["best"] == table["rows"][0]["id"] and table["rows"][0]["values"] == {"accuracy": 0.4}
    assert table["counts"] == {"succeeded": 4} and table["sweep"]["total"] == 4

    code, out, _ = cli(capsys, "sweeps", "--sort=-accuracy")
    assert out.splitlines()[1].split()[:5] == [sweep_id, "lr-grid", "alice/q", "4/4", "0.4"]
    ids = [r["id"] for r in table["rows"]]
    code, out, _ = cli(capsys, "compare", ids[3], ids[0], "--json")
    assert [r["id"] for r in json.loads(out)["rows"]] == [ids[3], ids[0]]


def test_cli_bad_sweep_input_is_one_line_and_queues_nothing(store, notebook, capsys):
    for argv in (
        ["sweep", str(notebook), "-q", "q", "-p", "depth=1,2"],
        ["sweep", str(notebook), "-q", "q", "-p", "lr=uniform(0.1,1)"],
        ["sweep", str(notebook), "-p", "lr=0.1"],
        ["sweep", "show"],
        ["sweep", "show", "nosuchsweep"],
    ):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("launch-jupyter: error:"), argv
    assert api.list_runs() == [] and api.list_sweeps() == []


def test_random_sweep_from_the_cli_is_reproducible(store, notebook, capsys):
    drawn = []
    for _ in range(2):
        code, out, err = cli(
            capsys,
            "sweep",
            str(notebook),
            "-q",
            "q",
            "-p",
            "lr=loguniform(0.001,0.1)",
            "-p",
            "layers=choice(1,2,3)",
            "--random",
            "5",
            "--seed",
            "3",
        )
        assert code == 0, err
        drawn.append([r.parameters for r in api.open_store().sweep_runs(out.split()[2])])
    assert drawn[0] == drawn[1] and len(drawn[0]) == 5


def test_magic_sweep_and_the_live_widget(store, notebook, capsys):
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "launch_jupyter")
        shell.run_line_magic("launch", f"sweep --notebook {notebook} -q q -p lr=0.1,0.2 -p layers=1,2 --max-parallel 1")
        out = capsys.readouterr().out
        assert out.startswith("queued sweep ") and "(4 runs) on alice/q" in out
        handle = shell.user_ns["_launch_sweep"]
        board = SweepBoard(handle.id, sort="-accuracy")
        try:
            assert [r["state"] for r in board.rows] == ["queued"] * 4 and board.plot_svg == ""
            api.start_agent(["q"])
            wait_for(lambda: [r["state"] for r in board.rows] == ["succeeded"] * 4, what="the board to show all done")
            assert board.sweep["done"] == 4 and board.values == ["accuracy"] and board.plot_value == "accuracy"
            assert [r["values"]["accuracy"] for r in board.rows] == [0.4, 0.3, 0.3, 0.2]
            assert board.best == board.rows[0]["id"]
            assert board.plot_svg.lstrip().startswith("<?xml") and "<svg" in board.plot_svg
            board.sort_by("accuracy")
            assert [r["values"]["accuracy"] for r in board.rows] == [0.2, 0.3, 0.3, 0.4]
            board.set_plot(value="accuracy", x="lr", y="layers")
            assert board.plot_y == "layers" and "<svg" in board.plot_svg
            assert board.run_action("cancel_sweep") == {"id": handle.id, "cancelled": 0, "cancelling": 0}
        finally:
            board.close()
        shell.run_line_magic("launch", f"sweep show {handle.id}")  # displays a SweepBoard
        ids = [r.id for r in handle.runs()]
        with capture_output() as shown:
            shell.run_line_magic("launch", f"compare {ids[0]} {ids[1]} --sort -accuracy")
        compared = shown.outputs[0].data["text/plain"]
        assert compared.startswith("SweepBoard(runs: 2/2 done, best "), compared
        with pytest.raises(Exception, match="ffffffffffff"):
            shell.run_line_magic("launch", "compare ffffffffffff")
        with pytest.raises(Exception, match="sweep show needs the sweep's id"):
            shell.run_line_magic("launch", "sweep show")
    finally:
        api.stop_agent()
        InteractiveShell.clear_instance()
    assert all(r.state is RunState.SUCCEEDED for r in handle.runs())
