"""Kubernetes queue configs, offline: the bad-config corpus (tests/bad_configs/kubernetes/, each file
naming the key path and message expected), checked by building the official client's model
objects; the default config; the Job a run sends (dry run); the agent's Deployment example."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from launch_jupyter.core.errors import DispatchError
from launch_jupyter.core.queue_config import parse_config_text
from launch_jupyter.runners.kubernetes import DEFAULT_CONFIG, KubernetesRunner, job_name
from launch_jupyter.runners.kubernetes._validate import model_problems
from tests.fixtures.kubernetes import IMAGE, kubernetes_config, kubernetes_job

HERE = Path(__file__).parent
CORPUS = sorted((HERE / "bad_configs" / "kubernetes").glob("*.yaml"))
EXAMPLE = HERE.parent / "examples" / "kubernetes" / "agent-deployment.yaml"


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
    problems = KubernetesRunner().validate(parse_config_text(text))
    found = [p for p in problems if p.path == want["path"]]
    assert len(found) == 1, [str(p) for p in problems]
    assert want["message"] in found[0].message, str(found[0])
    # Beside it at most the field the typo left missing ("nmae" for "name": name is required).
    others = [p for p in problems if p is not found[0]]
    assert all(p.message == "is required" for p in others) and len(others) <= 1, [str(p) for p in problems]


def test_the_default_config_names_what_to_fill_in():
    problems = KubernetesRunner().validate(yaml.safe_load(DEFAULT_CONFIG))
    assert [(p.path, p.message.split(":")[0]) for p in problems] == [("output", "is still the placeholder <REQUIRED>")]
    config = yaml.safe_load(DEFAULT_CONFIG.replace("<REQUIRED>", "s3://bucket/notebooks"))
    assert KubernetesRunner().validate(config) == []


VOLUME = {"name": "results", "persistentVolumeClaim": {"claimName": "results"}}


@pytest.mark.parametrize(
    "output, mounts, ok",
    [
        ("gs://bucket/nb", [], True),
        ("s3://bucket", [], True),
        ("/results/nb", ["/results"], True),
        ("/results", ["/results/"], True),
        ("s3://b/p", ["/results"], True),
        ("s3:///p", [], False),  # no bucket
        ("/results/nb", [], False),  # nothing mounted: the notebook would die with the pod
        ("/resultsx/nb", ["/results"], False),
        ("/tmp/out", ["/results"], False),
        ("notebooks/out", ["/results"], False),  # relative
        ("https://example.com/nb", [], False),
    ],
)
def test_output_must_be_a_bucket_or_a_mounted_volume(output, mounts, ok):
    config = yaml.safe_load(DEFAULT_CONFIG)
    config["output"] = output
    pod = config["spec"]["template"]["spec"]
    if mounts:
        pod["volumes"] = [VOLUME]
        pod["containers"][0]["volumeMounts"] = [{"name": "results", "mountPath": m} for m in mounts]
    problems = KubernetesRunner().validate(config)
    if ok:
        assert problems == []
    else:
        assert [p.path for p in problems] == ["output"]
        assert "must be gs://..., s3://... or a path under a mounted volume" in problems[0].message


def test_a_bad_output_creates_no_queue(tmp_path, capsys):
    from launch_jupyter import api, cli

    config = tmp_path / "q.yaml"
    config.write_text(DEFAULT_CONFIG.replace("<REQUIRED>", "s3:/bucket/nb"))
    assert cli.main(["queue", "create", "kq-out", "--resource", "kubernetes", "--config", str(config)]) != 0
    err = capsys.readouterr().err
    assert "output: must be gs://..., s3://... or a path under a mounted volume" in err
    assert [q.name for q in api.list_queues()] == []


def test_dry_run_is_the_exact_job(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    config = kubernetes_config(namespace="ml")
    config["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "MODE", "value": "fast"},
        {"name": "API_TOKEN", "value": "abc"},
    ]
    job = kubernetes_job(config, run_id="abc123", parameters={"lr": 0.1})
    request = KubernetesRunner().dry_run(job)
    assert request["namespace"] == "ml"
    manifest = request["job"]
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    assert manifest["metadata"]["name"] == "launch-abc123"
    assert manifest["metadata"]["labels"]["launch-run-id"] == "abc123"
    assert manifest["spec"]["template"]["metadata"]["labels"]["launch-run-id"] == "abc123"
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["command"] == ["python", "-m", "launch_jupyter.execute"]
    assert container["args"][:2] == ["--notebook", "train.ipynb"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["API_TOKEN"] == "***"  # masked in the printout
    assert env["MODE"] == "fast" and env["LAUNCH_RUN_ID"] == "abc123" and env["LAUNCH_QUEUE"] == "alice/kq"
    assert env["LAUNCH_PARAMETERS"] == '{"lr": 0.1}'
    assert container["resources"]["requests"]["cpu"] == "1"
    assert model_problems(manifest, "V1Job") == []


def test_a_job_without_an_image_is_refused():
    config = kubernetes_config()
    job = kubernetes_job(config, image_uri=None)
    with pytest.raises(DispatchError, match=r"containers\[0\]\.image"):
        KubernetesRunner().build_job(job)


def test_job_names_are_dns_labels():
    import re

    assert job_name("0a1b2c3d4e5f") == "launch-0a1b2c3d4e5f"
    for odd in ("A_B.c", "x" * 80):
        name = job_name(odd)
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
    assert job_name("A_B") != job_name("a-b")


def test_default_config_through_the_cli(capsys):
    from launch_jupyter import cli

    assert cli.main(["queue", "default-config", "kubernetes"]) == 0
    assert capsys.readouterr().out == DEFAULT_CONFIG


MODELS = {
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("apps/v1", "Deployment"): "V1Deployment",
}


def test_the_agent_deployment_example_is_valid():
    documents = list(yaml.safe_load_all(EXAMPLE.read_text()))
    assert {(d["apiVersion"], d["kind"]) for d in documents} == set(MODELS)
    for document in documents:
        assert model_problems(document, MODELS[(document["apiVersion"], document["kind"])]) == [], document["kind"]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["launch-jupyter", "agent"]
    assert all("value" not in e for e in container["env"])  # the store URL only from a Secret
    from launch_jupyter.cli import _parser

    _parser().parse_args(container["command"][1:])  # the CLI takes these arguments


def test_the_same_validation_catches_a_broken_deployment():
    document = list(yaml.safe_load_all(EXAMPLE.read_text()))[-1]
    document["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = ["Always"]
    document["spec"]["replica"] = 2
    paths = sorted(p.path for p in model_problems(document, "V1Deployment"))
    assert paths == ["spec.replica", "spec.template.spec.containers[0].imagePullPolicy"]


def _pod(phase: str, waiting: str | None = None, unscheduled: str | None = None):
    from kubernetes import client

    state = (
        client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason=waiting, message="no such image"))
        if waiting
        else client.V1ContainerState(running=client.V1ContainerStateRunning())
    )
    conditions = (
        [client.V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable", message=unscheduled)]
        if unscheduled
        else None
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="p-1"),
        status=client.V1PodStatus(
            phase=phase,
            conditions=conditions,
            container_statuses=[
                client.V1ContainerStatus(
                    name="notebook", image="i", image_id="", ready=False, restart_count=0, state=state
                )
            ],
        ),
    )


def test_pod_troubles_are_named_in_the_status():
    from kubernetes import client

    from launch_jupyter.core.states import RunState
    from launch_jupyter.runners.kubernetes import to_status

    job = client.V1Job(metadata=client.V1ObjectMeta(name="launch-x"), status=client.V1JobStatus(active=1))
    pulled = to_status(job, [_pod("Pending", waiting="ImagePullBackOff")])
    assert pulled.state is RunState.PENDING and "ImagePullBackOff" in pulled.message
    unscheduled = to_status(job, [_pod("Pending", unscheduled="0/3 nodes have enough GPUs")])
    assert unscheduled.state is RunState.PENDING and "enough GPUs" in unscheduled.message
    assert to_status(job, [_pod("Running")]).state is RunState.RUNNING
    assert to_status(job, [_pod("Running")], cancelling=True).state is RunState.CANCELLING


def test_kubernetes_dry_run_through_the_cli(tmp_path, capsys, monkeypatch):
    from launch_jupyter import cli
    from tests.fixtures.common import EXAMPLES

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    config = tmp_path / "q.yaml"
    config.write_text(DEFAULT_CONFIG.replace("<REQUIRED>", "gs://bucket/nb"))
    assert cli.main(["queue", "create", "kq", "--resource", "kubernetes", "--config", str(config)]) == 0
    capsys.readouterr()
    code = cli.main(["submit", str(EXAMPLES / "quickstart.ipynb"), "-q", "kq", "--image", IMAGE, "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "kind: Job" in out and "name: launch-" in out and IMAGE in out and "launch-run-id" in out


def test_preflight_needs_a_cluster(tmp_path, monkeypatch, fake_kubernetes):
    from launch_jupyter.core.errors import LaunchError
    from launch_jupyter.core.model import Queue

    queue = Queue(entity="alice", name="kq", resource="kubernetes", config=kubernetes_config())
    KubernetesRunner().preflight(queue, None)  # the fake's kubeconfig loads
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(LaunchError, match="no Kubernetes cluster configured"):
        KubernetesRunner().preflight(queue, None)


def test_in_a_pod_the_in_cluster_config_and_namespace_are_used(tmp_path, monkeypatch):
    """The agent as the Deployment of examples/kubernetes/: no kubeconfig, the service account's
    token, ca.crt and namespace files, KUBERNETES_SERVICE_HOST/PORT (here: the FAKE API server,
    over https with a certificate signed by that ca.crt)."""
    from launch_jupyter.runners import kubernetes as runner_module
    from tests.fakes.kubernetes_server import FakeKubernetes
    from tests.fixtures.kubernetes import tls_files

    account = tmp_path / "serviceaccount"
    account.mkdir()
    ca, cert, key = tls_files(tmp_path)
    (account / "ca.crt").write_text(Path(ca).read_text())
    (account / "token").write_text("service-account-token")
    (account / "namespace").write_text("team-a\n")
    fake = FakeKubernetes(tls=(cert, key))
    try:
        monkeypatch.setattr(runner_module, "SERVICE_ACCOUNT", str(account))
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fake.port))
        runner = KubernetesRunner()
        config = kubernetes_config()  # names no namespace: the pod's own
        job = kubernetes_job(config, run_id="incluster1")
        assert runner.submit(job) == "launch-incluster1"
        assert ("team-a", "launch-incluster1") in fake.jobs
        assert {a.lower() for a in fake.authorizations} == {"bearer service-account-token"}  # RFC 7235: any case
    finally:
        fake.stop()
