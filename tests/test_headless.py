"""`nbelastic run --checkpoint-every` and `--resume`: kill a run midway, then finish it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import psutil
import pytest
from test_cli import assert_one_clear_line, nbelastic

from nbelastic.headless import read_state

pytestmark = pytest.mark.kernel

# Cells 2, 3 and 5 log each time they run; cell 4 waits for a file the test creates, which
# gives the test a moment to kill the run while it is there.
CELLS = [
    "import os, time",
    "a = 1\nopen('ran.log', 'a').write('a\\n')",
    "b = a + 1\nopen('ran.log', 'a').write('b\\n')",
    "while not os.path.exists('go'):\n    time.sleep(0.1)",
    "c = b * 10\nopen('ran.log', 'a').write('c\\n')",
]


@pytest.fixture
def slow(tmp_path):
    notebook = tmp_path / "slow.ipynb"
    cells = [nbformat.v4.new_code_cell(code) for code in CELLS]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    return notebook


def start_run(notebook, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nbelastic", "run", str(notebook), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_cells_done(notebook, count: int, runner: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = read_state(notebook)
        if state is not None and state.cells_done >= count:
            return
        assert runner.poll() is None, runner.communicate()
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint after {count} cells")


def kernels_of(runner: subprocess.Popen) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(runner.pid).children(recursive=True)
        if "ipykernel_launcher" in " ".join(child.cmdline())
    ]


def kill_run(runner: subprocess.Popen) -> None:
    """kill -9 the runner, then its kernel (which would notice its parent is gone and exit)."""
    kernels = kernels_of(runner)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    for kernel in kernels:
        if kernel.is_running():
            kernel.kill()


def finish(notebook) -> dict:
    (notebook.parent / "go").touch()
    result = nbelastic("run", str(notebook), "--resume", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_cell_is_checkpointed_with_the_count_of_cells_run(slow):
    (slow.parent / "go").touch()
    result = nbelastic("run", str(slow), "--checkpoint-every", "cell", "--json")
    assert result.returncode == 0, result.stderr
    state = read_state(slow)
    assert (state.cells_done, state.cells_total) == (5, 5)
    entries = json.loads(nbelastic("log", str(slow), "--json").stdout)
    assert len(entries) == 5 and entries[-1]["id"] == state.checkpoint


def test_a_killed_runner_resumes_after_the_last_checkpointed_cell(slow):
    runner = start_run(slow, "--checkpoint-every", "cell", "--plan", "store-all")
    wait_for_cells_done(slow, 3, runner)
    kill_run(runner)
    report = finish(slow)
    assert report["resumed_from"] == 3 and report["cells_run"] == 5
    assert (slow.parent / "ran.log").read_text() == "a\nb\nc\n"  # cells 2, 3 ran once
    assert nbelastic("verify", str(slow)).returncode == 0
    counts = [c.execution_count for c in nbformat.read(slow, as_version=4).cells]
    assert all(counts), counts  # the cells run before the kill keep their outputs


def test_a_killed_kernel_stops_the_run_with_how_to_resume(slow):
    runner = start_run(slow, "--checkpoint-every", "cell", "--plan", "store-all")
    wait_for_cells_done(slow, 3, runner)
    for kernel in kernels_of(runner):
        os.kill(kernel.pid, signal.SIGKILL)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 1, err
    lines = err.strip().splitlines()
    assert "the kernel died" in lines[-1] and "--resume" in lines[-1]
    assert "Traceback" not in err
    report = finish(slow)
    assert report["resumed_from"] == 3
    assert (slow.parent / "ran.log").read_text() == "a\nb\nc\n"


def test_checkpoints_every_few_seconds_skip_quick_cells(slow):
    (slow.parent / "go").touch()
    result = nbelastic("run", str(slow), "--checkpoint-every", "3600", "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(nbelastic("log", str(slow), "--json").stdout)) == 1


def test_resume_without_an_interrupted_run_is_one_clear_line(slow):
    assert_one_clear_line(nbelastic("run", str(slow), "--resume"), "no interrupted run")


def test_resume_after_the_run_cells_changed_is_one_clear_line(slow):
    runner = start_run(slow, "--checkpoint-every", "cell")
    wait_for_cells_done(slow, 3, runner)
    kill_run(runner)
    nb = nbformat.read(slow, as_version=4)
    nb.cells[1].source = "a = 2"
    nbformat.write(nb, slow)
    (slow.parent / "go").touch()
    assert_one_clear_line(nbelastic("run", str(slow), "--resume"), "changed since")


def test_checkpoint_every_rejects_nonsense():
    result = nbelastic("run", "x.ipynb", "--checkpoint-every", "often")
    assert result.returncode == 2 and "not `cell`" in result.stderr
