"""The checkpoint in notebook metadata: round trips, determinism, atomicity and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import stat
from importlib import resources
from pathlib import Path

import jsonschema
import jupytext
import nbformat
import pytest

from nbelastic.errors import (
    CheckpointFormatError,
    NbelasticError,
    NoCheckpointError,
    NotebookNotFoundError,
    StoreWriteError,
)
from nbelastic.history import History
from nbelastic.notebook import (
    FORMAT_VERSION,
    METADATA_KEY,
    checkpoint_of,
    read_checkpoint,
    read_notebook,
    sidecar_dir,
    strip_checkpoint,
    validate_checkpoint,
    write_checkpoint,
    write_notebook,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"


def make_checkpoint() -> dict:
    history = History()
    history.record("x = 41", 0.01, writes=["x"])
    history.record("y = x + 1\nprint('---')  # %% not a cell", 2.5, reads=["x"], writes=["y"])
    return {
        "format": FORMAT_VERSION,
        "producer": "nbelastic 0.1.0",
        "store": "analysis.nbelastic",
        "manifest": "0123456789" * 6 + "abcd",
        "plan": {"strategy": "optimal", "bandwidth": 1.2e9, "replay": [2], "restore_seconds": 0.42},
        "history": history.to_json(),
        "variables": {
            "x": {
                "type": "builtins.int",
                "size": 28,
                "hash": "9f3a",
                "action": "store",
                "why": "loading it is faster than replaying cell 1.",
            },
            "y": {
                "type": "builtins.int",
                "size": 28,
                "hash": None,
                "action": "replay",
                "why": "replaying cell 2 is cheaper than loading it.",
            },
        },
    }


def copy_fixture(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copy(FIXTURES / name, tmp_path / name))


def notebook_with(tmp_path: Path, checkpoint: object) -> Path:
    """A notebook whose metadata holds ``checkpoint`` as it is, valid or not."""
    nb = nbformat.v4.new_notebook(metadata={METADATA_KEY: checkpoint})
    path = tmp_path / "analysis.ipynb"
    nbformat.write(nb, path)
    return path


def assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message


# --- schema and contract ------------------------------------------------------------------------


def test_shipped_schema_is_a_valid_draft_2020_12_schema():
    path = resources.files("nbelastic") / "schema" / f"checkpoint-{FORMAT_VERSION}.json"
    jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


def test_a_checkpoint_built_from_history_to_json_is_valid():
    checkpoint = make_checkpoint()
    assert validate_checkpoint(checkpoint) is checkpoint


def test_sidecar_dir_replaces_the_notebook_suffix(tmp_path):
    assert sidecar_dir(tmp_path / "analysis.ipynb") == tmp_path / "analysis.nbelastic"
    assert sidecar_dir(tmp_path / "analysis.py") == tmp_path / "analysis.nbelastic"


def test_checkpoint_of_returns_the_raw_key_or_none():
    assert checkpoint_of(nbformat.v4.new_notebook()) is None
    nb = nbformat.v4.new_notebook(metadata={METADATA_KEY: {"format": 99}})
    assert checkpoint_of(nb) == {"format": 99}


# --- round trips --------------------------------------------------------------------------------


def test_written_checkpoint_reads_back_equal(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    write_checkpoint(path, make_checkpoint())
    assert read_checkpoint(path) == make_checkpoint()


def test_writing_the_same_checkpoint_twice_gives_byte_identical_files(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    write_checkpoint(path, make_checkpoint())
    first = path.read_bytes()
    write_checkpoint(path, make_checkpoint())
    assert path.read_bytes() == first


def test_written_file_is_what_nbformat_writes(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    write_checkpoint(path, make_checkpoint())
    nb = nbformat.read(path, as_version=4)
    assert path.read_text(encoding="utf-8") == nbformat.writes(nb) + "\n"


def test_write_keeps_cells_outputs_and_other_metadata(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    before = nbformat.read(path, as_version=4)
    write_checkpoint(path, make_checkpoint())
    after = nbformat.read(path, as_version=4)
    assert after.cells == before.cells
    assert {k: v for k, v in after.metadata.items() if k != METADATA_KEY} == before.metadata


def test_write_then_strip_gives_back_the_original_bytes(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    original = path.read_bytes()
    write_checkpoint(path, make_checkpoint())
    strip_checkpoint(path)
    assert path.read_bytes() == original


def test_write_replaces_an_older_checkpoint(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    write_checkpoint(path, make_checkpoint())
    newer = make_checkpoint()
    newer["plan"]["strategy"] = "store-all"
    write_checkpoint(path, newer)
    assert read_checkpoint(path)["plan"]["strategy"] == "store-all"


def test_missing_notebook_is_created_with_the_given_cells(tmp_path):
    path = tmp_path / "analysis.ipynb"
    write_checkpoint(path, make_checkpoint(), new_cells=["x = 41", "y = x + 1"])
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        ("code", "x = 41"),
        ("code", "y = x + 1"),
    ]
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.language_info.name == "python"
    assert read_checkpoint(path) == make_checkpoint()


def test_new_cells_are_ignored_when_the_notebook_exists(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    before = nbformat.read(path, as_version=4).cells
    write_checkpoint(path, make_checkpoint(), new_cells=["ignored = True"])
    assert nbformat.read(path, as_version=4).cells == before


def test_creating_the_same_new_notebook_twice_gives_identical_files(tmp_path):
    first, second = tmp_path / "a.ipynb", tmp_path / "b.ipynb"
    write_checkpoint(first, make_checkpoint(), new_cells=["x = 41"])
    write_checkpoint(second, make_checkpoint(), new_cells=["x = 41"])
    assert first.read_bytes() == second.read_bytes()


def test_new_notebook_permissions_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        write_checkpoint(tmp_path / "analysis.ipynb", make_checkpoint())
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "analysis.ipynb").stat().st_mode) == 0o640


def test_write_keeps_the_file_mode(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    path.chmod(0o604)
    write_checkpoint(path, make_checkpoint())
    assert stat.S_IMODE(path.stat().st_mode) == 0o604


def test_write_through_a_symlink_keeps_the_symlink(tmp_path):
    target = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    link = tmp_path / "link.ipynb"
    link.symlink_to(target.name)
    write_checkpoint(link, make_checkpoint())
    assert link.is_symlink()
    assert read_checkpoint(target) == make_checkpoint()


# --- text notebooks (jupytext) ------------------------------------------------------------------


def test_percent_script_keeps_a_restorable_checkpoint(tmp_path):
    path = copy_fixture("percent_script.py", tmp_path)
    write_checkpoint(path, make_checkpoint())
    assert read_checkpoint(path) == make_checkpoint()
    assert "# %%\nx = 41\n" in path.read_text(encoding="utf-8")


def test_percent_script_checkpoint_survives_a_save_by_jupytext(tmp_path):
    # What Jupyter with jupytext does on save: read the text notebook, write it back.
    path = copy_fixture("percent_script.py", tmp_path)
    write_checkpoint(path, make_checkpoint())
    jupytext.write(jupytext.read(path), path)
    assert read_checkpoint(path) == make_checkpoint()


def test_percent_script_written_twice_is_byte_identical(tmp_path):
    path = copy_fixture("percent_script.py", tmp_path)
    write_checkpoint(path, make_checkpoint())
    first = path.read_bytes()
    write_checkpoint(path, make_checkpoint())
    assert path.read_bytes() == first


def test_stripping_a_headerless_script_gives_back_the_original_bytes(tmp_path):
    path = copy_fixture("percent_script.py", tmp_path)
    original = path.read_bytes()
    write_checkpoint(path, make_checkpoint())
    strip_checkpoint(path)
    assert path.read_bytes() == original


def test_script_with_a_jupytext_header_keeps_its_other_metadata(tmp_path):
    path = tmp_path / "analysis.py"
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        }
    )
    nb.cells = [nbformat.v4.new_code_cell("x = 41")]
    jupytext.write(nb, path, fmt="py:percent")
    write_checkpoint(path, make_checkpoint())
    assert jupytext.read(path).metadata.kernelspec.name == "python3"
    assert read_checkpoint(path) == make_checkpoint()


def test_missing_markdown_notebook_is_created_with_the_given_cells(tmp_path):
    path = tmp_path / "analysis.md"
    write_checkpoint(path, make_checkpoint(), new_cells=["x = 41"])
    assert [c.source for c in jupytext.read(path).cells] == ["x = 41"]
    assert read_checkpoint(path) == make_checkpoint()


# --- whole notebooks ----------------------------------------------------------------------------


def test_read_notebook_returns_cells_and_outputs(tmp_path):
    nb = read_notebook(copy_fixture("notebook_with_outputs.ipynb", tmp_path))
    assert [c.id for c in nb.cells] == ["intro", "compute", "fails"]
    assert nb.cells[1].outputs[0].text == "hi\n"


def test_read_notebook_raises_not_found_for_a_missing_path(tmp_path):
    with pytest.raises(NotebookNotFoundError):
        read_notebook(tmp_path / "nowhere.ipynb")


def test_write_notebook_keeps_the_checkpoint_the_target_holds(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    write_checkpoint(path, make_checkpoint())
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("z = 0", id="z")])
    write_notebook(path, nb, keep_checkpoint_of=path)
    assert read_notebook(path).cells == nb.cells
    assert read_checkpoint(path) == make_checkpoint()


def test_write_notebook_drops_a_checkpoint_the_target_does_not_hold(tmp_path):
    source = tmp_path / "source.ipynb"
    write_checkpoint(source, make_checkpoint(), new_cells=["x = 41"])
    target = tmp_path / "target.ipynb"
    write_notebook(target, read_notebook(source), keep_checkpoint_of=target)
    with pytest.raises(NoCheckpointError):
        read_checkpoint(target)


def test_write_notebook_leaves_the_given_notebook_unchanged(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={METADATA_KEY: make_checkpoint()})
    write_notebook(tmp_path / "a.py", nb, keep_checkpoint_of=tmp_path / "a.py")
    assert nb.metadata == {METADATA_KEY: make_checkpoint()}


def test_write_notebook_converts_a_script_to_ipynb_without_text_markers(tmp_path):
    script = read_notebook(copy_fixture("percent_script.py", tmp_path))
    target = tmp_path / "analysis.ipynb"
    write_notebook(target, script)
    assert "text_representation" not in target.read_text(encoding="utf-8")
    assert [c.source for c in read_notebook(target).cells][1:] == ["x = 41", "y = x + 1"]


# --- strip --------------------------------------------------------------------------------------


def test_strip_removes_the_checkpoint(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    write_checkpoint(path, make_checkpoint())
    assert strip_checkpoint(path) is True
    assert checkpoint_of(nbformat.read(path, as_version=4)) is None


def test_strip_without_a_checkpoint_returns_false_and_writes_nothing(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    before = path.stat()  # an atomic write would replace the inode
    assert strip_checkpoint(path) is False
    assert path.stat().st_ino == before.st_ino
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def test_strip_is_idempotent(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    write_checkpoint(path, make_checkpoint())
    assert strip_checkpoint(path) is True
    stripped = path.read_bytes()
    assert strip_checkpoint(path) is False
    assert path.read_bytes() == stripped


@pytest.mark.parametrize("checkpoint", [{"format": 99}, {"format": 1, "junk": True}, "junk"])
def test_strip_removes_malformed_and_newer_checkpoints(tmp_path, checkpoint):
    path = notebook_with(tmp_path, checkpoint)
    assert strip_checkpoint(path) is True
    with pytest.raises(NoCheckpointError):
        read_checkpoint(path)


# --- atomic writes ------------------------------------------------------------------------------


def test_failed_replace_leaves_the_original_and_no_temporary_file(tmp_path, monkeypatch):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    original = path.read_bytes()

    def refuse(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StoreWriteError) as error:
        write_checkpoint(path, make_checkpoint())
    assert_one_line(error, str(path), "No space left on device")
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)

    def interrupt(_descriptor):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(path, make_checkpoint())
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_write_into_a_missing_directory_raises_store_write_error(tmp_path):
    with pytest.raises(StoreWriteError) as error:
        write_checkpoint(tmp_path / "no-such-dir" / "analysis.ipynb", make_checkpoint())
    assert_one_line(error, "no-such-dir")


# --- errors: the notebook -----------------------------------------------------------------------


def test_missing_notebook_raises_not_found(tmp_path):
    with pytest.raises(NotebookNotFoundError) as error:
        read_checkpoint(tmp_path / "nowhere.ipynb")
    assert_one_line(error, "no notebook at", "nowhere.ipynb", "check the path")


def test_directory_raises_not_found(tmp_path):
    (tmp_path / "folder.ipynb").mkdir()
    with pytest.raises(NotebookNotFoundError) as error:
        read_checkpoint(tmp_path / "folder.ipynb")
    assert_one_line(error, "folder.ipynb", "is a directory")


def test_write_to_a_directory_raises_not_found(tmp_path):
    (tmp_path / "folder.ipynb").mkdir()
    with pytest.raises(NotebookNotFoundError):
        write_checkpoint(tmp_path / "folder.ipynb", make_checkpoint())


def test_unreadable_notebook_raises_not_found(tmp_path, monkeypatch):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)

    def deny(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(NotebookNotFoundError) as error:
        read_checkpoint(path)
    assert_one_line(error, "no notebook at", "Permission denied")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"cells": [', "does not appear to be JSON"),
        (b"[]", "not a valid notebook"),
        (
            b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": 3}, "cells": []}',
            "$.metadata.kernelspec: 3 is not of type 'object'",
        ),
        (b"\xff\xfe not text", "not UTF-8"),
    ],
    ids=["bad-json", "json-array", "fails-nbformat-validation", "not-utf8"],
)
def test_invalid_notebook_raises_not_found(tmp_path, content, reason):
    path = tmp_path / "broken.ipynb"
    path.write_bytes(content)
    with pytest.raises(NotebookNotFoundError) as error:
        read_checkpoint(path)
    assert_one_line(error, "broken.ipynb is not a valid notebook", reason)


def test_write_refuses_to_overwrite_an_invalid_notebook(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_bytes(b'{"cells": [')
    with pytest.raises(NotebookNotFoundError):
        write_checkpoint(path, make_checkpoint())
    assert path.read_bytes() == b'{"cells": ['


def test_malformed_text_header_raises_not_found(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("# ---\n# jupyter:\n#   nbelastic: [unclosed\n# ---\n\n# %%\nx = 1\n")
    with pytest.raises(NotebookNotFoundError) as error:
        read_checkpoint(path)
    assert_one_line(error, "broken.py is not a valid notebook")


def test_unknown_suffix_raises_not_found(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x = 1\n")
    with pytest.raises(NotebookNotFoundError) as error:
        write_checkpoint(path, make_checkpoint())
    assert_one_line(error, "notes.txt is not a notebook")
    assert path.read_text() == "x = 1\n"


# --- errors: the checkpoint ---------------------------------------------------------------------


def test_notebook_without_checkpoint_raises_no_checkpoint(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    with pytest.raises(NoCheckpointError) as error:
        read_checkpoint(path)
    assert_one_line(error, str(path), "%nbelastic save", f"nbelastic run {path}")


def test_script_without_checkpoint_raises_no_checkpoint(tmp_path):
    path = copy_fixture("percent_script.py", tmp_path)
    with pytest.raises(NoCheckpointError):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ("checkpoint", "fragment"),
    [
        ({"producer": "nbelastic 0.1.0"}, "$.format: missing"),
        ({"format": "1"}, "$.format: '1' is not an integer"),
        ({"format": True}, "$.format: True is not an integer"),
        ({"format": 1.0}, "$.format: 1.0 is not an integer"),
        (None, "$: expected an object, found NoneType"),
    ],
    ids=["missing", "string", "bool", "float", "null"],
)
def test_bad_format_field_is_malformed(tmp_path, checkpoint, fragment):
    path = notebook_with(tmp_path, checkpoint)
    with pytest.raises(CheckpointFormatError) as error:
        read_checkpoint(path)
    assert_one_line(error, f"{path} has a malformed nbelastic checkpoint", fragment)


def test_newer_format_asks_for_an_upgrade(tmp_path):
    path = notebook_with(tmp_path, {**make_checkpoint(), "format": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointFormatError) as error:
        read_checkpoint(path)
    assert str(error.value) == (
        f"{path} holds a checkpoint in format 2, newer than this nbelastic (0.1.0) reads (1): "
        "upgrade nbelastic (pip install -U nbelastic)"
    )


def test_newer_format_is_reported_before_schema_errors(tmp_path):
    path = notebook_with(tmp_path, {"format": 7, "layout": "unknown to us"})
    with pytest.raises(CheckpointFormatError) as error:
        read_checkpoint(path)
    assert_one_line(error, "format 7, newer than this nbelastic", "upgrade nbelastic")
    assert "malformed" not in str(error.value)


def test_schema_violation_names_the_json_path(tmp_path):
    checkpoint = make_checkpoint()
    checkpoint["plan"]["strategy"] = "fastest"
    path = notebook_with(tmp_path, checkpoint)
    with pytest.raises(CheckpointFormatError) as error:
        read_checkpoint(path)
    assert_one_line(
        error,
        f"{path} has a malformed nbelastic checkpoint: $.plan.strategy: 'fastest'",
        f"nbelastic strip {path}",
    )


@pytest.mark.parametrize(
    ("where", "location"),
    [
        (lambda c: c, "$"),
        (lambda c: c["plan"], "$.plan"),
        (lambda c: c["history"]["executions"][1], "$.history.executions[1]"),
        (lambda c: c["variables"]["x"], "$.variables.x"),
    ],
    ids=["top", "plan", "execution", "variable"],
)
def test_unknown_extra_key_is_rejected(where, location):
    checkpoint = make_checkpoint()
    where(checkpoint)["replayabel"] = True
    with pytest.raises(CheckpointFormatError) as error:
        validate_checkpoint(checkpoint)
    assert_one_line(error, f"{location}: Additional properties", "'replayabel' was unexpected")


@pytest.mark.parametrize(
    ("change", "location"),
    [
        (lambda c: c["history"].pop("active"), "$.history: 'active' is a required property"),
        (lambda c: c.update(manifest="ABC"), "$.manifest"),
        (lambda c: c.update(manifest="a" * 64 + "\n"), "$.manifest"),
        (lambda c: c["plan"].update(bandwidth=0), "$.plan.bandwidth"),
        (lambda c: c["plan"]["replay"].append(-1), "$.plan.replay[1]"),
        (
            lambda c: c["history"]["executions"][0]["writes"].append("x@0"),
            "$.history.executions[0].writes[1]",
        ),
        (lambda c: c["history"]["executions"][0].update(rng="xyz"), "$.history.executions[0].rng"),
        (lambda c: c["variables"]["x"].update(action="keep"), "$.variables.x.action"),
        (lambda c: c["variables"]["x"].update(size=-1), "$.variables.x.size"),
    ],
    ids=[
        "required",
        "manifest",
        "manifest-newline",
        "bandwidth",
        "replay",
        "snapshot",
        "rng",
        "action",
        "size",
    ],
)
def test_schema_violations_are_rejected(change, location):
    checkpoint = make_checkpoint()
    change(checkpoint)
    with pytest.raises(CheckpointFormatError) as error:
        validate_checkpoint(checkpoint)
    assert_one_line(error, "the document has a malformed nbelastic checkpoint", location)


@pytest.mark.parametrize("number", [float("inf"), float("nan")])
def test_non_finite_numbers_are_rejected(number):
    checkpoint = make_checkpoint()
    checkpoint["plan"]["restore_seconds"] = number
    with pytest.raises(CheckpointFormatError) as error:
        validate_checkpoint(checkpoint)
    why = "is not a finite number" if number != number else "is greater than the maximum"
    assert_one_line(error, "$.plan.restore_seconds", why)


def test_replay_must_be_strictly_ascending():
    checkpoint = make_checkpoint()
    checkpoint["plan"]["replay"] = [2, 1]
    with pytest.raises(CheckpointFormatError) as error:
        validate_checkpoint(checkpoint)
    assert_one_line(error, "$.plan.replay[1]: execution ids must be strictly ascending")


def test_replay_must_name_executions_of_the_history():
    checkpoint = make_checkpoint()
    checkpoint["plan"]["replay"] = [2, 9]
    with pytest.raises(CheckpointFormatError) as error:
        validate_checkpoint(checkpoint)
    assert_one_line(error, "$.plan.replay[1]: execution 9 is not in the history")


def test_active_snapshots_must_have_a_writer():
    checkpoint = make_checkpoint()
    checkpoint["history"]["active"]["x"] = 3
    with pytest.raises(CheckpointFormatError) as error:
        validate_checkpoint(checkpoint)
    assert_one_line(error, "$.history.active.x: no execution writes x@3")


def test_write_refuses_an_invalid_checkpoint_and_leaves_the_file(tmp_path):
    path = copy_fixture("notebook_with_outputs.ipynb", tmp_path)
    original = path.read_bytes()
    checkpoint = make_checkpoint()
    del checkpoint["manifest"]
    with pytest.raises(CheckpointFormatError) as error:
        write_checkpoint(path, checkpoint)
    assert_one_line(error, f"nothing written to {path}", "'manifest' is a required property")
    assert path.read_bytes() == original


def test_every_error_is_an_nbelastic_error(tmp_path):
    with pytest.raises(NbelasticError):
        read_checkpoint(tmp_path / "nowhere.ipynb")


@pytest.mark.parametrize("name", ["demo.ipynb", "notebook_with_outputs.ipynb"])
@pytest.mark.parametrize("with_id", [False, True], ids=["whole", "with-id"])
def test_a_checkpoint_written_into_an_ipynb_is_byte_for_byte_what_nbformat_writes(
    tmp_path, name, with_id
):
    path = copy_fixture(name, tmp_path)
    checkpoint = make_checkpoint() | ({"checkpoint": "1-0123456789ab"} if with_id else {})
    expected = nbformat.read(path, as_version=4)
    expected.metadata[METADATA_KEY] = checkpoint
    if with_id:
        expected.metadata["jupytext"] = {
            "notebook_metadata_filter": "nbelastic.checkpoint,nbelastic.format"
        }
    write_checkpoint(path, checkpoint)
    assert path.read_text() == nbformat.writes(expected) + "\n"
