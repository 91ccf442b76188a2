"""The job's entrypoint: ``python -m launch_jupyter.execute --notebook N --output PATH [--parameters JSON]``.

Runs the notebook with papermill in the ``python3`` kernel, prints each cell's start and any error
to stdout (flushed, so Cloud Logging shows progress on Vertex), and writes the executed notebook to
PATH: a local path, a ``/gcs/<bucket>/...`` path (Vertex mounts buckets there), a ``gs://`` or an
``s3://`` URI (uploaded when the run ends, e.g. from a Kubernetes pod).
Exit status: 0 success, 1 a cell raised or the run broke, 2 bad arguments, 143 terminated.
With ``--status-file`` the exit status is also written as JSON, so whoever started this process can
learn how it ended even if it was not around to wait for it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

from .core.inside import mark

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TERMINATED = 0, 1, 2, 143


def say(message: str) -> None:
    """One progress line on stdout, flushed at once (log collectors read it live)."""
    print(f"[launch] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--parameters`` falls back to the LAUNCH_PARAMETERS environment variable."""
    parser = argparse.ArgumentParser(prog="python -m launch_jupyter.execute", description=__doc__.split("\n")[0])
    parser.add_argument("--notebook", required=True, help="the notebook to run")
    parser.add_argument("--output", required=True, help="where the executed notebook goes (path, /gcs/..., gs://...)")
    parser.add_argument("--parameters", help="a JSON object of parameters (default: env LAUNCH_PARAMETERS)")
    parser.add_argument("--cwd", help="working folder for the kernel (default: the notebook's folder)")
    parser.add_argument("--kernel", default="python3", help="kernel name (default: python3)")
    parser.add_argument("--status-file", help="write {'returncode': ..., 'error': ...} here on exit")
    parser.add_argument(
        "--progress-file",
        help="keep the running cell here as JSON (default: progress.json "
        "beside --status-file, else in $LAUNCH_WORKDIR)",
    )
    return parser.parse_args(argv)


def load_parameters(text: str | None) -> dict:
    """The parameters as a dict; a ValueError names what is wrong."""
    if text is None:
        text = os.environ.get("LAUNCH_PARAMETERS") or "{}"
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ValueError(f"--parameters / LAUNCH_PARAMETERS is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError("--parameters / LAUNCH_PARAMETERS must be a JSON object, e.g. '{\"n\": 3}'")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the notebook; returns the process exit status."""
    args = parse_args(argv)
    status_file = Path(args.status_file) if args.status_file else None
    _progress["path"] = _progress_path(args, status_file)
    _on_sigterm(status_file)
    code, error = EXIT_FAILED, ""
    try:
        code, error = _run(args)
    except ValueError as err:
        code, error = EXIT_USAGE, str(err)
        say(f"error: {error}")
    except Exception as err:  # anything else still ends in a status file and a readable last line
        code, error = EXIT_FAILED, f"{type(err).__name__}: {err}"
        say(f"error: {error}")
    finally:
        _write_status(status_file, code, error)
    return code


# Where the running cell is written (None: nowhere); set once by main().
_progress: dict[str, Path | None] = {"path": None}


def _progress_path(args: argparse.Namespace, status_file: Path | None) -> Path | None:
    from .progress import PROGRESS_FILE

    if args.progress_file:
        return Path(args.progress_file)
    if status_file is not None:
        return status_file.parent / PROGRESS_FILE
    workdir = os.environ.get("LAUNCH_WORKDIR")
    return Path(workdir) / PROGRESS_FILE if workdir else None


def _note_progress(cell: int, total: int, source: str) -> None:
    from .progress import write_progress_file

    path = _progress["path"]
    if path is None:
        return
    try:
        write_progress_file(path, cell, total, source)
    except OSError:
        pass  # progress is a nicety: a read-only or vanished folder must not fail the run


def _run(args: argparse.Namespace) -> tuple[int, str]:
    parameters = load_parameters(args.parameters)
    notebook = Path(args.notebook)
    if not notebook.is_file():
        raise ValueError(f"--notebook: {notebook} does not exist")
    cwd = Path(args.cwd) if args.cwd else notebook.absolute().parent
    local_output, upload_to = _local_output(args.output)
    # The kernel papermill starts inherits this: its %launch commands know they are inside a run.
    os.environ.update(mark(os.environ.get("LAUNCH_RUN_ID") or "?", os.environ.get("LAUNCH_QUEUE", "")))
    say(f"running {notebook} with parameters {json.dumps(parameters)}")
    _running.update(output=local_output, upload_to=upload_to)
    try:
        error = _execute(notebook.absolute(), local_output, parameters, cwd, args.kernel)
    finally:
        if upload_to and local_output.exists():
            _upload(local_output, upload_to)
    say(f"executed notebook: {args.output}")
    if error:
        say(f"failed: {error}")
        return EXIT_FAILED, error
    say("succeeded")
    return EXIT_OK, ""


def _local_output(output: str) -> tuple[Path, str | None]:
    if output.startswith(("gs://", "s3://")):
        folder = Path(tempfile.mkdtemp(prefix="launch-output-"))
        return folder / Path(output).name, output
    path = Path(output).absolute()  # papermill changes directory to --cwd while it runs
    path.parent.mkdir(parents=True, exist_ok=True)  # /gcs/<bucket>/... is a plain mounted folder
    return path, None


def _execute(notebook: Path, output: Path, parameters: dict, cwd: Path, kernel: str) -> str:
    """Run with papermill; returns '' on success, else the failing cell's one-line error."""
    # papermill (and nbclient, zmq) are imported only here: the entrypoint is their only user.
    import logging

    _skip_unused_imports()
    import papermill
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    logging.getLogger("papermill").addFilter(_QuietPapermill())
    papermill_engines.register("launch-jupyter", _progress_engine())
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name=kernel,
            engine_name="launch-jupyter",
            cwd=str(cwd),
            progress_bar=False,
            log_output=True,
        )
    except PapermillExecutionError as err:
        trace = _ANSI.sub("", "\n".join(err.traceback))
        print(trace, flush=True)
        number = _user_numbers(_read_cells(output)).get(err.cell_index, err.cell_index + 1)
        return f"cell {number} ({_first_line(err.source)}) raised {err.ename}: {err.evalue}"
    return ""


