"""What a run will cost before it runs (issue 19, part 4): the shipped Vertex AI price table, the
estimate in a dry run and ``launch-jupyter estimate``, queue budgets that refuse a run with the
figures and change nothing, and the machine hours and cost a run records when it ends."""

from __future__ import annotations

import copy
import json

import pytest

from launch_jupyter import api
from launch_jupyter.agent import Agent
from launch_jupyter.cli import main
from launch_jupyter.core.errors import ConfigError
from launch_jupyter.core.states import RunState
from launch_jupyter.runners.vertex._pricing import load_table, refreshed_path
from tests.fixtures.common import EXAMPLES
from tests.fixtures.vertex import VERTEX_YAML, seed_config

QUICKSTART = str(EXAMPLES / "quickstart.ipynb")
IMAGE = "us-docker.pkg.dev/my-project/repo/train:1"

A100_YAML = """\
spec:
  worker_pool_specs:
    - machine_spec:
        machine_type: a2-highgpu-1g
        accelerator_type: NVIDIA_TESLA_A100
        accelerator_count: 1
      replica_count: 1
      container_spec:
        image_uri: ${image_uri}
  staging_bucket: gs://my-bucket
run:
  timeout: 7200
"""


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def with_budget(yaml: str, **budget) -> str:
    return yaml + "budget:\n" + "".join(f"  {k}: {v}\n" for k, v in budget.items())


def test_the_shipped_table_names_its_source_and_date_and_reproduces_the_vertex_pricing_page():
    table = load_table()
    assert table["as_of"] and "vertex-ai/pricing" in table["source"] and "not fetched" in table["source"]
    prices = table["regions"]["us-central1"]
    # The Vertex AI pricing page's figures (custom training, us-central1): n1-standard-4 $0.2185/h,
    # NVIDIA_TESLA_T4 $0.4025/h, NVIDIA_TESLA_V100 $2.852/h.
    assert prices["machines"]["n1-standard-4"]["on_demand"] == pytest.approx(0.2185, abs=1e-4)
    assert prices["accelerators"]["NVIDIA_TESLA_T4"]["on_demand"] == pytest.approx(0.4025, abs=1e-4)
    assert prices["accelerators"]["NVIDIA_TESLA_V100"]["on_demand"] == pytest.approx(2.852, abs=1e-4)
    assert all(p["spot"] is None for p in prices["machines"].values())  # not shipped: they change monthly


def test_the_seed_default_config_in_us_central1_costs_an_n1_standard_4_hour(tmp_path):
    api.create_queue("vq", "vertex", config=seed_config())
    estimate = api.estimate("vq")
    assert estimate is not None and estimate.region == "us-central1"
    assert estimate.hourly == pytest.approx(0.218499)
    assert estimate.timeout_s is None
    # No run.timeout: Vertex AI's default Scheduling.timeout (7 days) is the worst case, and it says so.
    assert estimate.worst_case == pytest.approx(0.218499 * 24 * 7)
    text = str(estimate)
    assert "no run.timeout" in text and "7 days" in text and "$36.71" in text
    assert "as of" in text  # every figure is shown with the table's source and date


def test_an_a100_config_prices_the_machine_and_its_gpu_for_the_timeout():
    api.create_queue("a100", "vertex", config=A100_YAML)
    estimate = api.estimate("a100")
    assert [line.what for line in estimate.lines] == ["pool 0: a2-highgpu-1g", "pool 0: NVIDIA_TESLA_A100"]
    # a2-highgpu-1g: (12 vCPUs × $0.031611 + 85 GiB × $0.004237) × 1.15; the A100 $2.933908 × 1.15.
    hourly = (12 * 0.031611 + 85 * 0.004237) * 1.15 + 2.933908 * 1.15
    assert estimate.hourly == pytest.approx(hourly, abs=1e-5)
    assert estimate.worst_case == pytest.approx(hourly * 2, abs=1e-5)
    assert "worst case for run.timeout 2 h: $8.45" in str(estimate)


