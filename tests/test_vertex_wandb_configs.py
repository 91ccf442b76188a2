"""Issue 12, "W&B Launch queue configs work here" (items 19-25) and the configs a notebook run
cannot take (12, 17): what W&B's docs and guides write, through the same validation a queue create
uses, and the requests the real SDK then sends to the fake."""

from __future__ import annotations

import textwrap

import pytest

from launch_jupyter import api
from launch_jupyter.runners.vertex import VertexRunner
from tests.fixtures.vertex import make_job, seed_config

SA = "trainer@proj.iam.gserviceaccount.com"


def problems(text: str, template_vars=()) -> list:
    return api.validate_config("vertex", textwrap.dedent(text), template_vars)


def errors_at(found, path):
    return [p for p in found if p.path == path and p.severity == "error"]


# 19 ------------------------------------------------------------------ spec.service_account / network


def test_19_spec_service_account_and_network_reach_the_job(fake_vertex, vertex_runner, transport):
    config = seed_config()
    config["spec"].update({"service_account": SA, "network": "projects/123/global/networks/vpc"})
    assert VertexRunner().validate(config) == []
    runner = vertex_runner(transport)
    planned = runner.dry_run(make_job(config))
    assert planned["custom_job"]["job_spec"]["service_account"] == SA
    runner.submit(make_job(config))
    (sent,) = [r.request for r in fake_vertex.calls("CreateCustomJob")]
    assert sent["custom_job"]["job_spec"]["service_account"] == SA
    assert sent["custom_job"]["job_spec"]["network"] == "projects/123/global/networks/vpc"


def test_19_spec_and_run_disagreeing_is_an_error_naming_both():
    config = seed_config()
    config["spec"]["service_account"] = SA
    config["run"]["service_account"] = "other@proj.iam.gserviceaccount.com"
    (problem,) = VertexRunner().validate(config)
    assert problem.path == "spec.service_account"
    assert "spec.service_account" in problem.message and "run.service_account" in problem.message


# 20 ------------------------------------------------------------------ W&B macro names


def test_20_wandb_macros_are_filled(fake_vertex, vertex_runner):
    config = seed_config("gs://${project_name}-staging")
    config["spec"]["display_name"] = "${entity_name}-${run_name}"
    config["spec"]["labels"] = {"project": "${project_name}"}
    assert VertexRunner().validate(config) == []
    vertex_runner("grpc").submit(make_job(config, name="nightly"))
    (sent,) = [r.request["custom_job"] for r in fake_vertex.calls("CreateCustomJob")]
    assert sent["display_name"] == "alice-nightly"
    assert sent["labels"]["project"] == "proj"
    assert sent["job_spec"]["base_output_directory"]["output_uri_prefix"] == "gs://proj-staging/launch-runs/run-1"


def test_20_an_unknown_macro_is_an_error_naming_the_known_ones():
    config = seed_config()
    config["spec"]["display_name"] = "${wandb_project}-run"
    (problem,) = VertexRunner().validate(config)
    assert problem.path == "spec.display_name"
    assert "${wandb_project}" in problem.message and "${project_name}" in problem.message


# 21 ------------------------------------------------------------------ builder.accelerator.base_image


def test_21_wandb_accelerator_base_image_is_our_base_image(tmp_path):
    from launch_jupyter.core.config import AgentConfig, builder_for, load_agent_config

    path = tmp_path / "launch-config.yaml"
    path.write_text(
        "builder:\n  type: docker\n  accelerator:\n    base_image: nvidia/cuda:12.4.1-runtime-ubuntu22.04\n"
    )
    config = load_agent_config(path)
    assert config.builder.base_image == "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
    queue = {"builder": {"accelerator": {"base_image": "pytorch/pytorch:latest"}}}
    assert builder_for(AgentConfig(), queue).base_image == "pytorch/pytorch:latest"
    found = problems("""
        builder:
          accelerator:
            base_image: pytorch/pytorch:latest
            cuda: "12"
        spec:
          worker_pool_specs:
            - machine_spec: {machine_type: n1-standard-4}
              replica_count: 1
              container_spec: {image_uri: "${image_uri}"}
          staging_bucket: gs://my-bucket
    """)
    assert errors_at(found, "builder.accelerator")


# 22 ------------------------------------------------------------------ command / args


@pytest.mark.parametrize("key", ["command", "args"])
def test_22_a_container_command_is_refused_with_why(key):
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["container_spec"][key] = ["python", "train.py"]
    (problem,) = VertexRunner().validate(config)
    assert problem.path == f"spec.worker_pool_specs[0].container_spec.{key}"
    assert "notebook would never run" in problem.message


# 23 ------------------------------------------------------------------ {{machine-type}}


def test_23_hyphenated_template_variables_are_declared_and_filled(fake_vertex):
    text = """
        spec:
          worker_pool_specs:
            - machine_spec: {machine_type: "{{machine-type}}"}
              replica_count: 1
              container_spec: {image_uri: "${image_uri}"}
          staging_bucket: gs://my-bucket
    """
    assert errors_at(problems(text), "spec.worker_pool_specs[0].machine_spec.machine_type")  # undeclared
    declared = [{"name": "machine-type", "type": "string", "default": "n1-standard-8"}]
    assert problems(text, declared) == []
    from launch_jupyter.core.templates import fill_template_vars

    config = api._parse_config("vertex", textwrap.dedent(text))[0]
    filled = fill_template_vars(config, api._template_vars(declared), {"machine-type": "n1-highmem-2"})
    assert filled["spec"]["worker_pool_specs"][0]["machine_spec"]["machine_type"] == "n1-highmem-2"


