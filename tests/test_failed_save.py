"""A save that fails leaves nothing behind: no sidecar folder, no blobs, no record, no lock."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from nbelastic.driver import Kernel

pytestmark = pytest.mark.kernel


def everything(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def save_fails(folder: Path, target: str, *cells: str) -> str:
    """Run ``cells`` in a kernel in ``folder``, then ``%nbelastic save target``; its stderr."""
    with Kernel(cwd=folder) as kernel:
        for code in ("%load_ext nbelastic", *cells):
            assert kernel.execute(code).error is None
        result = kernel.execute(f"%nbelastic save {target}")
    assert result.error is None and "saved" not in result.stdout
    return result.stderr


def test_a_save_to_a_path_that_is_not_a_notebook_writes_nothing(tmp_path):
    stderr = save_fails(tmp_path, "64f854ef-ebb5-4c2e", "data = list(range(100_000))")
    assert "is not a notebook" in stderr
    assert everything(tmp_path) == set()


def test_a_save_that_fails_at_the_notebook_leaves_no_sidecar(tmp_path):
    (tmp_path / "analysis.ipynb").write_text("{not json")
    before = everything(tmp_path)
    stderr = save_fails(tmp_path, "analysis.ipynb", "data = list(range(100_000))")
    assert "analysis.ipynb" in stderr
    assert everything(tmp_path) == before


def test_a_failed_save_takes_its_new_blobs_and_record_out_of_an_existing_sidecar(tmp_path):
    notebook = tmp_path / "analysis.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    with Kernel(cwd=tmp_path) as kernel:
        for code in ("%load_ext nbelastic", "x = 1", "%nbelastic save analysis.ipynb"):
            assert kernel.execute(code).error is None
        before = everything(tmp_path)
        notebook.write_text("{not json")  # damaged meanwhile: the save fails at its end
        assert kernel.execute("data = list(range(100_000))").error is None
        result = kernel.execute("%nbelastic save analysis.ipynb")
    assert "saved" not in result.stdout and "analysis.ipynb" in result.stderr
    assert everything(tmp_path) == before
