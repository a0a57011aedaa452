"""jupytext text notebooks keep a small reference to the checkpoint and restore through it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nbformat
import pytest
from test_cli import assert_one_clear_line, nbelastic

from nbelastic.driver import Kernel
from nbelastic.notebook import sidecar_dir
from nbelastic.trust import SECRET_ENV

pytestmark = pytest.mark.kernel

CELLS = ["import numpy as np", "a = np.arange(6)", "words = ['x', 'y']", "n = len(words) + a.sum()"]


def jupytext(*args: str, cwd) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jupytext", "--quiet", *args], cwd=cwd, capture_output=True
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def saved(tmp_path):
    notebook = tmp_path / "analysis.ipynb"
    cells = [nbformat.v4.new_code_cell(code) for code in CELLS]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    result = nbelastic("run", str(notebook))
    assert result.returncode == 0, result.stderr
    return notebook


def header(script) -> str:
    return script.read_text().split("# ---\n")[1]


def verified(notebook) -> dict:
    result = nbelastic("verify", str(notebook), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_to_percent_and_back_keeps_a_restorable_checkpoint(saved, tmp_path):
    jupytext("--to", "py:percent", saved.name, cwd=tmp_path)
    saved.unlink()
    jupytext("--to", "ipynb", "analysis.py", cwd=tmp_path)
    assert sorted(verified(saved)["verified"]) == ["a", "n", "np", "words"]


def test_the_text_header_keeps_only_a_reference(saved, tmp_path):
    jupytext("--to", "py:percent", saved.name, cwd=tmp_path)
    text = header(tmp_path / "analysis.py")
    checkpoint = nbformat.read(saved, as_version=4).metadata["nbelastic"]["checkpoint"]
    assert f"#   nbelastic:\n#     checkpoint: {checkpoint}\n#     format: 1\n" in text
    assert "history" not in text and len(text.splitlines()) < 20


def test_a_percent_script_restores_through_its_reference(saved, tmp_path):
    jupytext("--to", "py:percent", saved.name, cwd=tmp_path)
    assert sorted(verified(tmp_path / "analysis.py")["verified"]) == ["a", "n", "np", "words"]


def test_update_from_the_script_keeps_the_same_checkpoint_restorable(saved, tmp_path):
    before = nbformat.read(saved, as_version=4).metadata["nbelastic"]["checkpoint"]
    jupytext("--to", "py:percent", saved.name, cwd=tmp_path)
    jupytext("--to", "ipynb", "--update", "analysis.py", cwd=tmp_path)
    assert nbformat.read(saved, as_version=4).metadata["nbelastic"]["checkpoint"] == before
    assert sorted(verified(saved)["verified"]) == ["a", "n", "np", "words"]


def test_saving_into_a_script_writes_a_reference_a_new_kernel_restores(tmp_path):
    script = tmp_path / "work.py"
    with Kernel(cwd=tmp_path) as kernel:
        for code in ("%load_ext nbelastic", "x = {'k': [1, 2]}", "%nbelastic save work.py"):
            assert kernel.execute(code).error is None
    assert "checkpoint: 1-" in header(script) and "variables" not in header(script)
    with Kernel(cwd=tmp_path) as kernel:
        restored = kernel.execute("%load_ext nbelastic\n%nbelastic restore work.py")
        assert restored.error is None and restored.stdout.startswith("restored 1 variables")
        assert kernel.execute("print(x)", silent=True).stdout.strip() == "{'k': [1, 2]}"


def test_a_reference_whose_record_is_missing_is_one_clear_line(saved, tmp_path):
    jupytext("--to", "py:percent", saved.name, cwd=tmp_path)
    shutil.rmtree(sidecar_dir(saved) / "checkpoints")
    result = nbelastic("verify", str(tmp_path / "analysis.py"))
    assert_one_clear_line(result, "refers to checkpoint", "copy the whole sidecar")


def test_strip_removes_the_reference_and_its_filter_from_the_script(saved, tmp_path):
    jupytext("--to", "py:percent", saved.name, cwd=tmp_path)
    script = tmp_path / "analysis.py"
    assert nbelastic("strip", str(script)).returncode == 0
    assert "nbelastic" not in script.read_text()


def test_trusting_a_script_signs_the_checkpoint_its_reference_names(saved, tmp_path, monkeypatch):
    jupytext("--to", "py:percent", saved.name, cwd=tmp_path)
    script = tmp_path / "analysis.py"
    before = script.read_text()
    monkeypatch.setenv(SECRET_ENV, str(tmp_path / "another-users-secret"))
    untrusted = nbelastic("verify", str(script), "--json")
    assert untrusted.returncode == 1 and not json.loads(untrusted.stdout)["trusted"]
    result = nbelastic("trust", str(script), "--yes")
    assert result.returncode == 0, result.stderr
    report = verified(script)
    assert report["trusted"] and sorted(report["verified"]) == ["a", "n", "np", "words"]
    assert script.read_text() == before
