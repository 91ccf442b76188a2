"""The Jupyter Server extension: launch_jupyter's REST API under ``/launch/api/``, needing no kernel.

Enabled on ``pip install`` (``etc/jupyter/jupyter_server_config.d/launch_jupyter.json``), listed by
``jupyter server extension list``. Every handler is a Jupyter Server ``APIHandler``: the server's own
authentication (token or login cookie) and, for writes with a cookie, its XSRF check apply; calls into
``launch_jupyter.api`` run on a worker thread so the server's event loop never waits on the store.

Routes (all JSON unless said)::

    GET    queues[?details=1]              the queues this user can see (details: queued count, who serves it)
    POST   queues                          create {name, resource, config, entity, prioritization, template_vars}
    POST   queues/validate                 {resource, config, template_vars} -> {problems: [...]}
    GET    queues/default-config/RESOURCE  {config: text}
    GET    queues/ENTITY/NAME              one queue and its config
    PUT    queues/ENTITY/NAME              update {config, prioritization, template_vars}
    DELETE queues/ENTITY/NAME
    GET    runs?queue=&state=&author=&q=&sort=&order=&limit=&offset=
                                           {total, counts, runs} (filtered, sorted, one page)
    GET    board?queue=&states=&text=&sort=&descending=&page=&limit=
                                           one page of the Runs panel (the notebook RunBoard's own view)
    GET    runs/ID                         a run and its events
    DELETE runs/ID                         forget a finished run (an active one: cancel it first, 409)
    POST   runs/ID/cancel
    GET    runs/ID/logs[?follow=1|tail=N]  text/plain, streamed while following
    GET    runs/ID/output?format=ipynb|html
                                           the executed notebook, as a download
    GET    runs/ID/files                   {files: [{name, size, modified, kind, local, location}], truncated}:
                                           the executed notebook and the files the run wrote
    GET    runs/ID/file?name=N             one file of that list, as a download (a name with .. or an
                                           absolute one: 400 naming ``name``)
    GET    notebook?path=P                 the notebook's parameters cell: names, defaults, types
    POST   submit                          {notebook (path under the server root), queue, parameters, …,
                                            dry_run} -> 201 run | 200 {request, cost, estimate}
    POST   estimate                        {queue, template_values, resource_args} -> {estimate, summary,
                                           text, over_budget}: the run's price (no SDK, nothing queued)
    GET    agents[?queue=Q]                the agents registry
    POST   agents/start {queues}, agents/stop
                                           an agent thread inside this server
    GET    events[?after=ID]               text/event-stream of run events, from one feed per server

The author of what a handler does is this server's user: a single-user Jupyter server runs as the
person it serves (the same ``$LAUNCH_JUPYTER_USER``/``$USER`` identity the magics and the CLI use).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

PAGE_DEFAULT = 50
PAGE_MAX = 500
KEEPALIVE_SECONDS = 15.0
FEED_INTERVAL = 0.1  # how often the server's one feed reads new events of other processes' agents

_SORT_KEYS = {
    "created": lambda r: (r.created_at, r.id),
    "updated": lambda r: (r.updated_at, r.id),
    "state": lambda r: (str(r.state), r.created_at),
    "queue": lambda r: (f"{r.entity}/{r.queue_name}", r.created_at),
    "author": lambda r: (r.author, r.created_at),
    "name": lambda r: (r.name, r.created_at),
    "duration": lambda r: (
        ((r.finished_at or 0) - r.started_at) if r.started_at and r.finished_at else -1.0,
        r.created_at,
    ),
}


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "launch_jupyter.server"}]


# --- JSON views ------------------------------------------------------------------------------------


def queue_view(q: Any) -> dict:
    return {**q.view(), "config_text": q.config_text}  # the editor shows the text as written


def run_view(run: Any) -> dict:
    view = dataclasses.asdict(run)
    view["state"] = str(run.state)
    view["priority"] = str(run.priority)
    view["queue"] = f"{run.entity}/{run.queue_name}"
    return view


def event_view(event: Any) -> dict:
    return {
        "id": event.id,
        "run_id": event.run_id,
        "time": event.time,
        "state": str(event.state),
        "message": event.message,
    }


# --- errors ----------------------------------------------------------------------------------------


def _status_for(err: Exception) -> int:
    from .core import errors

    if isinstance(err, errors.QueueExistsError):
        return 409
    if isinstance(err, errors.RunError) and "cancel it first" in str(err):
        return 409  # the run is active: a conflict with its state, not bad input
    if isinstance(err, (errors.QueueError, errors.RunError)) and "does not exist" in str(err):
        return 404
    if isinstance(err, (errors.ConfigError, errors.NotebookError, errors.QueueError, errors.RunError)):
        return 400
    if isinstance(err, (errors.BuildError, errors.DispatchError)):
        return 502
    return 500 if isinstance(err, errors.StoreError) else 409  # e.g. an agent already running here


class _Handler(APIHandler):
    """Runs API calls off the event loop; a LaunchError becomes one JSON message with its key path."""

    auth_resource = "launch"

    async def call(self, fn, *args, **kwargs):
        from .core.errors import LaunchError

        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except LaunchError as err:
            body = {"message": str(err)}
            if getattr(err, "path", None):
                body["path"] = err.path
            raise _Refused(_status_for(err), body) from None

    def body(self) -> dict:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as err:
            raise _Refused(400, {"message": f"the request body is not JSON: {err}"}) from None
        if not isinstance(data, dict):
            raise _Refused(400, {"message": "the request body must be a JSON object"})
        return data

    def field(self, data: dict, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = data.get(name, default)
        if value is not None and not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise _Refused(400, {"message": f"{name}: expected {names}, got {type(value).__name__}", "path": name})
        return value

    def _int(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_argument(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise _Refused(400, {"message": f"{name}: expected an integer, got {raw!r}", "path": name}) from None
        if not low <= value <= high:
            raise _Refused(400, {"message": f"{name}: must be between {low} and {high}, got {value}", "path": name})
        return value

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, _Refused):
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(exc.body))
            return
        super().write_error(status_code, **kwargs)


class _Refused(web.HTTPError):
    def __init__(self, status: int, body: dict):
        super().__init__(status, reason=None, log_message=body.get("message"))
        self.status = status
        self.body = body


# --- queues ----------------------------------------------------------------------------------------


def _queue_details(queues: list) -> list[dict]:
    from . import api
    from .core.states import RunState

    views = []
    for q in queues:
        view = queue_view(q)
        view["queued"] = len(api.list_runs(queue=q.path, state=RunState.QUEUED))
        view["serving_note"] = api.serving_note(q.path)  # None when an agent serves it
        view["served"] = view["serving_note"] is None
        views.append(view)
    return views


class QueuesHandler(_Handler):
    @web.authenticated
    async def get(self):
        from . import api

        queues = await self.call(api.list_queues)
        if self.get_argument("details", "0") in ("1", "true"):
            self.send(await self.call(_queue_details, queues))
        else:
            self.send([queue_view(q) for q in queues])

    @web.authenticated
    async def post(self):
        from . import api

        data = self.body()
        name = self.field(data, "name", str)
        if not name:
            raise _Refused(400, {"message": "name: required", "path": "name"})
        queue = await self.call(
            api.create_queue,
            name,
            self.field(data, "resource", str, "local-process"),
            config=self.field(data, "config", (str, dict)),
            entity=self.field(data, "entity", str),
            prioritization=bool(self.field(data, "prioritization", bool, False)),
            template_vars=self.field(data, "template_vars", list, []),
            exist_ok=bool(self.field(data, "exist_ok", bool, False)),
        )
        self.send(queue_view(queue), 201 if getattr(queue, "outcome", "created") == "created" else 200)


class ValidateHandler(_Handler):
    @web.authenticated
    async def post(self):
        from . import api

        data = self.body()
        problems = await self.call(
            api.validate_config,
            self.field(data, "resource", str, "local-process"),
            self.field(data, "config", (str, dict), ""),
            template_vars=self.field(data, "template_vars", list, []),
        )
        self.send({"problems": [{"path": p.path, "message": p.message, "severity": p.severity} for p in problems]})


class DefaultConfigHandler(_Handler):
    @web.authenticated
    async def get(self, resource: str):
        from . import api

        self.send({"resource": resource, "config": await self.call(api.default_config, resource)})


class QueueHandler(_Handler):
    @web.authenticated
    async def get(self, entity: str, name: str):
        from . import api

        self.send(queue_view(await self.call(api.get_queue, name, entity=entity)))

    @web.authenticated
    async def put(self, entity: str, name: str):
        from . import api

        data = self.body()
        kwargs = {"entity": entity}
        for key, kind in (("config", (str, dict)), ("prioritization", bool), ("template_vars", list)):
            if key in data:
                kwargs[key] = self.field(data, key, kind)
        self.send(queue_view(await self.call(api.update_queue, name, **kwargs)))

    @web.authenticated
    async def delete(self, entity: str, name: str):
        from . import api

        await self.call(api.delete_queue, name, entity=entity)
        self.set_status(204)
        self.finish()


# --- runs ------------------------------------------------------------------------------------------


def _page(runs: list, args: dict) -> dict:
    """Filter by text, count per state, sort and cut one page: the Runs panel's one call."""
    from .core.states import RunState

    text = (args.get("q") or "").strip().lower()
    if text:
        runs = [
            r
            for r in runs
            if text in " ".join((r.id, r.name, r.notebook, f"{r.entity}/{r.queue_name}", r.author, r.message)).lower()
        ]
    counts = {s.value: 0 for s in RunState}
    for r in runs:
        counts[str(r.state)] += 1
    states = [s for s in (args.get("state") or "").split(",") if s]
    if states:
        runs = [r for r in runs if str(r.state) in states]
    runs.sort(key=_SORT_KEYS[args["sort"]], reverse=args["order"] == "desc")
    offset, limit = args["offset"], args["limit"]
    return {
        "total": len(runs),
        "offset": offset,
        "limit": limit,
        "counts": counts,
        "runs": [run_view(r) for r in runs[offset : offset + limit]],
    }


