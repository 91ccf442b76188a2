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
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ..core.errors import NotebookError, SecretError
from . import BuildContext

# Never shipped, whatever .launchignore says: secrets, VCS data, caches, environments.
DEFAULT_EXCLUDES = (
    ".env*",
    "*.pem",
    "*.p12",
    "*.pfx",
    "*.key",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    "_netrc",
    ".pypirc",
    ".npmrc",
    # Credential files of the usual tools, found at any depth (a home folder copied in).
    ".ssh/",
    ".aws/",
    ".kube/",
    ".gnupg/",
    ".git-credentials",
    ".pgpass",
    ".vault-token",
    "**/.docker/config.json",
    "**/.config/gcloud/",
    "application_default_credentials.json",
    "credentials.db",
    "access_tokens.db",
    "legacy_credentials/",
    "**/.kaggle/kaggle.json",
    ".git/",
    ".hg/",
    ".svn/",
    ".ipynb_checkpoints/",
    "__pycache__/",
    "*.pyc",
    ".venv/",
    "venv/",
    ".tox/",
    ".nox/",
    "node_modules/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".DS_Store",
    ".launchignore",
    ".launchallow",
    ".~*",  # a Jupyter server's backup of a notebook while it saves it (gone a moment later)
)
IGNORE_FILE = ".launchignore"
# Files (.gitignore syntax) that may ship although their content looks like a credential: the
# explicit way to pass a false positive. It never brings back a DEFAULT_EXCLUDES name.
ALLOW_FILE = ".launchallow"
GENERATED = ("Dockerfile", "requirements.txt", "wheels")  # names the context writes itself
MAX_FILES = 5000
MAX_BYTES = 100 * 1024 * 1024  # the packed context is stored in the store, once per run
_HASH_VERSION = b"launch-jupyter context v1\0"


def create_context(
    notebook: Path,
    dest: Path,
    *,
    include: Sequence[str] = (),
    base_image: str | None = None,
    requirements: str | None = None,
    wheel: bool = True,
    keep_outputs: bool = False,
    allow_secrets: Sequence[str] = (),
    protected: Sequence[Path] = (),
    max_bytes: int = MAX_BYTES,
) -> BuildContext:
    """Copy ``notebook`` and its files into ``dest`` (new or empty) with requirements.txt and a
    Dockerfile, and hash it all. ``requirements`` (text) replaces the resolved requirements.
    ``wheel``: when launch-jupyter is installed from local source, put a wheel of it in the
    context (cached, so cheap after the first time). On any error ``dest`` is left as it was.

    Notebooks ship without their outputs unless ``keep_outputs`` (the run re-executes them). A
    file whose content looks like a credential is refused (SecretError naming it) unless it
    matches ``allow_secrets`` or a line of ``.launchallow`` beside the notebook. ``protected``
    paths (the store file, the data dir) never ship; the default ones are always protected."""
    from .dockerfile import WHEEL_DIR, default_base_image, render_dockerfile
    from .requirements import _read_notebook, launch_jupyter_wheel, resolve_requirements

    notebook = Path(notebook).absolute()
    _read_notebook(notebook)  # raises NotebookError for a missing or invalid notebook
    dest = Path(dest)
    created = _prepare_dest(dest)
    try:
        warnings: list[str] = []
        _refuse_folder(notebook.parent)
        guard = _Guard(notebook.parent, allow_secrets, protected)
        files = _select_files(notebook, include, warnings, guard, max_bytes)
        if requirements is None:
            requirements, more = resolve_requirements(notebook)
            warnings += more
        for rel, src in files:
            _copy_checked(src, dest / rel, rel, guard, keep_outputs)
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


class _Guard:
    """What may not ship from ``folder``: exclusion rules, protected paths, the allow list."""

    def __init__(self, folder: Path, allow: Sequence[str], protected: Sequence[Path]) -> None:
        # pathspec is only needed when packaging; it is small but not needed by `import launch_jupyter`.
        import pathspec

        self.folder = folder
        self.root = folder.resolve()
        # Two specs, not one: a "!.env" line in .launchignore must not bring a default exclusion back.
        self._always = pathspec.GitIgnoreSpec.from_lines(DEFAULT_EXCLUDES)
        self._user = pathspec.GitIgnoreSpec.from_lines(_lines(folder / IGNORE_FILE))
        self._allow = pathspec.GitIgnoreSpec.from_lines([*_lines(folder / ALLOW_FILE), *allow])
        # Only what lies inside the folder: a notebook that runs inside the data dir (a run that
        # submits itself) still ships its own files.
        self.protected = [p for p in _protected_paths(protected) if p != self.root and p.is_relative_to(self.root)]

    def ignore(self, rel: str) -> bool:
        return self._always.match_file(rel) or self._user.match_file(rel)

    def is_protected(self, path: Path) -> bool:
        resolved = path.resolve()
        return any(resolved == p or resolved.is_relative_to(p) for p in self.protected)

    def allowed(self, rel: str) -> bool:
        return self._allow.match_file(rel)


