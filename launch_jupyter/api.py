"""The one API every front end calls: the CLI, the ``%launch`` magics and the widgets.

Functions here resolve names (queues by name, runs by id prefix), validate input once at the edge
and then hand typed records to the store, the packaging and the agent. Nothing heavy is imported at
module import time.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.config import AgentConfig, current_user
from .core.errors import ConfigError, LaunchError, NotebookError, QueueError, QueueExistsError
from .core.model import Event, Problem, Queue, Run, TemplateVar
from .core.states import TERMINAL, Priority, RunState

if TYPE_CHECKING:
    from .agent import Agent
    from .gc import GcReport
    from .handshake import SaveReply
    from .schedules import Schedule
    from .store import QueueStore

    SaveFunction = Callable[[Path], SaveReply | None]

QUEUE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Process-wide defaults set by the magics' traitlets (or a script) through configure().
_settings: dict[str, Any] = {"store_url": None, "entity": None, "config_path": None, "default_queue": None}


def configure(
    *,
    store_url: str | None = None,
    entity: str | None = None,
    config_path: str | None = None,
    default_queue: str | None = None,
) -> None:
    """Set process-wide defaults (store, entity, agent config file, default queue); ``None`` leaves one as is."""
    for key, value in (
        ("store_url", store_url),
        ("entity", entity),
        ("config_path", config_path),
        ("default_queue", default_queue),
    ):
        if value is not None:
            _settings[key] = value or None


def agent_config(store_url: str | None = None, overrides: Mapping[str, Any] | None = None) -> AgentConfig:
    """The agent config: defaults < launch-config.yaml < env vars < ``configure()`` < ``overrides``."""
    from .core.config import load_agent_config

    merged: dict[str, Any] = {}
    if _settings["entity"]:
        merged["entity"] = _settings["entity"]
    if store_url or _settings["store_url"]:
        merged["store"] = store_url or _settings["store_url"]
    merged.update(overrides or {})
    return load_agent_config(_settings["config_path"], overrides=merged)


def open_store(store_url: str | None = None) -> QueueStore:
    """The store named by ``store_url``, ``configure()``, ``LAUNCH_JUPYTER_DB`` or the config file."""
    from .store import open_store as _open

    return _open(store_url or _settings["store_url"] or agent_config().store)


def _entity(entity: str | None) -> str:
    return entity or _settings["entity"] or agent_config().entity or current_user()


# ---------------------------------------------------------------- queues


def known_resources() -> list[str]:
    """The queue resources this installation can run (``vertex``, ``local-process``, ...)."""
    from .runners import known_runners

    return known_runners()


def default_config(resource: str) -> str:
    """The YAML a new queue of ``resource`` starts from."""
    from .runners import get_runner

    return get_runner(resource).default_config()


def _parse_config(resource: str, config: str | dict | None) -> tuple[dict, str]:
    from .core.queue_config import dump_config, parse_config_text

    if config is None:
        text = default_config(resource)
        return parse_config_text(text), text
    if isinstance(config, str):
        return parse_config_text(config), config
    return dict(config), dump_config(config)


def _template_vars(items: Sequence[TemplateVar | str | dict]) -> list[TemplateVar]:
    from .core.queue_config import parse_template_var, validate_template_vars

    result = []
    for item in items:
        if isinstance(item, TemplateVar):
            result.append(item)
        elif isinstance(item, str):
            result.append(parse_template_var(item))
        else:
            result.append(TemplateVar.from_dict(item))
    return validate_template_vars(result)


def _split_builder(config: dict) -> tuple[dict, dict]:
    """A queue config may carry ``builder:`` overrides (e.g. ``base_image``); the runner never sees them."""
    rest = {k: v for k, v in config.items() if k != "builder"}
    builder = config.get("builder") or {}
    if not isinstance(builder, dict):
        raise ConfigError("must be a mapping of builder settings", path="builder")
    return rest, builder


def _problems_for(
    resource: str, config: dict, template_vars: list[TemplateVar], values: Mapping | None
) -> list[Problem]:
    from .core.queue_config import secret_problems
    from .core.templates import check_template_usage, fill_template_vars, sample_template_values

    # A credential is said first, and the config's other problems with it (e.g. where a key file's
    # path belongs instead), so one look shows everything to fix.
    secrets = secret_problems(config)
    undeclared = check_template_usage(config, template_vars)
    if undeclared:
        return secrets + undeclared
    # A queue's variables may have no default (a value is then required at submit): check the
    # config with an allowed sample value for each.
    filled = fill_template_vars(config, template_vars, values or sample_template_values(template_vars))
    seen = {(p.path, p.message) for p in secrets}
    return secrets + [p for p in _filled_config_problems(resource, filled) if (p.path, p.message) not in seen]


def _filled_config_problems(resource: str, filled: dict) -> list[Problem]:
    """Problems of a config whose template variables are filled: its builder section, then the runner's."""
    from .core.config import builder_problems
    from .runners import get_runner

    rest, builder = _split_builder(filled)
    return builder_problems(builder) + get_runner(resource).validate(rest)


def validate_config(
    resource: str, config: str | dict, template_vars: Sequence[TemplateVar | str | dict] = ()
) -> list[Problem]:
    """Every problem with a queue config, for live validation. Never raises for a bad config."""
    try:
        parsed, _ = _parse_config(resource, config)
        tvars = _template_vars(template_vars)
        return _problems_for(resource, parsed, tvars, None)
    except ConfigError as err:
        if err.problems:
            return list(err.problems)
        return [Problem(err.path, str(err).removeprefix(f"{err.path}: ") if err.path else str(err))]


