"""What a run will cost: the estimate a runner makes from a run's config and a price table, a queue's
budget, and the machine hours a run recorded when it finished. Pure: no I/O, no SDK.

A price is never made up. A machine or accelerator the table does not list makes the whole hourly
price unknown (the estimate says which item and why); a budget cannot be checked against an unknown
price, so a queue with a budget refuses such a run and says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError
from .model import Problem

# The queue-config sections the agent owns: the runner never sees them (``runner_config``).
AGENT_SECTIONS = ("builder", "budget")
BUDGET_KEYS = ("max_hourly_cost", "max_run_cost")


def runner_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's config without the sections the agent owns (``builder:``, ``budget:``)."""
    return {k: v for k, v in config.items() if k not in AGENT_SECTIONS}


@dataclass
class Line:
    """One priced item of a run: a pool's machines or its accelerators, times its replicas."""

    what: str  # "pool 0: n1-standard-4" / "pool 0: 2 × NVIDIA_TESLA_T4"
    count: int  # machines (replicas) or accelerators × replicas
    unit_price: float | None  # per hour, one machine or one accelerator; None: not in the table
    why_unknown: str = ""

    @property
    def hourly(self) -> float | None:
        return None if self.unit_price is None else self.unit_price * self.count


@dataclass
class Estimate:
    """The hourly price of a run's machines and the worst case for its timeout."""

    resource: str
    region: str
    lines: list[Line]
    machines: int  # replicas over all pools: what machine hours count
    timeout_s: float | None  # the run's own timeout; None: none set
    default_timeout_s: float | None = None  # what the target stops a job at when none is set
    spot: bool = False
    currency: str = "USD"
    source: str = ""  # the price table's source and date, shown with every figure
    notes: list[str] = field(default_factory=list)

    @property
    def hourly(self) -> float | None:
        """The price of one hour of all the run's machines; None when any item has no price."""
        if any(line.unit_price is None for line in self.lines):
            return None
        return sum(line.hourly or 0.0 for line in self.lines)

    @property
    def unknown(self) -> list[Line]:
        return [line for line in self.lines if line.unit_price is None]

    @property
    def limit_s(self) -> float | None:
        """How long the run may bill at most: its timeout, else the target's default stop."""
        return self.timeout_s if self.timeout_s is not None else self.default_timeout_s

    @property
    def worst_case(self) -> float | None:
        hourly = self.hourly
        if hourly is None or self.limit_s is None:
            return None
        return hourly * self.limit_s / 3600.0

    def to_dict(self) -> dict[str, Any]:
        """Every field (the lines as dicts), with the hourly price and the worst case."""
        return {**asdict(self), "hourly": _round(self.hourly), "worst_case": _round(self.worst_case)}

    def record(self) -> dict[str, Any]:
        """What a run keeps from its estimate at submit (``Run.cost``); ``finish`` adds the hours."""
        return {
            "hourly": _round(self.hourly),
            "machines": self.machines,
            "currency": self.currency,
            "region": self.region,
            "spot": self.spot,
            "source": self.source,
        }

    def lines_text(self) -> list[str]:
        """The estimate for people, one line each (the dry run, ``launch-jupyter estimate``)."""
        kind = "Spot" if self.spot else "on-demand"
        out = []
        for line in self.lines:
            if line.unit_price is None:
                out.append(f"  {line.what} × {line.count}: unknown price ({line.why_unknown})")
            else:
                out.append(
                    f"  {line.what} × {line.count}: {money(line.unit_price, self.currency, unit=True)}/h each, "
                    f"{money(line.hourly, self.currency)}/h"
                )
        hourly = self.hourly
        if hourly is None:
            out.append(f"hourly ({kind}, {self.region}): unknown price — never a guessed one")
        else:
            out.append(
                f"hourly ({kind}, {self.region}): {money(hourly, self.currency)}/h for {self.machines} machine(s)"
            )
        if self.timeout_s is None:
            if self.default_timeout_s is not None:
                out.append(
                    f"no run.timeout: the target stops a job after {hours(self.default_timeout_s)}; "
                    f"worst case {money(self.worst_case, self.currency)}"
                    if self.worst_case is not None
                    else f"no run.timeout: the target stops a job after {hours(self.default_timeout_s)}"
                )
            else:
                out.append("no run.timeout: no worst case (the run may bill until it ends)")
        elif self.worst_case is not None:
            out.append(f"worst case for run.timeout {hours(self.timeout_s)}: {money(self.worst_case, self.currency)}")
        out.extend(self.notes)
        if self.source:
            out.append(f"prices: {self.source}")
        return out

    def summary(self) -> str:
        """One line: the hourly price and the worst case (the Launch dialog's price line)."""
        kind = "Spot" if self.spot else "on-demand"
        hourly = self.hourly
        if hourly is None:
            items = "; ".join(x.why_unknown for x in self.unknown)
            return f"unknown price ({items})"
        text = f"{money(hourly, self.currency)}/h ({kind}, {self.region})"
        worst = self.worst_case
        if worst is not None and self.timeout_s is not None:
            text += f" · worst case {money(worst, self.currency)} for run.timeout {hours(self.timeout_s)}"
        elif worst is not None:
            text += f" · no run.timeout: worst case {money(worst, self.currency)} ({hours(self.limit_s or 0)})"
        return text

    def __str__(self) -> str:
        return "\n".join(self.lines_text())


