"""Integrity at restore: damaged blobs are rebuilt by replay when the graph allows, named when
not, and the rest of the state comes back either way; a changed environment is a warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from checkpoint_kernels import restore_in_kernel, save_in_kernel

from nbelastic.changes import compare
from nbelastic.history import History
from nbelastic.notebook import read_checkpoint, sidecar_dir, write_checkpoint
from nbelastic.objects import HASHER_VERSION
from nbelastic.rebuild import open_checkpoint
from nbelastic.restore_plan import plan_load
from nbelastic.store import BlobStore, Manifest, ManifestEntry, read_manifest, write_manifest
from nbelastic.trust import sign

CELLS = ["x = list(range(10))", "y = [v * 2 for v in x]", "x.append(99)"]


def blob_of(notebook: Path, name: str) -> Path:
    document = read_checkpoint(notebook)
    store = BlobStore(sidecar_dir(notebook))
    return store.path(read_manifest(store, document["manifest"]).entry_for(name).key)


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.kernel
@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_damaged_blob_is_rebuilt_by_replaying_its_cells(tmp_path, damage):
    notebook = save_in_kernel(tmp_path, [*CELLS, "z = (len(x), len(y))"], "store-all")
    blob = blob_of(notebook, "y")
    corrupt(blob) if damage == "corrupt" else blob.unlink()

    report, values = restore_in_kernel(notebook, ["x", "y", "z"])

    assert report["ok"], report
    # y read x before x.append(99): rebuilding it replays x's first cell too, then x is loaded
    assert report["replayed"] == [1, 2]
    assert sorted(report["loaded"]) == ["x", "z"]
    assert report["rebuilt"]["y"].endswith("; rebuilt by replaying cells 1, 2")
    assert values == {
        "x": repr([*range(10), 99]),
        "y": repr([v * 2 for v in range(10)]),
        "z": "(11, 10)",
    }


@pytest.mark.kernel
def test_a_corrupt_blob_in_a_pack_is_rebuilt_and_the_rest_of_the_pack_loaded(tmp_path):
    cells = [f"v{i} = {i} * 3" for i in range(40)]
    notebook = save_in_kernel(tmp_path, cells, "store-all")
    store = BlobStore(sidecar_dir(notebook))
    slot = read_manifest(store, read_checkpoint(notebook)["manifest"]).entry_for("v7").pack
    pack = store.pack_path(slot.pack)
    data = bytearray(pack.read_bytes())
    data[slot.offset + slot.length - 1] ^= 0x01
    pack.write_bytes(bytes(data))

    report, values = restore_in_kernel(notebook, [f"v{i}" for i in range(40)])

    assert report["ok"], report
    assert report["replayed"] == [8] and len(report["loaded"]) == 39
    assert values == {f"v{i}": repr(i * 3) for i in range(40)}


@pytest.mark.kernel
def test_a_damaged_blob_that_replay_cannot_rebuild_is_named_and_the_rest_restored(tmp_path):
    notebook = save_in_kernel(tmp_path, CELLS, "store-all", before_extension=["w = {1, 2}"])
    blob_of(notebook, "w").unlink()

    report, values = restore_in_kernel(notebook, ["w", "x", "y"])

    assert not report["ok"]
    assert list(report["not_loaded"]) == ["w"]
    why = report["not_loaded"]["w"]
    assert why.startswith("blob ") and " is missing, and replaying cannot rebuild it" in why
    assert "it comes from before nbelastic was loaded" in why
    assert values == {"x": repr([*range(10), 99]), "y": repr([v * 2 for v in range(10)])}


@pytest.mark.kernel
def test_verify_says_which_variable_was_rebuilt_and_exits_zero(tmp_path):
    notebook = save_in_kernel(tmp_path, CELLS, "store-all")
    corrupt(blob_of(notebook, "y"))
    result = subprocess.run(
        [sys.executable, "-m", "nbelastic", "verify", str(notebook)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: nb.ipynb: 2/2 variables verified")
    assert "  y: blob " in result.stdout and "is corrupt" in result.stdout
    assert "rebuilt by replaying cells 1, 2" in result.stdout


@pytest.mark.kernel
def test_a_changed_environment_is_a_warning_naming_the_packages(tmp_path):
    notebook = save_in_kernel(tmp_path, ["import numpy as np", "a = np.arange(3)"], "store-all")
    document = read_checkpoint(notebook)
    assert set(document["environment"]["packages"]) == {"numpy"}
    document["environment"] = {"python": "2.7.18", "packages": {"numpy": "0.0.1"}}
    write_checkpoint(notebook, sign(document))

    report, values = restore_in_kernel(notebook, ["a"])

    assert report["ok"] and values == {"a": "array([0, 1, 2])"}
    (warning,) = report["warnings"]
    assert (
        "(saved with 0.0.1)" in warning
        and "Python " in warning
        and "(saved with 2.7.18)" in warning
    )


@pytest.mark.kernel
@pytest.mark.parametrize("recorded", [1, None], ids=["older hasher", "no hasher recorded"])
def test_hashes_from_another_hasher_version_are_not_compared_and_said_so_once(tmp_path, recorded):
    cells = ["import pandas as pd", "df = pd.DataFrame({'s': ['x', 'y']})", "n = 3"]
    notebook = save_in_kernel(tmp_path, cells, "store-all")
    document = read_checkpoint(notebook)
    assert document["hasher"] == HASHER_VERSION
    if recorded is None:
        del document["hasher"]
    else:
        document["hasher"] = recorded
    document["variables"]["df"]["hash"] = "0" * 32  # what an older hasher made of it
    write_checkpoint(notebook, sign(document))

    report, values = restore_in_kernel(notebook, ["n"])

    assert report["ok"] and values == {"n": "3"}
    assert not report["mismatched"]
    assert {"df", "n"} <= set(report["unverifiable"])
    (warning,) = report["warnings"]
    assert f"hasher version 1 and this nbelastic hashes with version {HASHER_VERSION}" in warning


def test_checkpoints_of_different_hasher_versions_compare_by_type_size_and_code():
    history = History()
    history.record("a = 1", 0.1, writes=["a"])
    variable = {"type": "builtins.int", "size": 5, "hash": "1" * 32, "action": "store", "why": "."}
    before = {"history": history.to_json(), "variables": {"a": variable}}
    after = {**before, "hasher": 2, "variables": {"a": {**variable, "hash": "2" * 32}}}

    assert compare(before, after).brief() == "no change"
    assert compare({**before, "hasher": 2}, after).brief() == "~a"


def test_open_checkpoint_lists_damaged_groups_instead_of_refusing(tmp_path):
    store = BlobStore(tmp_path / "nb.nbelastic")
    good = ManifestEntry(("a",), "json", 1, store.put("json", b"1"))
    bad = ManifestEntry(("b",), "json", 1, store.put("json", b"2"))
    corrupt(store.path(bad.key))
    history = History()
    history.record("a = 1", 0.1, writes=["a"])
    history.record("b = 2", 0.1, writes=["b"])
    document = {
        "format": 1,
        "producer": "nbelastic test",
        "store": "nb.nbelastic",
        "manifest": write_manifest(store, Manifest((good, bad))),
        "plan": {"strategy": "store-all", "bandwidth": 1e9, "replay": [], "restore_seconds": 0},
        "history": history.to_json(),
        "variables": {
            n: {"type": "builtins.int", "size": 1, "hash": None, "action": "store", "why": "."}
            for n in "ab"
        },
    }
    write_checkpoint(tmp_path / "nb.ipynb", document)
    checkpoint = open_checkpoint(tmp_path / "nb.ipynb")
    assert list(checkpoint.damaged) == [bad]
    assert checkpoint.damaged[bad].endswith("is corrupt (its bytes do not match its hash)")
    assert not checkpoint.trusted


def test_rebuilding_one_damaged_group_can_make_another_rebuildable():
    history = History()
    history.record("a = f()", 1.0, writes=["a"])
    history.record("b = g(a)", 1.0, reads=["a"], writes=["b"])
    a = ManifestEntry(("a",), "dill", 1, "a" * 64)
    b = ManifestEntry(("b",), "dill", 1, "b" * 64)
    variables = {"a": {"action": "store"}, "b": {"action": "store"}}
    plan = plan_load(history, Manifest((a, b)), [], variables, {a: "blob a", b: "blob b"})
    assert plan.replay == (1, 2) and plan.entries == () and plan.not_loaded == {}
    assert set(plan.rebuilt) == {"a", "b"}