def _raise_problems(problems: list[Problem], what: str) -> None:
    errors = [p for p in problems if p.severity == "error"]
    if not errors:
        return
    if len(errors) == 1:
        raise ConfigError(errors[0].message, path=errors[0].path, problems=errors)
    listing = "; ".join(str(p) for p in errors)
    raise ConfigError(f"{what} has {len(errors)} problems: {listing}", problems=errors)


def _check_name(name: str) -> None:
    # fullmatch: "$" alone lets a trailing newline in; "." and ".." would read as paths
    if not QUEUE_NAME.fullmatch(name or "") or set(name) == {"."}:
        raise QueueError(
            f'bad queue name "{_shown(name)}": use 1 to 64 characters from letters, digits, ".", "_" and "-"'
        )


def _shown(text: str) -> str:
    """``text`` as written, or escaped when it holds a newline or another unprintable character."""
    return text if text.isprintable() else repr(text)[1:-1]


def _check_entity(entity: str | None) -> None:
    if entity is not None and (not QUEUE_NAME.fullmatch(entity) or set(entity) == {"."}):
        raise QueueError(
            f'bad entity "{_shown(entity)}": use 1 to 64 characters from letters, digits, ".", "_" and "-" (no \'/\')'
        )


def _split_queue_ref(name: str, entity: str | None) -> tuple[str, str | None]:
    if "/" in name and entity is None:
        entity, name = name.split("/", 1)
    return name, entity


def create_queue(
    name: str,
    resource: str = "local-process",
    *,
    entity: str | None = None,
    config: str | dict | None = None,
    prioritization: bool = False,
    template_vars: Sequence[TemplateVar | str | dict] = (),
    exist_ok: bool = False,
    store_url: str | None = None,
) -> Queue:
    """Create a queue; the config is validated first and nothing is stored if it is wrong.

    An existing queue with the same settings is left as it is (``outcome`` "unchanged"), so the
    notebook that created it can run again; with other settings it is an error, or, with
    ``exist_ok``, the queue is updated to these."""
    from .runners import get_runner

    name, entity = _split_queue_ref(name, entity)
    _check_name(name)
    _check_entity(entity)
    get_runner(resource)  # unknown resource → error listing the known ones
    parsed, text = _parse_config(resource, config)
    tvars = _template_vars(template_vars)
    _raise_problems(_problems_for(resource, parsed, tvars, None), f'the config of queue "{name}"')
    existing = _existing_queue(name, _entity(entity), store_url)
    if existing is not None:
        difference = _queue_difference(existing, resource, parsed, prioritization, tvars)
        if not difference:  # re-running the notebook that created it
            return replace(existing, outcome="unchanged")
        if existing.resource != resource:
            raise QueueError(
                f"queue {existing.path} exists with resource {existing.resource}, not {resource}; delete it first"
            )
        if not exist_ok:
            raise QueueExistsError(
                f"queue {existing.path} already exists with {difference}; to replace its config: "
                f"create_queue(..., exist_ok=True), or launch-jupyter queue edit {existing.path} --config FILE",
                existing.path,
                difference,
            )
        updated = update_queue(
            existing.name,
            entity=existing.entity,
            config=config,
            prioritization=prioritization,
            template_vars=template_vars,
            store_url=store_url,
        )
        return replace(updated, outcome="updated")
    queue = Queue(
        entity=_entity(entity),
        name=name,
        resource=resource,
        config=parsed,
        config_text=text,
        prioritization=prioritization,
        template_vars=tvars,
        created_by=current_user(),
    )
    return replace(open_store(store_url).create_queue(queue), outcome="created")


def _queue_difference(
    queue: Queue, resource: str, config: dict, prioritization: bool, template_vars: list[TemplateVar]
) -> str:
    """What differs between a stored queue and a requested one, in words ('' when nothing)."""
    differs = [
        what
        for what, same in (
            ("another resource", queue.resource == resource),
            ("another config", queue.config == config),
            ("another prioritization", queue.prioritization == prioritization),
            ("other template variables", list(queue.template_vars) == list(template_vars)),
        )
        if not same
    ]
    return " and ".join(differs)


def _existing_queue(name: str, entity: str, store_url: str | None) -> Queue | None:
    try:
        return open_store(store_url).get_queue(entity, name)
    except QueueError:
        return None


def get_queue(name: str, *, entity: str | None = None, store_url: str | None = None) -> Queue:
    """The queue called ``name`` (or ``entity/name``) visible to the current user."""
    name, entity = _split_queue_ref(name, entity)
    return open_store(store_url).find_queue(name, current_user(), entity)


def list_queues(*, store_url: str | None = None) -> list[Queue]:
    """Queues visible to the current user: their private ones and every shared one."""
    return open_store(store_url).list_queues(current_user())


def update_queue(
    name: str,
    *,
    entity: str | None = None,
    config: str | dict | None = None,
    prioritization: bool | None = None,
    template_vars: Sequence[TemplateVar | str | dict] | None = None,
    store_url: str | None = None,
) -> Queue:
    """Change a queue's config, prioritisation or template variables (validated like a new one)."""
    store = open_store(store_url)
    queue = get_queue(name, entity=entity, store_url=store_url)
    parsed, text = (queue.config, queue.config_text) if config is None else _parse_config(queue.resource, config)
    tvars = queue.template_vars if template_vars is None else _template_vars(template_vars)
    _raise_problems(_problems_for(queue.resource, parsed, tvars, None), f'the config of queue "{queue.name}"')
    updated = replace(
        queue,
        config=parsed,
        config_text=text,
        template_vars=tvars,
        prioritization=queue.prioritization if prioritization is None else prioritization,
    )
    return store.update_queue(updated)


