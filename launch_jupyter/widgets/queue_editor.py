"""QueueEditor: create, edit, validate and preview a queue's config."""

from __future__ import annotations

import re
from typing import Any

import traitlets

from .. import api
from ..core.errors import ConfigError, LaunchError
from ..core.model import Queue
from ..core.overrides import parse_value
from . import _assets
from ._base import ActionWidget

VAR_FIELDS = ("name", "type", "default", "minimum", "maximum")


def _var_from_row(row: dict) -> dict:
    """A template-variable row of the table (all text) → the dict ``TemplateVar.from_dict`` takes."""
    var: dict = {"name": str(row.get("name") or "").strip(), "type": row.get("type") or "string"}
    default = row.get("default")
    if default in (None, ""):
        var["default"] = None
    elif var["type"] in ("integer", "number", "int", "float"):
        var["default"] = parse_value(str(default), f"template variable {var['name']} default")
    else:
        var["default"] = default
    for bound in ("minimum", "maximum"):
        value = row.get(bound)
        var[bound] = None if value in (None, "") else parse_value(str(value), f"template variable {bound}")
    return var


def key_lines(text: str) -> dict[str, int]:
    """Each key path of a YAML/JSON config → the 1-based line it starts on (empty when unparsable).
    Reads the same node tree our config parser builds on (PyYAML), so a path means one line."""
    import yaml

    from ..core.keys import join_path

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def walk(node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = join_path(path, str(key.value)) if isinstance(key, yaml.ScalarNode) else path
                lines.setdefault(child, key.start_mark.line + 1)
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = join_path(path, index)
                lines.setdefault(child, item.start_mark.line + 1)
                walk(item, child)

    if root is not None:
        walk(root, "")
    return lines


_LAST_SEGMENT = re.compile(r"(?:\.[^.\[]+|\[\d+\])$")
_MESSAGE_LINE = re.compile(r"\bline (\d+)")


def problem_line(lines: dict[str, int], path: str, message: str) -> int:
    """The line a problem belongs on: its key's, else its nearest present parent's (a missing
    key), else the line a syntax error names, else 1."""
    while path:
        if path in lines:
            return lines[path]
        trimmed = _LAST_SEGMENT.sub("", path)
        path = "" if trimmed == path else trimmed
    found = _MESSAGE_LINE.search(message)
    return int(found.group(1)) if found else 1


def _row_from_var(var) -> dict:
    return {key: "" if getattr(var, key) is None else str(getattr(var, key)) for key in VAR_FIELDS}


class QueueEditor(ActionWidget):
    """Edit a queue: typing in the config re-validates it (``problems``), buttons call the API."""

    _esm = _assets.esm("queue_editor.js")
    _css = _assets.css()
    _actions = ("create", "update", "delete", "preview", "load", "reset_config")

    entity = traitlets.Unicode("").tag(sync=True)
    name = traitlets.Unicode("").tag(sync=True)
    resource = traitlets.Unicode("local-process").tag(sync=True)
    resources = traitlets.List(traitlets.Unicode()).tag(sync=True)
    prioritization = traitlets.Bool(False).tag(sync=True)
    config_text = traitlets.Unicode("").tag(sync=True)
    template_vars = traitlets.List(traitlets.Dict()).tag(sync=True)
    problems = traitlets.List(traitlets.Dict()).tag(sync=True)  # [{path, message, severity, line}]
    checked_text = traitlets.Unicode("").tag(sync=True)  # the config text ``problems`` are about
    preview_text = traitlets.Unicode("").tag(sync=True)
    exists = traitlets.Bool(False).tag(sync=True)  # the queue named here is in the store

    def __init__(
        self,
        name: str | None = None,
        *,
        resource: str = "local-process",
        entity: str | None = None,
        store_url: str | None = None,
        **kwargs,
    ):
        self._store_url = store_url
        self._loading = True
        super().__init__(resources=api.known_resources(), resource=resource, entity=entity or "", **kwargs)
        self.config_text = api.default_config(resource)
        self._loading = False
        if name:
            self.load(name)
        else:
            self.validate()

    def __repr__(self) -> str:
        state = "stored" if self.exists else "new"
        return f"QueueEditor({self.name or '(unnamed)'}, {self.resource}, {state}, {len(self.problems)} problem(s))"

    # ---------------------------------------------------------------- live behaviour

    @traitlets.observe("resource")
    def _resource_changed(self, change) -> None:
        # Switching the resource starts from that resource's default config.
        if self._loading:
            return
        self.run_action("reset_config")

    @traitlets.observe("name", "entity")
    def _name_changed(self, change) -> None:
        # Create / Update / Delete follow whether a queue of that name is stored.
        if self._loading:
            return
        try:
            api.get_queue(self.name, entity=self.entity or None, store_url=self._store_url)
            self.exists = True
        except LaunchError:
            self.exists = False

    @traitlets.observe("config_text", "template_vars")
    def _content_changed(self, change) -> None:
        if not self._loading:
            self.validate()

    def validate(self) -> list[dict]:
        """Check the config as typed; the problems are shown against their key paths."""
        try:
            tvars = [_var_from_row(r) for r in self.template_vars]
        except LaunchError as err:
            self.problems = [{"path": "template_vars", "message": str(err), "severity": "error", "line": None}]
            self.checked_text = self.config_text
            return self.problems
        text = self.config_text
        found = api.validate_config(self.resource, text, tvars)
        lines = key_lines(text)
        self.problems = [
            {
                "path": p.path,
                "message": p.message,
                "severity": p.severity,
                "line": problem_line(lines, p.path, p.message),
            }
            for p in found
        ]
        self.checked_text = text
        return self.problems

    def reset_config(self) -> None:
        """Replace the config with the resource's default."""
        self.config_text = api.default_config(self.resource)
        self.preview_text = ""

    # ---------------------------------------------------------------- actions

    def load(self, name: str) -> Queue:
        """Fill the editor from a stored queue."""
        queue = api.get_queue(name, entity=self.entity or None, store_url=self._store_url)
        self._loading = True
        try:
            self.name = queue.name
            self.entity = queue.entity
            self.resource = queue.resource
            self.prioritization = queue.prioritization
            self.template_vars = [_row_from_var(v) for v in queue.template_vars]
            self.config_text = queue.config_text or api.default_config(queue.resource)
            self.exists = True
        finally:
            self._loading = False
        self.validate()
        return queue

    def _vars(self) -> list[dict]:
        return [_var_from_row(r) for r in self.template_vars]

    def _take_text(self, config: str | None, doing: str) -> None:
        # The button sends the text on screen: check exactly that text before storing anything.
        if config is not None and config != self.config_text:
            self.config_text = config  # validates (the observer)
        elif self.checked_text != self.config_text:
            self.validate()
        errors = [p for p in self.problems if p["severity"] == "error"]
        if errors:
            first = errors[0]
            where = f"line {first['line']}: " if first.get("line") else ""
            what = f"{first['path']}: {first['message']}" if first["path"] else first["message"]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ConfigError(f"not {doing}: {where}{what}{more}")

    def _saved_fields(self) -> dict[str, Any]:
        """What Create and Update both send: the form's fields as the api takes them."""
        return {
            "entity": self.entity or None,
            "config": self.config_text,
            "prioritization": self.prioritization,
            "template_vars": self._vars(),
            "store_url": self._store_url,
        }

    def create(self, config: str | None = None) -> Queue:
        """Create the queue (the Create button, which sends the config text on screen)."""
        self._take_text(config, "created")
        queue = api.create_queue(self.name, self.resource, **self._saved_fields())
        self.entity = queue.entity
        self.exists = True
        self.notice = f"created queue {queue.path}"
        return queue

    def update(self, config: str | None = None) -> Queue:
        """Save the changes to the stored queue (the Update button, which sends the text on screen)."""
        self._take_text(config, "updated")
        queue = api.update_queue(self.name, **self._saved_fields())
        self.notice = f"updated queue {queue.path}"
        return queue

    def delete(self) -> None:
        """Delete the stored queue (the Delete button)."""
        api.delete_queue(self.name, entity=self.entity or None, store_url=self._store_url)
        self.exists = False
        self.notice = f"deleted queue {self.entity}/{self.name}"

    def preview(self) -> str:
        """The request a run of this config would send (the Preview request button)."""
        self.preview_text = api.preview_request(
            resource=self.resource,
            config=self.config_text,
            template_vars=self._vars(),
        ).yaml
        return self.preview_text
