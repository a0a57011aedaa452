"""The JupyterLab path, driven in a real browser the way a user works: every scenario starts
at the launcher and ends reading a variable back in a cell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser.browser_check import require_browser

require_browser()

from nbelastic.trust import SECRET_ENV  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.kernel]


def last_line(output: str) -> str:
    """The last line a cell printed (a restore's one-line banner may come before it)."""
    lines = output.strip().splitlines()
    return lines[-1] if lines else ""


def start_analysis(lab) -> None:
    """New notebook from the launcher, renamed analysis.ipynb; the extension loaded, x set."""
    lab.new_notebook()
    lab.rename("analysis.ipynb")
    assert lab.run_cell("%load_ext nbelastic") == ""
    assert lab.run_cell("x = 41 + 1") == ""


def save_and_close(lab) -> None:
    """``%nbelastic save``, Ctrl+S, Kernel > Shut Down Kernel, File > Close Tab."""
    saved = lab.run_cell("%nbelastic save")
    assert "saved 1 variables" in saved, saved
    lab.save()
    lab.shut_down_kernel()
    lab.close_tab()


def copy_notebook(root: Path, folder: str) -> Path:
    """The notebook and its sidecar copied into ``folder``, the originals' sidecar removed (as
    on another machine, where only the copy exists)."""
    target = root / folder
    target.mkdir()
    shutil.copy2(root / "analysis.ipynb", target / "analysis.ipynb")
    shutil.copytree(root / "analysis.nbelastic", target / "analysis.nbelastic")
    shutil.rmtree(root / "analysis.nbelastic")
    return target / "analysis.ipynb"


def entries(root: Path) -> set[str]:
    """Every file and folder under ``root``, except JupyterLab's own hidden ones."""
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if not path.relative_to(root).parts[0].startswith(".")
    }


def test_the_state_is_back_after_shut_down_close_and_reopen(lab):
    start_analysis(lab)
    save_and_close(lab)
    lab.open_from_file_browser("analysis.ipynb")
    assert last_line(lab.run_cell("print(x)")) == "42"
    assert lab.wait_until_shown(r"nbelastic.*restored")
    assert lab.file_changed_dialogs() == []


def test_kernel_restart_restores_the_state(lab):
    start_analysis(lab)
    assert "saved 1 variables" in lab.run_cell("%nbelastic save")
    lab.save()
    lab.restart_kernel()
    assert last_line(lab.run_cell("print(x)")) == "42"


def test_a_reopened_notebook_saved_from_the_ui_still_restores(lab, lab_server):
    """JupyterLab writes back the checkpoint it parsed (JavaScript's JSON): still trusted, and
    Jupyter's own notebook trust is kept."""
    start_analysis(lab)
    save_and_close(lab)
    lab.open_from_file_browser("analysis.ipynb")
    lab.run_cell("y = 1")
    lab.save()
    lab.restart_kernel()
    assert last_line(lab.run_cell("print(x)")) == "42"
    assert "is not trusted" not in lab_server.log()


def test_a_copy_in_another_folder_restores(lab, lab_server):
    start_analysis(lab)
    save_and_close(lab)
    copy_notebook(lab_server.root, "elsewhere")
    lab.open_from_file_browser("elsewhere/analysis.ipynb")
    assert last_line(lab.run_cell("print(x)")) == "42"


def test_a_copy_signed_by_someone_else_is_not_loaded_and_says_how_to_review_it(
    lab, lab_server, tmp_path_factory
):
    start_analysis(lab)
    save_and_close(lab)
    copy = copy_notebook(lab_server.root, "from-colleague")
    colleague = {**os.environ, SECRET_ENV: str(tmp_path_factory.mktemp("colleague") / "secret")}
    signing = [sys.executable, "-m", "nbelastic", "trust", str(copy), "--yes"]
    subprocess.run(signing, env=colleague, check=True, capture_output=True)
    lab.open_from_file_browser("from-colleague/analysis.ipynb")
    assert "NameError" in lab.run_cell("print(x)")
    assert lab.wait_until_shown(r"nbelastic trust")


def test_a_failed_save_leaves_no_folder(lab, lab_server):
    start_analysis(lab)
    before = entries(lab_server.root)
    failed = lab.run_cell("%nbelastic save notes.txt")
    assert "notes.txt is not a notebook" in failed and "Traceback" not in failed, failed
    assert "notes.nbelastic" not in lab.file_browser_names()
    assert entries(lab_server.root) == before
    assert last_line(lab.run_cell("print(x)")) == "42"