def delete_queue(name: str, *, entity: str | None = None, store_url: str | None = None) -> None:
    """Delete a queue; its queued runs are cancelled, history is kept."""
    queue = get_queue(name, entity=entity, store_url=store_url)
    open_store(store_url).delete_queue(queue.entity, queue.name)


# ---------------------------------------------------------------- runs


class RunHandle:
    """A submitted run, as the submitter sees it."""

    def __init__(self, run: Run, store_url: str | None = None):
        self.run = run
        self._store_url = store_url

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.run.queue_name} {self.state}>"

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def state(self) -> RunState:
        return self.run.state

    @property
    def output_notebook(self) -> str | None:
        return self.refresh().run.output_notebook

    def refresh(self) -> RunHandle:
        self.run = open_store(self._store_url).get_run(self.id)
        return self

    def wait(self, timeout: float | None = None, interval: float = 0.2) -> RunState:
        """Block until the run ends (or ``timeout`` seconds pass); returns the state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.refresh().state not in TERMINAL:
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(interval)
        return self.state

    def events(self) -> list[Event]:
        return open_store(self._store_url).events(self.id)

    def logs(self, follow: bool = False) -> Iterator[str]:
        return logs(self.id, follow=follow, store_url=self._store_url)

    def cancel(self) -> Run:
        self.run = cancel(self.id, store_url=self._store_url)
        return self.run


def _resolve_queue_name(queue: str | None) -> str:
    queue = queue or _settings["default_queue"]
    if queue:
        return queue
    configured = agent_config().queues
    if len(configured) == 1:
        return configured[0]
    raise QueueError("no queue given: pass a queue name (-q QUEUE)")


def resolve_run_config(
    queue: Queue,
    template_values: Mapping[str, Any] | None = None,
    resource_args: Mapping[str, Any] | None = None,
) -> dict:
    """The queue config merged with this run's overrides and template values, validated like a queue config."""
    from ._extras import require_for_runs
    from .core.overrides import deep_merge, run_override_problems
    from .core.queue_config import secret_problems
    from .core.templates import fill_template_vars

    _raise_problems(run_override_problems(dict(resource_args or {})), "--resource-arg")
    _raise_problems(
        secret_problems(dict(resource_args or {})) + secret_problems(dict(template_values or {})),
        "this run's overrides",
    )
    require_for_runs(queue.resource)  # a queue may be stored unchecked (no SDK here); a run never is
    merged = deep_merge(queue.config, dict(resource_args or {}))
    filled = fill_template_vars(merged, queue.template_vars, template_values or {})
    _raise_problems(_filled_config_problems(queue.resource, filled), "this run's config")
    return filled


def _locate_notebook(
    notebook: str | Path | None, user_ns: Mapping | None, save: SaveFunction | None
) -> tuple[Path, str]:
    """The notebook to submit and a note for the user (e.g. that the saved file was used).

    For the current notebook, ``save`` asks the frontend to save it and returns once the file is
    written (None: no frontend answered); without an answer the file as last saved is read, with
    a bounded retry in case the server is writing it at that moment."""
    if notebook is not None:
        path = Path(notebook).expanduser()
        if not path.is_file():
            raise NotebookError(f"notebook not found: {path}")
        return path.resolve(), ""
    from .packaging import find_notebook, wait_readable

    path = find_notebook(user_ns)
    reply = save(path) if save is not None else None
    if reply is not None and reply.status == "saved":
        return path, ""
    if reply is not None:
        raise NotebookError(
            f"JupyterLab could not save {path.name}: {reply.message or 'unknown error'}; "
            "nothing was queued (save it, then submit again)"
        )
    wait_readable(path)
    saved = time.strftime("%H:%M:%S", time.localtime(path.stat().st_mtime))
    why = _why_no_save(save)
    return (
        path,
        f"no JupyterLab extension answered the save request{why}: submitted {path.name} as last saved ({saved})",
    )


def _why_no_save(save: SaveFunction | None) -> str:
    if save is None:
        return ""
    from .handshake import why_not_available

    why = why_not_available()
    return f" ({why})" if why else ""


def _default_save() -> SaveFunction:
    from .handshake import request_save

    return request_save


def _refuse_inside_run(allow_nested: bool) -> None:
    from .core.inside import inside_run

    here = inside_run()
    if here is not None and not allow_nested:
        raise LaunchError(
            f"{here.describe()}: submit() queues nothing here, so a notebook that submits itself runs "
            "once; pass allow_nested=True to submit from inside a run on purpose"
        )


