"""Queue config text (YAML or JSON) and queue template variable declarations.

The YAML reader follows the YAML 1.2 core schema for plain scalars: only ``true``/``false``
are booleans (``yes``, ``no``, ``on``, ``off`` stay strings), only decimal numbers are numbers
(``010`` is 10, ``12:30`` stays a string), and dates stay strings, so that what a user writes
is what a job receives and every parsed config can be stored as JSON. Duplicate keys are an
error rather than a silent "last one wins".
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from .errors import ConfigError
from .keys import did_you_mean, is_camel_case, join_path, kind_of, to_snake
from .model import Problem, TemplateVar
from .templates import check_template_value, coerce_template_value

TEMPLATE_VAR_TYPES = ("string", "integer", "number")
_TYPE_ALIASES = {"str": "string", "int": "integer", "float": "number"}
# W&B Launch documents hyphenated names ({{machine-type}}): letters, digits, "_" and "-".
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_VAR_KEYS = ("name", "type", "default", "minimum", "maximum", "enum", "description")

# YAML 1.2 core schema resolvers (PyYAML implements YAML 1.1, which reads "on" as True).
_DROPPED_TAGS = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:value",
}
_CORE_RESOLVERS: list[tuple[str, str, str]] = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
]


_PLAIN = [(tag.rsplit(":", 1)[1], re.compile(pattern)) for tag, pattern, _ in _CORE_RESOLVERS]


def plain_scalar(text: str) -> Any:
    """``text`` typed as the config reader types an unquoted scalar (the YAML 1.2 core schema, the
    one rule for both): ``true``/``false`` a bool, a decimal integer an int, a float (``.inf``,
    ``.nan`` too), ``null``/``~``/nothing None, anything else the text itself."""
    for kind, pattern in _PLAIN:
        if not pattern.match(text):
            continue
        if kind == "bool":
            return text.lower() == "true"
        if kind == "int":
            return int(text, 10)
        if kind == "null":
            return None
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return float("-inf") if text.startswith("-") else float("inf")
        return float("nan") if lowered == ".nan" else float(text)
    return text


class _Loader(yaml.SafeLoader):
    """SafeLoader with core-schema scalars and duplicate-key detection."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # resolve "<<" merge keys before looking for duplicates
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key; SafeConstructor reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f'found the key "{key}" twice',
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _decimal_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    try:
        return int(text, 10)  # "010" is ten, not YAML 1.1's octal eight
    except ValueError:
        return loader.construct_yaml_int(node)  # an explicit !!int 0x10


def _install_core_schema() -> None:
    _Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for tag, pattern, first in _CORE_RESOLVERS:
        _Loader.add_implicit_resolver(tag, re.compile(pattern), list(first))
    _Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])
    _Loader.add_constructor("tag:yaml.org,2002:int", _decimal_int)


_install_core_schema()


# Limits checked before any object is built: a few hundred bytes of nested aliases (a "billion
# laughs") would otherwise expand to billions of nodes, and deep nesting overflows the stack.
MAX_DEPTH = 64
MAX_NODES = 100_000  # after alias expansion
MAX_ALIASES = 1_000


def load_yaml(text: str, source: str = "config") -> Any:
    """Parse YAML (or JSON) text with the rules above; a syntax error names ``source``, line and column.
    Deeper than MAX_DEPTH, or more than MAX_NODES nodes once aliases are expanded, is refused."""
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except RecursionError:
            raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
        except ValueError:
            pass  # YAML flow style, e.g. {a: 1}; the YAML reader gives the error if any
        else:
            _check_json_size(data, source)
            return data
    try:
        return _load_limited(text, source)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        # An unquoted {{name}} reads as a nested YAML mapping; say what to write instead.
        hint = '; put a template variable in quotes, e.g. "{{gpus}}"' if "{{" in line else ""
        raise ConfigError(f"{source}: {where}{err.problem or err.context}{hint}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML ({err})") from None


