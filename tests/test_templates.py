"""Queue config templates: {{name}} template variables at submit, ${macro} at dispatch."""

from __future__ import annotations

import copy

import pytest

from launch_jupyter.core.errors import ConfigError
from launch_jupyter.core.model import Problem, TemplateVar
from launch_jupyter.core.queue_config import dump_config, parse_config_text, parse_template_var
from launch_jupyter.core.templates import (
    MACROS,
    check_template_usage,
    fill_macros,
    fill_template_vars,
    find_template_vars,
    resolve_template_values,
    sample_template_values,
)

QUEUE_CONFIG = parse_config_text(
    """
spec:
  display_name: "train-{{gpus}}-gpus-${run_id}"
  worker_pool_specs:
    - machine_spec:
        machine_type: "{{machine}}"
        accelerator_type: NVIDIA_TESLA_T4
        accelerator_count: "{{gpus}}"
      replica_count: 1
      container_spec:
        image_uri: ${image_uri}
        args: ["--lr", "{{lr}}", "--lr={{ lr }}"]
  staging_bucket: gs://bucket/${entity}/${queue}
run:
  restart_job_on_worker_restart: false
"""
)
VARIABLES = [
    TemplateVar("gpus", "integer", 1, minimum=0, maximum=8),
    TemplateVar("lr", "number", 0.01, minimum=0, maximum=1),
    TemplateVar("machine", "string", "n1-standard-4", enum=("n1-standard-4", "a2-highgpu-1g")),
]


def test_defaults_fill_every_variable_with_its_type():
    filled = fill_template_vars(QUEUE_CONFIG, VARIABLES, {})
    pool = filled["spec"]["worker_pool_specs"][0]
    assert pool["machine_spec"]["accelerator_count"] == 1  # exactly "{{gpus}}" → the integer
    assert pool["machine_spec"]["machine_type"] == "n1-standard-4"
    assert pool["container_spec"]["args"] == ["--lr", 0.01, "--lr=0.01"]
    assert filled["spec"]["display_name"] == "train-1-gpus-${run_id}"  # macros are left for dispatch


def test_submitted_values_win_and_text_is_coerced():
    filled = fill_template_vars(QUEUE_CONFIG, VARIABLES, {"gpus": "4", "lr": "0.5", "machine": "a2-highgpu-1g"})
    pool = filled["spec"]["worker_pool_specs"][0]
    assert pool["machine_spec"]["accelerator_count"] == 4
    assert pool["machine_spec"]["machine_type"] == "a2-highgpu-1g"
    assert pool["container_spec"]["args"] == ["--lr", 0.5, "--lr=0.5"]
    assert filled["spec"]["display_name"] == "train-4-gpus-${run_id}"


def test_none_value_means_the_default():
    filled = fill_template_vars(QUEUE_CONFIG, VARIABLES, {"gpus": None})
    assert filled["spec"]["worker_pool_specs"][0]["machine_spec"]["accelerator_count"] == 1


def test_fill_returns_a_new_dict_and_leaves_the_queue_config_alone():
    before = copy.deepcopy(QUEUE_CONFIG)
    filled = fill_template_vars(QUEUE_CONFIG, VARIABLES, {"gpus": 2})
    assert QUEUE_CONFIG == before
    filled["spec"]["worker_pool_specs"][0]["replica_count"] = 99
    assert QUEUE_CONFIG["spec"]["worker_pool_specs"][0]["replica_count"] == 1


def test_a_value_cannot_inject_yaml_structure():
    variables = [TemplateVar("name", "string")]
    config = {"spec": {"display_name": "{{name}}", "labels": {"team": "x-{{name}}"}}}
    attack = "a: b\nc: d\nstaging_bucket: gs://evil"
    filled = fill_template_vars(config, variables, {"name": attack})
    assert filled["spec"]["display_name"] == attack
    assert filled["spec"]["labels"] == {"team": "x-" + attack}
    assert set(filled["spec"]) == {"display_name", "labels"}
    # ...and it stays one string after a round trip through the stored YAML.
    assert parse_config_text(dump_config(filled)) == filled


def test_a_value_is_not_expanded_again():
    variables = [TemplateVar("a", "string"), TemplateVar("b", "string", "B")]
    filled = fill_template_vars({"x": "{{a}}/{{b}}"}, variables, {"a": "{{b}}"})
    assert filled["x"] == "{{b}}/B"


def test_keys_and_non_string_values_are_untouched():
    config = {"{{gpus}}": 1, "n": 3, "flag": True, "none": None, "f": 0.5}
    assert fill_template_vars(config, VARIABLES, {}) == config


@pytest.mark.parametrize(
    "values, message",
    [
        ({"gpus": 9}, 'template variable "gpus": 9 is above maximum 8'),
        ({"gpus": "-1"}, 'template variable "gpus": -1 is below minimum 0'),
        ({"gpus": "two"}, 'template variable "gpus": expected a whole number'),
        ({"gpus": 1.5}, 'template variable "gpus": expected a whole number'),
        ({"gpus": True}, 'template variable "gpus": expected an integer, got true/false'),
        ({"gpus": [1]}, 'template variable "gpus": expected an integer, got a list'),
        ({"lr": "fast"}, 'template variable "lr": expected a number'),
        ({"lr": "inf"}, 'template variable "lr": expected a finite number'),
        ({"lr": 2}, 'template variable "lr": 2 is above maximum 1'),
        (
            {"machine": "tpu"},
            "template variable \"machine\": 'tpu' is not one of the allowed values",
        ),
        ({"machine": {"a": 1}}, 'template variable "machine": expected text, got a mapping'),
        (
            {"gpu": 2},
            'template variable "gpu" is not declared by this queue (declared: gpus, lr, machine); did you mean "gpus"?',
        ),
        (
            {"zzz": 2},
            'template variable "zzz" is not declared by this queue (declared: gpus, lr, machine)',
        ),
    ],
)
def test_bad_values_are_errors_naming_the_variable(values, message):
    with pytest.raises(ConfigError) as info:
        fill_template_vars(QUEUE_CONFIG, VARIABLES, values)
    assert message in str(info.value)