def submit(
    notebook: str | Path | None = None,
    queue: str | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    new_parameters: Sequence[str] = (),
    priority: str | int | Priority | None = None,
    template_values: Mapping[str, Any] | None = None,
    resource_args: Mapping[str, Any] | None = None,
    image: str | None = None,
    name: str | None = None,
    include: Sequence[str] = (),
    dry_run: bool = False,
    user_ns: Mapping | None = None,
    save: SaveFunction | None | bool = True,
    allow_nested: bool = False,
    store_url: str | None = None,
    keep_outputs: bool = False,
    allow_secrets: Sequence[str] = (),
) -> RunHandle | str:
    """Put one run of ``notebook`` (default: the current one) on ``queue`` and return at once.

    ``parameters`` must be names the notebook's ``parameters`` cell sets (``new_parameters`` adds
    others on purpose) and are typed against its defaults. For the current notebook, ``save`` asks
    JupyterLab to save it first (``False``: submit it as last saved). Inside a run this refuses
    unless ``allow_nested``. With ``dry_run`` nothing is queued: the request comes back as YAML.
    The notebook ships without its outputs unless ``keep_outputs``; ``allow_secrets`` lists files
    (globs) that may ship although their content looks like a credential (a false positive).
    """
    from .packaging import check_parameters, create_context, pack_context, read_notebook_json

    _refuse_inside_run(allow_nested)
    store = open_store(store_url)
    queue_name, queue_entity = _split_queue_ref(_resolve_queue_name(queue), None)
    q = store.find_queue(queue_name, current_user(), queue_entity)
    try:
        prio = Priority.parse(priority)
    except ValueError as err:
        raise ConfigError(str(err), path="priority") from None
    if image is not None:  # it lands in a job spec or a docker command line: one reference, no spaces
        from .core.images import parse_image

        try:
            parse_image(image)
        except ConfigError as err:
            raise ConfigError(str(err), path="image") from None
    config = resolve_run_config(q, template_values, resource_args)
    saver = _default_save() if save is True else (save or None)
    path, note = _locate_notebook(notebook, user_ns, saver)
    checked = check_parameters(read_notebook_json(path), path.name, dict(parameters or {}), new_parameters)
    builder = config.get("builder") or {}
    tmp = Path(tempfile.mkdtemp(prefix="launch-context-"))
    try:
        context = create_context(
            path,
            tmp / "context",
            include=include,
            base_image=builder.get("base_image"),
            keep_outputs=keep_outputs,
            allow_secrets=allow_secrets,
            protected=_store_paths(store),
        )
        run = Run(
            id="",
            queue_id=q.id or 0,
            queue_name=q.name,
            entity=q.entity,
            author=current_user(),
            resource=q.resource,
            priority=prio,
            name=name or path.stem,
            notebook=str(path),
            parameters=checked,
            template_values=dict(template_values or {}),
            resource_args=dict(resource_args or {}),
            config=config,
            image=image,
            content_hash=context.content_hash,
            message=note,
        )
        if dry_run:
            return _dry_run(q, run, context)
        run = store.enqueue(run, pack_context(context.directory))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _wake_local_agent()
    return RunHandle(run, store_url)


def _store_paths(store: QueueStore) -> list[Path]:
    """The data dir and a SQLite store's file: never shipped in a build context."""
    paths = [agent_config().data_dir]
    url = str(store.url)
    if url.startswith("sqlite:///"):
        paths.append(Path(url[len("sqlite:///") :]))
    return paths


def _packed_context(
    path: Path,
    config: Mapping,
    store: QueueStore,
    include: Sequence[str] = (),
    keep_outputs: bool = False,
    allow_secrets: Sequence[str] = (),
) -> tuple[bytes, str]:
    """The notebook's build context packed once (a schedule's snapshot, a sweep's one context), with
    a submit's protections (the store and data dir never ship), and its content hash."""
    from .packaging import create_context, pack_context

    tmp = Path(tempfile.mkdtemp(prefix="launch-context-"))
    try:
        context = create_context(
            path,
            tmp / "context",
            include=include,
            base_image=(config.get("builder") or {}).get("base_image"),
            keep_outputs=keep_outputs,
            allow_secrets=allow_secrets,
            protected=_store_paths(store),
        )
        return pack_context(context.directory), context.content_hash
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dry_run(queue: Queue, run: Run, context: Any) -> str:
    from .agent import build_job
    from .core.queue_config import dump_config
    from .runners import get_runner

    run.id = run.id or "dry-run"
    runner = get_runner(queue.resource, agent_config())
    job = build_job(
        run,
        queue,
        agent_config(),
        context_dir=context.directory,
        notebook=context.notebook,
        image_uri=run.image or "${image_uri}",
    )
    return dump_config(runner.dry_run(job))


def preview_request(
    queue: str | None = None,
    *,
    resource: str | None = None,
    config: str | dict | None = None,
    template_vars: Sequence[TemplateVar | str | dict] = (),
    template_values: Mapping[str, Any] | None = None,
    resource_args: Mapping[str, Any] | None = None,
    image: str | None = None,
    notebook: str = "notebook.ipynb",
) -> str:
    """The request a run would send, as YAML, for a stored queue or for an unsaved config (the editor)."""
    from .agent import build_job
    from .core.queue_config import dump_config
    from .runners import get_runner

    if queue is not None:
        q = get_queue(queue)
    else:
        if resource is None:
            raise ConfigError("give a queue name or a resource", path="resource")
        parsed, text = _parse_config(resource, config)
        q = Queue(
            entity=_entity(None),
            name="preview",
            resource=resource,
            config=parsed,
            config_text=text,
            template_vars=_template_vars(template_vars),
            created_by=current_user(),
        )
    run_config = resolve_run_config(q, template_values, resource_args)
    run = Run(
        id="preview",
        queue_id=q.id or 0,
        queue_name=q.name,
        entity=q.entity,
        author=current_user(),
        resource=q.resource,
        config=run_config,
        image=image,
        name=Path(notebook).stem,
        notebook=notebook,
    )
    cfg = agent_config()
    job = build_job(
        run,
        q,
        cfg,
        context_dir=cfg.data_dir / "runs" / run.id / "context",
        notebook=notebook,
        image_uri=image or "${image_uri}",
    )
    return dump_config(get_runner(q.resource, cfg).dry_run(job))


