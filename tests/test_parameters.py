"""-p values are checked at submit against the notebook's parameters cell: the same rules in the
CLI, the magic and api.submit; each refusal is one message and queues nothing."""

from __future__ import annotations

import json

import nbformat
import pytest

from launch_jupyter import api
from launch_jupyter.cli import main
from launch_jupyter.core.errors import ParameterError
from launch_jupyter.packaging import read_parameters, tag_parameters

pytestmark = pytest.mark.usefixtures("isolated_home")


def notebook(path, first: str, tagged: bool = True, more: str = "print(rows * scale)"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(first)
    if tagged:
        params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Rows"), params, nbformat.v4.new_code_cell(more)]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def queue():
    api.create_queue("laptop", "local-process")
    return "laptop"


TYPED = 'rows = 10  # how many\nscale = 0.5\nlabel = "x"\ndebug = False\nsizes = [1, 2]\nwhere = None\n'


@pytest.mark.parametrize(
    "given,message",
    [
        (
            {"row": 4},
            'nb.ipynb has no parameter "row" (its parameters cell sets rows, scale, label, debug, sizes, '
            'where); did you mean "rows"? To add a new name on purpose: --new-parameter row',
        ),
        (
            {"foo": 1},
            'nb.ipynb has no parameter "foo" (its parameters cell sets rows, scale, label, debug, sizes, '
            "where). To add a new name on purpose: --new-parameter foo",
        ),
        ({"rows": "abc"}, "-p rows: parameter rows is an int (its default: rows = 10  # how many), not 'abc'"),
        ({"rows": 0.5}, "-p rows: parameter rows is an int (its default: rows = 10  # how many), not 0.5"),
        ({"debug": 1}, "-p debug: parameter debug is a bool (its default: debug = False), not 1"),
        ({"sizes": "big"}, "-p sizes: parameter sizes is a list (its default: sizes = [1, 2]), not 'big'"),
    ],
)
def test_each_refusal_is_one_message_and_nothing_is_queued(tmp_path, queue, given, message):
    path = notebook(tmp_path / "nb.ipynb", TYPED)
    with pytest.raises(ParameterError) as err:
        api.submit(path, queue, parameters=given)
    assert str(err.value) == message
    assert api.list_runs() == []


def test_values_are_typed_against_the_defaults(tmp_path, queue):
    path = notebook(tmp_path / "nb.ipynb", TYPED)
    run = api.submit(path, queue, parameters={"rows": 4, "scale": 2, "label": 7, "debug": True, "where": "x"}).run
    assert run.parameters == {"rows": 4, "scale": 2.0, "label": "7", "debug": True, "where": "x"}
    assert isinstance(run.parameters["scale"], float)


def test_a_new_name_on_purpose_needs_the_flag(tmp_path, queue):
    path = notebook(tmp_path / "nb.ipynb", TYPED)
    run = api.submit(path, queue, parameters={"extra": 1}, new_parameters=["extra"]).run
    assert run.parameters == {"extra": 1}


def test_an_untagged_parameters_cell_is_named_with_the_way_to_tag_it(tmp_path, queue):
    # The case that silently ran with 10: papermill injects at the top, the cell sets rows = 10 again.
    path = notebook(tmp_path / "nb.ipynb", "rows = 10  # parameters\nscale = 1", tagged=False)
    with pytest.raises(ParameterError) as err:
        api.submit(path, queue, parameters={"rows": 4})
    assert str(err.value) == (
        "nb.ipynb has no cell tagged `parameters`, so -p rows would be injected at the top and then "
        "overwritten by cell 2 ('rows = 10  # parameters'): tag that cell `parameters` (JupyterLab: the "
        "property inspector (gear icon) → Common Tools → Cell Tags; or `launch-jupyter tag-parameters nb.ipynb`)"
    )
    assert api.list_runs() == []
    # --new-parameter does not make it work: the untagged cell would still overwrite the value.
    with pytest.raises(ParameterError, match="overwritten by cell 2"):
        api.submit(path, queue, parameters={"rows": 4}, new_parameters=["rows"])
    # a name the cell does not set is fine on purpose
    assert api.submit(path, queue, parameters={"seed": 3}, new_parameters=["seed"]).run.parameters == {"seed": 3}
    assert tag_parameters(path) == 2
    assert read_parameters(json.loads(path.read_text())).names() == ["rows", "scale"]
    assert api.submit(path, queue, parameters={"rows": 4}).run.parameters == {"rows": 4}


def test_no_parameters_cell_at_all(tmp_path, queue):
    path = notebook(tmp_path / "nb.ipynb", "import math", tagged=False, more="print(1)")
    with pytest.raises(
        ParameterError,
        match=r"^nb.ipynb has no cell tagged `parameters`: tag the cell that sets "
        r"rows `parameters` \(.*\), or pass --new-parameter rows to add it",
    ):
        api.submit(path, queue, parameters={"rows": 4})
    assert api.list_runs() == []
    assert api.submit(path, queue).run.parameters == {}  # no -p: nothing to check


def test_the_cli_and_the_magic_give_the_same_refusal(tmp_path, queue, capsys):
    path = notebook(tmp_path / "nb.ipynb", TYPED)
    assert main(["submit", str(path), "-q", queue, "-p", "row", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith('launch-jupyter: error: nb.ipynb has no parameter "row"') and 'did you mean "rows"' in err
    assert main(["submit", str(path), "-q", queue, "-p", "row", "4", "--new-parameter", "row"]) == 0
    from IPython.core.interactiveshell import InteractiveShell

    from launch_jupyter.magics import LaunchMagicError

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "launch_jupyter")
    with pytest.raises(LaunchMagicError, match='has no parameter "row"'):
        ip.run_line_magic("launch", f"submit -q {queue} --notebook {path} -p row=4")
    assert len(api.list_runs()) == 1


def test_tag_parameters_refuses_what_it_cannot_find(tmp_path, capsys):
    path = notebook(tmp_path / "nb.ipynb", "import math", tagged=False)
    assert main(["tag-parameters", str(path)]) == 2
    assert "has no cell whose first line says `# parameters`: name the cell with --cell N" in capsys.readouterr().err
    assert main(["tag-parameters", str(path), "--cell", "1"]) == 2
    assert "--cell 1: nb.ipynb has no code cell 1" in capsys.readouterr().err
    assert main(["tag-parameters", str(path), "--cell", "2"]) == 0
    assert "parameters" in json.loads(path.read_text())["cells"][1]["metadata"]["tags"]
