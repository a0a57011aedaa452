"""``python -m benchmarks --notebooks DIR``: the side-by-side comparison on anyone's notebooks.

A user's own question is "what would nbelastic do on my notebooks?". Each notebook of each
folder runs on a scratch copy of its folder (its data files next to it; nothing is written
where it came from), in fresh kernels one after the other:

1. with the extension: every code cell, then an nbelastic save and a ``dill.dump_module``;
2. without it: every code cell again, the "re-run every cell" baseline;
3. a new kernel restores the save; 4. another loads the dill dump.

A notebook whose cell raises or runs longer than the per-cell timeout is reported in the
table with the cell and the reason, and the run goes on with the next notebook.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from nbelastic.driver import Kernel
from nbelastic.errors import NbelasticError

CELL_TIMEOUT = 300.0


class NotebookFailed(Exception):
    """A cell raised or timed out; the message says which and why."""


@dataclass
class Measured:
    """One notebook's times in seconds (None where that side failed), and what failed."""

    name: str
    cells: int = 0
    rerun: float | None = None
    save: float | None = None
    save_bytes: int | None = None
    dill_dump: float | None = None
    dill_bytes: int | None = None
    restore: float | None = None
    dill_load: float | None = None
    failure: str = ""

    def migration(self, save: float | None, size: int | None, load: float | None, bandwidth):
        if None in (save, size, load):
            return None
        return save + size / bandwidth + load


def notebooks_in(folders: Iterable[Path]) -> list[Path]:
    """The ``.ipynb`` files of each folder (not below it), sorted, checkpoints excluded."""
    return [
        path
        for folder in folders
        for path in sorted(Path(folder).glob("*.ipynb"))
        if not path.name.startswith(".")
    ]


def run_folders(
    folders: Sequence[Path], *, bandwidth: float, cell_timeout: float = CELL_TIMEOUT
) -> list[Measured]:
    """Measure every notebook of ``folders``, one at a time; progress on stderr."""
    results = []
    with tempfile.TemporaryDirectory(prefix="nbelastic-bench-notebooks-") as scratch:
        for index, notebook in enumerate(notebooks_in(folders)):
            copy = Path(scratch) / f"{index}-{notebook.parent.name}"
            shutil.copytree(notebook.parent, copy, ignore=shutil.ignore_patterns("*.nbelastic"))
            _progress(f"{notebook.name}: measuring in {copy}")
            results.append(measure(copy / notebook.name, bandwidth, cell_timeout))
    return results


def measure(notebook: Path, bandwidth: float, cell_timeout: float) -> Measured:
    """All four kernels for one notebook (a scratch copy, changed in place)."""
    cells = code_cells(notebook)
    result = Measured(notebook.stem, cells=len(cells))
    directory = notebook.parent
    dump = directory / "dill-dump.pkl"
    try:
        with Kernel(cwd=directory, session=str(notebook)) as kernel:
            _quiet(kernel, "%load_ext nbelastic")
            _run_all(kernel, cells, cell_timeout)
            started = time.perf_counter()
            report = kernel.call("save", {"notebook": str(notebook), "bandwidth": bandwidth})
            result.save = time.perf_counter() - started
            result.save_bytes = report["bytes_stored"]
            started = time.perf_counter()
            dumped = kernel.execute(
                f"__import__('dill').dump_module({str(dump)!r})", silent=True, timeout=cell_timeout
            )
            if dumped.error is None:
                result.dill_dump = time.perf_counter() - started
                result.dill_bytes = dump.stat().st_size
        with Kernel(cwd=directory) as kernel:
            started = time.perf_counter()
            _run_all(kernel, cells, cell_timeout)
            result.rerun = time.perf_counter() - started
        with Kernel(cwd=directory, session=str(notebook)) as kernel:
            _quiet(kernel, "%load_ext nbelastic")
            started = time.perf_counter()
            kernel.call("restore", {"notebook": str(notebook)})
            result.restore = time.perf_counter() - started
        if result.dill_dump is not None:
            with Kernel(cwd=directory) as kernel:
                started = time.perf_counter()
                loaded = kernel.execute(
                    f"__import__('dill').load_module({str(dump)!r})",
                    silent=True,
                    timeout=cell_timeout,
                )
                if loaded.error is None:
                    result.dill_load = time.perf_counter() - started
    except (NotebookFailed, NbelasticError) as error:
        result.failure = str(error)
    _progress(f"{notebook.name}: {result.failure or 'done'}")
    return result


def code_cells(notebook: Path) -> list[str]:
    """The code cells' sources; IPython magics and shell lines stay (the kernel runs them)."""
    nb = nbformat.read(notebook, as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]


def _run_all(kernel: Kernel, cells: list[str], timeout: float) -> None:
    for number, code in enumerate(cells, start=1):
        try:
            outcome = kernel.execute(code, timeout=timeout)
        except NbelasticError as error:
            raise NotebookFailed(f"cell {number}: {error}") from None
        if outcome.error:
            raise NotebookFailed(f"cell {number} raised {outcome.error[:120]}")


def _quiet(kernel: Kernel, code: str) -> None:
    outcome = kernel.execute(code, silent=True, timeout=CELL_TIMEOUT)
    if outcome.error:
        raise NotebookFailed(f"{code} raised {outcome.error}")


def table(results: Sequence[Measured], bandwidth: float) -> tuple[list[str], list[list[str]]]:
    """Header and rows: times, the ratios the issue's targets are about, and failures."""
    header = [
        "notebook",
        "cells",
        "re-run s",
        "save s",
        "dill dump s",
        "restore s",
        "dill load s",
        "save / dill",
        "migration / dill",
        "restore / re-run",
        "note",
    ]
    rows = []
    for r in results:
        ours = r.migration(r.save, r.save_bytes, r.restore, bandwidth)
        dills = r.migration(r.dill_dump, r.dill_bytes, r.dill_load, bandwidth)
        note = r.failure or ("dill failed" if r.dill_dump is None and r.save is not None else "")
        rows.append(
            [
                r.name,
                str(r.cells),
                _seconds(r.rerun),
                _seconds(r.save),
                _seconds(r.dill_dump),
                _seconds(r.restore),
                _seconds(r.dill_load),
                _ratio(r.save, r.dill_dump),
                _ratio(ours, dills),
                _ratio(r.restore, r.rerun),
                note.replace("|", "/"),
            ]
        )
    return header, rows


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def _progress(message: str) -> None:
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)


def headless_environment() -> None:
    """Figures drawn off screen: a notebook's plt.show() must not wait for a window."""
    os.environ.setdefault("MPLBACKEND", "agg")