def test_an_unknown_machine_type_region_or_spot_price_is_unknown_never_a_made_up_number():
    api.create_queue("odd", "vertex", config=VERTEX_YAML.replace("n1-standard-4", "n1-ultramem-40"))
    odd = api.estimate("odd")
    assert odd.hourly is None and odd.worst_case is None
    assert "unknown price (no on-demand price for n1-ultramem-40 in us-central1)" in str(odd)
    far = api.estimate(
        "odd",
        resource_args={
            "spec": {
                "location": "asia-northeast1",
                "worker_pool_specs": [
                    {
                        "machine_spec": {"machine_type": "n1-standard-4"},
                        "replica_count": 1,
                        "container_spec": {"image_uri": "${image_uri}"},
                    }
                ],
            }
        },
    )
    assert far.hourly is None and "the price table has no region asia-northeast1 (it has us-central1)" in str(far)
    spot = api.estimate("odd", resource_args={"run": {"scheduling_strategy": "SPOT"}})
    assert spot.spot and spot.hourly is None and "no Spot price" in str(spot)


def test_a_local_queue_has_no_price_table():
    api.create_queue("laptop", "local-process")
    assert api.estimate("laptop") is None
    plan = api.dry_run(QUICKSTART, "laptop", save=False)
    assert plan.estimate is None and str(plan) == plan.yaml


def test_the_dry_run_shows_the_price_under_the_request(capsys):
    api.create_queue("vq", "vertex", config=VERTEX_YAML)
    plan = api.dry_run(QUICKSTART, "vq", save=False, image=IMAGE)
    assert plan.estimate is not None and plan.estimate.hourly == pytest.approx(0.218499)
    assert "# hourly (on-demand, us-central1): $0.2185/h for 1 machine(s)" in str(plan)
    code, out, _ = cli(capsys, "submit", QUICKSTART, "-q", "vq", "--dry-run", "--image", IMAGE)
    assert code == 0 and "custom_job:" in out and "# hourly (on-demand, us-central1): $0.2185/h" in out


def test_launch_jupyter_estimate_prints_the_figures_and_the_budget_verdict(capsys):
    api.create_queue("a100", "vertex", config=with_budget(A100_YAML, max_hourly_cost=5))
    code, out, err = cli(capsys, "estimate", QUICKSTART, "-q", "a100")
    assert code == 0, err
    assert "pool 0: NVIDIA_TESLA_A100 × 1: $3.3740/h each" in out
    assert "hourly (on-demand, us-central1): $4.22/h" in out and "budget: max_hourly_cost 5: within" in out
    code, out, _ = cli(
        capsys,
        "estimate",
        QUICKSTART,
        "-q",
        "a100",
        "--json",
        "--resource-arg",
        "spec.worker_pool_specs[0].machine_spec.accelerator_count=2",
        "--resource-arg",
        "spec.worker_pool_specs[0].machine_spec.machine_type=a2-highgpu-2g",
    )
    found = json.loads(out)
    assert found["estimate"]["hourly"] == pytest.approx(
        (24 * 0.031611 + 170 * 0.004237 + 2 * 2.933908) * 1.15, abs=1e-5
    )
    assert found["over_budget"].startswith("budget.max_hourly_cost: this run costs $8.45/h")
    code, _, err = cli(capsys, "estimate", "missing.ipynb", "-q", "a100")
    assert code != 0 and "missing.ipynb" in err


def test_a_submit_over_the_run_budget_is_refused_with_the_figures_and_queues_nothing():
    api.create_queue("a100", "vertex", config=with_budget(A100_YAML, max_run_cost=5))
    with pytest.raises(ConfigError) as err:
        api.submit(QUICKSTART, "a100", save=False, image=IMAGE)
    assert err.value.path == "budget.max_run_cost"
    message = str(err.value)
    assert "this run may cost up to $8.45 ($4.22/h for run.timeout 2 h)" in message
    assert "over the queue's max_run_cost of $5.00" in message
    assert "--resource-arg run.timeout=4260" in message  # the longest timeout that fits
    assert api.list_runs() == []
    # The timeout it suggests fits; a submit with it goes through and records its price.
    handle = api.submit(QUICKSTART, "a100", save=False, image=IMAGE, resource_args={"run": {"timeout": 4260}})
    assert handle.run.cost["hourly"] == pytest.approx(4.224, abs=1e-3) and handle.run.cost["machines"] == 1


