"""The one API every front end calls: the CLI, the ``%launch`` magics, the widgets and the server.

``Launcher`` is the client: it owns one store handle, the agent config it read once, and the
agents it started, and closes them when it closes (``with Launcher() as launcher: ...``). The
module functions (``submit``, ``list_runs``, ...) are thin wrappers that open a ``Launcher`` for
one call and close it, the way ``httpx.get`` opens and closes a ``Client``.

It resolves names (queues by name, runs by id prefix), validates input once at the edge and then
hands typed records to the store, the packaging and the agent. Return types follow one rule: a call
about one run returns a ``RunHandle`` (``submit``, ``get_run``, ``cancel``), about a sweep a
``SweepHandle``; listings return records (``Run``, ``Queue``, ``Schedule``); ``dry_run`` and
``preview_request`` return the request a run would send (a ``DryRun``, printable as YAML). Nothing
heavy is imported at module import time.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from .core.closing import Closing
from .core.config import AgentConfig, current_user
from .core.cost import Estimate, check_budget
from .core.errors import ConfigError, LaunchError, NotebookError, QueueError, QueueExistsError, RunError
from .core.model import Event, Problem, Queue, Run, TemplateVar
from .core.states import TERMINAL, Priority, RunState

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .agent import Agent
    from .gc import GcReport
    from .handshake import SaveReply
    from .packaging import BuildContext
    from .schedules import Schedule
    from .store import QueueStore

    SaveFunction = Callable[[Path], SaveReply | None]

QUEUE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_T = TypeVar("_T")

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
    """The agent config: defaults < launch-config.yaml < env vars < ``configure()`` < ``overrides``
    (``Launcher.agent_config`` of a launcher on ``store_url``; no store is opened)."""
    return Launcher(store=store_url).agent_config(overrides)


def open_store(store_url: str | None = None) -> QueueStore:
    """The store named by ``store_url``, ``configure()``, ``LAUNCH_JUPYTER_DB`` or the config file.

    The caller owns the handle: close it (``with api.open_store() as store: ...``)."""
    from .store import open_store as _open

    return _open(store_url or _settings["store_url"] or agent_config().store)


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
    """A queue config may carry ``builder:`` overrides (e.g. ``base_image``) and a ``budget:``; the
    runner never sees them."""
    from .core.cost import runner_config

    rest = runner_config(config)
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
    from .core.cost import budget_problems
    from .runners import get_runner

    rest, builder = _split_builder(filled)
    return builder_problems(builder) + budget_problems(filled.get("budget")) + get_runner(resource).validate(rest)


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


def resolve_run_config(
    queue: Queue,
    template_values: Mapping[str, Any] | None = None,
    resource_args: Mapping[str, Any] | None = None,
) -> dict:
    """The queue config merged with this run's overrides and template values, validated like a queue config."""
    from ._extras import require_for_runs
    from .core.overrides import deep_merge, nest_key_paths, run_override_problems
    from .core.queue_config import secret_problems
    from .core.templates import fill_template_vars

    resource_args = nest_key_paths(dict(resource_args or {}))  # a form's "spec.worker_pool_specs[0]…" keys
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


def _saver(save: SaveFunction | None | bool) -> SaveFunction | None:
    """``True``: the kernel-side save handshake (``launch_jupyter.handshake``, a comm to the
    JupyterLab extension, no widget); a function: that one (the magics pass it); falsy: none."""
    if save is True:
        from .handshake import request_save

        return request_save
    return save or None


def _refuse_inside_run(allow_nested: bool) -> None:
    from .core.inside import inside_run

    here = inside_run()
    if here is not None and not allow_nested:
        raise LaunchError(
            f"{here.describe()}: submit() queues nothing here, so a notebook that submits itself runs "
            "once; pass allow_nested=True to submit from inside a run on purpose"
        )


def _priority(priority: str | int | Priority | None) -> Priority:
    try:
        return Priority.parse(priority)
    except ValueError as err:
        raise ConfigError(str(err), path="priority") from None


# ---------------------------------------------------------------- what calls return


class RunHandle:
    """A submitted run, as the submitter sees it. Each call reads the run's store (opened and closed
    for that call); the run as last read is ``.run``."""

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
        with open_store(self._store_url) as store:
            self.run = store.get_run(self.id)
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
        with open_store(self._store_url) as store:
            return store.events(self.id)

    def logs(self, follow: bool = False) -> Iterator[str]:
        return logs(self.id, follow=follow, store_url=self._store_url)

    def cancel(self) -> RunHandle:
        self.run = cancel(self.id, store_url=self._store_url).run
        return self


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
        with open_store(self._store_url) as store:
            return store.sweep_runs(self.id)

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


@dataclass(frozen=True)
class DryRun:
    """The request a run would send to its target (``request``), nothing queued; ``str()`` is its YAML."""

    request: dict[str, Any]
    resource: str
    queue: str
    estimate: Estimate | None = None  # its price (None: the resource has no price table)
    over_budget: str | None = None  # why the queue's budget refuses it (a preview shows, a submit raises)

    @property
    def yaml(self) -> str:
        from .core.queue_config import dump_config

        return dump_config(self.request)

    @property
    def cost_text(self) -> str:
        """The estimate for people: the hourly price, the worst case, the table's source."""
        if self.estimate is None:
            return f"cost: no price table for {self.resource} runs"
        lines = ["cost:", *self.estimate.lines_text()]
        if self.over_budget:
            lines.append(f"over budget: {self.over_budget}")
        return "\n".join(lines)

    def __str__(self) -> str:
        """The request's YAML followed by its price as YAML comments (when its resource has a price table)."""
        if self.estimate is None:
            return self.yaml
        comments = "\n".join(f"# {line}" if line else "#" for line in self.cost_text.splitlines())
        return f"{self.yaml.rstrip()}\n{comments}\n"


# ---------------------------------------------------------------- the client


class QueuedRunOptions(TypedDict, total=False):
    """The keyword options every queued run takes (a submit's and a sweep's)."""

    new_parameters: Sequence[str]
    priority: str | int | Priority | None
    template_values: Mapping[str, Any] | None
    resource_args: Mapping[str, Any] | None
    image: str | None
    name: str | None
    include: Sequence[str]
    user_ns: Mapping | None
    save: SaveFunction | None | bool
    allow_nested: bool
    keep_outputs: bool
    allow_secrets: Sequence[str]


class SubmitOptions(QueuedRunOptions, total=False):
    """The keyword options of ``submit`` and ``dry_run`` (see ``Launcher.submit``)."""

    parameters: Mapping[str, Any] | None


