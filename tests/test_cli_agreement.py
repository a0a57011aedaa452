"""A new user's first hour: every command finds the same sidecar, and says one true line.

Run through the real CLI, as a user types it: the exit code and the exact line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import nbformat
import pytest
from test_cli import nbelastic
from test_sidecar_commands import nbelastic_stdin, save

from nbelastic.checkpoints import list_checkpoints
from nbelastic.lock import notebook_lock
from nbelastic.notebook import sidecar_dir
from nbelastic.store import BlobStore, read_manifest
from nbelastic.store.blobs import short
from nbelastic.trust import SECRET_ENV


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a failed command printed, checked to be all it printed on stderr."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def saved(tmp_path):
    """``demo.ipynb`` with two recorded checkpoints in ``demo.nbelastic/``."""
    notebook = tmp_path / "demo.ipynb"
    save(notebook, {"x": 1, "y": "kept"})
    save(notebook, {"x": 2, "y": "kept"})
    return notebook


def rename(notebook, name: str, *, with_sidecar: bool = True):
    """Rename (or move) the notebook, and its sidecar with it, as a file browser or git mv."""
    target = notebook.parent / name
    target.parent.mkdir(parents=True, exist_ok=True)
    notebook.rename(target)
    if with_sidecar:
        sidecar_dir(notebook).rename(sidecar_dir(target))
    return target


@pytest.mark.parametrize("name", ["analysis.ipynb", "moved/analysis.ipynb"])
def test_a_notebook_renamed_or_moved_with_its_sidecar_keeps_its_history(saved, name):
    notebook = rename(saved, name)
    ids = [record.id for record in list_checkpoints(sidecar_dir(notebook))]
    log = nbelastic("log", str(notebook))
    assert log.returncode == 0, log.stderr
    assert log.stdout.splitlines()[2].startswith(f"* {ids[1]}  ")
    status = nbelastic("status", str(notebook))
    assert status.returncode == 0 and status.stderr == ""
    in_use = len(BlobStore(sidecar_dir(notebook)).keys())
    gc = nbelastic("gc", "--dry-run", str(notebook))
    assert gc.stdout == f"{notebook}: would remove 0 unreferenced blobs (0 B); {in_use} in use\n"
    strip = nbelastic("strip", "--sidecar", str(notebook))
    assert strip.stdout.startswith(
        f"{notebook}: checkpoint removed; dropped {ids[1]} from its history; removed 2 "
    )


@pytest.mark.kernel
def test_a_notebook_renamed_with_its_sidecar_in_git_verifies(saved):
    git = ["git", "-C", str(saved.parent)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "mv", "demo.ipynb", "analysis.ipynb"], check=True)
    subprocess.run([*git, "mv", "demo.nbelastic", "analysis.nbelastic"], check=True)
    result = nbelastic("verify", "-q", str(saved.with_name("analysis.ipynb")))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "command", [("verify",), ("log",), ("gc",), ("strip", "--sidecar"), ("restore", "--at", "1")]
)
def test_a_notebook_renamed_without_its_sidecar_gets_one_line_from_every_command(saved, command):
    notebook = rename(saved, "analysis.ipynb", with_sidecar=False)
    assert error_line(nbelastic(*command, str(notebook))) == (
        f"nbelastic: error: the sidecar store {sidecar_dir(notebook)} is missing "
        f"({sidecar_dir(saved)} is there: rename it to analysis.nbelastic, as the notebook is): "
        "copy it next to analysis.ipynb (it holds the stored variables) and try again"
    )
    assert "nbelastic" in nbformat.read(notebook, as_version=4).metadata


def test_status_of_a_notebook_renamed_without_its_sidecar_warns(saved):
    notebook = rename(saved, "analysis.ipynb", with_sidecar=False)
    result = nbelastic("status", str(notebook))
    assert result.returncode == 0
    assert result.stderr.startswith(
        f"nbelastic: a restore would fail: the sidecar store {sidecar_dir(notebook)} is missing"
    )


@pytest.mark.parametrize("command", [("gc",), ("diff",), ("log",), ("status",)])
def test_a_missing_notebook_is_named_in_one_line(tmp_path, command):
    missing = tmp_path / "missing.ipynb"
    arguments = ("1", "2") if command == ("diff",) else ()
    assert error_line(nbelastic(*command, str(missing), *arguments)) == (
        f"nbelastic: error: no notebook at {missing}: check the path"
    )


def test_diff_takes_the_ids_as_log_prints_them_and_their_prefixes(saved):
    first, second = list_checkpoints(sidecar_dir(saved))
    expected = f"{first.id} -> {second.id}\n"
    for before, after in [(first.id, second.id), (first.id[:6], second.id[:6]), ("1", "2")]:
        result = nbelastic("diff", str(saved), before, after)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(expected)


def test_diff_of_an_unknown_id_names_the_command_that_lists_them(saved):
    first, second = list_checkpoints(sidecar_dir(saved))
    assert error_line(nbelastic("diff", str(saved), "1", "3-abcd")) == (
        f"nbelastic: error: no checkpoint '3-abcd' in {sidecar_dir(saved)} "
        f"(it has {first.id} to {second.id}): list them with `nbelastic log {saved}`"
    )


def test_strip_sidecar_after_a_plain_strip_still_drops_the_history(saved):
    ids = [record.id for record in list_checkpoints(sidecar_dir(saved))]
    assert nbelastic("strip", str(saved)).returncode == 0
    result = nbelastic("strip", "--sidecar", str(saved))
    assert result.stdout.startswith(
        f"{saved}: no checkpoint; dropped {', '.join(ids)} from its history; removed "
    )
    assert result.stdout.endswith("; 0 in use; sidecar deleted\n")
    assert not sidecar_dir(saved).exists()


@pytest.mark.parametrize("command", ["status", "verify", "log", "gc", "strip"])
def test_a_directory_given_as_notebook_is_one_line(saved, command):
    directory = saved.parent
    assert error_line(nbelastic(command, str(directory))) == (
        f"nbelastic: error: {directory} is a directory: give a notebook file, e.g. {saved}"
    )


def test_trust_without_an_answer_on_stdin_is_one_line(saved):
    result = nbelastic_stdin(b"", "trust", str(saved))
    assert error_line(result) == (
        "nbelastic: error: nothing signed: no answer came on standard input; to sign without "
        "being asked, run the command again with --yes"
    )
    assert "Aborted" not in result.stdout + result.stderr


def test_status_warns_of_a_missing_blob_and_says_what_a_restore_does(tmp_path):
    notebook = tmp_path / "analysis.ipynb"
    document = save(notebook, {"x": [1, 2], "y": "kept"})
    store = BlobStore(sidecar_dir(notebook))
    key = read_manifest(store, document["manifest"]).entry_for("x").key
    store.path(key).unlink()
    result = nbelastic("status", str(notebook))
    assert result.returncode == 0
    assert result.stderr == (
        f"nbelastic: x is stored, but its blob {short(key)} is missing; rebuilt by "
        "replaying cell 1 at restore\n"
    )


def test_the_lock_file_goes_with_its_holder_and_holders_still_take_turns(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    counter = tmp_path / "counter"
    counter.write_text("0")
    code = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from nbelastic.lock import notebook_lock
        counter = Path(sys.argv[2])
        for _ in range(40):
            with notebook_lock(sys.argv[1]):
                value = int(counter.read_text())
                time.sleep(0.001)
                counter.write_text(str(value + 1))
        """
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", code, str(notebook), str(counter)])
        for _ in range(4)
    ]
    assert all(worker.wait(timeout=120) == 0 for worker in workers)
    assert counter.read_text() == "160"
    with notebook_lock(notebook):
        pass
    assert sorted(os.listdir(tmp_path)) == ["counter"]


