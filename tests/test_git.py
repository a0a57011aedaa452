"""`nbelastic git install|uninstall|status` and the textconv diffs, in real git repositories."""

from __future__ import annotations

import json
import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sidecar_documents import save_values
from test_cli import assert_one_clear_line, nbelastic

from nbelastic.store import BlobStore
from nbelastic.store.blobs import PACK_MIN_MEMBERS
from nbelastic.textconv import textconv


def git(repo, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "Test")
    return root


def test_install_sets_attributes_and_config_and_status_says_so(repo):
    result = nbelastic("git", "install", cwd=repo)
    assert result.returncode == 0, result.stderr
    attributes = (repo / ".gitattributes").read_text()
    assert "*.ipynb diff=nbelastic" in attributes
    assert "nbelastic git textconv" in git(repo, "config", "diff.nbelastic.textconv")
    status = nbelastic("git", "status", cwd=repo)
    assert status.returncode == 0 and "nbelastic block present" in status.stdout


def test_install_twice_changes_nothing_and_keeps_the_users_attributes(repo):
    (repo / ".gitattributes").write_text("*.csv text eol=lf\n")
    nbelastic("git", "install", cwd=repo)
    once = (repo / ".gitattributes").read_text()
    nbelastic("git", "install", cwd=repo)
    assert (repo / ".gitattributes").read_text() == once
    assert once.startswith("*.csv text eol=lf\n")


def test_uninstall_removes_only_what_install_added(repo):
    (repo / ".gitattributes").write_text("*.csv text eol=lf\n")
    nbelastic("git", "install", "--strip", cwd=repo)
    assert nbelastic("git", "uninstall", cwd=repo).returncode == 0
    assert (repo / ".gitattributes").read_text() == "*.csv text eol=lf\n"
    assert "nbelastic" not in git(repo, "config", "--local", "--list")
    status = nbelastic("git", "status", cwd=repo)
    assert status.returncode == 1 and "not installed" in status.stdout


def test_uninstall_deletes_a_gitattributes_that_only_held_our_block(repo):
    nbelastic("git", "install", cwd=repo)
    nbelastic("git", "uninstall", cwd=repo)
    assert not (repo / ".gitattributes").exists()


def test_install_keeps_lock_files_out_of_git_add(repo):
    (repo / ".analysis.ipynb.nbelastic-lock").touch()
    (repo / "analysis.ipynb").write_text("{}")
    nbelastic("git", "install", cwd=repo)
    git(repo, "add", ".")
    assert git(repo, "diff", "--cached", "--name-only").split() == [
        ".gitattributes",
        "analysis.ipynb",
    ]


def test_uninstall_takes_its_lines_out_of_the_exclude_file(repo):
    exclude = repo / ".git" / "info" / "exclude"
    exclude.parent.mkdir(exist_ok=True)
    exclude.write_text("*.log\n")
    nbelastic("git", "install", cwd=repo)
    assert "nbelastic-lock" in exclude.read_text()
    nbelastic("git", "uninstall", cwd=repo)
    assert exclude.read_text() == "*.log\n"


def test_outside_a_repository_is_one_clear_line(tmp_path):
    assert_one_clear_line(nbelastic("git", "install", cwd=tmp_path), "not inside a git repository")


def test_notebook_diff_shows_the_variables_that_changed(repo):
    nbelastic("git", "install", cwd=repo)
    notebook = repo / "analysis.ipynb"
    save_values(notebook, {"x": [1, 2], "same": "text"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    save_values(notebook, {"x": [1, 2, 3], "same": "text", "new": 1.5})
    diff = git(repo, "diff", "--", "analysis.ipynb")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[1:3] == "  "]
    assert any(line.startswith("-  x  builtins.list") for line in changed)
    assert any(line.startswith("+  x  builtins.list") for line in changed)
    assert any(line.startswith("+  new  builtins.float") for line in changed)
    assert not any(" same " in line for line in changed)
    assert '"nbelastic": {' not in diff


def test_blob_diff_summarises_the_value(repo):
    nbelastic("git", "install", cwd=repo)
    save_values(repo / "analysis.ipynb", {"x": [1, 2, 3]})
    git(repo, "add", "-A")
    diff = git(repo, "diff", "--cached", "--", "analysis.nbelastic/blobs")
    assert "+nbelastic blob: json, 7 B" in diff and "+[1, 2, 3]" in diff


def test_strip_filter_commits_notebooks_without_state(repo):
    nbelastic("git", "install", "--strip", cwd=repo)
    notebook = repo / "analysis.ipynb"
    save_values(notebook, {"x": 1})
    git(repo, "add", "analysis.ipynb")
    assert "nbelastic" not in json.loads(git(repo, "show", ":analysis.ipynb"))["metadata"]
    assert "nbelastic" in json.loads(notebook.read_text())["metadata"]  # the file keeps it


class _Boobytrap:
    def __reduce__(self):
        import os

        return (os.system, ("touch unpickled",))


def test_textconv_of_a_pickle_names_what_it_refers_to_without_unpickling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = BlobStore(tmp_path / "store")
    key = store.put("dill", pickle.dumps({"trap": _Boobytrap()}, protocol=5))
    text = textconv(store.path(key).read_bytes())
    assert "dill pickle (not loaded" in text and "system" in text
    assert not (tmp_path / "unpickled").exists()


def test_textconv_of_an_array_blob_shows_dtype_shape_and_first_values(tmp_path):
    numpy = pytest.importorskip("numpy")
    from nbelastic.store import encode_group

    store = BlobStore(tmp_path)
    key = store.put(*encode_group({"a": numpy.arange(20, dtype="float32").reshape(4, 5)}))
    text = textconv(store.path(key).read_bytes())
    assert "dtype=float32 shape=(4, 5)" in text and "[0.0, 1.0, 2.0" in text


def test_textconv_of_a_pack_shows_each_blob_in_it(tmp_path):
    store = BlobStore(tmp_path)
    with store.packing():
        keys = [store.put("json", b'"value %d"' % n) for n in range(PACK_MIN_MEMBERS)]
    (pack,) = store.pack_keys()
    text = textconv(store.pack_path(pack).read_bytes())
    assert text.startswith(f"nbelastic pack: {PACK_MIN_MEMBERS} blobs\n")
    assert f"blob {keys[0][:12]}: nbelastic blob: json" in text and "value 7" in text


def test_textconv_prints_files_it_does_not_know_as_they_are():
    assert textconv(b"plain text\n") == "plain text\n"
    assert textconv(b"NBELASTIC-BLOB 1 json\n{broken").startswith("nbelastic blob: json")


def test_pre_commit_hook_strips_the_notebooks_it_is_given(tmp_path):
    hooks = yaml.safe_load((Path(__file__).parent.parent / ".pre-commit-hooks.yaml").read_text())
    (hook,) = hooks
    assert hook["id"] == "nbelastic-strip" and hook["types"] == ["jupyter"]
    notebook = tmp_path / "analysis.ipynb"
    save_values(notebook, {"x": 1})
    command, *options = shlex.split(hook["entry"])
    assert command == "nbelastic"
    result = subprocess.run(
        [sys.executable, "-m", "nbelastic", *options, str(notebook)], capture_output=True
    )
    assert result.returncode == 0 and result.stdout == b""
    assert "nbelastic" not in json.loads(notebook.read_text())["metadata"]
