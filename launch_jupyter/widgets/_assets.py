"""The widgets' JavaScript and CSS: plain ES modules in the repo's ``js/`` (editable install) or in
``launch_jupyter/_js`` (the wheel), joined into one module per widget because anywidget loads a
single ES module. The queue editor imports CodeMirror from npm, so esbuild bundles it at build time
(``hatch_build.py``): ``js/dist/queue_editor.js`` in the repo, ``_js/queue_editor.js`` in the wheel."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]
# `import { a, b } from "./format.js";` — the only import form our modules use.
_LOCAL_IMPORT = re.compile(r'^import\s*\{[^}]*\}\s*from\s*"\./([\w-]+\.js)";\s*$', re.MULTILINE)


def js_dir() -> Path:
    """Where the widget modules are: the wheel's ``launch_jupyter/_js`` or the repo's ``js/``."""
    for candidate in (_PACKAGE / "_js", _PACKAGE.parent / "js"):
        if (candidate / "run_board.js").is_file():
            return candidate
    raise FileNotFoundError(
        f"the widget JavaScript is missing: looked in {_PACKAGE / '_js'} and {_PACKAGE.parent / 'js'}"
    )


def _inline(name: str, seen: set[str]) -> str:
    # Dependencies first, each once; their `export` keywords are harmless in the joined module.
    source = (js_dir() / name).read_text(encoding="utf-8")
    parts = []
    for dep in _LOCAL_IMPORT.findall(source):
        if dep not in seen:
            seen.add(dep)
            parts.append(_inline(dep, seen))
    parts.append(f"// ---- {name}\n" + _LOCAL_IMPORT.sub("", source))
    return "\n".join(parts)


BUNDLED = ("queue_editor.js",)  # hatch_build.BUNDLED


def bundle_path(name: str) -> Path:
    """Where the esbuild bundle of ``name`` is (the wheel's ``_js`` or the repo's ``js/dist``)."""
    folder = js_dir()
    path = folder / name if folder.name == "_js" else folder / "dist" / name
    if not path.is_file():
        raise FileNotFoundError(
            f"the widget bundle {path} is missing: it is built on install (pip install -e . runs esbuild "
            "through hatch_build.py; it needs Node.js and npm)"
        )
    return path


@cache
def esm(name: str) -> str:
    """The widget module ``name`` (e.g. ``run_board.js``) with its local imports inlined, or its bundle."""
    if name in BUNDLED:
        return bundle_path(name).read_text(encoding="utf-8")
    return _inline(name, {name})


@cache
def css() -> str:
    """The shared stylesheet of every widget."""
    return (js_dir() / "launch.css").read_text(encoding="utf-8")
