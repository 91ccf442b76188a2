"""launch_jupyter.record: a print outside a run; inside one (the real entrypoint, papermill) the
value goes into the cell output's display data, the agent stores it with the run, and a value that
cannot be kept says so in the run instead of failing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

import launch_jupyter
from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.states import RunState
from launch_jupyter.record import MIME, read_records

pytestmark = pytest.mark.slow

CELLS = [
    "import launch_jupyter",
    "launch_jupyter.record('accuracy', 0.5)\nlaunch_jupyter.record('accuracy', 0.93)",
    "launch_jupyter.record('note', 'short text')\nlaunch_jupyter.record('curve', [0.1, 0.2, 0.3])",
    "launch_jupyter.record('config', {'layers': 2})\nlaunch_jupyter.record('bad', {1, 2})",
    "launch_jupyter.record('nan', float('nan'))",
    "from matplotlib.figure import Figure\nfig = Figure()\nfig.add_subplot().plot([1, 2], [3, 4])\n"
    "launch_jupyter.record('plot', fig)",
    "print('still running')",
]


@pytest.fixture
def notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb" / "records.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


def test_outside_a_run_record_prints_and_keeps_nothing(capsys):
    assert launch_jupyter.record("accuracy", 0.93) is None
    assert capsys.readouterr().out == "accuracy = 0.93  (launch_jupyter.record keeps values only inside a run)\n"
    with pytest.raises(TypeError, match="name must be non-empty text"):
        launch_jupyter.record("", 1)


def check_records(records: list[dict]) -> None:
    by_name = {r["name"]: r for r in records}
    assert [r["name"] for r in records] == ["accuracy", "note", "curve", "config", "bad", "nan", "plot"]
    assert by_name["accuracy"]["value"] == 0.93  # the last value recorded under a name
    assert by_name["note"]["value"] == "short text" and by_name["curve"]["value"] == [0.1, 0.2, 0.3]
    assert by_name["config"]["value"] == {"layers": 2}
    assert by_name["bad"]["value"] is None and "a set is not a JSON value" in by_name["bad"]["error"]
    assert by_name["nan"]["error"] and "float is not a JSON value" in by_name["nan"]["error"]
    assert "image/png" in by_name["plot"]["display"] and by_name["plot"]["error"] is None


def test_inside_a_run_the_executed_notebook_carries_the_values(notebook, tmp_path):
    output = tmp_path / "out" / "records.ipynb"
    env = {**os.environ, "LAUNCH_RUN_ID": "run-1", "LAUNCH_QUEUE": "q"}
    done = subprocess.run(
        [sys.executable, "-m", "launch_jupyter.execute", "--notebook", str(notebook), "--output", str(output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    executed = json.loads(output.read_text())
    outputs = [o for c in executed["cells"] for o in c.get("outputs", []) if MIME in o.get("data", {})]
    assert outputs[0]["metadata"] == {"launch_jupyter": {"record": "accuracy"}}
    assert "".join(outputs[0]["data"]["text/plain"]) == "recorded accuracy = 0.5"
    check_records(read_records(executed))
    text = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert "cannot record bad" in text and "still running" in text


def test_the_agent_stores_them_with_the_run_and_says_what_it_could_not_keep(notebook):
    api.create_queue("q", "local-process")
    run = api.submit(notebook, "q", save=False)
    Agent(["q"], poll_interval=0.2).run_forever(until_idle=True)
    assert run.refresh().state is RunState.SUCCEEDED, run.run.message
    check_records(api.open_store().records([run.id])[run.id])
    table = api.compare([run.id])
    (row,) = table["rows"]
    assert row["values"]["accuracy"] == 0.93 and set(row["errors"]) == {"bad", "nan"}
    notes = [e.message for e in run.events()]
    assert any(m.startswith("recorded value not kept: cannot record bad") for m in notes)


def test_a_run_without_record_still_shows_its_parameters(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print(n)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, path)
    api.create_queue("q", "local-process")
    run = api.submit(path, "q", parameters={"n": 5}, save=False)
    Agent(["q"], poll_interval=0.2).run_forever(until_idle=True)
    (row,) = api.compare([run.id])["rows"]
    assert row["state"] == "succeeded" and row["parameters"] == {"n": 5} and row["values"] == {}
