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


_NO_MACHINE = hashlib.sha256(b"").hexdigest()[:6]  # no machine id to read: never "the same machine"


@functools.lru_cache(maxsize=8)
def _host_identity(hostname: str) -> str:
    machine = next((m for m in map(_first_line, _MACHINE_ID_FILES) if m), "")
    boot = _first_line(_BOOT_ID_FILE)
    machine_part = hashlib.sha256(machine.encode()).hexdigest()[:6] if machine else _NO_MACHINE
    boot_part = hashlib.sha256(f"{machine}/{boot}".encode()).hexdigest()[:6]
    return f"{hostname}/{machine_part}{boot_part}"


def host_identity() -> str:
    """``hostname/digest``: the hostname, then a digest of the machine id and one of the boot id.

    Two cloned VMs that share a hostname (and even a machine id) differ by their boot id, so a run
    bound to one of them is never taken for the other's. After a reboot the identity changes too:
    the processes a host-bound run had are gone with the old boot (``rebooted_from`` tells).
    """
    return _host_identity(socket.gethostname())


def rebooted_from(earlier: str | None, now: str) -> bool:
    """True when ``earlier`` is this machine (same hostname and machine id) in an earlier boot: what
    ran there as a process is gone for certain. A machine without a machine id never matches."""
    if not earlier or earlier == now or "/" not in earlier or "/" not in now:
        return False
    (name_a, digest_a), (name_b, digest_b) = earlier.split("/", 1), now.split("/", 1)
    machine = digest_b[:6]
    return name_a == name_b and len(digest_a) == len(digest_b) == 12 and digest_a[:6] == machine != _NO_MACHINE


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
