"""Run the suite: every selected workload, repeated, each repeat in fresh kernels and files.

Repeats run one at a time unless ``jobs`` says otherwise: concurrent repeats compete for the
CPUs and skew each other's times, which is acceptable for the quick smoke run only.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import trivial_cell
from benchmarks.measure import Trial, run_trial
from benchmarks.results import Row, summarise
from benchmarks.workloads import Workload


@dataclass
class Suite:
    """The rows measured, and the workloads left out with the reason."""

    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def run_suite(
    workloads: Sequence[Workload], *, repeats: int, quick: bool, bandwidth: float, jobs: int = 1
) -> Suite:
    """Measure each workload ``repeats`` times, ``jobs`` repeats at once; progress on stderr."""
    suite = Suite()
    runnable = []
    for workload in workloads:
        missing = workload.missing()
        if missing:
            suite.skipped[workload.name] = f"{', '.join(missing)} not importable"
            _progress(f"{workload.name}: skipped, {suite.skipped[workload.name]}")
        else:
            runnable.append(workload)
    with (
        tempfile.TemporaryDirectory(prefix="nbelastic-bench-") as scratch,
        ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        pending = {
            workload.name: [
                pool.submit(_measure, workload, repeat, repeats, quick, Path(scratch), bandwidth)
                for repeat in range(1, repeats + 1)
            ]
            for workload in runnable
        }
        for name, futures in pending.items():
            suite.rows.append(summarise(name, [f.result() for f in futures], bandwidth))
    return suite


def run_trivial_cell(*, quick: bool, rounds: int | None) -> trivial_cell.PerCell:
    """The per-cell overhead with the big state alive, alone on the machine after the suite."""
    scale = trivial_cell.QUICK_SCALE if quick else 1.0
    _progress(f"{trivial_cell.NAME}: building the state at SCALE={scale} in two kernels")
    with tempfile.TemporaryDirectory(prefix="nbelastic-bench-") as scratch:
        return trivial_cell.run(Path(scratch), quick=quick, rounds=rounds)


def _measure(
    workload: Workload, repeat: int, repeats: int, quick: bool, scratch: Path, bandwidth: float
) -> Trial:
    scale = workload.quick_scale if quick else 1.0
    _progress(f"{workload.name}: repeat {repeat}/{repeats} at SCALE={scale}")
    directory = scratch / f"{workload.name}-{repeat}"
    return run_trial(workload, scale, directory, bandwidth, rotation=repeat)


def _progress(message: str) -> None:
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)
