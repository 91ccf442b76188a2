"""The %launch magics through a real IPython InteractiveShell whose run_cell re-raises."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from launch_jupyter import api
from launch_jupyter.core.errors import LaunchError, QueueError
from launch_jupyter.core.states import RunState
from launch_jupyter.magics import LaunchMagicError
from tests.fixtures.common import EXAMPLES
from tests.fixtures.vertex import VERTEX_YAML

QUICKSTART = EXAMPLES / "quickstart.ipynb"


class TestingShell(InteractiveShell):
    """An InteractiveShell that re-raises what a cell raised, so a failing magic fails the test."""

    __test__ = False  # not a test class

    def run_cell(self, *args, **kwargs):
        result = super().run_cell(*args, **kwargs)
        if result.error_in_exec is not None:
            raise result.error_in_exec
        if result.error_before_exec is not None:
            raise result.error_before_exec
        return result

    def run_cell_quietly(self, code: str):
        """Run as a notebook would: errors are shown, not raised."""
        return super().run_cell(code)


@pytest.fixture(scope="module")
def shell():
    ip = TestingShell.instance()
    ip.run_line_magic("load_ext", "launch_jupyter")
    yield ip
    TestingShell.clear_instance()


@pytest.fixture
def ip(shell, sqlite_url, monkeypatch):
    """The shell on a private SQLite store, set through the LaunchMagics traitlet."""
    monkeypatch.setenv("LAUNCH_JUPYTER_POLL_INTERVAL", "0.2")
    shell.run_cell(f"%config LaunchMagics.store = {sqlite_url!r}")
    yield shell
    api.stop_agent()
    shell.run_cell("%config LaunchMagics.default_queue = ''")


def test_load_ext_imports_no_cloud_docker_or_widget_code():
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'launch_jupyter')\n"
        "heavy = [m for m in ('google.cloud.aiplatform', 'docker', 'papermill', 'anywidget', 'sqlalchemy')"
        " if m in sys.modules]\n"
        "print(heavy, 'launch' in ip.magics_manager.magics['line'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True"


def test_launch_alone_prints_help_listing_the_subcommands(ip, capsys):
    ip.run_cell("%launch")
    out = capsys.readouterr().out
    assert "usage: %launch" in out
    for command in ("queue", "submit", "agent", "runs", "cancel", "logs", "editor"):
        assert command in out


def test_queue_create_list_show_delete(ip, capsys, sqlite_url):
    ip.run_cell("%launch queue create local --resource local-process --prioritization")
    assert "created queue alice/local (local-process)" in capsys.readouterr().out
    queue = api.get_queue("local", store_url=sqlite_url)
    assert queue.resource == "local-process" and queue.prioritization

    ip.run_cell("%launch queue list")
    listing = capsys.readouterr().out
    assert "alice/local" in listing and "local-process" in listing

    ip.run_cell("%launch queue show local")
    shown = capsys.readouterr().out
    assert "prioritization: on" in shown and "config:" in shown

    ip.run_cell("%launch queue delete local")
    assert "deleted queue alice/local" in capsys.readouterr().out
    with pytest.raises(QueueError):
        api.get_queue("local", store_url=sqlite_url)


def test_cell_form_creates_a_vertex_queue_from_the_yaml_body(ip, capsys, sqlite_url):
    ip.run_cell_magic("launch", "queue create gpu --resource vertex --entity team", VERTEX_YAML)
    queue = api.get_queue("team/gpu", store_url=sqlite_url)
    assert queue.entity == "team"
    assert queue.config["spec"]["staging_bucket"] == "gs://my-bucket"
    assert queue.config_text == VERTEX_YAML


def test_cell_form_with_a_bad_config_names_the_key_and_stores_nothing(ip, sqlite_url):
    body = VERTEX_YAML.replace("  staging_bucket: gs://my-bucket\n", "")
    with pytest.raises(LaunchMagicError, match=r"spec\.staging_bucket"):
        ip.run_cell_magic("launch", "queue create broken --resource vertex", body)
    with pytest.raises(QueueError):
        api.get_queue("broken", store_url=sqlite_url)


def test_exist_ok_updates_an_existing_queue_so_notebooks_can_rerun(ip, capsys, sqlite_url):
    ip.run_cell_magic("launch", "queue create local --exist-ok", "timeout: 10\n")
    ip.run_cell_magic("launch", "queue create local --exist-ok", "timeout: 20\n")
    assert "updated queue alice/local (local-process)" in capsys.readouterr().out
    assert api.get_queue("local", store_url=sqlite_url).config == {"timeout": 20}
    with pytest.raises(LaunchMagicError, match="already exists|exists"):
        ip.run_cell_magic("launch", "queue create local", "timeout: 30\n")
    with pytest.raises(LaunchMagicError, match="with resource local-process, not vertex"):
        ip.run_cell_magic("launch", "queue create local --resource vertex --exist-ok", VERTEX_YAML)


def test_rerunning_the_quick_start_cell_says_unchanged_and_a_changed_body_says_how_to_update(ip, capsys, sqlite_url):
    body = "timeout: null\n"
    ip.run_cell_magic("launch", "queue create laptop --resource local-process", body)
    ip.run_cell_magic("launch", "queue create laptop --resource local-process", body)
    out = capsys.readouterr().out
    assert "created queue alice/laptop (local-process)" in out
    assert "unchanged queue alice/laptop (local-process)" in out
    with pytest.raises(LaunchMagicError) as err:
        ip.run_cell_magic("launch", "queue create laptop --resource local-process", "timeout: 60\n")
    assert str(err.value) == (
        "queue alice/laptop already exists with another config: add --exist-ok to this %%launch queue "
        "create line to update it to this config, or %launch queue delete alice/laptop first"
    )
    assert api.get_queue("laptop", store_url=sqlite_url).config == {"timeout": None}


def test_inside_a_run_every_launch_command_is_skipped_with_one_line(ip, capsys, sqlite_url, monkeypatch):
    from launch_jupyter.core.inside import mark

    monkeypatch.setenv(*next(iter(mark("3f2a9c1d7e", "alice/laptop").items())))
    ip.run_cell_magic("launch", "queue create laptop --resource local-process", "timeout: null\n")
    ip.run_cell("%launch agent start -q laptop")
    ip.run_cell("%launch submit -q laptop -p lr 0.1")
    out = capsys.readouterr().out.splitlines()
    assert out == [
        '[launch] inside run 3f2a9c1d… of alice/laptop: "%%launch queue create laptop --resource local-process" skipped',
        '[launch] inside run 3f2a9c1d… of alice/laptop: "%launch agent start -q laptop" skipped',
        '[launch] inside run 3f2a9c1d… of alice/laptop: "%launch submit -q laptop -p lr 0.1" skipped',
    ]
    assert api.list_queues(store_url=sqlite_url) == [] and api.agent_status() is None
    with pytest.raises(LaunchError, match=r"inside run 3f2a9c1d… of alice/laptop: submit\(\) queues nothing"):
        api.submit(QUICKSTART, "laptop", store_url=sqlite_url)


def test_cell_form_of_queue_edit_replaces_the_config(ip, sqlite_url):
    ip.run_cell("%launch queue create local")
    ip.run_cell_magic("launch", "queue edit local", "timeout: 30\nenv: {GREETING: hi}\n")
    assert api.get_queue("local", store_url=sqlite_url).config == {"timeout": 30, "env": {"GREETING": "hi"}}


def test_a_launch_error_shows_one_line_and_no_traceback(ip, capsys):
    result = ip.run_cell_quietly("%launch queue show nowhere")
    out = capsys.readouterr()
    text = out.out + out.err
    assert isinstance(result.error_in_exec, LaunchMagicError)
    assert 'queue "nowhere" does not exist' in text
    assert "Traceback" not in text and "File " not in text


@pytest.mark.parametrize(
    "line, expected",
    [
        ("%launch queue create", "the following arguments are required: NAME"),
        ("%launch frobnicate", "invalid choice: 'frobnicate'"),
        ("%launch agent start --max-jobs many", "invalid int value: 'many'"),
        ("%launch submit --priority urgent", "invalid choice: 'urgent'"),
        ("%launch queue", "needs an action"),
        ("%launch logs 'unclosed", "No closing quotation"),
    ],
)
def test_argument_errors_give_usage_and_one_clear_line(ip, line, expected):
    with pytest.raises(UsageError) as err:
        ip.run_cell(line)
    message = str(err.value)
    assert expected in message
    if "needs an action" not in message:
        assert message.startswith("usage: %launch")


def test_argument_errors_are_shown_without_traceback(ip, capsys):
    ip.run_cell_quietly("%launch queue create")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "usage: %launch queue create" in text and "Traceback" not in text


def test_only_queue_create_and_edit_take_a_cell_body(ip):
    with pytest.raises(UsageError, match="cell body"):
        ip.run_cell_magic("launch", "queue list", "spec: {}\n")


def test_config_traitlets_reach_the_api(ip, tmp_path, capsys):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    ip.run_cell(f"%config LaunchMagics.store = {other!r}")
    ip.run_cell("%config LaunchMagics.entity = 'research'")
    try:
        ip.run_cell("%launch queue create shared")
        assert api.get_queue("research/shared", store_url=other).created_by == "alice"
        ip.run_cell("%config LaunchMagics.default_queue = 'research/shared'")
        ip.run_cell(f"%launch submit --notebook {EXAMPLES / 'quickstart.ipynb'}")
        assert api.list_runs(store_url=other)[0].queue_name == "shared"
    finally:
        ip.run_cell("%config LaunchMagics.entity = ''")


def test_submit_queues_the_notebook_with_parameters_and_overrides(ip, capsys, sqlite_url):
    ip.run_cell("%launch queue create local")
    capsys.readouterr()
    notebook = EXAMPLES / "quickstart.ipynb"
    ip.run_cell(
        f"%launch submit -q local --notebook {notebook} -p name=Ada -p n 5 --priority high "
        "--resource-arg timeout=120 --name greet"
    )
    out = capsys.readouterr().out
    runs = api.list_runs(store_url=sqlite_url)
    assert len(runs) == 1
    run = runs[0]
    assert f"submitted run {run.id} to alice/local" in out
    assert "RunStatus(" in out  # the live status line (its text form outside a browser)
    assert run.parameters == {"name": "Ada", "n": 5}
    assert str(run.priority) == "high" and run.name == "greet"
    assert run.config["timeout"] == 120
    assert ip.user_ns["_launch_run"].id == run.id


def test_submit_dry_run_prints_the_request_and_queues_nothing(ip, capsys, sqlite_url):
    ip.run_cell("%launch queue create local")
    capsys.readouterr()
    ip.run_cell(f"%launch submit -q local --notebook {EXAMPLES / 'quickstart.ipynb'} -p n=2 --dry-run")
    out = capsys.readouterr().out
    assert "quickstart" in out
    assert api.list_runs(store_url=sqlite_url) == []


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("-q nowhere", 'queue "nowhere" does not exist'),
        ("-q local -p 1x=2", "not a Python identifier"),
        ("-q local --resource-arg timeout", "expected PATH=VALUE"),
        ("-q local --resource-arg timeout=soon", "timeout"),
    ],
)
def test_bad_submit_input_is_refused_and_nothing_is_queued(ip, sqlite_url, flags, expected):
    ip.run_cell("%launch queue create local")
    with pytest.raises(LaunchMagicError, match=expected):
        ip.run_cell(f"%launch submit {flags} --notebook {EXAMPLES / 'quickstart.ipynb'}")
    assert api.list_runs(store_url=sqlite_url) == []


def test_submit_without_a_notebook_outside_jupyter_says_what_was_tried(ip, sqlite_url):
    ip.run_cell("%launch queue create local")
    with pytest.raises(LaunchMagicError, match="could not tell which notebook"):
        ip.run_cell("%launch submit -q local")
    assert api.list_runs(store_url=sqlite_url) == []


def test_agent_start_runs_the_submitted_notebook_to_succeeded(ip, capsys, sqlite_url):
    ip.run_cell("%launch queue create local")
    ip.run_cell("%launch agent start -q local --max-jobs 2")
    out = capsys.readouterr().out
    assert "serving alice/local (max_jobs 2)" in out
    status = api.agent_status()
    assert status["state"] in ("starting", "running") and status["max_jobs"] == 2

    ip.run_cell(f"%launch submit -q local --notebook {EXAMPLES / 'quickstart.ipynb'} -p name=Ada")
    handle = ip.user_ns["_launch_run"]
    assert handle.wait(timeout=120) is RunState.SUCCEEDED
    nb = nbformat.read(handle.output_notebook, as_version=4)
    outputs = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "hello, Ada!" in outputs

    ip.run_cell(f"%launch logs {handle.id}")
    assert "hello, Ada!" in capsys.readouterr().out

    ip.run_cell("%launch agent status")
    assert "AgentPanel(running" in capsys.readouterr().out
    ip.run_cell("%launch agent stop")
    assert "agent stopped" in capsys.readouterr().out
    assert api.agent_status() is None


def test_cancel_a_queued_run(ip, capsys, sqlite_url):
    ip.run_cell("%launch queue create local")
    ip.run_cell(f"%launch submit -q local --notebook {EXAMPLES / 'parameters.ipynb'}")
    run_id = ip.user_ns["_launch_run"].id
    capsys.readouterr()
    ip.run_cell(f"%launch cancel {run_id}")
    assert f"run {run_id}: cancelled" in capsys.readouterr().out
    assert api.get_run(run_id, store_url=sqlite_url).state is RunState.CANCELLED
    with pytest.raises(LaunchMagicError, match="already cancelled"):
        ip.run_cell(f"%launch cancel {run_id}")


def test_runs_and_editor_show_their_widgets(ip, capsys):
    ip.run_cell("%launch queue create local")
    ip.run_cell(f"%launch submit -q local --notebook {EXAMPLES / 'quickstart.ipynb'}")
    capsys.readouterr()
    ip.run_cell("%launch runs --queue local")
    assert "RunBoard(local: 1 queued; page 1, 1 shown)" in capsys.readouterr().out
    ip.run_cell("%launch editor local")
    assert "QueueEditor(local, local-process, stored, 0 problem(s))" in capsys.readouterr().out
    ip.run_cell("%launch queue edit local")
    assert "QueueEditor(local" in capsys.readouterr().out


def complete(ip, line: str) -> list[str]:
    with provisionalcompleter():
        return sorted({c.text for c in ip.Completer.completions(line, len(line))})


def test_tab_completes_subcommands_queue_names_resources_and_flags(ip):
    ip.run_cell("%launch queue create alpha")
    ip.run_cell("%launch queue create beta")
    assert complete(ip, "%launch q") == ["queue"]
    assert complete(ip, "%launch ") == sorted(
        ["queue", "submit", "agent", "runs", "cancel", "logs", "editor", "schedule", "sweep", "compare"]
    )
    assert complete(ip, "%launch queue ") == sorted(["create", "list", "show", "edit", "delete"])
    assert complete(ip, "%launch queue show ") == ["alpha", "beta"]
    assert complete(ip, "%launch submit -q a") == ["alpha"]
    assert complete(ip, "%launch editor b") == ["beta"]
    assert complete(ip, "%launch agent s") == ["start", "status", "stop"]
    assert "vertex" in complete(ip, "%launch queue create x --resource ")
    assert "--dry-run" in complete(ip, "%launch submit --d")
    assert complete(ip, "%launch queue create x --p") == ["--prioritization"]


def test_settings_from_the_ipython_config_file(tmp_path, sqlite_url):
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "ipython_config.py").write_text(
        f"c.LaunchMagics.store = {sqlite_url!r}\nc.LaunchMagics.default_queue = 'local'\n"
    )
    api.create_queue("local", store_url=sqlite_url)
    code = (
        "from IPython.testing.globalipapp import start_ipython\n"
        "from traitlets.config import Config\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from traitlets.config.loader import PyFileConfigLoader\n"
        f"cfg = PyFileConfigLoader('ipython_config.py', {str(profile)!r}).load_config()\n"
        "ip = InteractiveShell.instance(config=cfg)\n"
        "ip.run_line_magic('load_ext', 'launch_jupyter')\n"
        f"ip.run_line_magic('launch', 'submit --notebook {EXAMPLES / 'quickstart.ipynb'}')\n"
    )
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert "to alice/local" in out
    assert len(api.list_runs(store_url=sqlite_url)) == 1


def test_vertex_walkthrough_runs_offline_up_to_the_real_submit(tmp_path, sqlite_url, monkeypatch):
    """vertex.ipynb without its cells tagged `gcp`: config, queue, and the dry-run requests (GPU too)."""
    import nbclient

    for name in ("vertex.ipynb", "quickstart.ipynb"):
        (tmp_path / name).write_bytes((EXAMPLES / name).read_bytes())
    nb = nbformat.read(tmp_path / "vertex.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if "gcp" not in c.metadata.get("tags", [])]
    monkeypatch.setenv("LAUNCH_JUPYTER_DB", sqlite_url)  # the kernel inherits it
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "parent: projects/my-project/locations/us-central1" in text
    assert "accelerator_type: NVIDIA_TESLA_T4" in text
    # Each dry run ends with its price from the shipped table (the T4 at $0.35 × 1.15 an hour).
    assert "# hourly (on-demand, us-central1): $" in text and "NVIDIA_TESLA_T4 × 1: $0.4025/h each" in text
    assert "service_account: launch-runner@my-project.iam.gserviceaccount.com" in text
    assert api.get_queue("vertex", store_url=sqlite_url).config["spec"]["staging_bucket"] == "gs://my-bucket"
    assert api.list_runs(store_url=sqlite_url) == []
