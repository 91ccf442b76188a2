"""``estimate``, ``prices show|refresh`` and ``runs --cost``: what a run will cost, the price table it
is priced with, and what finished runs cost, by queue and author. Each calls ``api.py``."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def add_cost_parsers(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    from .flags import add_override_flags

    estimate = sub.add_parser(
        "estimate", help="what a run of a notebook on a queue costs per hour and at worst (nothing is queued)"
    )
    estimate.add_argument("notebook")
    estimate.add_argument("-q", "--queue", required=True)
    add_override_flags(estimate)
    estimate.add_argument("--json", action="store_true")

    prices = sub.add_parser("prices", help="the Vertex AI price table runs are estimated with")
    psub = prices.add_subparsers(dest="prices_command", required=True, parser_class=parser_class)
    show = psub.add_parser("show", help="the table's source, date and prices for a region")
    show.add_argument("--region", default="us-central1")
    show.add_argument("--json", action="store_true")
    refresh = psub.add_parser(
        "refresh", help="read current prices from the Cloud Billing Catalog API (needs an API key or credentials)"
    )
    refresh.add_argument(
        "--region", action="append", default=[], help="a region to price (repeat; default us-central1)"
    )
    refresh.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="the environment variable holding a Cloud Billing API key (default: credentials of the environment)",
    )
    refresh.add_argument("--endpoint", help=argparse.SUPPRESS)  # a test's fake catalog
    refresh.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the catalog")


def run_estimate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import api
    from .core.errors import NotebookError
    from .core.overrides import assignments_to_dict

    if not Path(args.notebook).is_file():
        raise NotebookError(f"no notebook {args.notebook}")
    with api.Launcher() as client:
        template_values = assignments_to_dict(args.set_var, "--set-var")
        resource_args = assignments_to_dict(args.resource_arg, "--resource-arg")
        queue = client.get_queue(args.queue)
        estimate = client.estimate(args.queue, template_values=template_values, resource_args=resource_args)
        over = client.budget_verdict(args.queue, template_values=template_values, resource_args=resource_args)
    budget = (queue.config or {}).get("budget") or {}
    if args.json:
        print(
            json.dumps(
                {
                    "queue": queue.path,
                    "estimate": estimate.to_dict() if estimate else None,
                    "budget": budget,
                    "over_budget": over,
                },
                indent=2,
            )
        )
        return 0
    print(f"{args.notebook} on {queue.path} ({queue.resource}):")
    if estimate is None:
        print(f"  no price table for {queue.resource} runs: nothing to estimate")
        return 0
    for line in estimate.lines_text():
        print(f"  {line}")
    if budget:
        print(
            f"  budget: {', '.join(f'{k} {v}' for k, v in budget.items())}: " + (f"over — {over}" if over else "within")
        )
    return 0


def run_prices(args: argparse.Namespace) -> int:
    from . import api
    from .runners.vertex._pricing import source_line

    if args.prices_command == "show":
        with api.Launcher() as client:
            table = client.price_table()
        region = (table.get("regions") or {}).get(args.region)
        if args.json:
            print(
                json.dumps(
                    {
                        "source": table.get("source"),
                        "as_of": table.get("as_of"),
                        "region": args.region,
                        "prices": region,
                    },
                    indent=2,
                )
            )
            return 0
        print(f"prices: {source_line(table)}")
        if region is None:
            print(
                f"no prices for {args.region}; the table has: {', '.join(sorted(table.get('regions') or {})) or 'none'}"
            )
            return 0
        for group in ("machines", "accelerators"):
            print(f"{group} in {args.region} (USD per hour, on-demand / Spot):")
            for name, p in sorted((region.get(group) or {}).items()):
                od, spot = p.get("on_demand"), p.get("spot")
                print(f"  {name:22} {'-' if od is None else f'{od:.4f}':>9} / {'-' if spot is None else f'{spot:.4f}'}")
        return 0
    return _refresh(args)


def _refresh(args: argparse.Namespace) -> int:
    from . import api
    from .core.errors import ConfigError

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"the environment variable {args.api_key_env} is not set", path="--api-key-env")
    regions = args.region or ["us-central1"]
    with api.Launcher() as client:
        done = client.refresh_prices(regions, api_key=api_key, endpoint=args.endpoint, timeout=args.timeout)
    if done["written"] is None:
        print(f"the catalog had no Compute Engine prices for {', '.join(regions)}; the price table is unchanged")
        return 1
    for region, (machines, accelerators) in done["regions"].items():
        print(f"{region}: {machines} machine types, {accelerators} accelerators")
    for region in done["missing"]:
        print(f"{region}: not in the catalog (estimates there say unknown price)")
    print(f"wrote {done['written']} (as of {done['as_of']})")
    return 0
