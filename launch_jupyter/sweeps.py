"""Sweeps: the values a ``-p`` flag may hold (lists, ``range``, distributions), the points of a grid
or a seeded random search over them, and the table that compares runs.

Values are read with ``ast`` (never ``eval``): ``0.1,0.01``, ``[1, 2]``, ``range(1,6)``,
``uniform(0.1, 1)``, ``loguniform(1e-4, 1e-1)``, ``choice("adam", "sgd")``; bare words are text
(``opt=adam,sgd``). Pure Python, no I/O.
"""

from __future__ import annotations

import ast
import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .core.errors import ParameterError

DEFAULT_MAX_POINTS = 1000
DISTRIBUTIONS = ("uniform", "loguniform", "choice")


@dataclass(frozen=True)
class Distribution:
    """A value drawn at random for each point of a ``--random`` sweep."""

    kind: str  # uniform | loguniform | choice
    args: tuple

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "uniform":
            return rng.uniform(*self.args)
        if self.kind == "loguniform":
            low, high = self.args
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        return rng.choice(self.args)

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(repr(a) for a in self.args)})"


Values = list | Distribution


def _literal(node: ast.AST, name: str) -> Any:
    if isinstance(node, ast.Name):  # a bare word: text (``opt=adam,sgd``); True/False/None are Constants
        return node.id
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise ParameterError(
            f"-p {name}: {ast.unparse(node)!r} is not a value (use numbers, text, "
            "lists, range(...), uniform(...), loguniform(...) or choice(...))"
        ) from None


def _call(node: ast.Call, name: str) -> Values:
    func = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
    if node.keywords:
        raise ParameterError(f"-p {name}: {func}(...) takes positional values only")
    args = tuple(_literal(a, name) for a in node.args)
    if func == "range":
        if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise ParameterError(f"-p {name}: range takes 1 to 3 whole numbers, e.g. range(1, 6)")
        return list(range(*args))
    if func in ("uniform", "loguniform"):
        if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ParameterError(f"-p {name}: {func} takes two numbers, e.g. {func}(0.001, 0.1)")
        low, high = float(args[0]), float(args[1])
        if not low < high:
            raise ParameterError(f"-p {name}: {func}({args[0]}, {args[1]}) needs the low bound first")
        if func == "loguniform" and low <= 0:
            raise ParameterError(f"-p {name}: loguniform needs bounds above 0, not {args[0]}")
        return Distribution(func, (low, high))
    if func == "choice":
        if not args:
            raise ParameterError(f"-p {name}: choice() has no values")
        return Distribution("choice", args)
    raise ParameterError(f"-p {name}: unknown function {func}(...); use range, uniform, loguniform or choice")


def parse_values(name: str, text: Any) -> Values:
    """The values one ``-p NAME=TEXT`` stands for: a list, or a Distribution for ``--random``.

    ``text`` that is not a string (from ``api.sweep(parameters={"lr": [0.1, 0.01]})``) is taken as is:
    a list or tuple is its values, a Distribution stays one, anything else is one value."""
    if isinstance(text, Distribution):
        return text
    values: list[Any] | Distribution
    if isinstance(text, (list, tuple, range)):
        values = list(text)
    elif not isinstance(text, str):
        values = [text]
    else:
        values = _parse_text(name, text)
        if isinstance(values, Distribution):
            return values
    if not values:
        raise ParameterError(f"-p {name}: the list of values is empty")
    return values


def _parse_text(name: str, text: str) -> Values:
    source = text.strip()
    if not source:
        raise ParameterError(f"-p {name}: the list of values is empty")
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError:
        # Words with spaces or symbols: comma-separated text, as a user would mean it.
        return [part.strip() for part in source.split(",") if part.strip()]
    if isinstance(tree, ast.Call):
        return _call(tree, name)
    if isinstance(tree, (ast.Tuple, ast.List)):
        return [_literal(element, name) for element in tree.elts]
    return [_literal(tree, name)]


def parse_space(parameters: Mapping[str, Any]) -> dict[str, Values]:
    """{name: values} for every ``-p`` of a sweep (see ``parse_values``)."""
    if not parameters:
        raise ParameterError("a sweep needs at least one -p NAME=VALUES")
    return {name: parse_values(name, text) for name, text in parameters.items()}


def describe_space(space: Mapping[str, Values]) -> dict[str, Any]:
    """The space as JSON for the sweep row: lists as lists, distributions as their text."""
    return {name: str(v) if isinstance(v, Distribution) else list(v) for name, v in space.items()}