def list_runs(
    *,
    queue: str | None = None,
    state: str | RunState | Sequence[str | RunState] | None = None,
    author: str | None = None,
    limit: int | None = None,
    store_url: str | None = None,
) -> list[Run]:
    """Runs, newest first, optionally of one queue / in some states / by one author."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"must be a whole number of at least 1, not {limit!r}", path="limit")
    store = open_store(store_url)
    queue_id = get_queue(queue, store_url=store_url).id if queue else None
    states = None
    if state is not None:
        items = [state] if isinstance(state, (str, RunState)) else list(state)
        try:
            states = [RunState(str(s).lower()) for s in items]
        except ValueError:
            choices = ", ".join(s.value for s in RunState)
            raise ConfigError(f"unknown state {state!r}; choose from: {choices}", path="state") from None
    return store.list_runs(queue_id=queue_id, states=states, author=author, limit=limit)


def get_run(run_id: str, *, store_url: str | None = None) -> RunHandle:
    """The run with this id (or unique id prefix)."""
    return RunHandle(open_store(store_url).get_run(run_id), store_url)


def events(run_id: str, *, store_url: str | None = None) -> list[Event]:
    """A run's history, oldest first."""
    store = open_store(store_url)
    return store.events(store.get_run(run_id).id)


def events_since(after_id: int, *, store_url: str | None = None) -> list[Event]:
    """Every run's events newer than ``after_id`` (how widgets follow agents in other processes)."""
    return open_store(store_url).events_since(after_id)


def cancel(run_id: str, *, store_url: str | None = None) -> Run:
    """Cancel a run: a queued one at once, an active one through its agent and runner."""
    store = open_store(store_url)
    run = store.request_cancel(store.get_run(run_id).id)
    _wake_local_agent()
    return run


def delete_run(run_id: str, *, store_url: str | None = None) -> Run:
    """Forget a finished run (its history and build context too); an active run must be cancelled
    first. The files it wrote on the agent's machine stay where they are."""
    store = open_store(store_url)
    return store.delete_run(store.get_run(run_id).id)


def run_files(run_id: str, *, store_url: str | None = None) -> dict:
    """What a run wrote: ``{"files": [{name, size, modified, kind, local, location}], "truncated"}``,
    its executed notebook first (``kind`` "notebook"). See ``launch_jupyter.run_files``."""
    from .run_files import list_files

    store = open_store(store_url)
    files, truncated = list_files(store.get_run(run_id), store, agent_config().data_dir)
    return {"files": [f.view() for f in files], "truncated": truncated}


def run_file(run_id: str, name: str, *, store_url: str | None = None) -> Path:
    """The local path of the file ``name`` of ``run_files(run_id)``; ConfigError (path "name") for a
    name with ``..`` or an absolute one, RunError for a name the run did not write."""
    from .run_files import check_name, find_file

    check_name(name)  # before any lookup: a bad name is bad input whatever the run
    store = open_store(store_url)
    found = find_file(store.get_run(run_id), store, agent_config().data_dir, name).path
    assert found is not None  # find_file refuses a file that is not on this machine
    return found


def logs(run_id: str, *, follow: bool = False, store_url: str | None = None) -> Iterator[str]:
    """The run's log lines (the runner's log for a dispatched run; the event history before that)."""
    from .runners import get_runner

    run = open_store(store_url).get_run(run_id)
    if run.external_id is None and run.log_path is None:
        for event in events(run.id, store_url=store_url):
            yield f"{time.strftime('%H:%M:%S', time.localtime(event.time))} {event.state} {event.message}"
        return
    cfg = agent_config()
    if run.log_path is not None:  # the row says where: only ever inside this run's own folder
        from .core.trust import checked_inside, run_folder

        checked_inside(run.log_path, run_folder(cfg.data_dir, run.id), "the log")
    yield from get_runner(run.resource, cfg).logs(run, follow=follow)


def gc(older_than: str | float = "30d", *, dry_run: bool = False, store_url: str | None = None) -> GcReport:
    """Remove what finished runs older than ``older_than`` (``30d``, ``12h`` or seconds) leave behind:
    events, build contexts, run folders with their logs, then unreferenced blobs (``launch_jupyter.gc``)."""
    from .gc import collect

    return collect(open_store(store_url), older_than, agent_config(store_url).data_dir, dry_run=dry_run)


def run_progress(run_ids: str | Sequence[str], *, store_url: str | None = None) -> dict[str, dict]:
    """Where running notebooks are: {run id: {cell, total, source, cell_started_at, updated_at}}
    (``cell`` of ``total`` is running; runs that reported nothing are left out)."""
    from . import progress

    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    return progress.load(open_store(store_url), ids)


# ---------------------------------------------------------------- schedules


