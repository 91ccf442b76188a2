"""The Jupyter Server extension's REST API (/launch/api/…), on a real `jupyter server` process.

The server is the installed one, started by the test with private Jupyter folders: the extension is
found and enabled by the config file `pip install` put in the environment, not by a flag of the test.
(pytest-jupyter's `jp_fetch` would run the server in-process, but its plugin brings autouse fixtures
to every test of the suite; a real process is the stronger test anyway.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time

import pytest
import requests

from launch_jupyter import api

from .fixtures.common import EXAMPLES


@pytest.fixture
def server(isolated_home, jupyter_server):
    """A Jupyter server whose process shares this test's store (alice, private XDG folders)."""
    shutil.copy(EXAMPLES / "quickstart.ipynb", jupyter_server.root_dir / "quickstart.ipynb")
    return jupyter_server


def call(server, method, path, body=None, token=True, **kwargs):
    headers = {"Authorization": f"token {server.token}"} if token else {}
    return requests.request(method, f"{server.url}launch/api/{path}", headers=headers, json=body, timeout=60, **kwargs)


def wait_for(predicate, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_pip_install_enables_the_server_extension():
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_server.extension.serverextension", "list"], capture_output=True, text=True
    )
    text = done.stdout + done.stderr
    assert "launch_jupyter" in text and "enabled" in text and "OK" in text, text


def test_every_route_needs_the_servers_authentication(server):
    for method, path in [
        ("GET", "queues"),
        ("GET", "runs"),
        ("POST", "submit"),
        ("GET", "events"),
        ("GET", "agents"),
        ("DELETE", "queues/alice/q"),
        ("DELETE", "runs/abcd1234"),
        ("GET", "runs/abcd1234/files"),
        ("GET", "runs/abcd1234/file?name=x"),
    ]:
        answer = call(server, method, path, token=False)
        assert answer.status_code == 403, (method, path, answer.status_code)


def test_a_write_with_the_login_cookie_needs_the_xsrf_token(server):
    session = requests.Session()
    # Logging in with the token sets the server's login cookie (and its _xsrf cookie), as a browser has them.
    session.get(f"{server.url}login", timeout=60)
    session.post(
        f"{server.url}login",
        data={"password": server.token, "_xsrf": session.cookies.get("_xsrf")},
        timeout=60,
        allow_redirects=False,
    )
    assert session.get(f"{server.url}launch/api/queues", timeout=60).status_code == 200  # reads: the cookie
    body = {"name": "cookie-q", "resource": "local-process"}
    refused = session.post(f"{server.url}launch/api/queues", json=body, timeout=60)
    assert refused.status_code == 403, refused.text
    assert api.list_queues() == []  # nothing created
    allowed = session.post(
        f"{server.url}launch/api/queues", json=body, timeout=60, headers={"X-XSRFToken": session.cookies.get("_xsrf")}
    )
    assert allowed.status_code == 201, allowed.text


