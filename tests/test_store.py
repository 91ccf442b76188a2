"""The store: queues, runs, claim with a lease, cancel, history — on SQLite and on real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from launch_jupyter.core.errors import ConfigError, QueueError, RunError, StoreError
from launch_jupyter.core.model import Queue, Run, TemplateVar
from launch_jupyter.core.states import Priority, RunState
from launch_jupyter.store import QueueStore, close_all, open_store


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


def make_queue(
    store: QueueStore, name: str = "q", entity: str = "alice", created_by: str = "alice", prioritization: bool = False
) -> Queue:
    return store.create_queue(
        Queue(
            entity=entity,
            name=name,
            resource="local-process",
            config={"spec": {"x": [1, 2]}},
            config_text="spec:\n  x: [1, 2]\n",
            prioritization=prioritization,
            created_by=created_by,
        )
    )


def enqueue(
    store: QueueStore,
    queue: Queue,
    author: str = "alice",
    priority: Priority = Priority.MEDIUM,
    run_id: str = "",
    context: bytes | None = None,
) -> Run:
    return store.enqueue(
        Run(
            id=run_id,
            queue_id=queue.id,
            queue_name=queue.name,
            entity=queue.entity,
            author=author,
            resource=queue.resource,
            priority=priority,
            parameters={"lr": 0.1},
            config={"k": "v"},
        ),
        context,
    )


def claim_all(store: QueueStore, queue_ids: list[int], agent: str = "agent-1") -> list[str]:
    claimed = []
    while (run := store.claim(queue_ids, agent, 60)) is not None:
        claimed.append(run.id)
    return claimed


# --- queues ---------------------------------------------------------------------------------------


def test_create_and_get_queue_round_trips_every_field(store):
    tv = TemplateVar(name="gpus", type="integer", default=1, minimum=0, maximum=8, description="GPUs")
    created = store.create_queue(
        Queue(
            entity="alice",
            name="train",
            resource="vertex",
            config={"spec": {"staging_bucket": "gs://b"}},
            config_text="spec: {}",
            prioritization=True,
            template_vars=[tv],
            created_by="alice",
        )
    )
    assert created.id is not None and created.created_at > 0 and created.updated_at == created.created_at
    got = store.get_queue("alice", "train")
    assert got == created
    assert got.template_vars == [tv]
    assert store.get_queue_by_id(created.id) == created


def test_duplicate_queue_is_refused_and_changes_nothing(store):
    first = make_queue(store, "dup")
    with pytest.raises(QueueError, match='queue "alice/dup" already exists'):
        store.create_queue(Queue(entity="alice", name="dup", resource="vertex", config={}, created_by="alice"))
    assert store.list_queues() == [first]


def test_missing_queue_names_it(store):
    with pytest.raises(QueueError, match='queue "alice/nope" does not exist'):
        store.get_queue("alice", "nope")
    with pytest.raises(QueueError, match="does not exist"):
        store.get_queue_by_id(12345)


def test_list_queues_shows_private_queues_only_to_their_creator(store):
    mine = make_queue(store, "a", entity="alice", created_by="alice")
    bobs = make_queue(store, "b", entity="bob", created_by="bob")
    team = make_queue(store, "t", entity="ml-team", created_by="bob")
    assert [q.path for q in store.list_queues("alice")] == [mine.path, team.path]
    assert [q.path for q in store.list_queues("bob")] == [bobs.path, team.path]
    assert [q.path for q in store.list_queues("carol")] == [team.path]
    assert [q.path for q in store.list_queues()] == [mine.path, bobs.path, team.path]
    assert team.shared and not mine.shared


def test_find_queue_prefers_own_then_shared_and_hides_private(store):
    own = make_queue(store, "gpu", entity="alice", created_by="alice")
    team_gpu = make_queue(store, "gpu", entity="ml-team", created_by="bob")
    make_queue(store, "cpu", entity="bob", created_by="bob")  # bob's private queue
    team_cpu = make_queue(store, "cpu", entity="ml-team", created_by="bob")
    assert store.find_queue("gpu", "alice") == own
    assert store.find_queue("gpu", "carol") == team_gpu
    assert store.find_queue("ml-team/gpu", "alice") == team_gpu
    assert store.find_queue("gpu", "alice", entity="ml-team") == team_gpu
    assert store.find_queue("cpu", "alice") == team_cpu  # bob's private cpu is invisible to alice
    with pytest.raises(QueueError, match='queue "bob/cpu" does not exist'):
        store.find_queue("bob/cpu", "alice")
    assert store.find_queue("bob/cpu", "bob").entity == "bob"
    with pytest.raises(QueueError, match='queue "nope" does not exist'):
        store.find_queue("nope", "alice")


def test_find_queue_lists_choices_when_shared_queues_share_a_name(store):
    make_queue(store, "gpu", entity="team-a", created_by="bob")
    make_queue(store, "gpu", entity="team-b", created_by="carol")
    with pytest.raises(QueueError, match="ambiguous.*team-a/gpu, team-b/gpu"):
        store.find_queue("gpu", "alice")


def test_update_queue_saves_changes_and_bumps_updated_at(store):
    queue = make_queue(store, "q")
    queue.config = {"spec": {"y": 2}}
    queue.prioritization = True
    updated = store.update_queue(queue)
    assert updated.updated_at > queue.created_at
    got = store.get_queue("alice", "q")
    assert got.config == {"spec": {"y": 2}} and got.prioritization
    assert got.created_at == queue.created_at


def test_update_queue_into_an_existing_name_is_refused(store):
    make_queue(store, "one")
    two = make_queue(store, "two")
    two.name = "one"
    with pytest.raises(QueueError, match="already exists"):
        store.update_queue(two)
    assert store.get_queue("alice", "two").id == two.id


# --- runs -----------------------------------------------------------------------------------------


def test_enqueue_stores_the_run_its_event_and_context(store):
    queue = make_queue(store)
    run = enqueue(store, queue, context=b"\x1f\x8btar-bytes")
    assert len(run.id) == 12 and int(run.id, 16) >= 0
    assert run.state is RunState.QUEUED and run.created_at > 0
    got = store.get_run(run.id)
    assert got == run
    assert got.parameters == {"lr": 0.1} and got.config == {"k": "v"} and got.priority is Priority.MEDIUM
    assert store.get_context(run.id) == b"\x1f\x8btar-bytes"
    assert [(e.state, e.message) for e in store.events(run.id)] == [(RunState.QUEUED, "")]


def test_enqueue_into_a_missing_queue_changes_nothing(store):
    queue = make_queue(store)
    ghost = Queue(entity="alice", name="ghost", resource="local-process", config={}, id=queue.id + 100)
    with pytest.raises(QueueError, match="ghost"):
        enqueue(store, ghost, context=b"x")
    assert store.list_runs() == [] and store.events_since(0) == []


def test_enqueue_with_a_taken_id_is_refused(store):
    queue = make_queue(store)
    enqueue(store, queue, run_id="abcdef123456")
    with pytest.raises(RunError, match="already exists"):
        enqueue(store, queue, run_id="abcdef123456")
    assert len(store.list_runs()) == 1


def test_get_run_by_unique_prefix(store):
    queue = make_queue(store)
    enqueue(store, queue, run_id="abcd11110000")
    enqueue(store, queue, run_id="abcd22220000")
    assert store.get_run("abcd1").id == "abcd11110000"
    with pytest.raises(RunError, match="several runs"):
        store.get_run("abcd")
    with pytest.raises(RunError, match="does not exist"):
        store.get_run("abc")  # too short to be a prefix
    with pytest.raises(RunError, match="does not exist"):
        store.get_run("ffff")
    assert store.get_context("abcd11110000") is None


def test_list_runs_filters_and_orders_newest_first(store):
    q1, q2 = make_queue(store, "one"), make_queue(store, "two")
    a1 = enqueue(store, q1, author="alice")
    b1 = enqueue(store, q1, author="bob")
    a2 = enqueue(store, q2, author="alice")
    store.claim([q2.id], "agent-9", 60)
    assert [r.id for r in store.list_runs()] == [a2.id, b1.id, a1.id]
    assert [r.id for r in store.list_runs(queue_id=q1.id)] == [b1.id, a1.id]
    assert [r.id for r in store.list_runs(author="alice")] == [a2.id, a1.id]
    assert [r.id for r in store.list_runs(states=[RunState.CLAIMED])] == [a2.id]
    assert [r.id for r in store.list_runs(states=["queued"], author="bob")] == [b1.id]
    assert [r.id for r in store.list_runs(agent_id="agent-9")] == [a2.id]
    assert [r.id for r in store.list_runs(limit=2)] == [a2.id, b1.id]


# --- claim ----------------------------------------------------------------------------------------


def test_claim_is_fifo_without_prioritization(store):
    queue = make_queue(store, prioritization=False)
    priorities = [Priority.LOW, Priority.CRITICAL, Priority.MEDIUM, Priority.HIGH]
    ids = [enqueue(store, queue, priority=p).id for p in priorities]
    assert claim_all(store, [queue.id]) == ids


def test_claim_serves_priority_then_fifo_with_prioritization(store):
    queue = make_queue(store, prioritization=True)
    low = enqueue(store, queue, priority=Priority.LOW).id
    crit1 = enqueue(store, queue, priority=Priority.CRITICAL).id
    med = enqueue(store, queue, priority=Priority.MEDIUM).id
    high = enqueue(store, queue, priority=Priority.HIGH).id
    crit2 = enqueue(store, queue, priority=Priority.CRITICAL).id
    assert claim_all(store, [queue.id]) == [crit1, crit2, high, med, low]


def test_claim_marks_the_run_and_writes_an_event(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    claimed = store.claim([queue.id], "agent-1", 30)
    assert claimed.id == run.id and claimed.state is RunState.CLAIMED
    assert claimed.agent_id == "agent-1" and claimed.lease_expires_at > time.time()
    assert claimed.started_at is not None
    assert store.get_run(run.id) == claimed
    assert [(e.state, e.message) for e in store.events(run.id)][-1] == (RunState.CLAIMED, "claimed by agent-1")
    assert store.claim([queue.id], "agent-2", 30) is None
    assert store.claim([], "agent-2", 30) is None


def test_claim_tries_queues_in_the_order_given(store):
    q1, q2, q3 = make_queue(store, "one"), make_queue(store, "two"), make_queue(store, "three")
    r1, r2 = enqueue(store, q1), enqueue(store, q2)
    assert store.claim([q3.id, q2.id, q1.id], "a", 60).id == r2.id
    assert store.claim([q3.id, q2.id, q1.id], "a", 60).id == r1.id
    assert store.claim([q3.id, q2.id, q1.id], "a", 60) is None


def test_claim_skips_a_deleted_queue(store):
    queue = make_queue(store)
    other = make_queue(store, "other")
    run = enqueue(store, other)
    store.delete_queue("alice", "q")
    assert store.claim([queue.id, other.id], "a", 60).id == run.id


# --- leases ---------------------------------------------------------------------------------------


def test_expired_lease_lets_another_agent_reattach_with_state_and_external_id(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    store.claim([queue.id], "agent-a", 60)
    store.transition(run.id, RunState.SUBMITTED, "submitted", external_id="projects/p/customJobs/42")
    store.transition(run.id, RunState.RUNNING)
    assert store.claim([queue.id], "agent-b", 60) is None  # lease still held
    assert store.renew([run.id], "agent-a", 60) == [run.id]
    assert store.renew([run.id], "agent-b", 60) == []

    assert store.expire_lease(run.id, "agent-a") is True  # agent-a is found dead
    taken = store.claim([queue.id], "agent-b", 60)
    assert taken.id == run.id
    assert taken.state is RunState.RUNNING and taken.external_id == "projects/p/customJobs/42"
    assert taken.agent_id == "agent-b" and taken.lease_expires_at > time.time()
    assert store.get_run(run.id) == taken
    last = store.events(run.id)[-1]
    assert (last.state, last.message) == (RunState.RUNNING, "reattached by agent-b")
    assert store.renew([run.id], "agent-a", 60) == []  # agent-a lost it
    assert store.expire_lease(run.id, "agent-a") is False
    assert store.claim([queue.id], "agent-c", 60) is None


def test_a_lease_that_runs_out_is_reattached(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    store.claim([queue.id], "agent-a", 0.05)
    store.transition(run.id, RunState.BUILDING, "building")
    deadline = time.monotonic() + 60
    while (taken := store.claim([queue.id], "agent-b", 60)) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the short lease has run out
    assert (taken.id, taken.state, taken.agent_id) == (run.id, RunState.BUILDING, "agent-b")


def test_renew_extends_only_leases_still_held(store):
    queue = make_queue(store)
    r1, r2, r3 = enqueue(store, queue), enqueue(store, queue), enqueue(store, queue)
    store.claim([queue.id], "a", 5)
    store.claim([queue.id], "a", 5)
    store.claim([queue.id], "b", 5)
    before = store.get_run(r1.id).lease_expires_at
    assert store.renew([r1.id, r2.id, r3.id, "nonexistent"], "a", 600) == [r1.id, r2.id]
    assert store.get_run(r1.id).lease_expires_at > before + 500
    assert store.get_run(r3.id).lease_expires_at < before + 100
    store.transition(r2.id, RunState.SUCCEEDED)
    assert store.renew([r1.id, r2.id], "a", 600) == [r1.id]
    assert store.renew([], "a", 600) == []


def test_release_puts_an_unbuilt_run_back_in_the_queue(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    store.claim([queue.id], "agent-a", 60)
    store.transition(run.id, RunState.BUILDING)
    store.release(run.id, "agent-b")  # not its lease: nothing happens
    assert store.get_run(run.id).state is RunState.BUILDING
    store.release(run.id, "agent-a")
    back = store.get_run(run.id)
    assert back.state is RunState.QUEUED and back.agent_id is None and back.lease_expires_at is None
    assert store.events(run.id)[-1].state is RunState.QUEUED
    assert "released by agent-a" in store.events(run.id)[-1].message
    again = store.claim([queue.id], "agent-b", 60)
    assert again.id == run.id and again.state is RunState.CLAIMED


def test_release_of_a_submitted_run_keeps_its_state_for_reattach(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    store.claim([queue.id], "agent-a", 60)
    store.transition(run.id, RunState.SUBMITTED, external_id="job-1")
    events_before = len(store.events(run.id))
    store.release(run.id, "agent-a")
    kept = store.get_run(run.id)
    assert kept.state is RunState.SUBMITTED and kept.lease_expires_at <= time.time()
    assert len(store.events(run.id)) == events_before
    taken = store.claim([queue.id], "agent-b", 60)
    assert (taken.id, taken.state, taken.external_id) == (run.id, RunState.SUBMITTED, "job-1")


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_a_queued_run_cancels_it_at_once(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    cancelled = store.request_cancel(run.id[:6])
    assert cancelled.state is RunState.CANCELLED and cancelled.finished_at is not None
    assert store.events(run.id)[-1].state is RunState.CANCELLED
    assert store.claim([queue.id], "a", 60) is None


def test_cancel_an_active_run_flags_it_for_its_agent(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    store.claim([queue.id], "a", 60)
    store.transition(run.id, RunState.RUNNING)
    flagged = store.request_cancel(run.id)
    assert flagged.state is RunState.RUNNING and flagged.cancel_requested
    assert (store.events(run.id)[-1].state, store.events(run.id)[-1].message) == (RunState.RUNNING, "cancel requested")
    assert store.request_cancel(run.id).cancel_requested  # asking twice is harmless
    assert len(store.events(run.id)) == 4  # queued, claimed, running, cancel requested
    done = store.transition(run.id, RunState.CANCELLED, "cancelled by the agent")
    assert done.state is RunState.CANCELLED


def test_cancel_a_finished_run_is_an_error_and_changes_nothing(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    store.claim([queue.id], "a", 60)
    store.transition(run.id, RunState.SUCCEEDED)
    before = (store.get_run(run.id), store.events(run.id))
    with pytest.raises(RunError, match=f"run {run.id} already succeeded"):
        store.request_cancel(run.id)
    assert (store.get_run(run.id), store.events(run.id)) == before
    with pytest.raises(RunError, match="does not exist"):
        store.request_cancel("0000nothere")


# --- transitions and history -----------------------------------------------------------------------


def test_a_run_history_reads_like_its_life(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    store.claim([queue.id], "agent-1", 60)
    store.transition(run.id, RunState.BUILDING, "building image")
    progress = store.add_event(run.id, "Step 2/7 : RUN pip install")
    assert progress.state is RunState.BUILDING and progress.id is not None
    store.transition(run.id, RunState.SUBMITTED, "submitted", image_uri="img:abc", external_id="job-7")
    store.transition(run.id, RunState.RUNNING)
    final = store.transition(run.id, RunState.SUCCEEDED, "done", output_notebook="/out/nb.ipynb")
    history = [(e.state.value, e.message) for e in store.events(run.id)]
    assert history == [
        ("queued", ""),
        ("claimed", "claimed by agent-1"),
        ("building", "building image"),
        ("building", "Step 2/7 : RUN pip install"),
        ("submitted", "submitted"),
        ("running", ""),
        ("succeeded", "done"),
    ]
    assert final.image_uri == "img:abc" and final.external_id == "job-7"
    assert final.output_notebook == "/out/nb.ipynb" and final.message == "done"
    assert final.started_at <= final.finished_at and final.lease_expires_at is None
    times = [e.time for e in store.events(run.id)]
    assert times == sorted(times)
    assert [e.message for e in store.events(run.id, after_id=progress.id)] == ["submitted", "", "done"]


def test_transition_on_a_finished_run_changes_nothing(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    store.claim([queue.id], "a", 60)
    failed = store.transition(run.id, RunState.FAILED, "build failed", stage="build")
    assert failed.stage == "build" and failed.message == "build failed"
    events_before = store.events(run.id)
    again = store.transition(run.id, RunState.RUNNING, "late news", external_id="x")
    assert again == failed
    assert store.get_run(run.id) == failed and store.events(run.id) == events_before


def test_first_active_state_sets_started_at_once(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    claimed = store.claim([queue.id], "a", 60)
    running = store.transition(run.id, RunState.RUNNING)
    assert running.started_at == claimed.started_at and running.finished_at is None


def test_update_sets_fields_without_an_event(store):
    queue = make_queue(store)
    run = enqueue(store, queue)
    store.claim([queue.id], "a", 60)
    events_before = store.events(run.id)
    updated = store.update(run.id, external_id="projects/p/locations/l/customJobs/1", log_path="/tmp/l")
    assert updated.external_id.endswith("/1") and updated.state is RunState.CLAIMED
    assert store.events(run.id) == events_before
    with pytest.raises(TypeError, match="state"):
        store.update(run.id, state="running")
    with pytest.raises(RunError, match="does not exist"):
        store.update("0000nothere", log_path="x")
    assert store.get_run(run.id) == updated


def test_events_since_follows_every_run(store):
    queue = make_queue(store)
    r1 = enqueue(store, queue)
    r2 = enqueue(store, queue)
    store.claim([queue.id], "a", 60)
    all_events = store.events_since(0)
    assert [(e.run_id, e.state) for e in all_events] == [
        (r1.id, RunState.QUEUED),
        (r2.id, RunState.QUEUED),
        (r1.id, RunState.CLAIMED),
    ]
    assert [e.id for e in all_events] == sorted(e.id for e in all_events)
    assert store.events_since(all_events[0].id, limit=1) == [all_events[1]]
    assert store.events_since(all_events[-1].id) == []


# --- delete ---------------------------------------------------------------------------------------


def test_delete_queue_refuses_while_runs_are_active(store):
    queue = make_queue(store)
    active = enqueue(store, queue)
    waiting = enqueue(store, queue)
    store.claim([queue.id], "a", 60)
    with pytest.raises(QueueError, match='queue "alice/q" has 1 active run'):
        store.delete_queue("alice", "q")
    assert store.get_queue("alice", "q") == queue
    assert store.get_run(waiting.id).state is RunState.QUEUED
    store.transition(active.id, RunState.SUCCEEDED)
    store.delete_queue("alice", "q")
    with pytest.raises(QueueError, match="does not exist"):
        store.get_queue("alice", "q")
    with pytest.raises(QueueError, match="does not exist"):
        store.delete_queue("alice", "q")


def test_delete_queue_cancels_queued_runs_and_keeps_history(store):
    queue = make_queue(store)
    runs = [enqueue(store, queue) for _ in range(3)]
    store.delete_queue("alice", "q")
    for run in runs:
        kept = store.get_run(run.id)
        assert kept.state is RunState.CANCELLED
        assert [e.state for e in store.events(run.id)] == [RunState.QUEUED, RunState.CANCELLED]
    reborn = make_queue(store)  # the same name again is a new queue: the old runs are not its runs
    assert reborn.id != queue.id
    assert store.list_runs(queue_id=reborn.id) == []
    assert len(store.list_runs(queue_id=queue.id)) == 3


# --- waking agents --------------------------------------------------------------------------------


def test_wait_for_work_times_out_without_work(store):
    assert store.wait_for_work(0.05) is False


def test_wait_for_work_is_woken_by_an_enqueue_in_another_thread(store_url):
    waiter = open_store(store_url)
    submitter = open_store(store_url)
    queue = make_queue(submitter)
    waiting = threading.Event()
    woken: list[bool] = []

    def wait() -> None:
        waiting.set()
        woken.append(waiter.wait_for_work(60))

    thread = threading.Thread(target=wait)
    thread.start()
    waiting.wait()
    enqueue(submitter, queue)
    thread.join(70)
    assert woken == [True]
    # That wake-up was consumed: a later wait times out. The enqueue may commit more than once, and a
    # watcher that saw its commits apart wakes once more (harmless); a wake that never clears would
    # answer True every time.
    assert False in [waiter.wait_for_work(0.05) for _ in range(5)]
    waiter.close()
    submitter.close()


ENQUEUE_IN_CHILD = """
import sys
from launch_jupyter.core.model import Run
from launch_jupyter.store import open_store
store = open_store(sys.argv[1])
queue = store.get_queue("alice", "q")
run = store.enqueue(Run(id="", queue_id=queue.id, queue_name=queue.name, entity=queue.entity,
                        author="alice", resource=queue.resource))