def create_schedule(
    name: str,
    notebook: str | Path,
    queue: str | None = None,
    *,
    cron: str,
    timezone: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    new_parameters: Sequence[str] = (),
    priority: str | int | Priority | None = None,
    template_values: Mapping[str, Any] | None = None,
    resource_args: Mapping[str, Any] | None = None,
    include: Sequence[str] = (),
    missed: str = "once",
    follow_file: bool = False,
    keep_outputs: bool = False,
    allow_secrets: Sequence[str] = (),
    store_url: str | None = None,
) -> Schedule:
    """Run ``notebook`` on ``queue`` at every ``cron`` time (in ``timezone``, default this machine's).

    By default the notebook is packaged now, once, and every tick runs that snapshot (one image);
    ``follow_file`` packages the file as it is at each tick. ``missed``: ``once`` fires the latest
    tick that came while no agent served the queue, ``skip`` drops such ticks. Everything is checked
    before anything is stored."""
    from .core.inside import inside_run
    from .packaging import check_parameters, read_notebook_json
    from .schedules import (
        Schedule,
        check_cron,
        check_missed,
        check_timezone,
        local_timezone,
        next_fire_after,
    )
    from .store._schedules import insert_schedule

    here = inside_run()
    if here is not None:  # a notebook that schedules itself would add a schedule at every tick
        raise LaunchError(f"{here.describe()}: no schedule is created inside a run")
    if not QUEUE_NAME.match(name or ""):
        raise ConfigError(
            f'bad schedule name "{name}": use 1 to 64 characters from letters, digits, ".", "_" and "-"', path="name"
        )
    cron = check_cron(cron)
    tz = timezone or local_timezone()
    check_timezone(tz)
    check_missed(missed)
    try:
        prio = Priority.parse(priority)
    except ValueError as err:
        raise ConfigError(str(err), path="priority") from None
    store = open_store(store_url)
    queue_name, queue_entity = _split_queue_ref(_resolve_queue_name(queue), None)
    q = store.find_queue(queue_name, current_user(), queue_entity)
    config = resolve_run_config(q, template_values, resource_args)
    path, _ = _locate_notebook(notebook, None, None)
    checked = check_parameters(read_notebook_json(path), path.name, dict(parameters or {}), new_parameters)
    context_bytes, content_hash = None, None
    if not follow_file:
        context_bytes, content_hash = _packed_context(path, config, store, include, keep_outputs, allow_secrets)
    row = insert_schedule(
        store,
        dict(
            name=name,
            author=current_user(),
            queue_id=q.id,
            queue_name=q.name,
            entity=q.entity,
            cron=cron,
            timezone=tz,
            missed=missed,
            follow_file=bool(follow_file),
            notebook=str(path),
            include=list(include),
            parameters=checked,
            new_parameters=list(new_parameters),
            template_values=dict(template_values or {}),
            resource_args=dict(resource_args or {}),
            priority=int(prio),
            content_hash=content_hash,
            paused=False,
            next_fire_at=next_fire_after(cron, tz, time.time()),
        ),
        context_bytes,
    )
    _wake_local_agent()
    return Schedule.from_row(row)


def list_schedules(*, author: str | None = None, store_url: str | None = None) -> list[Schedule]:
    """Every schedule (only ``author``'s when given), by author then name."""
    from .schedules import Schedule
    from .store._schedules import list_schedules as _list

    return [Schedule.from_row(r) for r in _list(open_store(store_url), author)]


def get_schedule(name: str, *, store_url: str | None = None) -> Schedule:
    """Your schedule ``name`` (or anyone's as ``author/name``)."""
    from .schedules import Schedule
    from .store._schedules import find_schedule

    return Schedule.from_row(find_schedule(open_store(store_url), name, current_user()))


def pause_schedule(name: str, *, store_url: str | None = None) -> Schedule:
    """Stop firing ``name`` until it is resumed (ticks meanwhile are not owed)."""
    from .schedules import Schedule
    from .store._schedules import set_paused

    schedule = get_schedule(name, store_url=store_url)
    return Schedule.from_row(set_paused(open_store(store_url), schedule.id, True))


def resume_schedule(name: str, *, store_url: str | None = None) -> Schedule:
    """Fire ``name`` again, from its next tick after now."""
    from .schedules import Schedule, next_fire_after
    from .store._schedules import set_paused

    schedule = get_schedule(name, store_url=store_url)
    next_at = next_fire_after(schedule.cron, schedule.timezone, time.time())
    resumed = Schedule.from_row(set_paused(open_store(store_url), schedule.id, False, next_at))
    _wake_local_agent()
    return resumed


def delete_schedule(name: str, *, store_url: str | None = None) -> None:
    """Delete ``name`` and its tick history; the runs it fired stay."""
    from .store._schedules import delete_schedule as _delete

    _delete(open_store(store_url), get_schedule(name, store_url=store_url).id)


def schedule_ticks(name: str, *, limit: int | None = 20, store_url: str | None = None) -> list[dict]:
    """The schedule's ticks, newest first: fire_time, state (claimed | fired | failed | skipped),
    run_id, run_state, agent_id, message."""
    from .store._schedules import list_ticks

    return list_ticks(open_store(store_url), get_schedule(name, store_url=store_url).id, limit)


def schedule_of_run(run_id: str, *, store_url: str | None = None) -> dict | None:
    """The schedule tick that fired this run: schedule (``author/name``), fire_time, message; None
    for a run that was submitted by hand."""
    from .store._schedules import tick_of_run

    store = open_store(store_url)
    tick = tick_of_run(store, store.get_run(run_id).id)
    if tick is None:
        return None
    return {
        "schedule": f"{tick['author']}/{tick['name']}",
        "fire_time": tick["fire_time"],
        "timezone": tick["timezone"],
        "message": tick["message"],
    }


# ---------------------------------------------------------------- who is serving


