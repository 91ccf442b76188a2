"""The agents registry: who serves which queue, from which host, last seen when; what front ends say
when nobody serves a queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.cli import main
from launch_jupyter.core.identity import host_identity
from tests.fixtures.common import EXAMPLES
from tests.test_agent_fencing import wait_for

QUICKSTART = EXAMPLES / "quickstart.ipynb"


def test_a_running_agent_is_listed_with_its_host_and_queues_and_marked_stopped_after():
    api.create_queue("laptop", "local-process")
    api.create_queue("other", "local-process")
    agent = Agent(["laptop"], poll_interval=0.2).start()
    try:
        wait_for(lambda: api.serving_agents("laptop"), what="the agent to register")
        (row,) = api.agents()
        assert row["id"] == agent.agent_id and row["alive"]
        assert row["host_id"] == host_identity() and row["host"] == host_identity().split("/")[0]
        assert row["queues"] == ["alice/laptop"] and row["max_jobs"] == 1 and row["pid"] == os.getpid()
        assert api.serving_note("laptop") is None
        assert api.serving_agents("other") == []
    finally:
        agent.stop()
    (row,) = api.agents()
    assert not row["alive"] and row["stopped_at"] is not None
    assert api.serving_note("laptop").startswith("no agent is serving alice/laptop (last seen ")


def test_submit_warns_when_no_agent_serves_the_queue(capsys):
    api.create_queue("laptop", "local-process")
    assert main(["submit", str(QUICKSTART), "-q", "laptop"]) == 0
    err = capsys.readouterr().err
    assert "warning: no agent is serving alice/laptop" in err and "launch-jupyter agent -q alice/laptop" in err
    agent = Agent(["laptop"], poll_interval=0.2).start()
    try:
        wait_for(lambda: api.serving_agents("laptop"), what="the agent to register")
        assert main(["submit", str(QUICKSTART), "-q", "laptop"]) == 0
        assert "warning" not in capsys.readouterr().err
    finally:
        agent.stop()


def test_the_agents_command_lists_a_cli_agent_and_then_says_it_is_gone(capsys):
    api.create_queue("laptop", "local-process")
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch_jupyter.cli", "agent", "-q", "laptop"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: api.serving_agents("laptop"), what="the CLI agent to register")
        assert main(["agents", "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["pid"] == proc.pid and row["alive"] is True and row["queues"] == ["alice/laptop"]
        assert main(["agents", "-q", "laptop"]) == 0
        table = capsys.readouterr().out
        assert "AGENT" in table and f":{proc.pid}:" in table and "alive" in table
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # A killed agent never says it stopped: it is "gone" once its heartbeat is two leases old.
    store = api.open_store()
    with store._backend.write() as conn:  # age its heartbeat instead of waiting a minute
        from launch_jupyter.store._schema import agents

        conn.execute(agents.update().values(heartbeat_at=time.time() - 600))
    assert main(["agents"]) == 0
    assert "gone" in capsys.readouterr().out
    assert api.serving_note("laptop") == "no agent is serving alice/laptop (last seen 10 min ago)"