# Imported through papermill → nbformat → jsonschema when installed (jsonschema[format-nongpl], which
# jupyter-events pulls in), only to check the "iri" format, which no notebook schema uses (nbformat
# validates without a format checker): it builds a lark grammar when imported, 1.0-1.6 s of this
# process's 2 s of papermill imports on a loaded 2-core machine (python -X importtime). jsonschema
# imports it under `suppress(ImportError)` (jsonschema/_format.py), which a None in sys.modules gives.
# This process runs nothing but papermill; the notebook's kernel is a process of its own.
UNUSED_IMPORTS = ("rfc3987_syntax",)


def _skip_unused_imports() -> None:
    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def _read_cells(path: Path) -> list:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return []


def _injected(cell) -> bool:
    return "injected-parameters" in (cell.get("metadata", {}).get("tags") or [])


def _user_numbers(cells: list) -> dict[int, int]:
    """Cell index in the executed notebook → the cell's number as the user sees it (from 1), the
    cell papermill injected for the parameters not counted."""
    numbers, number = {}, 0
    for index, cell in enumerate(cells):
        if not _injected(cell):
            number += 1
            numbers[index] = number
    return numbers


def _first_line(source) -> str:
    text = "".join(source) if isinstance(source, list) else str(source or "")
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


class _QuietPapermill:
    """Drop papermill's own per-cell banners: our engine prints 'cell i/n started' instead."""

    def filter(self, record) -> bool:
        return not str(record.msg).startswith(("Executing Cell", "Ending Cell"))


