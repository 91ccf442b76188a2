"""The job entrypoint ``python -m launch_jupyter.execute`` on real notebooks and a real kernel."""

import email
import email.policy
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import nbformat
import pytest

from tests.fixtures.common import EXAMPLES


def execute(*args, cwd, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "launch_jupyter.execute", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") + json.dumps(out.get("data", {})) + out.get("evalue", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_quickstart_runs_and_the_executed_copy_shows_the_parameters(tmp_path):
    out = tmp_path / "out" / "executed.ipynb"
    done = execute(
        "--notebook",
        EXAMPLES / "quickstart.ipynb",
        "--output",
        out,
        "--cwd",
        tmp_path,
        "--parameters",
        json.dumps({"name": "Ada", "n": 5}),
        "--status-file",
        tmp_path / "exit.json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = outputs_text(nbformat.read(out, as_version=4))
    assert "hello, Ada!" in text and "Ada gets 5 squares summing to 30" in text
    assert json.loads((tmp_path / "result.json").read_text())["squares"] == [0, 1, 4, 9, 16]
    # Cells counted as the user sees them: papermill's injected parameters cell is not one of them.
    assert '[launch] cell 2/9 started: name = "world"  # who to greet' in done.stdout
    assert "[launch] succeeded" in done.stdout
    assert json.loads((tmp_path / "exit.json").read_text())["returncode"] == 0


@pytest.mark.slow
def test_parameters_come_from_the_environment_when_not_given(tmp_path):
    out = tmp_path / "executed.ipynb"
    done = execute(
        "--notebook",
        EXAMPLES / "quickstart.ipynb",
        "--output",
        out,
        "--cwd",
        tmp_path,
        cwd=tmp_path,
        env={"LAUNCH_PARAMETERS": json.dumps({"name": "Grace"})},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hello, Grace!" in outputs_text(nbformat.read(out, as_version=4))


@pytest.mark.slow
def test_a_raising_cell_exits_non_zero_with_its_traceback_and_keeps_the_partial_notebook(tmp_path):
    out = tmp_path / "executed.ipynb"
    done = execute(
        "--notebook",
        EXAMPLES / "parameters.ipynb",
        "--output",
        out,
        "--parameters",
        json.dumps({"seconds": 0, "fail": True}),
        "--status-file",
        tmp_path / "exit.json",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "Traceback" in done.stdout or "----> 2" in done.stdout
    assert "RuntimeError: failing on purpose after 0 s" in done.stdout
    status = json.loads((tmp_path / "exit.json").read_text())
    assert status["returncode"] == 1
    assert status["error"] == "cell 4 (if fail:) raised RuntimeError: failing on purpose after 0 s"
    executed = nbformat.read(out, as_version=4)
    assert "awake" in outputs_text(executed)  # the cells before the failure ran and were kept
    assert any(o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", []))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--parameters", "{oops"], "not valid JSON"),
        (["--parameters", "[1, 2]"], "must be a JSON object"),
    ],
)
def test_bad_parameters_are_a_usage_error(tmp_path, args, message):
    done = execute(
        "--notebook",
        EXAMPLES / "quickstart.ipynb",
        "--output",
        tmp_path / "o.ipynb",
        *args,
        "--status-file",
        tmp_path / "exit.json",
        cwd=tmp_path,
    )
    assert done.returncode == 2 and message in done.stdout
    assert json.loads((tmp_path / "exit.json").read_text())["returncode"] == 2
    assert not (tmp_path / "o.ipynb").exists()


def test_a_missing_notebook_is_a_usage_error(tmp_path):
    done = execute("--notebook", tmp_path / "nope.ipynb", "--output", tmp_path / "o.ipynb", cwd=tmp_path)
    assert done.returncode == 2 and "nope.ipynb does not exist" in done.stdout


class FakeGCS(BaseHTTPRequestHandler):
    """The part of the Cloud Storage JSON API an upload uses (multipart upload), storing objects in memory."""

    objects: dict = {}

    def do_POST(self):  # noqa: N802 - http.server's naming
        match = re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", urlparse(self.path).path)
        if not match or "uploadType=multipart" not in self.path:
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = email.message_from_bytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body, policy=email.policy.HTTP
        )
        meta_part, data_part = list(message.iter_parts())
        meta = json.loads(meta_part.get_content())
        data = data_part.get_payload(decode=True)
        FakeGCS.objects[(match.group(1), meta["name"])] = data
        answer = json.dumps({"bucket": match.group(1), "name": meta["name"], "size": str(len(data))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_a_gs_output_is_uploaded_through_the_storage_api(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGCS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = execute(
            "--notebook",
            EXAMPLES / "quickstart.ipynb",
            "--output",
            "gs://results/runs/r1/out.ipynb",
            "--parameters",
            json.dumps({"name": "Cloud"}),
            cwd=tmp_path,
            env={"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{server.server_port}"},
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stdout + done.stderr
    uploaded = nbformat.reads(FakeGCS.objects[("results", "runs/r1/out.ipynb")].decode(), as_version=4)
    assert "hello, Cloud!" in outputs_text(uploaded)


SKIPPED_IMPORTS_IN_CHILD = """
import json, sys
from launch_jupyter import execute
code = execute.main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [n for n in execute.UNUSED_IMPORTS if sys.modules.get(n) is not None],
                  "papermill": "papermill" in sys.modules}))
"""


@pytest.mark.slow
def test_a_run_does_not_import_what_papermill_pulls_in_unused(tmp_path):
    # rfc3987_syntax builds a lark grammar on import (1-1.6 s of the entrypoint's start) only for
    # jsonschema's "iri" format check, which notebook validation never uses.
    from importlib.util import find_spec

    if find_spec("rfc3987_syntax") is None:
        pytest.skip("rfc3987_syntax is not installed here: nothing to keep out")
    out = tmp_path / "executed.ipynb"
    done = subprocess.run(
        [sys.executable, "-c", SKIPPED_IMPORTS_IN_CHILD, "--notebook", str(EXAMPLES / "quickstart.ipynb")]
        + ["--output", str(out), "--cwd", str(tmp_path), "--parameters", json.dumps({"name": "Ada"})],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "loaded": [], "papermill": True}, done.stdout + done.stderr
    nbformat.validate(nbformat.read(out, as_version=4))  # papermill wrote a valid notebook without it
    assert "hello, Ada!" in outputs_text(nbformat.read(out, as_version=4))
