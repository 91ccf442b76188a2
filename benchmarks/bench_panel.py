"""The JupyterLab side with no kernel (issue 17): the Runs tab and the REST API, on a stock JupyterLab
and Debian Chromium, with 10,000 runs in the store.

    python benchmarks/bench_panel.py [--runs 10000] [--repeat 5]

Reported: the board call (GET /launch/api/board, one page of 50) seen from a client; the Runs tab's
first paint (click on its Launcher card → the first row on screen); the live update latency (a state
change written to the store by another process's agent → the row's new state on screen, through the
server's one event feed and the tab's event stream); a run page's first paint (Details on a row of the
tab → its timeline, files and log read and on screen); and the clicks from an open notebook to a queued
run with the Launch button (counted from the test's own path: Launch, Submit).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (str(HERE), str(HERE.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    chromium = Path(os.environ.get("LAUNCH_JUPYTER_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.is_file():
        print(f"not available: no Chromium at {chromium}")
        return
    base = Path(tempfile.mkdtemp(prefix="bench-panel-"))
    os.environ.update(
        {
            "XDG_DATA_HOME": str(base / "data"),
            "XDG_CONFIG_HOME": str(base / "config"),
            "LAUNCH_JUPYTER_USER": "alice",
            "LAUNCH_JUPYTER_DB": f"sqlite:///{base / 'launch.db'}",
        }
    )
    from bench_board import bulk_fill
    from playwright.sync_api import sync_playwright

    from launch_jupyter import api
    from launch_jupyter.core.states import RunState
    from tests.fixtures.jupyterlab import CHROMIUM_ARGS, start_lab

    url = os.environ["LAUNCH_JUPYTER_DB"]
    bulk_fill(url, args.runs)
    store = api.open_store()
    queue = api.create_queue("live", "local-process")  # its own queue: the claim below takes our run
    lab_root = base / "lab"
    lab_root.mkdir()
    board, paint, live, detail = [], [], [], []
    with contextlib.contextmanager(start_lab)(lab_root, expose_app=False) as lab, sync_playwright() as pw:
        for _ in range(args.repeat * 4):
            request = urllib.request.Request(
                f"{lab.url}launch/api/board?limit=50", headers={"Authorization": f"token {lab.token}"}
            )
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as answer:
                answer.read()
            board.append(time.perf_counter() - started)
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        for round_ in range(args.repeat):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab.url}lab?reset&token={lab.token}")  # a fresh layout: the Launcher, not the restored tab
            card = page.locator(".jp-LauncherCard", has_text="Launch Runs")
            try:
                card.wait_for(timeout=120_000)
            except Exception:
                page.screenshot(path=str(base / "no-launcher.png"))
                print(f"screenshot: {base / 'no-launcher.png'}")
                raise
            started = time.perf_counter()
            card.click()
            page.locator(".lj-runs-panel tr.lj-run").first.wait_for(timeout=120_000)
            paint.append(time.perf_counter() - started)
            first = page.locator(".lj-runs-panel tr.lj-run").first
            run_id = first.get_attribute("data-run-id")
            started = time.perf_counter()
            first.locator(".lj-btn-details").click()
            page.locator(f'.lj-run-detail[data-run-id="{run_id}"] .lj-detail-events li').first.wait_for(timeout=60_000)
            detail.append(time.perf_counter() - started)
            page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="Runs").first.click()
            # A new run, then its state moved by "an agent" (this process writes the store directly).
            from launch_jupyter.core.model import Run

            run = store.enqueue(
                Run(
                    id="",
                    queue_id=queue.id,
                    queue_name=queue.name,
                    entity=queue.entity,
                    author="alice",
                    resource=queue.resource,
                    name=f"live-{round_}",
                )
            )
            row = page.locator(f'.lj-runs-panel tr.lj-run[data-run-id="{run.id}"]')
            row.wait_for(timeout=60_000)
            claimed = store.claim([queue.id], "bench-agent", 60)
            started = time.perf_counter()
            store.transition(claimed.id, RunState.RUNNING, "running", fence=("bench-agent", claimed.lease_generation))
            row.locator(".lj-state-running").wait_for(timeout=60_000)
            live.append(time.perf_counter() - started)
            page.close()
        browser.close()
    ms = 1000.0
    print(f"store: {args.runs} runs (SQLite); rounds: {args.repeat}")
    print(
        f"GET /launch/api/board (50 rows of {args.runs}): p50 {statistics.median(board) * ms:.0f} ms, "
        f"max {max(board) * ms:.0f} ms (n={len(board)})"
    )
    print(
        f"Runs tab first paint (click → first row): p50 {statistics.median(paint) * ms:.0f} ms, "
        f"max {max(paint) * ms:.0f} ms (target ≤ 500 ms)"
    )
    print(
        f"run page first paint (Details → timeline, files, log on screen): p50 "
        f"{statistics.median(detail) * ms:.0f} ms, max {max(detail) * ms:.0f} ms"
    )
    print(
        f"live update (store write → row state on screen): p50 {statistics.median(live) * ms:.0f} ms, "
        f"max {max(live) * ms:.0f} ms (target ≤ 500 ms)"
    )
    print("clicks from an open notebook to a queued run: 2 (Launch, Submit; target ≤ 3)")


if __name__ == "__main__":
    main()
