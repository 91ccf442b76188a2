"""Figure 2: what a submit costs the user, and what the build context costs inside it.

``api.submit()`` and ``%launch submit`` on the quickstart notebook and on a folder of 200 small
files, in a private SQLite store. The baseline is the naive floor of the same work: copy the
files, sha256 each, tar+gzip them and INSERT the blob into SQLite — what any submit has to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _stats import ROOT, alternate, figure, median, not_available, spread_text

QUICKSTART = ROOT / "examples" / "notebooks" / "quickstart.ipynb"
FOLDER_FILES = 200


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_folder(root: Path, files: int = FOLDER_FILES) -> Path:
    """A notebook beside ``data/`` holding ``files - 1`` small files (the notebook is the last one)."""
    root.mkdir(parents=True)
    shutil.copyfile(QUICKSTART, root / "analysis.ipynb")
    (root / "data").mkdir()
    for i in range(files - 1):
        (root / "data" / f"part-{i:03d}.csv").write_text(f"id,value\n{i},{i * i}\n" * 20)
    return root / "analysis.ipynb"


def naive_submit(notebook: Path, db: Path, work: Path) -> None:
    """The floor: copy the notebook's folder, hash every file, tar.gz it, INSERT the blob."""
    dest = Path(tempfile.mkdtemp(dir=work))
    shutil.copytree(notebook.parent, dest / "context")
    digest = hashlib.sha256()
    for path in sorted((dest / "context").rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(dest / "context", arcname=".")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS runs (hash TEXT, context BLOB)")
        conn.execute("INSERT INTO runs VALUES (?, ?)", (digest.hexdigest(), buffer.getvalue()))
    shutil.rmtree(dest)


def _context_only(notebook: Path, work: Path, include: list[str]) -> None:
    from launch_jupyter.packaging import create_context

    dest = Path(tempfile.mkdtemp(dir=work)) / "context"
    create_context(notebook, dest, include=include)
    shutil.rmtree(dest.parent)


def _magic_shell(store_url: str):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "launch_jupyter")
    shell.run_line_magic("config", f"LaunchMagics.store = {store_url!r}")
    return shell


def _magic_submit(shell, notebook: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        shell.run_line_magic("launch", f"submit -q q --notebook {notebook}")
    if "submitted run" not in out.getvalue():
        raise RuntimeError(f"%launch submit did not submit: {out.getvalue().strip()[-200:]}")


def _pair(name: str, results: dict, key: str, base: str, baseline: str, n: int, note: str = "") -> dict:
    values = results[key]
    return figure(
        name,
        1000 * median(values),
        "ms",
        baseline=baseline,
        baseline_value=1000 * median(results[base]),
        n=n,
        spread=spread_text(values, 1000),
        note=note,
    )


def run(quick: bool = False) -> dict:
    """Figure 2 rows: submit latency (API and magic) and build-context time, beside the naive floor."""
    from launch_jupyter import api

    repeats = 8 if quick else 25
    work = Path(tempfile.mkdtemp(prefix="bench-submit-"))
    try:
        store_url = f"sqlite:///{work / 'launch.db'}"
        api.create_queue("q", "local-process", store_url=store_url)
        folder_nb = make_folder(work / "project")
        naive_db = work / "naive.db"
        first = _timed(lambda: api.submit(QUICKSTART, "q", store_url=store_url))  # warms the wheel cache
        measures = {
            "submit": lambda: _timed(lambda: api.submit(QUICKSTART, "q", store_url=store_url)),
            "naive": lambda: _timed(lambda: naive_submit(QUICKSTART, naive_db, work)),
            "submit200": lambda: _timed(lambda: api.submit(folder_nb, "q", store_url=store_url, include=["data/*"])),
            "naive200": lambda: _timed(lambda: naive_submit(folder_nb, naive_db, work)),
            "context200": lambda: _timed(lambda: _context_only(folder_nb, work, ["data/*"])),
            "context": lambda: _timed(lambda: _context_only(QUICKSTART, work, [])),
        }
        figures, problems = [], []
        try:
            shell = _magic_shell(store_url)
            _magic_submit(shell, QUICKSTART)
            measures["magic"] = lambda: _timed(lambda: _magic_submit(shell, QUICKSTART))
        except Exception as err:  # the magics are another helper's; measure the rest without them
            figures.append(not_available("%launch submit quickstart.ipynb", f"{type(err).__name__}: {err}"))
        r = alternate(measures, repeats)
        naive = "naive copy+sha256+tar+INSERT"
        figures += [
            _pair(
                "api.submit(quickstart.ipynb)",
                r,
                "submit",
                "naive",
                naive,
                repeats,
                f"first submit (cold wheel cache) {1000 * first:.0f} ms",
            ),
        ]
        if "magic" in r:
            figures.append(_pair("%launch submit quickstart.ipynb", r, "magic", "submit", "api.submit", repeats))
        figures += [
            _pair(
                f"api.submit(folder of {FOLDER_FILES} files, include=data/*)",
                r,
                "submit200",
                "naive200",
                naive,
                repeats,
            ),
            _pair("create_context(quickstart.ipynb) alone", r, "context", "submit", "api.submit", repeats),
            _pair(f"create_context({FOLDER_FILES} files) alone", r, "context200", "submit200", "api.submit", repeats),
        ]
        hashes = {h.run.content_hash for h in (api.submit(QUICKSTART, "q", store_url=store_url) for _ in range(2))}
        if len(hashes) != 1:
            problems.append("the same notebook submitted twice got two content hashes (it would be rebuilt)")
        return {"figures": figures, "problems": problems}
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