def money(value: float | None, currency: str = "USD", *, unit: bool = False) -> str:
    """An amount for people: cents from a dollar up, four places below it and for a unit price."""
    if value is None:
        return "unknown"
    sign = "$" if currency == "USD" else f"{currency} "
    return f"{sign}{value:,.4f}" if unit or value < 1 else f"{sign}{value:,.2f}"


def hours(seconds: float) -> str:
    h = seconds / 3600.0
    if h >= 48 and math.isclose(h % 24, 0, abs_tol=1e-9):
        return f"{int(h // 24)} days"
    return f"{h:g} h"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# ---------------------------------------------------------------------------------------- budgets


def budget_problems(budget: Any) -> list[Problem]:
    """Problems of a queue's ``budget:`` section (key names, positive amounts)."""
    if budget is None:
        return []
    if not isinstance(budget, dict):
        return [Problem("budget", "must be a mapping with max_hourly_cost and/or max_run_cost (USD)")]
    from .keys import did_you_mean, kind_of

    problems = []
    for key, value in budget.items():
        if key not in BUDGET_KEYS:
            problems.append(Problem(f"budget.{key}", "is not a budget key" + did_you_mean(str(key), BUDGET_KEYS)))
        elif (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value)
        ):
            problems.append(
                Problem(f"budget.{key}", f"must be a positive amount in USD, not {kind_of(value)} ({value!r})")
            )
    return problems


def check_budget(estimate: Estimate | None, budget: Mapping[str, Any] | None) -> None:
    """Refuse a run over its queue's budget, with the figures (ConfigError naming the budget key)."""
    if not budget:
        return
    if estimate is None:
        raise ConfigError(
            "this queue has a budget, but its resource has no price table, so the budget cannot be "
            "checked; remove budget: from the queue",
            path="budget",
        )
    hourly = estimate.hourly
    if hourly is None:
        items = "; ".join(f"{x.what}: {x.why_unknown}" for x in estimate.unknown)
        raise ConfigError(
            f"cannot be checked: the run's price is unknown ({items}); refresh the price table "
            "(launch-jupyter prices refresh) or remove the budget",
            path="budget." + next(k for k in BUDGET_KEYS if k in budget),
        )
    cur = estimate.currency
    max_hourly = budget.get("max_hourly_cost")
    if max_hourly is not None and hourly > float(max_hourly) + 1e-9:
        raise ConfigError(
            f"this run costs {money(hourly, cur)}/h ({_items(estimate)}), over the queue's "
            f"max_hourly_cost of {money(float(max_hourly), cur)}/h; ask for fewer or smaller machines "
            "(--resource-arg spec.worker_pool_specs[0].machine_spec.machine_type=…) or use another queue",
            path="budget.max_hourly_cost",
        )
    max_run = budget.get("max_run_cost")
    if max_run is not None:
        worst = estimate.worst_case
        if worst is None:
            raise ConfigError(
                "cannot be checked: the run has no timeout and its target sets none; set run.timeout",
                path="budget.max_run_cost",
            )
        if worst > float(max_run) + 1e-9:
            limit = estimate.limit_s or 0.0
            why = (
                f"for run.timeout {hours(limit)}"
                if estimate.timeout_s is not None
                else f"with no run.timeout (the target stops a job after {hours(limit)})"
            )
            fits = float(max_run) / hourly * 3600.0 if hourly > 0 else None
            hint = (
                f"; set run.timeout to at most {int(fits)} s (--resource-arg run.timeout={int(fits)})" if fits else ""
            )
            raise ConfigError(
                f"this run may cost up to {money(worst, cur)} ({money(hourly, cur)}/h {why}), over the "
                f"queue's max_run_cost of {money(float(max_run), cur)}{hint}",
                path="budget.max_run_cost",
            )


