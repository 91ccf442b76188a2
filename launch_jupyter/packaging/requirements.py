"""What the image must install: the user's requirements file, or the kernel's own distributions.

launch-jupyter itself must be in every image (its ``execute`` module is the entrypoint). A released
install is pinned from the package index; an editable or local install cannot be, so a wheel is
built from the installed source (hatchling, ≈0.05 s) and cached under the data folder keyed by a
fingerprint of that source, so the submit path pays only the fingerprint (a few ms) after the
first build. The wheel is reproducible, so the same source gives the same bytes and the same tag.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
from importlib import metadata
from pathlib import Path

from ..core.errors import LaunchError, NotebookError

SELF = "launch-jupyter"
# The entrypoint needs these in the image whatever the notebook imports.
RUNTIME = ("papermill", "ipykernel")
ADDED_MARK = "# added by launch-jupyter: the image's entrypoint needs these"
_IMPORT_LINE = re.compile(r"^\s*(?:from\s+([A-Za-z_][\w.]*)\s+import|import\s+([A-Za-z_][\w., ]*))")


def resolve_requirements(notebook: Path) -> tuple[str, list[str]]:
    """``requirements.txt`` text for the image of ``notebook``, and warnings for a person to read.

    A ``requirements.txt`` beside the notebook wins, then a ``pyproject.toml``'s
    ``[project].dependencies``; otherwise the notebook's imports are pinned to the versions in
    this environment. Either way papermill, ipykernel and launch-jupyter are added when missing.
    """
    notebook = Path(notebook)
    folder = notebook.parent
    warnings: list[str] = []
    if (folder / "requirements.txt").is_file():
        lines = (folder / "requirements.txt").read_text().splitlines()
    elif (folder / "pyproject.toml").is_file():
        lines = _pyproject_dependencies(folder / "pyproject.toml", warnings)
    else:
        lines = _pinned_imports(notebook, warnings)
    lines += _runtime_lines(lines, warnings)
    return "\n".join(lines).strip() + "\n", warnings


def _pyproject_dependencies(path: Path, warnings: list[str]) -> list[str]:
    try:
        import tomllib  # novermin (Python ≥ 3.11; tomli below is the same API)
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise NotebookError(f"{path}: not valid TOML ({err}); fix it or add a requirements.txt") from None
    deps = data.get("project", {}).get("dependencies")
    if deps is None:
        warnings.append(f"{path} has no [project].dependencies; the image gets only the runtime packages")
        return []
    return [str(d) for d in deps]


def _pinned_imports(notebook: Path, warnings: list[str]) -> list[str]:
    modules = notebook_imports(_read_notebook(notebook))
    third_party = sorted(
        m for m in modules if m not in sys.stdlib_module_names and not _is_local_module(notebook.parent, m)
    )
    # packages_distributions() reads every installed RECORD (≈0.1 s): only when there is a need.
    by_module = metadata.packages_distributions() if third_party else {}
    lines: list[str] = []
    seen: set[str] = set()
    for module in third_party:
        dists = by_module.get(module) or _local_owner(module)
        if not dists:
            warnings.append(
                f"the notebook imports {module!r}, which no installed distribution provides; "
                "add it to a requirements.txt beside the notebook if the image needs it"
            )
            continue
        for name in dists:
            key = _canonical(name)
            if key in seen or key == _canonical(SELF):
                continue
            seen.add(key)
            lines.append(_pin(name, warnings))
    return lines


def _local_owner(module: str) -> list[str]:
    """The editable/local distribution whose source folder holds ``module``: such installs list
    only a .pth file in their RECORD, so packages_distributions() cannot see their modules."""
    from importlib.util import find_spec

    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        return []
    origin = spec.origin if spec is not None else None
    if not origin or origin in ("built-in", "frozen"):
        return []
    for dist in metadata.distributions():
        root = source_root(dist, need_pyproject=False)
        if root is not None and Path(origin).is_relative_to(root):
            return [dist.metadata["Name"]]
    return []


def _runtime_lines(lines: list[str], warnings: list[str]) -> list[str]:
    present = {_canonical(m.group(1)) for m in map(_REQ_NAME.match, lines) if m}
    extra = [_pin(name, warnings) for name in RUNTIME if _canonical(name) not in present]
    if _canonical(SELF) not in present:
        extra.append(_self_line(warnings))
    return [ADDED_MARK, *extra] if extra else []


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _pin(name: str, warnings: list[str]) -> str:
    """``name==version`` from this environment; a VCS/URL install keeps its URL; a local one is
    written as a comment and reported, since the image cannot install it from an index."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        warnings.append(f"{name} is not installed here; it is listed unpinned")
        return name
    project = dist.metadata["Name"] or name
    origin = _direct_url(dist)
    if origin is None:
        return f"{project}=={dist.version}"
    url = origin.get("url", "")
    if "vcs_info" in origin:
        vcs = origin["vcs_info"]
        return f"{project} @ {vcs.get('vcs', 'git')}+{url}@{vcs.get('commit_id', '')}"
    if url.startswith(("http://", "https://")):
        return f"{project} @ {url}"
    if "archive_info" in origin:  # a downloaded wheel or sdist: its version may well be on the index
        warnings.append(
            f"{project} was installed from the file {url}; the image asks the package "
            f"index for {project}=={dist.version}"
        )
        return f"{project}=={dist.version}"
    kind = "an editable install" if origin.get("dir_info", {}).get("editable") else "a local install"
    warnings.append(
        f"{project} {dist.version} is {kind} from {url}; the image cannot install it from the "
        "package index. Publish it, or list an installable requirement in a requirements.txt "
        "beside the notebook"
    )
    return f"# {project}=={dist.version}  ({kind} from {url}; not installable in the image)"