print(run.id)
store.close()
"""


def test_wait_for_work_is_woken_by_an_enqueue_in_another_process(store_url):
    # PostgreSQL: LISTEN/NOTIFY; SQLite: a watcher of the file's data_version.
    store = open_store(store_url)
    make_queue(store)
    assert store.wait_for_work(0.01) is False  # starts listening
    time.sleep(0.3)
    child = subprocess.Popen([sys.executable, "-c", ENQUEUE_IN_CHILD, store_url], stdout=subprocess.PIPE, text=True)
    assert store.wait_for_work(60) is True
    run_id = child.communicate(timeout=60)[0].strip()
    assert child.returncode == 0
    assert store.get_run(run_id).state is RunState.QUEUED
    store.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the SQLite watcher uses inotify on Linux")
def test_a_sqlite_enqueue_in_another_process_announces_its_commit_to_the_watchers(sqlite_url):
    # The commit's own writes can all reach a watcher before the commit is visible (SQLite makes it
    # visible through the -shm mmap, which inotify does not report), so the watcher would sleep through
    # the run: the enqueue touches the database file once it has committed (an IN_ATTRIB on it).
    from launch_jupyter._process import _Inotify
    from launch_jupyter.store._backend import IN_ATTRIB

    database = Path(sqlite_url.split("///", 1)[1])
    with open_store(sqlite_url) as store:
        make_queue(store)
    notify = _Inotify()
    try:
        notify.add(str(database.parent), IN_ATTRIB)
        notify.read()  # nothing of before counts
        child = subprocess.run(
            [sys.executable, "-c", ENQUEUE_IN_CHILD, sqlite_url], capture_output=True, text=True, timeout=60
        )
        assert child.returncode == 0, child.stderr
        touched = [name for _wd, mask, name in notify.read() if mask & IN_ATTRIB]
    finally:
        notify.close()
    assert database.name in touched


# --- opening --------------------------------------------------------------------------------------


def test_open_store_defaults_to_a_sqlite_file_in_the_data_folder(isolated_home):
    store = open_store()
    assert store.dialect == "sqlite"
    assert (isolated_home / "data" / "launch_jupyter" / "launch.db").is_file()
    store.close()


def test_open_store_honours_launch_jupyter_db(tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCH_JUPYTER_DB", f"sqlite:///{tmp_path / 'deep' / 'er' / 'x.db'}")
    with open_store() as store:
        make_queue(store)
    assert (tmp_path / "deep" / "er" / "x.db").is_file()


@pytest.mark.postgres
def test_a_plain_postgresql_url_uses_psycopg_3(pg_url):
    plain = "postgresql://" + pg_url.split("://", 1)[1]
    with open_store(plain) as store:
        assert store.dialect == "postgresql" and store.url.startswith("postgresql+psycopg://")
        queue = make_queue(store)
    with open_store(pg_url) as same:
        assert same.get_queue("alice", "q") == queue


def test_reopening_a_store_keeps_its_data(sqlite_url):
    with open_store(sqlite_url) as store:
        queue = make_queue(store)
        run = enqueue(store, queue)
    with open_store(sqlite_url) as store:
        assert store.get_run(run.id).id == run.id


def test_a_store_url_of_another_database_kind_is_refused():
    # Bad input (a ConfigError naming the store URL), not a store that failed.
    with pytest.raises(ConfigError, match="only sqlite") as err:
        open_store("mysql://root@127.0.0.1/x")
    assert err.value.path == "store"
    with pytest.raises(ConfigError, match="not a database URL"):
        open_store("not a url")
    with pytest.raises(ConfigError, match="is not a TCP port"):
        open_store("postgresql://u@127.0.0.1:99999999/db")


def test_an_unreachable_postgresql_is_a_store_error():
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store("postgresql://postgres@127.0.0.1:9/nothing?connect_timeout=2")


def test_close_all_frees_pools_and_open_handles_reconnect(store_url):
    store = open_store(store_url)
    queue = make_queue(store)
    assert store.wait_for_work(0.01) is False
    close_all(store_url)
    assert store.get_queue("alice", "q") == queue
    with open_store(store_url) as again:
        enqueue(again, queue)
        assert len(again.list_runs()) == 1
    store.close()


def test_a_sqlite_store_in_an_unwritable_place_is_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create the store folder"):
        open_store(f"sqlite:///{blocker / 'sub' / 'launch.db'}")


def test_values_json_cannot_hold_are_refused_before_anything_is_written(store):
    import datetime

    with pytest.raises(QueueError, match='queue "alice/bad" config must hold only JSON values'):
        store.create_queue(
            Queue(
                entity="alice",
                name="bad",
                resource="vertex",
                config={"when": datetime.date(2026, 1, 1)},
                created_by="alice",
            )
        )
    assert store.list_queues() == []
    queue = make_queue(store)
    bad = Run(
        id="",
        queue_id=queue.id,
        queue_name=queue.name,
        entity="alice",
        author="alice",
        resource=queue.resource,
        parameters={"s": {1, 2}},
    )
    with pytest.raises(RunError, match="run parameters must hold only JSON values"):
        store.enqueue(bad, b"ctx")
    assert store.list_runs() == [] and store.events_since(0) == []


def test_a_store_from_a_newer_version_is_refused(sqlite_url):
    import sqlite3

    with open_store(sqlite_url):
        pass
    close_all(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE store_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer launch_jupyter"):
        open_store(sqlite_url)


def test_long_entity_and_agent_names_are_kept_whole(store):
    entity = "e" * 300
    queue = make_queue(store, entity=entity, created_by=entity)
    run = enqueue(store, queue, author=entity)
    agent = "host.example.com:12345:" + "a" * 300
    assert store.claim([queue.id], agent, 60).agent_id == agent
    assert store.get_run(run.id).entity == entity