# --- in a real kernel ------------------------------------------------------------------------

TINY_CELLS = ["import math", "def area(r):\n    return math.pi * r * r", "sizes = [1, 2, 3]"]


@pytest.fixture
def ran(tmp_path):
    """A small notebook run and saved by ``nbelastic run``, signed by the tests' secret."""
    notebook = tmp_path / "demo.ipynb"
    cells = [nbformat.v4.new_code_cell(code) for code in TINY_CELLS]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    result = nbelastic("run", "-q", str(notebook))
    assert result.returncode == 0, result.stderr
    return notebook


@pytest.mark.kernel
def test_a_save_leaves_no_lock_file_next_to_the_notebook(ran):
    assert sorted(os.listdir(ran.parent)) == ["demo.ipynb", "demo.nbelastic"]


@pytest.mark.kernel
def test_verify_of_a_notebook_renamed_with_its_sidecar_restores_it(ran):
    result = nbelastic("verify", str(rename(ran, "moved/analysis.ipynb")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: analysis.ipynb: 3/3 variables verified")


@pytest.mark.kernel
def test_verify_of_another_users_checkpoint_says_it_in_one_line(ran, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, str(tmp_path / "another-users-secret"))
    result = nbelastic("verify", str(ran))
    assert result.returncode == 1
    verdict, reason = result.stdout.splitlines()
    assert verdict.startswith("INCOMPLETE: demo.ipynb: 1/3 variables verified")
    assert verdict.endswith("; 2 not loaded as not trusted (--verbose lists them)")
    assert reason.startswith(f"nbelastic: {ran} is not signed by you")
    listed = nbelastic("verify", "--verbose", str(ran)).stdout.splitlines()
    assert "  area NOT loaded: not trusted: its dill blob runs code when loaded" in listed


@pytest.mark.kernel
def test_run_with_a_file_url_store_keeps_the_variables_in_that_directory(tmp_path):
    notebook, store = tmp_path / "nb.ipynb", tmp_path / "existing"
    store.mkdir()
    cells = [nbformat.v4.new_code_cell("sizes = [1, 2, 3]")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    result = nbelastic("run", "-q", str(notebook), "--store", f"file://{store}")
    assert result.returncode == 0, result.stderr
    assert BlobStore(store).keys()
    assert nbelastic("verify", "-q", str(notebook)).returncode == 0


PROGRESS_CELLS = [
    # what tqdm and pip draw on a terminal: frames that each return to the line's start
    "import sys\nfor i in range(5):\n    print(f'\\r{20 * (i + 1)}%', end='', file=sys.stderr)",
    # what a notebook progress bar draws: a display it updates in place
    "from IPython.display import display\nbar = display('0%', display_id=True)\n"
    "for i in range(1, 5):\n    bar.update(f'{25 * i}%')",
    # a live plot or a status line: each frame clears the one before
    "from IPython.display import clear_output\nfor i in range(5):\n"
    "    clear_output(wait=True)\n    print(f'step {i}')",
]


@pytest.mark.kernel
def test_run_keeps_the_last_frame_of_a_progress_bar_as_jupyter_does(tmp_path):
    notebook = tmp_path / "progress.ipynb"
    cells = [nbformat.v4.new_code_cell(code) for code in PROGRESS_CELLS]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    result = nbelastic("run", "-q", str(notebook))
    assert result.returncode == 0, result.stderr
    terminal, display, cleared = (c.outputs for c in nbformat.read(notebook, as_version=4).cells)
    assert [(o.name, o.text) for o in terminal] == [("stderr", "100%")]
    assert [o.data["text/plain"] for o in display] == ["'100%'"]
    assert [(o.name, o.text) for o in cleared] == [("stdout", "step 4\n")]