class RunsHandler(_Handler):
    @web.authenticated
    async def get(self):
        from . import api
        from .core.states import RunState

        args = {
            "q": self.get_argument("q", ""),
            "state": self.get_argument("state", ""),
            "sort": self.get_argument("sort", "created"),
            "order": self.get_argument("order", "desc"),
            "limit": self._int("limit", PAGE_DEFAULT, 1, PAGE_MAX),
            "offset": self._int("offset", 0, 0, 10**9),
        }
        if args["sort"] not in _SORT_KEYS:
            raise _Refused(
                400,
                {
                    "message": f"sort: unknown key {args['sort']!r}; choose from: {', '.join(_SORT_KEYS)}",
                    "path": "sort",
                },
            )
        if args["order"] not in ("asc", "desc"):
            raise _Refused(400, {"message": f"order: 'asc' or 'desc', got {args['order']!r}", "path": "order"})
        known = {s.value for s in RunState}
        for state in (s for s in args["state"].split(",") if s):
            if state not in known:
                raise _Refused(
                    400,
                    {
                        "message": f"state: unknown state {state!r}; choose from: {', '.join(sorted(known))}",
                        "path": "state",
                    },
                )
        runs = await self.call(
            api.list_runs,
            queue=self.get_argument("queue", None) or None,
            author=self.get_argument("author", None) or None,
        )
        self.send(await asyncio.to_thread(_page, runs, args))


