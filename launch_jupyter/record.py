"""``launch_jupyter.record(name, value)``: keep a result of a run with the run.

Inside a run the value goes into the cell's output as display data of our own mime type, with the
name in the output's metadata (the way scrapbook's ``glue`` keeps scraps), so the executed notebook
carries it; the agent reads it back when the run ends (``read_records``) and stores it with the run.
A plot or a DataFrame is kept as its display data (its image or HTML) with a text summary as value.
Outside a run nothing is kept: the value is printed, so the same notebook runs interactively.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MIME = "application/vnd.launch-jupyter.record+json"
METADATA_KEY = "launch_jupyter"
MAX_VALUE_BYTES = 64 * 1024  # a recorded value is a result to compare, not a data set
_RICH = ("image/png", "image/svg+xml", "text/html", "image/jpeg")


def record(name: str, value: Any) -> None:
    """Record ``value`` under ``name`` for this run (scalars, short text, small lists or mappings;
    a plot or DataFrame is kept as its display data). Outside a run: prints it and keeps nothing."""
    from .core.inside import inside_run

    if not isinstance(name, str) or not name:
        raise TypeError(f"record(name, value): name must be non-empty text, not {name!r}")
    if inside_run() is None:
        print(f"{name} = {value!r}  (launch_jupyter.record keeps values only inside a run)")
        return
    _publish(_entry(name, value))


def _entry(name: str, value: Any) -> dict:
    """{"name", "value"} or {"name", "value": summary, "display": bundle} or {"name", "error"}."""
    problem = _as_json(value)
    if problem is None:
        return {"name": name, "value": value}
    bundle = _display_bundle(value)
    if bundle:
        return {"name": name, "value": bundle.get("text/plain", type(value).__name__)[:200], "display": bundle}
    return {"name": name, "error": f"cannot record {name}: {problem}"}


def _as_json(value: Any) -> str | None:
    """Why ``value`` cannot be recorded as JSON, or None when it can."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        return f"a {type(value).__name__} is not a JSON value ({err})"
    if len(text) > MAX_VALUE_BYTES:
        return f"its JSON is {len(text)} bytes, more than the {MAX_VALUE_BYTES} a recorded value may have"
    return None


def _display_bundle(value: Any) -> dict | None:
    """The value's rich display data (a figure's PNG, a DataFrame's HTML), or None if it has none."""
    if callable(getattr(value, "savefig", None)):  # a matplotlib Figure, whatever backend is set
        return _figure_bundle(value)
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    try:
        data, _ = shell.display_formatter.format(value)
    except Exception:  # a broken _repr_ must not stop the run
        return None
    if not any(key in data for key in _RICH):
        return None
    bundle = {key: data[key] for key in (*_RICH, "text/plain") if key in data}
    try:
        size = len(json.dumps(bundle))
    except (TypeError, ValueError):
        return None
    return bundle if size <= 16 * MAX_VALUE_BYTES else None  # a plot's PNG is bigger than a value


def _figure_bundle(figure: Any) -> dict | None:
    import base64
    import io

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", bbox_inches="tight")
    except Exception:  # not a figure after all, or it cannot draw: not recorded, the run goes on
        return None
    return {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"), "text/plain": repr(figure)}


def _publish(entry: dict) -> None:
    from IPython.display import display

    if "error" in entry:
        print(f"launch_jupyter.record: {entry['error']}; the run goes on without it", file=sys.stderr)
    data = {MIME: entry, "text/plain": _summary(entry)}
    display(data, raw=True, metadata={METADATA_KEY: {"record": entry["name"]}})


def _summary(entry: dict) -> str:
    if "error" in entry:
        return f"not recorded: {entry['error']}"
    return f"recorded {entry['name']} = {entry['value']!r}"


# ---------------------------------------------------------------- reading them back


def read_records(notebook: Mapping) -> list[dict]:
    """The values an executed notebook (its JSON) recorded, in order; a name recorded twice keeps its
    last value. Each is {"name", "value", "display", "error"}."""
    found: dict[str, dict] = {}
    for cell in notebook.get("cells") or []:
        for output in cell.get("outputs") or []:
            entry = (output.get("data") or {}).get(MIME)
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            found.pop(entry["name"], None)  # the last one wins, in the order of the last write
            found[entry["name"]] = {
                "name": entry["name"],
                "value": entry.get("value"),
                "display": entry.get("display"),
                "error": entry.get("error"),
            }
    return list(found.values())


def read_records_file(path: str | Path) -> list[dict]:
    """``read_records`` of a notebook file; ValueError when it is not a readable notebook."""
    try:
        return read_records(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the recorded values of {path}: {err}") from None


def read_records_gcs(uri: str, environment: Any = None) -> list[dict]:
    """``read_records`` of an executed notebook in Cloud Storage (a Vertex run's output).

    ``environment`` (the agent's EnvironmentConfig) names the project and, with ``credentials:
    anonymous``, an emulator's anonymous access. ValueError when it cannot be read."""
    # google-cloud-storage is needed only for a run whose output is in Cloud Storage.
    import google.cloud.storage as storage  # not `from google.cloud import`: untyped, mypy would not find it
    from google.api_core import exceptions

    bucket, _, name = uri.removeprefix("gs://").partition("/")
    project = getattr(environment, "project", None)
    kwargs: dict[str, Any] = {"project": project}
    if getattr(environment, "credentials", "default") == "anonymous":
        from google.auth.credentials import AnonymousCredentials

        kwargs["credentials"] = AnonymousCredentials()
    try:
        # One attempt with a deadline: this runs on the agent's loop, and the library's default retry
        # (up to 120 s against an unreachable endpoint) would hold every other run there meanwhile.
        data = storage.Client(**kwargs).bucket(bucket).blob(name).download_as_bytes(timeout=(5, 20), retry=None)
        return read_records(json.loads(data))
    except exceptions.NotFound:
        return []  # the run wrote no notebook (it failed before papermill started)
    except Exception as err:  # no credentials, no network, not a notebook: said in the run, never a crash
        raise ValueError(f"cannot read the recorded values of {uri}: {type(err).__name__}: {err}") from None
