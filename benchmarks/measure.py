"""One repeat of one workload: every figure of a row, measured with real kernel processes.

Four fresh kernels per repeat, so no measurement inherits another's warm state:

1. the notebook run with the extension, then an nbelastic save, a ``dill.dump_module`` of the
   same state, one small change and a second (incremental) save;
2. the notebook run without the extension: the "re-run every cell" baseline, and the reference
   for monitoring overhead;
3. nbelastic restore of the first save in a brand-new kernel;
4. ``dill.load_module`` in a brand-new kernel (skipped when the dump failed).

Every time is wall-clock seen from this process around one kernel round trip, so both sides of
each ratio pay the same messaging cost. Kernel 1, kernel 2 and a twin of kernel 2 (also without
the extension) run the notebook side by side, cell by cell, the order changing from one cell
to the next (``running_order``): a whole run after the other let the machine drift by several
percent between them, far more than the 1% the overhead target is about. The twin measures
what is left: how far two identical kernels differ on the same cells, the noise floor under
the run-time ratio. The monitored kernel also reports what its hooks cost (``WatchingCost``),
which no noise can blur.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.workloads import Workload
from nbelastic.driver import Kernel

CELL_TIMEOUT = 900.0
# Peak resident memory of the kernel in KiB. Linux's VmHWM belongs to the kernel's own address
# space; ru_maxrss also counts the pre-exec image forked from this (large) process, which would
# set a floor of this runner's size under both sides of the memory ratio. ru_maxrss elsewhere.
PEAK_RSS = (
    "print(next((int(line.split()[1]) for line in open('/proc/self/status') "
    "if line.startswith('VmHWM')), 0) if __import__('os').path.exists('/proc/self/status') "
    "else __import__('resource').getrusage(__import__('resource').RUSAGE_SELF).ru_maxrss)"
)


# The monitor's own time in its hooks, and the pages its write watch saw written (a fault each).
MONITOR_COST = (
    "_m = __import__('nbelastic.kernel').kernel.current_monitor()\n"
    "print(_m.cost.seconds, _m.watch.pages_written if _m.watch else -1)\n"
    "del _m"
)


class BenchmarkError(RuntimeError):
    """A workload could not be measured (a cell raised, a kernel call failed)."""


@dataclass
class Trial:
    """Raw measurements of one repeat; seconds, bytes and KiB."""

    cells: int
    run_seconds: float  # all cells, extension loaded
    plain_seconds: float  # all cells, no extension (also the re-run baseline)
    twin_seconds: float  # all cells in a second kernel without the extension: the noise floor

    @property
    def unwatched_seconds(self) -> float:
        """The run without the extension, as the mean of the two kernels that ran it."""
        return (self.plain_seconds + self.twin_seconds) / 2

    monitor_seconds: float  # of run_seconds, inside the monitor's hooks
    watched_pages_written: int  # faults the write watch caused in the cells; -1 if it was off
    setup_rss: int  # peak before the first cell, extension loaded: its own footprint
    plain_setup_rss: int
    peak_rss: int
    plain_peak_rss: int
    save_seconds: float
    save_bytes: int
    checkpoint_bytes: int  # of save_bytes, the checkpoint in the notebook's metadata
    save: dict  # SaveReport.to_json of the first save
    variables: dict  # the checkpoint's variable table after the first save
    restore_seconds: float  # %load_ext nbelastic and the restore call
    restore_extension_seconds: float  # of which %load_ext nbelastic
    restore: dict  # RestoreReport.to_json
    incremental_seconds: float
    incremental_bytes: int
    dill_seconds: float | None  # None when the dump failed
    dill_bytes: int | None
    dill_load_seconds: float | None
    dill_error: str | None


def _keep_copy(notebook: Path, copy: Path) -> None:
    """Copy ``notebook`` and its sidecar to ``copy``, as they are now, without copying blobs."""
    copy.parent.mkdir()
    shutil.copyfile(notebook, copy)
    sidecar = notebook.with_suffix(".nbelastic")
    shutil.copytree(sidecar, copy.with_suffix(".nbelastic"), copy_function=os.link)


def run_trial(
    workload: Workload,
    scale: float,
    directory: Path,
    bandwidth: float,
    *,
    rotation: int = 0,
) -> Trial:
    """Measure ``workload`` once at ``scale``, working (and leaving files) in ``directory``;
    ``rotation`` says which kernel runs the first cell (repeats rotate it)."""
    directory.mkdir(parents=True)
    notebook = directory / workload.notebook.name
    shutil.copyfile(workload.notebook, notebook)
    cells = workload.cells()
    pickle = directory / "session.pkl"
    # The restores compare like with like: the state dill dumped, before the incremental change.
    # The first save is kept as a copy in its own folder, beside a hard-linked copy of its sidecar
    # (blobs are immutable and every sidecar file is replaced by rename, never rewritten in place).
    first_save = directory / "first" / notebook.name
    with Kernel(cwd=directory, session=str(notebook)) as kernel:
        setup_rss = _prepare(kernel, scale, extension=True)
        with Kernel(cwd=directory) as plain, Kernel(cwd=directory) as twin:
            plain_setup_rss = _prepare(plain, scale, extension=False)
            _prepare(twin, scale, extension=False)
            run_seconds, plain_seconds, twin_seconds = run_side_by_side(
                [kernel, plain, twin], cells, workload.name, rotation=rotation
            )
            plain_peak_rss = int(silent(plain, PEAK_RSS))
        peak_rss = int(silent(kernel, PEAK_RSS))
        seconds, pages = silent(kernel, MONITOR_COST).split()
        monitor_seconds, watched_pages_written = float(seconds), int(pages)
        first = _save(kernel, notebook, bandwidth)
        _keep_copy(notebook, first_save)
        dill_seconds, dill_error = _dill_dump(kernel, pickle)
        run_cells(kernel, [workload.change], workload.name)
        second = _save(kernel, notebook, bandwidth)
    with Kernel(cwd=directory, session=str(first_save)) as kernel:
        started = time.perf_counter()
        silent(kernel, "%load_ext nbelastic")
        restore_extension_seconds = time.perf_counter() - started
        restore = kernel.call("restore", {"notebook": str(first_save)})
        restore_seconds = time.perf_counter() - started
    dill_load_seconds = None
    if dill_error is None:
        with Kernel(cwd=directory) as kernel:
            started = time.perf_counter()
            silent(kernel, f"__import__('dill').load_module({str(pickle)!r})")
            dill_load_seconds = time.perf_counter() - started
    return Trial(
        cells=len(cells),
        run_seconds=run_seconds,
        plain_seconds=plain_seconds,
        twin_seconds=twin_seconds,
        monitor_seconds=monitor_seconds,
        watched_pages_written=watched_pages_written,
        setup_rss=setup_rss,
        plain_setup_rss=plain_setup_rss,
        peak_rss=peak_rss,
        plain_peak_rss=plain_peak_rss,
        save_seconds=first.seconds,
        save_bytes=first.written,
        checkpoint_bytes=first.checkpoint,
        save=first.report,
        variables=_checkpoint(first_save)["variables"],
        restore_seconds=restore_seconds,
        restore_extension_seconds=restore_extension_seconds,
        restore=restore,
        incremental_seconds=second.seconds,
        incremental_bytes=second.written,
        dill_seconds=dill_seconds,
        dill_bytes=pickle.stat().st_size if dill_error is None else None,
        dill_load_seconds=dill_load_seconds,
        dill_error=dill_error,
    )


def _prepare(kernel: Kernel, scale: float, *, extension: bool) -> int:
    """Set ``SCALE`` unseen by any monitor, then (maybe) load the extension; the peak RSS.

    ``SCALE`` goes first so that the extension finds it already there and records it as
    pre-existing state, which a restore binds before any replayed cell reads it.
    """
    silent(kernel, f"SCALE = {scale!r}")
    if extension:
        silent(kernel, "%load_ext nbelastic")
    return int(silent(kernel, PEAK_RSS))


def run_side_by_side(
    kernels: Sequence[Kernel], cells: list[str], name: str, *, rotation: int = 0
) -> list[float]:
    """Each cell in every kernel, in an order that changes from cell to cell (and with
    ``rotation``); the total per kernel, in the order given."""
    totals = [0.0] * len(kernels)
    for number, code in enumerate(cells, start=1):
        for index in running_order(len(kernels), number, rotation):
            totals[index] += run_cells(kernels[index], [code], name, first_number=number)
    return totals


def running_order(kernels: int, number: int, rotation: int) -> list[int]:
    """The order the kernels run cell ``number`` in: over as many repeats as kernels (each
    with its own ``rotation``) every kernel takes every place once, and from one cell to the
    next the cycle turns the other way, so no kernel always runs right after the same one.

    >>> [running_order(3, 1, rotation) for rotation in (1, 2, 3)]
    [[2, 0, 1], [0, 1, 2], [1, 2, 0]]
    >>> [running_order(3, 2, rotation) for rotation in (1, 2, 3)]
    [[0, 2, 1], [1, 0, 2], [2, 1, 0]]
    """
    first = (number + rotation) % kernels
    cycle = [(first + step) % kernels for step in range(kernels)]
    return cycle if number % 2 else [first, *reversed(cycle[1:])]


def run_cells(kernel: Kernel, cells: list[str], name: str, *, first_number: int = 1) -> float:
    started = time.perf_counter()
    for number, code in enumerate(cells, start=first_number):
        result = kernel.execute(code, timeout=CELL_TIMEOUT)
        if result.error:
            raise BenchmarkError(f"{name}: cell {number} raised {result.error}")
    return time.perf_counter() - started


def silent(kernel: Kernel, code: str) -> str:
    """Run ``code`` without recording it anywhere; what it printed."""
    result = kernel.execute(code, silent=True, timeout=CELL_TIMEOUT)
    if result.error:
        raise BenchmarkError(f"{code!r} raised {result.error}")
    return result.stdout


@dataclass
class _Saved:
    seconds: float
    written: int  # new sidecar bytes plus the checkpoint
    checkpoint: int  # the checkpoint's bytes in the notebook's metadata
    report: dict


def _save(kernel: Kernel, notebook: Path, bandwidth: float) -> _Saved:
    """An nbelastic save, timed, with the bytes it wrote on disk."""
    sidecar = notebook.with_suffix(".nbelastic")
    before = _files(sidecar)
    started = time.perf_counter()
    report = kernel.call("save", {"notebook": str(notebook), "bandwidth": bandwidth})
    seconds = time.perf_counter() - started
    after = _files(sidecar)
    new = sum(size for path, size in after.items() if before.get(path) != size)
    checkpoint = len(json.dumps(_checkpoint(notebook), indent=1))
    return _Saved(seconds, new + checkpoint, checkpoint, report)


def _checkpoint(notebook: Path) -> dict:
    return json.loads(notebook.read_text())["metadata"]["nbelastic"]


def _files(directory: Path) -> dict[Path, int]:
    if not directory.is_dir():
        return {}
    return {path: path.stat().st_size for path in directory.rglob("*") if path.is_file()}


def _dill_dump(kernel: Kernel, pickle: Path) -> tuple[float | None, str | None]:
    """``dill.dump_module`` of the kernel's ``__main__``: its time, or why it failed."""
    started = time.perf_counter()
    result = kernel.execute(
        f"__import__('dill').dump_module({str(pickle)!r})", silent=True, timeout=CELL_TIMEOUT
    )
    seconds = time.perf_counter() - started
    if result.error:
        pickle.unlink(missing_ok=True)
        return None, result.error
    return seconds, None