_registry_cache: dict[str, Any] = {"at": float("-inf"), "agents": []}
REGISTRY_TTL = 5.0


def _registry(holders: set[str]) -> list[dict]:
    # Shared by every client of this server: one read of the agents registry per REGISTRY_TTL, and at
    # once when a run is held by an agent not seen yet (as the notebook board does).
    import time

    from . import api

    seen = _registry_cache["agents"]
    if time.monotonic() - _registry_cache["at"] > REGISTRY_TTL or not holders <= {a["id"] for a in seen}:
        _registry_cache.update(at=time.monotonic(), agents=api.agents())
    return _registry_cache["agents"]


class BoardHandler(_Handler):
    @web.authenticated
    async def get(self):
        from . import api
        from .board import PAGE_SIZE, board_view
        from .core.states import RunState
        from .store._store import RUN_SORTS

        sort = self.get_argument("sort", "created")
        if sort not in RUN_SORTS:
            raise _Refused(
                400, {"message": f"sort: unknown key {sort!r}; choose from: {', '.join(RUN_SORTS)}", "path": "sort"}
            )
        states = [s for s in self.get_argument("states", "").split(",") if s]
        known = {s.value for s in RunState}
        for state in states:
            if state not in known:
                raise _Refused(
                    400,
                    {
                        "message": f"states: unknown state {state!r}; choose from: {', '.join(sorted(known))}",
                        "path": "states",
                    },
                )
        queue = self.get_argument("queue", "") or None
        if queue:
            await self.call(api.get_queue, queue)  # 404 for a queue that is not there (or not yours)
        view = await self.call(
            lambda: board_view(
                api.open_store(),
                queue=queue,
                states=states,
                text=self.get_argument("text", ""),
                sort=sort,
                descending=self.get_argument("descending", "1") in ("1", "true"),
                page=self._int("page", 0, 0, 10**9),
                limit=self._int("limit", PAGE_SIZE, 1, PAGE_MAX),
                registry=_registry,
            )
        )
        self.send(view)


