"""Plain-text tables for the terminal: columns padded to their widest cell.

>>> print(format_table(["name", "size"], [["a", "1 B"], ["long", "10 kB"]], right={1}))
name   size
a       1 B
long  10 kB
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = ()
) -> str:
    """The rows under the header, two spaces between columns; ``right`` columns are
    right-aligned (numbers), the last column is not padded (it may be long prose)."""
    everything = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in everything) for i in range(len(header))]
    lines = []
    for row in everything:
        cells = []
        for index, (cell, width) in enumerate(zip(row, widths, strict=True)):
            if index in right:
                cells.append(cell.rjust(width))
            elif index == len(row) - 1:
                cells.append(cell)
            else:
                cells.append(cell.ljust(width))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
