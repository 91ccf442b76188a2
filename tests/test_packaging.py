"""Packaging: build contexts, content hash, Dockerfile, requirements, ignore rules, secrets, parameters."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest

from launch_jupyter.core.errors import NotebookError, SecretError
from launch_jupyter.packaging import (
    create_context,
    inject_parameters,
    pack_context,
    render_dockerfile,
    resolve_requirements,
    unpack_context,
)
from tests.fixtures.common import EXAMPLES, REPO


def notebook_with(code: str, *, tags=()) -> dict:
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    cell = nbformat.v4.new_code_cell(code)
    cell.id = "c0"
    if tags:
        cell.metadata["tags"] = list(tags)
    nb.cells.append(cell)
    return nb


def project(folder: Path) -> Path:
    """A notebook folder: the quickstart, a data file and a helper module."""
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLES / "quickstart.ipynb", folder / "quickstart.ipynb")
    (folder / "data.csv").write_text("a,b\n1,2\n")
    (folder / "helpers.py").write_text("def twice(x):\n    return 2 * x\n")
    return folder / "quickstart.ipynb"


def test_same_inputs_give_the_same_hash_and_bytes_in_different_folders(tmp_path):
    first = create_context(project(tmp_path / "one" / "src"), tmp_path / "one" / "ctx")
    second = create_context(project(tmp_path / "two" / "elsewhere"), tmp_path / "two" / "ctx")
    assert first.content_hash == second.content_hash
    assert first.tag == first.content_hash[:20]
    assert pack_context(first.directory) == pack_context(second.directory)


def test_a_code_change_changes_the_hash(tmp_path):
    nb = project(tmp_path / "src")
    before = create_context(nb, tmp_path / "ctx1").content_hash
    (nb.parent / "helpers.py").write_text("def twice(x):\n    return x + x\n")
    assert create_context(nb, tmp_path / "ctx2").content_hash != before


def test_touching_mtimes_does_not_change_the_hash(tmp_path):
    nb = project(tmp_path / "src")
    before = create_context(nb, tmp_path / "ctx1")
    for path in nb.parent.iterdir():
        os.utime(path, (1_000_000, 1_000_000))
    after = create_context(nb, tmp_path / "ctx2")
    assert after.content_hash == before.content_hash
    assert pack_context(after.directory) == pack_context(before.directory)


def test_context_holds_notebook_files_requirements_dockerfile_and_the_wheel(tmp_path):
    ctx = create_context(project(tmp_path / "src"), tmp_path / "ctx")
    names = sorted(p.relative_to(ctx.directory).as_posix() for p in ctx.directory.rglob("*") if p.is_file())
    # launch-jupyter is installed editable in the test venv, so its wheel goes in.
    assert names == [
        "Dockerfile",
        "data.csv",
        "helpers.py",
        "quickstart.ipynb",
        "requirements.txt",
        "wheels/launch_jupyter-0.1.0-py3-none-any.whl",
    ]
    assert ctx.notebook == "quickstart.ipynb"
    assert ctx.base_image == f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"
    assert "papermill==" in (ctx.directory / "requirements.txt").read_text()


def test_dockerfile_installs_dependencies_before_copying_code():
    text = render_dockerfile(None, "my nb.ipynb", has_wheel=True)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == f"FROM python:{sys.version_info.major}.{sys.version_info.minor}-slim"
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(prefix))
        for prefix in (
            "COPY requirements.txt",
            "RUN python -m pip install -r",
            "COPY wheels/",
            "RUN python -m pip install --no-deps /app/wheels/",
            "COPY . ",
            "ENTRYPOINT",
        )
    ]
    assert order == sorted(order)
    assert 'ENTRYPOINT ["python", "-m", "launch_jupyter.execute"]' in lines
    assert json.loads(lines[-1][len("CMD ") :])[:2] == ["--notebook", "my nb.ipynb"]
    custom = render_dockerfile("us-docker.pkg.dev/p/r/cuda:12", "a.ipynb", has_wheel=False)
    assert custom.splitlines()[1] == "FROM us-docker.pkg.dev/p/r/cuda:12"
    assert "wheels" not in custom


def test_base_image_is_overridable_and_part_of_the_hash(tmp_path):
    nb = project(tmp_path / "src")
    default = create_context(nb, tmp_path / "ctx1")
    cuda = create_context(nb, tmp_path / "ctx2", base_image="nvidia/cuda:12.4.0-runtime-ubuntu22.04")
    assert cuda.base_image == "nvidia/cuda:12.4.0-runtime-ubuntu22.04"
    assert cuda.content_hash != default.content_hash


def test_ignore_rules_defaults_and_launchignore(tmp_path):
    nb = project(tmp_path / "src")
    folder = nb.parent
    for rel in (
        ".env",
        ".env.local",
        "server.pem",
        "cert.p12",
        ".git/config",
        ".ipynb_checkpoints/q-checkpoint.ipynb",
        "__pycache__/helpers.cpython-311.pyc",
        ".venv/bin/python",
        "logs/run1.log",
        "scratch.tmp",
        "sub/keep.txt",
        "sub/deep/scratch.tmp",
    ):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text("x")
    # "!.env" cannot bring a default exclusion back.
    (folder / ".launchignore").write_text("# local junk\nlogs/\n*.tmp\n!.env\n!server.pem\n")
    ctx = create_context(nb, tmp_path / "ctx", wheel=False)
    shipped = sorted(p.relative_to(ctx.directory).as_posix() for p in ctx.directory.rglob("*") if p.is_file())
    assert shipped == ["Dockerfile", "data.csv", "helpers.py", "quickstart.ipynb", "requirements.txt", "sub/keep.txt"]


def test_include_narrows_to_the_given_globs_and_warns_on_no_match(tmp_path):
    nb = project(tmp_path / "src")
    (nb.parent / "sub").mkdir()
    (nb.parent / "sub" / "a.txt").write_text("a")
    ctx = create_context(nb, tmp_path / "ctx", include=["data.csv", "sub/", "missing/*.parquet"], wheel=False)
    shipped = sorted(p.relative_to(ctx.directory).as_posix() for p in ctx.directory.rglob("*") if p.is_file())
    assert shipped == ["Dockerfile", "data.csv", "quickstart.ipynb", "requirements.txt", "sub/a.txt"]
    assert any("missing/*.parquet" in w for w in ctx.warnings)


SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "p",
    "private_key_id": "k",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    "client_email": "sa@p.iam.gserviceaccount.com",
}


def test_a_service_account_key_is_refused_and_nothing_is_written(tmp_path):
    nb = project(tmp_path / "src")
    (nb.parent / "config").mkdir()
    (nb.parent / "config" / "creds.json").write_text(json.dumps(SERVICE_ACCOUNT))
    with pytest.raises(SecretError) as err:
        create_context(nb, tmp_path / "ctx")
    assert "config/creds.json" in str(err.value) and ".launchignore" in str(err.value)
    assert not (tmp_path / "ctx").exists()
    # Excluded through .launchignore, it no longer blocks and does not ship.
    (nb.parent / ".launchignore").write_text("config/creds.json\n")
    ctx = create_context(nb, tmp_path / "ctx")
    assert not (ctx.directory / "config" / "creds.json").exists()


def test_ordinary_json_with_a_private_key_field_is_not_mistaken_for_a_key(tmp_path):
    nb = project(tmp_path / "src")
    (nb.parent / "fields.json").write_text(json.dumps({"private_key": "column name", "type": "schema"}))
    ctx = create_context(nb, tmp_path / "ctx", wheel=False)
    assert (ctx.directory / "fields.json").is_file()


def test_missing_or_invalid_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(NotebookError, match="not found: .*nope.ipynb"):
        create_context(tmp_path / "nope.ipynb", tmp_path / "ctx")
    (tmp_path / "bad.ipynb").write_text("{not json")
    with pytest.raises(NotebookError, match="bad.ipynb is not a notebook"):
        create_context(tmp_path / "bad.ipynb", tmp_path / "ctx")
    (tmp_path / "old.ipynb").write_text(json.dumps({"worksheets": [], "nbformat": 3}))
    with pytest.raises(NotebookError, match="nbformat 4"):
        create_context(tmp_path / "old.ipynb", tmp_path / "ctx")
    assert not (tmp_path / "ctx").exists()


def test_requirements_txt_beside_the_notebook_wins(tmp_path):
    nb = tmp_path / "a.ipynb"
    nbformat.write(nbformat.from_dict(notebook_with("import yaml")), nb)
    (tmp_path / "requirements.txt").write_text("pandas==2.2.0\npapermill>=2\n")
    text, _ = resolve_requirements(nb)
    lines = text.splitlines()
    assert lines[:2] == ["pandas==2.2.0", "papermill>=2"]
    assert not any(line.startswith(("PyYAML", "papermill==")) for line in lines)
    assert any(line.startswith("ipykernel==") for line in lines)


def test_pyproject_dependencies_are_used_when_there_is_no_requirements_txt(tmp_path):
    nb = tmp_path / "a.ipynb"
    nbformat.write(nbformat.from_dict(notebook_with("import yaml")), nb)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["requests>=2", "numpy"]\n')
    text, _ = resolve_requirements(nb)
    assert text.splitlines()[:2] == ["requests>=2", "numpy"]


TINY_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
[project]
name = "{name}"
version = "{version}"
[tool.hatch.build.targets.wheel]
packages = ["{module}"]
dev-mode-dirs = ["."]  # editable installs as a plain .pth file
"""


