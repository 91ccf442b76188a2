"""Who and where: the identity of this host, and of a run as every target shows it to the notebook.

``host_identity()`` reads two small files of this machine (``/etc/machine-id`` and the kernel's boot id),
so it lives here with a cache rather than in the pure parts of ``core``; it never touches the network.
"""

from __future__ import annotations

import functools
import hashlib
import socket
from pathlib import Path

_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def _first_line(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


@functools.lru_cache(maxsize=8)
def _host_identity(hostname: str) -> str:
    machine = next((m for m in map(_first_line, _MACHINE_ID_FILES) if m), "")
    boot = _first_line(_BOOT_ID_FILE)
    digest = hashlib.sha256(f"{machine}/{boot}".encode()).hexdigest()[:12]
    return f"{hostname}/{digest}"


def host_identity() -> str:
    """``hostname/digest``: the hostname plus a digest of the machine id and the boot id.

    Two cloned VMs that share a hostname (and even a machine id) differ by their boot id, so a run
    bound to one of them is never taken for the other's. After a reboot the identity changes too:
    the processes a host-bound run had are gone with the old boot.
    """
    return _host_identity(socket.gethostname())


def host_name(identity: str | None) -> str:
    """The hostname part of a host identity, for people."""
    return (identity or "").split("/", 1)[0]


def run_identity(
    *,
    run_id: str,
    entity: str,
    queue: str,
    author: str,
    output: str = "",
    workdir: str = "",
) -> dict[str, str]:
    """The ``LAUNCH_*`` environment every target gives a run, with the same names and meanings.

    ``LAUNCH_QUEUE`` is always ``entity/name``; ``LAUNCH_OUTPUT`` is where the executed notebook goes
    (a local path or a ``gs://`` URI); ``LAUNCH_WORKDIR`` is the run's own folder where it has one.
    """
    path = queue if "/" in queue else f"{entity}/{queue}"
    env = {
        "LAUNCH_RUN_ID": run_id,
        "LAUNCH_QUEUE": path,
        "LAUNCH_ENTITY": entity,
        "LAUNCH_AUTHOR": author,
        "LAUNCH_OUTPUT": output,
        "LAUNCH_WORKDIR": workdir,
    }
    return {k: v for k, v in env.items() if v}


def macro_values(
    *, run_id: str, entity: str, queue: str, author: str, notebook: str, image_uri: str | None
) -> dict[str, str | None]:
    """The ``${...}`` dispatch macros a queue config may use, built once for every target."""
    return {
        "image_uri": image_uri,
        "run_id": run_id,
        "queue": queue,
        "entity": entity,
        "author": author,
        "notebook": notebook,
    }


def how_long(seconds: float) -> str:
    """A span in words for a message: "45 s", "12 min", "3.5 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
