"""``python -m benchmarks``: run the suite, print the table, write the Markdown report and plot.

The full run rewrites ``docs/benchmarks.md`` and ``docs/benchmarks.png``; ``--quick`` shrinks
every workload and ``--only`` picks some of them, and both write to a temporary (or the given)
directory, never to ``docs/``, so neither can overwrite the published numbers with a partial or
reduced run. The kernels import the nbelastic next to these benchmarks, whatever the
environment has installed, so the report's commit names the code that was measured.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

from benchmarks import folder, machine, plot, report, table, trivial_cell
from benchmarks.runner import run_suite, run_trivial_cell
from benchmarks.workloads import WORKLOADS
from nbelastic.kernel import parse_bandwidth

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.notebooks:
        return _notebooks(args)
    chosen = [w for w in WORKLOADS if not args.only or w.name in args.only]
    repeats = args.repeats or (1 if args.quick else 3)
    jobs = args.jobs or (2 if args.quick else 1)
    partial = args.quick or bool(args.only)
    output = args.output or (
        Path(tempfile.mkdtemp(prefix="nbelastic-bench-partial-")) if partial else DOCS
    )
    if partial and output.resolve() == DOCS:
        sys.exit("--quick and --only never overwrite docs/: give another --output")
    output.mkdir(parents=True, exist_ok=True)
    _measure_this_checkout()
    load_at_start = machine.load()
    fresh_memory = machine.first_touch()  # before the suite leaves freed memory behind
    suite = run_suite(
        chosen, repeats=repeats, quick=args.quick, bandwidth=args.bandwidth, jobs=jobs
    )
    per_cell = None
    if not args.only or trivial_cell.NAME in args.only:
        per_cell = run_trivial_cell(quick=args.quick, rounds=args.rounds)
    if suite.rows:
        print(table.text(*table.headline(suite.rows)))
    if per_cell:
        print("\n" + table.text(*table.per_cell(per_cell)))
    for name, why in suite.skipped.items():
        print(f"skipped {name}: {why}")
    picture = (
        _plot(suite.rows, output / "benchmarks.png", required=not args.quick)
        if suite.rows
        else None
    )
    document = report.markdown(
        suite.rows,
        chosen,
        suite.skipped,
        command=" ".join(["python -m benchmarks", *map(shlex.quote, argv or sys.argv[1:])]),
        machine=machine.describe(load_at_start, fresh_memory),
        bandwidth=args.bandwidth,
        plot=picture,
        per_cell=per_cell,
    )
    (output / "benchmarks.md").write_text(document)
    print(f"wrote {output / 'benchmarks.md'}" + (f" and {picture}" if picture else ""))
    return 0


def _notebooks(args: argparse.Namespace) -> int:
    """The comparison on the notebooks of the given folders: a table on stdout, and in
    ``--output``/notebooks.md when given (never docs/: the published table is edited)."""
    missing = [str(folder) for folder in args.notebooks if not folder.is_dir()]
    if missing:
        sys.exit(f"not a folder: {', '.join(missing)}")
    _measure_this_checkout()
    folder.headless_environment()
    load_at_start = machine.load()
    results = folder.run_folders(
        args.notebooks, bandwidth=args.bandwidth, cell_timeout=args.cell_timeout
    )
    header, rows = folder.table(results, args.bandwidth)
    print(table.text(header, rows))
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        described = machine.describe(load_at_start, machine.first_touch())
        facts = "".join(f"- {key}: {value}\n" for key, value in described.items())
        text = f"{facts}- repeats: 1\n\n{table.markdown(header, rows)}\n"
        (args.output / "notebooks.md").write_text(text)
        print(f"wrote {args.output / 'notebooks.md'}")
    return 0


def _measure_this_checkout() -> None:
    """Put this checkout first on the kernels' import path (they inherit the environment)."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)


def _plot(rows, path: Path, *, required: bool) -> str | None:
    """Draw the chart; a quick run without matplotlib goes on without it."""
    try:
        plot.draw(rows, path)
    except ImportError:
        if required:
            raise
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return None
    return path.name


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure nbelastic against dill and re-running on the workload notebooks.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="reduced sizes, one repeat, two at once, output not in docs/",
    )
    parser.add_argument(
        "--repeats", type=_positive, help="repeats per notebook (default 3, quick 1)"
    )
    parser.add_argument(
        "--jobs",
        type=_positive,
        help="repeats measured at once (default 1; quick 2): more skews the times",
    )
    parser.add_argument(
        "--bandwidth",
        type=parse_bandwidth,
        default=parse_bandwidth("100MB/s"),
        help="transfer bandwidth for migration, and the planner's (default 100MB/s)",
    )
    parser.add_argument(
        "--notebooks",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="measure the notebooks of these folders instead (scratch copies; one repeat)",
    )
    parser.add_argument(
        "--cell-timeout",
        type=float,
        default=folder.CELL_TIMEOUT,
        help=f"with --notebooks: seconds a cell may run (default {folder.CELL_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--output", type=Path, help="directory for benchmarks.md/.png (default docs/)"
    )
    parser.add_argument(
        "--rounds",
        type=_positive,
        help=f"rounds of x = 1 timed with the state alive (default {trivial_cell.FULL_ROUNDS}, "
        f"quick {trivial_cell.QUICK_ROUNDS}); cells that read a big variable run at most "
        f"{trivial_cell.READING_ROUNDS}",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[*(w.name for w in WORKLOADS), trivial_cell.NAME],
        help=f"run these notebooks only, or {trivial_cell.NAME}: per-cell overhead with "
        "about 2 GB alive; output not in docs/",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
