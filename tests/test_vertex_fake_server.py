"""The fake Vertex AI server as a standalone process (for crash-safety tests): port file, debug
endpoints, and the real SDK path through the runner against it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.fixtures.vertex import CERTS, make_job

REPO = Path(__file__).resolve().parents[1]


def test_standalone_fake_server(tmp_path):
    from launch_jupyter.core.config import AgentConfig, EnvironmentConfig
    from launch_jupyter.core.retry import retry
    from launch_jupyter.runners.vertex import VertexRunner

    port_file = tmp_path / "ports.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.vertex_server", "--port-file", str(port_file), "--script", "RUNNING"],
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert proc.poll() is None, "the fake server exited"
            assert time.monotonic() < deadline, "no port file"
            time.sleep(0.05)
        info = json.loads(port_file.read_text())
        assert info["ca_file"] == str(CERTS.ca_file)  # the same cached CA this process trusts
        requests.post(
            f"{info['rest_endpoint']}/_debug/fail",
            json={"method": "CreateCustomJob", "code": "UNAVAILABLE"},
            timeout=10,
        ).raise_for_status()
        env = EnvironmentConfig(project="proj", api_endpoint=info["grpc_endpoint"], credentials="anonymous")
        runner = VertexRunner(AgentConfig(environment=env), lookup_attempts=1)
        job = make_job()
        job.run.external_id = retry(lambda: runner.submit(job), deadline_s=30, base_s=0.01, cap_s=0.05)
        assert runner.poll([job])[job.run.id].state.value == "running"
        seen = requests.get(f"{info['rest_endpoint']}/_debug/requests", timeout=10).json()
        methods = [r["method"] for r in seen]
        # look-up, create (refused), its look-up (did it take effect?), the retry's look-up, create, poll
        assert methods == [
            "ListCustomJobs",
            "CreateCustomJob",
            "ListCustomJobs",
            "ListCustomJobs",
            "CreateCustomJob",
            "ListCustomJobs",
        ]
        assert seen[4]["request"]["custom_job"]["labels"]["launch-run-id"] == "run-1"
    finally:
        proc.terminate()
        proc.wait(10)