def test_23_an_undeclared_template_variable_is_always_an_error():
    config = seed_config()
    config["spec"]["display_name"] = "job-{{size}}"
    (problem,) = VertexRunner().validate(config)
    assert problem.path == "spec.display_name" and "not a declared template variable" in problem.message


# 24 ------------------------------------------------------------------ camelCase hints


def test_24_camel_case_hint_suggests_only_real_fields():
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["container_spec"]["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    config["spec"]["worker_pool_specs"][0]["machine_spec"]["machineType"] = "n1-standard-4"
    found = VertexRunner().validate(config)
    (secret,) = [p for p in found if p.path.endswith("env[0].valueFrom")]
    assert "use value_from" not in secret.message
    assert "no secret reference" in secret.message and "Secret Manager" in secret.message
    (camel,) = [p for p in found if p.path.endswith("machine_spec.machineType")]
    assert 'use "machine_type"' in camel.message
    config = seed_config()
    config["run"]["bootDiskGb"] = 100
    (unknown,) = VertexRunner().validate(config)
    assert "use " not in unknown.message and "unknown key" in unknown.message


# 25 ------------------------------------------------------------------ accelerator count, replicas


def test_25_an_accelerator_without_a_count_is_caught_offline():
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["machine_spec"] = {
        "machine_type": "n1-standard-8",
        "accelerator_type": "NVIDIA_TESLA_T4",
    }
    (problem,) = VertexRunner().validate(config)
    assert problem.path == "spec.worker_pool_specs[0].machine_spec.accelerator_count"


def test_25_a_missing_replica_count_is_caught_offline():
    config = seed_config()
    del config["spec"]["worker_pool_specs"][0]["replica_count"]
    (problem,) = VertexRunner().validate(config)
    assert problem.path == "spec.worker_pool_specs[0].replica_count"


# 12 ------------------------------------------------------------------ one machine per notebook run


def test_12_multi_replica_and_multi_pool_configs_are_refused_with_why():
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["replica_count"] = 4
    (problem,) = VertexRunner().validate(config)
    assert problem.path == "spec.worker_pool_specs[0].replica_count"
    assert "same output" in problem.message
    config = seed_config()
    config["spec"]["worker_pool_specs"].append(dict(config["spec"]["worker_pool_specs"][0]))
    (problem,) = VertexRunner().validate(config)
    assert problem.path == "spec.worker_pool_specs[1]"


# 17 ------------------------------------------------------------------ smaller rules


def test_17_empty_placeholder_pools_after_the_first_are_allowed(fake_vertex, vertex_runner):
    config = seed_config()
    config["spec"]["worker_pool_specs"] += [{}, {}]
    assert VertexRunner().validate(config) == []
    vertex_runner("rest").submit(make_job(config))  # the fake takes them as the real service does
    (sent,) = [r.request for r in fake_vertex.calls("CreateCustomJob")]
    assert len(sent["custom_job"]["job_spec"]["worker_pool_specs"]) == 3


def test_17_display_name_after_macros_is_checked_before_anything_is_created(fake_vertex, vertex_runner):
    from launch_jupyter.core.errors import DispatchError

    config = seed_config()
    config["spec"]["display_name"] = "${run_name}-${run_name}"
    with pytest.raises(DispatchError, match="spec.display_name"):
        vertex_runner("grpc").submit(make_job(config, name="n" * 100))
    assert fake_vertex.calls("CreateCustomJob") == []


def test_17_env_count_is_checked_offline():
    config = seed_config()
    config["spec"]["worker_pool_specs"][0]["container_spec"]["env"] = [
        {"name": f"V{i}", "value": "x"} for i in range(95)
    ]
    (problem,) = VertexRunner().validate(config)
    assert problem.path == "spec.worker_pool_specs[0].container_spec.env" and "at most 100" in problem.message


@pytest.mark.parametrize(
    ("method", "permission"),
    [
        ("GetCustomJob", "aiplatform.customJobs.get"),
        ("CancelCustomJob", "aiplatform.customJobs.cancel"),
    ],
)
def test_17_permission_denied_names_the_permission_of_the_action(fake_vertex, vertex_runner, method, permission):
    from launch_jupyter.core.errors import DispatchError

    runner = vertex_runner("grpc")
    job = make_job()
    job.run.external_id = runner.submit(job)
    fake_vertex.fail(method, "PERMISSION_DENIED", message="denied")
    with pytest.raises(DispatchError, match=permission.replace(".", r"\.")):
        if method == "GetCustomJob":
            list(runner.logs(job.run))
        else:
            runner.cancel(job)


def test_17_permission_denied_on_logs_names_logging(fake_vertex, vertex_runner):
    from launch_jupyter.core.errors import DispatchError

    runner = vertex_runner("rest")
    job = make_job()
    job.run.external_id = runner.submit(job)
    fake_vertex.fail("ListLogEntries", "PERMISSION_DENIED", message="denied")
    with pytest.raises(DispatchError, match=r"logging\.logEntries\.list"):
        list(runner.logs(job.run))