def test_an_hourly_budget_refuses_a_sweep_and_a_schedule_too(tmp_path):
    api.create_queue("a100", "vertex", config=with_budget(A100_YAML, max_hourly_cost=4))
    with pytest.raises(ConfigError, match=r"budget.max_hourly_cost: this run costs \$4.22/h"):
        api.sweep(QUICKSTART, "a100", parameters={"name": ["a", "b"]}, save=False, image=IMAGE)
    with pytest.raises(ConfigError, match="max_hourly_cost"):
        api.create_schedule("nightly", QUICKSTART, "a100", cron="0 3 * * *")
    assert api.list_runs() == [] and api.list_schedules() == []


def test_a_budget_on_an_unknown_price_refuses_and_says_why():
    api.create_queue(
        "odd", "vertex", config=with_budget(VERTEX_YAML.replace("n1-standard-4", "n1-ultramem-40"), max_hourly_cost=10)
    )
    with pytest.raises(ConfigError, match="cannot be checked: the run's price is unknown .*n1-ultramem-40"):
        api.submit(QUICKSTART, "odd", save=False, image=IMAGE)
    assert api.list_runs() == []


@pytest.mark.parametrize(
    ("budget", "path", "says"),
    [
        ("budget:\n  max_hourly: 3\n", "budget.max_hourly", 'did you mean "max_hourly_cost"?'),
        ("budget:\n  max_run_cost: -1\n", "budget.max_run_cost", "must be a positive amount in USD"),
        ("budget:\n  max_run_cost: lots\n", "budget.max_run_cost", "must be a positive amount in USD, not text"),
        ("budget: 5\n", "budget", "must be a mapping"),
    ],
)
def test_a_bad_budget_is_refused_at_queue_create_with_its_key_path(budget, path, says):
    with pytest.raises(ConfigError) as err:
        api.create_queue("vq", "vertex", config=VERTEX_YAML + budget)
    assert any(p.path == path and says in p.message for p in err.value.problems) or (
        err.value.path == path and says in str(err.value)
    ), str(err.value)
    assert api.list_queues() == []


def test_a_run_may_not_lift_its_queues_budget():
    api.create_queue("a100", "vertex", config=with_budget(A100_YAML, max_run_cost=5))
    with pytest.raises(ConfigError, match="budget: is the queue's to set, not a run's"):
        api.submit(QUICKSTART, "a100", save=False, image=IMAGE, resource_args={"budget": {"max_run_cost": 500}})
    assert api.list_runs() == []


def test_a_refreshed_table_is_preferred_and_its_spot_prices_are_used():
    data_dir = api.agent_config().data_dir
    table = copy.deepcopy(load_table())  # the loaded table is shared: never change it in place
    table["source"], table["as_of"] = "a refresh", "2026-12-01T00:00:00+00:00"
    table["regions"]["us-central1"]["machines"]["n1-standard-4"]["spot"] = 0.05
    path = refreshed_path(data_dir)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(table))
    api.create_queue("vq", "vertex", config=VERTEX_YAML + "run:\n  scheduling_strategy: SPOT\n  timeout: 3600\n")
    estimate = api.estimate("vq")
    assert estimate.hourly == pytest.approx(0.05) and "a refresh (as of 2026-12-01" in str(estimate)
    path.write_text("{not json")  # a broken refresh never hides the shipped table
    assert "not fetched" in api.estimate("vq").source


