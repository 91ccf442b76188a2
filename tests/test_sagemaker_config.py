"""SageMaker queue configs, offline: the bad-config corpus (tests/bad_configs/sagemaker/, each file
naming the key path and message expected), checked against botocore's own CreateTrainingJob model;
the default config; the request a run sends (dry run); the ECR registry rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from launch_jupyter.core.errors import DispatchError
from launch_jupyter.core.queue_config import parse_config_text
from launch_jupyter.runners.sagemaker import DEFAULT_CONFIG, SageMakerRunner
from launch_jupyter.runners.sagemaker._request import job_name
from tests.fixtures.aws import IMAGE, ROLE, sagemaker_config, sagemaker_job

CORPUS = sorted((Path(__file__).parent / "bad_configs" / "sagemaker").glob("*.yaml"))


def header(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        fields[key] = value
    return fields


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 10


@pytest.mark.parametrize("case", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_config(case):
    text = case.read_text()
    want = header(text)
    problems = SageMakerRunner().validate(parse_config_text(text))
    errors = [p for p in problems if p.severity == "error"]
    assert [p.path for p in errors] == [want["path"]], [str(p) for p in problems]
    assert want["message"] in errors[0].message, str(errors[0])


def test_every_corpus_case_is_otherwise_the_valid_base():
    """A case fails for its one reason: the same file without it validates."""
    base = sagemaker_config(StoppingCondition={"MaxRuntimeInSeconds": 3600})
    assert SageMakerRunner().validate(base) == []


def test_the_rules_come_from_botocore_itself():
    """An instance type botocore's model lists is accepted, one it does not list is refused: the
    enum is read from the installed service model, not from a list of ours."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    types = model.shape_for("TrainingInstanceType").enum
    runner = SageMakerRunner()
    for instance in (types[0], types[-1]):
        config = sagemaker_config()
        config["ResourceConfig"]["InstanceType"] = instance
        assert runner.validate(config) == [], instance
    config = sagemaker_config()
    config["ResourceConfig"]["InstanceType"] = "ml.p99.mega"
    assert [p.path for p in runner.validate(config)] == ["ResourceConfig.InstanceType"]


def test_the_default_config_names_what_to_fill_in():
    runner = SageMakerRunner()
    assert runner.default_config() == DEFAULT_CONFIG
    problems = runner.validate(yaml.safe_load(DEFAULT_CONFIG))
    assert sorted(p.path for p in problems) == ["OutputDataConfig.S3OutputPath", "RoleArn"]
    assert all("placeholder" in p.message for p in problems)


