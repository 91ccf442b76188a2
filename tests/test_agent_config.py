"""The agent config file launch-config.yaml: paths, precedence, validation with key paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch_jupyter.core.config import AgentConfig, load_agent_config
from launch_jupyter.core.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "launch-config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str, **kwargs) -> AgentConfig:
    return load_agent_config(write(tmp_path, text), env=kwargs.pop("env", {}), **kwargs)


def error_of(tmp_path: Path, text: str, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, **kwargs)
    return info.value


# --- paths and defaults ----------------------------------------------------------------------


def test_no_file_at_the_default_path_gives_defaults(isolated_home):
    config = load_agent_config()
    assert config.max_jobs == 1
    assert config.queues == []
    assert config.builder.type == "noop"
    assert config.builder.platform == "linux/amd64"
    assert config.environment.api_transport == "grpc"
    assert config.environment.credentials == "default"
    assert config.data_dir == isolated_home / "data" / "launch_jupyter"
    assert config.store == f"sqlite:///{isolated_home / 'data' / 'launch_jupyter' / 'launch.db'}"


def test_default_path_is_under_xdg_config_home(isolated_home):
    folder = isolated_home / "config" / "launch_jupyter"
    folder.mkdir(parents=True)
    (folder / "launch-config.yaml").write_text("max_jobs: 5\nentity: ml-team\n")
    config = load_agent_config()
    assert (config.max_jobs, config.entity) == (5, "ml-team")


def test_launch_jupyter_config_env_names_the_file(tmp_path):
    path = write(tmp_path, "max_jobs: 7\n", "elsewhere.yaml")
    assert load_agent_config(env={"LAUNCH_JUPYTER_CONFIG": str(path)}).max_jobs == 7


def test_explicit_path_wins_over_launch_jupyter_config(tmp_path):
    explicit = write(tmp_path, "max_jobs: 3\n", "explicit.yaml")
    other = write(tmp_path, "max_jobs: 9\n", "other.yaml")
    assert load_agent_config(explicit, env={"LAUNCH_JUPYTER_CONFIG": str(other)}).max_jobs == 3


def test_missing_explicit_file_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_agent_config(missing, env={})


def test_missing_file_named_by_env_is_an_error_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"gone.yaml \(named by LAUNCH_JUPYTER_CONFIG\) does not exist"):
        load_agent_config(env={"LAUNCH_JUPYTER_CONFIG": str(tmp_path / "gone.yaml")})


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_agent_config(tmp_path, env={})


def test_empty_file_and_comment_only_file_give_defaults(tmp_path):
    for text in ("", "# nothing yet\n"):
        config = load_text(tmp_path, text)
        assert (config.max_jobs, config.queues, config.builder.type) == (1, [], "noop")


def test_full_file_is_read(tmp_path):
    config = load_text(
        tmp_path,
        """
max_jobs: -1
entity: ml-team
queues: [gpu, other-team/cpu]
builder:
  type: kaniko
  destination: us-docker.pkg.dev/proj/repo/img
  platform: linux/arm64
  build_context_store: gs://bucket/contexts
  kaniko_image: gcr.io/kaniko-project/executor:v1.23.0
  network: host
  base_image: nvidia/cuda:12.2.0-runtime-ubuntu22.04
registry:
  uri: us-docker.pkg.dev/proj/repo
environment:
  type: gcp
  project: my-project
  region: europe-west4
  api_endpoint: http://127.0.0.1:8080
  api_transport: rest
  credentials: anonymous
