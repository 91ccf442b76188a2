"""Queue config text (YAML/JSON), the snake_case rule, template variable declarations, key helpers."""

from __future__ import annotations

import json

import pytest

from launch_jupyter.core.errors import ConfigError
from launch_jupyter.core.keys import closest, format_path, is_camel_case, join_path, to_snake
from launch_jupyter.core.model import Problem, TemplateVar
from launch_jupyter.core.queue_config import (
    check_snake_case,
    dump_config,
    parse_config_text,
    parse_template_var,
    validate_template_vars,
)

VERTEX_DEFAULT = """\
spec:
  worker_pool_specs:
    - machine_spec:
        machine_type: n1-standard-4
        accelerator_type: ACCELERATOR_TYPE_UNSPECIFIED
        accelerator_count: 0
      replica_count: 1
      container_spec:
        image_uri: ${image_uri}
  staging_bucket: <REQUIRED>
run:
  restart_job_on_worker_restart: false
"""


# --- keys -----------------------------------------------------------------------------------------


def test_format_path():
    assert format_path(["spec", "worker_pool_specs", 0, "machine_spec", "machineType"]) == (
        "spec.worker_pool_specs[0].machine_spec.machineType"
    )
    assert format_path(["a", 0, 1, "b"]) == "a[0][1].b"
    assert format_path([]) == ""
    assert join_path("", "spec") == "spec"
    assert join_path("spec.pools", 2) == "spec.pools[2]"


@pytest.mark.parametrize(
    "name, snake",
    [
        ("machineType", "machine_type"),
        ("bootDiskSizeGb", "boot_disk_size_gb"),
        ("imageURI", "image_uri"),
        ("URIPrefix", "uri_prefix"),
        ("replica_count", "replica_count"),
        ("MachineSpec", "machine_spec"),
    ],
)
def test_to_snake(name, snake):
    assert to_snake(name) == snake


def test_closest():
    assert closest("max_job", ["max_jobs", "queues"]) == "max_jobs"
    assert closest("maxJobs", ["max_jobs", "queues"]) == "max_jobs"
    assert closest("destinaton", ["destination", "type"]) == "destination"
    assert closest("zzz", ["max_jobs", "queues"]) is None
    assert is_camel_case("machineType") and not is_camel_case("machine_type")


# --- parse / dump ------------------------------------------------------------------------------


def test_vertex_default_parses():
    config = parse_config_text(VERTEX_DEFAULT)
    pool = config["spec"]["worker_pool_specs"][0]
    assert pool["machine_spec"]["accelerator_count"] == 0
    assert pool["container_spec"]["image_uri"] == "${image_uri}"
    assert config["spec"]["staging_bucket"] == "<REQUIRED>"
    assert config["run"]["restart_job_on_worker_restart"] is False


def test_json_text_parses_to_the_same_data():
    config = parse_config_text(VERTEX_DEFAULT)
    assert parse_config_text(json.dumps(config)) == config
    assert parse_config_text(json.dumps(config, indent=2)) == config


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "~"])
def test_empty_text_is_an_empty_config(text):
    assert parse_config_text(text) == {}


@pytest.mark.parametrize(
    "text, value",
    [
        ("v: on", "on"),  # YAML 1.1 would make these booleans
        ("v: yes", "yes"),
        ("v: NO", "NO"),
        ("v: 010", 10),  # not octal
        ("v: 12:30", "12:30"),  # not base 60
        ("v: 2024-01-01", "2024-01-01"),  # not a date: every config stays JSON-storable
        ("v: 1_000", "1_000"),
        ("v: 0x1f", "0x1f"),
        ("v: true", True),
        ("v: False", False),
        ("v: null", None),
        ("v: 1e3", 1000.0),
        ("v: .5", 0.5),
        ("v: -3", -3),
        ("v: '3'", "3"),
        ("v: a2-highgpu-1g", "a2-highgpu-1g"),
    ],
)
def test_scalars_follow_yaml_core_schema(text, value):
    assert parse_config_text(text)["v"] == value


@pytest.mark.parametrize(
    "text, where",
    [
        ("spec:\n  staging_bucket: [gs://b\n", "line 3"),
        ("spec:\n\tstaging_bucket: gs://b\n", "line 2, column 1"),
        ("spec: {a: 1\nrun: {}\n", "line 2"),
        ("a: b: c\n", "line 1, column 5"),
        ('{"spec":\n  {"a": 1 "b": 2}}', "line 2"),
    ],
)
def test_syntax_error_names_source_line_and_column(text, where):
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="gpu.yaml")
    assert str(info.value).startswith("gpu.yaml: ")
    assert where in str(info.value)


