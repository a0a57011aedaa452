"""The ``nbelastic`` command as a user meets it: real processes, real kernels, real files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def nbelastic(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbelastic", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nbelastic: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def snapshot_files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.fixture
def saved_demo(tmp_path_factory) -> Path:
    """The demo notebook run and saved once, shared by the tests that only read it."""
    directory = tmp_path_factory.mktemp("demo")
    notebook = directory / "demo.ipynb"
    shutil.copy(FIXTURES / "demo.ipynb", notebook)
    result = nbelastic("run", str(notebook))
    assert result.returncode == 0, result.stderr
    return notebook


@pytest.mark.kernel
def test_run_then_verify_restores_every_variable(saved_demo):
    result = nbelastic("verify", str(saved_demo))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: demo.ipynb: ")
    assert "MISMATCH" not in result.stdout


@pytest.mark.kernel
def test_run_writes_outputs_and_the_checkpoint(saved_demo):
    notebook = nbformat.read(saved_demo, as_version=4)
    assert "nbelastic" in notebook.metadata
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code_cells)
    assert "'coef'" in json.dumps(code_cells[-1].outputs)


@pytest.mark.kernel
def test_run_json_report_names_stored_and_replayed(tmp_path):
    notebook = tmp_path / "small.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_code_cell("a = [1, 2]"),
                nbformat.v4.new_code_cell("g = (i for i in a)"),
            ]
        ),
        notebook,
    )
    result = nbelastic("run", str(notebook), "--json", "--plan", "store-all")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["stored"] == ["a"]
    assert report["replayed"] == ["g"]


@pytest.mark.kernel
def test_run_stops_at_a_failing_cell_and_saves_the_state_so_far(tmp_path):
    notebook = tmp_path / "fails.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_code_cell("a = 1"),
                nbformat.v4.new_code_cell("raise RuntimeError('boom')"),
                nbformat.v4.new_code_cell("b = 2"),
            ]
        ),
        notebook,
    )
    result = nbelastic("run", str(notebook))
    assert result.returncode == 1
    assert "cell 2 raised RuntimeError: boom" in result.stderr
    variables = nbformat.read(notebook, as_version=4).metadata["nbelastic"]["variables"]
    assert set(variables) == {"a"}


@pytest.mark.kernel
def test_verify_reports_a_tampered_variable_by_name(saved_demo):
    # Swap the blob of `n` for another value's blob: hashes still match their content, but the
    # restored value is not the one recorded at save time.
    notebook = nbformat.read(saved_demo, as_version=4)
    variables = notebook.metadata["nbelastic"]["variables"]
    variables["n"]["hash"] = variables["coef"]["hash"]
    nbformat.write(notebook, saved_demo)
    result = nbelastic("verify", str(saved_demo))
    assert result.returncode == 1
    assert "MISMATCH" in result.stdout
    assert "n: content differs from the saved value" in result.stdout


def test_verify_wrong_path(tmp_path):
    assert_one_clear_line(nbelastic("verify", str(tmp_path / "nope.ipynb")), "nope.ipynb")


def test_verify_notebook_without_checkpoint(tmp_path):
    notebook = tmp_path / "plain.ipynb"
    shutil.copy(FIXTURES / "demo.ipynb", notebook)
    before = snapshot_files(tmp_path)
    assert_one_clear_line(nbelastic("verify", str(notebook)), "no nbelastic checkpoint")
    assert snapshot_files(tmp_path) == before


def _with_metadata(tmp_path: Path, document) -> Path:
    notebook = tmp_path / "bad.ipynb"
    nb = nbformat.read(FIXTURES / "demo.ipynb", as_version=4)
    nb.metadata["nbelastic"] = document
    nbformat.write(nb, notebook)
    return notebook


def test_verify_malformed_checkpoint(tmp_path):
    notebook = _with_metadata(tmp_path, {"format": 1, "store": 5})
    before = snapshot_files(tmp_path)
    assert_one_clear_line(nbelastic("verify", str(notebook)), "malformed")
    assert snapshot_files(tmp_path) == before


def test_verify_newer_format_checkpoint(tmp_path):
    notebook = _with_metadata(tmp_path, {"format": 99, "anything": "else"})
    assert_one_clear_line(nbelastic("verify", str(notebook)), "format 99", "upgrade nbelastic")


@pytest.mark.kernel
def test_verify_missing_sidecar(saved_demo):
    shutil.rmtree(saved_demo.with_suffix(".nbelastic"))
    before = snapshot_files(saved_demo.parent)
    assert_one_clear_line(nbelastic("verify", str(saved_demo)), "sidecar store", "missing")
    assert snapshot_files(saved_demo.parent) == before


@pytest.mark.kernel
def test_verify_missing_blob(saved_demo):
    blobs = sorted((saved_demo.with_suffix(".nbelastic") / "blobs").rglob("*"))
    files = [b for b in blobs if b.is_file()]
    for blob in files:
        blob.unlink()
    assert_one_clear_line(nbelastic("verify", str(saved_demo)), "copy the whole sidecar")


def test_run_wrong_path(tmp_path):
    assert_one_clear_line(nbelastic("run", str(tmp_path / "nope.ipynb")), "nope.ipynb")


def test_strip_removes_the_checkpoint_and_keeps_the_cells(tmp_path):
    notebook = _with_metadata(tmp_path, {"format": 1})
    result = nbelastic("strip", str(notebook))
    assert result.returncode == 0
    assert "checkpoint removed" in result.stdout
    stripped = nbformat.read(notebook, as_version=4)
    assert "nbelastic" not in stripped.metadata
    assert len(stripped.cells) == len(nbformat.read(FIXTURES / "demo.ipynb", as_version=4).cells)


def test_help_lists_the_commands():
    result = nbelastic("--help")
    assert result.returncode == 0
    for command in ("run", "verify", "strip"):
        assert command in result.stdout
