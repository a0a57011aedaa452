"""Fuzzing the readers of untrusted input: only nbelastic's own one-line errors come out.

A notebook arrives from anywhere; its metadata, manifest and blobs may be damaged or hostile.
Whatever the bytes, reading them either succeeds or raises an NbelasticError, which the CLI and
the magic print as one line; any other exception would be a traceback in the user's face.
"""

from __future__ import annotations

import asyncio
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
from nbelastic.store import BlobStore, Manifest, ManifestEntry, read_manifest, write_manifest
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
            lambda lines: "# nbelastic manifest 2\n" + "".join(lines)
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


# --- every command that reads a checkpoint, on generated notebooks and sidecars -----------------

COMMAND_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOW_COMMAND_SETTINGS = settings(COMMAND_SETTINGS, max_examples=1000)
_VALUES = {"n": 3, "words": ["a", "b"], "pair": (1, 2), "text": "é"}
_DEEP = "<nested 100,000 deep>"  # written as that many brackets: json cannot dump it
# Numbers and nesting no valid checkpoint holds: past a float, past Python's recursion limit.
hostile_values = st.one_of(
    json_values,
    st.sampled_from([10**400, -(10**400), 2**63, 1e308, "../..", "/etc", "a" * 5000]),
    st.just(_DEEP),
)


@st.composite
def sidecar_damage(draw) -> list[tuple]:
    """What a sender, or a damaged copy, does to a notebook and its sidecar."""
    damage = st.one_of(
        st.tuples(st.just("document"), st.data()),
        st.tuples(st.just("metadata"), hostile_values),
        st.tuples(st.just("blob"), st.binary(max_size=200), st.sampled_from(["raw", "header"])),
        st.tuples(st.just("codec"), st.sampled_from(["json", "npy", "dill", "pickle", "module"])),
        st.tuples(st.just("manifest"), st.lists(manifest_line(), max_size=3)),
        st.tuples(st.just("record"), hostile_values),
        st.tuples(st.just("link"), st.sampled_from(["blobs", "checkpoints"])),
        st.tuples(st.just("twin"), notebook_texts),
    )
    return draw(st.lists(damage, min_size=1, max_size=3))


def _mutate(document: dict, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(paths(document)[1:]))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(hostile_values)


def build_damaged(directory: Path, damage: list[tuple]) -> Path:
    """A notebook saved with a few values and a recorded checkpoint, then damaged."""
    from sidecar_documents import save_values

    from nbelastic.checkpoints import record_checkpoint
    from nbelastic.notebook import sidecar_dir

    notebook = directory / "nb.ipynb"
    document = save_values(notebook, _VALUES, write=False)
    sidecar = sidecar_dir(notebook)
    store = BlobStore(sidecar)
    record_checkpoint(sidecar, document)
    metadata: object = copy.deepcopy(document)
    for kind, *arguments in damage:
        keys = sorted(store.keys())
        if kind == "document" and isinstance(metadata, dict):
            _mutate(metadata, arguments[0])
        elif kind == "metadata":
            metadata = arguments[0]
        elif kind == "blob" and keys:
            payload, form = arguments
            data = payload if form == "raw" else b"NBELASTIC-BLOB 1 dill\n" + payload
            store.path(keys[len(payload) % len(keys)]).write_bytes(data)
        elif kind == "codec":  # a manifest line claiming another codec than its blob's
            try:
                entries = read_manifest(store, document["manifest"]).entries
            except NbelasticError:  # damaged by an earlier step
                continue
            claimed = [ManifestEntry(e.names, arguments[0], e.size, e.key, e.pack) for e in entries]
            if isinstance(metadata, dict):
                metadata["manifest"] = write_manifest(store, Manifest(tuple(claimed)))
        elif kind == "manifest" and isinstance(metadata, dict):
            text = "# nbelastic manifest 2\n" + "".join(arguments[0])
            metadata["manifest"] = store.put("manifest", text.encode())
        elif kind == "record":
            for record in (sidecar / "checkpoints").glob("*.json"):
                record.write_text(_dumps({"format": 1, "document": arguments[0]}))
        elif kind == "link":
            target = directory / f"elsewhere-{arguments[0]}"
            target.mkdir(exist_ok=True)
            moved = sidecar / arguments[0]
            if moved.is_dir() and not moved.is_symlink():
                moved.rename(target / "moved")
                moved.symlink_to(target)
        elif kind == "twin":
            (directory / "nb.py").write_text(arguments[0], encoding="utf-8")
    nb = nbformat.v4.new_notebook(metadata={"nbelastic": metadata})
    notebook.write_text(_dumps(nb), encoding="utf-8")
    return notebook


