"""``nbelastic run``: execute a notebook in a new kernel and save its state, with checkpoints
along the way and a resume after an interruption.

With ``checkpoint_every`` the runner saves between cells (after every cell, or once that many
seconds have passed since the last save; a running cell is never interrupted): it writes the
notebook with the outputs so far, has the kernel save its state, then records in
``NB.nbelastic/run.json`` how many cells had run and which checkpoint holds their state. That
file is written last and atomically, so after a ``kill -9`` of the kernel or of the runner it
names a checkpoint that exists and the count of cells that checkpoint includes.

``resume`` reads it, checks that those cells still have the same code, restores that checkpoint
(``restore --at``) in a new kernel and runs the remaining cells, keeping the outputs of the
cells already run.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import nbformat

from nbelastic.driver import (
    Kernel,
    KernelDiedError,
    load_extension,
    notebook_cells,
    notebook_kernel,
)
from nbelastic.errors import NbelasticError, StoreWriteError
from nbelastic.lock import notebook_lock
from nbelastic.notebook import put_back, read_notebook, sidecar_dir, write_notebook

STATE_FILE = "run.json"
STATE_FORMAT = 1
EVERY_CELL = 0.0


@dataclass
class RunOutcome:
    """A headless run: the kernel-side save report and where execution stopped, if it did."""

    report: dict
    seconds: float
    cells_run: int  # cells of the notebook whose effects the saved state includes
    cells_total: int
    failed_cell: int | None = None  # 1-based, among code cells
    error: str | None = None
    resumed_from: int | None = None  # cells already run before this resumed run


@dataclass(frozen=True)
class RunState:
    """What ``run.json`` records: the last checkpoint of a run and how many cells it holds."""

    cells_done: int
    cells_total: int
    checkpoint: str
    code_digest: str  # of the code of the cells done, to notice edits before a resume


def parse_every(text: str) -> float:
    """``cell`` or a number of seconds.

    >>> parse_every("cell"), parse_every("90")
    (0.0, 90.0)
    """
    if text.strip().lower() == "cell":
        return EVERY_CELL
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"not `cell` nor a positive number of seconds: {text!r}")
    return seconds


def run(
    source: Path,
    target: Path,
    *,
    plan: str = "optimal",
    bandwidth: float | None = None,
    allow_errors: bool = False,
    checkpoint_every: float | None = None,
    resume: bool = False,
    echo: Callable[[str], None] = lambda text: None,
    store: str | None = None,
) -> RunOutcome:
    """Execute ``source``'s code cells in a new kernel, write them with outputs to ``target``
    (keeping its checkpoint until a new one replaces it), and save the state into it."""
    notebook = read_notebook(source)
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    start, state = 0, None
    if resume:
        state = _resumable(target, cells)
        start = state.cells_done
        _keep_outputs(target, cells, start)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_arguments = {"notebook": str(target.resolve()), "plan": plan, "bandwidth": bandwidth}
    save_arguments |= {"store": store} if store else {}
    started = time.perf_counter()
    failed_cell = error = None
    done = start
    with notebook_kernel(target) as kernel, notebook_cells(kernel, notebook) as run_cell:
        load_extension(kernel)
        if state is not None:
            echo(f"restoring checkpoint {state.checkpoint} ({start} cells run) ...")
            _restore(kernel, target, state.checkpoint, echo)
        last_save = time.monotonic()
        for number, cell in enumerate(cells[start:], start=start + 1):
            cell_started = time.perf_counter()
            try:
                result = run_cell(cell)
            except KernelDiedError as died:
                raise KernelDiedError(
                    f"{died} in cell {number}: "
                    + _resume_hint(source, target, done, checkpoint_every is not None)
                ) from None
            echo(
                f"cell {number}/{len(cells)} ran in {time.perf_counter() - cell_started:.2f} s"
                + (f": {result.error}" if result.error else "")
            )
            if result.error and not allow_errors:
                failed_cell, error = number, result.error
                break
            done = number
            due = checkpoint_every is not None and (
                time.monotonic() - last_save >= checkpoint_every
            )
            if due and number < len(cells):
                echo(f"checkpoint after cell {number} ...")
                _save(kernel, notebook, target, save_arguments, cells, done, echo)
                last_save = time.monotonic()
        seconds = time.perf_counter() - started
        echo("saving the state ...")
        report = _save(kernel, notebook, target, save_arguments, cells, done, echo)
    resumed_from = None if state is None else start
    return RunOutcome(report, seconds, done, len(cells), failed_cell, error, resumed_from)


def read_state(target: Path) -> RunState | None:
    """The run state recorded next to ``target``, or None if no run recorded one."""
    path = sidecar_dir(target) / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        return RunState(
            int(data["cells_done"]),
            int(data["cells_total"]),
            str(data["checkpoint"]),
            str(data["code_digest"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise NbelasticError(
            f"{path} is damaged ({error}): delete it and run the notebook again without --resume"
        ) from None


def _resumable(target: Path, cells: list) -> RunState:
    state = read_state(target)
    if state is None:
        raise NbelasticError(
            f"no interrupted run of {target} to resume: run it with --checkpoint-every "
            "cell (or SECONDS) first"
        )
    if state.cells_done > len(cells) or _code_digest(cells[: state.cells_done]) != (
        state.code_digest
    ):
        raise NbelasticError(
            f"the first {state.cells_done} cells of the notebook changed since its checkpoint "
            f"{state.checkpoint}: run it again without --resume"
        )
    if state.cells_done == len(cells):
        raise NbelasticError(
            f"nothing to resume: all {len(cells)} cells of {target} ran (checkpoint "
            f"{state.checkpoint}); run it without --resume to start over"
        )
    return state


def _keep_outputs(target: Path, cells: list, count: int) -> None:
    """Give the cells already run the outputs the interrupted run wrote into ``target``."""
    try:
        written = [c for c in read_notebook(target).cells if c.cell_type == "code"]
    except NbelasticError:
        return
    for cell, old in zip(cells[:count], written[:count], strict=False):
        if old.source == cell.source:
            cell.outputs, cell.execution_count = old.outputs, old.execution_count


def _restore(kernel: Kernel, target: Path, checkpoint: str, echo: Callable[[str], None]) -> None:
    report = kernel.call(
        "restore",
        {"notebook": str(target.resolve()), "at": checkpoint},
        on_stderr=lambda text: echo(text.rstrip()),
    )
    if not report["ok"]:
        problems = {**report["mismatched"], **report["failed_cells"]}
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))
        raise NbelasticError(
            f"checkpoint {checkpoint} did not restore whole ({detail}): "
            "run the notebook again without --resume"
        )


def _save(
    kernel: Kernel,
    notebook: nbformat.NotebookNode,
    target: Path,
    arguments: dict,
    cells: list,
    done: int,
    echo: Callable[[str], None],
) -> dict:
    """Write the notebook with its outputs so far, save the state, then record the run.

    A save that fails puts the notebook back as it was: a failed command changes nothing.
    """
    with notebook_lock(target):  # a save running meanwhile keeps its checkpoint
        before = _contents(target)
        write_notebook(target, notebook, keep_checkpoint_of=target)
    try:
        report = kernel.call("save", arguments, on_stderr=lambda text: echo(text.rstrip()))
    except BaseException:
        with notebook_lock(target):
            put_back(target, before)
        raise
    _write_state(
        target, RunState(done, len(cells), report["checkpoint"], _code_digest(cells[:done]))
    )
    return report


def _contents(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _write_state(target: Path, state: RunState) -> None:
    path = sidecar_dir(target) / STATE_FILE
    data = {"format": STATE_FORMAT, **state.__dict__}
    temporary = path.with_name(f".{STATE_FILE}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as error:
        with suppress(OSError):
            temporary.unlink()
        raise StoreWriteError(
            f"could not write {path} ({error.strerror or error}): the state is saved but a "
            "resume would start from the previous checkpoint; free disk space and run again"
        ) from None


def _code_digest(cells: list) -> str:
    digest = hashlib.sha256()
    for cell in cells:
        digest.update(cell.source.encode("utf-8") + b"\x00")
    return digest.hexdigest()


def _resume_hint(source: Path, target: Path, done: int, checkpointing: bool) -> str:
    state = read_state(target) if checkpointing else None
    if state is None:
        return "run it again (with --checkpoint-every to be able to resume)"
    output = "" if source == target else f" -o {target}"
    return f"`nbelastic run {source}{output} --resume` continues after cell {state.cells_done}"
