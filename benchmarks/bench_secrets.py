"""Secret markers in contexts, store and logs (target 0), and the store's bytes per 10,000 runs.

    .venv/bin/python benchmarks/bench_secrets.py [--runs 20]

Plants a marker in every kind of credential file the red team used (by name, by link, in a
notebook's outputs, in the agent's environment), submits the folder ``--runs`` times through
``api.submit``, runs a local-process agent until idle, then searches every unpacked context, every
stored (decompressed) context, the store's own files and every log for the markers. Files whose
content is a key are submitted one by one and must each be refused. Private XDG folders, removed
afterwards.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = "LJMARKER"
NAME_FILES = (
    ".env",
    ".aws/credentials",
    ".docker/config.json",
    ".kube/config",
    ".git-credentials",
    ".pgpass",
    ".netrc",
    ".ssh/id_ed25519",
    ".config/gcloud/application_default_credentials.json",
    "id_rsa",
    "server.key",
)
PEM = "-----BEGIN " + "PRIVATE KEY-----\nMIIE" + MARKER + "\n-----END PRIVATE KEY-----\n"
CONTENT_FILES = {
    "README.md": PEM.encode(),
    "key16.json": json.dumps({"type": "service_account", "private_key": PEM}).encode("utf-16"),
    "nested.json": json.dumps([{"k": {"type": "service_account", "private_key": PEM}}]).encode(),
    "big.json": json.dumps({"pad": "x" * 2_000_000, "type": "service_account", "private_key": PEM}).encode(),
    "token.py": ("T = 'ghp_" + MARKER + "a" * 28 + "'\n").encode(),
}


def _notebook(folder: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    cell = nbformat.v4.new_code_cell("print('hello')", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"token ghp_{MARKER}{'b' * 28}\n")]
    nb.cells = [cell]
    path = folder / "job.ipynb"
    nbformat.write(nb, path)
    return path


def _plant(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for rel in NAME_FILES:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(f"{MARKER} {rel}\n")
    (folder / "notes.txt").symlink_to(".env")
    (folder / "docs.md").symlink_to("id_rsa")
    (folder / "data.csv").write_text("a,b\n1,2\n")
    return _notebook(folder)


def _count(data: bytes) -> int:
    return data.count(MARKER.encode()) + data.count(MARKER.encode("utf-16-le"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    root = Path(tempfile.mkdtemp(prefix="bench-secrets-"))
    os.environ.update(
        XDG_DATA_HOME=str(root / "data"),
        XDG_CONFIG_HOME=str(root / "config"),
        LAUNCH_JUPYTER_USER="alice",
        WANDB_API_KEY=f"{MARKER}0123456789abcdef",
    )
    os.environ.pop("LAUNCH_JUPYTER_DB", None)
    try:
        from launch_jupyter import api
        from launch_jupyter.agent import Agent
        from launch_jupyter.core.errors import SecretError

        nb = _plant(root / "project")
        api.create_queue("bench", "local-process")
        for _ in range(runs):
            api.submit(nb, "bench", save=False)
        refused = 0
        for rel, data in CONTENT_FILES.items():
            path = nb.parent / rel
            path.write_bytes(data)
            try:
                api.submit(nb, "bench", save=False)
            except SecretError as err:
                refused += rel in str(err)
            path.unlink()
        Agent(["bench"], poll_interval=0.2).run_forever(until_idle=True)
        from launch_jupyter.store import close_all

        close_all()
        data_dir = root / "data" / "launch_jupyter"
        db = data_dir / "launch.db"
        folders = data_dir / "runs"
        contexts = sum(
            _count(p.read_bytes())
            for p in folders.rglob("*")
            if p.is_file() and "context" in p.relative_to(folders).parts
        )
        logs = sum(_count(p.read_bytes()) for p in (data_dir / "runs").rglob("*.log"))
        with sqlite3.connect(db) as conn:
            keys = [row[0] for row in conn.execute("SELECT run_id FROM run_contexts")]
            rows = "".join(json.dumps(r, default=str) for r in conn.execute("SELECT * FROM runs")).encode()
            events = "".join(r[0] for r in conn.execute("SELECT message FROM run_events")).encode()
            # Contexts are content-addressed blobs, zlib-compressed on SQLite: scan them decompressed.
            parts = [
                zlib.decompress(data) if packed else data
                for packed, data in conn.execute("SELECT compressed, data FROM blobs")
            ]
        from launch_jupyter.store import open_store

        with open_store(f"sqlite:///{db}") as store:  # the archives as an agent reads them
            blobs = [store.get_context(key) for key in keys]
        stored = sum(_count(part) for part in parts)
        for blob in blobs:
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
                stored += sum(_count(tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile())
        store_files = sum(_count(p.read_bytes()) for p in data_dir.glob("launch.db*"))
        size = sum(p.stat().st_size for p in data_dir.glob("launch.db*"))
        states = sorted(str(r.state) for r in api.list_runs(limit=1000))
        print(f"runs submitted: {runs}; states: {', '.join(sorted(set(states)))}")
        print(f"secret markers planted: {len(NAME_FILES) + 3} kinds by name/link/output, 1 in the agent's env")
        print(f"markers found in unpacked contexts: {contexts}")
        print(f"markers found in stored contexts and blobs (decompressed): {stored}")
        print(f"markers found in the store's rows and files: {_count(rows) + _count(events) + store_files}")
        print(f"markers found in logs: {logs}")
        print(f"key files refused by content (naming the file): {refused} of {len(CONTENT_FILES)}")
        print(f"store bytes per run: {size / runs:,.0f}; per 10,000 runs: {size / runs * 10_000 / 1e6:,.0f} MB")
        bad = contexts + stored + logs + _count(rows) + _count(events) + store_files
        return 1 if bad or refused != len(CONTENT_FILES) else 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
