"""The files a run wrote: its executed notebook and what its code left in its working folders.

One listing for every front end (the server's ``GET /launch/api/runs/ID/files``, the notebook's run
board, ``api.run_files``), and one way to fetch a file of it (``run_file``), which only ever returns a
file of that listing: a name is looked up, never joined onto a folder.

Where a run writes, on the machine that ran it (the agent's ``data_dir/runs/<id>``):

- ``context/``: the local-process runner's working folder (the notebook's cwd). It starts as the
  run's build context, so only what the run added or changed counts: a file whose path is not in the
  packed context, or whose bytes differ from it.
- ``outputs/``: the local-container runner's ``/outputs`` mount; everything there but the executed
  notebook and the entrypoint's status file.

A remote run keeps its files at its target: a Vertex run's are the objects under its folder in Cloud
Storage (its ``base_output_dir``), which its runner lists (``Runner.remote_files``) and the server
streams through on download; a SageMaker or Kubernetes run's executed notebook is listed by its URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .core.errors import ConfigError, RunError
from .core.model import Run
from .core.trust import run_folder

MAX_FILES = 1000  # a run that wrote more is listed by name up to here, with ``truncated`` set
NOTEBOOK = "notebook"
# Bookkeeping of the entrypoint and of Python itself, not results of the user's code.
_SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints"}
_STATUS_FILES = {"exit.json"}


@dataclass(frozen=True)
class RunFile:
    """One file a run wrote. ``name`` is its path relative to the folder it was written in."""

    name: str
    size: int
    modified: float
    kind: str  # "notebook" (the executed notebook) | "file"
    path: Path | None  # None: not on this machine (``location`` says where)
    location: str = ""

    def view(self) -> dict:
        """As JSON for a front end (no local path: the server serves files by name)."""
        return {
            "name": self.name,
            "size": self.size,
            "modified": self.modified,
            "kind": self.kind,
            "local": self.path is not None,
            "location": self.location,
        }


def check_name(name: object, parameter: str = "name") -> str:
    """``name`` if it is a relative path inside a run's folder; a ConfigError naming ``parameter`` else."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{parameter}: required (a file name from the run's file list)", path=parameter)
    path = PurePosixPath(name)
    if not path.parts:
        raise ConfigError(f"{parameter}: {name!r} names no file; give a name from the run's file list", path=parameter)
    if path.is_absolute() or name.startswith("\\"):
        raise ConfigError(
            f"{parameter}: {name!r} is an absolute path; give a name from the run's file list", path=parameter
        )
    if ".." in path.parts or "\\" in name:
        raise ConfigError(
            f"{parameter}: {name!r} leaves the run's folder; give a name from the run's file list", path=parameter
        )
    return path.as_posix()


def list_files(
    run: Run, store, data_dir: Path | None, remote: list[tuple[str, int, float, str]] | None = None
) -> tuple[list[RunFile], bool]:
    """The executed notebook first, then the files the run wrote by name (``remote``: those its
    runner found at its target); and whether the list was cut at MAX_FILES."""
    found: list[RunFile] = []
    folder = _run_folder(run, data_dir)
    notebook = _notebook(run, folder)
    if notebook is not None:
        found.append(notebook)
    if remote:
        # The executed notebook is listed once (its fetched copy, above), and the entrypoint's status file never.
        same = {"output.ipynb", *_STATUS_FILES} if notebook is not None else set(_STATUS_FILES)
        files = [RunFile(n, size, mod, "file", None, uri) for n, size, mod, uri in sorted(remote) if n not in same]
        files = [f for f in files if not _skipped(PurePosixPath(f.name))]
        return found + files[:MAX_FILES], len(files) > MAX_FILES
    if folder is None:
        return found, False
    seen = {notebook.path.resolve()} if notebook and notebook.path else set()
    written: list[RunFile] = []
    for base, keep in ((folder / "context", _changed_from_context(run, store)), (folder / "outputs", _not_status)):
        for path in sorted(base.rglob("*")) if base.is_dir() else []:
            rel = path.relative_to(base)
            if path.is_symlink() or not path.is_file() or _skipped(rel) or path.resolve() in seen:
                continue  # a link could point anywhere on this machine: never served
            if keep(rel.as_posix(), path):
                stat = path.stat()
                written.append(RunFile(rel.as_posix(), stat.st_size, stat.st_mtime, "file", path))
                seen.add(path.resolve())
            if len(written) > MAX_FILES:
                return found + written[:MAX_FILES], True
    return found + written, False


def find_file(
    run: Run, store, data_dir: Path | None, name: str, remote: list[tuple[str, int, float, str]] | None = None
) -> RunFile:
    """The listed file called ``name``; RunError when the run wrote none of that name here (without
    ``remote``, also for one that is only at its target)."""
    name = check_name(name)
    files, _ = list_files(run, store, data_dir, remote)
    for item in files:
        if item.name == name:
            if item.path is None and remote is None:
                raise RunError(f"run {run.id}'s {name} is not on this machine: it is at {item.location}")
            return item
    raise RunError(f"run {run.id} wrote no file {name!r} that this server can see (it does not exist here)")


def _notebook(run: Run, folder: Path | None) -> RunFile | None:
    where = run.output_notebook or ""
    if not where:
        return None
    path = Path(where)
    if "://" in where or folder is None or not path.resolve().is_relative_to(folder.resolve()):
        return RunFile(PurePosixPath(where).name, 0, run.finished_at or 0.0, NOTEBOOK, None, where)
    if not path.is_file():
        return None
    stat = path.stat()
    return RunFile(path.name, stat.st_size, stat.st_mtime, NOTEBOOK, path)


def _run_folder(run: Run, data_dir: Path | None) -> Path | None:
    # Only this machine's own folder for the run: a store row (which a teammate's client may have
    # written) never chooses which folder of this machine is listed or served.
    if data_dir is None:
        return None
    folder = run_folder(data_dir, run.id)
    return folder if folder.is_dir() else None


def _skipped(rel: PurePosixPath | Path) -> bool:
    return any(part in _SKIPPED_PARTS for part in rel.parts)


def _not_status(name: str, path: Path) -> bool:
    return name not in _STATUS_FILES


def _changed_from_context(run: Run, store):
    """A test of "the run wrote this" for the files of its working folder: not in the packed build
    context, or with other bytes (``unchanged_since_unpacked``). The context is read from the store on
    the first file asked about (a run with no such folder: never); with none, every file is shown."""
    from .packaging.context import unchanged_since_unpacked

    same: list = []

    def changed(name: str, path: Path) -> bool:
        if not same:
            data = store.get_context(run.id)
            same.append(unchanged_since_unpacked(data) if data is not None else (lambda _name, _path: False))
        return not same[0](name, path)

    return changed
