"""docs/images/min-cut.svg: the flow network the planner cuts, for a small history, drawn from
what ``make_plan`` decides (which groups it replays, which cells it runs).

Source -> each group, capacity its load time (unbounded when it cannot be stored); group ->
each cell that rebuilds it, unbounded; cell -> sink, capacity its runtime. The cut separates
the source side (replayed groups, the cells they run) from the sink side (stored groups).
"""

from __future__ import annotations

import html
import math

from nbelastic.history import History
from nbelastic.planner import Group, format_bytes, make_plan

BANDWIDTH = 100e6
CELLS = (  # code, runtime in seconds, reads, writes
    ("raw = load('sales.parquet')", 2.0, [], ["raw"]),
    ("clean = raw.dropna()", 0.5, ["raw"], ["clean"]),
    ("model = fit(clean)", 6.0, ["clean"], ["model"]),
    ("batches = iter(clean)", 0.01, ["clean"], ["batches"]),
)
SIZES = {"raw": 800_000_000, "clean": 600_000_000, "model": 1_000_000, "batches": None}

STORED = ("#2f6db5", "#ffffff")
REPLAYED = ("#e07b24", "#ffffff")
CELL = ("#ffffff", "#222222")
CELL_REPLAYED = ("#fde6cf", "#222222")
INK, MUTED, CUT = "#222222", "#6b6b6b", "#c0392b"
FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"
ROW, TOP = 64, 96
X_SOURCE, X_GROUP, X_CELL, X_SINK = 50, 270, 660, 940
GROUP_HALF, CELL_HALF = 100, 170
WIDTH = 990


def _seconds(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f} s"


def render() -> str:
    """The SVG text: the same inputs always give the same bytes."""
    history = History()
    for code, runtime, reads, writes in CELLS:
        history.record(code, runtime, reads=reads, writes=writes)
    groups = [Group((name,), size=size, why_unstorable="") for name, size in SIZES.items()]
    plan = make_plan(history, groups, bandwidth=BANDWIDTH)
    replayed = {name for group in plan.recomputed for name in group.names}
    names = list(SIZES)
    cells = [execution.id for execution in history.executions]
    height = TOP + ROW * max(len(names), len(cells)) + 40
    group_y = {name: TOP + ROW * i + ROW // 2 for i, name in enumerate(names)}
    cell_y = {cell: TOP + ROW * i + ROW // 2 for i, cell in enumerate(cells)}
    middle = TOP + ROW * max(len(names), len(cells)) // 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT}" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="20" y="30" font-size="16" font-weight="600" fill="{INK}">'
        f"The plan as a minimum cut, at {format_bytes(BANDWIDTH)}/s</text>",
        f'<text x="20" y="52" fill="{MUTED}">edge labels: seconds a restore pays when the '
        "edge is cut; red edges are cut: restore "
        f"{plan.restore_seconds:.2f} s (load {plan.store_seconds:.2f} s + replay "
        f"{plan.replay_seconds:.2f} s)</text>",
        f'<text x="{X_GROUP}" y="80" text-anchor="middle" fill="{MUTED}">variables</text>',
        f'<text x="{X_CELL}" y="80" text-anchor="middle" fill="{MUTED}">'
        "cells that rebuild them</text>",
    ]
    for name in names:
        load = math.inf if SIZES[name] is None else SIZES[name] / BANDWIDTH
        cut = name not in replayed
        start, end = (X_SOURCE + 24, middle), (X_GROUP - GROUP_HALF, group_y[name])
        parts.append(_edge(start, end, _seconds(load), cut))
        for cell in sorted(history.recompute_set([name])):
            start, end = (X_GROUP + GROUP_HALF, group_y[name]), (X_CELL - CELL_HALF, cell_y[cell])
            parts.append(_edge(start, end, "∞", False))
    for cell in cells:
        runtime = history.execution(cell).runtime
        start, end = (X_CELL + CELL_HALF, cell_y[cell]), (X_SINK - 24, middle)
        parts.append(_edge(start, end, _seconds(runtime), cell in plan.replay, at=0.5))
    for name in names:
        fill, ink = REPLAYED if name in replayed else STORED
        fate = "replayed" if name in replayed else "stored"
        size = "cannot be stored" if SIZES[name] is None else format_bytes(SIZES[name])
        note = f"{size}, {fate}"
        parts.append(_box(X_GROUP, group_y[name], GROUP_HALF, name, note, fill, ink, 14))
    for cell in cells:
        fill, ink = CELL_REPLAYED if cell in plan.replay else CELL
        code = history.execution(cell).code
        parts.append(_box(X_CELL, cell_y[cell], CELL_HALF, f"[{cell}] {code}", "", fill, ink, 4))
    for x, label in ((X_SOURCE, "source"), (X_SINK, "sink")):
        parts.append(
            f'<circle cx="{x}" cy="{middle}" r="24" fill="#f1f1f1" stroke="{MUTED}"/>'
            f'<text x="{x}" y="{middle + 4}" text-anchor="middle" fill="{INK}">{label}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _edge(start: tuple, end: tuple, label: str, cut: bool, at: float = 0.7) -> str:
    """A line with its capacity written at ``at`` of its length; a cut edge in red."""
    (x1, y1), (x2, y2) = start, end
    colour, width = (CUT, 2.5) if cut else ("#b5b5b5", 1.2)
    dash = ' stroke-dasharray="6 4"' if cut else ""
    weight = ' font-weight="600"' if cut else ""
    lx, ly = x1 + (x2 - x1) * at, y1 + (y2 - y1) * at - 5
    return (
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" '
        f'stroke-width="{width}"{dash}/>'
        f'<text x="{lx:.0f}" y="{ly:.0f}" text-anchor="middle" font-size="11"{weight} '
        f'stroke="#ffffff" stroke-width="3" paint-order="stroke" '
        f'fill="{colour if cut else MUTED}">{html.escape(label)}</text>'
    )


def _box(x: int, y: int, half: int, title: str, note: str, fill: str, ink: str, rx: int) -> str:
    text_y = y - 2 if note else y + 4
    note_text = (
        f'<text x="{x}" y="{y + 12}" text-anchor="middle" font-size="10" fill="{ink}">'
        f"{html.escape(note)}</text>"
        if note
        else ""
    )
    return (
        f'<rect x="{x - half}" y="{y - 18}" width="{2 * half}" height="36" rx="{rx}" '
        f'fill="{fill}" stroke="{MUTED}" stroke-width="1.2"/>'
        f'<text x="{x}" y="{text_y}" text-anchor="middle" fill="{ink}">{html.escape(title)}</text>'
        f"{note_text}"
    )
