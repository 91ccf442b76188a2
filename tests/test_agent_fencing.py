"""Fencing: a run is written only by the agent holding its current lease generation.

The store's compare-and-set, then real agent processes paused with SIGSTOP past their lease (mid-submit,
mid-run) while a second agent takes the run over: one job per run, one process per run, and nothing
written by the stale agent once it lost the lease.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.core.model import Queue, Run
from launch_jupyter.core.states import RunState
from launch_jupyter.store import LeaseLost, open_store
from tests.fixtures.common import EXAMPLES
from tests.fixtures.vertex import IMAGE

QUICKSTART = EXAMPLES / "quickstart.ipynb"
LEASE = 3  # seconds: short, so a paused agent loses its runs quickly


def wait_for(predicate, timeout: float = 90, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- the store's compare-and-set


def _queued(store) -> tuple[Queue, Run]:
    queue = store.create_queue(Queue(entity="alice", name="q", resource="local-process", config={}, created_by="alice"))
    run = store.enqueue(
        Run(id="", queue_id=queue.id, queue_name="q", entity="alice", author="alice", resource="local-process")
    )
    return queue, run


def test_a_write_under_a_lost_lease_is_refused_and_changes_nothing(store_url):
    with open_store(store_url) as store:
        queue, run = _queued(store)
        first = store.claim([queue.id], "a:1:x", lease_s=0.01)
        assert first.lease_generation == 1
        time.sleep(0.05)  # let the tiny lease lapse (the claim below needs it expired)
        second = store.claim([queue.id], "b:2:y", lease_s=30)
        assert second.id == run.id and second.lease_generation == 2
        before = store.events(run.id)
        for write in (
            lambda: store.transition(run.id, RunState.SUBMITTING, "stale", fence=("a:1:x", 1)),
            lambda: store.update(run.id, external_id="job-2", fence=("a:1:x", 1)),
            lambda: store.add_event(run.id, "stale line", fence=("a:1:x", 1)),
            lambda: store.transition(run.id, RunState.BUILDING, "", fence=("b:2:y", 1)),  # old generation
        ):
            with pytest.raises(LeaseLost, match="lease lost"):
                write()
        assert store.events(run.id) == before
        assert store.get_run(run.id).external_id is None
        done = store.transition(run.id, RunState.SUBMITTING, "mine", fence=("b:2:y", 2))
        assert done.state is RunState.SUBMITTING


def test_release_and_a_finished_run_end_every_fence(store_url):
    with open_store(store_url) as store:
        queue, run = _queued(store)
        claimed = store.claim([queue.id], "a:1:x", lease_s=30)
        store.release(run.id, "a:1:x")  # back in the queue, under a new generation
        with pytest.raises(LeaseLost):
            store.transition(run.id, RunState.BUILDING, "", fence=("a:1:x", claimed.lease_generation))
        again = store.claim([queue.id], "a:1:x", lease_s=30)
        fence = ("a:1:x", again.lease_generation)
        store.transition(run.id, RunState.FAILED, "done", fence=fence)
        with pytest.raises(LeaseLost):
            store.add_event(run.id, "after the end", fence=fence)


def test_a_host_bound_run_is_reattached_only_on_its_host(store_url):
    with open_store(store_url) as store:
        queue, run = _queued(store)
        claimed = store.claim([queue.id], "a:1:x", lease_s=0.01, host="host-a/1")
        store.transition(run.id, RunState.SUBMITTING, "", fence=("a:1:x", claimed.lease_generation), host="host-a/1")
        time.sleep(0.05)
        assert store.claim([queue.id], "b:2:y", lease_s=30, host="host-b/2") is None
        assert store.fail_stranded([queue.id], "host-b/2", grace_s=3600) == []
        taken = store.claim([queue.id], "a:3:z", lease_s=30, host="host-a/1")
        assert taken.id == run.id and taken.state is RunState.SUBMITTING


def test_a_host_bound_run_fails_elsewhere_only_after_the_grace(store_url):
    with open_store(store_url) as store:
        queue, run = _queued(store)
        claimed = store.claim([queue.id], "a:1:x", lease_s=0.01, host="host-a/1")
        store.transition(run.id, RunState.RUNNING, "", fence=("a:1:x", claimed.lease_generation), host="host-a/1")
        time.sleep(0.05)
        failed = store.fail_stranded([queue.id], "host-b/2", grace_s=0.01)
        assert [r.id for r in failed] == [run.id]
        ended = store.get_run(run.id)
        assert ended.state is RunState.FAILED and "its host host-a stopped serving it" in ended.message


def test_a_host_bound_run_of_an_earlier_boot_of_this_machine_fails_at_once(store_url, tmp_path, monkeypatch):
    """After a reboot the run's process is gone for certain: the machine's new agent fails it at its
    first look instead of leaving it running for host_grace_seconds. A clone with the same hostname
    (another machine id) or a machine without a machine id still waits for the grace."""
    from launch_jupyter.core import identity

    machine, boot = tmp_path / "machine-id", tmp_path / "boot_id"
    monkeypatch.setattr(identity, "_MACHINE_ID_FILES", (str(machine),))
    monkeypatch.setattr(identity, "_BOOT_ID_FILE", str(boot))

    def host(machine_id: str, boot_id: str) -> str:
        machine.write_text(machine_id + "\n")
        boot.write_text(boot_id + "\n")
        identity._host_identity.cache_clear()
        return identity._host_identity("box")

    before, after = host("m1", "boot-1"), host("m1", "boot-2")
    clone, bare_before, bare_after = host("m2", "boot-1"), host("", "boot-1"), host("", "boot-2")
    assert before != after and identity.rebooted_from(before, after)
    assert not identity.rebooted_from(clone, after) and not identity.rebooted_from(bare_before, bare_after)
    with open_store(store_url) as store:
        queue = store.create_queue(
            Queue(entity="alice", name="lq", resource="local-process", config={}, created_by="alice")
        )
        ids = {}
        for name, where in (("old boot", before), ("clone", clone)):
            store.enqueue(
                Run(id="", queue_id=queue.id, queue_name="lq", entity="alice", author="alice", resource="local-process")
            )
            claimed = store.claim([queue.id], f"{name}:1:x", lease_s=3600, host=where)
            store.transition(
                claimed.id, RunState.RUNNING, "", fence=(f"{name}:1:x", claimed.lease_generation), host=where
            )
            ids[name] = claimed.id
        failed = store.fail_stranded([queue.id], after, grace_s=86400)
        assert [r.id for r in failed] == [ids["old boot"]]
        assert "its host box rebooted" in store.get_run(ids["old boot"]).message
        assert store.get_run(ids["clone"]).state is RunState.RUNNING


# --------------------------------------------------------------------------- real agents, paused


def _short_lease(config: Path) -> None:
    config.write_text(config.read_text().replace("lease_seconds: 30", f"lease_seconds: {LEASE}"))
    api.configure(config_path=str(config))


def start_cli_agent(config: Path, log: Path, queue: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "launch_jupyter.cli", "-c", str(config), "agent", "-q", queue, "--poll-interval", "0.2"],
        env=os.environ.copy(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def thread_agent(queue: str) -> Agent:
    return Agent(
        config=api.agent_config(overrides={"queues": [queue], "poll_interval": 0.2, "lease_seconds": LEASE})
    ).start()


def creates_for(fake, run_id: str) -> int:
    return sum(
        1 for r in fake.calls("CreateCustomJob") if r.request["custom_job"]["labels"].get("launch-run-id") == run_id
    )


def written_after_takeover(run, stale_id: str, new_id: str) -> list[str]:
    """Event lines after the new agent's reattach that the stale agent wrote (events name their writer)."""
    events = run.events()
    start = next(i for i, e in enumerate(events) if f"reattached by {new_id}" in e.message)
    assert any(e.agent_id == new_id for e in events[start:])
    return [f"{e.state} {e.message}" for e in events[start:] if e.agent_id == stale_id]


