"""Per-run overrides: --resource-arg assignments, -p parameters, and the merge over a queue config."""

from __future__ import annotations

import copy
import json

import pytest

from launch_jupyter.core.errors import ConfigError
from launch_jupyter.core.overrides import (
    assignments_to_dict,
    deep_merge,
    parse_assignment,
    parse_parameters,
    parse_value,
)
from launch_jupyter.core.queue_config import parse_config_text

QUEUE_CONFIG = parse_config_text(
    """
spec:
  worker_pool_specs:
    - machine_spec:
        machine_type: n1-standard-4
        accelerator_type: ACCELERATOR_TYPE_UNSPECIFIED
        accelerator_count: 0
      replica_count: 1
      container_spec:
        image_uri: ${image_uri}
        args: [--epochs, "1"]
  staging_bucket: gs://bucket
  labels: {team: ml}
run:
  restart_job_on_worker_restart: false
"""
)


# --- deep_merge ------------------------------------------------------------------------------


def test_mappings_merge_recursively_and_inputs_stay_unchanged():
    base = copy.deepcopy(QUEUE_CONFIG)
    override = {"spec": {"labels": {"owner": "alice"}}, "run": {"sync": False}}
    merged = deep_merge(base, override)
    assert merged["spec"]["labels"] == {"team": "ml", "owner": "alice"}
    assert merged["run"] == {"restart_job_on_worker_restart": False, "sync": False}
    assert merged["spec"]["worker_pool_specs"] == QUEUE_CONFIG["spec"]["worker_pool_specs"]
    assert base == QUEUE_CONFIG and override == {
        "spec": {"labels": {"owner": "alice"}},
        "run": {"sync": False},
    }
    merged["spec"]["worker_pool_specs"][0]["replica_count"] = 5
    assert base["spec"]["worker_pool_specs"][0]["replica_count"] == 1  # no shared objects


def test_a_list_is_replaced_by_an_override_list():
    merged = deep_merge(QUEUE_CONFIG, {"spec": {"worker_pool_specs": [{"machine_spec": {"machine_type": "x"}}]}})
    assert merged["spec"]["worker_pool_specs"] == [{"machine_spec": {"machine_type": "x"}}]


def test_a_scalar_replaces_and_none_sets_null():
    merged = deep_merge({"a": {"b": 1}, "c": 2}, {"a": 3, "c": None})
    assert merged == {"a": 3, "c": None}


def test_list_positions_merge_item_by_item():
    override = {
        "spec": {"worker_pool_specs": {0: {"machine_spec": {"machine_type": "a2-highgpu-1g", "accelerator_count": 1}}}}
    }
    merged = deep_merge(QUEUE_CONFIG, override)
    pool = merged["spec"]["worker_pool_specs"][0]
    assert pool["machine_spec"] == {
        "machine_type": "a2-highgpu-1g",
        "accelerator_type": "ACCELERATOR_TYPE_UNSPECIFIED",
        "accelerator_count": 1,
    }
    assert pool["replica_count"] == 1
    assert pool["container_spec"]["image_uri"] == "${image_uri}"


def test_position_past_the_end_appends_one_item():
    merged = deep_merge(
        QUEUE_CONFIG,
        {"spec": {"worker_pool_specs": {1: {"replica_count": 2}, 2: {"replica_count": 3}}}},
    )
    assert [pool["replica_count"] for pool in merged["spec"]["worker_pool_specs"]] == [1, 2, 3]


def test_position_of_a_scalar_list_item():
    merged = deep_merge(
        QUEUE_CONFIG,
        assignments_to_dict(["spec.worker_pool_specs[0].container_spec.args[1]=5"], "--resource-arg"),
    )
    assert merged["spec"]["worker_pool_specs"][0]["container_spec"]["args"] == ["--epochs", 5]


def test_position_beyond_the_end_is_an_error_with_its_path():
    with pytest.raises(ConfigError) as info:
        deep_merge(QUEUE_CONFIG, {"spec": {"worker_pool_specs": {3: {"replica_count": 2}}}})
    assert info.value.path == "spec.worker_pool_specs[3]"
    assert "past the end of the list (1 item(s)" in str(info.value)


def test_positions_over_a_non_list_are_an_error():
    with pytest.raises(ConfigError) as info:
        deep_merge(QUEUE_CONFIG, {"spec": {"staging_bucket": {0: "x"}}})
    assert info.value.path == "spec.staging_bucket"
    assert "holds text here" in str(info.value)


def test_positions_for_a_new_list_must_start_at_zero_without_gaps():
    assert deep_merge({}, {"args": {0: "a", 1: "b"}}) == {"args": ["a", "b"]}
    with pytest.raises(ConfigError) as info:
        deep_merge({}, {"spec": {"args": {1: "b"}}})
    assert info.value.path == "spec.args"
    assert "leave gaps" in str(info.value)


