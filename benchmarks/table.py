"""The headline table, one row per notebook, rendered for a terminal and for Markdown.

Both renderings share the same cells so stdout and ``docs/benchmarks.md`` never disagree.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from benchmarks import trivial_cell
from benchmarks.results import ABSOLUTE, RATIOS, Figure, Row
from benchmarks.trivial_cell import PerCell


def number(value: float) -> str:
    """A ratio or measurement, short but with two significant digits where it matters.

    >>> number(0.0312), number(0.5), number(1.034), number(3.14159), number(42.4)
    ('0.031', '0.50', '1.03', '3.1', '42')
    """
    if value >= 10:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}" if value >= 2 else f"{value:.2f}"
    return f"{value:#.2g}"


def figure(value: Figure | None, missing: str = "n/a") -> str:
    """``median``, ``median ±spread%``, or ``median (low-high)`` when the spread passes 100%.

    >>> figure(Figure(0.5, 0.45, 0.55)), figure(Figure(0.01, 0.004, 0.7)), figure(None)
    ('0.50 ±10%', '0.010 (0.0040-0.70)', 'n/a')
    """
    if value is None:
        return missing
    if value.low == value.high:
        return number(value.median)
    if value.spread > 1:
        return f"{number(value.median)} ({number(value.low)}-{number(value.high)})"
    return f"{number(value.median)} ±{value.spread * 100:.0f}%"


def headline(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the ratio table."""
    header = ["notebook", *RATIOS.values(), "verified"]
    cells = []
    for row in rows:
        line = [row.name]
        for key in RATIOS:
            text = figure(row.ratios[key], "dill failed")
            if key == "migration" and row.migration_baseline == "rerun":
                text += " (vs rerun)"
            line.append(text)
        line.append(f"{row.verified}/{row.total}")
        cells.append(line)
    return header, cells


def absolute(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the table of medians in seconds, MB."""
    header = ["notebook", *(label for label, _ in ABSOLUTE.values())]
    cells = [[row.name, *(figure(row.absolute[key], "failed") for key in ABSOLUTE)] for row in rows]
    return header, cells


def text(header: list[str], cells: list[list[str]]) -> str:
    """Aligned columns for a terminal."""
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    top = "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))
    return "\n".join([top, "  ".join("-" * w for w in widths), *lines])


def markdown(header: list[str], cells: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table, numbers right-aligned."""
    align = ["---", *("---:" for _ in header[1:])]
    lines = [header, align, *cells]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def per_cell(result: PerCell) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the per-cell overhead table, one line per probe cell."""
    header = [
        "cell",
        "reads",
        "rounds",
        "with ext (ms)",
        "without (ms)",
        "added (ms)",
        "added, middle half (ms)",
        "added in the hooks (ms)",
        f"target: `x = 1` adds < {trivial_cell.TARGET_MS:g} ms",
    ]
    cells = []
    for timing in result.timings:
        low, added, high = (1000 * v for v in trivial_cell.quartiles(timing.added))
        touched = result.touched_bytes(timing.probe)
        reads = ", ".join(f"`{name}`" for name in timing.probe.touches)
        cells.append(
            [
                f"`{timing.probe.code}`",
                f"{reads} ({number(touched / 1e6)} MB)" if reads else "nothing big",
                str(len(timing.added)),
                number(1000 * statistics.median(timing.with_extension)),
                number(1000 * statistics.median(timing.without)),
                signed(added),
                f"{signed(low)} to {signed(high)}",
                signed(1000 * statistics.median(timing.hooks_added)),
                _verdict(added) if not timing.probe.touches else "n/a (reads a big variable)",
            ]
        )
    return header, cells


def _verdict(added_ms: float) -> str:
    return "pass" if added_ms < trivial_cell.TARGET_MS else "FAIL"


def signed(value: float) -> str:
    """``number`` for a difference that may come out negative on a noisy machine.

    >>> signed(1.234), signed(-0.5), signed(0.0)
    ('1.23', '-0.50', '0.0')
    """
    if value == 0:
        return "0.0"
    return ("-" if value < 0 else "") + number(abs(value))