def stop_process(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGCONT)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_an_agent_paused_in_its_pre_create_look_up_never_creates_a_second_job(vertex_queue, tmp_path, capsys):
    fake, config = vertex_queue
    _short_lease(config)
    # The stale agent's look-up is answered ("no job yet") and then its answer hangs until release().
    fake.delay("ListCustomJobs", None, times=1, after=True)
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    stale = start_cli_agent(config, tmp_path / "stale.log", "vq")
    fresh = None
    try:
        wait_for(lambda: fake.calls("ListCustomJobs"), what="the stale agent's look-up")
        stale_id = run.refresh().run.agent_id
        stale.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        fresh = thread_agent("vq")
        wait_for(lambda: run.refresh().run.agent_id == fresh.agent_id, what="the takeover")
        took_over = time.monotonic() - paused
        wait_for(lambda: creates_for(fake, run.id) == 1, what="the new agent's create")
        stale.send_signal(signal.SIGCONT)
        fake.release()  # the stale "no job yet" answer arrives now
        wait_for(lambda: "dropped" in (tmp_path / "stale.log").read_text(), what="the stale agent to drop it")
        assert run.wait(timeout=60) is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    finally:
        if fresh is not None:
            fresh.stop()
        stop_process(stale)
    assert creates_for(fake, run.id) == 1
    assert written_after_takeover(run, stale_id, fresh.agent_id) == []
    assert sum(1 for e in run.events() if e.state is RunState.SUBMITTING) == 1
    with capsys.disabled():
        print(f"\n[figure] mid-submit stall: creates per run 1, takeover after {took_over:.1f} s (lease {LEASE} s)")