def _items(estimate: Estimate) -> str:
    return ", ".join(
        f"{x.what} × {x.count} at {money(x.unit_price, estimate.currency, unit=True)}/h" for x in estimate.lines
    )


# ------------------------------------------------------------------------------ recorded at finish


def describe_record(cost: Mapping[str, Any] | None) -> str:
    """A run's cost record for people: its price and, once it ended, its machine hours and estimate."""
    if not cost:
        return "-"
    cur = str(cost.get("currency") or "USD")
    hourly = cost.get("hourly")
    price = f"{money(hourly, cur)}/h" if hourly is not None else "unknown price"
    text = f"{price} for {cost.get('machines', 0)} machine(s) in {cost.get('region', '?')}"
    if "machine_hours" in cost:
        est = cost.get("estimated")
        text += f"; {cost['machine_hours']:.2f} machine hours, estimated {money(est, cur) if est is not None else 'unknown'}"
        if cost.get("note"):
            text += f" ({cost['note']})"
    return text


# Vertex AI pricing: "if training fails for any reason other than a user-initiated cancellation, you
# are not billed for the time. You are charged for training time if you cancel the operation."
# (https://cloud.google.com/vertex-ai/pricing). Other targets bill every hour a machine ran.
NOT_BILLED_WHEN_FAILED = frozenset({"vertex"})


def sum_costs(runs: Iterable[Any]) -> list[dict[str, Any]]:
    """Runs' recorded cost summed by (queue, author): runs, machine hours, estimated cost, and how many
    had no price; the dearest first."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        key = (f"{run.entity}/{run.queue_name}", run.author)
        g = groups.setdefault(
            key, {"queue": key[0], "author": key[1], "runs": 0, "machine_hours": 0.0, "estimated": 0.0, "unpriced": 0}
        )
        g["runs"] += 1
        cost = run.cost or {}
        g["machine_hours"] += float(cost.get("machine_hours") or 0.0)
        if cost.get("estimated") is None:
            g["unpriced"] += 1
        else:
            g["estimated"] += float(cost["estimated"])
    return sorted(groups.values(), key=lambda g: (-g["estimated"], g["queue"], g["author"]))


def finished_cost(
    cost: Mapping[str, Any] | None, resource: str, state: str, running_at: float | None, finished_at: float
) -> dict[str, Any] | None:
    """The run's cost record at its end: machine hours from ``running`` to the end, times its price."""
    if cost is None:
        return None
    out = dict(cost)
    machines = int(out.get("machines") or 0)
    ran_s = max(0.0, finished_at - running_at) if running_at is not None else 0.0
    out["machine_hours"] = round(machines * ran_s / 3600.0, 6)
    hourly = out.get("hourly")
    if hourly is None:
        out["estimated"] = None
    elif state == "failed" and resource in NOT_BILLED_WHEN_FAILED:
        out["estimated"] = 0.0
        out["note"] = "a failed Vertex AI job is not billed (Vertex AI pricing)"
    else:
        out["estimated"] = round(float(hourly) * ran_s / 3600.0, 6)
    return out
