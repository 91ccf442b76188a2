"""The widgets' Python side without a browser: validation, buttons calling the API, live rows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from launch_jupyter import api
from launch_jupyter.core.errors import QueueError
from launch_jupyter.widgets import AgentPanel, QueueEditor, RunBoard, RunStatus, _assets
from tests.fixtures.common import EXAMPLES
from tests.fixtures.vertex import VERTEX_YAML


@pytest.fixture
def store(sqlite_url, monkeypatch):
    """A private SQLite store as the process default; no agent left behind."""
    monkeypatch.setenv("LAUNCH_JUPYTER_DB", sqlite_url)
    monkeypatch.setenv("LAUNCH_JUPYTER_POLL_INTERVAL", "0.2")
    yield sqlite_url
    api.stop_agent()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def frontend_click(widget, action: str, **args) -> None:
    """What a click in the browser sends: a custom comm message naming the action."""
    widget._handle_custom_msg({"action": action, "args": args}, [])


def messages(editor: QueueEditor) -> list[str]:
    return [f"{p['path']}: {p['message']}" if p["path"] else p["message"] for p in editor.problems]


# ---------------------------------------------------------------- the queue editor


def test_editor_starts_from_the_resource_default_and_switching_loads_the_other_default(store):
    editor = QueueEditor()
    assert editor.config_text == api.default_config("local-process")
    assert editor.problems == []
    assert "vertex" in editor.resources and "local-process" in editor.resources
    editor.resource = "vertex"
    assert editor.config_text == api.default_config("vertex")
    # The vertex default leaves the staging bucket to the user, and says so against the key path.
    assert any(m.startswith("spec.staging_bucket:") for m in messages(editor))


BAD_VERTEX = [
    # (what the user typed, the key path the message must name, words it must contain)
    (VERTEX_YAML.replace("  staging_bucket: gs://my-bucket\n", ""), "spec.staging_bucket", "missing"),
    (VERTEX_YAML.replace("staging_bucket", "stagingBucket"), "spec.stagingBucket", 'use "staging_bucket"'),
    (VERTEX_YAML.replace("replica_count: 1", "replica_count: many"), "spec.worker_pool_specs[0].replica_count", ""),
    (VERTEX_YAML.replace("machine_type", "machine_typ"), "spec.worker_pool_specs[0].machine_spec.machine_typ", ""),
    ("spec:\n  worker_pool_specs: [\n", "", "line"),
    ("spec:\n  worker_pool_specs: []\n  staging_bucket: gs://b\n", "spec.worker_pool_specs", "non-empty"),
]


@pytest.mark.parametrize("text, path, words", BAD_VERTEX)
def test_typing_a_bad_config_shows_the_problem_against_its_key_path(store, text, path, words):
    editor = QueueEditor(resource="vertex")
    editor.config_text = VERTEX_YAML
    assert [p for p in editor.problems if p["severity"] == "error"] == []
    editor.config_text = text  # what a keystroke (debounced) sends from the browser
    errors = [p for p in editor.problems if p["severity"] == "error"]
    assert errors, f"no problem reported for {text!r}"
    if path:
        assert any(p["path"] == path for p in errors), messages(editor)
    assert any(words in p["message"] for p in errors), messages(editor)


def test_bad_configs_corpus_if_present(store):
    corpus = Path(__file__).parent / "bad_configs"
    cases = sorted(corpus.glob("*.yaml")) if corpus.is_dir() else []
    if not cases:
        pytest.skip(f"no bad-config corpus at {corpus} yet (written by the Vertex runner's tests)")
    editor = QueueEditor(resource="vertex")
    for case in cases:
        text = case.read_text()
        expected = dict(re.findall(r"^# (path|message): (.*)$", text, re.MULTILINE))
        editor.config_text = text
        assert editor.problems, f"{case.name}: the editor shows no problem"
        if "path" in expected:
            path, words = expected["path"].strip(), expected.get("message", "").strip().strip('"')
            assert any(p["path"] == path and words in p["message"] for p in editor.problems), (case.name, messages(editor))


def test_create_update_delete_buttons_call_the_api(store):
    editor = QueueEditor()
    editor.name = "gpu"
    editor.resource = "vertex"
    editor.config_text = VERTEX_YAML
    editor.prioritization = True
    assert not editor.exists
    frontend_click(editor, "create")
    assert editor.error == ""
    assert editor.notice == "created queue alice/gpu"
    queue = api.get_queue("gpu")
    assert queue.resource == "vertex" and queue.prioritization and queue.config_text == VERTEX_YAML
    assert editor.exists

    editor.config_text = VERTEX_YAML.replace("n1-standard-4", "n1-standard-8")
    frontend_click(editor, "update")
    assert api.get_queue("gpu").config["spec"]["worker_pool_specs"][0]["machine_spec"]["machine_type"] == "n1-standard-8"

    frontend_click(editor, "delete")
    assert not editor.exists
    with pytest.raises(QueueError):
        api.get_queue("gpu")


def test_create_with_a_bad_config_shows_the_error_and_stores_nothing(store):
    editor = QueueEditor(resource="vertex")
    editor.name = "broken"
    frontend_click(editor, "create")  # the default still lacks a staging bucket
    assert "spec.staging_bucket" in editor.error
    assert not editor.exists
    assert api.list_queues() == []


def test_editor_loads_a_stored_queue_and_follows_the_name(store):
    api.create_queue("local", "local-process", config="timeout: 30\nenv: {}\n",
                     template_vars=["seconds:integer:5:1:60"])
    editor = QueueEditor("local")
    assert editor.exists and editor.config_text == "timeout: 30\nenv: {}\n"
    assert editor.template_vars == [{"name": "seconds", "type": "integer", "default": "5", "minimum": "1", "maximum": "60"}]
    editor.name = "other"
    assert not editor.exists
    editor.name = "local"
    assert editor.exists


def test_template_variables_table_is_validated_and_stored(store):
    editor = QueueEditor(resource="vertex")
    editor.name = "templated"
    editor.config_text = VERTEX_YAML.replace("replica_count: 1", "replica_count: '{{replicas}}'")
    assert any("replicas" in p["message"] for p in editor.problems)  # used but not declared
    editor.template_vars = [{"name": "replicas", "type": "integer", "default": "9", "minimum": "1", "maximum": "4"}]
    assert any("replicas" in p["message"] for p in editor.problems)  # default above maximum
    editor.template_vars = [{"name": "replicas", "type": "integer", "default": "1", "minimum": "1", "maximum": "4"}]
    assert [p for p in editor.problems if p["severity"] == "error"] == []
    editor.create()
    (var,) = api.get_queue("templated").template_vars
    assert (var.name, var.type, var.default, var.minimum, var.maximum) == ("replicas", "integer", 1, 1, 4)


def test_preview_request_shows_the_dry_run_custom_job_request(store):
    editor = QueueEditor(resource="vertex")
    editor.config_text = VERTEX_YAML
    frontend_click(editor, "preview")
    assert editor.error == ""
    assert "n1-standard-4" in editor.preview_text
    assert "gs://my-bucket" in editor.preview_text


# ---------------------------------------------------------------- the run board


def test_board_rows_follow_a_run_from_queued_to_succeeded(store, tmp_path, monkeypatch):
    work = tmp_path / "work"  # the kernel's folder; the run's outputs live elsewhere (the data folder)
    work.mkdir()
    monkeypatch.chdir(work)
    api.create_queue("local")
    board = RunBoard("local")
    try:
        assert board.rows == []
        handle = api.submit(EXAMPLES / "quickstart.ipynb", "local", parameters={"name": "Ada"})
        wait_for(lambda: [r for r in board.rows if r["id"] == handle.id], 10, "the new run's row")
        api.start_agent(["local"])
        row = wait_for(lambda: next((r for r in board.rows if r["id"] == handle.id and r["state"] == "succeeded"), None),
                       120, "the row to reach succeeded")
        states = [e["state"] for e in row["events"]]
        assert states[0] == "queued" and states[-1] == "succeeded" and "running" in states
        assert row["queue"] == "local" and row["author"] == "alice" and row["output_notebook"]

        frontend_click(board, "show_logs", run_id=handle.id)
        assert any("hello, Ada!" in line for line in board.log_lines)

        frontend_click(board, "open_output", run_id=handle.id)
        assert board.error == ""
        opened = work / "launch-outputs" / f"quickstart-{handle.id}.ipynb"
        assert opened.is_file()
        assert board.open_request["path"].endswith(f"launch-outputs/quickstart-{handle.id}.ipynb")
        nb = nbformat.read(opened, as_version=4)
        assert "hello, Ada!" in "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    finally:
        board.close()


def test_cancel_button_cancels_a_long_run(store):
    api.create_queue("local")
    api.start_agent(["local"])
    handle = api.submit(EXAMPLES / "parameters.ipynb", "local", parameters={"seconds": 60})
    board = RunBoard("local")
    try:
        wait_for(lambda: handle.refresh().state == "running", 60, "the run to start")
        frontend_click(board, "cancel", run_id=handle.id)
        assert board.error == ""
        wait_for(lambda: any(r["id"] == handle.id and r["state"] == "cancelled" for r in board.rows), 30,
                 "the row to show cancelled")
    finally:
        board.close()


def test_cancel_of_a_finished_run_shows_why_not(store):
    api.create_queue("local")
    handle = api.submit(EXAMPLES / "parameters.ipynb", "local")
    api.cancel(handle.id)
    board = RunBoard(follow_events=False)
    frontend_click(board, "cancel", run_id=handle.id)
    assert "already cancelled" in board.error


def test_board_follows_runs_served_by_an_agent_in_another_process(store, tmp_path):
    api.create_queue("local")
    board = RunBoard()
    try:
        handle = api.submit(EXAMPLES / "quickstart.ipynb", "local")
        env = dict(os.environ)
        agent = subprocess.Popen(
            [sys.executable, "-m", "launch_jupyter.cli", "agent", "-q", "local", "--until-idle",
             "--poll-interval", "0.2"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            wait_for(lambda: any(r["id"] == handle.id and r["state"] == "succeeded" for r in board.rows), 120,
                     "the other process's run to show succeeded")
        finally:
            agent.wait(timeout=60)
        row = next(r for r in board.rows if r["id"] == handle.id)
        assert "running" in [e["state"] for e in row["events"]]
    finally:
        board.close()


def test_vertex_rows_carry_the_job_name_for_the_console_link(store):
    # The console URL itself is built in js/format.js (tested with node); the row must carry the name.
    from launch_jupyter.core.model import Run
    from launch_jupyter.widgets.run_board import run_row

    run = Run(id="r1", queue_id=1, queue_name="gpu", entity="alice", author="alice", resource="vertex",
              external_id="projects/p/locations/us-central1/customJobs/42")
    assert run_row(run, [])["external_id"] == "projects/p/locations/us-central1/customJobs/42"


# ---------------------------------------------------------------- agent panel and run status


def test_agent_panel_starts_and_stops_the_in_kernel_agent(store):
    api.create_queue("local")
    api.create_queue("other")
    panel = AgentPanel()
    try:
        assert panel.state == "stopped"
        assert sorted(panel.available_queues) == ["alice/local", "alice/other"]
        panel.chosen_queues = ["alice/local"]
        panel.max_jobs = 3
        frontend_click(panel, "start")
        assert panel.error == ""
        assert panel.state in ("starting", "running")
        assert panel.queues == ["alice/local"] and panel.capacity == 3
        assert api.agent_status()["queues"] == ["alice/local"]
        frontend_click(panel, "start")  # the same queues again: the running agent already serves them
        assert panel.error == "" and api.agent_status()["queues"] == ["alice/local"]
        panel.chosen_queues = ["alice/other"]
        frontend_click(panel, "start")
        assert "already running" in panel.error
        frontend_click(panel, "stop")
        assert panel.state == "stopped" and api.agent_status() is None
    finally:
        panel.close()


def test_run_status_follows_its_run_to_the_end(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Open notebook copies the executed notebook beside the kernel's folder
    api.create_queue("local")
    handle = api.submit(EXAMPLES / "quickstart.ipynb", "local")
    status = RunStatus(handle.id)
    try:
        assert status.state == "queued" and status.queue == "local" and status.name == "quickstart"
        api.start_agent(["local"])
        wait_for(lambda: status.state == "succeeded", 120, "the status line to show succeeded")
        assert status.output_notebook and status.finished_at
        # It ends usefully: the executed notebook opens, the log shows.
        frontend_click(status, "open_output")
        assert status.error == "" and status.open_request["path"].endswith(".ipynb")
        frontend_click(status, "show_logs")
        assert any("[launch] succeeded" in line for line in status.log_lines)
        frontend_click(status, "hide_logs")
        assert status.log_lines == []
    finally:
        status.close()


def test_a_failed_run_keeps_its_whole_message_on_the_status_line(store):
    api.create_queue("local")
    handle = api.submit(EXAMPLES / "parameters.ipynb", "local", parameters={"seconds": 0, "fail": True})
    status = RunStatus(handle.id)
    try:
        api.start_agent(["local"])
        wait_for(lambda: status.state == "failed", 120, "the status line to show failed")
        assert status.message.endswith("cell 4 (if fail:) raised RuntimeError: failing on purpose after 0 s")
    finally:
        status.close()


# ---------------------------------------------------------------- the shipped JavaScript


@pytest.mark.parametrize("module", ["queue_editor.js", "run_board.js", "agent_panel.js", "run_status.js"])
def test_each_widget_module_loads_as_one_es_module(module, tmp_path):
    source = _assets.esm(module)
    assert 'from "./' not in source  # local imports are inlined: anywidget loads one module
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is missing in CI")
        pytest.skip("node is not installed: cannot load the module")
    path = tmp_path / (module.replace(".js", ".mjs"))
    path.write_text(source)
    out = subprocess.run([node, "-e", f"import({str(path)!r}).then(m => console.log(typeof m.default.render))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "function"
