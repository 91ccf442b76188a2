"""``schedule create|list|show|pause|resume|delete``: one parser and one handler that both
``launch-jupyter schedule`` and ``%launch schedule`` use (each calls ``api.py``)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

ACTIONS = ("create", "list", "show", "pause", "resume", "delete")


def add_schedule_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> dict[str, argparse.ArgumentParser]:
    """Add ``schedule`` and its actions to a subparsers object; returns {"schedule create": parser, ...}."""
    from .flags import add_submit_flags

    schedule = sub.add_parser("schedule", help="run a notebook on a queue by a cron expression")
    ssub = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", required=True, parser_class=parser_class)
    create = ssub.add_parser("create", help="create a schedule (prints its next five fire times)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("notebook", metavar="NOTEBOOK")
    create.add_argument("-q", "--queue", required=True)
    create.add_argument("--cron", required=True, help="5 fields: minute hour day-of-month month day-of-week")
    create.add_argument("--timezone", help="IANA name, e.g. Europe/Berlin (default: this machine's)")
    create.add_argument(
        "--missed",
        choices=["once", "skip"],
        default="once",
        help="ticks that came while no agent ran: fire the latest once (default) or skip them",
    )
    create.add_argument(
        "--follow-file",
        action="store_true",
        help="package the notebook as it is at each tick (default: a snapshot made now)",
    )
    add_submit_flags(create)
    for option in ("--image", "--name", "--dry-run"):  # not for a schedule's runs
        _drop_option(create, option)
    create.set_defaults(image=None, dry_run=False)
    listing = ssub.add_parser("list", help="the schedules, with their next fire time")
    listing.add_argument("--json", action="store_true")
    parsers = {"schedule create": create, "schedule list": listing}
    for action, text in (
        ("show", "a schedule, its next fire times and its runs"),
        ("pause", "stop firing"),
        ("resume", "fire again from the next tick"),
        ("delete", "delete (its runs stay)"),
    ):
        p = ssub.add_parser(action, help=text)
        p.add_argument("name", metavar="NAME")
        if action == "show":
            p.add_argument("--json", action="store_true")
            p.add_argument("--limit", type=int, default=20, help="at most this many ticks (default 20)")
        parsers[f"schedule {action}"] = p
    return parsers


def _drop_option(parser: argparse.ArgumentParser, option: str) -> None:
    for action in list(parser._actions):
        if option in action.option_strings:
            parser._remove_action(action)
            for option in action.option_strings:
                parser._option_string_actions.pop(option, None)


def run_schedule_command(args: argparse.Namespace) -> int:
    """Do what ``args`` (from the parser above) asks and print the outcome."""
    from . import api

    cmd = args.schedule_command
    if cmd == "create":
        return _create(args)
    if cmd == "list":
        found = api.list_schedules()
        if args.json:
            print(json.dumps([_dict(s) for s in found], indent=2, default=str))
            return 0
        _table(
            [
                [
                    s.path,
                    s.queue_path,
                    s.cron,
                    s.timezone,
                    "paused" if s.paused else "active",
                    "-" if s.paused else _fmt(s, s.next_fire_at),
                    "follow file" if s.follow_file else "snapshot",
                ]
                for s in found
            ],
            ["SCHEDULE", "QUEUE", "CRON", "TIME ZONE", "STATE", "NEXT", "NOTEBOOK"],
        )
    elif cmd == "show":
        return _show(args)
    elif cmd == "pause":
        s = api.pause_schedule(args.name)
        print(f"paused schedule {s.path}")
    elif cmd == "resume":
        s = api.resume_schedule(args.name)
        print(f"resumed schedule {s.path}; next run {_fmt(s, s.next_fire_at)}")
    elif cmd == "delete":
        api.delete_schedule(args.name)
        print(f"deleted schedule {args.name} (its runs stay)")
    return 0


def _create(args: argparse.Namespace) -> int:
    from . import api
    from .flags import submit_kwargs

    kwargs = submit_kwargs(args)
    for key in ("image", "name", "dry_run"):
        kwargs.pop(key, None)
    s = api.create_schedule(
        args.name,
        args.notebook,
        args.queue,
        cron=args.cron,
        timezone=args.timezone,
        missed=args.missed,
        follow_file=args.follow_file,
        **kwargs,
    )
    how = "follows the file" if s.follow_file else f"snapshot {s.content_hash[:12] if s.content_hash else '-'}"
    print(f"created schedule {s.path} on {s.queue_path}: '{s.cron}' ({s.timezone}), {how}")
    print("next runs:")
    for when in s.next_fire_times(5):
        print(f"  {when.strftime('%Y-%m-%d %H:%M %Z')}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from . import api

    s = api.get_schedule(args.name)
    ticks = api.schedule_ticks(args.name, limit=args.limit)
    if args.json:
        print(
            json.dumps(
                {**_dict(s), "next_fire_times": [w.isoformat() for w in s.next_fire_times(5)], "ticks": ticks},
                indent=2,
                default=str,
            )
        )
        return 0
    for key, value in [
        ("schedule", s.path),
        ("queue", s.queue_path),
        ("cron", s.cron),
        ("time zone", s.timezone),
        ("state", "paused" if s.paused else "active"),
        ("missed ticks", s.missed),
        ("notebook", f"{s.notebook} ({'follows the file' if s.follow_file else 'snapshot'})"),
        ("parameters", json.dumps(s.parameters)),
    ]:
        print(f"{key + ':':15}{value}")
    if not s.paused:
        print("next runs:      " + ", ".join(w.strftime("%Y-%m-%d %H:%M %Z") for w in s.next_fire_times(5)))
    print("ticks:")
    if not ticks:
        print("  (none yet)")
    for t in ticks:
        print(
            f"  {_fmt(s, t['fire_time'])}  {t['state']:8}  {t['run_id'] or '-':12}  "
            f"{t['run_state'] or '-':10}  {t['message']}"
        )
    return 0


def _fmt(s: Any, t: float | None) -> str:
    from .schedules import describe_time

    return describe_time(s, t)


def _dict(s: Any) -> dict:
    from dataclasses import asdict

    return {
        **asdict(s),
        "schedule": s.path,
        "queue": s.queue_path,
        "next_fire_at_text": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.next_fire_at)),
    }


def _table(rows: list[list[str]], header: list[str]) -> None:
    from .cli import _table as table

    table(rows, header)
