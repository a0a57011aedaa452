"""Where a save puts the stored variables, and how a checkpoint records the place."""

from __future__ import annotations

import pytest

from nbelastic.history import History
from nbelastic.locations import open_store, save_store
from nbelastic.notebook import write_checkpoint
from nbelastic.store import BlobStore
from nbelastic.store.remote import RemoteBlobStore, store_location


def test_a_store_directory_is_recorded_relative_to_the_notebook(tmp_path):
    notebook = tmp_path / "work" / "nb.ipynb"
    notebook.parent.mkdir()
    store = save_store(notebook, str(tmp_path / "shared" / "state"))
    assert store_location(store, notebook) == "../shared/state"
    assert open_store("../shared/state", notebook).root.resolve() == store.root.resolve()


def test_a_later_save_keeps_a_recorded_url(tmp_path):
    pytest.importorskip("s3fs")
    notebook = tmp_path / "nb.ipynb"
    history = History()
    history.record("x = 1", 0.1, writes=["x"])
    plan = {"strategy": "optimal", "bandwidth": 1e9, "replay": [1], "restore_seconds": 0.1}
    document = {
        "format": 1,
        "producer": "nbelastic test",
        "store": "s3://team/nb",
        "manifest": "ab" * 32,
        "plan": plan,
        "history": history.to_json(),
        "variables": {},
    }
    write_checkpoint(notebook, document, new_cells=["x = 1"])
    store = save_store(notebook)
    assert isinstance(store, RemoteBlobStore) and store.url == "s3://team/nb"


def test_without_a_recorded_url_the_sidecar_is_the_store(tmp_path):
    store = save_store(tmp_path / "missing.ipynb")
    assert isinstance(store, BlobStore) and store.root == tmp_path / "missing.nbelastic"
