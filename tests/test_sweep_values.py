"""Sweep values as a user writes them (-p lr=0.1,0.01, range, distributions), read with ast, and
the points of a grid or of a seeded random draw."""

from __future__ import annotations

import pytest

from launch_jupyter.core.errors import ParameterError
from launch_jupyter.sweeps import Distribution, parse_space, parse_values, points, sort_rows


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("0.1,0.01,0.001", [0.1, 0.01, 0.001]),
        ("2,4", [2, 4]),
        ("[1, 2]", [1, 2]),
        ("range(1,6)", [1, 2, 3, 4, 5]),
        ("range(0, 10, 5)", [0, 5]),
        ("adam,sgd", ["adam", "sgd"]),
        ("'a b',\"c\"", ["a b", "c"]),
        ("True,False", [True, False]),
        ("7", [7]),
        ("big model, small model", ["big model", "small model"]),
    ],
)
def test_values_as_written(text, values):
    assert parse_values("p", text) == values


def test_values_given_from_python_are_taken_as_they_are():
    assert parse_values("p", [0.1, 0.2]) == [0.1, 0.2]
    assert parse_values("p", range(3)) == [0, 1, 2]
    assert parse_values("p", 5) == [5]


@pytest.mark.parametrize(
    ("text", "kind", "args"),
    [
        ("uniform(0.1, 1)", "uniform", (0.1, 1.0)),
        ("loguniform(1e-4,1e-1)", "loguniform", (1e-4, 1e-1)),
        ("choice(adam, 'sgd', 3)", "choice", ("adam", "sgd", 3)),
    ],
)
def test_distributions(text, kind, args):
    assert parse_values("lr", text) == Distribution(kind, args)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[]", "empty"),
        ("", "empty"),
        ("range(1.5, 3)", "whole numbers"),
        ("uniform(1)", "two numbers"),
        ("uniform(2, 1)", "low bound first"),
        ("loguniform(0, 1)", "above 0"),
        ("choice()", "no values"),
        ("open('x')", "unknown function open"),
        ("__import__('os').system('true')", "__import__"),
        ("1 + 2, 3", "is not a value"),
    ],
)
def test_bad_values_are_one_line_naming_the_flag(text, words):
    with pytest.raises(ParameterError) as caught:
        parse_values("lr", text)
    message = str(caught.value)
    assert message.startswith("-p lr") and words in message and "\n" not in message


def test_grid_is_every_combination_in_order():
    space = parse_space({"lr": "0.1,0.01", "layers": "2,4"})
    assert points(space) == [
        {"lr": 0.1, "layers": 2},
        {"lr": 0.1, "layers": 4},
        {"lr": 0.01, "layers": 2},
        {"lr": 0.01, "layers": 4},
    ]


def test_grid_refuses_a_distribution_and_too_many_points():
    with pytest.raises(ParameterError, match="--random N"):
        points(parse_space({"lr": "uniform(0.1, 1)"}))
    with pytest.raises(ParameterError, match="1001 points, more than the maximum of 1000"):
        points(parse_space({"a": "range(1001)"}))
    assert len(points(parse_space({"a": "range(1001)"}), max_points=2000)) == 1001
    with pytest.raises(ParameterError, match="at least one -p"):
        parse_space({})


def test_random_with_a_seed_is_reproducible():
    space = parse_space({"lr": "loguniform(1e-4, 1e-1)", "opt": "adam,sgd", "layers": "choice(1, 2, 3)"})
    first = points(space, random_count=20, seed=7)
    assert first == points(space, random_count=20, seed=7)
    assert first != points(space, random_count=20, seed=8)
    assert all(1e-4 <= p["lr"] <= 1e-1 and p["opt"] in ("adam", "sgd") and p["layers"] in (1, 2, 3) for p in first)
    with pytest.raises(ParameterError, match="--random: the number of points must be a whole number above 0"):
        points(space, random_count=0)
    with pytest.raises(ParameterError, match="--random has 5000 points"):
        points(space, random_count=5000)


def test_sorting_rows_puts_rows_without_the_value_last():
    rows = [
        {"id": i, "values": v, "parameters": {}} for i, v in enumerate([{"acc": 0.5}, {}, {"acc": 0.9}, {"acc": 0.7}])
    ]
    assert [r["id"] for r in sort_rows(rows, "-acc")] == [2, 3, 0, 1]
    assert [r["id"] for r in sort_rows(rows, "acc")] == [0, 3, 2, 1]