def _dumps(value: object) -> str:
    deep = "[" * 100_000 + "]" * 100_000
    return json.dumps(value, default=str).replace(json.dumps(_DEEP), deep)


def every_reader(notebook: Path) -> None:
    """Run every command that reads ``notebook``'s checkpoint; only one-line errors may come
    out (the CLI's exit codes 1 and 2), never an exception."""
    from click.testing import CliRunner

    from nbelastic.cli import main
    from nbelastic.kernel.autorestore import _restore as autorestore_reads
    from nbelastic.rebuild import open_checkpoint
    from nbelastic.restore_plan import loader, plan_restore
    from nbelastic.server import SaveGuard
    from nbelastic.server_kernels import _carries_checkpoint
    from nbelastic.textconv import textconv

    runner = CliRunner()
    for command in (
        ["status"],
        ["status", "--json"],
        ["log"],
        ["diff", "1", "latest"],
        ["gc", "--dry-run"],
        ["gc", "--min-age", "0"],
        ["trust"],
    ):
        result = runner.invoke(main, [*command, str(notebook)], input="n\n")
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            command,
            result.exception,
        )
        assert result.exit_code in (0, 1, 2), (command, result.output)
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert all(line.startswith("nbelastic: ") for line in errors), result.stderr
    # verify: what the command reads before its kernel starts, then what an untrusted
    # restore in the kernel reads and loads
    with contextlib.suppress(NbelasticError):
        open_checkpoint(notebook, check_blobs=False, check_environment=False)
        checkpoint = open_checkpoint(notebook, check_environment=False)
        load = loader(checkpoint.store, trusted=False)
        for entry in plan_restore(checkpoint).entries:
            with contextlib.suppress(NbelasticError):
                load(entry)
    with contextlib.suppress(NbelasticError):
        asyncio.run(autorestore_reads(notebook))
    # git textconv, of the notebook and of every file in its sidecar
    for path in [notebook, *sorted(notebook.with_suffix(".nbelastic").rglob("*"))]:
        if path.is_file():
            textconv(path.read_bytes())
    # the server extension: whether a new kernel restores, and what a UI save keeps
    _carries_checkpoint(notebook)
    model = {"type": "notebook", "content": {"metadata": {}}}
    SaveGuard(notebook.parent).pre_save(model, notebook.name)


_EXAMPLE = iter(range(10**9))


def _every_reader_on(tmp_path: Path, damage: list[tuple]) -> None:
    directory = tmp_path / f"example-{next(_EXAMPLE)}"
    directory.mkdir()
    every_reader(build_damaged(directory, damage))


def test_every_reader_reads_the_undamaged_notebook(tmp_path):
    notebook = build_damaged(tmp_path, [])
    every_reader(notebook)


@COMMAND_SETTINGS
@given(damage=sidecar_damage())
def test_every_reader_of_a_damaged_notebook_gives_only_one_line_errors(tmp_path, damage):
    _every_reader_on(tmp_path, damage)


@pytest.mark.slow
@SLOW_COMMAND_SETTINGS
@given(damage=sidecar_damage())
def test_every_reader_of_a_thousand_damaged_notebooks_gives_only_one_line_errors(tmp_path, damage):
    _every_reader_on(tmp_path, damage)
