"""The flags the command line and the ``%launch`` magics share (``submit``, ``sweep``, the
comparison tables), and their translation into ``api`` keyword arguments: one definition for both
front ends, so a flag means the same in a shell and in a notebook."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def add_repeated(p: argparse.ArgumentParser, flag: str, metavar: str, help: str) -> None:
    """A flag given once per value (``--include a --include b``), collected into a list."""
    p.add_argument(flag, action="append", default=[], metavar=metavar, help=help)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """What every run a submit or a sweep queues takes the same way."""
    add_repeated(
        p, "--new-parameter", "NAME", "allow -p NAME although the notebook's parameters cell does not set NAME"
    )
    p.add_argument("--priority", choices=["critical", "high", "medium", "low"])
    add_override_flags(p)
    p.add_argument("--image", metavar="URI", help="run in this image instead of building one")
    add_repeated(p, "--include", "GLOB", "extra files to ship, relative to the notebook")


def add_override_flags(p: argparse.ArgumentParser) -> None:
    """``--set-var`` and ``--resource-arg``: what shapes a run's config (a submit's, an estimate's)."""
    add_repeated(p, "--set-var", "NAME=VALUE", "a value for one of the queue's template variables")
    add_repeated(
        p,
        "--resource-arg",
        "PATH=VALUE",
        "override for this run, e.g. spec.worker_pool_specs[0].machine_spec.machine_type=n1-highmem-8",
    )


def add_queue_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``queue create`` shares with ``%launch queue create`` (the config comes from a file
    there, from the cell here)."""
    p.add_argument("--entity", "-e", help="team or user that owns the queue (default: you; a team shares it)")
    p.add_argument("--prioritization", action="store_true", help="serve runs by priority, then FIFO")
    add_repeated(
        p, "--template-var", "NAME:TYPE:DEFAULT[:MIN:MAX]", "a template variable used as {{NAME}} in the config"
    )
    p.add_argument(
        "--exist-ok",
        action="store_true",
        help="if the queue exists with other settings, update it to these (re-runnable notebooks and scripts)",
    )


def _add_parameter_flag(p: argparse.ArgumentParser, metavar: str, help: str) -> None:
    """``-p/--parameter``, repeatable, each taking ``NAME=VALUE`` words or ``NAME VALUE``."""
    p.add_argument("-p", "--parameter", action="append", nargs="+", default=[], metavar=metavar, help=help)


def add_sweep_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``sweep`` shares with ``%launch sweep``."""
    p.add_argument("-q", "--queue")
    _add_parameter_flag(
        p,
        "NAME=VALUES",
        "values to sweep: -p lr=0.1,0.01, -p epochs=range(1,6), or with --random "
        "uniform(a,b), loguniform(a,b), choice(a,b,...)",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument("--grid", action="store_true", help="every combination of the values (the default)")
    how.add_argument("--random", type=int, metavar="N", help="N points drawn at random")
    p.add_argument("--seed", type=int, help="the random draw's seed (the same seed draws the same points)")
    p.add_argument("--max-parallel", type=int, metavar="K", help="at most K of the sweep's runs active at a time")
    p.add_argument("--max-points", type=int, metavar="N", help="refuse a sweep of more than N points (default 1000)")
    p.add_argument("--name", help="a name for the sweep (default: the notebook's name)")
    _add_run_flags(p)


def add_table_flags(p: argparse.ArgumentParser) -> None:
    """``--json``, ``--csv`` and ``--sort`` of the tables that compare runs."""
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true")
    out.add_argument("--csv", action="store_true")
    p.add_argument("--sort", metavar="[-]NAME", help="sort by a recorded value or parameter; -NAME: highest first")


def sweep_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Typed ``api.sweep`` keyword arguments from the sweep flags."""
    from .core.overrides import assignments_to_dict
    from .sweeps import sweep_parameters

    return {
        "parameters": sweep_parameters(parameter_items(args.parameter)),
        "random": args.random,
        "seed": args.seed,
        "max_parallel": args.max_parallel,
        "max_points": args.max_points,
        "name": args.name,
        "new_parameters": args.new_parameter,
        "priority": args.priority,
        "template_values": assignments_to_dict(args.set_var, "--set-var"),
        "resource_args": assignments_to_dict(args.resource_arg, "--resource-arg"),
        "image": args.image,
        "include": args.include,
    }


def join_sort_values(argv: Sequence[str]) -> list[str]:
    """``--sort -accuracy`` → ``--sort=-accuracy``: argparse would take ``-accuracy`` for a flag."""
    joined: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        if items[i] == "--sort" and i + 1 < len(items) and items[i + 1].startswith("-") and items[i + 1] != "--":
            joined.append(f"--sort={items[i + 1]}")
            i += 2
            continue
        joined.append(items[i])
        i += 1
    return joined


def add_submit_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``submit`` shares with ``%launch submit``."""
    _add_parameter_flag(
        p, "KEY=VALUE", "a notebook parameter: -p lr 0.1 or -p lr=0.1 (a name its parameters cell sets)"
    )
    _add_run_flags(p)
    p.add_argument("--name", help="a name for the run (default: the notebook's name)")
    p.add_argument("--dry-run", action="store_true", help="print the request that would be sent; queue nothing")
    p.add_argument(
        "--keep-outputs",
        action="store_true",
        help="ship the notebook with its saved outputs (by default they are stripped)",
    )
    add_repeated(
        p,
        "--allow-secret",
        "GLOB",
        "a file that may ship although its content looks like a credential (a false positive)",
    )


def submit_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Typed ``api.submit``/``api.dry_run`` keyword arguments from the shared submit flags
    (``--dry-run`` itself picks which of the two is called)."""
    from .core.overrides import assignments_to_dict, parse_parameters

    return {
        "parameters": parse_parameters(parameter_items(args.parameter)),
        "new_parameters": args.new_parameter,
        "priority": args.priority,
        "template_values": assignments_to_dict(args.set_var, "--set-var"),
        "resource_args": assignments_to_dict(args.resource_arg, "--resource-arg"),
        "image": args.image,
        "name": args.name,
        "include": args.include,
        "keep_outputs": args.keep_outputs,
        "allow_secrets": args.allow_secret,
    }


def parameter_items(groups: list[list[str]]) -> list[str]:
    """``-p lr 0.1`` → ``["lr 0.1"]``; ``-p a=1 b=2`` → ``["a=1", "b=2"]`` (each then checked)."""
    items = []
    for tokens in groups:
        if len(tokens) == 2 and "=" not in tokens[0]:
            items.append(" ".join(tokens))
        else:
            items.extend(tokens)
    return items


def cancelled_sweep_line(done: dict) -> str:
    """What both front ends print after cancelling a sweep."""
    return (
        f"sweep {done['id']}: {done['cancelled']} queued runs cancelled, {done['cancelling']} active runs asked to stop"
    )
