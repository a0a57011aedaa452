"""Time travel through real kernels: every save is kept; log, diff and restore an earlier one."""

from __future__ import annotations

import json

import pytest
from test_cli import assert_one_clear_line, nbelastic

from nbelastic.driver import Kernel

pytestmark = pytest.mark.kernel


@pytest.fixture
def two_saves(tmp_path):
    """A notebook saved twice from one kernel, with x changed, y removed and z added between."""
    notebook = tmp_path / "travel.ipynb"
    with Kernel(cwd=tmp_path, session=str(notebook)) as kernel:
        for code in ("%load_ext nbelastic", "x = [1, 2]", "y = 'old'", "%nbelastic save"):
            assert kernel.execute(code).error is None
        for code in ("x.append(3)", "del y", "z = {'k': 1}", "%nbelastic save"):
            assert kernel.execute(code).error is None
    return notebook


def test_log_lists_every_save_with_what_changed(two_saves):
    result = nbelastic("log", str(two_saves))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("  1-") and lines[1].endswith("+x +y")
    assert lines[2].startswith("* 2-") and lines[2].endswith("~x -y +z")


def test_log_json_is_for_scripts(two_saves):
    entries = json.loads(nbelastic("log", str(two_saves), "--json").stdout)
    assert [e["current"] for e in entries] == [False, True]
    assert entries[1]["changed"] == ["x"] and entries[1]["added"] == ["z"]


def test_diff_between_two_checkpoints(two_saves):
    result = nbelastic("diff", str(two_saves), "1", "2")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line.split()[0] for line in result.stdout.splitlines()[2:]}
    assert rows == {"x": "changed", "y": "removed", "z": "added"}


def test_cli_restores_an_earlier_checkpoint_in_a_new_kernel(two_saves):
    result = nbelastic("restore", str(two_saves), "--at", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and sorted(report["verified"]) == ["x", "y"]


def test_magic_restores_an_earlier_checkpoint_and_work_continues(two_saves, tmp_path):
    with Kernel(cwd=tmp_path, session=str(two_saves)) as kernel:
        assert kernel.execute("%load_ext nbelastic").error is None
        restored = kernel.execute("%nbelastic restore --at 1")
        assert restored.error is None and restored.stdout.startswith("restored 2 variables")
        values = kernel.execute("print(x, y, 'z' in dir())", silent=True).stdout.strip()
        assert values == "[1, 2] old False"
        for code in ("x.append(4)", "%nbelastic save"):
            assert kernel.execute(code).error is None
    entries = json.loads(nbelastic("log", str(two_saves), "--json").stdout)
    assert [e["id"][:2] for e in entries] == ["1-", "2-", "3-"]
    assert entries[2]["changed"] == ["x"] and entries[2]["added"] == ["y"]
    assert entries[2]["removed"] == ["z"]


def test_restoring_an_unknown_checkpoint_is_one_clear_line(two_saves):
    assert_one_clear_line(
        nbelastic("restore", str(two_saves), "--at", "9"), "no checkpoint '9'", "nbelastic log"
    )


def test_log_of_a_notebook_never_saved_is_one_clear_line(tmp_path):
    notebook = tmp_path / "plain.ipynb"
    notebook.write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    assert_one_clear_line(nbelastic("log", str(notebook)), "no recorded checkpoints")
