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
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    header = run.stdout.splitlines()[0]
    assert "save time / dill" in header and "verified" in header
    report = (tmp_path / "benchmarks.md").read_text()
    headline = run.stdout.split("\n\n", 1)[0].splitlines()[2:]
    rows = {line.split()[0]: line for line in headline if line.strip()}
    for notebook in sorted((ROOT / "benchmarks" / "notebooks").glob("*.ipynb")):
        name = notebook.stem
        if f"skipped {name}:" in run.stdout:  # an optional dependency (torch) is missing
            continue
        assert "/" in rows[name].split()[-1], rows[name]  # the verified count, e.g. 25/25
        assert f"| {name} |" in report
    assert "dill failed" in rows["unpicklable"]  # the generator defeats dill.dump_module
    assert "## Machine" in report and "--quick" in report
    targets = _table_rows(report, "## Against issue targets")
    assert "run-time overhead < 1%: in the monitor's hooks" in report and len(targets) == len(rows)
    assert "two kernels without ext (noise)" in report
    assert "## Per-cell overhead with" in report  # also measured when no --only narrows it
    assert (docs.read_bytes() if docs.exists() else None) == published


def _table_rows(report: str, heading: str) -> list[str]:
    """The body rows of the first Markdown table after ``heading``."""
    section = report.split(heading, 1)[1]
    table = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    return table[2:]


def test_quick_run_reports_the_per_cell_overhead_with_the_state_alive(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "trivial_cell"]
        + ["--rounds", "3", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = (tmp_path / "benchmarks.md").read_text()
    rows = _table_rows(report, "## Per-cell overhead with")
    assert [row.split("|")[1].strip() for row in rows] == [
        "`x = 1`",
        "`y = len(values)`",
        "`total = frame['price'].sum()`",
    ]
    assert rows[0].rstrip(" |").endswith(("pass", "FAIL"))  # the verdict against 5 ms
    assert "`values`" in rows[1] and "`frame`" in rows[2]  # what they read, with its size
    assert "with ext (ms)" in run.stdout  # the same table on the terminal
    assert "`x = 1` with" in report.split("## Against issue targets", 1)[1]
    assert "total" in report.split("alive, measured in the monitored kernel", 1)[1]


def test_a_partial_run_never_overwrites_the_published_report():
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "trivial_cell", "--output", "docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "never overwrite docs/" in run.stderr


@pytest.mark.kernel
def test_benchmarks_on_a_folder_of_notebooks_reports_a_hanging_one_and_goes_on(tmp_path):
    folder = Path(__file__).resolve().parent.parent / "fixtures" / "benchmark_notebooks"
    before = sorted(p.name for p in folder.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--notebooks", str(folder), "--cell-timeout", "5"]
        + ["--output", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:] if line.strip()}
    assert "cell 2: the kernel did not answer within 5.0 s" in lines["hangs"]
    assert lines["small_state"].split()[1] == "3" and "x" in lines["small_state"]
    assert "| small_state | 3 |" in (tmp_path / "notebooks.md").read_text()
    assert sorted(p.name for p in folder.iterdir()) == before  # scratch copies only
