"""A Vertex run's files: what its notebook wrote to its Cloud Storage folder (``/gcs/…``, the folder
``AIP_MODEL_DIR`` and the run's output live in) is listed with the run and downloaded through the
server, as a local run's working folder is (issue 17's run page: output files with Open/Download).

Real agent, real SDK against the fake Vertex AI and its worker (tests/test_vertex_partial.py), the
real google-cloud-storage client against the fake Cloud Storage JSON API."""

from __future__ import annotations

import pytest

from launch_jupyter import api
from launch_jupyter.core.errors import ConfigError, RunError
from launch_jupyter.core.states import RunState
from tests.fixtures.vertex import IMAGE
from tests.test_vertex_partial import agent, events, notebook, vertex_worker  # noqa: F401 - the fixture

WRITER = [
    "import os, pathlib\nfolder = pathlib.Path(os.environ['LAUNCH_OUTPUT']).parent",
    "(folder / 'model').mkdir(exist_ok=True)\n(folder / 'model' / 'weights.bin').write_bytes(b'w' * 3000)",
    "(folder / 'metrics.json').write_text('{\"acc\": 0.9}')",
]


def test_the_files_a_vertex_run_wrote_to_its_bucket_folder_are_listed_and_downloaded(
    vertex_worker,  # noqa: F811 - the fixture imported above
    tmp_path,
    monkeypatch,
):
    fake, gcs = vertex_worker
    worker = agent()
    try:
        handle = api.submit(notebook(tmp_path, "writer.ipynb", WRITER), "vq", image=IMAGE, save=False)
        assert handle.wait(timeout=180) is RunState.SUCCEEDED, events(handle)
    finally:
        worker.stop()
    listed = api.run_files(handle.id)
    assert listed["remote_error"] is None and listed["truncated"] is False
    names = [(f["name"], f["kind"], f["local"]) for f in listed["files"]]
    # The executed notebook once (first, as the run links it), then what the run wrote, by name.
    assert names == [("output.ipynb", "notebook", False), ("metrics.json", "file", False),
                     ("model/weights.bin", "file", False)]  # fmt: skip
    weights = listed["files"][2]
    assert weights["size"] == 3000 and weights["modified"] > 0
    assert all(f["downloadable"] for f in listed["files"])  # through this server, from the bucket
    assert weights["location"] == f"gs://my-bucket/launch-runs/{handle.id}/model/weights.bin"
    with api.Launcher() as client:
        name, chunks = client.run_file_chunks(handle.id, "model/weights.bin")
        assert name == "weights.bin" and b"".join(chunks) == b"w" * 3000
        name, chunks = client.run_file_chunks(handle.id, "output.ipynb")  # the executed notebook, from the bucket
        assert name == "output.ipynb" and b'"cells"' in b"".join(chunks)
        with pytest.raises(RunError, match="wrote no file 'model/other.bin'"):
            client.run_file_chunks(handle.id, "model/other.bin")
        with pytest.raises(ConfigError, match="leaves the run's folder"):
            client.run_file_chunks(handle.id, "../other-run/output.ipynb")
    # Cloud Storage out of reach: the page still lists the local notebook, and says why the rest is missing.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    listed = api.run_files(handle.id)
    assert [f["name"] for f in listed["files"]] == ["output.ipynb"]  # the run's own link to it
    assert listed["remote_error"].startswith("cannot list the run's files at its target")


def test_a_run_that_was_never_dispatched_lists_nothing_remote(vertex_worker, tmp_path):  # noqa: F811
    handle = api.submit(notebook(tmp_path, "idle.ipynb", ["1 + 1"]), "vq", image=IMAGE, save=False)
    listed = api.run_files(handle.id)  # no agent: the run is still queued, no bucket is asked
    assert listed == {"files": [], "truncated": False, "remote_error": None}
