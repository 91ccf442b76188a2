"""Figure 8: `%launch submit` of the notebook you are in, in a stock JupyterLab, save included.

A real JupyterLab (no ``expose_app_in_browser``) and Debian Chromium: edit the first cell, run the
submit cell, as in tests/test_browser_save.py. Reported: the time the magic itself prints (find
the notebook, the save handshake with the JupyterLab extension, check, package, enqueue), the
keypress-to-output time seen from the page, submits without a failure, and the installed size of
the labextension. Baseline: ``api.submit(path)`` of the same notebook with no save at all.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from _stats import ROOT, figure, median, not_available, spread_text

SUBMITTED = re.compile(r"submitted run (\w+) to \S+ \((\d+\.\d+) s\)")


def _labextension_size() -> int:
    folder = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "launch-jupyter"
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _floor(path: Path, repeats: int) -> list[float]:
    from launch_jupyter import api

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        api.submit(path, "selfq", parameters={"rows": 4}, save=False)
        times.append(time.perf_counter() - start)
    return times


def run(quick: bool = False) -> dict:
    chromium = Path(os.environ.get("LAUNCH_JUPYTER_CHROMIUM", "/usr/bin/chromium"))
    name = "%launch submit of the current notebook in JupyterLab, save included (p50)"
    if not chromium.is_file():
        return {"figures": [not_available(name, f"no Chromium at {chromium}")]}
    from playwright.sync_api import sync_playwright

    from tests.fixtures.jupyterlab import CHROMIUM_ARGS, start_lab
    from tests.test_browser_save import edit_first_cell, open_stock, run_cell, write_notebook

    repeats = 10 if quick else 30
    magic, page_seen, failures = [], [], 0
    with (
        contextlib.contextmanager(start_lab)(Path(tempfile.mkdtemp(prefix="bench-lab-")), expose_app=False) as lab,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        write_notebook(lab.root_dir / "self.ipynb")
        open_stock(page, lab, "self.ipynb")
        run_cell(page, 1, 1)
        for attempt in range(repeats):
            edit_first_cell(page, f"bench-{attempt}")
            start = time.perf_counter()
            out = run_cell(page, 2, attempt + 2)
            page_seen.append(time.perf_counter() - start)
            match = SUBMITTED.search(out)
            if match is None or "no JupyterLab extension answered" in out:
                failures += 1
            else:
                magic.append(float(match.group(2)))
        browser.close()
        floor = _floor(lab.root_dir / "self.ipynb", repeats)
    ms = 1000.0
    return {
        "figures": [
            figure(
                name,
                median(magic) * ms,
                "ms",
                spread=spread_text(magic, ms, 0),
                n=len(magic),
                baseline="api.submit(path) with no save",
                baseline_value=median(floor) * ms,
            ),
            figure(
                "keypress → 'submitted run' on the page (p50)",
                median(page_seen) * ms,
                "ms",
                spread=spread_text(page_seen, ms, 0),
                n=len(page_seen),
            ),
            figure("submits of the current notebook without a failure", repeats - failures, f"of {repeats}"),
            figure("labextension installed size", _labextension_size() / 1024, "KiB"),
        ],
        "problems": [f"{failures} of {repeats} submits failed or fell back"] if failures else [],
    }


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    for row in run(quick="--quick" in sys.argv)["figures"]:
        print(
            f"{row['figure']}: {row['value']:.1f} {row['unit']} {row['spread']} (baseline {row['baseline']} "
            f"{row['baseline_value'] or 0:.1f})"
            if row["value"] is not None
            else f"{row['figure']}: {row['note']}"
        )