def _progress_engine():
    from papermill.engines import NBClientEngine

    class ProgressEngine(NBClientEngine):
        """papermill's nbclient engine, announcing each code cell as it starts."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            _announce_cells(nb_man)
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    return ProgressEngine


def _announce_cells(nb_man) -> None:
    numbers = _user_numbers(nb_man.nb.cells)
    total = len(numbers)
    start = nb_man.cell_start
    _running.update(nb_man=nb_man, number=None, total=total, source="")

    def cell_start(cell, cell_index=None, **kwargs):
        if cell.cell_type == "code" and cell_index in numbers:
            say(f"cell {numbers[cell_index]}/{total} started: {_first_line(cell.source)}")
            _note_progress(numbers[cell_index], total, _first_line(cell.source))
            _running.update(number=numbers[cell_index], source=_first_line(cell.source))
        return start(cell, cell_index, **kwargs)

    nb_man.cell_start = cell_start  # this one manager object only, created per execution


def _upload(local: Path, uri: str) -> None:
    if uri.startswith("s3://"):
        import boto3  # heavy, and needed only for s3:// outputs (the image needs launch-jupyter[sagemaker])

        bucket, _, key = uri[len("s3://") :].partition("/")
        boto3.client("s3").upload_file(str(local), bucket, key)
        return
    # google-cloud-storage is heavy and needed only for gs:// outputs.
    import google.cloud.storage as storage  # not `from google.cloud import`: untyped, mypy would not find it

    bucket, _, name = uri[len("gs://") :].partition("/")
    storage.Client().bucket(bucket).blob(name).upload_from_filename(str(local))


def _write_status(path: Path | None, code: int, error: str) -> None:
    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"returncode": code, "error": error, "finished_at": time.time()}))
    tmp.replace(path)  # atomic: a reader never sees half a status


# The notebook being executed and its running cell, for the partial notebook a SIGTERM writes.
_running: dict = {"nb_man": None, "number": None, "total": 0, "source": "", "output": None, "upload_to": None}
BANNER_TAG = "launch-jupyter-stopped"


def _on_sigterm(status_file: Path | None) -> None:
    def handler(signum, frame):
        why = _stop_reason(status_file)
        say(f"terminated ({why}): saving the partial notebook, stopping the kernel")
        _write_partial_notebook(why)  # first: the runner's grace period before SIGKILL is short
        stop_children(os.getpid())
        _write_status(status_file, EXIT_TERMINATED, f"terminated by a signal ({why})")
        os._exit(EXIT_TERMINATED)  # skip papermill's clean-up: the kernel is already gone

    signal.signal(signal.SIGTERM, handler)


def _stop_reason(status_file: Path | None) -> str:
    """Why the runner sent SIGTERM, from the marker it left in the run's folder before sending it."""
    from .runners.local_process import CANCELLED_MARK, TIMEOUT_MARK

    folder = status_file.parent if status_file is not None else None
    if folder is not None and (folder / CANCELLED_MARK).exists():
        return "cancelled"
    if folder is not None and (folder / TIMEOUT_MARK).exists():
        try:
            limit = json.loads((folder / TIMEOUT_MARK).read_text()).get("timeout")
        except (OSError, ValueError):
            limit = None
        return f"timed out after {limit} s" if limit else "timed out"
    return "terminated (SIGTERM: cancelled, preempted or timed out)"


def _write_partial_notebook(why: str) -> None:
    """Write the notebook as far as it ran, with a banner cell on top saying where it stopped and why."""
    nb_man, output = _running["nb_man"], _running["output"]
    if nb_man is None or output is None:
        return  # the notebook had not started: there is nothing to keep
    try:
        import copy

        import nbformat

        nb = copy.deepcopy(nb_man.nb)
        nb.cells = [c for c in nb.cells if BANNER_TAG not in (c.get("metadata", {}).get("tags") or [])]
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(_banner(why), metadata={"tags": [BANNER_TAG]}))
        nbformat.write(nb, str(output))
        if _running["upload_to"]:
            _upload(Path(output), _running["upload_to"])
        say(f"partial notebook: {_running['upload_to'] or output}")
    except Exception as err:  # the exit must still happen within the grace period
        say(f"could not write the partial notebook: {type(err).__name__}: {err}")


def _banner(why: str) -> str:
    number, total, source = _running["number"], _running["total"], _running["source"]
    if number is None:
        where = "before its first code cell"
    else:
        where = f"in cell {number} of {total}" + (f" (`{source}`)" if source else "")
    done = f"Cells before cell {number} ran to the end; " if number and number > 1 else ""
    return (
        f"**launch-jupyter: this run stopped {where}: {why}.**\n\n"
        f"{done}cell {number or 1}'s output is as far as it got, and the cells after it did not run."
    )


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; empty where there is no /proc)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat") if Path("/proc").is_dir() else []:
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.parent.name))
    return found


def stop_children(pid: int, grace: float = 1.0) -> None:
    """End each child of ``pid`` with its process group (a kernel runs in its own session)."""
    groups = set()
    for child in children(pid):
        try:
            groups.add(os.getpgid(child))
        except ProcessLookupError:
            continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            try:
                os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while sig == signal.SIGTERM and time.monotonic() < deadline and _any_alive(groups):
            time.sleep(0.05)


def _any_alive(groups: set[int]) -> bool:
    _reap()
    for group in groups:
        try:
            os.killpg(group, 0)
            return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


def _reap() -> None:
    """Collect ended children, so a dead kernel does not linger as a zombie of this process."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if __name__ == "__main__":
    sys.exit(main())
