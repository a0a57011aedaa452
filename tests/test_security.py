"""The hostile review of issue 14, finding by finding: user A crafts a notebook, user B opens it.

Each test is the reproduction of one finding (a marker file means code ran) and failed before
its fix. Checkpoints are crafted without a kernel (tests/sidecar_documents.py) and left
unsigned, as a sender's are at the receiver's.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from conftest import evaluate
from sidecar_documents import blob_keys, save_values

from nbelastic.checkpoints import record_checkpoint
from nbelastic.cli import main
from nbelastic.driver import Kernel
from nbelastic.errors import CheckpointFormatError, StoreWriteError, TrustError
from nbelastic.garbage import collect
from nbelastic.lock import sidecar_lock
from nbelastic.notebook import read_checkpoint, sidecar_dir, validate_checkpoint, write_checkpoint
from nbelastic.rebuild import open_checkpoint
from nbelastic.review import review
from nbelastic.store import BlobStore, Manifest, ManifestEntry, decode_group, write_manifest
from nbelastic.store.pickles import pickle_globals, restricted_load
from nbelastic.textconv import textconv
from nbelastic.trust import is_trusted


def cli(*args: str):
    """Run the ``nbelastic`` command in this process, as a user would in a shell."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_error_line(result) -> str:
    """The command failed with one line of nbelastic's, and no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbelastic: error: "), result.stderr
    return lines[0]


def short_string(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE


def decoy_pickle(marker: Path) -> bytes:
    """Pushes ``io open``, then ``collections OrderedDict``, pops those two and calls
    STACK_GLOBAL: an opcode reader sees OrderedDict, the unpickler imports io.open."""
    return (
        b"\x80\x04"
        + short_string("io")
        + short_string("open")
        + short_string("collections")
        + short_string("OrderedDict")
        + b"00\x93"  # POP, POP, STACK_GLOBAL
        + short_string(str(marker))
        + short_string("w")
        + b"\x86R."  # TUPLE2, REDUCE, STOP
    )


def plant_blob(notebook: Path, name: str, codec: str, payload: bytes, manifest_codec: str) -> None:
    """Replace the blob of ``name`` by ``payload`` in the blob's own ``codec``, listed in the
    manifest as ``manifest_codec``, as a sender can."""
    document = read_checkpoint(notebook)
    store = BlobStore(sidecar_dir(notebook))
    entry = ManifestEntry((name,), manifest_codec, len(payload), store.put(codec, payload))
    document["manifest"] = write_manifest(store, Manifest((entry,)))
    write_checkpoint(notebook, document)


# --- 1. trust laundering ------------------------------------------------------------------------


@pytest.mark.kernel
def test_1_a_save_after_an_untrusted_restore_signs_none_of_the_senders_cells(tmp_path):
    marker = tmp_path / "ran"
    notebook = tmp_path / "nb.ipynb"
    document = save_values(notebook, {"y": 1}, write=False)
    cell = document["history"]["executions"][0]
    cell["code"], cell["runtime"] = f"open({str(marker)!r}, 'w').close()\ny = 1", 0.0
    write_checkpoint(notebook, document)

    with Kernel(cwd=tmp_path) as kernel:
        assert kernel.execute("%load_ext nbelastic").error is None
        restored = kernel.call("restore", {"notebook": str(notebook)})
        assert restored["loaded"] == ["y"] and not restored["trusted"]
        kernel.call("save", {"notebook": str(notebook), "plan": "optimal", "bandwidth": 1e3})
    saved = read_checkpoint(notebook)
    assert is_trusted(saved)
    assert saved["plan"]["replay"] == []
    assert not any(str(marker) in e["code"] for e in saved["history"]["executions"])

    with Kernel(cwd=tmp_path) as kernel:  # as JupyterLab restores a notebook's new kernel
        assert kernel.execute("%load_ext nbelastic").error is None
        code = (
            "from nbelastic.kernel.autorestore import autorestore\n"
            f"await autorestore({str(notebook)!r})"
        )
        assert kernel.execute(code).error is None
        assert evaluate(kernel, "y") == 1
    assert not marker.exists()


# --- 2. a review that tells the truth -----------------------------------------------------------


def test_2a_a_blob_whose_header_disagrees_with_its_manifest_line_is_reviewed_as_corrupt(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    save_values(notebook, {"t": [1]})
    plant_blob(notebook, "t", "dill", pickle.dumps({"t": 1}), manifest_codec="json")

    text = review(notebook).text

    assert "plain data" not in text
    assert "corrupt (its header says dill, the manifest says json)" in text


def test_2b_a_missing_blob_is_reviewed_with_the_cells_that_rebuild_it(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    save_values(notebook, {"y": 2})
    for key in blob_keys(notebook) - {read_checkpoint(notebook)["manifest"]}:
        BlobStore(sidecar_dir(notebook)).path(key).unlink()

    text = review(notebook).text

    assert "restoring it runs no code" not in text
    assert "and replay 1 cell(s):" in text and "    | y = 2" in text


# --- 3. a decoy pickle --------------------------------------------------------------------------


def test_3_a_decoy_pickle_is_read_for_the_global_it_really_imports(tmp_path):
    payload = decoy_pickle(tmp_path / "ran")
    blob = b"NBELASTIC-BLOB 1 dill\n" + payload

    assert pickle_globals(payload) == [("io", "open")]
    assert "refers to: io.open" in textconv(blob) and "OrderedDict" not in textconv(blob)
    with pytest.raises(pickle.UnpicklingError, match="io.open"):
        restricted_load(pickle.Unpickler, io.BytesIO(payload), [("collections", "OrderedDict")])
    assert not (tmp_path / "ran").exists()


def test_3_a_load_imports_no_global_whose_name_the_bytes_do_not_hold(tmp_path):
    marker = tmp_path / "ran"
    computed = (  # STACK_GLOBAL on a module name made by calling builtins.str("io")
        b"\x80\x04"
        + short_string("builtins")
        + short_string("str")
        + b"\x93"
        + short_string("io")
        + b"\x85R"
        + short_string("open")
        + b"\x93"
        + short_string(str(marker))
        + short_string("w")
        + b"\x86R."
    )
    with pytest.raises(CheckpointFormatError, match="imports io.open, a name its bytes do not"):
        decode_group("dill", computed, ["t"])
    assert not marker.exists()


# --- 4. links out of the sidecar ----------------------------------------------------------------


@pytest.fixture
def victim(tmp_path) -> Path:
    notebook = tmp_path / "victim.ipynb"
    record_checkpoint(sidecar_dir(notebook), save_values(notebook, {"a": [1, 2]}))
    return notebook


@pytest.mark.parametrize("command", [["gc", "--min-age", "0"], ["strip", "--sidecar"]])
def test_4_gc_and_strip_delete_nothing_through_a_linked_blobs_directory(victim, command):
    attacker = victim.with_name("attacker.ipynb")
    save_values(attacker, {"b": [3]})
    shutil.rmtree(sidecar_dir(attacker) / "blobs")
    (sidecar_dir(attacker) / "blobs").symlink_to(sidecar_dir(victim) / "blobs")
    kept = blob_keys(victim)

    assert "symbolic link" in one_error_line(cli(*command, str(attacker)))
    assert blob_keys(victim) == kept


def test_4_strip_deletes_no_record_through_a_linked_checkpoints_directory(victim):
    attacker = victim.with_name("attacker.ipynb")
    write_checkpoint(attacker, read_checkpoint(victim))
    sidecar_dir(attacker).mkdir()
    (sidecar_dir(attacker) / "checkpoints").symlink_to(sidecar_dir(victim) / "checkpoints")
    records = sorted((sidecar_dir(victim) / "checkpoints").iterdir())

    assert "symbolic link" in one_error_line(cli("strip", "--sidecar", str(attacker)))
    assert sorted((sidecar_dir(victim) / "checkpoints").iterdir()) == records


# --- 5. a save racing gc ------------------------------------------------------------------------


def test_5_gc_waits_for_a_save_in_progress_and_deletes_nothing_meanwhile(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    save_values(notebook, {"a": [1]})
    reused = BlobStore(sidecar_dir(notebook)).put("json", b"[42]")  # unreferenced, for now
    as_a_save = sidecar_lock(sidecar_dir(notebook), exclusive=False)
    with as_a_save, pytest.raises(StoreWriteError, match="running for over"):
        collect(notebook, min_age=0, lock_timeout=0.2)
    assert reused in blob_keys(notebook)
    collect(notebook, min_age=0)
    assert reused not in blob_keys(notebook)


@pytest.mark.kernel
def test_5_a_save_waits_for_a_gc_in_progress(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    save_values(notebook, {"a": [1]})
    with Kernel(cwd=tmp_path) as kernel:
        assert kernel.execute("%load_ext nbelastic\nb = 2").error is None
        done = []
        with sidecar_lock(sidecar_dir(notebook), exclusive=True):  # as gc holds it
            save = threading.Thread(
                target=lambda: done.append(
                    kernel.call("save", {"notebook": str(notebook), "bandwidth": 1e9})
                )
            )
            save.start()
            save.join(timeout=3)
            assert save.is_alive() and "b" not in read_checkpoint(notebook)["variables"]
        save.join(timeout=60)
    assert done and "b" in read_checkpoint(notebook)["variables"]


# --- 6. gc and a newer format -------------------------------------------------------------------


def test_6_gc_refuses_a_checkpoint_in_a_newer_format(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    document = save_values(notebook, {"a": [1]})
    newer_only = BlobStore(sidecar_dir(notebook)).put("json", b"[2]")
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["nbelastic"] = {**document, "format": 2, "extra_blobs": [newer_only]}
    nbformat.write(nb, notebook)

    assert "format 2" in one_error_line(cli("gc", "--min-age", "0", str(notebook)))
    assert newer_only in blob_keys(notebook)


# --- 7. failed commands change nothing ----------------------------------------------------------


def test_7_strip_sidecar_on_a_sidecar_that_is_a_file_changes_nothing(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    save_values(notebook, {"a": [1]})
    shutil.rmtree(sidecar_dir(notebook))
    sidecar_dir(notebook).write_text("not a directory")
    before = notebook.read_bytes()

    one_error_line(cli("strip", "--sidecar", str(notebook)))
    assert notebook.read_bytes() == before


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on its own file system, made read-only by ``remount`` (``chmod`` does not stop
    root, who runs CI); yields a function that turns it read-only."""
    folder = tmp_path / "mounted"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")

    def make_read_only() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)

    yield folder, make_read_only
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("command", [("strip", "--sidecar"), ("strip",), ("gc", "--min-age", "0")])
def test_7_a_command_on_a_read_only_file_system_is_one_line_and_changes_nothing(
    read_only_folder, command
):
    folder, make_read_only = read_only_folder
    notebook = folder / "nb.ipynb"
    save_values(notebook, {"a": [1]})
    before = notebook.read_bytes()
    blobs = blob_keys(notebook)
    make_read_only()

    result = cli(*command, str(notebook))
    if command[0] == "gc":
        assert result.exit_code == 0 and "removed 0" in result.output, result.output
    else:
        assert "read-only" in one_error_line(result).lower()
    assert notebook.read_bytes() == before
    assert blob_keys(notebook) == blobs


