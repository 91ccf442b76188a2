"""The agent config file ``launch-config.yaml``: dataclasses, paths, loading with precedence
defaults < file < env vars < CLI flags. Loading/validation is implemented below the dataclasses."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "launch_jupyter"


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "launch_jupyter"


def default_config_path() -> Path:
    return Path(os.environ.get("LAUNCH_JUPYTER_CONFIG") or config_home() / "launch-config.yaml")


def default_store_url() -> str:
    return os.environ.get("LAUNCH_JUPYTER_DB") or f"sqlite:///{data_home() / 'launch.db'}"


def current_user() -> str:
    """The person submitting: ``LAUNCH_JUPYTER_USER`` or the OS user."""
    import getpass

    return os.environ.get("LAUNCH_JUPYTER_USER") or getpass.getuser()


@dataclass
class BuilderConfig:
    type: str = "noop"  # docker | kaniko | noop
    destination: str | None = None  # repository without tag, e.g. us-docker.pkg.dev/p/r/img
    platform: str = "linux/amd64"
    build_context_store: str | None = None  # gs://bucket/prefix (kaniko)
    kaniko_image: str = "gcr.io/kaniko-project/executor:latest"
    network: str | None = None  # docker build network mode (e.g. "host"); default: the engine's
    base_image: str | None = None  # overrides the generated Dockerfile's FROM


@dataclass
class RegistryConfig:
    uri: str | None = None


@dataclass
class EnvironmentConfig:
    type: str = "gcp"
    project: str | None = None
    region: str | None = None
    api_endpoint: str | None = None
    api_transport: str = "grpc"  # grpc | rest
    credentials: str = "default"  # default (ADC) | anonymous (emulators)


@dataclass
class AgentConfig:
    max_jobs: int = 1  # -1 = no limit
    entity: str | None = None
    queues: list[str] = field(default_factory=list)
    builder: BuilderConfig = field(default_factory=BuilderConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
    store: str = field(default_factory=default_store_url)
    poll_interval: float = 2.0
    lease_seconds: float = 30.0
    data_dir: Path = field(default_factory=data_home)  # runs' working folders live under data_dir/runs