class SweepOptions(QueuedRunOptions, total=False):
    """The keyword options of ``sweep`` beyond ``parameters`` (see ``Launcher.sweep``)."""

    random: int | None
    seed: int | None
    max_parallel: int | None
    max_points: int | None


class ScheduleOptions(TypedDict, total=False):
    """The keyword options of ``create_schedule`` beyond ``cron`` (see ``Launcher.create_schedule``)."""

    timezone: str | None
    parameters: Mapping[str, Any] | None
    new_parameters: Sequence[str]
    priority: str | int | Priority | None
    template_values: Mapping[str, Any] | None
    resource_args: Mapping[str, Any] | None
    include: Sequence[str]
    missed: str
    follow_file: bool
    keep_outputs: bool
    allow_secrets: Sequence[str]


class PreviewOptions(TypedDict, total=False):
    """The keyword options of ``preview_request`` (see ``Launcher.preview_request``)."""

    resource: str | None
    config: str | dict | None
    template_vars: Sequence[TemplateVar | str | dict]
    template_values: Mapping[str, Any] | None
    resource_args: Mapping[str, Any] | None
    image: str | None
    notebook: str


@dataclass
class _Prepared:
    """What a submit and a dry run of it share: the checked run, its queue and store, its context."""

    store: QueueStore
    queue: Queue
    run: Run
    context: Any
    estimate: Estimate | None = None


