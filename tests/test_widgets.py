"""The widgets' Python side without a browser: validation, buttons calling the API, live rows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
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
            assert any(p["path"] == path and words in p["message"] for p in editor.problems), (
                case.name,
                messages(editor),
            )


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
    assert (
        api.get_queue("gpu").config["spec"]["worker_pool_specs"][0]["machine_spec"]["machine_type"] == "n1-standard-8"
    )

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
    api.create_queue(
        "local", "local-process", config="timeout: 30\nenv: {}\n", template_vars=["seconds:integer:5:1:60"]
    )
    editor = QueueEditor("local")
    assert editor.exists and editor.config_text == "timeout: 30\nenv: {}\n"
    assert editor.template_vars == [
        {"name": "seconds", "type": "integer", "default": "5", "minimum": "1", "maximum": "60"}
    ]
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
        row = wait_for(
            lambda: next((r for r in board.rows if r["id"] == handle.id and r["state"] == "succeeded"), None),
            120,
            "the row to reach succeeded",
        )
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
        wait_for(
            lambda: any(r["id"] == handle.id and r["state"] == "cancelled" for r in board.rows),
            30,
            "the row to show cancelled",
        )
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
            [
                sys.executable,
                "-m",
                "launch_jupyter.cli",
                "agent",
                "-q",
                "local",
                "--until-idle",
                "--poll-interval",
                "0.2",
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for(
                lambda: any(r["id"] == handle.id and r["state"] == "succeeded" for r in board.rows),
                120,
                "the other process's run to show succeeded",
            )
        finally:
            agent.wait(timeout=60)
        row = next(r for r in board.rows if r["id"] == handle.id)
        assert "running" in [e["state"] for e in row["events"]]
    finally:
        board.close()


def test_vertex_rows_carry_the_job_name_for_the_console_link(store):
    # The console URL itself is built in js/format.js (tested with node); the row must carry the name.
    from launch_jupyter.board import run_row
    from launch_jupyter.core.model import Run

    run = Run(
        id="r1",
        queue_id=1,
        queue_name="gpu",
        entity="alice",
        author="alice",
        resource="vertex",
        external_id="projects/p/locations/us-central1/customJobs/42",
    )
    assert run_row(run, [])["external_id"] == "projects/p/locations/us-central1/customJobs/42"


# ---------------------------------------------------------------- agent panel and run status


def test_agent_panel_starts_and_stops_the_in_kernel_agent(store):
    api.create_queue("local")
    api.create_queue("other")
    panel = AgentPanel()
    try:
        assert panel.state == "stopped"
        assert sorted(panel.available_queues) == ["alice/local", "alice/other"]
        assert panel.chosen_queues == []  # no agent ever ran: nothing to preselect
        panel.chosen_queues = ["alice/local"]
        panel.max_jobs = 3
        frontend_click(panel, "start")
        assert panel.error == ""
        wait_for(lambda: panel.state == "running", 60, "the agent to start")
        assert panel.queues == ["alice/local"] and panel.capacity == 3
        assert api.agent_status()["queues"] == ["alice/local"]
        frontend_click(panel, "start")  # the same queues again: the running agent already serves them
        wait_for(lambda: panel.notice.startswith("agent started"), 60, "the re-run start to answer")
        assert panel.error == "" and api.agent_status()["queues"] == ["alice/local"]
        panel.chosen_queues = ["alice/other"]
        frontend_click(panel, "start")
        wait_for(lambda: panel.error, 60, "the refusal")
        assert "already running" in panel.error
        frontend_click(panel, "stop")
        assert panel.state == "stopped" and api.agent_status() is None
    finally:
        panel.close()
    # A new panel preselects what the last agent served.
    again = AgentPanel(follow_events=False)
    assert again.chosen_queues == ["alice/local"]


def test_agent_panel_start_needs_a_choice_and_shows_a_failed_preflight_in_the_panel(store):
    api.create_queue("local")
    panel = AgentPanel(follow_events=False)
    frontend_click(panel, "start")  # nothing chosen: serving every queue (Vertex ones too) is never a default
    assert panel.error == "queues: choose the queues this agent serves (none chosen)"
    assert panel.state == "stopped" and api.agent_status() is None
    # The preflight runs on its own thread; its failure lands in the panel, not in the kernel.
    panel.chosen_queues = ["alice/nowhere"]
    thread = panel.start(wait=True)
    assert thread is not threading.current_thread()
    assert panel.error.startswith("the agent did not start: ") and "nowhere" in panel.error
    assert panel.state == "stopped" and api.agent_status() is None


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
    out = subprocess.run(
        [node, "-e", f"import({str(path)!r}).then(m => console.log(typeof m.default.render))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "function"


# ---------------------------------------------------------------- the editor: lines, the text on screen


def test_each_problem_names_the_line_of_its_key(store):
    editor = QueueEditor(resource="vertex")
    lines = VERTEX_YAML.splitlines()
    editor.config_text = VERTEX_YAML.replace("machine_type", "machine_typ")
    typo = next(p for p in editor.problems if p["path"].endswith("machine_typ"))
    assert lines[typo["line"] - 1].strip().startswith("machine_type")  # the line of the key typed wrong
    # A missing key is shown on its parent's line; a syntax error on the line the parser names.
    editor.config_text = VERTEX_YAML.replace("  staging_bucket: gs://my-bucket\n", "")
    missing = next(p for p in editor.problems if p["path"] == "spec.staging_bucket")
    assert editor.config_text.splitlines()[missing["line"] - 1].startswith("spec:")
    editor.config_text = "spec:\n  staging_bucket: gs://b\n  worker_pool_specs: [\n"
    assert editor.problems and all(p["line"] >= 3 for p in editor.problems)
    assert editor.checked_text == editor.config_text  # the problems are those of this very text


def test_create_stores_the_text_sent_with_the_click_not_the_last_synced_one(store):
    # A paste and an immediate click: the trait still holds the old text, the click carries the new.
    editor = QueueEditor(resource="vertex")
    editor.name = "pasted"
    assert any(p["severity"] == "error" for p in editor.problems)  # the default lacks a bucket
    frontend_click(editor, "create", config=VERTEX_YAML)
    assert editor.error == "" and editor.notice == "created queue alice/pasted"
    assert api.get_queue("pasted").config_text == VERTEX_YAML
    assert editor.config_text == VERTEX_YAML and editor.checked_text == VERTEX_YAML and editor.problems == []
    # Update checks what it was sent first: a bad text stores nothing and says where it is wrong.
    bad = VERTEX_YAML.replace("replica_count: 1", "replica_count: many")
    frontend_click(editor, "update", config=bad)
    line = next(i for i, text in enumerate(bad.splitlines(), 1) if "replica_count" in text)
    assert editor.error.startswith(f"not updated: line {line}: spec.worker_pool_specs[0].replica_count")
    assert api.get_queue("pasted").config_text == VERTEX_YAML


def test_the_highlighter_reads_plain_values_as_the_parser_does(tmp_path):
    # js/yaml_scalars.js colours values; launch_jupyter's YAML 1.2 reader decides what they are.
    from launch_jupyter.core.queue_config import parse_config_text

    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to run the editor's highlighter")
    words = [
        "on",
        "off",
        "yes",
        "no",
        "y",
        "true",
        "False",
        "010",
        "1.5",
        "-2e3",
        ".inf",
        "0x10",
        "12:30",
        "2024-01-01",
        "~",
        "null",
        "",
        "hello",
    ]
    script = tmp_path / "kinds.mjs"
    script.write_text(
        f"import {{ scalarKind }} from {str(_assets.js_dir() / 'yaml_scalars.js')!r};\n"
        f"console.log(JSON.stringify({words!r}.map(scalarKind)));\n"
    )
    kinds = json.loads(subprocess.run([node, str(script)], capture_output=True, text=True, check=True).stdout)
    python = {bool: "bool", int: "number", float: "number", type(None): "null", str: "string"}
    for word, kind in zip(words, kinds, strict=True):
        value = parse_config_text(f"key: {word}\n")["key"]
        assert python[type(value)] == kind, (word, value, kind)


# ---------------------------------------------------------------- the board at scale


def fill_board(store_url: str, queue: str, count: int, *, failed_every: int = 5) -> list[str]:
    """``count`` runs on ``queue`` through the store: every ``failed_every``-th failed with a long
    message, every 7th cancelled, every 3rd running, the rest queued; returns their ids, oldest first."""
    from launch_jupyter.core.model import Run
    from launch_jupyter.core.states import RunState

    store = api.open_store(store_url)
    q = api.get_queue(queue, store_url=store_url)
    ids = []
    for i in range(count):
        run = store.enqueue(
            Run(
                id="",
                queue_id=q.id,
                queue_name=q.name,
                entity=q.entity,
                author="alice",
                resource=q.resource,
                name=f"job-{i:03d}",
            )
        )
        if i % failed_every == 0:
            store.transition(run.id, RunState.RUNNING)
            store.transition(run.id, RunState.FAILED, f"job-{i:03d}: cell 4 raised RuntimeError: " + "x" * 300)
        elif i % 7 == 0:
            store.transition(run.id, RunState.CANCELLED, "cancelled by alice")
        elif i % 3 == 0:
            store.transition(run.id, RunState.RUNNING)
        ids.append(run.id)
    return ids


def count_statements(store_url: str):
    """Collect every SQL statement the store's engine runs (SQLAlchemy's ``before_cursor_execute``
    event): returns the list and the function that stops listening."""
    from sqlalchemy import event

    engine = api.open_store(store_url)._backend.engine
    seen: list[str] = []
    mine = threading.get_ident()  # this test's statements, not a background thread's

    def listen(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == mine:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    return seen, lambda: event.remove(engine, "before_cursor_execute", listen)


def test_a_board_page_costs_three_statements_whatever_its_size(pg_url, monkeypatch):
    monkeypatch.setenv("LAUNCH_JUPYTER_DB", pg_url)
    api.create_queue("many", store_url=pg_url)
    fill_board(pg_url, "many", 120, failed_every=1)  # no queued run: the registry is not read
    board = RunBoard("many", follow_events=False, store_url=pg_url)
    seen, stop = count_statements(pg_url)
    try:
        board.refresh()
        page_of_50 = list(seen)
        seen.clear()
        board.set_view(page=2)
        page_of_20 = list(seen)
    finally:
        stop()
    statements = [s for s in page_of_50 if not s.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SET"))]
    assert len(board.rows) == 20 and board.total == 120
    assert len(statements) == 3, statements
    assert len([s for s in page_of_20 if s.lstrip().upper().startswith("SELECT")]) == 3


def test_batched_events_and_the_newest_event_id(pg_url):
    store = api.open_store(pg_url)
    api.create_queue("q", store_url=pg_url)
    ids = fill_board(pg_url, "q", 4, failed_every=2)
    found = store.events_for([*ids, "nosuchrun"])
    assert set(found) == {*ids, "nosuchrun"} and found["nosuchrun"] == []
    for run_id in ids:
        assert found[run_id] == store.events(run_id)
    assert store.last_event_id() == max(e.id for events in found.values() for e in events)
    assert store.events_for([]) == {}


def test_board_counts_filters_sorts_and_pages(store):
    api.create_queue("big")
    api.create_queue("small")
    ids = fill_board(store, "big", 120)
    fill_board(store, "small", 3)
    board = RunBoard(follow_events=False)
    assert board.total == 123 and len(board.rows) == 50 and board.page == 0
    assert sum(board.counts.values()) == 123
    assert board.counts["failed"] == 24 + 1 and set(board.queues) == {"alice/big", "alice/small"}
    assert [r["name"] for r in board.rows[:2]] == ["job-002", "job-001"]  # newest first
    frontend_click(board, "set_view", page=2)
    assert len(board.rows) == 23 and board.page == 2
    frontend_click(board, "set_view", states=["failed"])
    assert board.page == 0 and board.total == 25 and {r["state"] for r in board.rows} == {"failed"}
    assert all(r["message"].startswith(r["name"]) for r in board.rows)  # the failure message is in the row
    frontend_click(board, "set_view", states=[], queue_filter="alice/small")
    assert board.total == 3 and {r["queue"] for r in board.rows} == {"small"}
    frontend_click(board, "set_view", queue_filter="", text="job-11")
    assert sorted(r["name"] for r in board.rows) == [f"job-11{i}" for i in range(10)]
    frontend_click(board, "set_view", text="", sort="name", descending=False)
    assert [r["name"] for r in board.rows[:3]] == ["job-000", "job-000", "job-001"]
    frontend_click(board, "set_view", sort="bogus")
    assert board.error == "sort: unknown sort 'bogus'; choose from: " + ", ".join(
        ("created", "name", "state", "queue", "author", "priority", "started", "finished")
    )
    assert ids


def test_a_queued_run_on_a_queue_nobody_serves_says_so_and_rows_name_their_agent(store):
    api.create_queue("lonely")
    handle = api.submit(EXAMPLES / "parameters.ipynb", "lonely", parameters={"seconds": 60})
    board = RunBoard("lonely", follow_events=False)
    assert board.rows[0]["note"] == api.serving_note("lonely") == "no agent is serving alice/lonely"
    assert RunStatus(handle.id, follow_events=False).note == "no agent is serving alice/lonely"
    agent = api.start_agent(["lonely"])
    try:
        wait_for(lambda: handle.refresh().state == "running", 60, "the run to start")
        board.refresh()
        row = board.rows[0]
        assert (
            row["note"] == "" and row["agent_id"] == agent.agent_id and row["agent"].startswith(agent.agent_id + " on ")
        )
        status = RunStatus(handle.id, follow_events=False)
        assert status.note == "" and status.agent_id == agent.agent_id
    finally:
        api.cancel(handle.id)


def test_the_agent_publishes_the_events_it_stored(store):
    api.create_queue("local")
    pushed = []
    unsubscribe = api.subscribe(pushed.append)
    try:
        handle = api.submit(EXAMPLES / "parameters.ipynb", "local", parameters={"seconds": 0})
        api.start_agent(["local"])
        wait_for(lambda: handle.refresh().state == "succeeded", 120, "the run to succeed")
        wait_for(lambda: any(e.state == "succeeded" for e in pushed), 30, "the final event to be pushed")
    finally:
        unsubscribe()
    stored = {e.id: e for e in api.events(handle.id)}
    # Every state change after the claim is the stored event itself (the claim's line is still
    # re-made by the agent: store.claim returns the run, not its event).
    mine = [e for e in pushed if e.run_id == handle.id and e.state != "claimed"]
    assert [e.state for e in mine][-1] == "succeeded" and "running" in [e.state for e in mine]
    assert all(e.id in stored and stored[e.id] == e for e in mine), (mine, stored)


def test_an_open_widget_stays_on_its_store_and_the_poller_ends_with_its_last_widget(store, tmp_path, monkeypatch):
    """A panel made while store A was the default keeps showing A after the default changes to B (its
    background ticks never read B), and the store's poller thread ends when its last widget closes."""
    from sqlalchemy import event

    from launch_jupyter.widgets import _follow

    api.create_queue("on-a")
    panel = AgentPanel()
    board = RunBoard()
    other = f"sqlite:///{tmp_path / 'b.db'}"
    monkeypatch.setenv("LAUNCH_JUPYTER_DB", other)
    api.create_queue("on-b")
    on_b: list[str] = []
    event.listen(api.open_store(other)._backend.engine, "before_cursor_execute", lambda *args: on_b.append(args[2]))
    hub = _follow._hubs[api.open_store(store).url]
    ticks = threading.Semaphore(0)
    stop_counting = hub.add(ticker=ticks.release)
    for _ in range(3):  # three rounds of every ticker of store A's hub (the panel's and board's refresh)
        assert ticks.acquire(timeout=60), "the poller stopped ticking"
    assert on_b == [], on_b
    assert panel.available_queues == ["alice/on-a"] and board.queues == []
    assert AgentPanel(follow_events=False).available_queues == ["alice/on-b"]  # a new widget: the new default
    stop_counting()
    panel.close()
    board.close()
    hub._thread.join(timeout=60)
    assert not hub._thread.is_alive() and api.open_store(store).url not in _follow._hubs