class RunHandler(_Handler):
    @web.authenticated
    async def get(self, run_id: str):
        from . import api

        def show():
            handle = api.get_run(run_id)
            return {**run_view(handle.run), "events": [event_view(e) for e in handle.events()]}

        self.send(await self.call(show))

    @web.authenticated
    async def delete(self, run_id: str):
        import time

        from . import api

        run = await self.call(api.delete_run, run_id)
        # Its events went with it: tell the open panels of this server that the run is gone.
        _feed.push([{"id": None, "run_id": run.id, "time": time.time(), "state": "deleted", "message": ""}])
        self.send({"deleted": run.id, "name": run.name})


class FilesHandler(_Handler):
    @web.authenticated
    async def get(self, run_id: str):
        from . import api

        self.send(await self.call(api.run_files, run_id))


DOWNLOAD_CHUNK = 1 << 20


class FileHandler(_Handler):
    """One file the run wrote, as a download, read and sent a chunk at a time."""

    @web.authenticated
    async def get(self, run_id: str):
        from . import api

        with api.Launcher() as client:
            name, chunks = await self.call(client.run_file_chunks, run_id, self.get_argument("name", ""))
            self.set_header("Content-Type", _content_type(Path(name)))
            self.set_header("Content-Disposition", _attachment(name))
            self.set_header("X-Content-Type-Options", "nosniff")  # a written .html is a download, never a page here
            done = object()
            while (chunk := await asyncio.to_thread(next, chunks, done)) is not done:
                try:
                    self.write(chunk)  # type: ignore[arg-type]
                    await self.flush()
                except StreamClosedError:
                    return
        self.finish()


def _content_type(path: Path) -> str:
    import mimetypes

    kind, _ = mimetypes.guess_type(path.name)
    return kind or "application/octet-stream"


def _attachment(name: str) -> str:
    # RFC 6266: an ASCII fallback and the exact name in UTF-8 (filename*), quotes and controls removed.
    from urllib.parse import quote

    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}"


class CancelHandler(_Handler):
    @web.authenticated
    async def post(self, run_id: str):
        from . import api

        self.send(run_view((await self.call(api.cancel, run_id)).run))


class LogsHandler(_Handler):
    @web.authenticated
    async def get(self, run_id: str):
        from . import api

        follow = self.get_argument("follow", "0") in ("1", "true", "yes")
        if self.get_argument("tail", None) is not None:  # the last N lines, or the one line saying why none
            from .widgets._paths import log_tail

            count = self._int("tail", 200, 1, 100_000)
            await self.call(api.get_run, run_id)  # 404 for a run that is not there
            lines = await self.call(log_tail, run_id, None, count)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("".join(line + "\n" for line in lines))
            return
        lines = await self.call(lambda: iter(api.logs(run_id, follow=follow)))
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        done = object()
        while True:
            line = await self.call(next, lines, done)
            if line is done:
                break
            try:
                self.write(line if line.endswith("\n") else line + "\n")
                if follow:
                    await self.flush()
            except StreamClosedError:
                return
        self.finish()


class OutputHandler(_Handler):
    @web.authenticated
    async def get(self, run_id: str):
        from . import api

        fmt = self.get_argument("format", "ipynb")
        if fmt not in ("ipynb", "html"):
            raise _Refused(400, {"message": f"format: 'ipynb' or 'html', got {fmt!r}", "path": "format"})
        run = (await self.call(api.get_run, run_id)).run
        path = await self.call(_executed_notebook, run)
        stem = f"{path.stem}-{run.id[:8]}"
        if fmt == "ipynb":
            data, kind = await asyncio.to_thread(path.read_bytes), "application/x-ipynb+json"
        else:
            data, kind = await asyncio.to_thread(_html, path), "text/html; charset=utf-8"
        self.set_header("Content-Type", kind)
        self.set_header("Content-Disposition", f'attachment; filename="{stem}.{fmt}"')
        self.finish(data)


def _executed_notebook(run: Any) -> Path:
    """The run's executed notebook from its file list (one source of truth for what may be served)."""
    from . import api
    from .run_files import NOTEBOOK

    where = run.output_notebook or ""
    if not where:
        raise _Refused(404, {"message": f"run {run.id} has no executed notebook (it is {run.state})"})
    listed = [f for f in api.run_files(run.id)["files"] if f["kind"] == NOTEBOOK and f["local"]]
    if not listed or not where.endswith(".ipynb"):
        raise _Refused(404, {"message": f"run {run.id}'s executed notebook is not a local file here: {where}"})
    return api.run_file(run.id, listed[0]["name"])