def test_wandb_shape_without_algorithm_specification_is_valid():
    """W&B's SageMaker example names no AlgorithmSpecification: the runner fills it."""
    config = {
        "RoleArn": ROLE,
        "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/prefix"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    assert SageMakerRunner().validate(config) == []


def test_dry_run_is_the_exact_request(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    config = sagemaker_config(Environment={"MY_FLAG": "1", "HF_TOKEN": "hf_abc"}, Tags=[{"Key": "team", "Value": "ml"}])
    config["region"] = "eu-west-1"
    job = sagemaker_job(config, run_id="abc123", parameters={"lr": 0.1})
    request = SageMakerRunner().dry_run(job)
    assert request["region"] == "eu-west-1"
    sent = request["CreateTrainingJob"]
    assert sent["TrainingJobName"] == "launch-abc123"
    assert sent["RoleArn"] == ROLE
    assert sent["AlgorithmSpecification"] == {
        "TrainingImage": IMAGE,
        "TrainingInputMode": "File",
        "ContainerEntrypoint": ["python", "-m", "launch_jupyter.execute"],
        "ContainerArguments": ["--notebook", "train.ipynb", "--output", "/opt/ml/model/output.ipynb"],
    }
    env = sent["Environment"]
    assert env["MY_FLAG"] == "1" and env["HF_TOKEN"] == "***"  # masked in the printout
    assert env["LAUNCH_RUN_ID"] == "abc123" and env["LAUNCH_QUEUE"] == "alice/sq"
    assert env["LAUNCH_OUTPUT"] == "/opt/ml/model/output.ipynb"
    assert env["LAUNCH_PARAMETERS"] == '{"lr": 0.1}'
    assert {"Key": "launch-run-id", "Value": "abc123"} in sent["Tags"]
    assert {"Key": "team", "Value": "ml"} in sent["Tags"]
    assert "region" not in sent and "profile" not in sent
    assert not any("SECRET" in k or "AWS_" in k for k in env)


def test_dry_run_through_the_cli_prints_the_request(tmp_path, capsys):
    from launch_jupyter import cli
    from tests.fixtures.common import EXAMPLES

    config = tmp_path / "q.yaml"
    config.write_text(yaml.safe_dump(sagemaker_config()))
    assert cli.main(["queue", "create", "sq", "--resource", "sagemaker", "--config", str(config)]) == 0
    capsys.readouterr()
    code = cli.main(["submit", str(EXAMPLES / "quickstart.ipynb"), "-q", "sq", "--image", IMAGE, "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "CreateTrainingJob" in out and "TrainingJobName: launch-" in out and IMAGE in out


def test_a_filled_macro_that_breaks_a_limit_is_refused_with_its_key():
    config = sagemaker_config(Environment={"NOTE": "${run_id}"})
    job = sagemaker_job(config, run_id="r" * 600)
    with pytest.raises(DispatchError, match=r"Environment\.NOTE"):
        SageMakerRunner().dry_run(job)


def test_job_names_follow_the_service_model_pattern():
    import re

    assert job_name("0a1b2c3d4e5f") == "launch-0a1b2c3d4e5f"
    odd = job_name("a_b.c/" + "x" * 80)
    assert len(odd) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", odd)
    assert job_name("a_b") != job_name("a.b")


def test_default_config_through_the_cli(capsys):
    from launch_jupyter import cli

    assert cli.main(["queue", "default-config", "sagemaker"]) == 0
    assert capsys.readouterr().out == DEFAULT_CONFIG


def test_ecr_is_a_known_registry():
    from launch_jupyter.core.images import ecr_region, is_ecr_registry, is_public_registry

    assert is_ecr_registry("123456789012.dkr.ecr.us-east-1.amazonaws.com")
    assert is_ecr_registry("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com")
    assert is_ecr_registry("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn")
    assert not is_ecr_registry("dkr.ecr.us-east-1.amazonaws.com.evil.example")
    assert not is_ecr_registry("public.ecr.aws") and is_public_registry("public.ecr.aws")
    assert ecr_region("123456789012.dkr.ecr.eu-west-2.amazonaws.com") == "eu-west-2"


def test_every_status_pair_of_the_service_model_has_a_meaning():
    """Every TrainingJobStatus × SecondaryStatus value botocore's model knows maps to a run state
    (none falls through to "unknown, keep the current state")."""
    import botocore.session

    from launch_jupyter.core.states import RunState
    from launch_jupyter.runners.sagemaker import to_status

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("DescribeTrainingJob").output_shape
    for status in shape.members["TrainingJobStatus"].enum:
        for secondary in shape.members["SecondaryStatus"].enum:
            result = to_status({"TrainingJobStatus": status, "SecondaryStatus": secondary}, current=RunState.RUNNING)
            assert "keeping" not in result.message, (status, secondary)
            if status in ("Completed", "Failed", "Stopped", "Deleting"):
                assert result.state.is_terminal, (status, secondary)
    assert (
        to_status({"TrainingJobStatus": "Paused?", "SecondaryStatus": "x"}, current=RunState.RUNNING).state
        is RunState.RUNNING
    )


def test_preflight_needs_credentials_and_a_region(monkeypatch, tmp_path):
    from launch_jupyter.core.errors import LaunchError
    from launch_jupyter.core.model import Queue

    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = sagemaker_config()
    config.pop("region")
    queue = Queue(entity="alice", name="sq", resource="sagemaker", config=config)
    with pytest.raises(LaunchError, match="region"):
        SageMakerRunner().preflight(queue, None)
    queue.config["region"] = "us-east-1"
    with pytest.raises(LaunchError, match="credentials"):
        SageMakerRunner().preflight(queue, None)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    SageMakerRunner().preflight(queue, None)


def test_an_instance_type_for_one_job(tmp_path, capsys):
    """The "Set up Launch" page's example of a per-job override: a SageMaker instance type for one
    job, checked against the same service model."""
    from launch_jupyter import cli
    from tests.fixtures.common import EXAMPLES

    config = tmp_path / "q.yaml"
    config.write_text(yaml.safe_dump(sagemaker_config()))
    assert cli.main(["queue", "create", "sq", "--resource", "sagemaker", "--config", str(config)]) == 0
    notebook = str(EXAMPLES / "quickstart.ipynb")
    capsys.readouterr()
    assert (
        cli.main(
            [
                "submit",
                notebook,
                "-q",
                "sq",
                "--image",
                IMAGE,
                "--dry-run",
                "--resource-arg",
                "ResourceConfig.InstanceType=ml.g5.xlarge",
            ]
        )
        == 0
    )
    assert "InstanceType: ml.g5.xlarge" in capsys.readouterr().out
    code = cli.main(
        ["submit", notebook, "-q", "sq", "--image", IMAGE, "--resource-arg", "ResourceConfig.InstanceType=ml.g5.huge"]
    )
    err = capsys.readouterr().err
    assert code != 0 and "ResourceConfig.InstanceType" in err and 'did you mean "ml.g5.xlarge"' in err
    from launch_jupyter import api

    assert api.list_runs() == []  # nothing queued


@pytest.mark.parametrize(
    "resource, text, path",
    [
        (
            "sagemaker",
            "RoleArn: arn:aws:iam::123456789012:role/x\nOutputDataConfig: {S3OutputPath: s3://b/p}\n"
            "ResourceConfig: {InstanceTyp: ml.m5.xlarge, VolumeSizeInGB: 30}\n",
            "ResourceConfig.InstanceTyp",
        ),
        (
            "kubernetes",
            "spec:\n  template:\n    spec:\n      containers:\n        - {name: n, image: i, imagePullPolicy: 3}\n",
            "spec.template.spec.containers[0].imagePullPolicy",
        ),
    ],
)
def test_a_bad_queue_config_creates_no_queue(tmp_path, capsys, resource, text, path):
    from launch_jupyter import api, cli

    config = tmp_path / "q.yaml"
    config.write_text(text)
    code = cli.main(["queue", "create", "bad", "--resource", resource, "--config", str(config)])
    assert code != 0 and path in capsys.readouterr().err
    assert [q.name for q in api.list_queues()] == []


def test_a_template_variable_for_the_instance_type():
    """W&B-style queue template variables: the queue's sample value and each run's value are
    checked against the service model like any other value."""
    from launch_jupyter import api
    from launch_jupyter.core.errors import LaunchError
    from tests.fixtures.common import EXAMPLES

    config = sagemaker_config()
    config["ResourceConfig"]["InstanceType"] = "{{instance}}"
    api.create_queue(
        "tq",
        "sagemaker",
        config=yaml.safe_dump(config),
        template_vars=[{"name": "instance", "type": "string", "default": "ml.m5.xlarge"}],
    )
    out = api.dry_run(EXAMPLES / "quickstart.ipynb", "tq", image=IMAGE, template_values={"instance": "ml.g5.2xlarge"})
    assert "InstanceType: ml.g5.2xlarge" in out.yaml
    with pytest.raises(LaunchError, match=r"ResourceConfig\.InstanceType"):
        api.submit(EXAMPLES / "quickstart.ipynb", "tq", image=IMAGE, template_values={"instance": "big"})
    assert api.list_runs() == []


@pytest.mark.parametrize(
    "image, extra, warned_at",
    [
        (IMAGE, {}, None),  # ECR
        ("${image_uri}", {}, None),  # filled per run, checked then
        ("ghcr.io/acme/train:1", {}, "AlgorithmSpecification.TrainingImage"),
        ("python:3.12", {}, "AlgorithmSpecification.TrainingImage"),  # Docker Hub
        (
            "registry.corp.internal/train:1",
            {"TrainingImageConfig": {"TrainingRepositoryAccessMode": "Vpc"}},
            "VpcConfig",
        ),
    ],
)
def test_a_training_image_outside_ecr_is_warned_about(image, extra, warned_at):
    """SageMaker pulls from ECR, or from a private registry through the job's VPC
    (API_TrainingImageConfig: TrainingRepositoryAccessMode Vpc; the registry reachable from VpcConfig)."""
    config = sagemaker_config()
    config["AlgorithmSpecification"] = {"TrainingImage": image, "TrainingInputMode": "File", **extra}
    problems = SageMakerRunner().validate(config)
    assert [p for p in problems if p.severity == "error"] == []
    assert [p.path for p in problems if p.severity == "warning"] == ([warned_at] if warned_at else [])


def test_a_private_registry_through_the_vpc_is_not_warned_about():
    config = sagemaker_config()
    config["AlgorithmSpecification"] = {
        "TrainingImage": "registry.corp.internal/train:1",
        "TrainingInputMode": "File",
        "TrainingImageConfig": {"TrainingRepositoryAccessMode": "Vpc"},
    }
    config["VpcConfig"] = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}
    assert SageMakerRunner().validate(config) == []


def test_a_run_image_outside_ecr_is_sent_with_a_warning(caplog):
    from launch_jupyter.runners.sagemaker._request import build_request

    with caplog.at_level("WARNING", logger="launch_jupyter.runners.sagemaker._request"):
        request = build_request(sagemaker_job(image_uri="ghcr.io/acme/train:1", run_id="gh1"))
    assert request["AlgorithmSpecification"]["TrainingImage"] == "ghcr.io/acme/train:1"
    assert any("outside Amazon ECR" in r.getMessage() and "gh1" in r.getMessage() for r in caplog.records)