@pytest.mark.kernel
def test_7_a_run_whose_save_fails_leaves_the_notebook_as_it_was(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), notebook)
    sidecar_dir(notebook).write_text("in the way")
    before = notebook.read_bytes()

    result = subprocess.run(
        [sys.executable, "-m", "nbelastic", "run", str(notebook), "--bandwidth", "1GB/s"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("nbelastic: error: ") == 1 and "Traceback" not in result.stderr
    assert notebook.read_bytes() == before


# --- 8. crafted metadata ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["bandwidth", "restore_seconds", "runtime", "size", "version", "replay"]
)
def test_8_a_huge_integer_anywhere_is_one_line_in_every_reader(tmp_path, field):
    notebook = tmp_path / "nb.ipynb"
    document = save_values(notebook, {"a": [1]})
    huge = 10**400
    if field in ("bandwidth", "restore_seconds"):
        document["plan"][field] = huge
    elif field == "runtime":
        document["history"]["executions"][0]["runtime"] = huge
    elif field == "size":
        document["variables"]["a"]["size"] = huge
    elif field == "version":
        document["history"]["active"]["a"] = huge
    else:
        document["plan"]["replay"] = [huge]
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["nbelastic"] = document
    notebook.write_text(json.dumps(nb), encoding="utf-8")

    for command in (["status"], ["log"], ["gc", "-n"], ["trust", "--yes"]):
        assert "malformed" in one_error_line(cli(*command, str(notebook)))
    textconv(notebook.read_bytes())


@pytest.mark.parametrize("metadata", [7, [1, 2], "text", None, {"format": 1}])
def test_8_metadata_of_any_shape_is_one_line_in_log_and_gc(tmp_path, metadata):
    notebook = tmp_path / "nb.ipynb"
    save_values(notebook, {"a": [1]})
    record_checkpoint(sidecar_dir(notebook), read_checkpoint(notebook))
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["nbelastic"] = metadata
    nbformat.write(nb, notebook)

    for command in (["log"], ["gc", "-n"]):
        result = cli(*command, str(notebook))
        if metadata is not None:
            one_error_line(result)
        else:
            assert result.exit_code == 0, result.output


def test_8_textconv_of_deeply_nested_json_prints_it_as_it_is():
    data = b"[" * 100_000 + b"]" * 100_000
    assert textconv(data) == data.decode()


# --- 9. smaller holes ---------------------------------------------------------------------------


def test_9_an_absolute_store_is_malformed(tmp_path):
    document = save_values(tmp_path / "nb.ipynb", {"a": [1]})
    with pytest.raises(CheckpointFormatError, match="absolute path"):
        validate_checkpoint({**document, "store": str(tmp_path / "nb.nbelastic")})


def test_9_an_untrusted_store_outside_the_notebooks_folder_is_not_read(tmp_path):
    (tmp_path / "private").mkdir()
    document = save_values(tmp_path / "private" / "mine.ipynb", {"secret": [1]})
    notebook = tmp_path / "sent" / "nb.ipynb"
    notebook.parent.mkdir()
    write_checkpoint(notebook, {**document, "store": "../private/mine.nbelastic"})

    with pytest.raises(TrustError, match="outside the notebook's folder"):
        open_checkpoint(notebook)


def test_9_an_npy_blob_holding_an_npz_archive_is_corrupt():
    numpy = pytest.importorskip("numpy")
    archive = io.BytesIO()
    numpy.savez(archive, a=numpy.arange(3))
    with pytest.raises(CheckpointFormatError, match="holds no .npy array"):
        decode_group("npy", archive.getvalue(), ["a"])


@pytest.mark.kernel
def test_9_an_untrusted_restore_binds_no_name_of_python_or_ipython(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    names = ["print", "get_ipython", "__builtins__", "In", "exit", "data"]
    save_values(notebook, dict.fromkeys(names, "hijacked"))
    with Kernel(cwd=tmp_path) as kernel:
        assert kernel.execute("%load_ext nbelastic").error is None
        report = kernel.call("restore", {"notebook": str(notebook)})
        assert report["loaded"] == ["data"]
        assert sorted(report["not_loaded"]) == sorted(set(names) - {"data"})
        shown = "[type(print).__name__, callable(get_ipython), type(__builtins__).__name__, data]"
        assert evaluate(kernel, shown) == ["builtin_function_or_method", True, "module", "hijacked"]


@pytest.mark.kernel
def test_9_verify_of_a_foreign_notebook_imports_nothing_planted_next_to_it(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    save_values(notebook, {"a": [1]})
    marker = tmp_path / "ran"
    planted = f"open({str(marker)!r}, 'w').close()\nfrom ipykernel import kernelapp as app\n"
    (tmp_path / "ipykernel_launcher.py").write_text(planted + "app.launch_new_instance()\n")

    result = subprocess.run(
        [sys.executable, "-m", "nbelastic", "verify", str(notebook)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not marker.exists()
