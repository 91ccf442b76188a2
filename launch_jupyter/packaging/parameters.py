"""Parameters the papermill way: an ``injected-parameters`` cell after the cell tagged ``parameters``."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import NotebookError


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
