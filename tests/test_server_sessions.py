"""JupyterLab's own requests against a real server and real kernels: the kernel knows its
notebook, restores it when it starts, and its saves raise no "File Changed" in the UI.

The request bodies are those JupyterLab 4.6.6 sends (see Server.open_like_lab and rename).
"""

# ruff: noqa: F811  (the tests take test_server's start_server fixture, imported below)
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from test_cli import nbelastic
from test_server import disk_checkpoint, plain_notebook, start_server  # noqa: F401

from nbelastic.notebook import read_checkpoint
from nbelastic.pending import pending_path

pytestmark = pytest.mark.kernel

WHERE = "print(__import__('nbelastic.kernel', fromlist=['_']).default_notebook(get_ipython()))"


def empty_notebook(path: Path) -> Path:
    """What the launcher's "Notebook" button creates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), path)
    return path


def run_and_save(server, kernel_id: str, code: str, target: str = "") -> str:
    """``%load_ext nbelastic``, a cell, then ``%nbelastic save``; what the save printed."""
    assert server.run_cell(kernel_id, "%load_ext nbelastic") == ""
    assert "Error" not in server.run_cell(kernel_id, code)
    return server.run_cell(kernel_id, f"%nbelastic save {target}")


def saved_variables(notebook: Path) -> set[str]:
    """The variables of the checkpoint ``notebook`` holds, as every command reads it."""
    return set(read_checkpoint(notebook)["variables"])


def notebook_with_checkpoint(server, name: str) -> Path:
    notebook = server.root / name
    notebook.parent.mkdir(parents=True, exist_ok=True)
    cells = [nbformat.v4.new_code_cell(c) for c in ("data = [1, 2, 3]", "total = sum(data)")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    assert nbelastic("run", str(notebook)).returncode == 0
    return notebook


# --- the kernel knows its notebook ------------------------------------------------------------


def test_a_new_notebook_in_a_subfolder_saves_into_its_own_file(start_server):
    server = start_server()
    notebook = empty_notebook(server.root / "work" / "Untitled.ipynb")
    kernel = server.open_like_lab("work/Untitled.ipynb")["kernel"]["id"]
    assert "Untitled.ipynb" in run_and_save(server, kernel, "x = 42")
    assert saved_variables(notebook) == {"x"}


def test_a_renamed_notebook_saves_under_its_new_name(start_server):
    server = start_server()
    empty_notebook(server.root / "Untitled.ipynb")
    session = server.open_like_lab("Untitled.ipynb")
    server.rename(session, "Untitled.ipynb", "analysis.ipynb")
    run_and_save(server, session["kernel"]["id"], "x = 42")
    assert saved_variables(server.root / "analysis.ipynb") == {"x"}
    assert not (server.root / "Untitled.nbelastic").exists()


def test_a_notebook_moved_to_another_folder_saves_there(start_server):
    server = start_server()
    empty_notebook(server.root / "work" / "analysis.ipynb")
    (server.root / "archive").mkdir()
    session = server.open_like_lab("work/analysis.ipynb")
    server.rename(session, "work/analysis.ipynb", "archive/analysis.ipynb")
    run_and_save(server, session["kernel"]["id"], "x = 42")
    assert saved_variables(server.root / "archive" / "analysis.ipynb") == {"x"}


def test_two_notebooks_open_at_once_each_save_into_their_own(start_server):
    server = start_server()
    first = empty_notebook(server.root / "first.ipynb")
    second = empty_notebook(server.root / "second.ipynb")
    one = server.open_like_lab("first.ipynb")["kernel"]["id"]
    two = server.open_like_lab("second.ipynb")["kernel"]["id"]
    run_and_save(server, one, "a = 1")
    run_and_save(server, two, "b = 2")
    assert (saved_variables(first), saved_variables(second)) == ({"a"}, {"b"})


def test_a_notebook_opened_twice_is_the_notebook_of_both_kernels(start_server):
    server = start_server()
    notebook = empty_notebook(server.root / "work" / "analysis.ipynb")
    one = server.open_like_lab("work/analysis.ipynb")["kernel"]["id"]
    two = server.open_like_lab("work/analysis.ipynb")["kernel"]["id"]
    assert one != two
    assert server.run_cell(one, WHERE) == server.run_cell(two, WHERE) == f"{notebook}\n"


def test_without_the_extension_the_kernel_goes_by_jupyters_session_name(start_server):
    server = start_server("--ServerApp.jpserver_extensions=nbelastic.server=False")
    notebook = empty_notebook(server.root / "work" / "analysis.ipynb")
    kernel = server.open_like_lab("work/analysis.ipynb")["kernel"]["id"]
    assert server.run_cell(kernel, WHERE) == f"{notebook}\n"
    run_and_save(server, kernel, "x = 42")
    assert saved_variables(notebook) == {"x"}


# --- the kernel restores its notebook's state ---------------------------------------------------


def assert_restored(server, kernel_id: str) -> None:
    banner, value = server.run_cell(kernel_id, "print(total, data)").splitlines()
    assert banner.startswith("nbelastic: restored 2 variables of checkpoint 1-"), banner
    assert value == "6 [1, 2, 3]"


def test_opening_a_notebook_from_the_file_browser_restores_it(start_server):
    server = start_server()
    notebook_with_checkpoint(server, "work/analysis.ipynb")
    assert_restored(server, server.open_like_lab("work/analysis.ipynb")["kernel"]["id"])


def test_shutting_down_and_reopening_restores_it_again(start_server):
    server = start_server()
    notebook_with_checkpoint(server, "analysis.ipynb")
    server.close(server.open_like_lab("analysis.ipynb"))
    assert_restored(server, server.open_like_lab("analysis.ipynb")["kernel"]["id"])


def test_kernel_restart_restores_it_again(start_server):
    server = start_server()
    notebook_with_checkpoint(server, "work/analysis.ipynb")
    kernel = server.open_like_lab("work/analysis.ipynb")["kernel"]["id"]
    assert_restored(server, kernel)
    server.restart(kernel)
    assert_restored(server, kernel)


def test_a_restarted_server_restores_it(start_server):
    first = start_server()
    notebook_with_checkpoint(first, "analysis.ipynb")
    first.open_like_lab("analysis.ipynb")
    first.stop()
    second = start_server()
    assert_restored(second, second.open_like_lab("analysis.ipynb")["kernel"]["id"])


def test_the_server_log_says_what_was_restored(start_server):
    server = start_server()
    notebook_with_checkpoint(server, "analysis.ipynb")
    assert_restored(server, server.open_like_lab("analysis.ipynb")["kernel"]["id"])
    assert "nbelastic: restored 2 variables of checkpoint 1-" in server.log_text()


def test_a_kernel_save_is_restored_after_a_restart_before_the_ui_saved(start_server):
    server = start_server()
    plain_notebook(server.root / "analysis.ipynb")
    kernel = server.open_like_lab("analysis.ipynb")["kernel"]["id"]
    run_and_save(server, kernel, "total = 6")
    server.restart(kernel)
    assert server.run_cell(kernel, "print(total)").splitlines()[1] == "6"


# --- saves raise no "File Changed" ------------------------------------------------------------


def test_a_kernel_save_leaves_the_open_notebook_file_untouched(start_server):
    server = start_server()
    notebook = plain_notebook(server.root / "analysis.ipynb")
    kernel = server.open_like_lab("analysis.ipynb")["kernel"]["id"]
    server.load("analysis.ipynb")
    before = notebook.read_bytes(), notebook.stat().st_mtime_ns
    run_and_save(server, kernel, "x = 42", "analysis.ipynb")
    assert (notebook.read_bytes(), notebook.stat().st_mtime_ns) == before
    assert saved_variables(notebook) == {"x"}  # and yet every reader sees the save


def test_the_ui_save_after_a_kernel_save_writes_the_checkpoint_into_the_file(start_server):
    server = start_server()
    notebook = plain_notebook(server.root / "analysis.ipynb")
    kernel = server.open_like_lab("analysis.ipynb")["kernel"]["id"]
    opened = server.load("analysis.ipynb")
    run_and_save(server, kernel, "x = 42", "analysis.ipynb")
    server.save("analysis.ipynb", opened)  # Ctrl+S, with the copy loaded before the save
    assert set(disk_checkpoint(notebook)["variables"]) == {"x"}
    assert not pending_path(notebook).exists()


def test_the_cli_reads_a_kernel_save_the_ui_has_not_written_yet(start_server):
    server = start_server()
    notebook = plain_notebook(server.root / "analysis.ipynb")
    kernel = server.open_like_lab("analysis.ipynb")["kernel"]["id"]
    run_and_save(server, kernel, "x = 42")
    verified = nbelastic("verify", str(notebook))
    assert verified.returncode == 0, verified.stderr