# --- parse_assignment / parse_value ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, path, value",
    [
        (
            "spec.worker_pool_specs[0].machine_spec.machine_type=a2-highgpu-1g",
            ["spec", "worker_pool_specs", 0, "machine_spec", "machine_type"],
            "a2-highgpu-1g",
        ),
        (
            "spec.worker_pool_specs[0].replica_count=2",
            ["spec", "worker_pool_specs", 0, "replica_count"],
            2,
        ),
        ("run.timeout=3600.5", ["run", "timeout"], 3600.5),
        ("run.sync=false", ["run", "sync"], False),
        ("run.enable_web_access=True", ["run", "enable_web_access"], True),
        ("spec.labels=null", ["spec", "labels"], None),
        ("spec.labels={team: ml, n: 1}", ["spec", "labels"], {"team": "ml", "n": 1}),
        ('spec.labels={"team": "ml"}', ["spec", "labels"], {"team": "ml"}),
        ("x.args=[--lr, 0.1]", ["x", "args"], ["--lr", 0.1]),
        ("x.args=[1, 2]", ["x", "args"], [1, 2]),
        ("x.count='3'", ["x", "count"], "3"),
        ('x.count="on"', ["x", "count"], "on"),
        ("x.text=a: b", ["x", "text"], "a: b"),  # stays one string
        ("x.text=- a", ["x", "text"], "- a"),
        ("x.text=#not-a-comment", ["x", "text"], "#not-a-comment"),
        ("x.uri=gs://b/p?a=1", ["x", "uri"], "gs://b/p?a=1"),
        ("x.empty=", ["x", "empty"], ""),
        ("x.version=010", ["x", "version"], 10),
        ("x.time=12:30", ["x", "time"], "12:30"),
        (" spaced.key = value ", ["spaced", "key"], "value"),
        ("a[0][1].b-c=x", ["a", 0, 1, "b-c"], "x"),
    ],
)
def test_parse_assignment(text, path, value):
    assert parse_assignment(text) == (path, value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("spec.replica_count", "expected PATH=VALUE"),
        ("=2", "the key path before = is empty"),
        ("spec..replica_count=2", '"spec..replica_count" is not a key path'),
        ("[0].x=2", '"[0].x" is not a key path'),
        ("spec.pools[x]=2", '"spec.pools[x]" is not a key path'),
        ("spec.pools[-1]=2", '"spec.pools[-1]" is not a key path'),
        ("spec pools=2", '"spec pools" is not a key path'),
        ("spec.=2", '"spec." is not a key path'),
        ("spec.labels={team: [ml}", "must be a JSON or YAML list/mapping"),
        ("spec.labels=[a, b", "must be a JSON or YAML list/mapping"),
    ],
)
def test_bad_assignment_names_the_flag_and_text(text, message):
    with pytest.raises(ConfigError) as info:
        parse_assignment(text, "--resource-arg")
    assert str(info.value).startswith(f"--resource-arg {text!r}")
    assert message in str(info.value)


def test_assignment_error_names_the_given_flag():
    with pytest.raises(ConfigError, match=r"^--set-var 'gpus': expected PATH=VALUE"):
        parse_assignment("gpus", "--set-var")


def test_parse_value_types():
    assert parse_value(" 42 ") == 42
    assert parse_value("-1.5e2") == -150.0
    assert parse_value("~") is None
    assert parse_value("None") == "None"  # only -p treats None as null (papermill)
    assert parse_value("TRUE") is True
    assert parse_value("yes") == "yes"


# --- assignments_to_dict ------------------------------------------------------------------------


def test_many_assignments_make_one_override():
    override = assignments_to_dict(
        [
            "spec.worker_pool_specs[0].machine_spec.machine_type=a2-highgpu-1g",
            "spec.worker_pool_specs[0].machine_spec.accelerator_type=NVIDIA_TESLA_A100",
            "spec.worker_pool_specs[0].machine_spec.accelerator_count=1",
            "run.restart_job_on_worker_restart=true",
        ],
        "--resource-arg",
    )
    merged = deep_merge(QUEUE_CONFIG, override)
    assert merged["spec"]["worker_pool_specs"][0]["machine_spec"] == {
        "machine_type": "a2-highgpu-1g",
        "accelerator_type": "NVIDIA_TESLA_A100",
        "accelerator_count": 1,
    }
    assert merged["run"]["restart_job_on_worker_restart"] is True
    assert merged["spec"]["staging_bucket"] == "gs://bucket"


def test_last_assignment_to_a_path_wins():
    assert assignments_to_dict(["a.b=1", "a.b=2"], "--resource-arg") == {"a": {"b": 2}}
    assert assignments_to_dict([], "--resource-arg") == {}