def test_unquoted_template_variable_gets_a_hint():
    with pytest.raises(ConfigError, match=r'line 2.*put a template variable in quotes, e\.g\. "\{\{gpus\}\}"'):
        parse_config_text("spec:\n  count: {{gpus}}\n")


def test_duplicate_key_is_an_error_at_any_depth():
    with pytest.raises(ConfigError, match=r'line 4, column 3: found the key "replica_count" twice'):
        parse_config_text("spec:\n  replica_count: 1\n  x: 2\n  replica_count: 3\n")


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "a list"), ("just text", "text"), ("42", "a number")])
def test_top_level_must_be_a_mapping(text, kind):
    with pytest.raises(ConfigError, match=f"top level must be a mapping.*not {kind}"):
        parse_config_text(text)


def test_unsafe_tags_are_refused():
    with pytest.raises(ConfigError, match="line 1"):
        parse_config_text("a: !!python/object/apply:os.system ['true']\n")


def test_dump_keeps_key_order_and_round_trips():
    config = parse_config_text(VERTEX_DEFAULT)
    text = dump_config(config)
    assert text.index("spec:") < text.index("run:")
    assert text.index("worker_pool_specs") < text.index("staging_bucket")
    assert parse_config_text(text) == config
    odd = {
        "z": "on",
        "a": "010",
        "m": "12:30",
        "t": "true",
        "n": "null",
        "e": "",
        "multi": "a: b\nc: d",
    }
    assert parse_config_text(dump_config(odd)) == odd
    assert list(parse_config_text(dump_config(odd))) == ["z", "a", "m", "t", "n", "e", "multi"]


# --- snake_case ----------------------------------------------------------------------------------


def test_snake_case_config_has_no_problems():
    assert check_snake_case(parse_config_text(VERTEX_DEFAULT)) == []


def test_camel_case_keys_at_every_depth():
    config = {
        "spec": {
            "workerPoolSpecs": [
                {"machine_spec": {"machineType": "n1", "accelerator_count": 0}},
                {"containerSpec": {"imageUri": "x"}},
            ],
            "stagingBucket": "gs://b",
        },
        "run": {"restartJobOnWorkerRestart": False},
    }
    problems = check_snake_case(config)
    assert Problem("spec.workerPoolSpecs", 'use "worker_pool_specs", not "workerPoolSpecs"') in problems
    assert (
        Problem(
            "spec.workerPoolSpecs[0].machine_spec.machineType",
            'use "machine_type", not "machineType"',
        )
        in problems
    )
    assert Problem("spec.workerPoolSpecs[1].containerSpec.imageUri", 'use "image_uri", not "imageUri"') in problems
    assert Problem("spec.stagingBucket", 'use "staging_bucket", not "stagingBucket"') in problems
    assert (
        Problem(
            "run.restartJobOnWorkerRestart",
            'use "restart_job_on_worker_restart", not "restartJobOnWorkerRestart"',
        )
        in problems
    )
    assert len(problems) == 6
    assert all(p.severity == "error" for p in problems)


def test_snake_case_check_starts_from_a_given_path():
    problems = check_snake_case({"machineType": "n1"}, "spec.worker_pool_specs[0].machine_spec")
    assert [str(p) for p in problems] == [
        'spec.worker_pool_specs[0].machine_spec.machineType: use "machine_type", not "machineType"'
    ]


def test_values_are_not_keys():
    assert check_snake_case({"machine_spec": {"machine_type": "CamelValue"}, "args": ["--someFlag"]}) == []


# --- template variable declarations ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, var",
    [
        ("gpus:integer:1:0:8", TemplateVar("gpus", "integer", 1, 0, 8)),
        ("gpus:int:2", TemplateVar("gpus", "integer", 2)),
        ("gpus:integer:1::8", TemplateVar("gpus", "integer", 1, None, 8)),
        ("lr:number:0.1", TemplateVar("lr", "number", 0.1)),
        ("lr:float:1e-3:0:1", TemplateVar("lr", "number", 0.001, 0, 1)),
        ("lr:number:0.5:0.1:0.9", TemplateVar("lr", "number", 0.5, 0.1, 0.9)),
        ("image:string:repo/img:tag", TemplateVar("image", "string", "repo/img:tag")),
        ("tag:string:", TemplateVar("tag", "string", "")),
        ("tag:string", TemplateVar("tag", "string", None)),
        ("tag", TemplateVar("tag", "string", None)),
        ("gpus:integer", TemplateVar("gpus", "integer", None)),
        ("gpus:integer::0:8", TemplateVar("gpus", "integer", None, 0, 8)),
        (
            "{name: gpus, type: integer, default: 2, enum: [1, 2, 4], description: GPUs per pool}",
            TemplateVar("gpus", "integer", 2, enum=(1, 2, 4), description="GPUs per pool"),
        ),
        (
            '{"name": "zone", "enum": ["a", "b"], "default": "a"}',
            TemplateVar("zone", "string", "a", enum=("a", "b")),
        ),
    ],
)
def test_parse_template_var(text, var):
    assert parse_template_var(text) == var


