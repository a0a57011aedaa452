"""The ratios per notebook as a grouped bar chart (log scale: 0.1 and 10 are equally far off)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from benchmarks.results import RATIOS, Row


def draw(rows: Sequence[Row], path: Path) -> None:
    """Write a PNG with one group of bars per notebook, one bar per ratio, a line at 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(RATIOS)
    width = 0.8 / len(keys)
    figure, axes = plt.subplots(figsize=(max(8, 2.2 * len(rows)), 5.5), layout="constrained")
    colours = plt.get_cmap("tab10")
    for index, key in enumerate(keys):
        heights = [row.ratios[key].median if row.ratios[key] else math.nan for row in rows]
        positions = [n + (index - (len(keys) - 1) / 2) * width for n in range(len(rows))]
        axes.bar(positions, heights, width, label=RATIOS[key], color=colours(index))
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_yscale("log")
    labels = [row.name + ("\n(dill failed)" if row.dill_error else "") for row in rows]
    axes.set_xticks(range(len(rows)), labels)
    axes.set_ylabel("nbelastic / baseline (below 1: nbelastic wins)")
    axes.set_title("nbelastic against dill, re-running and no monitoring (median ratios)")
    axes.legend(ncols=3, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.08))
    figure.savefig(path, dpi=110)
    plt.close(figure)