def _self_line(warnings: list[str]) -> str:
    """The requirement for launch-jupyter itself; a local install is shipped as a wheel instead."""
    try:
        dist = metadata.distribution(SELF)
    except metadata.PackageNotFoundError:
        from .. import __version__

        warnings.append(f"{SELF} is not installed as a distribution; the image asks for {__version__}")
        return f"{SELF}=={__version__}"
    if source_root(dist) is not None:
        return f"# {SELF}=={dist.version} is installed from local source: the image gets its wheel"
    return _pin(SELF, warnings)


def notebook_imports(nb: dict) -> set[str]:
    """Top-level module names imported by the notebook's code cells (magics and shell lines skipped)."""
    modules: set[str] = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        modules |= _imports_of(_python_only(source))
    return modules


def _python_only(source: str) -> str:
    if source.lstrip().startswith("%%"):
        return ""  # a cell magic: its body is not Python (or not ours to read)
    kept = []
    for line in source.splitlines():
        stripped = line.strip()
        # Line magics, shell escapes, help requests and `x = !cmd` are IPython, not Python.
        if stripped.startswith(("%", "!", "?")) or stripped.endswith("?") or "= !" in stripped:
            kept.append("")
        else:
            kept.append(line)
    return "\n".join(kept)


def _imports_of(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return _imports_by_line(source)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _imports_by_line(source: str) -> set[str]:
    found = set()
    for line in source.splitlines():
        match = _IMPORT_LINE.match(line)
        if match and match.group(1):
            found.add(match.group(1).split(".")[0])
        elif match:
            found |= {part.split()[0].split(".")[0] for part in match.group(2).split(",") if part.strip()}
    return found


def _read_notebook(notebook: Path) -> dict:
    try:
        nb = json.loads(notebook.read_bytes())
    except FileNotFoundError:
        raise NotebookError(f"notebook not found: {notebook}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise NotebookError(f"{notebook} is not a notebook (not valid JSON: {err})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise NotebookError(
            f"{notebook} is not a notebook in nbformat 4 (needs a 'cells' list and \"nbformat\": 4); "
            "open and save it in JupyterLab to upgrade it"
        )
    return nb


def _is_local_module(folder: Path, module: str) -> bool:
    return (folder / f"{module}.py").is_file() or (folder / module / "__init__.py").is_file()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _direct_url(dist: metadata.Distribution) -> dict | None:
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def source_root(dist: metadata.Distribution, need_pyproject: bool = True) -> Path | None:
    """The local folder a distribution was installed from (editable or ``pip install DIR``), if any."""
    origin = _direct_url(dist)
    if not origin or "dir_info" not in origin or not origin.get("url", "").startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    root = Path(unquote(urlparse(origin["url"]).path))
    return root if not need_pyproject or (root / "pyproject.toml").is_file() else None


def launch_jupyter_wheel(cache_dir: Path | None = None) -> Path | None:
    """A wheel of launch-jupyter built from its installed source, or None for a released install.

    Built with hatchling in-process and cached in ``cache_dir`` (default: the data folder's
    ``wheels/``) under a fingerprint of the source, so an unchanged source is never rebuilt.
    """
    try:
        dist = metadata.distribution(SELF)
    except metadata.PackageNotFoundError:
        return None
    root = source_root(dist)
    if root is None:
        return None
    if cache_dir is None:
        from ..core.config import data_home

        cache_dir = data_home() / "wheels"
    target = Path(cache_dir) / _source_fingerprint(root)
    existing = sorted(target.glob("*.whl")) if target.is_dir() else []
    if existing:
        return existing[0]
    return _build_wheel(root, target)


_NOT_SOURCE = {"__pycache__", "node_modules"}  # pruned while walking: node_modules alone is ~25,000 files


def _source_fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", root / "README.md", root / "hatch_build.py"]
    for folder in ("launch_jupyter", "js"):
        files += _source_files(root / folder)
    for path in files:
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def _source_files(folder: Path) -> list[Path]:
    found = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _NOT_SOURCE]
        found += [Path(parent) / name for name in names]
    return sorted(found)


def _build_wheel(root: Path, target: Path) -> Path:
    """Build into a temporary sibling folder, then rename, so a half-built wheel is never cached."""
    import shutil
    import tempfile

    # hatchling is this project's build backend; imported only when a wheel must be built.
    try:
        from hatchling.builders.wheel import WheelBuilder
    except ImportError:
        raise LaunchError(
            "building launch-jupyter's wheel from its source (an editable install) for the "
            "image needs hatchling: pip install hatchling"
        ) from None

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
        builder = WheelBuilder(str(root))
        name = Path(next(iter(builder.build(directory=str(tmp), versions=["standard"])))).name
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            # Another process built the same source first: its wheel has the same bytes.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / name
