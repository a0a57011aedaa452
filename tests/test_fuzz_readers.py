"""Fuzzing the readers of untrusted input: only nbelastic's own one-line errors come out.

A notebook arrives from anywhere; its metadata, manifest and blobs may be damaged or hostile.
Whatever the bytes, reading them either succeeds or raises an NbelasticError, which the CLI and
the magic print as one line; any other exception would be a traceback in the user's face.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbelastic.errors import NbelasticError
from nbelastic.history import History
from nbelastic.notebook import read_checkpoint, validate_checkpoint
from nbelastic.store import BlobStore, Manifest, ManifestEntry, read_manifest
from nbelastic.trust import is_trusted, sign

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def valid_document() -> dict:
    history = History()
    history.record("x = 41", 0.01, writes=["x"])
    history.record("y = x + 1", 2.5, reads=["x"], writes=["y"])
    history.record("del x", 0.0, deletes=["x"])
    return {
        "format": 1,
        "producer": "nbelastic 0.1.0",
        "store": "nb.nbelastic",
        "manifest": "ab" * 32,
        "plan": {"strategy": "optimal", "bandwidth": 1e9, "replay": [2], "restore_seconds": 2.5},
        "history": history.to_json(),
        "variables": {
            "y": {"type": "builtins.int", "size": 28, "hash": "9f", "action": "replay", "why": "."}
        },
        "environment": {"python": "3.11.7", "packages": {"numpy": "2.0.0"}},
    }


def paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


@st.composite
def mutated_documents(draw) -> object:
    """A valid checkpoint with one part replaced, deleted, or given an extra key."""
    document = valid_document()
    path = draw(st.sampled_from(paths(document)))
    if not path:
        return draw(json_values)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "delete", "extra"]))
    if action == "replace":
        parent[path[-1]] = draw(json_values)
    elif action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(json_values)
    return document


def open_document(document: object) -> None:
    """What a restore does with metadata before touching any file."""
    checked = validate_checkpoint(document)
    History.from_json(checked["history"])
    is_trusted(checked)


def test_the_valid_document_opens():
    open_document(valid_document())


@SETTINGS
@given(mutated_documents())
def test_damaged_metadata_gives_only_nbelastic_errors(document):
    with contextlib.suppress(NbelasticError):
        open_document(copy.deepcopy(document))


@SETTINGS
@given(json_values)
def test_any_history_json_gives_a_history_or_an_nbelastic_error(data):
    with contextlib.suppress(NbelasticError):
        History.from_json(data)


@SETTINGS
@given(mutated_documents())
def test_any_history_mutation_gives_a_history_or_an_nbelastic_error(document):
    history = document.get("history") if isinstance(document, dict) else document
    with contextlib.suppress(NbelasticError):
        History.from_json(history)


notebook_texts = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    mutated_documents().map(
        lambda document: nbformat.writes(nbformat.v4.new_notebook(metadata={"nbelastic": document}))
    ),
)


@SETTINGS
@given(text=notebook_texts, suffix=st.sampled_from([".ipynb", ".py", ".md"]))
def test_any_notebook_file_gives_a_checkpoint_or_an_nbelastic_error(tmp_path, text, suffix):
    notebook = tmp_path / f"fuzzed{suffix}"
    notebook.write_text(text, encoding="utf-8")
    with contextlib.suppress(NbelasticError):
        History.from_json(read_checkpoint(notebook)["history"])


def manifest_line() -> st.SearchStrategy[str]:
    entry = ManifestEntry(("a", "b"), "dill", 12, "cd" * 32).to_line()
    return st.sampled_from([entry, entry.replace("\t", " "), entry[:-10], "a\tjson\t1\t00\n"])


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(st.one_of(manifest_line(), st.text(max_size=40)), max_size=5).map(
            lambda lines: "# nbelastic manifest 1\n" + "".join(lines)
        ),
    )
)
def test_any_manifest_text_gives_a_manifest_or_an_nbelastic_error(text):
    try:
        manifest = Manifest.from_text(text)
    except NbelasticError:
        return
    assert Manifest.from_text(manifest.to_text()) == manifest


@SETTINGS
@given(data=st.binary(max_size=300))
def test_any_blob_bytes_read_as_a_manifest_give_only_nbelastic_errors(tmp_path, data):
    key = hashlib.sha256(data).hexdigest()
    store = BlobStore(tmp_path)
    store.path(key).parent.mkdir(parents=True, exist_ok=True)
    store.path(key).write_bytes(data)
    with contextlib.suppress(NbelasticError):
        read_manifest(store, key)


@SETTINGS
@given(signature=json_values)
def test_any_signature_value_is_simply_not_trusted(signature):
    document = {**valid_document(), "signature": signature}
    assert not is_trusted(document)


@pytest.mark.parametrize("suffix", [".ipynb", ".py"])
def test_a_signed_checkpoint_survives_the_readers(tmp_path: Path, suffix):
    from nbelastic.notebook import write_checkpoint

    notebook = tmp_path / f"nb{suffix}"
    write_checkpoint(notebook, sign(valid_document()), new_cells=["x = 41"])
    open_document(read_checkpoint(notebook))