def agents(queue: str | None = None, *, store_url: str | None = None) -> list[dict]:
    """Agents seen in the last day, newest heartbeat first (``queue``: only those serving it).

    Each is a dict: id, host (hostname), host_id, pid, queues, max_jobs, version, started_at,
    heartbeat_at, stopped_at, plus ``alive`` (its heartbeat is fresh and it did not stop) and ``age``
    (seconds since its last heartbeat, and as text in ``last_seen``). Dead ones age out of the store
    after a day."""
    from .core.identity import host_name, how_long

    store = open_store(store_url)
    queue_id = get_queue(queue, store_url=store_url).id if queue else None
    now = time.time()
    found = []
    for row in store.list_agents():
        if queue_id is not None and queue_id not in (row["queue_ids"] or []):
            continue
        age = max(now - row["heartbeat_at"], 0.0)
        # A heartbeat comes every lease/3 s: two leases without one means the agent is gone or paused.
        alive = row["stopped_at"] is None and age <= 2 * row["lease_seconds"]
        found.append(
            {
                **row,
                "host_id": row["host"],
                "host": host_name(row["host"]),
                "alive": alive,
                "age": age,
                "last_seen": f"{how_long(age)} ago",
            }
        )
    return found


def serving_agents(queue: str, *, store_url: str | None = None) -> list[dict]:
    """The live agents serving ``queue`` (empty: a run queued there waits for someone to start one)."""
    return [a for a in agents(queue, store_url=store_url) if a["alive"]]


def serving_note(queue: str, *, store_url: str | None = None) -> str | None:
    """``"no agent is serving alice/laptop (last seen 3 min ago)"`` when no live agent serves
    ``queue``; None when one does. What the CLI, the magics and the widgets show under a queued run."""
    q = get_queue(queue, store_url=store_url)
    seen = agents(q.path, store_url=store_url)
    if any(a["alive"] for a in seen):
        return None
    if not seen:
        return f"no agent is serving {q.path}"
    return f"no agent is serving {q.path} (last seen {seen[0]['last_seen']})"


# ---------------------------------------------------------------- the in-kernel agent

_agent: Agent | None = None
_subscribers: list[Callable[[Event], None]] = []


def _wake_local_agent() -> None:
    if _agent is not None:
        _agent.wake()


def start_agent(queues: Sequence[str] = (), *, max_jobs: int | None = None, store_url: str | None = None) -> Agent:
    """Start the in-kernel agent thread (one per process) and return at once (refused inside a run).

    If this process's agent already serves ``queues``, that agent is returned (a re-run cell)."""
    from .agent import Agent
    from .core.inside import inside_run

    global _agent
    here = inside_run()
    if here is not None:
        raise LaunchError(f"{here.describe()}: no agent is started here (the agent that runs it serves the queue)")
    if _agent is not None and _agent.is_alive():
        serving = set(_agent.status()["queues"])
        wanted = {get_queue(name, store_url=store_url).path for name in queues}
        if wanted and wanted <= serving:  # re-running the cell that started it
            return _agent
        raise LaunchError(
            f"an agent is already running here ({_agent.agent_id}, serving "
            f"{', '.join(sorted(serving))}): stop it first (%launch agent stop)"
        )
    overrides: dict[str, Any] = {}
    if max_jobs is not None:
        overrides["max_jobs"] = max_jobs
    if queues:
        overrides["queues"] = list(queues)
    agent = Agent(config=agent_config(store_url, overrides))
    agent.subscribe(_publish)
    _agent = agent.start()
    return agent


def stop_agent() -> None:
    """Stop the in-kernel agent; its active runs keep their external ids for reattachment."""
    global _agent
    if _agent is not None:
        _agent.stop()
    _agent = None


def agent_status() -> dict | None:
    """The in-kernel agent's state, queues, capacity and activity; ``None`` when none runs."""
    return _agent.status() if _agent is not None else None


def _publish(event: Event) -> None:
    for callback in list(_subscribers):
        try:
            callback(event)
        except Exception:  # a broken widget must not stop the agent
            pass


def subscribe(callback: Callable[[Event], None]) -> Callable[[], None]:
    """Call ``callback(event)`` for each event of the in-process agent (now and any started later)."""
    _subscribers.append(callback)

    def unsubscribe() -> None:
        if callback in _subscribers:
            _subscribers.remove(callback)

    return unsubscribe


# ---------------------------------------------------------------- sweeps and comparing runs


