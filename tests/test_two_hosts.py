"""Two "hosts" on one PostgreSQL store: agent processes in their own UTS namespaces (``unshare --uts``,
a hostname and a data folder each), as a team of two machines looks to the agents.

A local-process run lives on the host that started it: an agent elsewhere never adopts it (it cannot
see the process), the host's next agent reattaches it, and only after the long grace period does an
agent elsewhere fail it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launch_jupyter import api
from launch_jupyter.core.states import RunState
from tests.test_agent_fencing import marker_notebook, wait_for

LEASE = 3


def _can_unshare() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare command"
    probe = subprocess.run(
        ["unshare", "--uts", "--fork", "sh", "-c", "hostname probe-host && hostname"], capture_output=True, text=True
    )
    if probe.returncode != 0 or probe.stdout.strip() != "probe-host":
        return f"unshare --uts does not work here (needs root): {probe.stderr.strip()}"
    return None


pytestmark = [pytest.mark.postgres, pytest.mark.skipif(_can_unshare() is not None, reason=str(_can_unshare()))]


def on_host(host: str, data: Path, args: list[str], **popen) -> subprocess.Popen:
    """``launch-jupyter ARGS`` in its own UTS namespace named ``host``, with its own data folder."""
    env = dict(os.environ, XDG_DATA_HOME=str(data))
    command = [
        "unshare",
        "--uts",
        "--fork",
        "sh",
        "-c",
        f'hostname {host}; exec "$@"',
        "sh",
        sys.executable,
        "-m",
        "launch_jupyter.cli",
        *args,
    ]
    return subprocess.Popen(command, env=env, text=True, **popen)


@pytest.fixture
def team(pg_url, tmp_path):
    """A config on the shared PostgreSQL store, a local-process queue, and the marker notebook."""

    def configure(grace: float = 86400) -> Path:
        config = tmp_path / "launch-config.yaml"
        config.write_text(f"store: {pg_url}\npoll_interval: 0.2\nlease_seconds: {LEASE}\nhost_grace_seconds: {grace}\n")
        api.configure(config_path=str(config))
        return config

    config = configure()
    api.create_queue("laptop", "local-process")
    return configure, config, marker_notebook(tmp_path / "marker.ipynb")


def start_on_host_a(config: Path, tmp_path: Path, notebook: Path):
    marker, go = tmp_path / "ran.txt", tmp_path / "go"
    run = api.submit(notebook, "laptop", parameters={"marker": str(marker), "go": str(go)})
    agent = on_host(
        "host-a",
        tmp_path / "host-a",
        ["-c", str(config), "agent", "-q", "laptop"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: run.refresh().state is RunState.RUNNING and marker.exists(), what="the run on host-a")
    except BaseException:
        agent.kill()
        raise
    return run, agent, marker, go


def kill_agent_of(run, unshare: subprocess.Popen) -> str:
    """SIGKILL the agent process itself (its id is host:pid:nonce; unshare has its own pid)."""
    agent_id = run.refresh().run.agent_id
    assert agent_id.startswith("host-a:")
    os.kill(int(agent_id.split(":")[1]), signal.SIGKILL)
    unshare.wait(timeout=30)
    return agent_id


def test_another_host_never_adopts_a_local_run_and_its_own_host_reattaches_it(team, tmp_path):
    _, config, notebook = team
    run, first, marker, go = start_on_host_a(config, tmp_path, notebook)
    try:
        dead = kill_agent_of(run, first)
        wait_for(lambda: (run.refresh().run.lease_expires_at or 0) < time.time(), what="the lease to lapse")
        other = on_host(
            "host-b",
            tmp_path / "host-b",
            ["-c", str(config), "agent", "-q", "laptop", "--until-idle"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        said, _ = other.communicate(timeout=120)
        assert other.returncode == 0, said
        assert f"left {run.id}" in said and "host-a" in said, said
        held = run.refresh().run
        assert held.state is RunState.RUNNING and held.agent_id == dead
        assert not any((e.agent_id or "").startswith("host-b:") for e in run.events())

        again = on_host(
            "host-a",
            tmp_path / "host-a",
            ["-c", str(config), "agent", "-q", "laptop", "--until-idle"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: (run.refresh().run.agent_id or "").startswith("host-a:") and run.run.agent_id != dead,
            what="host-a's new agent to reattach",
        )
        go.touch()
        said, _ = again.communicate(timeout=120)
        assert again.returncode == 0, said
    finally:
        go.touch()
    assert run.refresh().state is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    assert len(marker.read_text().splitlines()) == 1  # the notebook ran once
    states = [e.state for e in run.events()]
    assert RunState.PENDING not in states[states.index(RunState.RUNNING) :]  # never "not started yet"
    assert any("reattached by host-a:" in e.message for e in run.events())


def test_a_local_run_whose_host_is_gone_fails_elsewhere_after_the_grace(team, tmp_path):
    configure, config, notebook = team
    run, first, marker, go = start_on_host_a(config, tmp_path, notebook)
    try:
        kill_agent_of(run, first)
        config = configure(grace=1)
        wait_for(
            lambda: (run.refresh().run.lease_expires_at or time.time()) < time.time() - 1,
            what="the lease and the grace to lapse",
        )
        other = on_host(
            "host-b",
            tmp_path / "host-b",
            ["-c", str(config), "agent", "-q", "laptop", "--until-idle"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        said, _ = other.communicate(timeout=120)
        assert other.returncode == 0, said
    finally:
        go.touch()
    ended = run.refresh().run
    assert ended.state is RunState.FAILED
    assert "its host host-a stopped serving it" in ended.message