def test_queues_create_show_validate_update_delete_with_key_paths_on_bad_input(server):
    created = call(
        server, "POST", "queues", {"name": "laptop", "resource": "local-process", "config": "timeout: 600\n"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["queue"] == "alice/laptop" and created.json()["config"] == {"timeout": 600}
    again = call(server, "POST", "queues", {"name": "laptop", "resource": "local-process", "config": "timeout: 600\n"})
    assert again.status_code == 200  # the same settings: unchanged, as the magic says
    clash = call(server, "POST", "queues", {"name": "laptop", "resource": "local-process", "config": "timeout: 5\n"})
    assert clash.status_code == 409 and "already exists" in clash.json()["message"], clash.text

    bad = call(server, "POST", "queues", {"name": "broken", "resource": "local-process", "config": "timeout: soon\n"})
    assert bad.status_code == 400 and bad.json()["path"] == "timeout", bad.text
    assert [q.name for q in api.list_queues()] == ["laptop"]  # nothing half-created
    wrong_type = call(server, "POST", "queues", {"name": 5})
    assert wrong_type.status_code == 400 and wrong_type.json()["path"] == "name"
    not_json = requests.post(
        f"{server.url}launch/api/queues", data="{", timeout=60, headers={"Authorization": f"token {server.token}"}
    )
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["message"]

    problems = call(server, "POST", "queues/validate", {"resource": "vertex", "config": "spec: {}\n"}).json()[
        "problems"
    ]
    assert problems and all(p["path"] for p in problems), problems
    assert "worker_pool_specs" in call(server, "GET", "queues/default-config/vertex").json()["config"]

    shown = call(server, "GET", "queues/alice/laptop").json()
    assert shown["resource"] == "local-process" and shown["visibility"] == "private"
    updated = call(server, "PUT", "queues/alice/laptop", {"config": "timeout: 900\n"})
    assert updated.status_code == 200 and updated.json()["config"] == {"timeout": 900}
    assert api.get_queue("laptop").config == {"timeout": 900}
    assert call(server, "DELETE", "queues/alice/laptop").status_code == 204
    missing = call(server, "GET", "queues/alice/laptop")
    assert missing.status_code == 404 and "does not exist" in missing.json()["message"]


def test_another_users_private_queue_is_refused(server, monkeypatch):
    monkeypatch.setenv("LAUNCH_JUPYTER_USER", "bob")
    api.create_queue("secret", "local-process")
    monkeypatch.setenv("LAUNCH_JUPYTER_USER", "alice")
    assert call(server, "GET", "queues").json() == []
    assert call(server, "GET", "queues/bob/secret").status_code == 404
    answer = call(server, "POST", "submit", {"notebook": "quickstart.ipynb", "queue": "bob/secret"})
    assert answer.status_code == 404, answer.text
    assert api.list_runs() == []


def test_submit_rejects_paths_outside_the_root_and_bad_parameters_and_queues_nothing(server):
    call(server, "POST", "queues", {"name": "q", "resource": "local-process"})
    outside = call(server, "POST", "submit", {"notebook": "../../etc/passwd", "queue": "q"})
    assert outside.status_code == 400 and outside.json()["path"] == "notebook"
    unknown = call(server, "POST", "submit", {"notebook": "quickstart.ipynb", "queue": "q", "parameters": {"nope": 1}})
    assert unknown.status_code == 400 and "nope" in unknown.json()["message"], unknown.text
    assert api.list_runs() == []


def read_events(server, after, into, stop, connected=None):
    """Collect the pushed events until ``stop`` is set (the server ending the stream after that, when
    the test's server stops, is the end of reading, not an error)."""
    try:
        with requests.get(
            f"{server.url}launch/api/events",
            params={"after": after},
            stream=True,
            timeout=300,
            headers={"Authorization": f"token {server.token}"},
        ) as stream:
            for line in stream.iter_lines(decode_unicode=True):
                if connected is not None and line == ": connected":
                    connected.set()
                if line.startswith("data: "):
                    into.append(json.loads(line[6:]))
                if stop.is_set():
                    return
    except requests.exceptions.RequestException:
        if not stop.is_set():
            raise


def test_submit_dry_run_agent_live_events_runs_page_logs_and_outputs(server):
    assert call(server, "POST", "queues", {"name": "q", "resource": "local-process"}).status_code == 201
    body = {"notebook": "quickstart.ipynb", "queue": "q", "parameters": {"name": "Ada", "n": 4}}
    request = call(server, "POST", "submit", {**body, "dry_run": True})
    assert request.status_code == 200 and "Ada" in request.json()["request"], request.text
    assert api.list_runs() == []

    events, stop = [], threading.Event()
    reader = threading.Thread(target=read_events, args=(server, 0, events, stop), daemon=True)
    reader.start()
    submitted = call(server, "POST", "submit", body)
    assert submitted.status_code == 201, submitted.text
    run_id = submitted.json()["id"]
    assert submitted.json()["state"] == "queued" and submitted.json()["parameters"] == {"name": "Ada", "n": 4}

    started = call(server, "POST", "agents/start", {"queues": ["q"]})
    assert started.status_code == 200 and started.json()["queues"] == ["alice/q"], started.text
    assert call(server, "POST", "agents/start", {"queues": []}).status_code == 400  # serves what it is told
    wait_for(lambda: call(server, "GET", f"runs/{run_id}").json()["state"] == "succeeded", "the run to succeed")
    # The live feed pushed the run's history as it happened (no client polling).
    wait_for(lambda: any(e["run_id"] == run_id and e["state"] == "succeeded" for e in events), "the pushed event")
    stop.set()
    states = [e["state"] for e in events if e["run_id"] == run_id]
    assert states[0] == "queued" and states[-1] == "succeeded", states
    registry = call(server, "GET", "agents", params={"queue": "q"}).json()
    assert registry["in_server"]["state"] == "running" and registry["agents"], registry

    shown = call(server, "GET", f"runs/{run_id}").json()
    assert [e["state"] for e in shown["events"]][-1] == "succeeded"
    logs = call(server, "GET", f"runs/{run_id}/logs")
    assert logs.status_code == 200 and "hello, Ada!" in logs.text, logs.text
    notebook = call(server, "GET", f"runs/{run_id}/output", params={"format": "ipynb"})
    assert notebook.status_code == 200 and "attachment" in notebook.headers["Content-Disposition"]
    assert "hello, Ada!" in json.dumps(notebook.json())
    html = call(server, "GET", f"runs/{run_id}/output", params={"format": "html"})
    assert html.status_code == 200 and "<html" in html.text.lower() and "hello, Ada!" in html.text
    assert call(server, "GET", f"runs/{run_id}/output", params={"format": "pdf"}).json()["path"] == "format"
    assert call(server, "POST", "agents/stop").json() == {"stopped": True}


def test_the_runs_page_filters_counts_sorts_and_pages(server):
    api.create_queue("a", "local-process")
    api.create_queue("b", "local-process")
    nb = server.root_dir / "quickstart.ipynb"
    ids = [api.submit(nb, "a" if i % 2 else "b", name=f"run-{i}", save=False).id for i in range(5)]
    api.cancel(ids[0])
    page = call(server, "GET", "runs", params={"limit": 2}).json()
    assert page["total"] == 5 and len(page["runs"]) == 2
    assert page["counts"]["queued"] == 4 and page["counts"]["cancelled"] == 1
    assert [r["id"] for r in page["runs"]] == ids[::-1][:2]  # newest first
    second = call(server, "GET", "runs", params={"limit": 2, "offset": 2}).json()
    assert [r["id"] for r in second["runs"]] == ids[::-1][2:4]
    by_name = call(server, "GET", "runs", params={"sort": "name", "order": "asc"}).json()
    assert [r["name"] for r in by_name["runs"]] == [f"run-{i}" for i in range(5)]
    only_a = call(server, "GET", "runs", params={"queue": "a"}).json()
    assert {r["queue"] for r in only_a["runs"]} == {"alice/a"} and only_a["total"] == 2
    text = call(server, "GET", "runs", params={"q": "run-3"}).json()
    assert [r["name"] for r in text["runs"]] == ["run-3"]
    cancelled = call(server, "GET", "runs", params={"state": "cancelled"}).json()
    assert [r["id"] for r in cancelled["runs"]] == [ids[0]] and cancelled["counts"]["queued"] == 4
    for params, path in [
        ({"sort": "size"}, "sort"),
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"state": "sleeping"}, "state"),
        ({"order": "up"}, "order"),
    ]:
        answer = call(server, "GET", "runs", params=params)
        assert answer.status_code == 400 and answer.json()["path"] == path, (params, answer.text)
    cancel = call(server, "POST", f"runs/{ids[1]}/cancel")
    assert cancel.status_code == 200 and cancel.json()["state"] == "cancelled"
    assert call(server, "GET", "runs/ffffffffffff").status_code == 404