def _protected_paths(extra: Sequence[Path]) -> list[Path]:
    """The store file (with SQLite's side files) and the data dir: never in a context."""
    from ..core.config import data_home, default_store_url

    paths = [data_home(), *map(Path, extra)]
    url = default_store_url()
    if url.startswith("sqlite:///"):
        paths.append(Path(url[len("sqlite:///") :]))
    out = []
    for path in paths:
        path = Path(path).expanduser().resolve()
        out += [path] if path.is_dir() else [path, *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))]
    return out


def _refuse_folder(folder: Path) -> None:
    """A notebook at the top of a home folder (or of the disk) would ship everything in it."""
    here = folder.resolve()
    home = Path.home().resolve()
    if here == home or home.is_relative_to(here):
        what = "your home folder" if here == home else f"a folder that holds your home folder ({home})"
        raise NotebookError(
            f"refusing to package {here}: it is {what}, and everything in it would ship with the job "
            "(keys, the launch-jupyter store, other projects). Move the notebook into a project folder"
        )


def _select_files(
    notebook: Path, include: Sequence[str], warnings: list[str], guard: _Guard, max_bytes: int
) -> list[tuple[str, Path]]:
    """(relative posix path, source) for every file that goes in, the notebook first, sorted after."""
    import pathspec

    folder = notebook.parent
    wanted = [(p, pathspec.GitIgnoreSpec.from_lines([p])) for p in include]
    chosen = {notebook.name: notebook}
    matched: set[str] = set()
    sizes = {notebook.name: notebook.stat().st_size}
    for rel, path in _walk(folder, guard, warnings):
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
        sizes[rel] = path.stat().st_size
        if len(chosen) > MAX_FILES:
            raise NotebookError(
                f"{folder} holds more than {MAX_FILES} files; list what the job needs with include=[...] "
                f"(--include) or exclude the rest in {folder / IGNORE_FILE}"
            )
    _check_size(folder, sizes, max_bytes)
    warnings += [f"include pattern {p!r} matched no file in {folder}" for p in include if p not in matched]
    return sorted(chosen.items())


def _check_size(folder: Path, sizes: dict[str, int], max_bytes: int) -> None:
    total = sum(sizes.values())
    if total <= max_bytes:
        return
    biggest = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    listed = ", ".join(f"{rel} ({_mb(size)})" for rel, size in biggest)
    raise NotebookError(
        f"{folder}: the build context would be {_mb(total)}, over the limit of {_mb(max_bytes)}; the "
        f"biggest files: {listed}. Exclude them in {folder / IGNORE_FILE} (read large data from a "
        "bucket in the job instead) or list what the job needs with include=[...] (--include)"
    )


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []


def _walk(folder: Path, guard: _Guard, warnings: list[str]) -> Iterator[tuple[str, Path]]:
    for current, dirs, names in os.walk(folder):
        base = Path(current).relative_to(folder).as_posix()
        prefix = "" if base == "." else base + "/"
        # Prune ignored folders here so .git or .venv are never even listed.
        kept = []
        for d in sorted(dirs):
            path = Path(current) / d
            if guard.ignore(prefix + d + "/") or guard.is_protected(path):
                continue
            if path.is_symlink():  # os.walk does not follow it: say so rather than drop it silently
                warnings.append(f"{prefix + d}/ is a link to a folder and is not shipped; copy it in instead")
                continue
            kept.append(d)
        dirs[:] = kept
        for name in sorted(names):
            rel = prefix + name
            path = Path(current) / name
            if guard.ignore(rel) or guard.is_protected(path):
                continue
            if path.is_symlink() and not _link_ok(rel, path, guard, warnings):
                continue
            if path.is_file():
                yield rel, path


