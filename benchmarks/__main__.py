"""``python -m benchmarks``: run the suite, print the table, write the Markdown report and plot.

The full run rewrites ``docs/benchmarks.md`` and ``docs/benchmarks.png``; ``--quick`` shrinks
every workload and writes to a temporary (or the given) directory, never to ``docs/``, so the
smoke test can run it without touching the published numbers.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from benchmarks import machine, plot, report, table
from benchmarks.runner import run_suite
from benchmarks.workloads import WORKLOADS
from nbelastic.kernel import parse_bandwidth

DOCS = Path(__file__).resolve().parent.parent / "docs"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    chosen = [w for w in WORKLOADS if not args.only or w.name in args.only]
    repeats = args.repeats or (1 if args.quick else 3)
    jobs = args.jobs or (2 if args.quick else 1)
    output = args.output or (
        Path(tempfile.mkdtemp(prefix="nbelastic-bench-quick-")) if args.quick else DOCS
    )
    if args.quick and output.resolve() == DOCS:
        sys.exit("--quick never overwrites docs/: give another --output")
    output.mkdir(parents=True, exist_ok=True)
    load_at_start = machine.load()
    suite = run_suite(
        chosen, repeats=repeats, quick=args.quick, bandwidth=args.bandwidth, jobs=jobs
    )
    print(table.text(*table.headline(suite.rows)))
    for name, why in suite.skipped.items():
        print(f"skipped {name}: {why}")
    picture = _plot(suite.rows, output / "benchmarks.png", required=not args.quick)
    document = report.markdown(
        suite.rows,
        chosen,
        suite.skipped,
        command=" ".join(["python -m benchmarks", *map(shlex.quote, argv or sys.argv[1:])]),
        machine=machine.describe(load_at_start),
        bandwidth=args.bandwidth,
        plot=picture,
    )
    (output / "benchmarks.md").write_text(document)
    print(f"wrote {output / 'benchmarks.md'}" + (f" and {picture}" if picture else ""))
    return 0


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
        "--output", type=Path, help="directory for benchmarks.md/.png (default docs/)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=[w.name for w in WORKLOADS], help="run these notebooks only"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
