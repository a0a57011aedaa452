"""Real checkpoint documents and sidecar stores built without a kernel, for fast tests."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import nbformat

from nbelastic.history import History
from nbelastic.notebook import FORMAT_VERSION, sidecar_dir, write_checkpoint
from nbelastic.store import BlobStore, Manifest, ManifestEntry, encode_group, write_manifest


def save_values(notebook: Path, values: dict, *, write: bool = True, packed: bool = False) -> dict:
    """Store ``values`` (all stored, one cell each) in ``notebook``'s sidecar, as a save does;
    the checkpoint document, also written into the notebook unless ``write`` is false.
    ``packed`` gathers the small blobs into a pack, as a save of many variables does."""
    store = BlobStore(sidecar_dir(notebook))
    history = History()
    entries, variables = [], {}
    with store.packing() if packed else contextlib.nullcontext():
        for name, value in values.items():
            codec, payload = encode_group({name: value})
            entries.append(ManifestEntry((name,), codec, len(payload), store.put(codec, payload)))
    entries = [ManifestEntry(e.names, e.codec, e.size, e.key, store.slot(e.key)) for e in entries]
    for name, value in values.items():
        history.record(f"{name} = {value!r}", 0.5, writes=[name])
        payload = encode_group({name: value})[1]
        variables[name] = {
            "type": f"builtins.{type(value).__name__}",
            "size": len(payload),
            "hash": json.dumps(value).encode().hex()[:32] or "0",
            "action": "store",
            "why": "loading it is faster than replaying it.",
        }
    document = {
        "format": FORMAT_VERSION,
        "producer": "nbelastic test",
        "store": sidecar_dir(notebook).name,
        "manifest": write_manifest(store, Manifest(tuple(entries))),
        "plan": {"strategy": "store-all", "bandwidth": 1e8, "replay": [], "restore_seconds": 0.1},
        "history": history.to_json(),
        "variables": variables,
    }
    if write:
        if not notebook.exists():
            nbformat.write(nbformat.v4.new_notebook(), notebook)
        write_checkpoint(notebook, document)
    return document


def blob_keys(notebook: Path) -> set[str]:
    """The loose blobs and the packs in ``notebook``'s sidecar."""
    store = BlobStore(sidecar_dir(notebook))
    return store.keys() | store.pack_keys()