def make_package(folder: Path, name: str, module: str, version: str) -> Path:
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text("VALUE = 1\n")
    (folder / "pyproject.toml").write_text(TINY_PYPROJECT.format(name=name, module=module, version=version))
    return folder


@pytest.mark.slow
def test_requirements_are_captured_from_a_real_virtualenv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    released = make_package(tmp_path / "tiny", "tiny-dist", "tiny_mod", "1.2.3")
    editable = make_package(tmp_path / "edit", "edit-dist", "edit_mod", "0.0.1")
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    # A real wheel install and a real editable install, with no network: the build backend
    # (hatchling) comes from the test venv through PYTHONPATH, only while installing.
    build_env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(released),
            "-w",
            str(wheels),
        ],
        check=True,
        env=build_env,
    )
    # Installed by name from a local index folder, the way an index install looks (no direct_url.json).
    subprocess.run([*pip, "install", "-q", "--no-index", "--find-links", str(wheels), "tiny-dist"], check=True)
    subprocess.run(
        [*pip, "install", "-q", "--no-index", "--no-deps", "--no-build-isolation", "-e", str(editable)],
        check=True,
        env=build_env,
    )
    nb = tmp_path / "nb" / "analysis.ipynb"
    nb.parent.mkdir()
    code = (
        "import json, os\nimport tiny_mod\nfrom edit_mod import VALUE\nimport not_installed_mod\n"
        "%time import magic_only_mod\n!pip install shell_only_mod\nfiles = !ls\nimport local_helper\n"
    )
    nbformat.write(nbformat.from_dict(notebook_with(code)), nb)
    (nb.parent / "local_helper.py").write_text("")
    script = (
        "import json, sys; from pathlib import Path\n"
        "from launch_jupyter.packaging.requirements import resolve_requirements\n"
        "print(json.dumps(resolve_requirements(Path(sys.argv[1]))))"
    )
    done = subprocess.run(
        [str(python), "-c", script, str(nb)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    text, warnings = json.loads(done.stdout)
    lines = text.splitlines()
    assert "tiny-dist==1.2.3" in lines
    assert any(line.startswith("# edit-dist==0.0.1") and "editable" in line for line in lines)
    assert any("edit-dist" in w and "editable" in w for w in warnings)
    assert any("not_installed_mod" in w for w in warnings)
    assert not any(m in text + " ".join(warnings) for m in ("magic_only_mod", "shell_only_mod", "local_helper"))
    assert not any(line.startswith(("json", "os")) for line in lines)
    # The entrypoint's own needs are always there, even when this env lacks them.
    assert "papermill" in lines and "ipykernel" in lines and "launch-jupyter==0.1.0" in lines


def test_parameters_injection_round_trip(tmp_path):
    params = {"name": "Ada", "n": 5, "ratio": 0.5, "flag": True, "items": [1, "two"], "opts": {"k": None}}
    first = inject_parameters(EXAMPLES / "quickstart.ipynb", params, tmp_path / "p1.ipynb")
    nb = nbformat.read(first, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    at = tags.index(["parameters"])
    assert tags[at + 1] == ["injected-parameters"]
    namespace = {}
    exec(nb.cells[at].source + "\n" + nb.cells[at + 1].source, namespace)
    assert {k: namespace[k] for k in params} == params
    # Injecting again replaces the injected cell instead of adding a second one.
    second = nbformat.read(inject_parameters(first, {"n": 7}, tmp_path / "p2.ipynb"), as_version=4)
    injected = [c for c in second.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "n = 7" in injected[0].source


def test_pack_is_deterministic_and_unpacks_to_the_same_files(tmp_path):
    ctx = create_context(project(tmp_path / "src"), tmp_path / "ctx")
    data = pack_context(ctx.directory)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    out = unpack_context(data, tmp_path / "out")
    for path in ctx.directory.rglob("*"):
        if path.is_file():
            assert (out / path.relative_to(ctx.directory)).read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    "name,kind", [("../escape.txt", tarfile.REGTYPE), ("/abs.txt", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)]
)
def test_unpack_refuses_paths_that_leave_the_folder(tmp_path, name, kind):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        bad = tarfile.TarInfo(name)
        bad.type = kind
        bad.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
        bad.size = 0 if kind == tarfile.SYMTYPE else 3
        tar.addfile(bad, io.BytesIO(b"bad") if kind == tarfile.REGTYPE else None)
    with pytest.raises(NotebookError, match="refusing to unpack"):
        unpack_context(raw.getvalue(), tmp_path / "dest" / "inner")
    assert not (tmp_path / "dest").exists() and not (tmp_path / "escape.txt").exists()
