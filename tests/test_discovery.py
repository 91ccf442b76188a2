"""Which notebook am I? Real kernels: under nbclient, and started through a real Jupyter server."""

import json
import os
import threading

import nbformat
import pytest
from jupyter_client import BlockingKernelClient
from nbclient import NotebookClient

from launch_jupyter.core.errors import NotebookError
from launch_jupyter.packaging import find_notebook, read_notebook_json

FIND = "from launch_jupyter.packaging import find_notebook\ntry:\n    print(find_notebook())\nexcept Exception as err:\n    print('ERROR', err)"


def run_under_nbclient(path, env_extra):
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "P"}}
    )
    nb.cells.append(nbformat.v4.new_code_cell(FIND))
    nbformat.write(nb, path)
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    client = NotebookClient(nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(path.parent)}})
    client.execute(env={**env, **env_extra})
    return "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()


@pytest.mark.slow
def test_under_nbclient_the_session_name_finds_the_notebook(tmp_path):
    path = tmp_path / "analysis.ipynb"
    runtime = tmp_path / "runtime"  # no Jupyter server lives here
    runtime.mkdir()
    printed = run_under_nbclient(path, {"JPY_SESSION_NAME": str(path), "JUPYTER_RUNTIME_DIR": str(runtime)})
    assert printed == str(path)


@pytest.mark.slow
def test_under_nbclient_without_hints_the_error_lists_every_way_tried(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    printed = run_under_nbclient(tmp_path / "x.ipynb", {"JUPYTER_RUNTIME_DIR": str(runtime)})
    assert printed.startswith("ERROR could not tell which notebook")
    for way in (
        "/api/sessions (the kernel's connection file",
        "not started by a Jupyter server",
        "__session__ (not set)",
        "JPY_SESSION_NAME (not set)",
        "__vsc_ipynb_file__ (not set)",
        "notebook=",
    ):
        assert way in printed


def test_outside_a_kernel_the_namespace_hints_are_used(tmp_path):
    path = tmp_path / "vs.ipynb"
    path.write_text("{}")
    assert find_notebook({"__vsc_ipynb_file__": str(path)}) == path
    assert find_notebook({"__session__": str(path)}) == path
    with pytest.raises(NotebookError, match="this is not a Jupyter kernel"):
        find_notebook({})
    with pytest.raises(NotebookError, match="does not exist"):
        find_notebook({"__session__": str(tmp_path / "gone.ipynb")})


def kernel_output(server, kernel_id, code):
    client = BlockingKernelClient(connection_file=str(server.runtime_dir / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    # No heartbeat channel: a client that is not the kernel's manager judges the kernel by heartbeats
    # answered within 1 s (HBChannel.time_to_dead), and on a loaded machine one late answer made
    # wait_for_ready raise "Kernel died before replying to kernel_info". The server owns the kernel;
    # the kernel_info reply alone (up to the 60 s) says it is there.
    client.start_channels(hb=False)
    try:
        client.wait_for_ready(timeout=60)
        chunks = []

        def hook(msg):
            if msg["msg_type"] == "stream":
                chunks.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                chunks.append("\n".join(msg["content"]["traceback"]))

        client.execute_interactive(code, output_hook=hook, timeout=60)
        return "".join(chunks).strip()
    finally:
        client.stop_channels()


@pytest.mark.slow
def test_a_real_jupyter_server_session_finds_the_notebook_even_after_a_rename(jupyter_server):
    (jupyter_server.root_dir / "sub").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), jupyter_server.root_dir / "sub" / "a.ipynb")
    session = jupyter_server.api(
        "POST",
        "api/sessions",
        {"path": "sub/a.ipynb", "name": "a.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
    )
    kernel_id = session["kernel"]["id"]
    assert kernel_output(jupyter_server, kernel_id, FIND) == str(jupyter_server.root_dir / "sub" / "a.ipynb")

    # Rename as JupyterLab does: move the file, then update the session. The kernel's
    # JPY_SESSION_NAME still names the old file; the live /api/sessions answer is the new one.
    jupyter_server.api("PATCH", "api/contents/sub/a.ipynb", {"path": "sub/b.ipynb"})
    jupyter_server.api("PATCH", f"api/sessions/{session['id']}", {"path": "sub/b.ipynb", "name": "b.ipynb"})
    printed = kernel_output(jupyter_server, kernel_id, FIND + "\nimport os; print(os.environ.get('JPY_SESSION_NAME'))")
    found, stale = printed.splitlines()
    assert found == str(jupyter_server.root_dir / "sub" / "b.ipynb")
    assert stale == str(jupyter_server.root_dir / "sub" / "a.ipynb")  # the env hint alone is stale


def test_a_notebook_being_written_is_read_once_it_is_whole(tmp_path):
    # A Jupyter server saves over the file in place: a reader can see it half written, or briefly gone.
    path = tmp_path / "n.ipynb"
    whole = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    path.write_text(whole[: len(whole) // 2])
    timer = threading.Timer(0.3, lambda: path.write_text(whole))
    timer.start()
    assert read_notebook_json(path, timeout=30) == json.loads(whole)
    timer.join()


def test_a_notebook_that_stays_broken_is_one_clear_error(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text('{"cells": [')
    with pytest.raises(NotebookError, match=r"n.ipynb is not a notebook \(not valid JSON"):
        read_notebook_json(path, timeout=0.2)
    with pytest.raises(NotebookError, match="gone.ipynb is missing"):
        read_notebook_json(tmp_path / "gone.ipynb", timeout=0.2)