@pytest.mark.parametrize(
    "text, message",
    [
        ("1gpus:integer:1", 'template variable "1gpus": a name starts with a letter'),
        (
            "my.var:integer:1",
            'template variable "my.var": a name starts with a letter',
        ),  # "-" is allowed (W&B: {{machine-type}})
        (":integer:1", 'template variable "": a name starts'),
        (
            "gpus:bool:1",
            'template variable "gpus": unknown type "bool"; types: integer, number, string',
        ),
        (
            "gpus:integr:1",
            'template variable "gpus": unknown type "integr"; did you mean "integer"?',
        ),
        ("gpus:integer:two", 'template variable "gpus": expected a whole number'),
        ("gpus:integer:1.5", 'template variable "gpus": expected a whole number'),
        ("lr:number:fast", 'template variable "lr": expected a number'),
        ("lr:number:nan", 'template variable "lr": expected a finite number'),
        ("gpus:integer:9:0:8", 'template variable "gpus": 9 is above maximum 8'),
        ("gpus:integer:0:1:8", 'template variable "gpus": 0 is below minimum 1'),
        ("gpus:integer:1:8:2", 'template variable "gpus": minimum 8 is above maximum 2'),
        ("gpus:integer:1:low", "template variable \"gpus\": minimum 'low' is not a number"),
        ("gpus:integer:1:0:8:9", 'template variable "gpus": too many ":"'),
        (
            "{name: gpus, typ: integer}",
            'template variable "gpus": unknown field "typ"; did you mean "type"?',
        ),
        ("{name: gpus, enum: 3}", 'template variable "gpus": enum must be a list'),
        (
            "{name: zone, enum: [a, b], default: c}",
            "template variable \"zone\": 'c' is not one of the allowed values: a, b",
        ),
        (
            "{name: gpus, type: integer, enum: [1, x]}",
            'template variable "gpus": expected a whole number',
        ),
        (
            "{name: gpus, type: integer, enum: []}",
            'template variable "gpus": enum must list at least one value',
        ),
        ("{type: integer}", "a mapping form needs at least a name"),
        ("{name: gpus, default: [1}", "line 1"),
    ],
)
def test_parse_template_var_errors_name_the_variable(text, message):
    with pytest.raises(ConfigError) as info:
        parse_template_var(text)
    assert message in str(info.value)


def test_validate_template_vars_accepts_good_declarations():
    validate_template_vars(
        [
            TemplateVar("gpus", "integer", 1, 0, 8),
            TemplateVar("lr", "number", 0.1, 0.0, 1.0, description="learning rate"),
            TemplateVar("zone", "string", "a", enum=("a", "b")),
            TemplateVar("required", "integer"),
        ]
    )


@pytest.mark.parametrize(
    "variables, message",
    [
        (
            [TemplateVar("gpus", "integer", 1), TemplateVar("gpus", "number", 2)],
            '"gpus" is declared twice',
        ),
        ([TemplateVar("bad name", "string")], '"bad name": a name starts'),
        ([TemplateVar("gpus", "float")], 'unknown type "float"'),
        ([TemplateVar("gpus", "integer", 10, maximum=8)], '"gpus": 10 is above maximum 8'),
        ([TemplateVar("lr", "number", -0.5, minimum=0)], '"lr": -0.5 is below minimum 0'),
        ([TemplateVar("gpus", "integer", True)], '"gpus": expected an integer, got true/false'),
        (
            [TemplateVar("tag", "string", "x", minimum=1)],
            '"tag": minimum applies only to integer and number',
        ),
        ([TemplateVar("gpus", "integer", 1, minimum="0")], '"gpus": minimum must be a number'),
        (
            [TemplateVar("zone", "string", "c", enum=("a", "b"))],
            "'c' is not one of the allowed values: a, b",
        ),
        ([TemplateVar("tag", "string", ["x"])], '"tag": expected text, got a list'),
    ],
)
def test_validate_template_vars_errors(variables, message):
    with pytest.raises(ConfigError) as info:
        validate_template_vars(variables)
    assert message in str(info.value)