def test_an_agent_paused_while_its_run_runs_loses_it_and_writes_nothing_more(vertex_queue, tmp_path, capsys):
    fake, config = vertex_queue
    _short_lease(config)
    fake.script(["PENDING"] + ["RUNNING"] * 100_000)
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    stale = start_cli_agent(config, tmp_path / "stale.log", "vq")
    fresh = None
    try:
        wait_for(lambda: run.refresh().state is RunState.RUNNING, what="the run to run")
        stale_id = run.run.agent_id
        stale.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        fresh = thread_agent("vq")
        wait_for(lambda: run.refresh().run.agent_id == fresh.agent_id, what="the takeover")
        took_over = time.monotonic() - paused
        stale.send_signal(signal.SIGCONT)
        wait_for(lambda: "dropped" in (tmp_path / "stale.log").read_text(), what="the stale agent to drop it")
        fake.script(["SUCCEEDED"], job=run.refresh().run.external_id)
        assert run.wait(timeout=60) is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    finally:
        if fresh is not None:
            fresh.stop()
        stop_process(stale)
    assert creates_for(fake, run.id) == 1
    assert written_after_takeover(run, stale_id, fresh.agent_id) == []
    with capsys.disabled():
        print(f"\n[figure] mid-run stall (vertex): creates per run 1, takeover after {took_over:.1f} s")


def test_an_agent_taking_over_a_run_left_submitting_looks_again_before_it_creates(vertex_queue, tmp_path, capsys):
    fake, config = vertex_queue
    _short_lease(config)
    # A new job is missing from lists for 6 s: less than the runner's list_lag_seconds (10 s), more
    # than a takeover takes, so a look-up right at the takeover would miss it and create a second.
    fake.state.list_lag_s = 6.0
    # The stale agent's create takes effect, then its answer hangs: it stalls inside the window
    # between "submitting" and knowing the job's name.
    fake.delay("CreateCustomJob", None, times=1, after=True)
    run = api.submit(QUICKSTART, "vq", image=IMAGE)
    stale = start_cli_agent(config, tmp_path / "stale.log", "vq")
    fresh = None
    try:
        wait_for(lambda: len(fake.state.jobs) == 1, what="the stale agent's create to take effect")
        assert run.refresh().state is RunState.SUBMITTING
        stale_id = run.run.agent_id
        stale.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        fresh = thread_agent("vq")
        wait_for(lambda: run.refresh().run.agent_id == fresh.agent_id, what="the takeover")
        wait_for(lambda: run.refresh().run.external_id, what="the new agent to find the job")
        found_after = time.monotonic() - paused
        stale.send_signal(signal.SIGCONT)
        fake.release()  # the stale create's answer arrives now
        wait_for(lambda: "dropped" in (tmp_path / "stale.log").read_text(), what="the stale agent to drop it")
        assert run.wait(timeout=60) is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    finally:
        if fresh is not None:
            fresh.stop()
        stop_process(stale)
    assert creates_for(fake, run.id) == 1 and len(fake.state.jobs) == 1  # one CustomJob
    assert run.run.external_id == next(iter(fake.state.jobs))
    assert any(e.message.startswith("found its job at the target") for e in run.events())
    assert written_after_takeover(run, stale_id, fresh.agent_id) == []
    with capsys.disabled():
        print(
            f"\n[figure] submitting→create window: CustomJobs per run 1, job found {found_after:.1f} s "
            "after the stall (list lag 6 s, waited out)"
        )


KANIKO_BUILDER = """\
builder:
  type: kaniko
  destination: us-docker.pkg.dev/proj/launch/notebooks
  build_context_store: gs://contexts-bucket/launch
"""


@pytest.fixture
def kaniko_set_up(vertex_queue, tmp_path, adc_token, monkeypatch):
    """The vertex queue's agents build with kaniko: fake Cloud Build and GCS, and a fake Artifact
    Registry (us-docker.pkg.dev through an HTTPS proxy) that has no image yet. Yields the fakes."""
    from tests.fakes import cloudbuild_server, gcs_server, registry_server

    fake, config = vertex_queue
    gcs_srv, gcs = gcs_server.start()
    build_srv, cloud_build = cloudbuild_server.start(cloudbuild_server.CloudBuildState(gcs=gcs))
    registry_srv, registry = registry_server.start(tmp_path / "registry-tls", adc_token)
    for name, value in {
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{gcs_srv.server_port}",
        "LAUNCH_JUPYTER_CLOUDBUILD_ENDPOINT": cloud_build.base_url,
        "https_proxy": registry.proxy_url,
        "no_proxy": "127.0.0.1,localhost",
        "SSL_CERT_FILE": str(registry.ca_file),
    }.items():
        monkeypatch.setenv(name, value)  # for the agent in this process and the CLI agents it starts
    config.write_text(config.read_text().replace("builder:\n  type: noop\n", KANIKO_BUILDER))
    _short_lease(config)
    yield fake, config, cloud_build, registry
    for server in (gcs_srv, build_srv, registry_srv):
        server.shutdown()
        server.server_close()


