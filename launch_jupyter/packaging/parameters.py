"""Parameters the papermill way: an ``injected-parameters`` cell after the cell tagged ``parameters``.

Also what a notebook's parameters are (read with ``ast``, no papermill import), and the check every
front end runs at submit: a name the ``parameters`` cell does not set is refused, values are typed
against the defaults.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import NotebookError, ParameterError
from ..core.keys import did_you_mean


def inject_parameters(nb_path: Path, parameters: dict, dest: Path) -> Path:
    """Write a copy of ``nb_path`` to ``dest`` with ``parameters`` injected; returns ``dest``.

    Uses papermill's own ``parameterize_notebook``, so the result is what papermill would run; a
    previous injected cell is replaced, not stacked.
    """
    # papermill and nbformat cost ~0.3 s to import; only parameter injection needs them.
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb_path, dest = Path(nb_path), Path(dest)
    try:
        # papermill's loader adds the metadata (tags, papermill) its parameterize step expects.
        nb = load_notebook_node(str(nb_path))
    except FileNotFoundError:
        raise NotebookError(f"notebook not found: {nb_path}") from None
    except Exception as err:  # nbformat raises several unrelated types for a bad file
        raise NotebookError(f"{nb_path} is not a readable notebook: {err}") from None
    nb = parameterize_notebook(nb, dict(parameters))
    for cell in nb.cells:  # the loader's empty tag lists are noise in the user's notebook
        if not cell.metadata.get("tags"):
            cell.metadata.pop("tags", None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(dest)  # never leave a half-written notebook at dest
    return dest


# ---------------------------------------------------------------- reading and checking parameters

_UNKNOWN = object()  # a default that is not a literal (e.g. ``Path("data")``): any value goes
_MARKER = re.compile(r"#.*\bparameters\b", re.IGNORECASE)
_TAGS_HINT = (
    "JupyterLab: the property inspector (gear icon) → Common Tools → Cell Tags; or `launch-jupyter tag-parameters {nb}`"
)


@dataclass(frozen=True)
class NotebookParameter:
    """One name the ``parameters`` cell assigns, with its default when that is a literal."""

    name: str
    default: Any = _UNKNOWN
    line: str = ""

    @property
    def type_name(self) -> str:
        return "" if self.default is _UNKNOWN else type(self.default).__name__


@dataclass
class NotebookParameters:
    """What a notebook offers: its tagged cell's names, or a hint at an untagged one."""

    tagged: list[NotebookParameter] | None  # None: no cell is tagged ``parameters``
    untagged_cell: tuple[int, str] | None = None  # (cell number as the user sees it, first line)
    untagged_names: tuple[str, ...] = ()  # what that untagged cell assigns (it would overwrite them)

    def names(self) -> list[str]:
        return [p.name for p in self.tagged or []]


def _source(cell: Mapping) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _assignments(source: str) -> list[NotebookParameter]:
    """Top-level ``name = value`` / ``name: T = value`` lines, in order, each name once."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (a magic) in the cell: read what lines we can
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
    lines = source.splitlines()
    found: dict[str, NotebookParameter] = {}
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        value = getattr(node, "value", None)
        for target in targets:
            if isinstance(target, ast.Name) and target.id not in found:
                try:
                    default = ast.literal_eval(value) if value is not None else _UNKNOWN
                except (ValueError, SyntaxError, TypeError):
                    default = _UNKNOWN
                found[target.id] = NotebookParameter(target.id, default, lines[node.lineno - 1].strip())
    return list(found.values())


def read_parameters(nb: Mapping) -> NotebookParameters:
    """The parameters of a notebook (its JSON, as a dict), the papermill way: the cell tagged
    ``parameters``. Without one, the first code cell whose first line is marked ``# parameters``."""
    cells = nb.get("cells") or []
    for cell in cells:
        if cell.get("cell_type") == "code" and "parameters" in (cell.get("metadata", {}).get("tags") or []):
            return NotebookParameters(_assignments(_source(cell)))
    for number, cell in enumerate(cells, 1):
        first = _source(cell).lstrip("\n").split("\n", 1)[0]
        if cell.get("cell_type") == "code" and _MARKER.search(first):
            names = tuple(p.name for p in _assignments(_source(cell)))
            return NotebookParameters(None, (number, first.strip()), names)
    return NotebookParameters(None)