def _load_limited(text: str, source: str) -> Any:
    _check_events(text, source)  # depth and alias count from the event stream: nothing built yet
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_events(text: str, source: str) -> None:
    depth = aliases = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"  # the parser always sets it
                raise ConfigError(f"{source}: line {line}: nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise ConfigError(f"{source}: more than {MAX_ALIASES} aliases (*name); write the values out")


def _check_expanded(root: yaml.Node, source: str) -> None:
    """The node count once every alias is expanded, computed without expanding (memoized)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            if known < 0:
                raise ConfigError(
                    f"{source}: line {node.start_mark.line + 1}: an alias refers to the value "
                    "that holds it (a loop); write the value out"
                )
            return known
        sizes[id(node)] = -1  # in progress: meeting it again below is a loop
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                break
        sizes[id(node)] = total
        return total

    if size(root) > MAX_NODES:
        raise ConfigError(
            f"{source}: expands to more than {MAX_NODES} values (aliases of aliases?); "
            "a config is a few hundred at most"
        )


def _check_json_size(data: Any, source: str) -> None:
    stack = [(data, 1)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels")
        if count > MAX_NODES:
            raise ConfigError(f"{source}: more than {MAX_NODES} values; a config is a few hundred at most")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def parse_config_text(text: str, source: str = "config") -> dict[str, Any]:
    """YAML or JSON text → dict; empty text → ``{}``; a syntax error or a non-mapping is a ConfigError."""
    data = load_yaml(text, source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys (e.g. 'spec: ...'), not {kind_of(data)}")
    return data


# Names that say a value is a credential; a literal value under one is refused (a reference
# such as ${...} or {{...}}, or an empty value, is fine).
_SECRET_NAME = re.compile(
    r"(?i)(?:^|_|-)(?:api_?key|token|secret|password|passwd|credentials?|private_key|access_key)s?$"
)
_REFERENCE = re.compile(r"^\s*(?:\$\{[^}]*\}|\{\{[^}]*\}\})\s*$")
SECRET_HINT = (
    "a queue config is stored in the shared store and shown by `run show`: give the job the "
    "value through the agent's environment (a local runner passes the agent's env vars on) or "
    "Secret Manager, and leave it out of the config"
)


def secret_problems(data: Any, path: str = "") -> list[Problem]:
    """A Problem for each value that looks like a credential (a token format, a private key, a
    literal value under a name such as ``*_API_KEY``/``*_TOKEN``/``*PASSWORD``)."""
    from .secrets import first_secret

    problems: list[Problem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            key_path = join_path(path, str(key))
            if isinstance(value, (dict, list)):
                problems.extend(secret_problems(value, key_path))
                continue
            found = first_secret(f"{key}: {value}") if isinstance(value, str) else None
            if found is not None:
                problems.append(Problem(key_path, f"looks like a credential ({found.kind}); {SECRET_HINT}"))
            elif _looks_named_secret(str(key), value):
                problems.append(Problem(key_path, f"holds a literal value under a credential's name; {SECRET_HINT}"))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            if isinstance(item, str) and first_secret(item) is not None:
                problems.append(Problem(join_path(path, index), f"looks like a credential; {SECRET_HINT}"))
            elif isinstance(item, (dict, list)):
                problems.extend(secret_problems(item, join_path(path, index)))
    return problems


def _looks_named_secret(key: str, value: Any) -> bool:
    if not isinstance(value, str) or len(value.strip()) < 8 or _REFERENCE.match(value):
        return False
    return bool(_SECRET_NAME.search(key))


def mask_config(data: Any, key: str = "") -> Any:
    """A copy with every credential-looking value replaced by ``****`` (for ``run show``)."""
    from .secrets import first_secret

    if isinstance(data, dict):
        return {k: mask_config(v, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_config(item, key) for item in data]
    if isinstance(data, str) and (first_secret(f"{key}: {data}") is not None or _looks_named_secret(key, data)):
        return "****"
    return data


def dump_config(config: dict[str, Any]) -> str:
    """The config as block-style YAML, keys in their given order."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True)


def check_snake_case(data: Any, path: str = "") -> list[Problem]:
    """A Problem for every mapping key, at any depth, written in camelCase, with the snake_case spelling."""
    problems: list[Problem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            key_path = join_path(path, str(key))
            if isinstance(key, str) and is_camel_case(key):
                problems.append(Problem(key_path, f'use "{to_snake(key)}", not "{key}"'))
            problems.extend(check_snake_case(value, key_path))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            problems.extend(check_snake_case(item, join_path(path, index)))
    return problems


def parse_template_var(text: str) -> TemplateVar:
    """A ``--template-var`` declaration: ``name:type:default[:min:max]`` or a flow mapping.

    ``type`` is string | integer | number (str, int, float accepted). For a string variable
    everything after the second ``:`` is the default, so ``image:string:repo/img:tag`` works.
    An empty or missing default makes the value required at submit time. The mapping form,
    ``{name: gpus, type: integer, default: 1, enum: [1, 2, 4]}``, also takes enum and description.
    """
    text = text.strip()
    if text.startswith("{"):
        var = _var_from_mapping(text)
    else:
        var = _var_from_colons(text)
    return _normalized(var)


def _var_from_mapping(text: str) -> TemplateVar:
    data = load_yaml(text, f"--template-var {text!r}")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ConfigError(f"--template-var {text!r}: a mapping form needs at least a name, e.g. {{name: gpus}}")
    for key in data:
        if key not in _VAR_KEYS:
            hint = did_you_mean(str(key), _VAR_KEYS)
            raise ConfigError(f'template variable "{data["name"]}": unknown field "{key}"{hint}')
    if data.get("enum") is not None and not isinstance(data["enum"], list):
        raise ConfigError(f'template variable "{data["name"]}": enum must be a list of values')
    return TemplateVar.from_dict({**data, "type": _type_name(data.get("type", "string"))})


def _var_from_colons(text: str) -> TemplateVar:
    parts = text.split(":")
    name = parts[0].strip()
    var_type = _type_name(parts[1].strip()) if len(parts) > 1 else "string"
    if var_type == "string":
        default = ":".join(parts[2:]) if len(parts) > 2 else None
        return TemplateVar(name=name, type=var_type, default=default)
    if len(parts) > 5:
        raise ConfigError(f'template variable "{name}": too many ":" in {text!r}; expected name:type:default[:min:max]')
    fields = [part.strip() or None for part in parts[2:]] + [None] * (5 - len(parts))
    default, minimum, maximum = fields
    return TemplateVar(
        name=name,
        type=var_type,
        default=default,
        minimum=_bound(name, "minimum", minimum),
        maximum=_bound(name, "maximum", maximum),
    )


def _type_name(value: Any) -> str:
    text = str(value).strip().lower()
    return _TYPE_ALIASES.get(text, text)


def _bound(name: str, which: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f'template variable "{name}": {which} {text!r} is not a number') from None
    return int(number) if number.is_integer() and "." not in text else number


def validate_template_vars(vars: list[TemplateVar]) -> list[TemplateVar]:
    """Check declarations (names, uniqueness, types, bounds, enum, allowed defaults); return them
    with defaults and enum values coerced to their type ("2" → 2 for an integer)."""
    seen: set[str] = set()
    normalized = []
    for var in vars:
        normalized.append(_normalized(var))
        if var.name in seen:
            raise ConfigError(f'template variable "{var.name}" is declared twice')
        seen.add(var.name)
    return normalized


def _normalized(var: TemplateVar) -> TemplateVar:
    """The declaration with default and enum coerced to its type; a ConfigError names what is wrong."""
    label = f'template variable "{var.name}"'
    if not isinstance(var.name, str) or not _VAR_NAME.fullmatch(var.name):
        raise ConfigError(f"{label}: a name starts with a letter or _ and holds only letters, digits, _ and -")
    if var.type not in TEMPLATE_VAR_TYPES:
        hint = did_you_mean(str(var.type), TEMPLATE_VAR_TYPES, noun="types")
        raise ConfigError(f'{label}: unknown type "{var.type}"{hint}')
    _check_bounds(var, label)
    enum = None
    if var.enum is not None:
        if not var.enum:
            raise ConfigError(f"{label}: enum must list at least one value")
        bare = TemplateVar(name=var.name, type=var.type)
        enum = tuple(coerce_template_value(bare, item) for item in var.enum)
    checked = TemplateVar(
        name=var.name,
        type=var.type,
        minimum=var.minimum,
        maximum=var.maximum,
        enum=enum,
        description=var.description or "",
    )
    default = var.default
    if default is not None:
        default = check_template_value(checked, coerce_template_value(checked, default))
    return TemplateVar(**{**checked.__dict__, "default": default})


def _check_bounds(var: TemplateVar, label: str) -> None:
    for which in ("minimum", "maximum"):
        bound = getattr(var, which)
        if bound is None:
            continue
        if var.type == "string":
            raise ConfigError(f"{label}: {which} applies only to integer and number variables")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ConfigError(f"{label}: {which} must be a number, not {bound!r}")
    if var.minimum is not None and var.maximum is not None and var.minimum > var.maximum:
        raise ConfigError(f"{label}: minimum {var.minimum} is above maximum {var.maximum}")