def test_an_agent_paused_mid_build_never_uses_its_build_or_creates_a_job(kaniko_set_up, tmp_path, capsys):
    fake, config, cloud_build, registry = kaniko_set_up
    cloud_build.hold = True  # builds stay WORKING until the test lets them finish
    run = api.submit(QUICKSTART, "vq")  # no image: the agent builds one
    stale = start_cli_agent(config, tmp_path / "stale.log", "vq")
    fresh = None
    try:
        wait_for(lambda: len(cloud_build.created) == 1, what="the stale agent's Cloud Build build")
        wait_for(
            lambda: "WORKING" in run.refresh().run.message or any("WORKING" in e.message for e in run.events()),
            what="the stale agent waiting on its build",
        )
        assert run.run.state is RunState.BUILDING
        stale_id = run.run.agent_id
        stale.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        fresh = thread_agent("vq")
        wait_for(lambda: run.refresh().run.agent_id == fresh.agent_id, what="the takeover")
        took_over = time.monotonic() - paused
        wait_for(lambda: len(cloud_build.created) == 2, what="the new agent's build")
        stale.send_signal(signal.SIGCONT)
        # Its wait for the build ends when it learns it lost the run, while the build still runs.
        wait_for(lambda: "dropped" in (tmp_path / "stale.log").read_text(), what="the stale agent to drop it")
        cloud_build.hold = False
        assert run.wait(timeout=120) is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    finally:
        if fresh is not None:
            fresh.stop()
        stop_process(stale)
    assert creates_for(fake, run.id) == 1
    [create] = [r for r in fake.calls("CreateCustomJob")]
    image = create.request["custom_job"]["job_spec"]["worker_pool_specs"][0]["container_spec"]["image_uri"]
    assert image == run.refresh().run.image_uri and image.startswith("us-docker.pkg.dev/proj/launch/notebooks:")
    assert written_after_takeover(run, stale_id, fresh.agent_id) == []
    assert len(cloud_build.created) == 2  # the stale build went on at Cloud Build; its result was not used
    with capsys.disabled():
        print(
            f"\n[figure] mid-build stall (kaniko): creates per run 1, builds 2 (one used), takeover after "
            f"{took_over:.1f} s (lease {LEASE} s)"
        )


def marker_notebook(path: Path) -> Path:
    """A notebook that appends one line to ``marker`` per execution, then waits for ``go`` to exist."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('marker = ""\ngo = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "import os, time\n"
            "with open(marker, 'a') as f:\n"
            "    f.write(f'{os.getpid()}\\n')\n"
            "while go and not os.path.exists(go):\n"
            "    time.sleep(0.05)\n"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_a_paused_agent_on_this_host_loses_its_local_run_which_runs_once(tmp_path, capsys):
    config = tmp_path / "launch-config.yaml"
    config.write_text(f"poll_interval: 0.2\nlease_seconds: {LEASE}\n")
    api.configure(config_path=str(config))
    api.create_queue("laptop", "local-process")
    marker, go = tmp_path / "ran.txt", tmp_path / "go"
    notebook = marker_notebook(tmp_path / "marker.ipynb")
    run = api.submit(notebook, "laptop", parameters={"marker": str(marker), "go": str(go)})
    stale = start_cli_agent(config, tmp_path / "stale.log", "laptop")
    fresh = None
    try:
        wait_for(lambda: marker.exists(), what="the notebook to start")
        wait_for(lambda: run.refresh().state is RunState.RUNNING, what="the run to run")
        stale_id = run.run.agent_id
        stale.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        fresh = thread_agent("laptop")
        wait_for(lambda: run.refresh().run.agent_id == fresh.agent_id, what="the takeover")
        took_over = time.monotonic() - paused
        stale.send_signal(signal.SIGCONT)
        wait_for(lambda: "dropped" in (tmp_path / "stale.log").read_text(), what="the stale agent to drop it")
        go.touch()
        assert run.wait(timeout=120) is RunState.SUCCEEDED, [f"{e.state} {e.message}" for e in run.events()]
    finally:
        go.touch()
        if fresh is not None:
            fresh.stop()
        stop_process(stale)
    assert len(marker.read_text().splitlines()) == 1  # executed once
    assert written_after_takeover(run, stale_id, fresh.agent_id) == []
    states = [e.state for e in run.events()]
    assert RunState.PENDING not in states[states.index(RunState.RUNNING) :]
    with capsys.disabled():
        print(f"\n[figure] mid-run stall (local-process): executions per run 1, takeover after {took_over:.1f} s")