store: postgresql+psycopg://postgres@127.0.0.1:5432/test
poll_interval: 0.5
lease_seconds: 60
data_dir: /var/lib/launch
""",
    )
    assert config.max_jobs == -1
    assert config.entity == "ml-team"
    assert config.queues == ["gpu", "other-team/cpu"]
    assert config.builder.type == "kaniko"
    assert config.builder.destination == "us-docker.pkg.dev/proj/repo/img"
    assert config.builder.platform == "linux/arm64"
    assert config.builder.build_context_store == "gs://bucket/contexts"
    assert config.builder.kaniko_image == "gcr.io/kaniko-project/executor:v1.23.0"
    assert config.builder.network == "host"
    assert config.builder.base_image == "nvidia/cuda:12.2.0-runtime-ubuntu22.04"
    assert config.registry.uri == "us-docker.pkg.dev/proj/repo"
    assert config.environment.project == "my-project"
    assert config.environment.region == "europe-west4"
    assert config.environment.api_endpoint == "http://127.0.0.1:8080"
    assert config.environment.api_transport == "rest"
    assert config.environment.credentials == "anonymous"
    assert config.store == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert config.poll_interval == 0.5
    assert config.lease_seconds == 60.0
    assert config.data_dir == Path("/var/lib/launch")


def test_json_file_is_read_too(tmp_path):
    config = load_text(tmp_path, '{"max_jobs": 2, "builder": {"type": "docker"}}')
    assert (config.max_jobs, config.builder.type) == (2, "docker")


def test_relative_data_dir_is_relative_to_the_file_and_moves_the_default_store(tmp_path):
    config = load_text(tmp_path, "data_dir: state\n")
    assert config.data_dir == tmp_path / "state"
    assert config.store == f"sqlite:///{tmp_path / 'state' / 'launch.db'}"


def test_empty_values_mean_not_set(tmp_path):
    config = load_text(tmp_path, "entity:\nqueues:\nbuilder:\nmax_jobs:\n")
    assert (config.entity, config.queues, config.builder.type, config.max_jobs) == (
        None,
        [],
        "noop",
        1,
    )


def test_duplicate_queues_are_kept_once_in_order(tmp_path):
    assert load_text(tmp_path, "queues: [b, a, b]\n").queues == ["b", "a"]


# --- precedence ------------------------------------------------------------------------------


def test_precedence_defaults_file_env_overrides(tmp_path):
    path = write(
        tmp_path,
        "max_jobs: 2\nentity: file-team\npoll_interval: 5\nqueues: [from-file]\n"
        "builder:\n  type: docker\n  destination: localhost:5000/img\n",
    )
    env = {
        "LAUNCH_JUPYTER_MAX_JOBS": "3",
        "LAUNCH_JUPYTER_QUEUES": "env-a, env-b",
        "LAUNCH_JUPYTER_BUILDER": "kaniko",
    }
    config = load_agent_config(path, env=env, overrides={"max_jobs": 4, "builder": {"type": "noop"}})
    assert config.max_jobs == 4  # override > env > file
    assert config.queues == ["env-a", "env-b"]  # env > file
    assert config.entity == "file-team"  # file > default
    assert config.poll_interval == 5.0
    assert config.builder.type == "noop"  # override > env > file
    assert config.builder.destination == "localhost:5000/img"  # sections merge key by key
    assert config.lease_seconds == 30.0  # default


def test_none_override_means_flag_not_given(tmp_path):
    config = load_text(tmp_path, "max_jobs: 2\nentity: team\n", overrides={"max_jobs": None, "entity": None})
    assert (config.max_jobs, config.entity) == (2, "team")


def test_every_launch_jupyter_env_var(tmp_path):
    env = {
        "LAUNCH_JUPYTER_DB": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "LAUNCH_JUPYTER_MAX_JOBS": "-1",
        "LAUNCH_JUPYTER_ENTITY": "team",
        "LAUNCH_JUPYTER_QUEUES": "a,team/b,,",
        "LAUNCH_JUPYTER_POLL_INTERVAL": "0.25",
        "LAUNCH_JUPYTER_BUILDER": "docker",
    }
    config = load_agent_config(env=env)
    assert config.store == env["LAUNCH_JUPYTER_DB"]
    assert config.max_jobs == -1
    assert config.entity == "team"
    assert config.queues == ["a", "team/b"]
    assert config.poll_interval == 0.25
    assert config.builder.type == "docker"


def test_empty_env_var_counts_as_unset(tmp_path):
    config = load_text(
        tmp_path,
        "entity: team\n",
        env={"LAUNCH_JUPYTER_ENTITY": "", "LAUNCH_JUPYTER_MAX_JOBS": " "},
    )
    assert (config.entity, config.max_jobs) == ("team", 1)


def test_google_cloud_env_fills_project_and_region_only_when_unset(tmp_path):
    env = {"GOOGLE_CLOUD_PROJECT": "env-project", "GOOGLE_CLOUD_REGION": "us-central1"}
    assert load_agent_config(env=env).environment.project == "env-project"
    assert load_agent_config(env=env).environment.region == "us-central1"
    config = load_text(tmp_path, "environment:\n  region: europe-west4\n", env=env)
    assert (config.environment.project, config.environment.region) == (
        "env-project",
        "europe-west4",
    )
    config = load_agent_config(env=env, overrides={"environment": {"project": "flag-project"}})
    assert config.environment.project == "flag-project"


def test_process_environment_is_the_default_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCH_JUPYTER_MAX_JOBS", "6")
    monkeypatch.setenv("LAUNCH_JUPYTER_DB", "sqlite:///" + str(tmp_path / "x.db"))
    config = load_agent_config()
    assert config.max_jobs == 6
    assert config.store == "sqlite:///" + str(tmp_path / "x.db")


def test_overrides_accept_command_line_text(tmp_path):
    config = load_agent_config(env={}, overrides={"max_jobs": "3", "poll_interval": "1.5", "queues": "a,b"})
    assert (config.max_jobs, config.poll_interval, config.queues) == (3, 1.5, ["a", "b"])


# --- unknown keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, path, suggestion",
    [
        ("max_job: 2\n", "max_job", "max_jobs"),
        ("maxJobs: 2\n", "maxJobs", "max_jobs"),
        ("queue: [a]\n", "queue", "queues"),
        ("builder:\n  destinaton: x\n", "builder.destinaton", "builder.destination"),
        ("builder:\n  typ: docker\n", "builder.typ", "builder.type"),
        ("environment:\n  regoin: us\n", "environment.regoin", "environment.region"),
        (
            "environment:\n  apiTransport: rest\n",
            "environment.apiTransport",
            "environment.api_transport",
        ),
        ("destination: x\n", "destination", "builder.destination"),
        ("registry:\n  url: x\n", "registry.url", "registry.uri"),
    ],
)
def test_unknown_key_names_the_path_and_suggests(tmp_path, text, path, suggestion):
    err = error_of(tmp_path, text)
    assert err.path == path
    assert f'did you mean "{suggestion}"?' in str(err)
    assert str(tmp_path / "launch-config.yaml") in str(err)


def test_unknown_key_with_nothing_close_lists_the_valid_keys(tmp_path):
    err = error_of(tmp_path, "zzzzzz: 1\n")
    assert err.path == "zzzzzz"
    assert "valid keys: builder, data_dir, entity" in str(err)


def test_unknown_override_key_is_an_error_too():
    with pytest.raises(
        ConfigError,
        match=r'builder\.destinaton: unknown key; did you mean "builder\.destination"\?',
    ):
        load_agent_config(env={}, overrides={"builder": {"destinaton": "x"}})


# --- wrong values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, path, message",
    [
        ("max_jobs: 0\n", "max_jobs", "≥ 1, or -1"),
        ("max_jobs: -2\n", "max_jobs", "≥ 1, or -1"),
        ("max_jobs: 1.5\n", "max_jobs", "≥ 1, or -1"),
        ("max_jobs: true\n", "max_jobs", "≥ 1, or -1"),
        ('max_jobs: "3"\n', "max_jobs", "≥ 1, or -1"),
        ("poll_interval: 0\n", "poll_interval", "> 0"),
        ("poll_interval: -1\n", "poll_interval", "> 0"),
        ("poll_interval: soon\n", "poll_interval", "> 0"),
        ("lease_seconds: .nan\n", "lease_seconds", "> 0"),
        ("entity: [a]\n", "entity", "must be text"),
        ("entity: a/b\n", "entity", "not an entity"),
        ("queues: gpu\n", "queues", "must be a list"),
        ("queues: [ok, 'bad name']\n", "queues[1]", "is not a queue"),
        ("queues: [ok, 3]\n", "queues[1]", "is not a queue"),
        ("queues: ['/x']\n", "queues[0]", "is not a queue"),
        ("queues: ['" + "q" * 65 + "']\n", "queues[0]", "is not a queue"),
        ("builder: docker\n", "builder", "must be a mapping"),
        ("builder:\n  type: podman\n", "builder.type", "docker | kaniko | kaniko-kubernetes | noop"),
        ("builder:\n  type: dockr\n", "builder.type", 'did you mean "docker"'),
        ("builder:\n  destination: repo/img:latest\n", "builder.destination", "tag or digest"),
        ("builder:\n  destination: repo/img@sha256:abc\n", "builder.destination", "tag or digest"),
        ("builder:\n  destination: https://repo/img\n", "builder.destination", "without a scheme"),
        (
            "builder:\n  build_context_store: s3://bucket/x\n",
            "builder.build_context_store",
            "gs://",
        ),
        ("builder:\n  build_context_store: bucket\n", "builder.build_context_store", "gs://"),
        ("builder:\n  platform: 64\n", "builder.platform", "must be text"),
        ("environment:\n  api_transport: http\n", "environment.api_transport", "grpc | rest"),
        (
            "environment:\n  credentials: key.json\n",
            "environment.credentials",
            "default | anonymous",
        ),
        ("environment:\n  type: aws\n", "environment.type", "gcp"),
        ("store: /tmp/launch.db\n", "store", "SQLAlchemy URL"),
        ("data_dir: 3\n", "data_dir", "must be text"),
    ],
)
def test_wrong_value_names_the_key_path(tmp_path, text, path, message):
    err = error_of(tmp_path, text)
    assert err.path == path
    assert message in str(err)
    assert str(err).startswith(path + ": ")


def test_registry_destination_with_port_is_not_a_tag(tmp_path):
    config = load_text(tmp_path, "builder:\n  destination: 127.0.0.1:5000/proj/img\n")
    assert config.builder.destination == "127.0.0.1:5000/proj/img"


def test_store_error_never_repeats_the_url(tmp_path):
    err = error_of(tmp_path, "store: user:hunter2@db-host/launch\n")
    assert err.path == "store"
    assert "hunter2" not in str(err)


@pytest.mark.parametrize(
    "env, name",
    [
        ({"LAUNCH_JUPYTER_MAX_JOBS": "many"}, "LAUNCH_JUPYTER_MAX_JOBS"),
        ({"LAUNCH_JUPYTER_MAX_JOBS": "0"}, "LAUNCH_JUPYTER_MAX_JOBS"),
        ({"LAUNCH_JUPYTER_POLL_INTERVAL": "fast"}, "LAUNCH_JUPYTER_POLL_INTERVAL"),
        ({"LAUNCH_JUPYTER_BUILDER": "buildah"}, "LAUNCH_JUPYTER_BUILDER"),
        ({"LAUNCH_JUPYTER_QUEUES": "a,b c"}, "LAUNCH_JUPYTER_QUEUES"),
        ({"LAUNCH_JUPYTER_DB": "launch.db"}, "LAUNCH_JUPYTER_DB"),
    ],
)
def test_bad_env_var_is_named(env, name):
    with pytest.raises(ConfigError) as info:
        load_agent_config(env=env)
    assert info.value.path == name
    assert str(info.value).startswith(name + ": ")


def test_bad_override_names_the_key_path():
    with pytest.raises(ConfigError) as info:
        load_agent_config(env={}, overrides={"builder": {"type": "podman"}})
    assert info.value.path == "builder.type"


# --- syntax --------------------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    err = error_of(tmp_path, "max_jobs: 2\nqueues: [a, b\nentity: x\n")
    message = str(err)
    assert str(tmp_path / "launch-config.yaml") in message
    assert "line 3" in message


def test_top_level_list_is_refused(tmp_path):
    err = error_of(tmp_path, "- max_jobs: 2\n")
    assert "top level must be a mapping" in str(err)


def test_duplicate_key_is_refused(tmp_path):
    err = error_of(tmp_path, "max_jobs: 2\nmax_jobs: 3\n")
    assert 'found the key "max_jobs" twice' in str(err)
    assert "line 2" in str(err)


def test_bad_input_reads_nothing_else(tmp_path):
    # A failed load leaves nothing behind: no data folder, no database file.
    error_of(tmp_path, "max_jobs: 0\ndata_dir: made\n")
    assert not (tmp_path / "made").exists()


def test_a_plugin_builder_is_a_valid_type_in_the_file_and_in_a_queue(tmp_path, monkeypatch):
    """``builder.type`` is any entry point of the ``launch_jupyter.builders`` group, so a builder
    from another distribution needs no edit here (a real dist-info on sys.path, read by
    importlib.metadata as for any installed package)."""
    import importlib

    from launch_jupyter import api

    dist = tmp_path / "site" / "lj_plugin_builder-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lj-plugin-builder\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[launch_jupyter.builders]\nbuildah = lj_plugin_builder:Buildah\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    config = tmp_path / "launch-config.yaml"
    config.write_text("builder:\n  type: buildah\n")
    assert load_agent_config(config).builder.type == "buildah"
    assert api.create_queue("plugged", "local-process", config="builder: {type: buildah}\n").name == "plugged"
    with pytest.raises(ConfigError, match="buildah"):  # the refusal lists the plugin among the choices
        api.create_queue("typo", "local-process", config="builder: {type: buildahh}\n")
    assert [q.name for q in api.list_queues()] == ["plugged"]