def _link_ok(rel: str, path: Path, guard: _Guard, warnings: list[str]) -> bool:
    """A link is judged by its target: out of the folder it is refused, to an excluded file skipped."""
    target = path.resolve()
    if not target.is_relative_to(guard.root):
        raise SecretError(
            f"{rel} is a link to {target}, outside {guard.folder}: a link out of the notebook's folder "
            f"could ship anything (keys, home files). Copy the file in, or add the line '{rel}' to "
            f"{guard.folder / IGNORE_FILE}"
        )
    target_rel = target.relative_to(guard.root).as_posix()
    if guard.ignore(target_rel) or guard.is_protected(target):
        warnings.append(f"{rel} is a link to {target_rel}, which is excluded: not shipped")
        return False
    return True


def _copy_checked(src: Path, dst: Path, rel: str, guard: _Guard, keep_outputs: bool) -> None:
    try:
        data = src.read_bytes()
    except FileNotFoundError:  # gone since the folder was listed (a server's temporary file)
        return
    if rel.endswith(".ipynb") and not keep_outputs:
        data = strip_outputs(data)
    if not guard.allowed(rel):
        _refuse_credentials(data, rel, guard.folder)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)


def strip_outputs(data: bytes) -> bytes:
    """A notebook's bytes without outputs, execution counts and saved widget state (which can
    hold whatever a cell printed); anything that is not a notebook comes back unchanged."""
    try:
        nb = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return data
    for cell in nb["cells"]:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    if isinstance(nb.get("metadata"), dict):
        nb["metadata"].pop("widgets", None)
    # nbformat's own layout (indent 1, sorted keys, trailing newline) so a diff stays readable.
    return (json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _refuse_credentials(data: bytes, rel: str, folder: Path) -> None:
    from ..core.secrets import scan_bytes

    found = scan_bytes(data)
    if found is None:
        return
    raise SecretError(
        f"{folder / rel} (line {found.line}) looks like a {found.kind}; keys must never ship in a "
        f"job's image. Move it out of the notebook's folder or add the line '{rel}' to "
        f"{folder / IGNORE_FILE}, and give the job its identity through the queue's service_account "
        f"or an env var of the agent. If it is not a secret, add the line '{rel}' to "
        f"{folder / ALLOW_FILE} (or pass --allow-secret '{rel}')"
    )


def hash_directory(directory: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order (no mtimes, owners, modes)."""
    digest = hashlib.sha256(_HASH_VERSION)
    for rel, path in _files(directory):
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _files(directory: Path) -> list[tuple[str, Path]]:
    return sorted((p.relative_to(directory).as_posix(), p) for p in Path(directory).rglob("*") if p.is_file())


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


@contextmanager
def temporary_context(notebook: Path, **options: Any) -> Iterator[BuildContext]:
    """``create_context(notebook, …, **options)`` in a new temporary folder, removed when the
    ``with`` block ends."""
    tmp = Path(tempfile.mkdtemp(prefix="launch-context-"))
    try:
        yield create_context(notebook, tmp / "context", **options)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
            assert source is not None  # _check_member let only files and folders through
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
    return dest


def unchanged_since_unpacked(data: bytes) -> Callable[[str, Path], bool]:
    """A test of a file in a folder ``data`` was unpacked into: ``same(name, path)`` is True when the
    packed context has a file ``name`` (relative, posix) with exactly ``path``'s bytes (sizes first, then
    the bytes streamed). What a run wrote or changed is every other file. The archive is opened on the
    first question (a folder with no files to ask about costs nothing)."""
    opened: dict[str, Any] = {}

    def same(name: str, path: Path) -> bool:
        if not opened:
            opened["tar"] = tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
            opened["members"] = {PurePosixPath(m.name).as_posix(): m for m in tar.getmembers() if m.isfile()}
        member = opened["members"].get(name)
        if member is None or member.size != path.stat().st_size:
            return False
        packed = opened["tar"].extractfile(member)
        return packed is not None and _digest(packed) == _digest(path.open("rb"))

    return same


def _digest(stream: IO[bytes]) -> bytes:
    digest = hashlib.sha256()  # hashlib.file_digest is 3.11+; the package runs on 3.10
    with stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def _check_member(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
        raise NotebookError(f"refusing to unpack {member.name!r}: not a plain file inside the context")