def _html(path: Path) -> bytes:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    return body.encode()


def _under_root(handler: _Handler, notebook: Any) -> Path:
    if not notebook or not isinstance(notebook, str):
        raise _Refused(400, {"message": "notebook: required (a path under the server's root)", "path": "notebook"})
    root = Path(handler.settings.get("server_root_dir") or handler.contents_manager.root_dir).resolve()
    path = (root / notebook).resolve()
    if root != path and root not in path.parents:
        raise _Refused(400, {"message": f"notebook: {notebook} is outside the server's root", "path": "notebook"})
    return path


def _parameters_view(path: Path) -> dict:
    from .packaging import read_notebook_json
    from .packaging.parameters import read_parameters

    found = read_parameters(read_notebook_json(path))
    items = []
    for p in found.tagged or []:
        known = p.type_name != ""
        try:
            json.dumps(p.default)
            default = p.default if known else None
        except (TypeError, ValueError):  # a literal JSON cannot hold (a tuple of sets…): shown as its line
            known, default = False, None
        items.append({"name": p.name, "type": p.type_name if known else "", "default": default, "line": p.line})
    return {
        "path": path.name,
        "tagged": found.tagged is not None,
        "parameters": items,
        "untagged_cell": list(found.untagged_cell) if found.untagged_cell else None,
    }


class NotebookHandler(_Handler):
    @web.authenticated
    async def get(self):
        path = _under_root(self, self.get_argument("path", ""))
        self.send(await self.call(_parameters_view, path))


# --- submit, agents --------------------------------------------------------------------------------


class SubmitHandler(_Handler):
    @web.authenticated
    async def post(self):
        from . import api

        data = self.body()
        path = _under_root(self, self.field(data, "notebook", str))
        dry_run = bool(self.field(data, "dry_run", bool, False))
        result = await self.call(
            api.dry_run if dry_run else api.submit,
            path,
            self.field(data, "queue", str),
            parameters=self.field(data, "parameters", dict),
            new_parameters=self.field(data, "new_parameters", list, []),
            priority=self.field(data, "priority", (str, int)),
            template_values=self.field(data, "template_values", dict),
            resource_args=self.field(data, "resource_args", dict),
            image=self.field(data, "image", str),
            name=self.field(data, "name", str),
            save=False,
        )
        if dry_run:
            estimate = result.estimate.to_dict() if result.estimate is not None else None
            cost = result.cost_text if result.estimate is not None else None
            self.send({"request": result.yaml, "cost": cost, "estimate": estimate})
        else:
            self.send(run_view(result.run), 201)


def _estimate_view(queue: str, template_values: dict | None, resource_args: dict | None) -> dict:
    from . import api

    with api.Launcher() as client:
        estimate = client.estimate(queue, template_values=template_values, resource_args=resource_args)
        over = client.budget_verdict(queue, template_values=template_values, resource_args=resource_args)
    if estimate is None:
        return {"estimate": None, "summary": None, "text": None, "over_budget": over}
    return {"estimate": estimate.to_dict(), "summary": estimate.summary(), "text": str(estimate), "over_budget": over}


class EstimateHandler(_Handler):
    @web.authenticated
    async def post(self):
        data = self.body()
        self.send(
            await self.call(
                _estimate_view,
                self.field(data, "queue", str),
                self.field(data, "template_values", dict),
                self.field(data, "resource_args", dict),
            )
        )


class AgentsHandler(_Handler):
    @web.authenticated
    async def get(self):
        from . import api

        queue = self.get_argument("queue", None) or None
        self.send({"agents": await self.call(api.agents, queue), "in_server": await self.call(api.agent_status)})


class AgentStartHandler(_Handler):
    @web.authenticated
    async def post(self):
        from . import api

        queues = self.field(self.body(), "queues", list)
        if not queues or not all(isinstance(q, str) and q for q in queues):
            raise _Refused(
                400,
                {
                    "message": "queues: a non-empty list of queue names (an agent serves the queues it is told to)",
                    "path": "queues",
                },
            )
        await self.call(api.start_agent, queues)
        self.send(await self.call(api.agent_status))


class AgentStopHandler(_Handler):
    @web.authenticated
    async def post(self):
        from . import api

        await self.call(api.stop_agent)
        self.send({"stopped": True})