def test_missing_value_without_default_says_how_to_pass_it():
    variables = [TemplateVar("bucket", "string")]
    with pytest.raises(
        ConfigError,
        match=r'"bucket" needs a value and has no default; pass it with --set-var bucket=VALUE',
    ):
        fill_template_vars({"spec": {"staging_bucket": "{{bucket}}"}}, variables, {})


def test_undeclared_variable_in_the_config_names_its_key_path():
    config = {"spec": {"worker_pool_specs": [{"replica_count": "{{replicas}}"}]}}
    with pytest.raises(ConfigError) as info:
        fill_template_vars(config, VARIABLES, {})
    assert info.value.path == "spec.worker_pool_specs[0].replica_count"
    assert '"{{replicas}}" is not a template variable of this queue' in str(info.value)


def test_undeclared_variable_inside_a_longer_string():
    with pytest.raises(ConfigError) as info:
        fill_template_vars({"spec": {"args": ["x", "--n={{n}}"]}}, VARIABLES, {})
    assert info.value.path == "spec.args[1]"


def test_string_variable_keeps_numeric_looking_text():
    variables = [parse_template_var("tag:string:007")]
    assert fill_template_vars({"t": "{{tag}}"}, variables, {}) == {"t": "007"}
    assert fill_template_vars({"t": "{{tag}}"}, variables, {"tag": 8}) == {"t": "8"}


def test_number_variable_keeps_integers_whole():
    variables = [TemplateVar("lr", "number", 1)]
    assert resolve_template_values(variables, {"lr": "3"}) == {"lr": 3}
    assert resolve_template_values(variables, {"lr": "0.5"}) == {"lr": 0.5}
    assert resolve_template_values(variables, {"lr": " 2e-3 "}) == {"lr": 0.002}


def test_find_and_check_template_usage():
    assert find_template_vars(QUEUE_CONFIG) == {"gpus", "lr", "machine"}
    assert check_template_usage(QUEUE_CONFIG, VARIABLES) == []
    problems = check_template_usage(QUEUE_CONFIG, VARIABLES[:1])
    assert (
        Problem(
            "spec.worker_pool_specs[0].machine_spec.machine_type",
            '"{{machine}}" is not a template variable of this queue (declared: gpus)',
        )
        in problems
    )
    assert {p.path for p in problems} == {
        "spec.worker_pool_specs[0].machine_spec.machine_type",
        "spec.worker_pool_specs[0].container_spec.args[1]",
        "spec.worker_pool_specs[0].container_spec.args[2]",
    }


# --- macros ----------------------------------------------------------------------------------


def test_macro_names():
    assert MACROS == ("image_uri", "run_id", "queue", "entity", "author", "notebook")


def test_fill_macros_on_parsed_data():
    filled = fill_macros(
        QUEUE_CONFIG,
        {
            "image_uri": "us-docker.pkg.dev/p/r/img:abc123",
            "run_id": "r-1",
            "entity": "team",
            "queue": "gpu",
        },
    )
    assert filled["spec"]["worker_pool_specs"][0]["container_spec"]["image_uri"] == "us-docker.pkg.dev/p/r/img:abc123"
    assert filled["spec"]["display_name"] == "train-{{gpus}}-gpus-r-1"
    assert filled["spec"]["staging_bucket"] == "gs://bucket/team/gpu"
    assert "${image_uri}" in str(QUEUE_CONFIG)  # the input is unchanged


def test_macros_without_value_and_unknown_macros_stay():
    config = {"a": "${image_uri}", "b": "${foo}-${run_id}", "c": "$run_id", "d": ["${author}"]}
    filled = fill_macros(config, {"image_uri": None, "run_id": "r-2", "author": "alice"})
    assert filled == {"a": "${image_uri}", "b": "${foo}-r-2", "c": "$run_id", "d": ["alice"]}


def test_macro_value_cannot_inject_structure():
    filled = fill_macros({"spec": {"image": "${notebook}"}}, {"notebook": "x: 1\ny: [2]"})
    assert filled == {"spec": {"image": "x: 1\ny: [2]"}}


def test_sample_values_let_a_queue_config_be_checked_before_any_submission():
    variables = [
        TemplateVar("gpus", "integer", minimum=1, maximum=8),
        TemplateVar("lr", "number", maximum=-1),
        TemplateVar("zone", "string", enum=("b", "a")),
        TemplateVar("bucket", "string"),
        TemplateVar("replicas", "integer", 3),
        TemplateVar("n", "integer"),
    ]
    values = sample_template_values(variables)
    assert values == {"gpus": 1, "lr": -1, "zone": "b", "bucket": "bucket", "replicas": 3, "n": 0}
    config = {"a": "{{gpus}}", "b": "{{lr}}", "c": "{{zone}}", "d": "gs://{{bucket}}", "e": "{{n}}"}
    assert fill_template_vars(config, variables, values)["d"] == "gs://bucket"
