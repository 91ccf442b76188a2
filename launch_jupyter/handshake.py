"""The kernel side of the save handshake with JupyterLab (js/labextension).

``%launch submit`` opens a comm on the target ``launch_jupyter.save``; the JupyterLab extension
answers ``saving`` at once, saves the notebook through its document context and answers ``saved``
(with the path and ``last_modified``) only when the server has written the file. The kernel then
reads the file once, knowing it is complete.

The cell that runs ``%launch submit`` blocks the kernel's main thread, so a reply on the shell
channel would wait behind it. ipykernel 7 routes a comm's replies to the subshell (JEP 91) that
published on it; we open the comm on behalf of a subshell of our own, so the reply is handled on
that subshell's thread while the main thread waits. Kernels without subshells (ipykernel < 7),
frontends without the extension (VS Code, nbclassic, a disabled extension) and kernels with no
frontend get ``None``: the caller submits the notebook as last saved and says so.
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass
from pathlib import Path

TARGET = "launch_jupyter.save"
ACK_TIMEOUT = 3.0  # an extension that is there says "saving" within this (a loaded machine included)
SAVE_TIMEOUT = 60.0  # a save can wait on a dialog ("the file changed on disk: overwrite?")

_subshells: dict[int, str] = {}  # id(kernel) → the subshell that hears our replies
_lock = threading.Lock()


@dataclass
class SaveReply:
    """What the frontend said: ``saved`` (the file on disk is complete) or ``error``."""

    status: str
    path: str = ""
    last_modified: str | None = None
    message: str = ""


def _kernel():
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None)


def why_not_available() -> str | None:
    """None when this kernel can hold the handshake; else why not, in a few words."""
    kernel = _kernel()
    if kernel is None:
        return "this is not a Jupyter kernel"
    if getattr(kernel, "shell_channel_thread", None) is None:
        return "this kernel cannot hear a reply while a cell runs (it needs ipykernel 7 or newer)"
    from .packaging.discovery import kernel_id

    if kernel_id() is None:
        return "the kernel was not started by a Jupyter server"
    return None


def _subshell_id(kernel) -> str:
    """A subshell of this kernel, created once through its own control channel (JEP 91)."""
    with _lock:
        if id(kernel) in _subshells:
            return _subshells[id(kernel)]
        from jupyter_client import BlockingKernelClient

        from .packaging.discovery import connection_file

        client = BlockingKernelClient(connection_file=str(connection_file()))
        client.load_connection_file()
        client.start_channels(shell=False, iopub=False, stdin=False, hb=False, control=True)
        try:
            request = client.session.msg("create_subshell_request", {})
            client.control_channel.send(request)
            while True:
                reply = client.control_channel.get_msg(timeout=ACK_TIMEOUT)
                if reply["parent_header"].get("msg_id") == request["header"]["msg_id"]:
                    break
        finally:
            client.stop_channels()
        if reply["content"].get("status") != "ok":
            raise RuntimeError(reply["content"].get("evalue", "create_subshell_request failed"))
        _subshells[id(kernel)] = reply["content"]["subshell_id"]
        return _subshells[id(kernel)]


def _close(comm) -> None:
    try:
        comm.close()
    except KeyError:  # the frontend closed it first (its comm_close was handled on the subshell)
        pass


def request_save(path: Path) -> SaveReply | None:
    """Ask JupyterLab to save the notebook at ``path`` and wait until it is written.

    None when no extension answered (or this kernel cannot hear one); a ``SaveReply`` otherwise.
    """
    if why_not_available() is not None:
        return None
    kernel = _kernel()
    try:
        subshell = _subshell_id(kernel)
    except Exception:  # an old or unusual kernel: the caller falls back to the saved file
        return None
    replies: list[dict] = []
    arrived = threading.Condition()

    def on_msg(msg) -> None:  # runs on the subshell's thread
        with arrived:
            replies.append(msg["content"]["data"] or {})
            arrived.notify_all()

    def open_comm():
        # Publishing "as" our subshell makes ipykernel route the frontend's replies to it. A copy
        # of the context: the running cell keeps its own parent (its outputs stay where they are).
        parent = kernel.get_parent()
        kernel._shell_parent.set({**parent, "header": {**parent.get("header", {}), "subshell_id": subshell}})
        from comm import create_comm

        comm = create_comm(target_name=TARGET, data={"path": str(path)})
        comm.on_msg(on_msg)
        return comm

    # ipykernel remembers the context of the last message it handled, on any subshell, as the
    # parent of output from other threads (``Kernel._shell_context``). Our replies are handled on
    # the subshell with JupyterLab's headers (which may name a subshell JupyterLab opened for this
    # comm and deletes when it closes): left in place, that would route every widget's replies
    # to a dead subshell afterwards. Put back what the cell had.
    shell_context = getattr(kernel, "_shell_context", None)
    try:
        comm = contextvars.copy_context().run(open_comm)
    except Exception:
        return None

    def wait_for(statuses: set[str], timeout: float) -> dict | None:
        with arrived:
            arrived.wait_for(lambda: any(r.get("status") in statuses for r in replies), timeout)
            return next((r for r in replies if r.get("status") in statuses), None)

    try:
        if wait_for({"saving", "saved", "error"}, ACK_TIMEOUT) is None:
            return None
        final = wait_for({"saved", "error"}, SAVE_TIMEOUT)
    finally:
        _close(comm)
        if shell_context is not None:
            kernel._shell_context = shell_context
    if final is None:
        return SaveReply("error", message=f"JupyterLab did not finish saving within {SAVE_TIMEOUT:.0f} s")
    return SaveReply(final["status"], final.get("path", ""), final.get("last_modified"), final.get("message", ""))