def _closest(name: str, names: Sequence[str]) -> str:
    return did_you_mean(name, names, cutoff=0.5, otherwise=".")


def _typed(param: NotebookParameter, value: Any, where: str) -> Any:
    """``value`` checked against the default's type; int → float is fine, a number → text too."""
    default = param.default
    if default is _UNKNOWN or default is None or value is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # `-p name=5` means the text "5"
    if isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
        return value
    raise ParameterError(
        f"{where}: parameter {param.name} is {_article(expected.__name__)} {expected.__name__} "
        f"(its default: {param.line or repr(default)}), not {value!r}"
    )


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def check_parameters(
    nb: Mapping,
    notebook: str,
    given: Mapping[str, Any],
    new_parameters: Sequence[str] = (),
) -> dict:
    """The parameters to inject, typed against the notebook's defaults; ParameterError otherwise.

    A name the ``parameters`` cell does not assign is refused unless it is in ``new_parameters``
    (papermill would inject it and the notebook would never read it, or overwrite it).
    """
    if not given:
        return {}
    from ..core.overrides import parameter_name_problem

    for name in [*given, *new_parameters]:  # names become code in the injected cell
        problem = parameter_name_problem(name)
        if problem:
            raise ParameterError(f"parameter {problem}")
    offered = read_parameters(nb)
    unknown = [name for name in given if name not in offered.names() and name not in new_parameters]
    # Even a name added on purpose is overwritten when the untagged parameters cell sets it.
    overwritten = [name for name in given if name in offered.untagged_names]
    if offered.tagged is None and overwritten and not unknown:
        unknown = overwritten
    if offered.tagged is None and unknown:
        hint = _TAGS_HINT.format(nb=notebook)
        if offered.untagged_cell is not None:
            number, first = offered.untagged_cell
            raise ParameterError(
                f"{notebook} has no cell tagged `parameters`, so -p {unknown[0]} would be injected at "
                f"the top and then overwritten by cell {number} ({first!r}): tag that cell "
                f"`parameters` ({hint})"
            )
        raise ParameterError(
            f"{notebook} has no cell tagged `parameters`: tag the cell that sets "
            f"{', '.join(unknown)} `parameters` ({hint}), or pass --new-parameter "
            f"{unknown[0]} to add it on purpose"
        )
    if unknown:
        names = offered.names()
        listed = ", ".join(names) if names else "no names"
        raise ParameterError(
            f'{notebook} has no parameter "{unknown[0]}" (its parameters cell sets {listed})'
            f"{_closest(unknown[0], names)} To add a new name on purpose: --new-parameter {unknown[0]}"
        )
    by_name = {p.name: p for p in offered.tagged or []}
    return {
        name: _typed(by_name[name], value, f"-p {name}") if name in by_name else value for name, value in given.items()
    }


def tag_parameters(nb_path: Path, cell: int | None = None) -> int:
    """Tag a cell ``parameters`` in the notebook file: ``cell`` (numbered from 1), else the one
    marked ``# parameters``. Returns the cell's number; NotebookError when there is none."""
    import json

    nb_path = Path(nb_path)
    try:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise NotebookError(f"{nb_path} is not a readable notebook: {err}") from None
    cells = nb.get("cells") or []
    if cell is None:
        marked = read_parameters(nb)
        if marked.tagged is not None:
            raise NotebookError(f"{nb_path.name} already has a cell tagged `parameters`")
        if marked.untagged_cell is None:
            raise NotebookError(
                f"{nb_path.name} has no cell whose first line says `# parameters`: "
                "name the cell with --cell N (numbered from 1)"
            )
        cell = marked.untagged_cell[0]
    if not 1 <= cell <= len(cells) or cells[cell - 1].get("cell_type") != "code":
        raise NotebookError(f"--cell {cell}: {nb_path.name} has no code cell {cell} (it has {len(cells)} cells)")
    tags = cells[cell - 1].setdefault("metadata", {}).setdefault("tags", [])
    if "parameters" not in tags:
        tags.append("parameters")
    tmp = nb_path.with_name(nb_path.name + ".tmp")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(nb_path)
    return cell
