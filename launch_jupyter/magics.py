"""The ``%launch`` magics: queues, submit, the in-kernel agent, runs, logs and the widgets.

Every subcommand parses its arguments and calls ``launch_jupyter.api``; nothing else happens
here. Loading the extension imports only IPython and traitlets: the API, the widgets and
everything below them load on first use.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Iterable

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Unicode, observe

SUBCOMMANDS = ("queue", "submit", "agent", "runs", "cancel", "logs", "editor", "schedule", "sweep", "compare")
QUEUE_SUBCOMMANDS = ("create", "list", "show", "edit", "delete")
AGENT_SUBCOMMANDS = ("start", "stop", "status")


class LaunchMagicError(Exception):
    """A LaunchError raised under a magic: IPython shows only its message, never a traceback."""

    def _render_traceback_(self) -> list[str]:
        # IPython prints what this returns instead of a traceback.
        return [str(self)]


class _HelpShown(Exception):
    """``-h`` printed its help; nothing else to do."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as UsageError (usage + one line) instead of exiting the kernel."""

    def error(self, message: str):
        raise UsageError(f"{self.format_usage().rstrip()}\n{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            print(message, file=sys.stderr)
        raise _HelpShown()


def _build_parser() -> tuple[_Parser, dict[str, argparse.ArgumentParser]]:
    """The ``%launch`` parser and its subcommand parsers by name ("queue create", "runs", ...)."""
    parser = _Parser(prog="%launch", description="A launch queue in the notebook.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    queue = sub.add_parser("queue", help="create, list, show, edit or delete queues")
    qsub = queue.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    create = qsub.add_parser("create", help="create a queue (cell form: the cell body is its YAML config)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--resource", "-r", default="local-process", help="vertex, local-process, ...")
    from .flags import add_queue_flags  # the same flags as `launch-jupyter queue create`

    add_queue_flags(create)
    qsub.add_parser("list", help="list the queues you can see")
    for action, text in (
        ("show", "show a queue and its config"),
        ("edit", "open the queue editor (cell form: replace the config with the cell body)"),
        ("delete", "delete a queue"),
    ):
        p = qsub.add_parser(action, help=text)
        p.add_argument("name", metavar="NAME")
        p.add_argument("--entity", "-e")

    submit = sub.add_parser("submit", help="submit this notebook (or --notebook PATH) as a run")
    submit.add_argument("-q", "--queue", help="queue name (default: LaunchMagics.default_queue)")
    submit.add_argument("--notebook", metavar="PATH", help="submit this notebook instead of the current one")
    from .flags import add_submit_flags  # the same flags as `launch-jupyter submit`

    add_submit_flags(submit)

    agent = sub.add_parser("agent", help="start, stop or show the in-kernel agent")
    asub = agent.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    start = asub.add_parser("start", help="start the agent thread in this kernel")
    start.add_argument("-q", "--queue", action="append", default=[], help="a queue to serve (repeat; default all)")
    start.add_argument("--max-jobs", type=int, help="runs at once (-1: no limit)")
    asub.add_parser("stop", help="stop the agent")
    asub.add_parser("status", help="show the agent panel")

    runs = sub.add_parser("runs", help="show the run board")
    runs.add_argument("-q", "--queue", help="only this queue's runs")
    runs.add_argument("--limit", type=int, default=50, help="at most this many runs (default 50)")

    cancel = sub.add_parser("cancel", help="cancel a run")
    cancel.add_argument("run_id", metavar="RUN_ID")

    logs = sub.add_parser("logs", help="print a run's log")
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")

    editor = sub.add_parser("editor", help="open the queue editor")
    editor.add_argument("name", metavar="NAME", nargs="?")
    editor.add_argument("--resource", "-r", default="local-process", help="resource of a new queue")
    sweep = _sweep_parser(sub)
    compare = sub.add_parser(
        "compare", help="any runs side by side, live: state, parameters, recorded values, duration, a plot"
    )
    compare.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    compare.add_argument(
        "--sort", metavar="[-]NAME", help="sort by a recorded value or parameter; -NAME: highest first"
    )
    by_name: dict[str, argparse.ArgumentParser] = {
        "queue create": create,
        "submit": submit,
        "agent start": start,
        "runs": runs,
        "logs": logs,
        "editor": editor,
        "sweep": sweep,
        "compare": compare,
    }
    # The same parser as `launch-jupyter schedule`.
    from ._schedule_commands import add_schedule_parser

    by_name.update(add_schedule_parser(sub, _Parser))
    return parser, by_name


def _sweep_parser(sub) -> _Parser:
    from .flags import add_sweep_flags, add_table_flags  # the same flags as `launch-jupyter sweep`

    sweep = sub.add_parser(
        "sweep",
        help="sweep this notebook over parameter values (-p lr=0.1,0.01); "
        "sweep show ID: the live comparison; sweep cancel ID",
    )
    sweep.add_argument("action", nargs="?", choices=("show", "cancel"), metavar="show|cancel")
    sweep.add_argument("sweep_id", nargs="?", metavar="ID")
    sweep.add_argument("--notebook", metavar="PATH", help="sweep this notebook instead of the current one")
    add_sweep_flags(sweep)
    add_table_flags(sweep)
    return sweep


def _join_sort_values(argv: list[str]) -> list[str]:
    from .flags import join_sort_values  # `--sort -accuracy`, as in `launch-jupyter sweep show`

    return join_sort_values(argv) if "--sort" in argv else argv


def _display(obj) -> None:
    from IPython.display import display

    display(obj)


@magics_class
class LaunchMagics(Magics):
    """``%launch``: queues, submit, the in-kernel agent and the run board. ``%launch -h`` for help."""

    default_queue = Unicode("", help="queue used by %launch submit when -q is not given").tag(config=True)
    entity = Unicode("", help="entity (user or team) owning new queues").tag(config=True)
    store = Unicode("", help="store URL, e.g. sqlite:///path/launch.db or postgresql://...").tag(config=True)
    config_path = Unicode("", help="path of launch-config.yaml").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._parser: _Parser | None = None
        self._subparsers: dict[str, argparse.ArgumentParser] = {}
        self._settings_pushed = False
        # Settings given in the IPython config reach the API on first use (keeps loading cheap).

    @observe("default_queue", "entity", "store", "config_path")
    def _setting_changed(self, change) -> None:
        self._push_settings()

    def _push_settings(self) -> None:
        from . import api

        api.configure(
            store_url=self.store, entity=self.entity, config_path=self.config_path, default_queue=self.default_queue
        )
        self._settings_pushed = True

    @property
    def parser(self) -> _Parser:
        if self._parser is None:
            self._parser, self._subparsers = _build_parser()
        return self._parser

    @line_cell_magic
    def launch(self, line: str, cell: str | None = None):
        """Queues, submit, agent, runs, cancel, logs, editor. Run ``%launch`` alone for help."""
        if not line.strip():
            self.parser.print_help()
            return None
        try:
            args = self.parser.parse_args(_join_sort_values(shlex.split(line)))
        except ValueError as err:  # unbalanced quotes
            raise UsageError(f"{self.parser.format_usage().rstrip()}\n%launch: error: {err}") from None
        except _HelpShown:
            return None
        from .core.inside import inside_run

        here = inside_run()
        if here is not None:
            # The notebook's own %launch cells run again inside its run: there they launch nothing.
            magic = "%%launch" if cell is not None else "%launch"
            print(f'[launch] {here.describe()}: "{magic} {line.strip()}" skipped')
            return None
        if not self._settings_pushed:
            self._push_settings()
        handler = getattr(self, f"_cmd_{args.command}")
        if cell is not None and not (args.command == "queue" and args.action in ("create", "edit")):
            raise UsageError("only %%launch queue create and %%launch queue edit take a cell body (the YAML config)")
        from .core.errors import LaunchError

        try:
            return handler(args, cell)
        except LaunchError as err:
            raise LaunchMagicError(str(err)) from None

    # ---------------------------------------------------------------- queue

    def _cmd_queue(self, args, cell: str | None):
        from . import api

        if args.action is None:
            raise UsageError(f"%launch queue needs an action: {', '.join(QUEUE_SUBCOMMANDS)}")
        if args.action == "create":
            self._create_queue(args, cell)
        elif args.action == "list":
            self._print_queues(api.list_queues())
        elif args.action == "show":
            self._print_queue(api.get_queue(args.name, entity=args.entity))
        elif args.action == "edit":
            if cell is not None:
                queue = api.update_queue(args.name, entity=args.entity, config=cell)
                print(f"updated queue {queue.path}")
            else:
                from .widgets import QueueEditor

                _display(QueueEditor(args.name, entity=args.entity))
        elif args.action == "delete":
            queue = api.get_queue(args.name, entity=args.entity)
            api.delete_queue(queue.name, entity=queue.entity)
            print(f"deleted queue {queue.path}")

    @staticmethod
    def _create_queue(args, cell: str | None) -> None:
        from . import api
        from .core.errors import QueueExistsError

        try:
            queue = api.create_queue(
                args.name,
                args.resource,
                entity=args.entity,
                config=cell,
                prioritization=args.prioritization,
                template_vars=args.template_var,
                exist_ok=args.exist_ok,
            )
        except QueueExistsError as err:
            form = "%%launch" if cell is not None else "%launch"
            raise LaunchMagicError(
                f"queue {err.path} already exists with {err.difference}: add --exist-ok to this "
                f"{form} queue create line to update it to this config, or %launch queue delete "
                f"{err.path} first"
            ) from None
        print(f"{queue.outcome or 'created'} queue {queue.path} ({queue.resource})")

    @staticmethod
    def _print_queues(queues: list) -> None:
        if not queues:
            print("no queues yet: create one with %launch queue create NAME --resource local-process")
            return
        rows = [("QUEUE", "RESOURCE", "PRIORITIZATION", "SHARED", "CREATED BY")]
        rows += [
            (q.path, q.resource, "yes" if q.prioritization else "no", "yes" if q.shared else "no", q.created_by)
            for q in queues
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())

    @staticmethod
    def _print_queue(queue) -> None:
        print(f"queue:          {queue.path}")
        print(f"resource:       {queue.resource}")
        print(f"prioritization: {'on' if queue.prioritization else 'off'}")
        print(f"created by:     {queue.created_by}")
        for var in queue.template_vars:
            bounds = "".join(f" {k}={v}" for k, v in (("min", var.minimum), ("max", var.maximum)) if v is not None)
            print(f"template var:   {var.name} ({var.type}, default {var.default!r}{bounds})")
        print("config:")
        print("  " + (queue.config_text or "").rstrip().replace("\n", "\n  "))

    # ---------------------------------------------------------------- submit

    def _cmd_submit(self, args, _cell):
        from . import api
        from .flags import submit_kwargs

        started = time.perf_counter()
        from .handshake import request_save

        call = api.dry_run if args.dry_run else api.submit
        result = call(
            args.notebook,
            args.queue,
            **submit_kwargs(args),
            user_ns=self.shell.user_ns if self.shell is not None else None,
            save=request_save,  # JupyterLab's extension saves the notebook and says when it is written
        )
        if isinstance(result, api.DryRun):
            print(str(result).rstrip())  # the request, and its price as # comments
            return None
        took = time.perf_counter() - started
        run = result.run
        print(f"submitted run {run.id} to {run.entity}/{run.queue_name} ({took:.2f} s)")
        if run.message:
            print(run.message)
        if self.shell is not None:
            self.shell.user_ns["_launch_run"] = result  # like _exit_code after !cmd: the last run's handle
        from .widgets import RunStatus

        _display(RunStatus(run.id))
        return None

    # ---------------------------------------------------------------- agent

    def _cmd_agent(self, args, _cell):
        from . import api

        if args.action is None:
            raise UsageError(f"%launch agent needs an action: {', '.join(AGENT_SUBCOMMANDS)}")
        if args.action == "start":
            before = api.agent_status()
            agent = api.start_agent(args.queue, max_jobs=args.max_jobs)
            status = agent.status()
            limit = "no limit" if status["max_jobs"] == -1 else status["max_jobs"]
            already = before is not None and before["agent_id"] == status["agent_id"]
            print(
                f"agent {status['agent_id']} {'already ' if already else ''}serving "
                f"{', '.join(status['queues'])} (max_jobs {limit})"
            )
        elif args.action == "stop":
            was = api.agent_status()
            api.stop_agent()
            print("agent stopped" if was else "no agent was running in this kernel")
        else:
            if api.agent_status() is None:
                print("no agent runs in this kernel: start one with %launch agent start")
            from .widgets import AgentPanel

            _display(AgentPanel())

    # ---------------------------------------------------------------- runs, cancel, logs, editor

    def _cmd_runs(self, args, _cell):
        from .widgets import RunBoard

        _display(RunBoard(args.queue, limit=args.limit))

    def _cmd_cancel(self, args, _cell):
        from . import api

        run = api.cancel(args.run_id)
        what = "cancelled" if run.state.is_terminal else "cancel requested"
        print(f"run {run.id}: {what}")

    def _cmd_logs(self, args, _cell):
        from . import api

        for line in api.logs(args.run_id, follow=args.follow):
            print(line.rstrip("\n"))

    def _cmd_editor(self, args, _cell):
        from .widgets import QueueEditor

        _display(QueueEditor(args.name, resource=args.resource))

    def _cmd_schedule(self, args, _cell):
        from ._schedule_commands import run_schedule_command

        run_schedule_command(args)

    # ---------------------------------------------------------------- sweeps

    def _cmd_compare(self, args, _cell):
        from . import api
        from .widgets.sweep_board import SweepBoard

        api.compare(args.run_ids)  # an unknown run id is one line here, not a broken widget
        _display(SweepBoard(run_ids=list(args.run_ids), sort=args.sort or ""))

    def _cmd_sweep(self, args, _cell):
        from . import api

        if args.action is not None:
            if not args.sweep_id:
                raise UsageError(f"%launch sweep {args.action} needs the sweep's id")
            if args.action == "cancel":
                from .flags import cancelled_sweep_line

                print(cancelled_sweep_line(api.cancel_sweep(args.sweep_id)))
                return None
            from .widgets.sweep_board import SweepBoard

            _display(SweepBoard(args.sweep_id, sort=args.sort or ""))
            return None
        if args.sweep_id:
            raise UsageError(f"%launch sweep: unexpected argument {args.sweep_id!r}")
        from .flags import sweep_kwargs
        from .handshake import request_save

        started = time.perf_counter()
        handle = api.sweep(
            args.notebook,
            args.queue,
            **sweep_kwargs(args),
            user_ns=self.shell.user_ns if self.shell is not None else None,
            save=request_save,
        )
        s = handle.sweep
        print(
            f"queued sweep {s['id']} ({s['total']} runs) on {s['entity']}/{s['queue_name']} "
            f"({time.perf_counter() - started:.2f} s); %launch sweep show {s['id']}"
        )
        if self.shell is not None:
            self.shell.user_ns["_launch_sweep"] = handle  # like _launch_run: the last sweep's handle
        return None

    # ---------------------------------------------------------------- completion

    def complete(self, line: str) -> list[str]:
        """Completions for the last word of a ``%launch`` line: subcommands, flags, queue names."""
        words = line.split()
        if line.endswith((" ", "\t")) or not words:
            words.append("")
        current, before = words[-1], words[1:-1]
        return sorted(c for c in self._candidates(before) if c.startswith(current))

    def _candidates(self, before: list[str]) -> Iterable[str]:
        if not before:
            return SUBCOMMANDS
        command, rest = before[0], before[1:]
        if rest and rest[-1] in ("-q", "--queue"):
            return _queue_names()
        if rest and rest[-1] in ("-r", "--resource"):
            from . import api

            return api.known_resources()
        if command == "queue":
            if not rest:
                return QUEUE_SUBCOMMANDS
            if rest[0] in ("show", "edit", "delete") and len(rest) == 1:
                return _queue_names()
        if command == "agent" and not rest:
            return AGENT_SUBCOMMANDS
        if command == "editor" and not rest:
            return _queue_names()
        if command == "schedule" and not rest:
            from ._schedule_commands import ACTIONS

            return ACTIONS
        return self._flags(command, rest[:1])

    def _flags(self, command: str, action: list[str]) -> list[str]:
        # The parser knows every flag: ask it rather than repeating the lists here.
        _ = self.parser  # builds the subcommand parsers
        sub = self._subparsers.get(" ".join([command, *action])) or self._subparsers.get(command)
        if sub is None:
            return []
        return [opt for a in sub._actions for opt in a.option_strings if opt.startswith("--") and opt != "--help"]


def _queue_names() -> list[str]:
    from . import api

    try:
        queues = api.list_queues()
    except Exception:  # completion must never raise (a missing store just completes nothing)
        return []
    return [q.name for q in queues] + [q.path for q in queues if q.shared]


def _matcher(magics: LaunchMagics) -> Callable:
    """An IPython completion matcher for ``%launch`` lines; it alone answers on those lines."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()
    def launch_matcher(context) -> dict:
        line = context.line_with_cursor
        if not line.lstrip().startswith(("%launch", "%%launch")):
            return {"completions": []}
        found = magics.complete(line.lstrip())
        # Suppress Python keywords and names: nothing else makes sense after %launch.
        return {"completions": [SimpleCompletion(text=c, type="launch") for c in found], "suppress": bool(found)}

    return launch_matcher


def load_ipython_extension(ipython) -> None:
    """Register ``%launch`` / ``%%launch`` and their tab completion."""
    magics = LaunchMagics(ipython)
    ipython.register_magics(magics)
    completer = getattr(ipython, "Completer", None)
    if completer is not None:
        _remove_matchers(completer)  # %reload_ext must not answer twice
        completer.custom_matchers.append(_matcher(magics))


def _remove_matchers(completer) -> None:
    completer.custom_matchers[:] = [
        m for m in completer.custom_matchers if getattr(m, "__name__", "") != "launch_matcher"
    ]


def unload_ipython_extension(ipython) -> None:
    """Remove the completion; the in-kernel agent keeps running until ``%launch agent stop``."""
    completer = getattr(ipython, "Completer", None)
    if completer is not None:
        _remove_matchers(completer)
