"""`nbelastic status`, `gc` and `strip --sidecar/--stdin`, run as a user runs them (no kernel)."""

from __future__ import annotations

import io
import json
import os

import nbformat
import pytest
from sidecar_documents import blob_keys, save_values
from test_cli import assert_one_clear_line, nbelastic

from nbelastic.checkpoints import list_checkpoints, record_checkpoint
from nbelastic.notebook import read_checkpoint, sidecar_dir, write_checkpoint
from nbelastic.progress import Progress
from nbelastic.store import BlobStore, Manifest, read_manifest, write_manifest


@pytest.fixture
def notebook(tmp_path):
    return tmp_path / "analysis.ipynb"


def save(notebook, values) -> dict:
    document = save_values(notebook, values)
    record_checkpoint(sidecar_dir(notebook), document)
    return document


def age_blobs(notebook, seconds: float = 7200) -> None:
    """Make every blob and pack look written ``seconds`` ago."""
    store = BlobStore(sidecar_dir(notebook))
    for key in blob_keys(notebook):
        path = store.path(key) if store.path(key).exists() else store.pack_path(key)
        stamp = path.stat().st_mtime - seconds
        os.utime(path, (stamp, stamp))


def test_status_lists_each_variable_with_type_size_fate_and_cost(notebook):
    save(notebook, {"x": [1, 2, 3], "name": "abc"})
    result = nbelastic("status", str(notebook))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["variable", "type", "size", "fate", "cost"]
    assert lines[1].split()[:2] == ["name", "builtins.str"] and "stored" in lines[1]
    assert lines[-1].startswith("checkpoint 1-")


def test_status_json_is_for_scripts(notebook):
    save(notebook, {"x": 1})
    status = json.loads(nbelastic("status", str(notebook), "--json").stdout)
    assert [v["name"] for v in status["variables"]] == ["x"]
    assert status["variables"][0]["fate"] == "stored" and status["checkpoint"].startswith("1-")


def test_status_of_a_notebook_without_checkpoint_is_one_clear_line(notebook):
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    assert_one_clear_line(nbelastic("status", str(notebook)), "no nbelastic checkpoint")


def test_gc_removes_only_blobs_no_checkpoint_uses(notebook):
    save(notebook, {"x": 1})
    used = blob_keys(notebook)
    orphan = BlobStore(sidecar_dir(notebook)).put("json", b'"left over"')
    age_blobs(notebook)
    result = nbelastic("gc", str(notebook))
    assert result.returncode == 0, result.stderr
    assert "removed 1 unreferenced blobs" in result.stdout
    assert blob_keys(notebook) == used and orphan not in blob_keys(notebook)


def test_gc_keeps_a_pack_while_a_checkpoint_uses_any_blob_in_it(notebook):
    document = save_values(notebook, {f"v{i}": i for i in range(40)}, packed=True)
    store = BlobStore(sidecar_dir(notebook))
    (pack,) = store.pack_keys()
    first = read_manifest(store, document["manifest"]).entries[0]
    document["manifest"] = write_manifest(store, Manifest((first,)))
    write_checkpoint(notebook, document)
    age_blobs(notebook)
    assert nbelastic("gc", str(notebook)).returncode == 0
    assert store.pack_keys() == {pack}
    assert stored_values(notebook) == {"v0": 0}


def test_gc_removes_a_pack_no_checkpoint_uses_a_blob_of(notebook):
    save_values(notebook, {f"v{i}": i for i in range(40)}, packed=True)
    (old,) = BlobStore(sidecar_dir(notebook)).pack_keys()
    save(notebook, {f"w{i}": -i for i in range(40)})
    age_blobs(notebook)
    result = nbelastic("gc", str(notebook))
    assert result.returncode == 0, result.stderr
    assert old not in blob_keys(notebook)
    assert stored_values(notebook) == {f"w{i}": -i for i in range(40)}


def stored_values(notebook) -> dict:
    """The values the notebook's checkpoint stores, read back from its sidecar."""
    store = BlobStore(sidecar_dir(notebook))
    manifest = read_manifest(store, read_checkpoint(notebook)["manifest"])
    return {e.names[0]: json.loads(store.get(e.key)[1]) for e in manifest.entries}


def test_gc_keeps_the_blobs_of_older_checkpoints_in_the_history(notebook):
    save(notebook, {"x": 1})
    first = blob_keys(notebook)
    save(notebook, {"x": 2})
    age_blobs(notebook)
    nbelastic("gc", str(notebook), "--min-age", "0")
    assert first <= blob_keys(notebook)


def test_gc_keeps_young_blobs_unless_told_otherwise(notebook):
    save(notebook, {"x": 1})
    orphan = BlobStore(sidecar_dir(notebook)).put("json", b"2")
    assert "kept 1 younger" in nbelastic("gc", str(notebook)).stdout
    assert orphan in blob_keys(notebook)
    report = json.loads(nbelastic("gc", str(notebook), "--min-age", "0", "--json").stdout)
    assert report["removed"] == [orphan] and orphan not in blob_keys(notebook)


def test_gc_removes_the_temp_files_of_killed_saves_once_old(notebook):
    save(notebook, {"x": 1})
    blobs = sidecar_dir(notebook) / "blobs"
    stale, fresh = (
        blobs / ".nbelastic-0123456789abcdef.tmp",
        blobs / ".nbelastic-fedcba9876543210.tmp",
    )
    stale.write_bytes(b"half a pickle")
    fresh.write_bytes(b"a blob being written")
    os.utime(stale, (stale.stat().st_mtime - 7200,) * 2)
    used = blob_keys(notebook)
    assert nbelastic("gc", str(notebook)).returncode == 0
    assert not stale.exists() and fresh.exists() and blob_keys(notebook) == used


