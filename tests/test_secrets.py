"""The secret corpus: credential files, keys under other names and encodings, links, notebook
outputs. None of it ever appears in a build context; what is refused names the file."""

import base64
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import nbformat
import pytest
import yaml

from launch_jupyter.core.errors import NotebookError, SecretError
from launch_jupyter.core.secrets import mask_secrets, scan_bytes
from launch_jupyter.packaging import create_context, pack_context
from tests.fixtures.common import EXAMPLES, REPO

# Built from parts so no scanner flags this test file as a leak; each holds a unique marker.
PEM = "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEpQIBAAKCAQEA" + "PEMMARKER" * 8 + "\n-----END RSA PRIVATE KEY-----\n"
SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "p",
    "private_key_id": "SAMARKER",
    "private_key": "-----BEGIN "
    + "PRIVATE KEY-----\nMIIEvQIBADANBg"
    + "SAMARKER" * 6
    + "\n-----END PRIVATE KEY-----\n",
    "client_email": "sa@p.iam.gserviceaccount.com",
    "token_uri": "https://oauth2.googleapis.com/token",
}
TOKENS = {
    "GitHub token": "ghp_" + "GHMARKER" * 4 + "abcd",
    "AWS access key id": "AKIA" + "AWSMARKER1234567"[:16],
    "Slack token": "xoxb-" + "123456789012-SLACKMARKER",
    "Google API key": "AIza" + "GOOGLEMARKER" * 3,
    "OpenAI/Anthropic API key": "sk-proj-" + "OPENAIMARKER" * 3,
    "Hugging Face token": "hf_" + "HFMARKER" * 5,
    "W&B API key": "WANDB_API_KEY=" + "0123456789abcdef" * 2 + "01234567",
    "GitLab token": "glpat-" + "GLMARKER" * 3,
}
MARKERS = (
    "PEMMARKER",
    "SAMARKER",
    "GHMARKER",
    "AWSMARKER",
    "SLACKMARKER",
    "GOOGLEMARKER",
    "OPENAIMARKER",
    "HFMARKER",
    "GLMARKER",
    "0123456789abcdef01",
    "ENVMARKER",
    "CREDMARKER",
    "OUTMARKER",
    "DBMARKER",
)


def project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "quickstart.ipynb", folder / "quickstart.ipynb")
    (folder / "data.csv").write_text("a,b\n1,2\n")
    return folder / "quickstart.ipynb"


def shipped_bytes(ctx) -> bytes:
    """Every byte of the packed context, uncompressed (what the store and the image get)."""
    with tarfile.open(fileobj=io.BytesIO(pack_context(ctx.directory))) as tar:
        return b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())


def assert_no_marker(data: bytes) -> None:
    views = (data, data.decode("latin-1").encode("utf-16-le"))
    found = [m for m in MARKERS for view in views if m.encode() in data or m.encode("utf-16-le") in view]
    assert found == []


# ---------------------------------------------------------------- credential files by name

CREDENTIAL_FILES = (
    ".aws/credentials",
    ".aws/config",
    ".docker/config.json",
    ".kube/config",
    ".git-credentials",
    ".pgpass",
    ".netrc",
    ".ssh/id_ed25519",
    ".ssh/config",
    ".ssh/known_hosts",
    ".ssh/deploy_key",
    ".config/gcloud/application_default_credentials.json",
    ".config/gcloud/credentials.db",
    ".config/gcloud/access_tokens.db",
    ".config/gcloud/legacy_credentials/me@x.com/adc.json",
    "home/.aws/credentials",
    "home/.docker/config.json",
    "deep/er/.kube/config",
    "application_default_credentials.json",
    ".env",
    ".env.production",
    "id_rsa",
    "server.key",
    ".pypirc",
    ".gnupg/secring.gpg",
    ".vault-token",
)