def test_the_notebooks_parameters_and_the_queues_details_for_the_launch_dialog(server):
    answer = call(server, "GET", "notebook", params={"path": "quickstart.ipynb"}).json()
    assert answer["tagged"] is True
    assert [(p["name"], p["type"], p["default"]) for p in answer["parameters"]] == [
        ("name", "str", "world"),
        ("n", "int", 3),
    ]
    assert call(server, "GET", "notebook", params={"path": "../x.ipynb"}).json()["path"] == "notebook"
    assert call(server, "GET", "notebook", params={"path": "missing.ipynb"}).status_code == 400
    api.create_queue("q", "local-process")
    api.submit(server.root_dir / "quickstart.ipynb", "q", save=False)
    (detail,) = call(server, "GET", "queues", params={"details": "1"}).json()
    assert detail["queued"] == 1 and detail["served"] is False
    assert "no agent is serving alice/q" in detail["serving_note"]


def write_writer(path) -> None:
    """A notebook that writes files (one new in a folder, one input changed) and leaves one input alone."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("rows = 3")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from pathlib import Path\n"
            "Path('results').mkdir(exist_ok=True)\n"
            "Path('results/metrics.csv').write_text('step,loss\\n' + ''.join(f'{i},{1 / (i + 1)}\\n' for i in range(rows)))\n"
            "Path('data.txt').write_text('changed by the run')\n"
            "print('wrote', rows)"
        ),
    ]
    nbformat.write(nb, path)


def run_agent_until_idle(queue: str) -> None:
    """An agent in its own process, as a user starts one, that stops when the queue is empty."""
    done = subprocess.run(
        [sys.executable, "-m", "launch_jupyter.cli", "agent", "-q", queue, "--until-idle"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_runs_files_are_listed_downloaded_and_only_by_a_checked_name(server):
    from launch_jupyter.core.trust import run_folder

    root = server.root_dir
    write_writer(root / "writer.ipynb")
    (root / "notes.txt").write_text("an input the run only reads")
    (root / "data.txt").write_text("an input the run overwrites")
    api.create_queue("q", "local-process")
    run = api.submit(root / "writer.ipynb", "q", parameters={"rows": 4}, save=False)
    run_agent_until_idle("q")
    assert api.get_run(run.id).state.value == "succeeded"

    listing = call(server, "GET", f"runs/{run.id}/files")
    assert listing.status_code == 200, listing.text
    files = listing.json()["files"]
    # The executed notebook first, then what the run wrote or changed; never its unchanged inputs.
    assert [(f["name"], f["kind"]) for f in files] == [
        ("output.ipynb", "notebook"),
        ("data.txt", "file"),
        ("results/metrics.csv", "file"),
    ], files
    assert listing.json()["truncated"] is False
    metrics = call(server, "GET", f"runs/{run.id}/file", params={"name": "results/metrics.csv"})
    assert metrics.status_code == 200 and metrics.text.startswith("step,loss\n0,1.0\n"), metrics.text
    assert len(metrics.text.splitlines()) == 5 and files[2]["size"] == len(metrics.content)
    assert 'filename="metrics.csv"' in metrics.headers["Content-Disposition"]
    notebook = call(server, "GET", f"runs/{run.id}/file", params={"name": "output.ipynb"})
    assert "wrote 4" in json.dumps(notebook.json())

    # A link the run left in its folder could point anywhere on this machine: not listed, not served.
    context = run_folder(api.agent_config().data_dir, run.id) / "context"
    (context / "passwd").symlink_to("/etc/passwd")
    assert "passwd" not in [f["name"] for f in call(server, "GET", f"runs/{run.id}/files").json()["files"]]
    for name, status in [
        ("../context/notes.txt", 400),
        ("/etc/passwd", 400),
        ("results/../../x", 400),
        ("", 400),
        (".", 400),
        ("passwd", 404),
        ("notes.txt", 404),
        ("writer.ipynb", 404),
        ("nope.csv", 404),
    ]:
        answer = call(server, "GET", f"runs/{run.id}/file", params={"name": name})
        assert answer.status_code == status, (name, answer.status_code, answer.text)
        if status == 400:
            assert answer.json()["path"] == "name", answer.text
    assert call(server, "GET", "runs/ffffffffffff/files").status_code == 404


def test_delete_forgets_a_finished_run_and_refuses_an_active_one(server):
    api.create_queue("q", "local-process")
    nb = server.root_dir / "quickstart.ipynb"
    waiting = api.submit(nb, "q", name="waiting", save=False)
    done = api.submit(nb, "q", name="done", save=False)
    api.cancel(done.id)
    events, stop, connected = [], threading.Event(), threading.Event()
    reader = threading.Thread(target=read_events, args=(server, None, events, stop, connected), daemon=True)
    reader.start()
    assert connected.wait(120), "the event stream did not open"

    refused = call(server, "DELETE", f"runs/{waiting.id}")
    assert refused.status_code == 409, refused.text
    assert refused.json()["message"] == f"run {waiting.id} is queued; cancel it first, then delete it"
    assert api.get_run(waiting.id).state.value == "queued" and api.events(waiting.id)  # nothing changed

    deleted = call(server, "DELETE", f"runs/{done.id}")
    assert deleted.status_code == 200 and deleted.json() == {"deleted": done.id, "name": "done"}, deleted.text
    assert [r.id for r in api.list_runs()] == [waiting.id]
    assert call(server, "GET", f"runs/{done.id}").status_code == 404
    assert api.open_store().get_context(done.id) is None and api.open_store().events(done.id) == []
    assert call(server, "DELETE", f"runs/{done.id}").status_code == 404
    # The open panels hear of it at once (its events are gone with it, so the feed says so itself).
    wait_for(lambda: any(e["run_id"] == done.id and e["state"] == "deleted" for e in events), "the pushed delete")
    stop.set()
    assert call(server, "DELETE", f"runs/{waiting.id}", token=False).status_code == 403
