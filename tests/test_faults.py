"""Faults during a save: killed processes, file-size limits and racing saves lose nothing.

The saving and restoring run in separate processes (``fault_worker.py``, a plain IPython shell
with the extension), so that a test can kill one with SIGKILL at any moment and restore what
is left in a fresh one.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from nbelastic.errors import StoreWriteError
from nbelastic.lock import lock_path, notebook_lock
from nbelastic.notebook import read_checkpoint, sidecar_dir
from nbelastic.store import BlobStore, Manifest, read_manifest

WORKER = Path(__file__).with_name("fault_worker.py")
SAVES_PER_TRIAL = 40


def start(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def restored(notebook: Path) -> dict:
    """Restore ``notebook`` in a fresh process; its report and the values that came back."""
    result = subprocess.run(
        [sys.executable, str(WORKER), "restore", str(notebook)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_whole_state(notebook: Path, at_least: int, *, crashed: bool = False) -> int:
    """The notebook is valid and restores a complete state saved at round ``at_least`` or later;
    returns that round.

    ``manifest.txt`` is whole and matches the notebook, except after a crash, when it may be
    one save behind: it is written right after the notebook, where a checkpoint takes effect.
    """
    nbformat.validate(nbformat.read(notebook, as_version=4))
    document = read_checkpoint(notebook)
    store = BlobStore(sidecar_dir(notebook))
    on_disk = Manifest.from_text((sidecar_dir(notebook) / "manifest.txt").read_text("utf-8"))
    if not crashed:
        assert on_disk == read_manifest(store, document["manifest"])
    assert all(store.check(entry.key) is None for entry in on_disk.entries)
    outcome = restored(notebook)
    assert outcome["report"]["ok"], outcome["report"]
    counter = outcome["counter"]
    assert counter >= at_least
    assert outcome["data"] == [counter, counter, 300_000]
    assert outcome["words"] == counter % 50
    return counter


def kill_during_saves(directory: Path, seed: int) -> None:
    """One trial: a process saves over and over and is killed at a random moment."""
    notebook = directory / f"trial-{seed}.ipynb"
    saver = start("save", notebook, SAVES_PER_TRIAL, 0, 1)
    first = saver.stdout.readline()
    assert first == "saved 0\n", first + saver.stderr.read()
    time.sleep(random.Random(seed).uniform(0.0, 0.6))
    saver.send_signal(signal.SIGKILL)
    rest, _ = saver.communicate(timeout=60)
    printed = [int(line.split()[1]) for line in (first + rest).splitlines()]
    assert_whole_state(notebook, at_least=max(printed), crashed=True)


@pytest.mark.parametrize("seed", range(3))
def test_a_save_killed_at_a_random_moment_leaves_the_previous_checkpoint_whole(tmp_path, seed):
    kill_during_saves(tmp_path, seed)


@pytest.mark.slow
def test_fifty_saves_killed_at_random_moments_all_restore(tmp_path):
    for seed in range(100, 150):
        kill_during_saves(tmp_path, seed)


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_file_size_limit_during_save_is_one_clear_line_and_keeps_the_checkpoint(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    limited = start("limited", notebook, 1_000_000)  # the second state's 2.4 MB blob is too big
    stdout, stderr = limited.communicate(timeout=120)
    assert limited.returncode == 0, stderr
    assert stdout.splitlines()[-1] == "saved 1"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(
        f"nbelastic: cannot write to the sidecar store {sidecar_dir(notebook)}"
    )
    assert "File too large" in lines[0] and "save again" in lines[0]
    assert assert_whole_state(notebook, at_least=1) == 1


def test_racing_saves_never_tear_the_manifest_and_the_last_writer_wins(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    rounds = 15
    evens, odds = start("save", notebook, rounds, 0, 2), start("save", notebook, rounds, 1, 2)
    for saver in (evens, odds):
        _, stderr = saver.communicate(timeout=300)
        assert saver.returncode == 0, stderr
    final = assert_whole_state(notebook, at_least=0)
    assert final in (2 * (rounds - 1), 2 * (rounds - 1) + 1)


def test_a_save_that_cannot_get_the_lock_is_one_clear_error(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    with notebook_lock(notebook), pytest.raises(StoreWriteError) as raised:  # noqa: SIM117
        with notebook_lock(notebook, timeout=0.2):
            pass
    assert str(raised.value).startswith(f"another save of {notebook} has held its lock")
    assert str(lock_path(notebook.resolve())) in str(raised.value)


def test_a_lock_held_by_a_killed_process_is_free_again(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    code = (
        "import sys, time; from nbelastic.lock import notebook_lock\n"
        "with notebook_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(notebook)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "held\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with notebook_lock(notebook, timeout=5):
        pass
