"""Build contexts: copy the notebook and its files into a folder, hash them, pack them as tar.gz.

By default the whole folder beside the notebook goes in (so relative data files work), minus the
default exclusions and the patterns of a ``.launchignore`` beside the notebook (.gitignore syntax);
``include`` narrows that to the given globs (plus the notebook itself).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from ..core.errors import NotebookError, SecretError
from . import BuildContext

# Never shipped, whatever .launchignore says: secrets, VCS data, caches, environments.
DEFAULT_EXCLUDES = (
    ".env*", "*.pem", "*.p12", "*.pfx", "*.key", "*.jks", "*.keystore",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", ".netrc", ".pypirc", ".npmrc",
    ".git/", ".hg/", ".svn/", ".ipynb_checkpoints/", "__pycache__/", "*.pyc",
    ".venv/", "venv/", ".tox/", ".nox/", "node_modules/", ".mypy_cache/", ".pytest_cache/",
    ".ruff_cache/", ".DS_Store", ".launchignore",
    ".~*",  # a Jupyter server's backup of a notebook while it saves it (gone a moment later)
)
IGNORE_FILE = ".launchignore"
GENERATED = ("Dockerfile", "requirements.txt", "wheels")  # names the context writes itself
MAX_FILES = 5000
MAX_BYTES = 500 * 1024 * 1024
_SECRET_SCAN_LIMIT = 1024 * 1024  # credential files are small; larger files are not parsed
_HASH_VERSION = b"launch-jupyter context v1\0"


def create_context(
    notebook: Path,
    dest: Path,
    *,
    include: Sequence[str] = (),
    base_image: str | None = None,
    requirements: str | None = None,
    wheel: bool = True,
) -> BuildContext:
    """Copy ``notebook`` and its files into ``dest`` (new or empty) with requirements.txt and a
    Dockerfile, and hash it all. ``requirements`` (text) replaces the resolved requirements.
    ``wheel``: when launch-jupyter is installed from local source, put a wheel of it in the
    context (cached, so cheap after the first time). On any error ``dest`` is left as it was."""
    from .dockerfile import WHEEL_DIR, default_base_image, render_dockerfile
    from .requirements import _read_notebook, launch_jupyter_wheel, resolve_requirements

    notebook = Path(notebook).absolute()
    _read_notebook(notebook)  # raises NotebookError for a missing or invalid notebook
    dest = Path(dest)
    created = _prepare_dest(dest)
    try:
        warnings: list[str] = []
        files = _select_files(notebook, include, warnings)
        if requirements is None:
            requirements, more = resolve_requirements(notebook)
            warnings += more
        for rel, src in files:
            _copy_checked(src, dest / rel, rel)
        (dest / "requirements.txt").write_text(requirements)
        has_wheel = _add_wheel(dest / WHEEL_DIR, launch_jupyter_wheel, warnings) if wheel else False
        base = base_image or default_base_image()
        (dest / "Dockerfile").write_text(render_dockerfile(base, notebook.name, has_wheel))
        return BuildContext(
            directory=dest,
            notebook=notebook.name,
            content_hash=hash_directory(dest),
            base_image=base,
            warnings=warnings,
        )
    except BaseException:
        _undo(dest, created)
        raise


def _prepare_dest(dest: Path) -> bool:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise NotebookError(f"build context folder {dest} must be new or empty")
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    return created


def _undo(dest: Path, created: bool) -> None:
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _add_wheel(folder: Path, build, warnings: list[str]) -> bool:
    try:
        built = build()
    except Exception as err:  # a failed wheel build must not block a submit; the image just lacks it
        warnings.append(f"could not build a wheel of launch-jupyter from its source: {err}")
        return False
    if built is None:
        return False
    folder.mkdir()
    shutil.copyfile(built, folder / built.name)
    return True


def _select_files(notebook: Path, include: Sequence[str], warnings: list[str]) -> list[tuple[str, Path]]:
    """(relative posix path, source) for every file that goes in, the notebook first, sorted after."""
    # pathspec is only needed when packaging; it is small but not needed by `import launch_jupyter`.
    import pathspec

    folder = notebook.parent
    # Two specs, not one: a "!.env" line in .launchignore must not bring a default exclusion back.
    always = pathspec.GitIgnoreSpec.from_lines(DEFAULT_EXCLUDES)
    user = pathspec.GitIgnoreSpec.from_lines(_ignore_lines(folder))

    def ignore(rel: str) -> bool:
        return always.match_file(rel) or user.match_file(rel)

    wanted = [(p, pathspec.GitIgnoreSpec.from_lines([p])) for p in include]
    chosen = {notebook.name: notebook}
    matched: set[str] = set()
    total = notebook.stat().st_size
    for rel, path in _walk(folder, ignore):
        top = rel.split("/")[0]
        if rel == notebook.name or top in GENERATED:
            if top in ("Dockerfile", "wheels"):
                warnings.append(f"{rel} beside the notebook is not shipped: the context makes its own")
            continue
        if wanted:
            hits = [p for p, spec in wanted if spec.match_file(rel)]
            if not hits:
                continue
            matched.update(hits)
        chosen[rel] = path
        total += path.stat().st_size
        if len(chosen) > MAX_FILES or total > MAX_BYTES:
            raise NotebookError(
                f"{folder} holds more than {MAX_FILES} files or {MAX_BYTES >> 20} MB; list what the "
                f"job needs with include=[...] or exclude the rest in {folder / IGNORE_FILE}"
            )
    warnings += [f"include pattern {p!r} matched no file in {folder}" for p in include if p not in matched]
    return sorted(chosen.items())


def _ignore_lines(folder: Path) -> list[str]:
    path = folder / IGNORE_FILE
    return path.read_text().splitlines() if path.is_file() else []


def _walk(folder: Path, ignore: Callable[[str], bool]) -> Iterator[tuple[str, Path]]:
    root = folder.resolve()
    for current, dirs, names in os.walk(folder):
        base = Path(current).relative_to(folder).as_posix()
        prefix = "" if base == "." else base + "/"
        # Prune ignored folders here so .git or .venv are never even listed.
        dirs[:] = sorted(d for d in dirs if not ignore(prefix + d + "/"))
        for name in sorted(names):
            rel = prefix + name
            path = Path(current) / name
            if ignore(rel) or not path.is_file():
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                continue  # a link out of the folder could pull in anything (keys, home files)
            yield rel, path


def _copy_checked(src: Path, dst: Path, rel: str) -> None:
    try:
        data = src.read_bytes()
    except FileNotFoundError:  # gone since the folder was listed (a server's temporary file)
        return
    if len(data) <= _SECRET_SCAN_LIMIT:
        _refuse_credentials(data, rel, src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)


def _refuse_credentials(data: bytes, rel: str, src: Path) -> None:
    if b'"private_key"' not in data and b'"refresh_token"' not in data:
        return
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(doc, dict):
        return
    kind = doc.get("type")
    if (kind == "service_account" and "private_key" in doc) or (
        kind == "authorized_user" and "refresh_token" in doc
    ):
        what = "service-account key" if kind == "service_account" else "user credential"
        raise SecretError(
            f"{src} looks like a Google {what}; keys must never ship in a job's image. Move it out "
            f"of the notebook's folder, or add the line '{rel}' to {src.parent / IGNORE_FILE}, and "
            "give the job its identity through the queue's service_account instead"
        )


def hash_directory(directory: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order (no mtimes, owners, modes)."""
    digest = hashlib.sha256(_HASH_VERSION)
    for rel, path in _files(directory):
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _files(directory: Path) -> list[tuple[str, Path]]:
    return sorted(
        (p.relative_to(directory).as_posix(), p) for p in Path(directory).rglob("*") if p.is_file()
    )


def pack_context(directory: Path) -> bytes:
    """A deterministic tar.gz of ``directory``: sorted, mtime 0, owner 0/0 without names, fixed modes."""
    import gzip

    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for rel, path in _files(directory):
                data = path.read_bytes()
                info = tarfile.TarInfo(rel)
                info.size = len(data)
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def unpack_context(data: bytes, dest: Path) -> Path:
    """Extract a packed context into ``dest``; refuses absolute paths, ``..``, links and devices."""
    dest = Path(dest)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(member)
        dest.mkdir(parents=True, exist_ok=True)
        for member in members:
            target = dest / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
    return dest


def _check_member(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
        raise NotebookError(f"refusing to unpack {member.name!r}: not a plain file inside the context")
