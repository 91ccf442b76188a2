"""Figure 7: build avoidance with the docker builder, on a private Docker engine and a local registry.

The quickstart notebook's real build context (create_context, FROM the test base image), built and
pushed by DockerBuilder:
- cold build: a dependency layer and code layer the engine has never built (a round-unique comment in
  requirements.txt), to a fresh repository; includes the push;
- code-only rebuild: one more cell in the notebook; the dependency layer must come from the cache;
- unchanged resubmit: the same notebook again; must build nothing, after exactly one manifest HEAD.
Baselines: the code-only rebuild beside the cold build, the unchanged resubmit beside the code-only
rebuild. Registry calls are counted in the registry's own access log.

Standalone: ``.venv/bin/python benchmarks/bench_build.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (str(HERE), str(HERE.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _stats import figure, not_available, spread_text, summary  # noqa: E402


def _round(builder, make_context, notebook: Path, registry, tag: str) -> dict:
    """One cold build, one code-only rebuild and one unchanged resubmit; times and counts."""
    import nbformat

    from launch_jupyter.packaging.requirements import resolve_requirements

    requirements = resolve_requirements(notebook)[0] + f"# bench round {tag}\n"
    out: dict = {}
    log: list[str] = []
    started = time.perf_counter()
    builder.build(make_context(notebook, requirements), None, "linux/amd64", log.append)
    out["cold"] = time.perf_counter() - started

    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(f"print('round {tag}')"))
    nbformat.write(nb, notebook)
    log = []
    started = time.perf_counter()
    builder.build(make_context(notebook, requirements), None, "linux/amd64", log.append)
    out["code_only"] = time.perf_counter() - started
    pip_step = next((i for i, line in enumerate(log) if "pip install -r" in line), None)
    out["dependency_layer_cached"] = pip_step is not None and "Using cache" in log[pip_step + 1]

    builds_before = builder.builds
    heads, gets = registry.requests("HEAD", "/manifests/"), registry.requests("GET")
    puts = registry.requests("PUT") + registry.requests("POST") + registry.requests("PATCH")
    started = time.perf_counter()
    builder.build(make_context(notebook, requirements), None, "linux/amd64", lambda line: None)
    out["unchanged"] = time.perf_counter() - started
    out["unchanged_builds"] = builder.builds - builds_before
    out["skip_heads"] = registry.requests("HEAD", "/manifests/") - heads
    writes = registry.requests("PUT") + registry.requests("POST") + registry.requests("PATCH") - puts
    out["skip_other_calls"] = registry.requests("GET") - gets + writes
    return out


def run(quick: bool = False) -> dict:
    """The build-avoidance figures; ``not available`` when no Docker engine can start here."""
    from tests.fixtures.docker import (
        PartMissing,
        prepare_base_image,
        start_engine,
        start_registry,
        stop_engine,
        stop_registry,
        write_notebook,
    )

    name = "build: cold build of the quickstart image"
    try:
        engine = start_engine()
    except PartMissing as err:
        return {"figures": [not_available(name, str(err))], "problems": []}
    work = Path(tempfile.mkdtemp(prefix="launch-bench-build-"))
    saved = os.environ.get("DOCKER_HOST")
    registry = None
    try:
        registry = start_registry()
        os.environ["DOCKER_HOST"] = engine.host
        base = prepare_base_image(engine, work / "base")
        return _measure(engine, registry, base, work, write_notebook, 1 if quick else 3)
    except PartMissing as err:
        return {"figures": [not_available(name, str(err))], "problems": []}
    finally:
        if saved is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = saved
        if registry is not None:
            stop_registry(registry)
        stop_engine(engine)
        shutil.rmtree(work, ignore_errors=True)


def _measure(engine, registry, base: str, work: Path, write_notebook, rounds: int) -> dict:
    from launch_jupyter.builders.docker import DockerBuilder
    from launch_jupyter.core.config import BuilderConfig
    from launch_jupyter.packaging.context import create_context

    counter = iter(range(10_000))

    def make_context(notebook: Path, requirements: str):
        dest = work / f"context-{next(counter)}"
        return create_context(notebook, dest, base_image=base, wheel=False, requirements=requirements)

    results = []
    for i in range(rounds):
        tag = uuid.uuid4().hex[:8]
        destination = f"{registry.address}/bench/quickstart-{tag}"
        builder = DockerBuilder(BuilderConfig(type="docker", destination=destination, network="host"))
        notebook = write_notebook(work / f"nb-{i}")
        results.append(_round(builder, make_context, notebook, registry, tag))
    return _figures(results, engine.storage_driver)


def _figures(results: list[dict], driver: str) -> dict:
    cold = [r["cold"] for r in results]
    code = [r["code_only"] for r in results]
    same = [r["unchanged"] for r in results]
    cold_s, code_s, same_s = summary(cold)["median"], summary(code)["median"], summary(same)["median"]
    heads = max(r["skip_heads"] for r in results)
    other = max(r["skip_other_calls"] for r in results)
    builds = max(r["unchanged_builds"] for r in results)
    n = len(results)
    rounds = ", ".join(f"{v:.1f}" for v in cold)
    note = f"rounds {rounds} s (the first also pushes the base layers); local engine ({driver}), loopback registry"
    figures = [
        figure("build: cold build + push of the quickstart image", cold_s, "s", n=n, spread=spread_text(cold), note=note),
        figure("build: code-only rebuild + push", code_s, "s", baseline="cold build", baseline_value=cold_s,
               n=n, spread=spread_text(code), note="dependency layer from cache" if all(r["dependency_layer_cached"] for r in results) else "dependency layer NOT cached"),
        figure("build: unchanged resubmit (skip check)", same_s * 1000, "ms", baseline="code-only rebuild",
               baseline_value=code_s * 1000, n=n, spread=spread_text(same, 1000), note=f"{builds} builds"),
        figure("build: registry calls for the skip check", heads + other, "calls", baseline="one manifest HEAD",
               baseline_value=1, n=n, note=f"{heads} manifest HEAD, {other} other"),
    ]  # fmt: skip
    problems = []
    if builds:
        problems.append(f"an unchanged resubmit built {builds} time(s); it must build nothing")
    if heads != 1 or other:
        problems.append(f"the skip check made {heads} manifest HEADs and {other} other registry calls; expected 1 HEAD")
    if not all(r["dependency_layer_cached"] for r in results):
        problems.append("a code-only rebuild did not reuse the cached dependency layer")
    return {"figures": figures, "problems": problems}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
