"""Jupyter's notebook trust (nbformat's notary) survives nbelastic's writes of a notebook it
trusted, and is never given to one it did not."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from checkpoint_kernels import save_in_kernel
from nbformat.sign import NotebookNotary
from sidecar_documents import save_values

from nbelastic.notebook import read_notebook, strip_checkpoint, write_notebook


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A Jupyter data dir of the test's own, where the notary keeps its secret and database."""
    path = tmp_path / "jupyter-data"
    path.mkdir()
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(path))
    return path


def notary(data_dir: Path) -> NotebookNotary:
    return NotebookNotary(data_dir=str(data_dir))


def jupyter_trusts(notebook: Path, data_dir: Path) -> bool:
    with notary(data_dir) as checking:
        return checking.check_signature(nbformat.read(notebook, as_version=4))


def notebook_with_output(path: Path) -> Path:
    cell = nbformat.v4.new_code_cell("x = 1\nx")  # written as a list of lines
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/html": "<b>1</b>"})]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    return path


def trusted_notebook(path: Path, data_dir: Path, *, checkpoint: bool = False) -> Path:
    notebook_with_output(path)
    if checkpoint:
        save_values(path, {"x": 1})
    with notary(data_dir) as signing:
        signing.sign(nbformat.read(path, as_version=4))
    assert jupyter_trusts(path, data_dir)
    return path


def test_a_trusted_notebook_stays_trusted_when_a_checkpoint_is_written(tmp_path, data_dir):
    notebook = trusted_notebook(tmp_path / "analysis.ipynb", data_dir)
    save_values(notebook, {"x": 1})
    assert "nbelastic" in read_notebook(notebook).metadata
    assert jupyter_trusts(notebook, data_dir)


def test_a_trusted_notebook_stays_trusted_when_its_checkpoint_is_stripped(tmp_path, data_dir):
    notebook = trusted_notebook(tmp_path / "analysis.ipynb", data_dir, checkpoint=True)
    assert strip_checkpoint(notebook)
    assert jupyter_trusts(notebook, data_dir)


def test_a_trusted_notebook_stays_trusted_when_its_cells_are_rewritten(tmp_path, data_dir):
    notebook = trusted_notebook(tmp_path / "analysis.ipynb", data_dir)
    nb = read_notebook(notebook)
    nb.cells[0].outputs[0]["data"]["text/html"] = "<b>2</b>"  # as `nbelastic run` writes outputs
    write_notebook(notebook, nb, keep_checkpoint_of=notebook)
    assert jupyter_trusts(notebook, data_dir)


def test_a_notebook_jupyter_did_not_trust_is_not_signed_by_a_write(tmp_path, data_dir):
    trusted_notebook(tmp_path / "other.ipynb", data_dir)  # the notary exists and is in use
    notebook = notebook_with_output(tmp_path / "analysis.ipynb")
    save_values(notebook, {"x": 1})
    assert not jupyter_trusts(notebook, data_dir)


def test_without_a_notary_a_write_creates_none(tmp_path, data_dir):
    save_values(notebook_with_output(tmp_path / "analysis.ipynb"), {"x": 1})
    assert list(data_dir.iterdir()) == []


@pytest.mark.kernel
def test_a_save_in_the_kernel_keeps_the_notebook_trusted(tmp_path, data_dir):
    notebook = trusted_notebook(tmp_path / "nb.ipynb", data_dir)
    assert save_in_kernel(tmp_path, ["y = 2"], "store-all") == notebook
    assert "nbelastic" in read_notebook(notebook).metadata
    assert jupyter_trusts(notebook, data_dir)