def test_a_vertex_run_records_its_machine_hours_and_cost_and_runs_cost_sums_them(vertex_queue, capsys):
    fake, _ = vertex_queue
    worker = Agent(config=api.agent_config(overrides={"queues": ["vq"]})).start()
    try:
        ok = api.submit(QUICKSTART, "vq", save=False, image=IMAGE)
        assert ok.wait(timeout=120) is RunState.SUCCEEDED, ok.events()
        fake.script(["RUNNING", "RUNNING", "FAILED"], error_message="The replica workerpool0-0 exited with 1.")
        bad = api.submit(QUICKSTART, "vq", save=False, image=IMAGE)
        assert bad.wait(timeout=120) is RunState.FAILED, bad.events()
    finally:
        worker.stop()
    run = ok.refresh().run
    assert run.running_at is not None and run.finished_at > run.running_at
    hours = (run.finished_at - run.running_at) / 3600
    assert run.cost["machine_hours"] == pytest.approx(hours, abs=1e-6)
    assert run.cost["estimated"] == pytest.approx(0.218499 * hours, abs=1e-6)
    failed = bad.refresh().run
    # Vertex AI pricing: a job that fails for a reason other than a user's cancel is not billed.
    assert failed.cost["machine_hours"] > 0 and failed.cost["estimated"] == 0.0
    assert "not billed" in failed.cost["note"]
    code, out, _ = cli(capsys, "runs", "--cost", "--json")
    [row] = json.loads(out)
    assert row["queue"].endswith("/vq") and row["runs"] == 2 and row["unpriced"] == 0
    assert row["machine_hours"] == pytest.approx(run.cost["machine_hours"] + failed.cost["machine_hours"], abs=1e-5)
    assert row["estimated"] == pytest.approx(run.cost["estimated"], abs=1e-6)
    code, out, _ = cli(capsys, "runs", "--cost")
    assert code == 0 and "EST. COST" in out and "over 2 finished runs" in out
    code, out, _ = cli(capsys, "run", "show", run.id)
    assert "cost:" in out and "$0.2185/h for 1 machine(s) in us-central1" in out and "machine hours" in out


def test_prices_refresh_writes_a_table_from_the_catalog_that_estimates_then_use(fake_catalog, capsys, monkeypatch):
    monkeypatch.setenv("BILLING_KEY", fake_catalog.api_key)
    api.create_queue("vq", "vertex", config=VERTEX_YAML + "run:\n  scheduling_strategy: SPOT\n  timeout: 3600\n")
    assert api.estimate("vq").hourly is None  # the shipped table has no Spot prices
    code, out, err = cli(
        capsys,
        "prices",
        "refresh",
        "--region",
        "us-central1",
        "--region",
        "mars-north1",
        "--api-key-env",
        "BILLING_KEY",
        "--endpoint",
        fake_catalog.endpoint,
    )
    assert code == 0, err
    assert "us-central1:" in out and "mars-north1: not in the catalog" in out
    assert fake_catalog.api_key not in out + err
    estimate = api.estimate("vq")
    # The fake catalog's us-central1 Spot figures for N1: vCPU $0.00698/h; 15 GiB of RAM at its price.
    assert estimate.hourly is not None and estimate.spot
    assert "the Cloud Billing Catalog API" in estimate.source
    code, out, _ = cli(capsys, "prices", "show", "--json")
    shown = json.loads(out)
    assert shown["prices"]["machines"]["n1-standard-4"]["spot"] == pytest.approx(estimate.hourly)
    # No key in the environment: one message naming the flag, and the table stays as it was.
    before = refreshed_path(api.agent_config().data_dir).read_text()
    code, _, err = cli(capsys, "prices", "refresh", "--api-key-env", "NO_SUCH_KEY", "--endpoint", fake_catalog.endpoint)
    assert code != 0 and "--api-key-env" in err and "NO_SUCH_KEY" in err
    assert refreshed_path(api.agent_config().data_dir).read_text() == before


def test_overrides_given_as_key_paths_as_the_launch_dialog_sends_them_are_priced_and_submitted():
    """The dialog's Vertex overrides arrive as {"spec.worker_pool_specs[0]…": value}; before, they
    landed as one odd top-level key and the run was refused."""
    api.create_queue("a100", "vertex", config=A100_YAML)
    flat = {
        "spec.worker_pool_specs[0].machine_spec.machine_type": "a2-highgpu-2g",
        "spec.worker_pool_specs[0].machine_spec.accelerator_count": 2,
    }
    assert api.estimate("a100", resource_args=flat).hourly == pytest.approx(
        (24 * 0.031611 + 170 * 0.004237 + 2 * 2.933908) * 1.15, abs=1e-5
    )
    handle = api.submit(QUICKSTART, "a100", save=False, image=IMAGE, resource_args=flat)
    pool = handle.run.config["spec"]["worker_pool_specs"][0]
    assert pool["machine_spec"]["machine_type"] == "a2-highgpu-2g" and pool["machine_spec"]["accelerator_count"] == 2
    with pytest.raises(ConfigError, match=r'resource_args: "spec\.\.x" is not a key path'):
        api.estimate("a100", resource_args={"spec..x": 1})