def test_credential_files_of_the_usual_tools_never_ship(tmp_path):
    nb = project(tmp_path / "src")
    for rel in CREDENTIAL_FILES:
        (nb.parent / rel).parent.mkdir(parents=True, exist_ok=True)
        (nb.parent / rel).write_text(f"CREDMARKER {rel}\n")
    (nb.parent / ".launchignore").write_text("!.aws/\n!.ssh/id_ed25519\n")  # cannot bring them back
    ctx = create_context(nb, tmp_path / "ctx", wheel=False)
    names = sorted(p.relative_to(ctx.directory).as_posix() for p in ctx.directory.rglob("*") if p.is_file())
    assert names == ["Dockerfile", "data.csv", "quickstart.ipynb", "requirements.txt"]
    assert_no_marker(shipped_bytes(ctx))


# ---------------------------------------------------------------- content, whatever the name


def _utf16(text: str) -> bytes:
    return text.encode("utf-16")  # with a BOM, as Windows editors write it


def _big_key() -> bytes:
    padded = {"padding": "x" * (2 * 1024 * 1024), **SERVICE_ACCOUNT}
    return json.dumps(padded).encode()


def _k8s_secret() -> bytes:
    data = base64.b64encode(json.dumps(SERVICE_ACCOUNT).encode()).decode()
    return f"apiVersion: v1\nkind: Secret\ndata:\n  key.json: {data}\n".encode()


