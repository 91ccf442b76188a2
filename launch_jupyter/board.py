"""The run board's view of a page of runs, as plain JSON: what the notebook's RunBoard widget shows
and what the JupyterLab Runs tab gets from the server (GET /launch/api/board). No widget, no kernel."""

from __future__ import annotations

from .core.model import Event, Run
from .core.states import RunState

PAGE_SIZE = 50


def run_row(run: Run, events: list[Event]) -> dict:
    """What the board shows of one run (plain JSON for the frontend)."""
    return {
        "id": run.id,
        "name": run.name,
        "state": str(run.state),
        "queue": run.queue_name,
        "entity": run.entity,
        "resource": run.resource,
        "author": run.author,
        "priority": str(run.priority),
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "stage": run.stage or "",
        "message": run.message,
        "external_id": run.external_id or "",
        "output_notebook": run.output_notebook or "",
        "cancel_requested": run.cancel_requested,
        "agent_id": run.agent_id or "",
        "agent": "",  # filled from the registry: "agent-id on host"
        "note": "",  # e.g. "no agent is serving alice/laptop"
        "events": [{"state": str(e.state), "time": e.time} for e in events],
    }


def serving_notes(rows: list[dict], queue_ids: dict[str, int], agents: list[dict]) -> None:
    """Fill each row's ``agent`` (who holds it) and, for a queued run on a queue no live agent
    serves, its ``note`` (the wording of ``api.serving_note``), from one read of the registry."""
    by_id = {a["id"]: a for a in agents}
    for row in rows:
        holder = by_id.get(row["agent_id"])
        if row["agent_id"]:
            row["agent"] = f"{row['agent_id']} on {holder['host']}" if holder else row["agent_id"]
        if row["state"] != RunState.QUEUED.value:
            continue
        queue_id = queue_ids.get(row["id"])
        serving = [a for a in agents if queue_id in (a.get("queue_ids") or [])]
        if any(a["alive"] for a in serving):
            continue
        path = f"{row['entity']}/{row['queue']}"
        row["note"] = (
            f"no agent is serving {path} (last seen {serving[0]['last_seen']})"
            if serving
            else f"no agent is serving {path}"
        )


def board_view(
    store,
    *,
    queue: str | None,
    states: list[str],
    text: str,
    sort: str,
    descending: bool,
    page: int,
    limit: int,
    registry,
) -> dict:
    """One page of the board as plain JSON (the notebook widget's traits, and the JupyterLab Runs
    panel's answer): ``counts`` per state under the queue and text filters, ``total`` matching every
    filter, the page's ``rows`` with their events and who holds or should serve them. ``registry(
    holders)`` returns the agents registry (the caller decides how fresh)."""
    by_queue, page, runs, events = store.board_page(
        queue=queue, states=states or None, text=text or None, sort=sort, descending=descending, page=page, limit=limit
    )
    counts: dict[str, int] = {}
    for (_path, state), n in by_queue.items():
        counts[state] = counts.get(state, 0) + n
    total = sum(n for state, n in counts.items() if not states or state in states)
    rows = [run_row(r, events[r.id]) for r in runs]
    if any(r.state == RunState.QUEUED or r.agent_id for r in runs):
        serving_notes(rows, {r.id: r.queue_id for r in runs}, registry({r.agent_id for r in runs} - {None}))
    return {
        "counts": counts,
        "queues": sorted({path for path, _state in by_queue}),
        "total": total,
        "page": page,
        "rows": rows,
    }