def test_value_then_keys_below_it_conflict():
    with pytest.raises(ConfigError) as info:
        assignments_to_dict(["spec.labels=x", "spec.labels.team=ml"], "--resource-arg")
    assert str(info.value).startswith("--resource-arg 'spec.labels.team=ml': spec.labels was already set")


def test_set_var_assignments_give_template_values():
    assert assignments_to_dict(["gpus=2", "lr=0.5", "zone=europe-west4-a"], "--set-var") == {
        "gpus": 2,
        "lr": 0.5,
        "zone": "europe-west4-a",
    }


# --- parse_parameters (-p) -------------------------------------------------------------------------


def test_parameters_in_both_forms_and_typed():
    params = parse_parameters(
        [
            "lr=0.1",
            "epochs 3",
            "name=hello world",
            "title  two  spaces",
            "debug=True",
            "verbose=false",
            "seed=None",
            "tag=null",
            "layers=[64, 32]",
            'opts={"momentum": 0.9}',
            'version="1"',
            "empty=",
            "expr 1+1=2",
            "neg=-7",
        ]
    )
    assert params == {
        "lr": 0.1,
        "epochs": 3,
        "name": "hello world",
        "title": "two  spaces",
        "debug": True,
        "verbose": False,
        "seed": None,
        "tag": None,
        "layers": [64, 32],
        "opts": {"momentum": 0.9},
        "version": "1",
        "empty": "",
        "expr": "1+1=2",
        "neg": -7,
    }
    assert type(params["epochs"]) is int and type(params["lr"]) is float


def test_last_parameter_wins_like_papermill():
    assert parse_parameters(["lr=0.1", "lr 0.2"]) == {"lr": 0.2}
    assert parse_parameters([]) == {}


@pytest.mark.parametrize(
    "item, message",
    [
        ("=0.1", "the parameter has no name"),
        ("", "the parameter has no name"),
        ("lr", "the parameter has no value"),
        ("1lr=0.1", '"1lr" is not a Python identifier'),
        ("my-lr=0.1", '"my-lr" is not a Python identifier'),
        ("layers=[64, 32", "must be a JSON or YAML list/mapping"),
    ],
)
def test_bad_parameter_names_the_flag_and_text(item, message):
    with pytest.raises(ConfigError) as info:
        parse_parameters(["ok=1", item])
    assert str(info.value).startswith(f"-p {item!r}")
    assert message in str(info.value)


def test_positions_that_went_through_json_still_merge_into_a_list():
    override = assignments_to_dict(["spec.worker_pool_specs[0].replica_count=4"], "--resource-arg")
    stored = json.loads(json.dumps(override))  # {"spec": {"worker_pool_specs": {"0": {...}}}}
    merged = deep_merge(QUEUE_CONFIG, stored)
    assert merged["spec"]["worker_pool_specs"][0]["replica_count"] == 4
    assert merged["spec"]["worker_pool_specs"][0]["machine_spec"]["machine_type"] == "n1-standard-4"
    # Digit keys over a mapping are ordinary keys.
    assert deep_merge({"labels": {"a": "1"}}, {"labels": {"0": "x"}}) == {"labels": {"a": "1", "0": "x"}}


@pytest.mark.parametrize(
    "text",
    ["3", "-7", "010", "1.5", "1e3", ".5", "true", "False", "TRUE", "null", "~", "on", "yes", "0x10", "1_000", "a b"],
)
def test_a_value_is_typed_as_a_queue_configs_yaml_types_it(text):
    """One scalar rule: ``--resource-arg``/``-p`` values and a queue config's plain scalars."""
    from launch_jupyter.core.queue_config import load_yaml

    assert parse_value(text) == load_yaml(f"x: {text}")["x"]


def test_infinity_and_nan_are_floats_as_in_yaml():
    import math

    from launch_jupyter.core.queue_config import load_yaml

    assert parse_value(".inf") == load_yaml("x: .inf")["x"] == math.inf
    assert parse_value("-.Inf") == -math.inf
    assert math.isnan(parse_value(".nan")) and math.isnan(load_yaml("x: .NaN")["x"])


def test_where_p_typing_differs_from_papermills_is_what_the_readme_says():
    from papermill.cli import _resolve_type  # what `papermill -p` does with a value

    ours = {"true": True, "null": None, "~": None, "[1, 2]": [1, 2], '"x"': "x", "inf": "inf", "1_000": "1_000"}
    for text, value in ours.items():
        assert parse_value(text) == value
        assert _resolve_type(text) != value, text
    for text in ("3", "0.1", "True", "False", "yes", "on", "1e3"):  # the same in both
        assert parse_value(text) == _resolve_type(text), text
    assert parse_parameters(["x=None"]) == {"x": None} == {"x": _resolve_type("None")}