class Launcher(Closing):
    """A client of one store: queues, runs, sweeps, schedules, and the agents it starts.

    ``store`` is a URL (default: ``configure()``'s, ``LAUNCH_JUPYTER_DB`` or launch-config.yaml's)
    or an open ``QueueStore`` (then the caller keeps owning it). The agent config is read once, on
    first use. ``close()`` (or leaving ``with``) stops the agents it started and closes the store
    handle it opened; a ``RunHandle`` it returned keeps working (it opens its own)."""

    def __init__(
        self,
        *,
        store: str | QueueStore | None = None,
        config_path: str | None = None,
        entity: str | None = None,
        default_queue: str | None = None,
    ):
        self._store: QueueStore | None = None if store is None or isinstance(store, str) else store
        self._owns_store = self._store is None
        self._store_url = store if isinstance(store, str) else None
        self._config_path = config_path or _settings["config_path"]
        self._entity_default = entity or _settings["entity"]
        self._default_queue = default_queue or _settings["default_queue"]
        self._config: AgentConfig | None = None
        self._agent: Agent | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<Launcher {self.store!r}>" if self._store is not None else "<Launcher (store not opened yet)>"

    def close(self) -> None:
        """Stop the agent this launcher started, then close the store handle it opened."""
        if self._closed:
            return
        self._closed = True
        self.stop_agent()
        if self._owns_store and self._store is not None:
            self._store.close()
        self._store = None

    # --- what it owns --------------------------------------------------------------------------------

    def agent_config(self, overrides: Mapping[str, Any] | None = None) -> AgentConfig:
        """The agent config: defaults < launch-config.yaml < env vars < this launcher's settings <
        ``overrides``. Without overrides it is read once and kept."""
        if self._config is not None and not overrides:
            return self._config
        from .core.config import load_agent_config

        merged: dict[str, Any] = {}
        if self._entity_default:
            merged["entity"] = self._entity_default
        url = self._store_url or _settings["store_url"]
        if url:
            merged["store"] = url
        merged.update(overrides or {})
        cfg = load_agent_config(self._config_path, overrides=merged)
        if not overrides:
            self._config = cfg
        return cfg

    @property
    def config(self) -> AgentConfig:
        return self.agent_config()

    @property
    def store(self) -> QueueStore:
        """The store handle (opened on first use)."""
        if self._closed:
            raise LaunchError("this Launcher is closed")
        if self._store is None:
            from .store import open_store as _open

            self._store = _open(self._store_url or _settings["store_url"] or self.config.store)
        return self._store

    @property
    def store_url(self) -> str:
        """The URL of the store this launcher uses (what its handles reopen)."""
        return self.store.url

    def _entity(self, entity: str | None) -> str:
        return entity or self._entity_default or self.config.entity or current_user()

    def _queue_ref(self, queue: str | None) -> Queue:
        """The queue a run goes to: named, else the default queue, else the agent config's only one."""
        name = queue or self._default_queue
        if not name:
            configured = self.config.queues
            if len(configured) != 1:
                raise QueueError("no queue given: pass a queue name (-q QUEUE)")
            name = configured[0]
        queue_name, queue_entity = _split_queue_ref(name, None)
        return self.store.find_queue(queue_name, current_user(), queue_entity)

    def _handle(self, run: Run) -> RunHandle:
        return RunHandle(run, self.store_url)

    # --- queues --------------------------------------------------------------------------------------

    def create_queue(
        self,
        name: str,
        resource: str = "local-process",
        *,
        entity: str | None = None,
        config: str | dict | None = None,
        prioritization: bool = False,
        template_vars: Sequence[TemplateVar | str | dict] = (),
        exist_ok: bool = False,
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
        try:
            existing: Queue | None = self.store.get_queue(self._entity(entity), name)
        except QueueError:
            existing = None
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
            updated = self.update_queue(
                existing.name,
                entity=existing.entity,
                config=config,
                prioritization=prioritization,
                template_vars=template_vars,
            )
            return replace(updated, outcome="updated")
        queue = Queue(
            entity=self._entity(entity),
            name=name,
            resource=resource,
            config=parsed,
            config_text=text,
            prioritization=prioritization,
            template_vars=tvars,
            created_by=current_user(),
        )
        return replace(self.store.create_queue(queue), outcome="created")

    def get_queue(self, name: str, *, entity: str | None = None) -> Queue:
        """The queue called ``name`` (or ``entity/name``) visible to the current user."""
        name, entity = _split_queue_ref(name, entity)
        return self.store.find_queue(name, current_user(), entity)

    def list_queues(self) -> list[Queue]:
        """Queues visible to the current user: their private ones and every shared one."""
        return self.store.list_queues(current_user())

    def update_queue(
        self,
        name: str,
        *,
        entity: str | None = None,
        config: str | dict | None = None,
        prioritization: bool | None = None,
        template_vars: Sequence[TemplateVar | str | dict] | None = None,
    ) -> Queue:
        """Change a queue's config, prioritisation or template variables (validated like a new one)."""
        queue = self.get_queue(name, entity=entity)
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
        return self.store.update_queue(updated)

    def delete_queue(self, name: str, *, entity: str | None = None) -> None:
        """Delete a queue; its queued runs are cancelled, history is kept."""
        queue = self.get_queue(name, entity=entity)
        self.store.delete_queue(queue.entity, queue.name)

    # --- submitting ----------------------------------------------------------------------------------

    @contextmanager
    def _prepare(
        self,
        notebook: str | Path | None,
        queue: str | None,
        *,
        parameters: Mapping[str, Any] | None = None,
        new_parameters: Sequence[str] = (),
        priority: str | int | Priority | None = None,
        template_values: Mapping[str, Any] | None = None,
        resource_args: Mapping[str, Any] | None = None,
        image: str | None = None,
        name: str | None = None,
        include: Sequence[str] = (),
        user_ns: Mapping | None = None,
        save: SaveFunction | None | bool = True,
        allow_nested: bool = False,
        keep_outputs: bool = False,
        allow_secrets: Sequence[str] = (),
    ) -> Iterator[_Prepared]:
        """Everything a submit checks and packs, before anything is stored (its context is removed
        when the ``with`` block ends)."""
        from .packaging import check_parameters, read_notebook_json

        _refuse_inside_run(allow_nested)
        q = self._queue_ref(queue)
        prio = _priority(priority)
        if image is not None:  # it lands in a job spec or a docker command line: one reference, no spaces
            from .core.images import parse_image

            try:
                parse_image(image)
            except ConfigError as err:
                raise ConfigError(str(err), path="image") from None
        config = resolve_run_config(q, template_values, resource_args)
        estimate = self.estimate_config(q.resource, config)
        check_budget(estimate, config.get("budget"))  # before the save: an over-budget run changes nothing
        path, note = _locate_notebook(notebook, user_ns, _saver(save))
        checked = check_parameters(read_notebook_json(path), path.name, dict(parameters or {}), new_parameters)
        with self._context(path, q.resource, config, include, keep_outputs, allow_secrets) as context:
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
                cost=estimate.record() if estimate is not None else None,
            )
            yield _Prepared(self.store, q, run, context, estimate)

    def submit(
        self, notebook: str | Path | None = None, queue: str | None = None, **options: Unpack[SubmitOptions]
    ) -> RunHandle:
        """Put one run of ``notebook`` (default: the current one) on ``queue`` and return at once.

        ``parameters`` must be names the notebook's ``parameters`` cell sets (``new_parameters`` adds
        others on purpose) and are typed against its defaults. For the current notebook, ``save`` asks
        JupyterLab to save it first (a function, as the magics pass; ``True``, the default: the
        kernel-side handshake; ``False``: submit it as last saved). Inside a run this refuses unless
        ``allow_nested``. The notebook ships without its outputs unless ``keep_outputs``;
        ``allow_secrets`` lists files (globs) that may ship although their content looks like a
        credential (a false positive). ``dry_run()`` takes the same arguments and queues nothing.
        """
        from .packaging import pack_context

        with self._prepare(notebook, queue, **options) as prepared:
            run = prepared.store.enqueue(prepared.run, pack_context(prepared.context.directory))
        _wake_local_agents()
        return self._handle(run)

    def dry_run(
        self, notebook: str | Path | None = None, queue: str | None = None, **options: Unpack[SubmitOptions]
    ) -> DryRun:
        """What ``submit`` with these arguments would send to the queue's target, checked the same
        way; nothing is queued or stored."""
        with self._prepare(notebook, queue, **options) as prepared:
            run = replace(prepared.run, id="dry-run")
            return self._request(prepared.queue, run, prepared.context.directory, prepared.context.notebook)

    def _request(self, queue: Queue, run: Run, context_dir: Path, notebook: str) -> DryRun:
        """The one way a request is shown without sending it: the runner's dry run of the job."""
        from .agent import build_job
        from .runners import get_runner

        cfg = self.config
        job = build_job(
            run, queue, cfg, context_dir=context_dir, notebook=notebook, image_uri=run.image or "${image_uri}"
        )
        runner = get_runner(queue.resource, cfg)
        estimate = self.estimate_config(queue.resource, run.config)
        try:
            check_budget(estimate, run.config.get("budget"))
            over = None
        except ConfigError as err:
            over = str(err)
        return DryRun(runner.dry_run(job), queue.resource, queue.path, estimate, over)

    def estimate_config(self, resource: str, config: Mapping[str, Any]) -> Estimate | None:
        """The price of a run of ``config`` (a queue's, merged and filled) on ``resource``; None when
        that resource has no price table. Pure: no SDK, no network."""
        from .core.cost import runner_config
        from .runners import get_runner

        return get_runner(resource, self.config).estimate(runner_config(config))

    def estimate(
        self,
        queue: str | None = None,
        *,
        template_values: Mapping[str, Any] | None = None,
        resource_args: Mapping[str, Any] | None = None,
    ) -> Estimate | None:
        """What a run on ``queue`` with these overrides costs (per hour, and at worst for its
        timeout), checked like a submit's config; nothing queued. None when the queue's resource has
        no price table."""
        q = self._queue_ref(queue)
        config = resolve_run_config(q, template_values, resource_args)
        return self.estimate_config(q.resource, config)

    def run_costs(
        self, *, queue: str | None = None, state: Any = None, author: str | None = None
    ) -> list[dict[str, Any]]:
        """Finished runs' machine hours and estimated cost summed by queue and author (every run that
        matches, not a page); ``state`` defaults to every finished state."""
        from .core.cost import sum_costs

        states = state or [s for s in RunState if s.is_terminal]
        return sum_costs(self.list_runs(queue=queue, state=states, author=author))

    def price_table(self) -> dict[str, Any]:
        """The Vertex AI price table estimates use: the refreshed one, else the one that ships."""
        from .runners.vertex._pricing import load_table

        return load_table(self.config.data_dir)

    def refresh_prices(
        self, regions: Sequence[str], *, api_key: str | None = None, endpoint: str | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Read current prices for ``regions`` from the Cloud Billing Catalog API and write the table
        estimates use from then on (all at once: a reader sees the old table or the new one). Returns
        ``{written: path or None (the catalog had none), as_of, regions: {region: (machines,
        accelerators)}, missing: [...]}``."""
        import datetime
        import json

        from .runners.vertex._catalog import fetch_components
        from .runners.vertex._pricing import refreshed_path, table_from_components

        components = fetch_components(list(regions), api_key=api_key, endpoint=endpoint, timeout=timeout)
        meta = components.get("_meta") or {}
        as_of = str(
            meta.get("fetched_at") or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        )
        table = table_from_components(
            components,
            source="the Cloud Billing Catalog API (Compute Engine SKUs) x 1.15, the Vertex AI training rate",
            as_of=as_of,
        )
        found = {r: (len(p["machines"]), len(p["accelerators"])) for r, p in table["regions"].items()}
        missing = list(meta.get("missing_regions") or [])
        if not found:
            return {"written": None, "as_of": as_of, "regions": {}, "missing": missing}
        target = refreshed_path(self.config.data_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(table, indent=1) + "\n")
        tmp.replace(target)
        return {"written": str(target), "as_of": as_of, "regions": found, "missing": missing}

    def budget_verdict(
        self,
        queue: str | None = None,
        *,
        template_values: Mapping[str, Any] | None = None,
        resource_args: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Why the queue's budget would refuse such a run (the submit's message), or None if it fits."""
        q = self._queue_ref(queue)
        config = resolve_run_config(q, template_values, resource_args)
        try:
            check_budget(self.estimate_config(q.resource, config), config.get("budget"))
        except ConfigError as err:
            return str(err)
        return None

    def preview_request(
        self,
        queue: str | None = None,
        *,
        resource: str | None = None,
        config: str | dict | None = None,
        template_vars: Sequence[TemplateVar | str | dict] = (),
        template_values: Mapping[str, Any] | None = None,
        resource_args: Mapping[str, Any] | None = None,
        image: str | None = None,
        notebook: str = "notebook.ipynb",
    ) -> DryRun:
        """The request a run would send, for a stored queue or for an unsaved config (the editor),
        without a notebook to pack."""
        if queue is not None:
            q = self.get_queue(queue)
        else:
            if resource is None:
                raise ConfigError("give a queue name or a resource", path="resource")
            parsed, text = _parse_config(resource, config)
            q = Queue(
                entity=self._entity(None),
                name="preview",
                resource=resource,
                config=parsed,
                config_text=text,
                template_vars=_template_vars(template_vars),
                created_by=current_user(),
            )
        run = Run(
            id="preview",
            queue_id=q.id or 0,
            queue_name=q.name,
            entity=q.entity,
            author=current_user(),
            resource=q.resource,
            config=resolve_run_config(q, template_values, resource_args),
            image=image,
            name=Path(notebook).stem,
            notebook=notebook,
        )
        return self._request(q, run, self.config.data_dir / "runs" / run.id / "context", notebook)

    def _store_paths(self) -> list[Path]:
        """The data dir and a SQLite store's file: never shipped in a build context."""
        paths = [self.config.data_dir]
        url = str(self.store.url)
        if url.startswith("sqlite:///"):
            paths.append(Path(url[len("sqlite:///") :]))
        return paths

    def _context(
        self,
        path: Path,
        resource: str,
        config: Mapping,
        include: Sequence[str] = (),
        keep_outputs: bool = False,
        allow_secrets: Sequence[str] = (),
    ) -> AbstractContextManager[BuildContext]:
        """The notebook's build context in a temporary folder removed after the ``with`` block (a submit's,
        a schedule's snapshot, a sweep's one context), with a submit's protections (the store and data
        dir never ship) and the config's builder.base_image. A wheel of launch-jupyter (an editable
        install's) goes in only for a target that builds an image: a local process runs this install."""
        from .packaging import temporary_context
        from .runners import as_runner, get_runner

        return temporary_context(
            path,
            wheel=as_runner(get_runner(resource)).needs_image,
            include=include,
            base_image=(config.get("builder") or {}).get("base_image"),
            keep_outputs=keep_outputs,
            allow_secrets=allow_secrets,
            protected=self._store_paths(),
        )

    # --- runs ----------------------------------------------------------------------------------------

    def list_runs(
        self,
        *,
        queue: str | None = None,
        state: str | RunState | Sequence[str | RunState] | None = None,
        author: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs, newest first, optionally of one queue / in some states / by one author."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"must be a whole number of at least 1, not {limit!r}", path="limit")
        queue_id = self.get_queue(queue).id if queue else None
        states = None
        if state is not None:
            items = [state] if isinstance(state, (str, RunState)) else list(state)
            try:
                states = [RunState(str(s).lower()) for s in items]
            except ValueError:
                choices = ", ".join(s.value for s in RunState)
                raise ConfigError(f"unknown state {state!r}; choose from: {choices}", path="state") from None
        return self.store.list_runs(queue_id=queue_id, states=states, author=author, limit=limit)

    def get_run(self, run_id: str) -> RunHandle:
        """The run with this id (or unique id prefix)."""
        return self._handle(self.store.get_run(run_id))

    def events(self, run_id: str) -> list[Event]:
        """A run's history, oldest first."""
        return self.store.events(self.store.get_run(run_id).id)

    def events_since(self, after_id: int) -> list[Event]:
        """Every run's events newer than ``after_id`` (how widgets follow agents in other processes)."""
        return self.store.events_since(after_id)

    def cancel(self, run_id: str) -> RunHandle:
        """Cancel a run: a queued one at once, an active one through its agent and runner."""
        run = self.store.request_cancel(self.store.get_run(run_id).id)
        _wake_local_agents()
        return self._handle(run)

    def delete_run(self, run_id: str) -> Run:
        """Forget a finished run (its history and build context too) and return its last record; an
        active run must be cancelled first. The files it wrote on the agent's machine stay where they are."""
        return self.store.delete_run(self.store.get_run(run_id).id)

    def run_files(self, run_id: str) -> dict:
        """What a run wrote: ``{"files": [{name, size, modified, kind, local, location}], "truncated"}``,
        its executed notebook first (``kind`` "notebook"). See ``launch_jupyter.run_files``."""
        from .run_files import list_files

        run = self.store.get_run(run_id)
        remote, problem = self._remote_files(run)
        files, truncated = list_files(run, self.store, self.config.data_dir, remote)
        # A file at the target downloads through this server when its runner lists (and reads) them.
        views = [{**f.view(), "downloadable": f.path is not None or remote is not None} for f in files]
        return {"files": views, "truncated": truncated, "remote_error": problem}

    def _remote_files(self, run: Run) -> tuple[list[tuple[str, int, float, str]] | None, str | None]:
        """What the run's runner lists at its target, or why it could not (the page still shows the rest)."""
        from .run_files import MAX_FILES
        from .runners import get_runner

        try:
            return get_runner(run.resource, self.config).remote_files(run, MAX_FILES), None
        except Exception as err:  # noqa: BLE001 - an unreachable bucket must not hide the local files
            from .core.secrets import mask_secrets

            return None, mask_secrets(f"cannot list the run's files at its target: {type(err).__name__}: {err}")

    def run_file_chunks(self, run_id: str, name: str) -> tuple[str, Iterator[bytes]]:
        """The file ``name`` of ``run_files(run_id)`` as (its base name, its bytes a chunk at a time): a
        local file, or one at the run's target read through its runner. Errors as ``run_file``."""
        from .run_files import check_name, find_file, list_files
        from .runners import get_runner

        check_name(name)
        run = self.store.get_run(run_id)
        local, _ = list_files(run, self.store, self.config.data_dir)
        if any(f.name == name and f.path is not None for f in local):
            path = self.run_file(run_id, name)
            return path.name, _chunks(path)
        remote, problem = self._remote_files(run)
        if problem:
            raise RunError(problem)
        found = find_file(run, self.store, self.config.data_dir, name, remote)
        chunks = get_runner(run.resource, self.config).read_remote_file(run, found.location)
        try:  # the first read says whether the object can be read at all: an error before any byte is sent
            first = next(chunks, b"")
        except Exception as err:  # noqa: BLE001 - the target's own error, said as one line
            raise RunError(f"cannot read {found.location}: {type(err).__name__}: {err}") from None
        return PurePosixPath(found.name).name, itertools.chain([first], chunks)

    def run_file(self, run_id: str, name: str) -> Path:
        """The local path of the file ``name`` of ``run_files(run_id)``; ConfigError (path "name") for a
        name with ``..`` or an absolute one, RunError for a name the run did not write."""
        from .run_files import check_name, find_file

        check_name(name)  # before any lookup: a bad name is bad input whatever the run
        found = find_file(self.store.get_run(run_id), self.store, self.config.data_dir, name).path
        assert found is not None  # find_file refuses a file that is not on this machine
        return found

    def logs(self, run_id: str, *, follow: bool = False) -> Iterator[str]:
        """The run's log lines (the runner's log for a dispatched run; the event history before that)."""
        from .runners import get_runner

        run = self.store.get_run(run_id)
        if run.external_id is None and run.log_path is None:
            for event in self.events(run.id):
                yield f"{time.strftime('%H:%M:%S', time.localtime(event.time))} {event.state} {event.message}"
            return
        cfg = self.config
        if run.log_path is not None:  # the row says where: only ever inside this run's own folder
            from .core.trust import checked_inside, run_folder

            checked_inside(run.log_path, run_folder(cfg.data_dir, run.id), "the log")
        yield from get_runner(run.resource, cfg).logs(run, follow=follow)

    def gc(self, older_than: str | float = "30d", *, dry_run: bool = False) -> GcReport:
        """Remove what finished runs older than ``older_than`` (``30d``, ``12h`` or seconds) leave behind:
        events, build contexts, run folders with their logs, then unreferenced blobs (``launch_jupyter.gc``)."""
        from .gc import collect

        return collect(self.store, older_than, self.config.data_dir, dry_run=dry_run)

    def run_progress(self, run_ids: str | Sequence[str]) -> dict[str, dict]:
        """Where running notebooks are: {run id: {cell, total, source, cell_started_at, updated_at}}
        (``cell`` of ``total`` is running; runs that reported nothing are left out)."""
        from . import progress

        ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        return progress.load(self.store, ids)

    # --- schedules -----------------------------------------------------------------------------------

    def create_schedule(
        self,
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
    ) -> Schedule:
        """Run ``notebook`` on ``queue`` at every ``cron`` time (in ``timezone``, default this machine's).

        By default the notebook is packaged now, once, and every tick runs that snapshot (one image);
        ``follow_file`` packages the file as it is at each tick. ``missed``: ``once`` fires the latest
        tick that came while no agent served the queue, ``skip`` drops such ticks. Everything is checked
        before anything is stored."""
        from .core.inside import inside_run
        from .packaging import check_parameters, pack_context, read_notebook_json
        from .schedules import Schedule, check_cron, check_missed, check_timezone, local_timezone, next_fire_after
        from .store._schedules import insert_schedule

        here = inside_run()
        if here is not None:  # a notebook that schedules itself would add a schedule at every tick
            raise LaunchError(f"{here.describe()}: no schedule is created inside a run")
        if not QUEUE_NAME.match(name or ""):
            raise ConfigError(
                f'bad schedule name "{name}": use 1 to 64 characters from letters, digits, ".", "_" and "-"',
                path="name",
            )
        cron = check_cron(cron)
        tz = timezone or local_timezone()
        check_timezone(tz)
        check_missed(missed)
        prio = _priority(priority)
        q = self._queue_ref(queue)
        config = resolve_run_config(q, template_values, resource_args)
        check_budget(self.estimate_config(q.resource, config), config.get("budget"))  # each tick is a run
        path, _ = _locate_notebook(notebook, None, None)
        checked = check_parameters(read_notebook_json(path), path.name, dict(parameters or {}), new_parameters)
        context_bytes, content_hash = None, None
        if not follow_file:
            with self._context(path, q.resource, config, include, keep_outputs, allow_secrets) as context:
                context_bytes, content_hash = pack_context(context.directory), context.content_hash
        row = insert_schedule(
            self.store,
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
        _wake_local_agents()
        return Schedule.from_row(row)

    def list_schedules(self, *, author: str | None = None) -> list[Schedule]:
        """Every schedule (only ``author``'s when given), by author then name."""
        from .schedules import Schedule
        from .store._schedules import list_schedules as _list

        return [Schedule.from_row(r) for r in _list(self.store, author)]

    def get_schedule(self, name: str) -> Schedule:
        """Your schedule ``name`` (or anyone's as ``author/name``)."""
        from .schedules import Schedule
        from .store._schedules import find_schedule

        return Schedule.from_row(find_schedule(self.store, name, current_user()))

    def pause_schedule(self, name: str) -> Schedule:
        """Stop firing ``name`` until it is resumed (ticks meanwhile are not owed)."""
        from .schedules import Schedule
        from .store._schedules import set_paused

        return Schedule.from_row(set_paused(self.store, self.get_schedule(name).id, True))

    def resume_schedule(self, name: str) -> Schedule:
        """Fire ``name`` again, from its next tick after now."""
        from .schedules import Schedule, next_fire_after
        from .store._schedules import set_paused

        schedule = self.get_schedule(name)
        next_at = next_fire_after(schedule.cron, schedule.timezone, time.time())
        resumed = Schedule.from_row(set_paused(self.store, schedule.id, False, next_at))
        _wake_local_agents()
        return resumed

    def delete_schedule(self, name: str) -> None:
        """Delete ``name`` and its tick history; the runs it fired stay."""
        from .store._schedules import delete_schedule as _delete

        _delete(self.store, self.get_schedule(name).id)

    def schedule_ticks(self, name: str, *, limit: int | None = 20) -> list[dict]:
        """The schedule's ticks, newest first: fire_time, state (claimed | fired | failed | skipped),
        run_id, run_state, agent_id, message."""
        from .store._schedules import list_ticks

        return list_ticks(self.store, self.get_schedule(name).id, limit)

    def schedule_of_run(self, run_id: str) -> dict | None:
        """The schedule tick that fired this run: schedule (``author/name``), fire_time, message; None
        for a run that was submitted by hand."""
        from .store._schedules import tick_of_run

        tick = tick_of_run(self.store, self.store.get_run(run_id).id)
        if tick is None:
            return None
        return {
            "schedule": f"{tick['author']}/{tick['name']}",
            "fire_time": tick["fire_time"],
            "timezone": tick["timezone"],
            "message": tick["message"],
        }

    # --- who is serving ------------------------------------------------------------------------------

    def agents(self, queue: str | None = None) -> list[dict]:
        """Agents seen in the last day, newest heartbeat first (``queue``: only those serving it).

        Each is a dict: id, host (hostname), host_id, pid, queues, max_jobs, version, started_at,
        heartbeat_at, stopped_at, plus ``alive`` (its heartbeat is fresh and it did not stop) and ``age``
        (seconds since its last heartbeat, and as text in ``last_seen``). Dead ones age out of the store
        after a day."""
        from .core.identity import host_name, how_long

        queue_id = self.get_queue(queue).id if queue else None
        now = time.time()
        found = []
        for row in self.store.list_agents():
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

    def serving_agents(self, queue: str) -> list[dict]:
        """The live agents serving ``queue`` (empty: a run queued there waits for someone to start one)."""
        return [a for a in self.agents(queue) if a["alive"]]

    def serving_note(self, queue: str) -> str | None:
        """``"no agent is serving alice/laptop (last seen 3 min ago)"`` when no live agent serves
        ``queue``; None when one does. What the CLI, the magics and the widgets show under a queued run."""
        q = self.get_queue(queue)
        seen = self.agents(q.path)
        if any(a["alive"] for a in seen):
            return None
        if not seen:
            return f"no agent is serving {q.path}"
        return f"no agent is serving {q.path} (last seen {seen[0]['last_seen']})"

    # --- the agent it starts -------------------------------------------------------------------------

    def start_agent(self, queues: Sequence[str] = (), *, max_jobs: int | None = None) -> Agent:
        """Start an agent thread serving ``queues`` (refused inside a run) and return at once; it
        stops when this launcher closes. If this launcher's agent already serves ``queues``, that
        agent is returned (a re-run cell)."""
        from .agent import Agent
        from .core.inside import inside_run

        here = inside_run()
        if here is not None:
            raise LaunchError(f"{here.describe()}: no agent is started here (the agent that runs it serves the queue)")
        current = self._agent
        if current is not None and current.is_alive():
            serving = set(current.status()["queues"])
            wanted = {self.get_queue(name).path for name in queues}
            if wanted and wanted <= serving:  # re-running the cell that started it
                return current
            raise LaunchError(
                f"an agent is already running here ({current.agent_id}, serving "
                f"{', '.join(sorted(serving))}): stop it first (%launch agent stop)"
            )
        overrides: dict[str, Any] = {"store": self.store_url}
        if max_jobs is not None:
            overrides["max_jobs"] = max_jobs
        if queues:
            overrides["queues"] = list(queues)
        agent = Agent(config=self.agent_config(overrides))
        agent.subscribe(_publish)
        self._agent = agent.start()
        _local_agents.append(agent)
        return agent

    def stop_agent(self) -> None:
        """Stop this launcher's agent; its active runs keep their external ids for reattachment."""
        agent, self._agent = self._agent, None
        if agent is not None:
            agent.stop()
            if agent in _local_agents:
                _local_agents.remove(agent)

    def agent_status(self) -> dict | None:
        """This launcher's agent: its state, queues, capacity and activity; ``None`` when none runs."""
        return self._agent.status() if self._agent is not None else None

    # --- sweeps and comparing runs -------------------------------------------------------------------

    def sweep(
        self,
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
    ) -> SweepHandle:
        """Queue one run of ``notebook`` per point of a parameter space, all in one sweep, packaged once.

        ``parameters`` maps each name to its values: a list, a ``range``, or text as on the command line
        (``"0.1,0.01"``, ``"range(1,6)"``, ``"uniform(0.1,1)"``, ``"loguniform(1e-4,1e-1)"``,
        ``"choice(a,b)"``). A grid (the default) takes every combination; ``random=N`` draws N points
        with ``seed``. Each point is checked like a single submit; on any error nothing is queued.
        ``max_parallel`` caps how many of the sweep's runs are active at once, across all agents."""
        from .packaging import check_parameters, pack_context, read_notebook_json
        from .sweeps import DEFAULT_MAX_POINTS, describe_space, parse_space, points

        _refuse_inside_run(allow_nested)
        if max_parallel is not None and (
            isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
        ):
            raise ConfigError(f"must be a whole number above 0, not {max_parallel!r}", path="--max-parallel")
        space = parse_space(parameters)
        chosen = points(space, random_count=random, seed=seed, max_points=max_points or DEFAULT_MAX_POINTS)
        q = self._queue_ref(queue)
        prio = _priority(priority)
        config = resolve_run_config(q, template_values, resource_args)
        estimate = self.estimate_config(q.resource, config)
        check_budget(estimate, config.get("budget"))  # before the save: an over-budget run changes nothing
        path, note = _locate_notebook(notebook, user_ns, _saver(save))
        nb = read_notebook_json(path)
        checked = [check_parameters(nb, path.name, point, new_parameters) for point in chosen]
        sweep_name = name or f"{path.stem} sweep"
        with self._context(path, q.resource, config, include, keep_outputs, allow_secrets) as context:
            packed, content_hash = pack_context(context.directory), context.content_hash
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
                cost=estimate.record() if estimate is not None else None,
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
        stored, _ = self.store.enqueue_sweep(row, runs, packed)
        _wake_local_agents()
        return SweepHandle(stored, self.store_url)

    def _comparison(self, found: list[Run], sort: str | None) -> dict:
        from .sweeps import best_row, columns, sort_rows, table_rows

        rows = sort_rows(table_rows(found, self.store.records([r.id for r in found])), sort)
        params, values = columns(rows)
        return {"rows": rows, "parameters": params, "values": values, "sort": sort, "best": best_row(rows, sort)}

    def get_sweep(self, sweep_id: str, *, sort: str | None = None) -> dict:
        """A sweep and one row per run (state, parameters, recorded values, duration), sorted by ``sort``
        (a recorded value or parameter; ``-accuracy``: highest first). Keys: sweep, rows, parameters,
        values (recorded names), counts (state → runs), best (the best row's run id when sorted)."""
        row = self.store.get_sweep(sweep_id)
        found = self.store.sweep_runs(row["id"])
        counts: dict[str, int] = {}
        for run in found:
            counts[str(run.state)] = counts.get(str(run.state), 0) + 1
        return {"sweep": row, "counts": counts, **self._comparison(found, sort)}

    def list_sweeps(self, *, limit: int | None = 50) -> list[dict]:
        """Sweeps, newest first, each with ``counts`` (state → runs) and ``done`` (runs that ended)."""
        found = self.store.list_sweeps(limit)
        for row in found:
            row["done"] = sum(n for state, n in row["counts"].items() if RunState(state).is_terminal)
        return found

    def cancel_sweep(self, sweep_id: str) -> dict:
        """Cancel a sweep: its queued runs at once, its active ones through their agents.
        Returns {"id", "cancelled": queued runs cancelled, "cancelling": active runs asked to stop}."""
        row = self.store.get_sweep(sweep_id)
        cancelled, flagged = self.store.cancel_sweep(row["id"])
        _wake_local_agents()
        return {"id": row["id"], "cancelled": cancelled, "cancelling": flagged}

    def compare(self, run_ids: Sequence[str], *, sort: str | None = None) -> dict:
        """Any runs side by side, the way ``get_sweep`` shows a sweep's (keys: rows, parameters, values, best)."""
        from .core.errors import RunError

        if not run_ids:
            raise RunError("compare needs at least one run id")
        return self._comparison([self.store.get_run(run_id) for run_id in run_ids], sort)


# ---------------------------------------------------------------- agents of this process

# Every agent a Launcher of this process started: a submit through any launcher wakes them.
_local_agents: list[Agent] = []
# The launcher the module-level start_agent() starts the in-kernel agent on (one per process).
_kernel: Launcher | None = None
_subscribers: list[Callable[[Event], None]] = []


def _wake_local_agents() -> None:
    for agent in list(_local_agents):
        agent.wake()


def _publish(event: Event) -> None:
    for callback in list(_subscribers):
        try:
            callback(event)
        except Exception:  # a broken widget must not stop the agent
            pass


def subscribe(callback: Callable[[Event], None]) -> Callable[[], None]:
    """Call ``callback(event)`` for each event of the in-process agents (now and any started later)."""
    _subscribers.append(callback)

    def unsubscribe() -> None:
        if callback in _subscribers:
            _subscribers.remove(callback)

    return unsubscribe


def start_agent(queues: Sequence[str] = (), *, max_jobs: int | None = None, store_url: str | None = None) -> Agent:
    """Start the in-kernel agent thread (one per process, on a launcher kept for the process) and
    return at once (refused inside a run). If it already serves ``queues``, it is returned (a re-run cell)."""
    global _kernel
    if _kernel is not None and _kernel.agent_status() is not None:
        assert _kernel._agent is not None
        if _kernel._agent.is_alive():
            return _kernel.start_agent(queues, max_jobs=max_jobs)
    if _kernel is not None:
        _kernel.close()
    _kernel = Launcher(store=store_url)
    try:
        return _kernel.start_agent(queues, max_jobs=max_jobs)
    except BaseException:
        _kernel.close()
        _kernel = None
        raise


def stop_agent() -> None:
    """Stop the in-kernel agent; its active runs keep their external ids for reattachment."""
    global _kernel
    kernel, _kernel = _kernel, None
    if kernel is not None:
        kernel.close()


def agent_status() -> dict | None:
    """The in-kernel agent's state, queues, capacity and activity; ``None`` when none runs."""
    return _kernel.agent_status() if _kernel is not None else None


# ---------------------------------------------------------------- one call, one Launcher
# Each opens a Launcher on ``store_url`` (default: the process's store), calls its method and closes it.


def _one_call(store_url: str | None, call: Callable[[Launcher], _T]) -> _T:
    """``call(launcher)`` on a Launcher opened on ``store_url``, closed when the call returns or raises."""
    with Launcher(store=store_url) as client:
        return call(client)


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
    """``Launcher.create_queue`` for one call."""
    return _one_call(
        store_url,
        lambda client: client.create_queue(
            name,
            resource,
            entity=entity,
            config=config,
            prioritization=prioritization,
            template_vars=template_vars,
            exist_ok=exist_ok,
        ),
    )


def get_queue(name: str, *, entity: str | None = None, store_url: str | None = None) -> Queue:
    """``Launcher.get_queue`` for one call."""
    return _one_call(store_url, lambda client: client.get_queue(name, entity=entity))


def list_queues(*, store_url: str | None = None) -> list[Queue]:
    """``Launcher.list_queues`` for one call."""
    return _one_call(store_url, lambda client: client.list_queues())


def update_queue(
    name: str,
    *,
    entity: str | None = None,
    config: str | dict | None = None,
    prioritization: bool | None = None,
    template_vars: Sequence[TemplateVar | str | dict] | None = None,
    store_url: str | None = None,
) -> Queue:
    """``Launcher.update_queue`` for one call."""
    return _one_call(
        store_url,
        lambda client: client.update_queue(
            name, entity=entity, config=config, prioritization=prioritization, template_vars=template_vars
        ),
    )


def delete_queue(name: str, *, entity: str | None = None, store_url: str | None = None) -> None:
    """``Launcher.delete_queue`` for one call."""
    _one_call(store_url, lambda client: client.delete_queue(name, entity=entity))


def submit(
    notebook: str | Path | None = None,
    queue: str | None = None,
    *,
    store_url: str | None = None,
    **options: Unpack[SubmitOptions],
) -> RunHandle:
    """``Launcher.submit`` for one call (the same keyword options)."""
    return _one_call(store_url, lambda client: client.submit(notebook, queue, **options))


def dry_run(
    notebook: str | Path | None = None,
    queue: str | None = None,
    *,
    store_url: str | None = None,
    **options: Unpack[SubmitOptions],
) -> DryRun:
    """``Launcher.dry_run`` for one call (``submit``'s keyword options; nothing is queued)."""
    return _one_call(store_url, lambda client: client.dry_run(notebook, queue, **options))


def estimate(
    queue: str | None = None,
    *,
    template_values: Mapping[str, Any] | None = None,
    resource_args: Mapping[str, Any] | None = None,
    store_url: str | None = None,
) -> Estimate | None:
    """``Launcher.estimate`` for one call."""
    return _one_call(
        store_url, lambda client: client.estimate(queue, template_values=template_values, resource_args=resource_args)
    )


def preview_request(
    queue: str | None = None, *, store_url: str | None = None, **options: Unpack[PreviewOptions]
) -> DryRun:
    """``Launcher.preview_request`` for one call."""
    return _one_call(store_url, lambda client: client.preview_request(queue, **options))


def list_runs(
    *,
    queue: str | None = None,
    state: str | RunState | Sequence[str | RunState] | None = None,
    author: str | None = None,
    limit: int | None = None,
    store_url: str | None = None,
) -> list[Run]:
    """``Launcher.list_runs`` for one call."""
    return _one_call(store_url, lambda client: client.list_runs(queue=queue, state=state, author=author, limit=limit))


def get_run(run_id: str, *, store_url: str | None = None) -> RunHandle:
    """``Launcher.get_run`` for one call."""
    return _one_call(store_url, lambda client: client.get_run(run_id))


def events(run_id: str, *, store_url: str | None = None) -> list[Event]:
    """``Launcher.events`` for one call."""
    return _one_call(store_url, lambda client: client.events(run_id))


def events_since(after_id: int, *, store_url: str | None = None) -> list[Event]:
    """``Launcher.events_since`` for one call."""
    return _one_call(store_url, lambda client: client.events_since(after_id))


def cancel(run_id: str, *, store_url: str | None = None) -> RunHandle:
    """``Launcher.cancel`` for one call."""
    return _one_call(store_url, lambda client: client.cancel(run_id))


def delete_run(run_id: str, *, store_url: str | None = None) -> Run:
    """``Launcher.delete_run`` for one call."""
    return _one_call(store_url, lambda client: client.delete_run(run_id))


def run_files(run_id: str, *, store_url: str | None = None) -> dict:
    """``Launcher.run_files`` for one call."""
    return _one_call(store_url, lambda client: client.run_files(run_id))


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(size):
            yield chunk


def run_file(run_id: str, name: str, *, store_url: str | None = None) -> Path:
    """``Launcher.run_file`` for one call."""
    return _one_call(store_url, lambda client: client.run_file(run_id, name))


def logs(run_id: str, *, follow: bool = False, store_url: str | None = None) -> Iterator[str]:
    """``Launcher.logs`` for one call: the launcher stays open while the lines are read."""
    with Launcher(store=store_url) as client:
        yield from client.logs(run_id, follow=follow)


def gc(older_than: str | float = "30d", *, dry_run: bool = False, store_url: str | None = None) -> GcReport:
    """``Launcher.gc`` for one call."""
    return _one_call(store_url, lambda client: client.gc(older_than, dry_run=dry_run))


def run_progress(run_ids: str | Sequence[str], *, store_url: str | None = None) -> dict[str, dict]:
    """``Launcher.run_progress`` for one call."""
    return _one_call(store_url, lambda client: client.run_progress(run_ids))


def create_schedule(
    name: str,
    notebook: str | Path,
    queue: str | None = None,
    *,
    cron: str,
    store_url: str | None = None,
    **options: Unpack[ScheduleOptions],
) -> Schedule:
    """``Launcher.create_schedule`` for one call (the same keyword options)."""
    return _one_call(store_url, lambda client: client.create_schedule(name, notebook, queue, cron=cron, **options))


def list_schedules(*, author: str | None = None, store_url: str | None = None) -> list[Schedule]:
    """``Launcher.list_schedules`` for one call."""
    return _one_call(store_url, lambda client: client.list_schedules(author=author))


def get_schedule(name: str, *, store_url: str | None = None) -> Schedule:
    """``Launcher.get_schedule`` for one call."""
    return _one_call(store_url, lambda client: client.get_schedule(name))


def pause_schedule(name: str, *, store_url: str | None = None) -> Schedule:
    """``Launcher.pause_schedule`` for one call."""
    return _one_call(store_url, lambda client: client.pause_schedule(name))


def resume_schedule(name: str, *, store_url: str | None = None) -> Schedule:
    """``Launcher.resume_schedule`` for one call."""
    return _one_call(store_url, lambda client: client.resume_schedule(name))


def delete_schedule(name: str, *, store_url: str | None = None) -> None:
    """``Launcher.delete_schedule`` for one call."""
    _one_call(store_url, lambda client: client.delete_schedule(name))


def schedule_ticks(name: str, *, limit: int | None = 20, store_url: str | None = None) -> list[dict]:
    """``Launcher.schedule_ticks`` for one call."""
    return _one_call(store_url, lambda client: client.schedule_ticks(name, limit=limit))


def schedule_of_run(run_id: str, *, store_url: str | None = None) -> dict | None:
    """``Launcher.schedule_of_run`` for one call."""
    return _one_call(store_url, lambda client: client.schedule_of_run(run_id))


def agents(queue: str | None = None, *, store_url: str | None = None) -> list[dict]:
    """``Launcher.agents`` for one call."""
    return _one_call(store_url, lambda client: client.agents(queue))


def serving_agents(queue: str, *, store_url: str | None = None) -> list[dict]:
    """``Launcher.serving_agents`` for one call."""
    return _one_call(store_url, lambda client: client.serving_agents(queue))


def serving_note(queue: str, *, store_url: str | None = None) -> str | None:
    """``Launcher.serving_note`` for one call."""
    return _one_call(store_url, lambda client: client.serving_note(queue))


def sweep(
    notebook: str | Path | None = None,
    queue: str | None = None,
    *,
    parameters: Mapping[str, Any],
    store_url: str | None = None,
    **options: Unpack[SweepOptions],
) -> SweepHandle:
    """``Launcher.sweep`` for one call (the same keyword options)."""
    return _one_call(store_url, lambda client: client.sweep(notebook, queue, parameters=parameters, **options))


def get_sweep(sweep_id: str, *, sort: str | None = None, store_url: str | None = None) -> dict:
    """``Launcher.get_sweep`` for one call."""
    return _one_call(store_url, lambda client: client.get_sweep(sweep_id, sort=sort))


def list_sweeps(*, limit: int | None = 50, store_url: str | None = None) -> list[dict]:
    """``Launcher.list_sweeps`` for one call."""
    return _one_call(store_url, lambda client: client.list_sweeps(limit=limit))


def cancel_sweep(sweep_id: str, *, store_url: str | None = None) -> dict:
    """``Launcher.cancel_sweep`` for one call."""
    return _one_call(store_url, lambda client: client.cancel_sweep(sweep_id))


def compare(run_ids: Sequence[str], *, sort: str | None = None, store_url: str | None = None) -> dict:
    """``Launcher.compare`` for one call."""
    return _one_call(store_url, lambda client: client.compare(run_ids, sort=sort))
