"""The benchmark runner end to end, on reduced sizes, so that it cannot rot between full runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_prints_the_table_and_writes_the_report(tmp_path):
    docs = ROOT / "docs" / "benchmarks.md"
    published = docs.read_bytes() if docs.exists() else None
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    header = run.stdout.splitlines()[0]
    assert "save time / dill" in header and "verified" in header
    report = (tmp_path / "benchmarks.md").read_text()
    rows = {line.split()[0]: line for line in run.stdout.splitlines()[2:] if line.strip()}
    for notebook in sorted((ROOT / "benchmarks" / "notebooks").glob("*.ipynb")):
        name = notebook.stem
        if f"skipped {name}:" in run.stdout:  # an optional dependency (torch) is missing
            continue
        assert "/" in rows[name].split()[-1], rows[name]  # the verified count, e.g. 25/25
        assert f"| {name} |" in report
    assert "dill failed" in rows["unpicklable"]  # the generator defeats dill.dump_module
    assert "## Machine" in report and "--quick" in report
    assert (docs.read_bytes() if docs.exists() else None) == published
