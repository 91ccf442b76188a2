"""``launch-jupyter``: the command line. Every command calls ``api.py``; bad input is one line on
stderr and exit status 2, with nothing changed; a failure of the work itself (the store cannot be
reached, a build or a target failed) is one line and exit status 1."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NoReturn

from .core.errors import BuildError, DispatchError, LaunchError, StoreError
from .core.states import RunState
from .flags import (
    add_queue_flags,
    add_repeated,
    add_submit_flags,
    add_sweep_flags,
    add_table_flags,
    cancelled_sweep_line,
    join_sort_values,
    submit_kwargs,
    sweep_kwargs,
)

USAGE_ERROR = 2  # the command line or what it names is wrong: fix the input
RUNTIME_ERROR = 1  # the input was fine, the work failed (store, build, target): retrying may help
_RUNTIME_ERRORS = (BuildError, DispatchError, StoreError)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(USAGE_ERROR)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="launch-jupyter", description="A launch queue for notebooks: queues, runs and agents.")
    p.add_argument(
        "-c",
        "--config",
        help="agent config file (default: $LAUNCH_JUPYTER_CONFIG or ~/.config/launch_jupyter/launch-config.yaml)",
    )
    p.add_argument("--store", help="store URL (default: the config's store:, $LAUNCH_JUPYTER_DB, or SQLite)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    queue = sub.add_parser("queue", help="create, list, show, edit and delete queues")
    qsub = queue.add_subparsers(dest="queue_command", required=True, parser_class=_Parser)
    create = qsub.add_parser("create", help="create a queue")
    create.add_argument("name")
    create.add_argument("--resource", "-r", required=True, help="vertex | local-process | ...")
    create.add_argument("--config", dest="queue_config", metavar="FILE", help="YAML/JSON config file, - for stdin")
    add_queue_flags(create)
    qlist = qsub.add_parser("list", help="queues visible to you")
    qlist.add_argument("--json", action="store_true")
    show = qsub.add_parser("show", help="a queue and its config (YAML)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    edit = qsub.add_parser("edit", help="change a queue's config, prioritization or template variables")
    edit.add_argument("name")
    edit.add_argument("--config", dest="queue_config", metavar="FILE", help="YAML/JSON config file, - for stdin")
    prio = edit.add_mutually_exclusive_group()
    prio.add_argument("--prioritization", action="store_true", default=None)
    prio.add_argument("--no-prioritization", dest="prioritization", action="store_false")
    edit.add_argument("--template-var", action="append", default=None, metavar="NAME:TYPE:DEFAULT[:MIN:MAX]")
    delete = qsub.add_parser("delete", help="delete a queue (its queued runs are cancelled)")
    delete.add_argument("name")
    default = qsub.add_parser("default-config", help="print a resource's default queue config")
    default.add_argument("resource")

    runs = sub.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--queue", "-q")
    runs.add_argument("--state")
    runs.add_argument("--author")
    runs.add_argument("--limit", type=int, default=50)
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--cost", action="store_true", help="machine hours and estimated cost, by queue and author")

    run = sub.add_parser("run", help="one run")
    rsub = run.add_subparsers(dest="run_command", required=True, parser_class=_Parser)
    rshow = rsub.add_parser("show", help="a run with its event history")
    rshow.add_argument("run_id")
    rshow.add_argument("--json", action="store_true")
    rdelete = rsub.add_parser("delete", help="forget a run that has ended (its history and stored context)")
    rdelete.add_argument("run_id")

    cancel = sub.add_parser("cancel", help="cancel a run")
    cancel.add_argument("run_id")

    logs = sub.add_parser("logs", help="a run's log")
    logs.add_argument("run_id")
    logs.add_argument("--follow", "-f", action="store_true")

    submit = sub.add_parser("submit", help="put a notebook on a queue")
    submit.add_argument("notebook")
    submit.add_argument("-q", "--queue", required=True)
    add_submit_flags(submit)

    tag = sub.add_parser("tag-parameters", help="tag a notebook's parameters cell (the cell -p values follow)")
    tag.add_argument("notebook")
    tag.add_argument("--cell", type=int, help="the cell to tag, numbered from 1 (default: the one marked # parameters)")

    agents = sub.add_parser("agents", help="the agents that serve queues, and when each was last seen")
    agents.add_argument("-q", "--queue", help="only the agents serving this queue")
    agents.add_argument("--json", action="store_true")

    add_sweep_parsers(sub)

    agent = sub.add_parser("agent", help="run an agent in the foreground")
    agent.add_argument("-q", "--queue", action="append", default=[], dest="queues")
    agent.add_argument("--max-jobs", type=int)
    agent.add_argument("--poll-interval", type=float)
    agent.add_argument("--until-idle", action="store_true", help="exit once nothing is queued or active")
    agent.add_argument("-l", "--log-file", help="also write the agent's lines to this file")
    _add_team_commands(sub)
    gc = sub.add_parser(
        "gc",
        help="remove what finished runs older than an age leave behind (events, build "
        "contexts, run folders and logs) and unreferenced blobs",
    )
    gc.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 90m, 2w")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be removed")

    from ._schedule_commands import add_schedule_parser

    add_schedule_parser(sub, _Parser)
    from ._cost_commands import add_cost_parsers

    add_cost_parsers(sub, _Parser)
    return p


def _add_team_commands(sub: Any) -> None:
    """``store init --team`` and ``entity create/add-member``: access the database enforces."""
    store = sub.add_parser("store", help="set up a shared PostgreSQL store")
    ssub = store.add_subparsers(dest="store_command", required=True, parser_class=_Parser)
    init = ssub.add_parser("init", help="create the tables; with --team also roles, grants and row-level security")
    init.add_argument("--team", action="store_true", help="install row-level security (run as the store's owner)")
    init.add_argument("--group", default="launch_jupyter_users", help="the role every person's role joins")
    add_repeated(init, "--add-person", "ROLE", "let this database role use the store (grants it the group)")
    init.add_argument("--print-sql", action="store_true", help="print the SQL instead of running it")
    entity = sub.add_parser("entity", help="team entities and their members (a --team store)")
    esub = entity.add_subparsers(dest="entity_command", required=True, parser_class=_Parser)
    create = esub.add_parser("create", help="create a team entity; you become its owner (an admin)")
    create.add_argument("name")
    member = esub.add_parser("add-member", help="add a database role to a team entity (admins only)")
    member.add_argument("entity")
    member.add_argument("role")
    member.add_argument("--admin", action="store_true", help="may edit the team's queues and members")


def _cmd_gc(args: argparse.Namespace) -> int:
    from . import api
    from .gc import parse_age

    report = api.gc(parse_age(args.older_than, "--older-than"), dry_run=args.dry_run)
    for line in report.lines():
        print(line)
    return 0


def _cmd_team(args: argparse.Namespace) -> int:
    from . import api
    from .store import _team

    url = args.store or api.agent_config().store
    if args.command == "store":
        if args.print_sql:
            print(_team.team_sql(group=args.group))
            return 0
        if not args.team:
            api.open_store(url)
            print("store ready (one person's store: pass --team on PostgreSQL for row-level security)")
            return 0
        schema = _team.init_team(url, group=args.group)
        for role in args.add_person:
            _team.add_person(url, role, group=args.group)
        print(
            f"row-level security installed in schema {schema}; each person connects as their own role "
            f"(member of {args.group})"
        )
        return 0
    if args.entity_command == "create":
        _team.create_entity(url, args.name)
        print(f"created team entity {args.name}")
        return 0
    _team.add_member(url, args.entity, args.role, admin=args.admin)
    print(f"{args.role} is {'an admin' if args.admin else 'a member'} of {args.entity}")
    return 0


def add_sweep_parsers(sub: Any) -> None:
    """``sweep NOTEBOOK -q Q -p lr=0.1,0.01 ...``, ``sweep show ID``, ``sweep cancel ID``, ``sweeps``, ``compare``."""
    sweep = sub.add_parser(
        "sweep",
        help="queue a notebook for every point of a parameter grid or random search; sweep show ID / sweep cancel ID",
    )
    sweep.add_argument("target", metavar="NOTEBOOK|show|cancel")
    sweep.add_argument("sweep_id", nargs="?", metavar="ID", help="for show and cancel")
    add_sweep_flags(sweep)
    add_table_flags(sweep)
    sweeps = sub.add_parser("sweeps", help="sweeps, newest first, with their progress and best value so far")
    sweeps.add_argument("--sort", help="the recorded value 'best' means, e.g. -accuracy (highest) or loss (lowest)")
    sweeps.add_argument("--json", action="store_true")
    compare = sub.add_parser("compare", help="runs side by side: state, parameters, recorded values, duration")
    compare.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    add_table_flags(compare)


def print_table(table: dict, args: argparse.Namespace) -> None:
    """A comparison as a table (best row marked ``*``), or as JSON or CSV."""
    from .sweeps import csv_text, text_table

    if args.json:
        _print_json(table)
    elif args.csv:
        print(csv_text(table), end="")
    else:
        header, rows = text_table(table)
        _table(rows, header)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from . import api

    if args.target in ("show", "cancel"):
        if not args.sweep_id:
            raise LaunchError(f"sweep {args.target}: give the sweep's id (see `launch-jupyter sweeps`)")
        if args.target == "cancel":
            print(cancelled_sweep_line(api.cancel_sweep(args.sweep_id)))
            return 0
        table = api.get_sweep(args.sweep_id, sort=args.sort)
        if not (args.json or args.csv):
            s = table["sweep"]
            done = sum(n for state, n in table["counts"].items() if state in _ENDED)
            print(
                f"sweep {s['id']} {s['name']!r} on {s['entity']}/{s['queue_name']}: {done}/{s['total']} done "
                f"({s['method']}{', at most ' + str(s['max_parallel']) + ' at a time' if s['max_parallel'] else ''})"
            )
        print_table(table, args)
        return 0
    if args.sweep_id:
        raise LaunchError(f"sweep: unexpected argument {args.sweep_id!r}; give -p NAME=VALUES for the values")
    if not args.queue:
        raise LaunchError("sweep: no queue given: pass -q QUEUE")
    handle = api.sweep(args.target, args.queue, **sweep_kwargs(args))
    s = handle.sweep
    print(
        f"queued sweep {s['id']} ({s['total']} runs) on {s['entity']}/{s['queue_name']}; "
        f"see `launch-jupyter sweep show {s['id']}`"
    )
    _warn_if_unserved(f"{s['entity']}/{s['queue_name']}")
    return 0


_ENDED = ("succeeded", "failed", "cancelled")


def _cmd_sweeps(args: argparse.Namespace) -> int:
    from . import api

    found = api.list_sweeps()
    best = {s["id"]: _best_value(api.get_sweep(s["id"], sort=args.sort), args.sort) for s in found} if args.sort else {}
    if args.json:
        _print_json([{**s, "best": best.get(s["id"])} for s in found])
        return 0
    _table(
        [
            [
                s["id"],
                s["name"],
                f"{s['entity']}/{s['queue_name']}",
                f"{s['done']}/{s['total']}",
                _best_text(best.get(s["id"])),
                _when(s["created_at"]),
            ]
            for s in found
        ],
        ["SWEEP", "NAME", "QUEUE", "DONE", f"BEST {args.sort or ''}".strip(), "CREATED"],
    )
    return 0


def _best_value(table: dict, sort: str) -> Any:
    name = sort.lstrip("+-")
    row = next((r for r in table["rows"] if r["id"] == table["best"]), None)
    return None if row is None else {"run": row["id"], name: row["values"].get(name, row["parameters"].get(name))}


def _best_text(best: Any) -> str:
    if not best:
        return "-"
    ((name, value),) = [(k, v) for k, v in best.items() if k != "run"]
    return f"{value:.6g} ({best['run']})" if isinstance(value, float) else f"{value} ({best['run']})"


def _read_config(path: str | None) -> str | None:
    if path is None:
        return None
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise LaunchError(f"--config: cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise LaunchError(
            f"--config: {path} is not UTF-8 text (byte {err.object[err.start]:#04x} at "
            f"position {err.start}); save it as UTF-8"
        ) from None


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def _cmd_queue(args: argparse.Namespace) -> int:
    from . import api
    from .core.queue_config import dump_config

    cmd = args.queue_command
    if cmd == "create":
        q = api.create_queue(
            args.name,
            args.resource,
            entity=args.entity,
            config=_read_config(args.queue_config),
            prioritization=args.prioritization,
            template_vars=args.template_var,
            exist_ok=args.exist_ok,
        )
        print(f"{q.outcome} queue {q.path} ({q.resource}{', prioritized' if q.prioritization else ''})")
    elif cmd == "list":
        queues = api.list_queues()
        if args.json:
            _print_json([q.view() for q in queues])
        else:
            _table(
                [
                    [q.path, q.resource, "yes" if q.prioritization else "no", "shared" if q.shared else "private"]
                    for q in queues
                ],
                ["QUEUE", "RESOURCE", "PRIORITIZED", "VISIBILITY"],
            )
    elif cmd == "show":
        q = api.get_queue(args.name)
        if args.json:
            _print_json(q.view())
        else:
            print(dump_config(q.view()), end="")
    elif cmd == "edit":
        if args.queue_config is None and args.prioritization is None and args.template_var is None:
            raise LaunchError(
                "queue edit: nothing to change: give --config FILE, --[no-]prioritization or --template-var"
            )
        q = api.update_queue(
            args.name,
            config=_read_config(args.queue_config),
            prioritization=args.prioritization,
            template_vars=args.template_var,
        )
        print(f"updated queue {q.path}")
    elif cmd == "delete":
        api.delete_queue(args.name)
        print(f"deleted queue {args.name}")
    elif cmd == "default-config":
        print(api.default_config(args.resource), end="")
    return 0


def _run_dict(run: Any) -> dict:
    from .core.queue_config import mask_config
    from .core.secrets import mask_secrets

    d = asdict(run)
    d["state"] = str(run.state)
    d["priority"] = str(run.priority)
    # What could not be refused at create (a config written before the check, a row edited in
    # SQL) is masked for display.
    for key in ("config", "parameters", "template_values", "resource_args"):
        if isinstance(d.get(key), dict):
            d[key] = mask_config(d[key])
    if isinstance(d.get("message"), str):
        d["message"] = mask_secrets(d["message"])
    return d


def _cmd_runs(args: argparse.Namespace) -> int:
    from . import api

    if args.cost:
        return _cmd_runs_cost(args)
    runs = api.list_runs(queue=args.queue, state=args.state, author=args.author, limit=args.limit)
    if args.json:
        _print_json([_run_dict(r) for r in runs])
        return 0
    now = time.time()
    cells = _progress_of(runs)
    _table(
        [
            [
                r.id,
                r.queue_name,
                str(r.state),
                r.author,
                str(r.priority),
                _when(r.created_at),
                f"{((r.finished_at or now) - r.started_at):.0f}s" if r.started_at else "-",
                r.name,
                cells.get(r.id, ""),
            ]
            for r in runs
        ],
        ["RUN", "QUEUE", "STATE", "AUTHOR", "PRIORITY", "CREATED", "DURATION", "NAME", "PROGRESS"],
    )
    return 0


def _cmd_runs_cost(args: argparse.Namespace) -> int:
    """Finished runs' machine hours and estimated cost summed by queue and author (every run that
    matches the filters, not the newest ``--limit``)."""
    from . import api
    from .core.cost import money

    with api.Launcher() as client:
        rows = client.run_costs(queue=args.queue, state=args.state, author=args.author)
    if args.json:
        _print_json(rows)
        return 0
    _table(
        [
            [
                g["queue"],
                g["author"],
                str(g["runs"]),
                f"{g['machine_hours']:.2f}",
                money(g["estimated"]),
                str(g["unpriced"]) if g["unpriced"] else "",
            ]
            for g in rows
        ],
        ["QUEUE", "AUTHOR", "RUNS", "MACHINE HOURS", "EST. COST", "NO PRICE"],
    )
    total = sum(g["estimated"] for g in rows)
    print(f"total: {money(total)} over {sum(g['runs'] for g in rows)} finished runs (estimates, not a bill)")
    return 0


def _progress_of(runs: list) -> dict[str, str]:
    """The progress bar of each running run (live cell progress; issue 19)."""
    from . import api, progress

    running = [r.id for r in runs if r.state is RunState.RUNNING]
    return {run_id: progress.bar(p, 10) for run_id, p in api.run_progress(running).items()} if running else {}


def _cmd_run_show(args: argparse.Namespace) -> int:
    from . import api
    from .core.cost import describe_record
    from .core.secrets import mask_secrets

    handle = api.get_run(args.run_id)
    events = handle.events()
    if args.json:
        _print_json(
            {
                **_run_dict(handle.run),
                "events": [{"time": e.time, "state": str(e.state), "message": mask_secrets(e.message)} for e in events],
            }
        )
        return 0
    r = replace(handle.run, **{k: v for k, v in _run_dict(handle.run).items() if k in ("parameters", "message")})
    for key, value in [
        ("run", r.id),
        ("name", r.name),
        ("queue", f"{r.entity}/{r.queue_name}"),
        ("state", r.state),
        ("author", r.author),
        ("priority", r.priority),
        ("notebook", r.notebook),
        ("parameters", json.dumps(r.parameters)),
        ("image", r.image_uri or r.image or "-"),
        ("external id", r.external_id or "-"),
        ("output notebook", r.output_notebook or "-"),
        ("log", r.log_path or "-"),
        ("stage", r.stage or "-"),
        ("message", r.message or "-"),
        ("cost", describe_record(r.cost)),
    ]:
        print(f"{key + ':':17}{value}")
    _print_progress(r)
    tick = api.schedule_of_run(r.id)
    if tick is not None:
        print(f"{'schedule:':17}{tick['schedule']} ({tick['message']})")
    print("events:")
    for e in events:
        print(f"  {_when(e.time)}  {str(e.state):10}  {mask_secrets(e.message)}")
    return 0


def _print_progress(run: Any) -> None:
    from . import api, progress

    found = api.run_progress(run.id).get(run.id)
    if found is not None:
        what = progress.describe(found) if run.state is RunState.RUNNING else progress.bar(found)
        print(f"{'progress:':17}{what}")


def _cmd_submit(args: argparse.Namespace) -> int:
    from . import api

    if args.dry_run:
        print(api.dry_run(args.notebook, args.queue, **submit_kwargs(args)), end="")
        return 0
    result = api.submit(args.notebook, args.queue, **submit_kwargs(args))
    print(f"queued run {result.id} on {result.run.entity}/{result.run.queue_name}")
    if result.run.message:
        print(result.run.message)
    _warn_if_unserved(f"{result.run.entity}/{result.run.queue_name}")
    return 0


def _warn_if_unserved(queue: str) -> None:
    from . import api

    note = api.serving_note(queue)
    if note:
        sys.stderr.write(f"launch-jupyter: warning: {note}; start one with `launch-jupyter agent -q {queue}`\n")


def _cmd_agents(args: argparse.Namespace) -> int:
    from . import api

    found = api.agents(args.queue)
    if args.json:
        _print_json(found)
        return 0
    rows = [
        [
            a["id"],
            a["host"],
            ", ".join(a["queues"]),
            str(a["max_jobs"]),
            _when(a["started_at"]),
            a["last_seen"],
            "alive" if a["alive"] else ("stopped" if a["stopped_at"] else "gone"),
        ]
        for a in found
    ]
    _table(rows, ["AGENT", "HOST", "QUEUES", "MAX JOBS", "STARTED", "LAST SEEN", "STATE"])
    return 0


def _cmd_agent(args: argparse.Namespace) -> int:
    import signal

    from . import api
    from .agent import Agent

    overrides: dict[str, Any] = {}
    if args.queues:
        overrides["queues"] = args.queues
    if args.max_jobs is not None:
        overrides["max_jobs"] = args.max_jobs
    if args.poll_interval is not None:
        overrides["poll_interval"] = args.poll_interval
    try:
        log_file = open(args.log_file, "a", encoding="utf-8") if args.log_file else None  # noqa: SIM115
    except OSError as err:
        raise LaunchError(f"--log-file {args.log_file}: cannot write there: {err.strerror}") from None

    def say(line: str) -> None:
        print(line, flush=True)
        if log_file:
            log_file.write(line + "\n")
            log_file.flush()

    agent = Agent(config=api.agent_config(args.store, overrides), log=say)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    try:
        agent.run_forever(until_idle=args.until_idle)
    except KeyboardInterrupt:
        agent.stop()
    return 0


def _with_progress_bar(line: str) -> str:
    """A ``[launch] cell i/n started`` line with its progress bar in front (``logs --follow``)."""
    from .progress import bar, parse_cell_line

    found = parse_cell_line(line)
    if found is None:
        return line
    return f"{bar({'cell': found[0], 'total': found[1]})} {line}"


def _cmd_run(args: argparse.Namespace) -> int:
    from . import api

    if args.run_command != "delete":
        return _cmd_run_show(args)
    gone = api.delete_run(args.run_id)
    print(f"run {gone.id} deleted ({gone.state}); its files on the agent's machine stay")
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    from . import api

    run = api.cancel(args.run_id)
    print(f"run {run.id}: {'cancelled' if run.state.is_terminal else 'cancel requested'}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from . import api

    for line in api.logs(args.run_id, follow=args.follow):
        print(_with_progress_bar(line.rstrip("\n")) if args.follow else line.rstrip("\n"), flush=True)
    return 0


def _cmd_tag_parameters(args: argparse.Namespace) -> int:
    from .packaging import tag_parameters

    number = tag_parameters(Path(args.notebook), args.cell)
    print(f"tagged cell {number} of {args.notebook} `parameters`")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from . import api

    print_table(api.compare(args.run_ids, sort=args.sort), args)
    return 0


# Each command's handler: a function of this module, or "module:function" of one imported only
# when its command runs (the CLI's start-up stays small).
_HANDLERS: dict[str, str] = {
    "queue": "_cmd_queue",
    "runs": "_cmd_runs",
    "run": "_cmd_run",
    "cancel": "_cmd_cancel",
    "logs": "_cmd_logs",
    "submit": "_cmd_submit",
    "tag-parameters": "_cmd_tag_parameters",
    "sweep": "_cmd_sweep",
    "sweeps": "_cmd_sweeps",
    "compare": "_cmd_compare",
    "agent": "_cmd_agent",
    "agents": "_cmd_agents",
    "gc": "_cmd_gc",
    "store": "_cmd_team",
    "entity": "_cmd_team",
    "schedule": "._schedule_commands:run_schedule_command",
    "estimate": "._cost_commands:run_estimate",
    "prices": "._cost_commands:run_prices",
}


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    module, _, name = _HANDLERS[command].rpartition(":")
    if not module:
        return globals()[name]
    import importlib

    return getattr(importlib.import_module(module, __package__), name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``launch-jupyter``."""
    args = _parser().parse_args(join_sort_values(sys.argv[1:] if argv is None else argv))
    from . import api

    api.configure(store_url=args.store, config_path=args.config)
    try:
        return _handler(args.command)(args)
    except LaunchError as err:
        # One line whatever the message echoes back (a name or value with a newline in it).
        message = str(err).replace("\r", "\\r").replace("\n", "\\n")
        sys.stderr.write(f"launch-jupyter: error: {message}\n")
        return RUNTIME_ERROR if isinstance(err, _RUNTIME_ERRORS) else USAGE_ERROR
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
