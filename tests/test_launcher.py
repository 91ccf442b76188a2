"""The client object: a Launcher owns one store handle, its agent config and the agents it starts,
and closes what it opened; the module functions open one per call and leave nothing open."""

from __future__ import annotations

import os

import pytest

import launch_jupyter
from launch_jupyter import api
from launch_jupyter.core.errors import ConfigError, LaunchError
from launch_jupyter.core.states import RunState
from launch_jupyter.store import _backend, open_store

from .fixtures.common import EXAMPLES

QUICKSTART = EXAMPLES / "quickstart.ipynb"


def users_of(url: str) -> int:
    """How many open handles this process holds on ``url`` (0 when its pool is closed)."""
    backend = _backend._backends.get((os.getpid(), _backend.normalize_url(url)))
    return backend.users if backend is not None else 0


def test_module_calls_close_the_handles_they_open(sqlite_url, tmp_path):
    api.configure(store_url=sqlite_url)
    with open_store(sqlite_url):  # keep the pool alive, so a leak shows as a higher count
        before = users_of(sqlite_url)
        api.create_queue("laptop", exist_ok=True)
        for _ in range(10):
            handle = api.submit(QUICKSTART, "laptop", parameters={"name": "x"}, save=False)
            api.get_run(handle.id).refresh()
            api.list_runs(queue="laptop")
            api.list_queues()
            handle.events()
            list(api.logs(handle.id))
            api.serving_note("laptop")
        api.cancel(handle.id)
        assert users_of(sqlite_url) == before


def test_a_launcher_reads_its_config_once_and_closes_its_store(sqlite_url, tmp_path, monkeypatch):
    config = tmp_path / "launch-config.yaml"
    config.write_text("max_jobs: 3\n")
    launcher = api.Launcher(store=sqlite_url, config_path=str(config))
    assert launcher.config.max_jobs == 3
    config.write_text("max_jobs: [not, a, number]\n")  # read once: a later edit does not reach it
    assert launcher.config.max_jobs == 3
    launcher.create_queue("laptop")
    assert users_of(sqlite_url) == 1
    launcher.close()
    assert users_of(sqlite_url) == 0
    with pytest.raises(LaunchError, match="closed"):
        launcher.list_queues()


def test_a_launcher_given_a_store_leaves_it_open(sqlite_url):
    with open_store(sqlite_url) as store:
        with api.Launcher(store=store) as launcher:
            launcher.create_queue("laptop")
        assert [q.name for q in store.list_queues("alice")] == ["laptop"]  # still usable: the caller owns it


def test_submit_returns_a_handle_dry_run_the_request_and_nothing_is_queued_by_a_dry_run(sqlite_url):
    with launch_jupyter.Launcher(store=sqlite_url) as launcher:
        launcher.create_queue("laptop")
        plan = launcher.dry_run(QUICKSTART, "laptop", parameters={"name": "Ada"}, save=False)
        assert isinstance(plan, api.DryRun)
        assert plan.resource == "local-process" and plan.queue == "alice/laptop"
        assert "Ada" in str(plan) and str(plan) == plan.yaml
        assert launcher.list_runs() == []
        handle = launcher.submit(QUICKSTART, "laptop", parameters={"name": "Ada"}, save=False)
        assert isinstance(handle, api.RunHandle) and handle.state is RunState.QUEUED
        cancelled = launcher.cancel(handle.id)
        assert isinstance(cancelled, api.RunHandle) and cancelled.state is RunState.CANCELLED
    # the handle outlives the launcher: it opens its own handle on the same store
    assert handle.refresh().state is RunState.CANCELLED


def test_a_bad_submit_through_a_launcher_queues_nothing(sqlite_url):
    with api.Launcher(store=sqlite_url) as launcher:
        launcher.create_queue("laptop")
        with pytest.raises(ConfigError, match="priority"):
            launcher.submit(QUICKSTART, "laptop", priority="urgent-ish", save=False)
        assert launcher.list_runs() == []


def test_an_agent_started_by_a_launcher_stops_when_it_closes(sqlite_url):
    launcher = api.Launcher(store=sqlite_url)
    launcher.create_queue("laptop")
    agent = launcher.start_agent(["laptop"])
    assert agent.is_alive()
    assert launcher.start_agent(["laptop"]) is agent  # a re-run cell gets the same agent
    handle = launcher.submit(QUICKSTART, "laptop", parameters={"name": "x"}, save=False)
    assert handle.wait(timeout=120) is RunState.SUCCEEDED
    launcher.close()
    assert not agent.is_alive()
    assert api.agent_status() is None  # the kernel's agent is another one, and none was started


def test_the_kernel_agent_lives_on_across_module_calls(sqlite_url):
    api.configure(store_url=sqlite_url)
    api.create_queue("laptop")
    agent = api.start_agent(["laptop"])
    assert api.start_agent(["laptop"]) is agent
    handle = api.submit(QUICKSTART, "laptop", parameters={"name": "x"}, save=False)
    assert handle.wait(timeout=120) is RunState.SUCCEEDED
    assert api.agent_status()["agent_id"] == agent.agent_id
    api.stop_agent()
    assert not agent.is_alive() and api.agent_status() is None