# --- live events -----------------------------------------------------------------------------------


class _Feed:
    """One reader of the store's event log for the whole server, fanning out to every client.

    It reads the log in id order (``events_since``) every FEED_INTERVAL seconds, and nothing else: an
    agent thread in this server writes the same log, so every client sees every event once, in order.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._clients: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self._thread: threading.Thread | None = None
        self._last_id = 0

    def add(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        with self._lock:
            self._clients.add((loop, queue))
            if self._thread is None:
                from . import api

                self._last_id = api.open_store().last_event_id()
                self._thread = threading.Thread(target=self._read, name="launch-server-events", daemon=True)
                self._thread.start()

    def remove(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        with self._lock:
            self._clients.discard((loop, queue))

    def push(self, views: list[dict]) -> None:
        """Send views that are not in the store's log (a deleted run) to every client now."""
        with self._lock:
            clients = list(self._clients)
        for loop, queue in clients:
            loop.call_soon_threadsafe(queue.put_nowait, views)

    def _read(self) -> None:
        import time

        from . import api

        while True:
            time.sleep(FEED_INTERVAL)
            try:
                batch = api.events_since(self._last_id)
            except Exception:  # the store may be briefly locked or gone: read again next time
                continue
            if not batch:
                continue
            self._last_id = max(e.id or 0 for e in batch)
            views = [event_view(e) for e in batch]
            with self._lock:
                clients = list(self._clients)
            for loop, queue in clients:
                loop.call_soon_threadsafe(queue.put_nowait, views)


_feed = _Feed()


class EventsHandler(_Handler):
    @web.authenticated
    async def get(self):
        from . import api

        raw = self.get_argument("after", None) or self.request.headers.get("Last-Event-ID")
        try:
            after = int(raw) if raw else None
        except ValueError:
            raise _Refused(400, {"message": f"after: expected an event id, got {raw!r}", "path": "after"}) from None
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        loop, queue = asyncio.get_running_loop(), asyncio.Queue()
        _feed.add(loop, queue)
        seen = 0
        try:
            if after is not None:  # a reconnecting client catches up first
                missed = await self.call(api.events_since, after)
                if missed:
                    await self._send([event_view(e) for e in missed])
                    seen = max(e.id or 0 for e in missed)
            await self._comment("connected")
            while True:
                try:
                    views = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    await self._comment("keep-alive")
                    continue
                fresh = [v for v in views if not v["id"] or v["id"] > seen]
                if fresh:
                    await self._send(fresh)
                    seen = max([seen, *(v["id"] or 0 for v in fresh)])
        except StreamClosedError:
            pass
        finally:
            _feed.remove(loop, queue)

    async def _send(self, views: list[dict]) -> None:
        for view in views:
            if view["id"]:
                self.write(f"id: {view['id']}\n")
            self.write(f"event: run\ndata: {json.dumps(view)}\n\n")
        await self.flush()

    async def _comment(self, text: str) -> None:
        self.write(f": {text}\n\n")
        await self.flush()


ROUTES = [
    (r"queues", QueuesHandler),
    (r"queues/validate", ValidateHandler),
    (r"queues/default-config/([^/]+)", DefaultConfigHandler),
    (r"queues/([^/]+)/([^/]+)", QueueHandler),
    (r"runs", RunsHandler),
    (r"board", BoardHandler),
    (r"runs/([0-9a-zA-Z]+)", RunHandler),
    (r"runs/([0-9a-zA-Z]+)/cancel", CancelHandler),
    (r"runs/([0-9a-zA-Z]+)/logs", LogsHandler),
    (r"runs/([0-9a-zA-Z]+)/output", OutputHandler),
    (r"runs/([0-9a-zA-Z]+)/files", FilesHandler),
    (r"runs/([0-9a-zA-Z]+)/file", FileHandler),
    (r"notebook", NotebookHandler),
    (r"submit", SubmitHandler),
    (r"estimate", EstimateHandler),
    (r"agents", AgentsHandler),
    (r"agents/start", AgentStartHandler),
    (r"agents/stop", AgentStopHandler),
    (r"events", EventsHandler),
]


def _load_jupyter_server_extension(serverapp) -> None:
    base = url_path_join(serverapp.web_app.settings["base_url"], "launch", "api")
    serverapp.web_app.add_handlers(
        ".*$", [(url_path_join(base, pattern) + "/?$", handler) for pattern, handler in ROUTES]
    )
    serverapp.log.info("launch_jupyter: REST API at %s", base)
