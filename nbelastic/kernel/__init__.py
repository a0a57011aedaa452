"""The IPython extension: ``%load_ext nbelastic`` starts watching; ``%nbelastic`` saves/restores.

Only this package touches the live shell. It keeps one Monitor per process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from IPython.core.magic import Magics, line_magic, magics_class

from nbelastic.errors import NbelasticError
from nbelastic.kernel.monitor import Monitor
from nbelastic.notebook import NOTEBOOK_ENV
from nbelastic.planner import STRATEGIES, format_bytes

# nbelastic.kernel.checkpoint is imported by the functions that save, restore or plan: it brings
# in the store, its codecs and what they import, which watching cells does not need.
if TYPE_CHECKING:
    from nbelastic.kernel.checkpoint import SaveReport
    from nbelastic.rebuild import RestoreReport

RESULT_MARKER = "NBELASTIC-RESULT "
_monitor: Monitor | None = None


def load_ipython_extension(shell) -> None:
    """Start watching cell executions in ``shell`` (idempotent)."""
    global _monitor
    if _monitor is not None and _monitor.shell is shell:
        return
    _monitor = Monitor(shell)
    _monitor.register()
    shell.register_magics(NbelasticMagics)
    if await_restore not in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.append(await_restore)


def unload_ipython_extension(shell) -> None:
    """Stop watching; the history recorded so far is dropped."""
    global _monitor
    if _monitor is not None and _monitor.shell is shell:
        _monitor.unregister()
        _monitor = None
    if await_restore in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(await_restore)


def current_monitor(*, start: bool = False) -> Monitor:
    """The running monitor; with ``start`` the extension is loaded if it is not yet."""
    if _monitor is None:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            raise NbelasticError("nbelastic runs inside an IPython kernel: use it from a notebook")
        if not start:
            raise NbelasticError(
                "nbelastic is not watching this kernel: run `%load_ext nbelastic` first, "
                "then run your cells"
            )
        load_ipython_extension(shell)
    assert _monitor is not None
    return _monitor


def default_notebook(shell) -> Path:
    """The notebook this kernel belongs to, as Jupyter tells the kernel."""
    session = (
        os.environ.get(NOTEBOOK_ENV)
        or shell.user_ns.get("__session__")
        or os.environ.get("JPY_SESSION_NAME")
    )
    if not session:
        raise NbelasticError(
            "cannot tell which notebook this kernel belongs to: give its path, "
            "e.g. `%nbelastic save analysis.ipynb`"
        )
    return Path(session)


def save(
    notebook: str | os.PathLike | None = None,
    *,
    plan: str = "optimal",
    bandwidth: float | None = None,
    quiet: bool = False,
    store: str | None = None,
) -> SaveReport:
    """Save this kernel's state into ``notebook`` (default: the notebook of this session).

    ``store`` puts the stored variables at an fsspec URL (``s3://bucket/prefix``) or in a
    directory instead of the sidecar next to the notebook; the checkpoint records it.
    """
    from nbelastic.kernel.checkpoint import save_checkpoint

    monitor = current_monitor()
    path = Path(notebook) if notebook else default_notebook(monitor.shell)
    return save_checkpoint(
        monitor,
        path,
        strategy=plan,
        bandwidth=bandwidth,
        progress=_progress(quiet, "save"),
        store_url=store,
    )


def restore(
    notebook: str | os.PathLike | None = None,
    *,
    quiet: bool = False,
    at: str | None = None,
    trust: bool = False,
) -> RestoreReport:
    """Restore the state saved in ``notebook`` into this kernel and verify every variable.

    ``at`` restores an earlier checkpoint of the notebook's history (``nbelastic log NB``).
    A checkpoint not signed by this user loads only plain data unless ``trust``. A cell with
    top-level ``await`` is replayed only by ``restore_async``, which a cell awaits.
    """
    from nbelastic.kernel.checkpoint import restore_checkpoint

    monitor = current_monitor(start=True)
    path = Path(notebook) if notebook else default_notebook(monitor.shell)
    return restore_checkpoint(
        monitor, path, progress=_progress(quiet, "restore"), at=at, trust=trust
    )


async def restore_async(
    notebook: str | os.PathLike | None = None,
    *,
    quiet: bool = False,
    at: str | None = None,
    trust: bool = False,
) -> RestoreReport:
    """``restore``, awaited in the kernel's running loop: replayed cells with top-level
    ``await`` run there as they first did, in order with the other cells."""
    from nbelastic.kernel.checkpoint import restore_checkpoint_async

    monitor = current_monitor(start=True)
    path = Path(notebook) if notebook else default_notebook(monitor.shell)
    return await restore_checkpoint_async(
        monitor, path, progress=_progress(quiet, "restore"), at=at, trust=trust
    )


async def remote(operation: str, arguments: dict) -> None:
    """Entry point for the CLI driving this kernel, awaited in a cell (so that a restore
    replays cells with top-level ``await``): one machine-readable result line."""
    try:
        if operation == "save":
            result = save(**arguments, quiet=False).to_json()
        elif operation == "restore":
            result = (await restore_async(**arguments, quiet=False)).to_json()
        else:
            raise NbelasticError(f"unknown operation {operation!r}")
        payload = {"ok": True, "result": result}
    except NbelasticError as error:
        payload = {"ok": False, "error": str(error)}
    print(RESULT_MARKER + json.dumps(payload), flush=True)


_PROGRESS_EVERY = 0.25  # seconds between two progress lines
_RESTORE_MAGIC = re.compile(r"^(\s*)%nbelastic\s+restore\b(.*?)(\n?)$")


def await_restore(lines: list[str]) -> list[str]:
    """An input transformer: ``%nbelastic restore ...`` becomes an awaited call (IPython's
    autoawait runs it in the kernel's loop), so that replayed cells may ``await`` too."""
    result = []
    for line in lines:
        match = _RESTORE_MAGIC.match(line)
        if match is None:
            result.append(line)
            continue
        indent, arguments, newline = match.groups()
        call = f"await __import__('nbelastic.kernel', fromlist=['_']).restore_magic({arguments!r})"
        result.append(f"{indent}{call}{newline}")
    return result


async def restore_magic(arguments: str) -> None:
    """``%nbelastic restore ARGUMENTS``, as ``await_restore`` rewrites it."""
    monitor = _monitor
    if monitor is not None and monitor.paused:
        return  # a replayed cell must not restore again
    try:
        args = _parser().parse_args(["restore", *shlex.split(arguments)])
        _show(await restore_async(args.notebook, at=args.at, trust=args.trust))
    except _HelpShown:
        return
    except NbelasticError as error:
        print(f"nbelastic: {error}", file=sys.stderr)


def _show(report: RestoreReport) -> None:
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    for warning in report.warnings:
        print(f"nbelastic: {warning}", file=sys.stderr)


def _progress(quiet: bool, verb: str):
    """Progress lines on stderr, only once an operation has run for more than a second, and
    then at most a few a second (and the last one): a line per variable of thousands of small
    ones cost more than storing them."""
    if quiet:
        return None
    started = time.perf_counter()
    shown = [0.0]

    def report(message: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - started > 1.0 and (now - shown[0] >= _PROGRESS_EVERY or done == total):
            shown[0] = now
            print(f"nbelastic {verb}: {done}/{total} {message}", file=sys.stderr, flush=True)

    return report


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise NbelasticError(f"{message} (see `%nbelastic --help`)")

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            print(message, file=sys.stderr)
        raise _HelpShown


class _HelpShown(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="%nbelastic", description="Save and restore kernel state.")
    commands = parser.add_subparsers(dest="command", required=True)
    save_cmd = commands.add_parser("save", help="save the state into the notebook")
    save_cmd.add_argument("notebook", nargs="?")
    save_cmd.add_argument("--plan", choices=STRATEGIES, default="optimal")
    save_cmd.add_argument("--store", help="where to store the variables: URL (s3://...) or dir")
    save_cmd.add_argument(
        "--bandwidth",
        type=parse_bandwidth,
        default=None,
        help="store bandwidth, e.g. 100MB/s (default: measured)",
    )
    restore_cmd = commands.add_parser("restore", help="restore the notebook's saved state")
    restore_cmd.add_argument("notebook", nargs="?")
    restore_cmd.add_argument("--at", help="an earlier checkpoint: id, number or `latest`")
    restore_cmd.add_argument(
        "--trust", action="store_true", help="load it even if you did not sign it (runs code)"
    )
    status_cmd = commands.add_parser("status", help="what a save would store or replay")
    status_cmd.add_argument("--plan", choices=STRATEGIES, default="optimal")
    status_cmd.add_argument("--bandwidth", type=parse_bandwidth, default=None)
    status_cmd.add_argument(
        "--graph", metavar="FILE", help="also draw the history graph with the plan (.svg or .dot)"
    )
    return parser


_BANDWIDTH = re.compile(r"^\s*([0-9.]+(?:E[+-]?[0-9]+)?)\s*([KMGT]I?)?B?(?:/S)?\s*$")
_UNITS = {None: 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_UNITS.update({"KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40})


def parse_bandwidth(text: str) -> float:
    """Bytes per second from ``100MB/s``, ``1.5G``, ``2e8``.

    >>> parse_bandwidth("100MB/s"), parse_bandwidth("2e8"), parse_bandwidth("1GiB/s")
    (100000000.0, 200000000.0, 1073741824.0)
    """
    match = _BANDWIDTH.match(text.upper())
    try:
        value = float(match.group(1)) * _UNITS[match.group(2)] if match else None
    except ValueError:
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(f"not a bandwidth: {text!r} (try 100MB/s)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"bandwidth must be positive, got {text!r}")
    return value


@magics_class
class NbelasticMagics(Magics):
    """``%nbelastic save|restore|status``."""

    @line_magic
    def nbelastic(self, line: str) -> None:
        """Save, restore or inspect this kernel's state. ``%nbelastic --help`` for details."""
        monitor = _monitor
        if monitor is not None and monitor.paused:
            return  # a replayed cell must not save or restore again
        try:
            args = _parser().parse_args(shlex.split(line))
            if args.command == "save":
                saved = save(
                    args.notebook, plan=args.plan, bandwidth=args.bandwidth, store=args.store
                )
                print(saved.summary())
            elif args.command == "restore":
                _show(restore(args.notebook, at=args.at, trust=args.trust))
            else:
                from nbelastic.kernel.checkpoint import plan_now

                monitor = current_monitor()
                plan, profiles = plan_now(monitor, strategy=args.plan, bandwidth=args.bandwidth)
                print(_status_table(plan, profiles, monitor.history))
                print(f"changes between cells: {monitor.watch_note}")
                watch = monitor.watch
                print(monitor.cost.summary(None if watch is None else watch.pages_written))
                if args.graph:
                    _draw_graph(monitor, plan, profiles, args.graph)
        except _HelpShown:
            return
        except NbelasticError as error:
            print(f"nbelastic: {error}", file=sys.stderr)


def _draw_graph(monitor: Monitor, plan, profiles, path: str) -> None:
    """``--graph``: the history so far with the plan just made, as a save would store it."""
    from nbelastic.graph import from_plan, write_graph

    sizes = {name: p.size for name, p in profiles.items()}
    title = "this kernel: history and the plan a save would make"
    write_graph(from_plan(monitor.history, plan, sizes, title), path)
    print(f"history graph drawn to {path}")


def _forced_replays(plan, history) -> str:
    """The line naming what cannot be stored, so is replayed, and what replaying it costs; ""
    when nothing is."""
    unstorable = [group for group in plan.recomputed if group.size is None]
    if not unstorable:
        return ""
    names = [name for group in unstorable for name in group.names]
    cells = sorted(history.recompute_set(names) & set(plan.replay))
    seconds = sum(history.execution(cell).runtime for cell in cells)
    objects = ", ".join(
        f"{', '.join(group.names)} ({group.why_unstorable or 'cannot be serialized'})"
        for group in unstorable
    )
    listed = ", ".join(map(str, cells)) or "none"
    return (
        f"cannot be stored, so replayed: {objects}; replaying cells {listed} costs {seconds:.2f} s"
    )


def _status_table(plan, profiles, history) -> str:
    actions = plan.actions
    rows = [("variable", "type", "size", "action", "why")]
    for name, p in sorted(profiles.items()):
        rows.append((name, p.type_name, format_bytes(p.size), actions[name], plan.reasons[name]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]))
    forced = _forced_replays(plan, history)
    if forced:
        lines.append(forced)
    lines.append(
        f"estimated restore: {plan.restore_seconds:.2f} s "
        f"(load {plan.store_seconds:.2f} s + replay {plan.replay_seconds:.2f} s, "
        f"cells {', '.join(map(str, plan.replay)) or 'none'})"
    )
    return "\n".join(lines)