def test_gc_dry_run_deletes_nothing(notebook):
    save(notebook, {"x": 1})
    BlobStore(sidecar_dir(notebook)).put("json", b"2")
    before = blob_keys(notebook)
    result = nbelastic("gc", str(notebook), "--dry-run", "--min-age", "0")
    assert "would remove 1" in result.stdout and blob_keys(notebook) == before


def test_gc_deletes_nothing_when_a_checkpoint_cannot_be_read(notebook):
    save(notebook, {"x": 1})
    save(notebook, {"x": 2})
    BlobStore(sidecar_dir(notebook)).put("json", b"3")
    (list_checkpoints(sidecar_dir(notebook))[0]).path.write_text("damaged")
    before = blob_keys(notebook)
    assert_one_clear_line(nbelastic("gc", str(notebook), "--min-age", "0"), "damaged")
    assert blob_keys(notebook) == before


def test_strip_sidecar_keeps_what_older_checkpoints_use(notebook):
    save(notebook, {"x": 1, "y": "kept"})
    first = blob_keys(notebook)
    save(notebook, {"x": 2, "y": "kept"})
    result = nbelastic("strip", "--sidecar", str(notebook))
    assert result.returncode == 0, result.stderr
    assert "checkpoint removed" in result.stdout and "dropped 2-" in result.stdout
    assert "nbelastic" not in nbformat.read(notebook, as_version=4).metadata
    assert blob_keys(notebook) == first
    assert [r.number for r in list_checkpoints(sidecar_dir(notebook))] == [1]
    assert not (sidecar_dir(notebook) / "manifest.txt").exists()


def test_strip_sidecar_of_the_only_checkpoint_removes_the_sidecar(notebook):
    save(notebook, {"x": 1})
    assert "sidecar deleted" in nbelastic("strip", "--sidecar", str(notebook)).stdout
    assert not sidecar_dir(notebook).exists()


def test_strip_sidecar_keeps_blobs_a_jupytext_twin_still_holds(notebook):
    save(notebook, {"x": 1})
    twin = notebook.with_suffix(".py")
    twin.write_text(
        "# ---\n# jupyter:\n#   nbelastic: "
        + json.dumps(nbformat.read(notebook, as_version=4).metadata["nbelastic"])
        + "\n# ---\n\n# %%\nx = 1\n"
    )
    before = blob_keys(notebook)
    nbelastic("strip", "--sidecar", str(notebook))
    assert blob_keys(notebook) == before and len(list_checkpoints(sidecar_dir(notebook))) == 1


def test_strip_stdin_writes_the_stripped_notebook_to_stdout(notebook, tmp_path):
    save(notebook, {"x": 1})
    result = nbelastic_stdin(notebook.read_bytes(), "strip", "--stdin", "analysis.ipynb")
    assert result.returncode == 0, result.stderr
    assert "nbelastic" not in json.loads(result.stdout)["metadata"]
    assert "nbelastic" in nbformat.read(notebook, as_version=4).metadata  # the file is untouched


def test_strip_stdin_gives_back_a_notebook_without_checkpoint_byte_for_byte(tmp_path):
    text = b'{"cells": [], "metadata": {"a": 1},\n "nbformat": 4, "nbformat_minor": 5}\n'
    assert nbelastic_stdin(text, "strip", "--stdin").stdout.encode() == text


def test_strip_stdin_reads_a_text_notebook_by_the_suffix_it_is_given():
    text = b"# %%\nx = 1\n"
    result = nbelastic_stdin(text, "strip", "--stdin", "analysis.py")
    assert result.returncode == 0 and result.stdout.encode() == text


def test_strip_stdin_with_garbage_is_one_clear_line():
    assert_one_clear_line(nbelastic_stdin(b"{ nope", "strip", "--stdin"), "not a valid notebook")


def test_strip_without_notebooks_is_one_clear_line():
    assert_one_clear_line(nbelastic("strip"), "give the notebooks to strip")


def test_strip_continues_past_a_bad_notebook_and_exits_2(notebook, tmp_path):
    save(notebook, {"x": 1})
    result = nbelastic("strip", str(tmp_path / "missing.ipynb"), str(notebook))
    assert result.returncode == 2
    assert "missing.ipynb" in result.stderr and "checkpoint removed" in result.stdout


def test_help_documents_the_exit_codes():
    text = nbelastic("--help").stdout
    assert "Exit codes:" in text and "0  success" in text and "2  bad input" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_rewrites_one_line_and_keeps_warnings():
    screen = _Terminal()
    with Progress(stream=screen) as progress:
        progress("cell 1/3 ran in 0.10 s")
        progress("cell 2/3 ran in 0.10 s\nUserWarning: careful")
        progress("nbelastic save: 1/2 encoded x")
    shown = screen.getvalue()
    assert "\n" not in shown.replace("UserWarning: careful\n", "")
    assert shown.endswith("\r\x1b[K") and "UserWarning: careful\n" in shown


def test_progress_elsewhere_is_plain_lines_and_nothing_when_quiet():
    log = io.StringIO()
    with Progress(stream=log) as progress:
        progress("cell 1/2 ran in 0.10 s")
        progress("cell 2/2 ran in 0.10 s")
    assert log.getvalue() == "cell 1/2 ran in 0.10 s\ncell 2/2 ran in 0.10 s\n"
    quiet = io.StringIO()
    Progress(enabled=False, stream=quiet)("cell 1/2 ran in 0.10 s")
    assert quiet.getvalue() == ""


def nbelastic_stdin(data: bytes, *args: str):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "nbelastic", *args], input=data, capture_output=True, timeout=120
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )
