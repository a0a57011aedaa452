"""The sidecar's checkpoint history, without kernels: records, references, comparisons."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest
from javascript import needs_node, round_trip_file
from sidecar_documents import save_values

from nbelastic.changes import compare
from nbelastic.checkpoints import (
    UnknownCheckpointError,
    current_record,
    document_digest,
    find_checkpoint,
    history_dir,
    list_checkpoints,
    next_checkpoint_id,
    record_checkpoint,
    resolve,
)
from nbelastic.errors import CheckpointFormatError
from nbelastic.notebook import read_checkpoint, sidecar_dir, write_checkpoint
from nbelastic.timeline import checkpoint_diff, checkpoint_log, format_log


@pytest.fixture
def notebook(tmp_path):
    return tmp_path / "analysis.ipynb"


def record(notebook, values, **options) -> str:
    return record_checkpoint(sidecar_dir(notebook), save_values(notebook, values), **options)


def test_each_changed_save_is_recorded_under_the_next_number(notebook):
    first = record(notebook, {"x": 1})
    second = record(notebook, {"x": 2})
    assert first.startswith("1-") and second.startswith("2-")
    assert [r.id for r in list_checkpoints(sidecar_dir(notebook))] == [first, second]


def test_saving_the_same_document_again_records_nothing(notebook):
    first = record(notebook, {"x": 1})
    files = sorted(history_dir(sidecar_dir(notebook)).iterdir())
    assert record(notebook, {"x": 1}) == first
    assert sorted(history_dir(sidecar_dir(notebook)).iterdir()) == files


def test_going_back_to_an_older_state_is_a_new_checkpoint(notebook):
    record(notebook, {"x": 1})
    record(notebook, {"x": 2})
    third = record(notebook, {"x": 1})
    assert third.startswith("3-")
    assert find_checkpoint(notebook, "1").digest == find_checkpoint(notebook, "3").digest


def test_a_record_keeps_the_document_and_the_time_of_the_save(notebook):
    document = save_values(notebook, {"x": 1})
    moment = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    checkpoint_id = record_checkpoint(sidecar_dir(notebook), document, now=moment)
    found = find_checkpoint(notebook, checkpoint_id)
    assert found.document == document
    assert found.saved_at == "2024-05-01T12:30:00Z"
    assert found.id == f"1-{document_digest(document)[:12]}"


@pytest.mark.parametrize("reference", ["2", "latest", "{digest}", "{id}"])
def test_a_checkpoint_is_found_by_number_digest_prefix_id_or_latest(notebook, reference):
    record(notebook, {"x": 1})
    wanted = find_checkpoint(notebook, record(notebook, {"x": 2}))
    text = reference.format(digest=wanted.digest[:6], id=wanted.id)
    assert find_checkpoint(notebook, text) == wanted


def test_an_unknown_checkpoint_is_one_line_that_says_how_to_list_them(notebook):
    record(notebook, {"x": 1})
    with pytest.raises(UnknownCheckpointError) as error:
        find_checkpoint(notebook, "7")
    message = str(error.value)
    assert "\n" not in message and "no checkpoint '7'" in message and "nbelastic log" in message


def test_a_damaged_record_is_named_with_what_to_do(notebook):
    checkpoint_id = record(notebook, {"x": 1})
    path = history_dir(sidecar_dir(notebook)) / f"{checkpoint_id}.json"
    path.write_text("{ not json")
    with pytest.raises(CheckpointFormatError) as error:
        list_checkpoints(sidecar_dir(notebook))
    assert str(path) in str(error.value) and "restore it from git" in str(error.value)


def test_a_damaged_old_record_does_not_stop_a_new_save(notebook):
    checkpoint_id = record(notebook, {"x": 1})
    (history_dir(sidecar_dir(notebook)) / f"{checkpoint_id}.json").write_text("damaged")
    assert record(notebook, {"x": 2}).startswith("2-")


def test_a_record_whose_document_was_edited_is_damaged(notebook):
    checkpoint_id = record(notebook, {"x": 1})
    path = history_dir(sidecar_dir(notebook)) / f"{checkpoint_id}.json"
    payload = json.loads(path.read_text())
    payload["document"]["producer"] = "someone else"
    path.write_text(json.dumps(payload))
    with pytest.raises(CheckpointFormatError, match="does not match its digest"):
        list_checkpoints(sidecar_dir(notebook))


def test_the_current_record_is_the_one_the_notebook_holds(notebook):
    record(notebook, {"x": 1})
    second = record(notebook, {"x": 2})
    document = save_values(notebook, {"x": 2})
    assert current_record(sidecar_dir(notebook), document).id == second


def test_compare_names_added_changed_and_removed_variables(notebook):
    before = save_values(notebook, {"a": 1, "b": [1], "c": "same"}, write=False)
    after = save_values(notebook, {"b": [1, 2], "c": "same", "d": None}, write=False)
    changes = compare(before, after)
    assert (changes.names("added"), changes.names("changed"), changes.names("removed")) == (
        ["d"],
        ["b"],
        ["a"],
    )
    assert changes.brief() == "-a ~b +d"


def test_a_value_without_hash_changes_when_the_cell_that_wrote_it_changes(notebook):
    before = save_values(notebook, {"g": 1}, write=False)
    after = save_values(notebook, {"g": 2}, write=False)
    for document in (before, after):
        document["variables"]["g"].update(hash=None, size=10)
    assert compare(before, after).names("changed") == ["g"]
    assert compare(before, before).items == ()


def test_log_lists_checkpoints_with_changes_bytes_and_the_current_one(notebook):
    record(notebook, {"x": 1, "y": "keep"})
    record(notebook, {"x": 2, "y": "keep"})
    entries = checkpoint_log(notebook)
    assert [e.changes.brief() for e in entries] == ["+x +y", "~x"]
    assert [e.current for e in entries] == [False, True]
    assert entries[1].new_bytes < entries[1].stored_bytes
    lines = format_log(entries).splitlines()
    assert lines[0].split() == ["checkpoint", "saved", "variables", "stored", "new", "changes"]
    assert lines[2].startswith("* 2-") and lines[2].endswith("~x")


def test_diff_reports_sizes_before_and_after(notebook):
    record(notebook, {"x": [1]})
    record(notebook, {"x": [1, 2, 3]})
    diff = checkpoint_diff(notebook, "1", "latest").to_json()
    (change,) = diff["changes"]
    assert change["name"] == "x" and change["change"] == "changed"
    assert change["size_before"] < change["size_after"]


def test_a_document_carrying_its_id_is_recorded_under_it(notebook):
    document = save_values(notebook, {"x": 1}, write=False)
    document["checkpoint"] = next_checkpoint_id(sidecar_dir(notebook), document)
    assert record_checkpoint(sidecar_dir(notebook), document) == document["checkpoint"]
    assert find_checkpoint(notebook, "1").document == document


def test_the_id_and_signature_do_not_change_the_digest(notebook):
    document = save_values(notebook, {"x": 1}, write=False)
    marked = {**document, "checkpoint": "1-" + "0" * 12, "signature": "hmac-sha256:" + "0" * 64}
    assert document_digest(marked) == document_digest(document)


@needs_node
def test_the_digest_survives_jupyterlab_writing_the_notebook_back(notebook):
    document = save_values(notebook, {"x": 1})
    round_trip_file(notebook)
    assert '"bandwidth": 100000000,' in notebook.read_text()
    assert document_digest(read_checkpoint(notebook)) == document_digest(document)


def record_as_0_1_did(notebook, document: dict) -> str:
    """Write a record named by nbelastic 0.1's digest (of Python's json.dumps text); its id."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    payload = {"format": 1, "saved_at": "2024-05-01T12:00:00Z", "digest": digest}
    directory = history_dir(sidecar_dir(notebook))
    directory.mkdir(parents=True)
    (directory / f"1-{digest[:12]}.json").write_text(json.dumps({**payload, "document": document}))
    return f"1-{digest[:12]}"


def test_a_record_made_by_nbelastic_0_1_is_still_read_and_found(notebook):
    document = save_values(notebook, {"x": 1})
    old_id = record_as_0_1_did(notebook, document)
    assert not old_id.endswith(document_digest(document)[:12])  # 1e8 was written 100000000.0
    assert [r.id for r in list_checkpoints(sidecar_dir(notebook))] == [old_id]
    assert current_record(sidecar_dir(notebook), document).id == old_id


def test_saving_the_state_a_0_1_record_holds_records_nothing(notebook):
    document = save_values(notebook, {"x": 1})
    old_id = record_as_0_1_did(notebook, document)
    assert record_checkpoint(sidecar_dir(notebook), document) == old_id
    assert len(list_checkpoints(sidecar_dir(notebook))) == 1


def test_a_reference_resolves_to_its_record(notebook):
    document = save_values(notebook, {"x": 1}, write=False)
    checkpoint_id = record_checkpoint(sidecar_dir(notebook), document)
    reference = {"format": 1, "checkpoint": checkpoint_id}
    assert resolve(sidecar_dir(notebook), reference, subject="nb") == document


def test_a_whole_document_is_its_own_resolution(notebook):
    document = save_values(notebook, {"x": 1}, write=False)
    document["checkpoint"] = "7-" + "f" * 12  # even with an id no record has
    assert resolve(sidecar_dir(notebook), document, subject="nb") is document


def test_a_reference_to_a_missing_record_names_what_to_copy(notebook):
    with pytest.raises(UnknownCheckpointError) as error:
        resolve(sidecar_dir(notebook), {"format": 1, "checkpoint": "4-" + "a" * 12}, subject="nb")
    assert "copy the whole sidecar" in str(error.value) and "\n" not in str(error.value)


def test_read_checkpoint_of_a_reference_gives_the_whole_document(notebook):
    document = save_values(notebook, {"x": 1}, write=False)
    checkpoint_id = record_checkpoint(sidecar_dir(notebook), document)
    write_checkpoint(notebook, {"format": 1, "checkpoint": checkpoint_id})
    assert read_checkpoint(notebook) == document
