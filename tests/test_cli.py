"""``launch-jupyter``: queue and run commands, and bad input that changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from launch_jupyter import api
from launch_jupyter.cli import main
from tests.fixtures.common import EXAMPLES

QUICKSTART = str(EXAMPLES / "quickstart.ipynb")


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot():
    """Everything the store holds that bad input must not change."""
    queues = [(q.path, q.config, q.prioritization, [v.to_dict() for v in q.template_vars]) for q in api.list_queues()]
    runs = [(r.id, r.state) for r in api.list_runs()]
    return queues, runs


def test_queue_create_list_show_edit_delete(capsys, tmp_path):
    assert cli(capsys, "queue", "create", "laptop", "--resource", "local-process")[0] == 0
    config = tmp_path / "q.yaml"
    config.write_text("timeout: 600\nenv:\n  MODE: fast\n")
    code, out, _ = cli(
        capsys,
        "queue",
        "create",
        "team-q",
        "--resource",
        "local-process",
        "--entity",
        "ml-team",
        "--config",
        str(config),
        "--prioritization",
    )
    assert code == 0 and "ml-team/team-q" in out
    code, out, _ = cli(capsys, "queue", "list", "--json")
    listed = {q["queue"]: q for q in json.loads(out)}
    assert listed["alice/laptop"]["visibility"] == "private"
    assert listed["ml-team/team-q"]["visibility"] == "shared"
    assert listed["ml-team/team-q"]["prioritization"] is True
    code, out, _ = cli(capsys, "queue", "show", "team-q")
    assert code == 0 and "timeout: 600" in out and "MODE: fast" in out
    config.write_text("timeout: 60\n")
    assert cli(capsys, "queue", "edit", "team-q", "--config", str(config), "--no-prioritization")[0] == 0
    queue = api.get_queue("team-q")
    assert queue.config == {"timeout": 60} and queue.prioritization is False
    assert cli(capsys, "queue", "delete", "laptop")[0] == 0
    assert [q.path for q in api.list_queues()] == ["ml-team/team-q"]


def test_default_config_prints_the_seed_for_vertex(capsys):
    code, out, _ = cli(capsys, "queue", "default-config", "vertex")
    assert code == 0
    assert "staging_bucket: <REQUIRED>" in out and "image_uri: ${image_uri}" in out


def test_submit_runs_and_run_show(capsys):
    cli(capsys, "queue", "create", "q", "--resource", "local-process")
    code, out, _ = cli(
        capsys,
        "submit",
        QUICKSTART,
        "-q",
        "q",
        "-p",
        "name",
        "cli",
        "-p",
        "n=2",
        "--priority",
        "high",
        "--name",
        "first",
    )
    assert code == 0
    run_id = out.split()[2]
    run = api.get_run(run_id).run
    assert run.parameters == {"name": "cli", "n": 2}
    assert str(run.priority) == "high" and run.name == "first" and run.author == "alice"
    code, out, _ = cli(capsys, "runs", "--queue", "q", "--json")
    assert [r["id"] for r in json.loads(out)] == [run_id]
    code, out, _ = cli(capsys, "runs", "--state", "queued")
    assert run_id in out
    code, out, _ = cli(capsys, "run", "show", run_id[:6])
    assert code == 0 and "queued" in out and "events:" in out
    code, out, _ = cli(capsys, "cancel", run_id)
    assert code == 0 and "cancelled" in out
    assert api.get_run(run_id).state == "cancelled"


def test_queue_create_again_is_unchanged_and_exist_ok_updates_it(capsys):
    """A script that creates its queue can run twice; --exist-ok (as %launch queue create has) takes
    other settings instead of refusing them."""
    assert cli(capsys, "queue", "create", "nightly", "-r", "local-process")[0] == 0
    code, out, _ = cli(capsys, "queue", "create", "nightly", "-r", "local-process")
    assert code == 0 and out.startswith("unchanged queue alice/nightly")
    code, _, err = cli(capsys, "queue", "create", "nightly", "-r", "local-process", "--prioritization")
    assert code == 2 and "already exists with another prioritization" in err
    assert not api.get_queue("nightly").prioritization
    code, out, _ = cli(capsys, "queue", "create", "nightly", "-r", "local-process", "--prioritization", "--exist-ok")
    assert code == 0 and out.startswith("updated queue alice/nightly") and api.get_queue("nightly").prioritization


BAD_INPUT = [
    (["queue", "create", "bad name!", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "x" * 65, "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "q2", "--resource", "nowhere"], 'unknown resource "nowhere"'),
    (
        ["queue", "create", "q", "--resource", "local-process", "--prioritization"],
        "already exists with another prioritization",
    ),
    (["queue", "create", "q3", "--resource", "local-process", "--config", "@BADYAML"], "line"),
    (["queue", "create", "q3", "--resource", "local-process", "--config", "@WRONGTYPE"], "timeout"),
    (["queue", "create", "q3", "--resource", "local-process", "--config", "/no/such/file.yaml"], "--config"),
    (["queue", "create", "q3", "--resource", "local-process", "--template-var", "n:integer:nope"], "n"),
    (["queue", "show", "missing"], "does not exist"),
    (["queue", "edit", "q"], "nothing to change"),
    (["queue", "edit", "q", "--prioritization", "--no-prioritization"], "not allowed with"),
    (["queue", "delete", "missing"], "does not exist"),
    (["submit", QUICKSTART, "-q", "missing"], "does not exist"),
    (["submit", "/no/such.ipynb", "-q", "q"], "notebook not found"),
    (["submit", "@NOTNB", "-q", "q"], "@NOTNB"),
    (["submit", QUICKSTART, "-q", "q", "-p", "=3"], "-p"),
    (["submit", QUICKSTART, "-q", "q", "-p", "a", "b", "c"], "-p"),
    (["submit", QUICKSTART, "-q", "q", "--priority", "urgent"], "invalid choice"),
    (["submit", QUICKSTART, "-q", "q", "--resource-arg", "timeout"], "--resource-arg"),
    (["submit", QUICKSTART, "-q", "q", "--resource-arg", "timeout=soon"], "timeout"),
    (["submit", QUICKSTART, "-q", "tq", "--set-var", "n=99"], "maximum"),
    (["submit", QUICKSTART, "-q", "tq", "--set-var", "nope=1"], "nope"),
    (["runs", "--state", "sleeping"], "unknown state"),
    (["run", "show", "ffffffffffff"], "ffffffffffff"),
    (["cancel", "ffffffffffff"], "ffffffffffff"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUT, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(capsys, tmp_path, argv, expected):
    cli(capsys, "queue", "create", "q", "--resource", "local-process")
    api.create_queue("tq", "local-process", config="timeout: '{{n}}'\n", template_vars=["n:integer:1:0:8"])
    files = {
        "@BADYAML": "timeout: [1, 2\nenv: {}\n",
        "@WRONGTYPE": "timeout: soon\n",
        "@NOTNB": "this is not json",
    }
    for marker, text in files.items():
        path = tmp_path / (marker[1:].lower() + (".ipynb" if marker == "@NOTNB" else ".yaml"))
        path.write_text(text)
        argv = [str(path) if a == marker else a for a in argv]
        expected = str(path) if expected == marker else expected
    before = snapshot()
    if argv[0] == "frobnicate" or "--priority" in argv or "--no-prioritization" in argv:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        code = exc.value.code
        _, err = capsys.readouterr()
    else:
        code, _, err = cli(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err
    assert snapshot() == before


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "launch_jupyter.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "queue" in done.stdout


def test_a_failure_of_the_work_is_one_line_and_exit_1_not_a_usage_error(capsys, tmp_path):
    # The command line is right; the store it names cannot be opened (a file where a folder must be).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    code, _, err = cli(capsys, "--store", f"sqlite:///{blocker}/store.db", "queue", "list")
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "launch-jupyter: error:" in err, err
    # Bad input stays exit 2 (back on the test's own store).
    assert cli(capsys, "--store", "", "run", "show", "ffffffffffff")[0] == 2


def test_run_delete_refuses_an_active_run_and_forgets_an_ended_one(capsys):
    cli(capsys, "queue", "create", "q", "--resource", "local-process")
    code, out, _ = cli(capsys, "submit", QUICKSTART, "-q", "q")
    run_id = out.split()[2]
    code, _, err = cli(capsys, "run", "delete", run_id)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cancel it first" in err, err
    assert [r.id for r in api.list_runs()] == [run_id]  # nothing changed
    cli(capsys, "cancel", run_id)
    code, out, _ = cli(capsys, "run", "delete", run_id[:8])
    assert code == 0 and f"run {run_id} deleted (cancelled)" in out, out
    assert api.list_runs() == []
    code, _, err = cli(capsys, "run", "delete", run_id)
    assert code == 2 and run_id[:8] in err and len(err.strip().splitlines()) == 1, err


def test_every_command_has_a_handler_that_imports():
    """The dispatch table names a callable for each command the parser knows, and nothing else."""
    import argparse

    from launch_jupyter.cli import _HANDLERS, _handler, _parser

    [commands] = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == set(_HANDLERS)
    for command in commands.choices:
        assert callable(_handler(command)), command