CONTENT_CASES = {
    "README.md": PEM.encode(),
    "notes.txt": ("see below\n\n" + PEM).encode(),
    "model.bin": b"\x00\x01\x02" * 100 + PEM.encode() + b"\xff" * 50,
    "creds.json": json.dumps(SERVICE_ACCOUNT, indent=2).encode(),
    "key16.json": _utf16(json.dumps(SERVICE_ACCOUNT)),
    "key16le.json": json.dumps(SERVICE_ACCOUNT).encode("utf-16-le"),
    "key16be.txt": json.dumps(SERVICE_ACCOUNT).encode("utf-16-be"),
    "nested.json": json.dumps([{"accounts": [SERVICE_ACCOUNT]}]).encode(),
    "config/key.yaml": yaml.safe_dump(SERVICE_ACCOUNT).encode(),
    "config/key_block.yml": ("private_key: |\n  " + PEM.replace("\n", "\n  ")).encode(),
    "big.json": _big_key(),
    "secret.yaml": _k8s_secret(),
    "pem_b64.txt": base64.b64encode(PEM.encode()),
    "adc.json": json.dumps(
        {"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "1//0" + "CREDMARKER" * 5}
    ).encode(),
    **{f"tokens/{kind.split()[0].lower()}.py": f"TOKEN = '{token}'\n".encode() for kind, token in TOKENS.items()},
}


@pytest.mark.parametrize("rel", sorted(CONTENT_CASES))
def test_a_file_that_holds_a_key_is_refused_by_its_content_naming_it(tmp_path, rel):
    nb = project(tmp_path / "src")
    (nb.parent / rel).parent.mkdir(parents=True, exist_ok=True)
    (nb.parent / rel).write_bytes(CONTENT_CASES[rel])
    with pytest.raises(SecretError) as err:
        create_context(nb, tmp_path / "ctx", wheel=False)
    message = str(err.value)
    assert rel in message and ".launchallow" in message and ".launchignore" in message
    assert not (tmp_path / "ctx").exists()


def test_each_token_format_is_recognised_by_kind():
    for kind, token in TOKENS.items():
        found = scan_bytes(f"x = 1\nkey = '{token}'\n".encode())
        assert found is not None and found.kind == kind and found.line == 2, kind


def test_the_projects_own_examples_and_sources_are_not_mistaken_for_secrets():
    checked = 0
    for folder in (EXAMPLES.parent, REPO / "launch_jupyter", REPO / "js"):
        for path in folder.rglob("*"):
            if path.is_file() and "node_modules" not in path.parts:
                assert scan_bytes(path.read_bytes()) is None, path
                checked += 1
    assert checked > 20


def test_a_false_positive_ships_when_listed_in_launchallow_or_passed_explicitly(tmp_path):
    nb = project(tmp_path / "src")
    doc = "The AWS docs' example key id is " + "AKIA" + "IOSFODNN7EXAMPLE" + ".\n"
    (nb.parent / "docs.md").write_text(doc)
    with pytest.raises(SecretError, match="docs.md .line 1. looks like a AWS access key id"):
        create_context(nb, tmp_path / "ctx", wheel=False)
    ctx = create_context(nb, tmp_path / "ctx", wheel=False, allow_secrets=["docs.md"])
    assert (ctx.directory / "docs.md").read_text() == doc
    (nb.parent / ".launchallow").write_text("# reviewed: documentation example\ndocs.md\n.env\n")
    (nb.parent / ".env").write_text("ENVMARKER=1\n")
    ctx = create_context(nb, tmp_path / "ctx2", wheel=False)
    assert (ctx.directory / "docs.md").is_file()
    assert not (ctx.directory / ".env").exists() and not (ctx.directory / ".launchallow").exists()


# ---------------------------------------------------------------- links


def test_a_link_is_judged_by_its_target(tmp_path):
    nb = project(tmp_path / "src")
    folder = nb.parent
    (folder / ".env").write_text("ENVMARKER=secret\n")
    (folder / "id_rsa").write_text(PEM)
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[credential]\nhelper = CREDMARKER\n")
    (folder / "notes.txt").symlink_to(".env")
    (folder / "README.md").symlink_to("id_rsa")
    (folder / "gitconfig").symlink_to(".git/config")
    (folder / "same.csv").symlink_to("data.csv")  # a link to a file that ships is fine
    ctx = create_context(nb, tmp_path / "ctx", wheel=False)
    names = sorted(p.relative_to(ctx.directory).as_posix() for p in ctx.directory.rglob("*") if p.is_file())
    assert names == ["Dockerfile", "data.csv", "quickstart.ipynb", "requirements.txt", "same.csv"]
    assert (ctx.directory / "same.csv").read_text() == "a,b\n1,2\n"
    assert any("notes.txt is a link to .env" in w for w in ctx.warnings)
    assert_no_marker(shipped_bytes(ctx))


def test_a_link_out_of_the_folder_is_refused_naming_it(tmp_path):
    nb = project(tmp_path / "src")
    outside = tmp_path / "home" / ".bashrc"
    outside.parent.mkdir()
    outside.write_text("export TOKEN=CREDMARKER\n")
    (nb.parent / "sub").mkdir()
    (nb.parent / "sub" / "settings").symlink_to(outside)
    with pytest.raises(SecretError, match=r"sub/settings is a link to .*\.bashrc, outside"):
        create_context(nb, tmp_path / "ctx", wheel=False)
    assert not (tmp_path / "ctx").exists()
    (nb.parent / ".launchignore").write_text("sub/settings\n")
    assert create_context(nb, tmp_path / "ctx", wheel=False).content_hash


# ---------------------------------------------------------------- notebook outputs


def notebook_with_output(path: Path, printed: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("import os\nprint(os.environ['GITHUB_TOKEN'])", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [cell]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": printed}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_outputs_are_stripped_by_default_and_kept_on_request(tmp_path):
    printed = "OUTMARKER " + TOKENS["GitHub token"]
    nb = notebook_with_output(tmp_path / "src" / "leaky.ipynb", printed)
    notebook_with_output(tmp_path / "src" / "other" / "old.ipynb", "OUTMARKER too")
    ctx = create_context(nb, tmp_path / "ctx", wheel=False)
    shipped = nbformat.reads((ctx.directory / "leaky.ipynb").read_text(), as_version=4)
    assert shipped.cells[0].outputs == [] and shipped.cells[0].execution_count is None
    assert shipped.cells[0].source.startswith("import os")
    nbformat.validate(shipped)
    assert_no_marker(shipped_bytes(ctx))
    # Kept on request, the printed token is then caught by the content check.
    with pytest.raises(SecretError, match="leaky.ipynb .* GitHub token"):
        create_context(nb, tmp_path / "ctx2", wheel=False, keep_outputs=True)
    (nb.parent / ".launchallow").write_text("leaky.ipynb\n")
    kept = create_context(nb, tmp_path / "ctx3", wheel=False, keep_outputs=True)
    assert "OUTMARKER" in (kept.directory / "leaky.ipynb").read_text()


# ---------------------------------------------------------------- folders that must not ship


def test_a_notebook_in_the_home_folder_or_above_it_is_refused(tmp_path, monkeypatch):
    home = tmp_path / "top" / "home"
    monkeypatch.setenv("HOME", str(home))
    nb = project(home)
    with pytest.raises(NotebookError, match="refusing to package .*: it is your home folder"):
        create_context(nb, tmp_path / "ctx", wheel=False)
    above = project(tmp_path / "top")
    with pytest.raises(NotebookError, match="holds your home folder"):
        create_context(above, tmp_path / "ctx", wheel=False)
    assert not (tmp_path / "ctx").exists()
    assert create_context(project(home / "project"), tmp_path / "ctx", wheel=False).content_hash


def test_the_store_and_the_data_dir_never_ship(tmp_path, monkeypatch):
    folder = tmp_path / "proj"
    nb = project(folder)
    monkeypatch.setenv("XDG_DATA_HOME", str(folder / "xdg"))  # the data dir inside the notebook's folder
    (folder / "xdg" / "launch_jupyter" / "runs" / "r1").mkdir(parents=True)
    (folder / "xdg" / "launch_jupyter" / "runs" / "r1" / "context.tar.gz").write_text("DBMARKER")
    store = folder / "state" / "team.db"
    store.parent.mkdir()
    for name in ("team.db", "team.db-wal", "team.db-journal"):
        (store.parent / name).write_text("DBMARKER")
    monkeypatch.setenv("LAUNCH_JUPYTER_DB", f"sqlite:///{store}")
    extra = folder / "agent-data"
    extra.mkdir()
    (extra / "x.log").write_text("DBMARKER")
    ctx = create_context(nb, tmp_path / "ctx", wheel=False, protected=[extra])
    names = sorted(p.relative_to(ctx.directory).as_posix() for p in ctx.directory.rglob("*") if p.is_file())
    assert names == ["Dockerfile", "data.csv", "quickstart.ipynb", "requirements.txt"]
    assert_no_marker(shipped_bytes(ctx))


def test_a_notebook_inside_the_data_dir_still_ships_its_own_files(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    nb = project(tmp_path / "xdg" / "launch_jupyter" / "runs" / "r1" / "context")  # a run submitting itself
    ctx = create_context(nb, tmp_path / "ctx", wheel=False)
    assert (ctx.directory / "data.csv").is_file()


def test_over_the_size_limit_the_biggest_files_are_named(tmp_path):
    nb = project(tmp_path / "src")
    (nb.parent / "huge.parquet").write_bytes(os.urandom(300_000))
    (nb.parent / "big.npy").write_bytes(b"\0" * 200_000)
    with pytest.raises(NotebookError) as err:
        create_context(nb, tmp_path / "ctx", wheel=False, max_bytes=100_000)
    message = str(err.value)
    assert "over the limit" in message and message.index("huge.parquet") < message.index("big.npy")
    assert ".launchignore" in message and not (tmp_path / "ctx").exists()
    # The notebook alone over the limit is refused too.
    with pytest.raises(NotebookError, match="quickstart.ipynb"):
        create_context(nb, tmp_path / "ctx", wheel=False, include=["data.csv"], max_bytes=100)


def test_mask_secrets_hides_keys_and_tokens_for_display():
    text = f"env:\n  GH: {TOKENS['GitHub token']}\n  KEY: |\n{PEM}  plain: 42\n"
    masked = mask_secrets(text)
    assert "GHMARKER" not in masked and "PEMMARKER" not in masked
    assert "plain: 42" in masked and masked.count("****") == 2