def points(
    space: Mapping[str, Values],
    *,
    random_count: int | None = None,
    seed: int | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> list[dict[str, Any]]:
    """The points of a sweep: every combination (grid), or ``random_count`` draws with ``seed``.

    ParameterError for a distribution in a grid, a bad count, or more than ``max_points`` points."""
    if random_count is None:
        drawn = [name for name, v in space.items() if isinstance(v, Distribution)]
        if drawn:
            raise ParameterError(
                f"-p {drawn[0]}={space[drawn[0]]} is drawn at random: pass --random N "
                "(how many points to draw), or give a list of values for a grid"
            )
        total = math.prod(len(v) for v in space.values())  # type: ignore[arg-type,misc]  # no Distribution: see above
        _check_count(total, max_points, "the grid")
        names = list(space)
        return [dict(zip(names, combo)) for combo in itertools.product(*(space[n] for n in names))]  # type: ignore[arg-type]
    if isinstance(random_count, bool) or not isinstance(random_count, int) or random_count < 1:
        raise ParameterError(f"--random: the number of points must be a whole number above 0, not {random_count!r}")
    _check_count(random_count, max_points, "--random")
    rng = random.Random(seed)
    return [{name: _draw(values, rng) for name, values in space.items()} for _ in range(random_count)]


def _draw(values: Values, rng: random.Random) -> Any:
    return values.sample(rng) if isinstance(values, Distribution) else rng.choice(values)


def _check_count(total: int, max_points: int, what: str) -> None:
    if total > max_points:
        raise ParameterError(
            f"{what} has {total} points, more than the maximum of {max_points}; "
            "narrow it, or raise the maximum (max_points=..., --max-points N)"
        )


# ---------------------------------------------------------------- comparing runs


def table_rows(runs: Sequence[Any], records: Mapping[str, Sequence[Mapping]]) -> list[dict[str, Any]]:
    """One row per run: id, name, state, parameters, recorded values (name → value), errors, duration."""
    rows = []
    for run in runs:
        recorded = {r["name"]: r["value"] for r in records.get(run.id, ()) if r.get("error") is None}
        errors = {r["name"]: r["error"] for r in records.get(run.id, ()) if r.get("error") is not None}
        duration = (run.finished_at - run.started_at) if run.started_at and run.finished_at else None
        rows.append(
            {
                "id": run.id,
                "name": run.name,
                "state": str(run.state),
                "parameters": dict(run.parameters),
                "values": recorded,
                "errors": errors,
                "duration": duration,
                "message": run.message,
            }
        )
    return rows


def sort_rows(rows: list[dict[str, Any]], key: str | None) -> list[dict[str, Any]]:
    """Rows by a recorded value or parameter (``-accuracy``: highest first); rows without it last."""
    if not key:
        return rows
    descending = key.startswith("-")
    name = key.lstrip("+-")

    def value(row: dict) -> Any:
        found = row["values"].get(name, row["parameters"].get(name, row.get(name)))
        return found if isinstance(found, (int, float)) and not isinstance(found, bool) else None

    have = [r for r in rows if value(r) is not None]
    missing = [r for r in rows if value(r) is None]
    return sorted(have, key=value, reverse=descending) + missing


def columns(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(parameter names, recorded value names), each in first-seen order."""
    params: dict[str, None] = {}
    values: dict[str, None] = {}
    for row in rows:
        params.update(dict.fromkeys(row["parameters"]))
        values.update(dict.fromkeys(row["values"]))
    return list(params), list(values)


def best_row(rows: Sequence[Mapping[str, Any]], key: str | None) -> str | None:
    """The id of the best row by ``key`` (``-accuracy``: highest; ``loss``: lowest), or None."""
    if not key:
        return None
    ranked = sort_rows([dict(r) for r in rows], key)
    name = key.lstrip("+-")
    if ranked and isinstance(ranked[0]["values"].get(name, ranked[0]["parameters"].get(name)), (int, float)):
        return ranked[0]["id"]
    return None


def sweep_parameters(items: Sequence[str]) -> dict[str, str]:
    """{name: values text} from repeated ``-p NAME=VALUES`` (or ``-p NAME VALUES``); the last wins."""
    from .core.overrides import _split_parameter  # the one spelling of -p, shared with submit

    found: dict[str, str] = {}
    for item in items:
        key, value = _split_parameter(item)
        found[key] = value
    return found


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else repr(value)


def text_table(table: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a comparison for a terminal: the best row marked ``*``."""
    header = ["", "RUN", "STATE", *table["parameters"], *table["values"], "DURATION"]
    rows = []
    for row in table["rows"]:
        duration = f"{row['duration']:.0f}s" if row["duration"] is not None else "-"
        rows.append(
            [
                "*" if row["id"] == table.get("best") else "",
                row["id"],
                row["state"],
                *(_cell(row["parameters"].get(p)) for p in table["parameters"]),
                *(_cell(row["values"].get(v)) for v in table["values"]),
                duration,
            ]
        )
    return header, rows


def csv_text(table: Mapping[str, Any]) -> str:
    """The comparison as CSV: run, state, each parameter, each recorded value, duration (seconds)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", "state", *table["parameters"], *table["values"], "duration"])
    for row in table["rows"]:
        writer.writerow(
            [
                row["id"],
                row["state"],
                *(row["parameters"].get(p, "") for p in table["parameters"]),
                *(_csv_value(row["values"].get(v)) for v in table["values"]),
                "" if row["duration"] is None else f"{row['duration']:.3f}",
            ]
        )
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value)
    return value