class SweepHandle:
    """A queued sweep, as the submitter sees it: its row, its runs, a table of their results."""

    def __init__(self, sweep: dict, store_url: str | None = None):
        self.sweep = sweep
        self._store_url = store_url

    def __repr__(self) -> str:
        return f"<Sweep {self.id} {self.sweep['name']} {self.sweep['total']} runs>"

    @property
    def id(self) -> str:
        return self.sweep["id"]

    def runs(self) -> list[Run]:
        return open_store(self._store_url).sweep_runs(self.id)

    def wait(self, timeout: float | None = None, interval: float = 0.2) -> list[Run]:
        """Block until every run of the sweep ended (or ``timeout`` seconds pass); returns the runs."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self.runs()
            if all(r.state in TERMINAL for r in found):
                return found
            if deadline is not None and time.monotonic() > deadline:
                return found
            time.sleep(interval)

    def table(self, sort: str | None = None) -> list[dict]:
        return get_sweep(self.id, sort=sort, store_url=self._store_url)["rows"]

    def cancel(self) -> dict:
        return cancel_sweep(self.id, store_url=self._store_url)


def sweep(
    notebook: str | Path | None = None,
    queue: str | None = None,
    *,
    parameters: Mapping[str, Any],
    random: int | None = None,
    seed: int | None = None,
    max_parallel: int | None = None,
    max_points: int | None = None,
    name: str | None = None,
    new_parameters: Sequence[str] = (),
    priority: str | int | Priority | None = None,
    template_values: Mapping[str, Any] | None = None,
    resource_args: Mapping[str, Any] | None = None,
    image: str | None = None,
    include: Sequence[str] = (),
    user_ns: Mapping | None = None,
    save: SaveFunction | None | bool = True,
    allow_nested: bool = False,
    keep_outputs: bool = False,
    allow_secrets: Sequence[str] = (),
    store_url: str | None = None,
) -> SweepHandle:
    """Queue one run of ``notebook`` per point of a parameter space, all in one sweep, packaged once.

    ``parameters`` maps each name to its values: a list, a ``range``, or text as on the command line
    (``"0.1,0.01"``, ``"range(1,6)"``, ``"uniform(0.1,1)"``, ``"loguniform(1e-4,1e-1)"``,
    ``"choice(a,b)"``). A grid (the default) takes every combination; ``random=N`` draws N points
    with ``seed``. Each point is checked like a single submit; on any error nothing is queued.
    ``max_parallel`` caps how many of the sweep's runs are active at once, across all agents."""
    from .packaging import check_parameters, read_notebook_json
    from .sweeps import DEFAULT_MAX_POINTS, describe_space, parse_space, points

    _refuse_inside_run(allow_nested)
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise ConfigError(f"must be a whole number above 0, not {max_parallel!r}", path="--max-parallel")
    space = parse_space(parameters)
    chosen = points(space, random_count=random, seed=seed, max_points=max_points or DEFAULT_MAX_POINTS)
    store = open_store(store_url)
    queue_name, queue_entity = _split_queue_ref(_resolve_queue_name(queue), None)
    q = store.find_queue(queue_name, current_user(), queue_entity)
    try:
        prio = Priority.parse(priority)
    except ValueError as err:
        raise ConfigError(str(err), path="priority") from None
    config = resolve_run_config(q, template_values, resource_args)
    saver = _default_save() if save is True else (save or None)
    path, note = _locate_notebook(notebook, user_ns, saver)
    nb = read_notebook_json(path)
    checked = [check_parameters(nb, path.name, point, new_parameters) for point in chosen]
    sweep_name = name or f"{path.stem} sweep"
    packed, content_hash = _packed_context(path, config, store, include, keep_outputs, allow_secrets)
    width = len(str(len(checked)))
    runs = [
        Run(
            id="",
            queue_id=q.id or 0,
            queue_name=q.name,
            entity=q.entity,
            author=current_user(),
            resource=q.resource,
            priority=prio,
            name=f"{sweep_name} {i:0{width}d}",
            notebook=str(path),
            parameters=point,
            template_values=dict(template_values or {}),
            resource_args=dict(resource_args or {}),
            config=config,
            image=image,
            content_hash=content_hash,
            message=note,
        )
        for i, point in enumerate(checked, 1)
    ]
    row = {
        "name": sweep_name,
        "queue_id": q.id or 0,
        "queue_name": q.name,
        "entity": q.entity,
        "author": current_user(),
        "notebook": str(path),
        "method": "grid" if random is None else "random",
        "space": describe_space(space),
        "seed": seed,
        "max_parallel": max_parallel,
        "content_hash": content_hash,
    }
    stored, _ = store.enqueue_sweep(row, runs, packed)
    _wake_local_agent()
    return SweepHandle(stored, store_url)


def _comparison(store: QueueStore, found: list[Run], sort: str | None) -> dict:
    from .sweeps import best_row, columns, sort_rows, table_rows

    rows = sort_rows(table_rows(found, store.records([r.id for r in found])), sort)
    params, values = columns(rows)
    return {"rows": rows, "parameters": params, "values": values, "sort": sort, "best": best_row(rows, sort)}


def get_sweep(sweep_id: str, *, sort: str | None = None, store_url: str | None = None) -> dict:
    """A sweep and one row per run (state, parameters, recorded values, duration), sorted by ``sort``
    (a recorded value or parameter; ``-accuracy``: highest first). Keys: sweep, rows, parameters,
    values (recorded names), counts (state → runs), best (the best row's run id when sorted)."""
    store = open_store(store_url)
    row = store.get_sweep(sweep_id)
    found = store.sweep_runs(row["id"])
    counts: dict[str, int] = {}
    for run in found:
        counts[str(run.state)] = counts.get(str(run.state), 0) + 1
    return {"sweep": row, "counts": counts, **_comparison(store, found, sort)}


def list_sweeps(*, limit: int | None = 50, store_url: str | None = None) -> list[dict]:
    """Sweeps, newest first, each with ``counts`` (state → runs) and ``done`` (runs that ended)."""
    found = open_store(store_url).list_sweeps(limit)
    for row in found:
        row["done"] = sum(n for state, n in row["counts"].items() if RunState(state).is_terminal)
    return found


def cancel_sweep(sweep_id: str, *, store_url: str | None = None) -> dict:
    """Cancel a sweep: its queued runs at once, its active ones through their agents.
    Returns {"id", "cancelled": queued runs cancelled, "cancelling": active runs asked to stop}."""
    store = open_store(store_url)
    row = store.get_sweep(sweep_id)
    cancelled, flagged = store.cancel_sweep(row["id"])
    _wake_local_agent()
    return {"id": row["id"], "cancelled": cancelled, "cancelling": flagged}


def compare(run_ids: Sequence[str], *, sort: str | None = None, store_url: str | None = None) -> dict:
    """Any runs side by side, the way ``get_sweep`` shows a sweep's (keys: rows, parameters, values, best)."""
    from .core.errors import RunError

    store = open_store(store_url)
    if not run_ids:
        raise RunError("compare needs at least one run id")
    found = [store.get_run(run_id) for run_id in run_ids]
    return _comparison(store, found, sort)
