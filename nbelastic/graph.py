"""Draw the Application History Graph with a restore plan on it, as SVG (or Graphviz DOT).

Users rarely have Graphviz, and this picture has a fixed shape that needs no general layout:
time flows down, one row per execution; variables live in lanes to the right, each snapshot at
the row of the execution that wrote it. A lane is taken by one name from its first write to its
last use, then reused, so a notebook of a hundred small cells stays a few lanes wide. An
execution that writes many names shows the ones that matter and one node for the rest. The
same graph always gives the same bytes, so a picture in the docs can be checked in tests.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbelastic.errors import NbelasticError
from nbelastic.history import PREEXISTING_CODE, UNMONITORED_CODE, Execution, History, Snapshot
from nbelastic.planner import Plan, format_bytes

FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"
TITLE_FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
SIZE = 12  # px; monospace characters are about 0.6 of it wide
PAD = 20
ROW = 38
BOX_HEIGHT = 26
LANE_GAP = 14
COLUMN_GAP = 40
CODE_CHARS = 34  # a cell's label keeps this many characters of its code
NAME_CHARS = 18
MOST_WRITES_SHOWN = 10  # per execution; the others are drawn as one node

#: Snapshot colours (fill, stroke, text) by state; "live" is a live variable outside the plan.
SNAPSHOT_STYLES = {
    "stored": ("#2f6db5", "#1d4f8c", "#ffffff"),
    "replayed": ("#e07b24", "#a9560f", "#ffffff"),
    "lost": ("#c0392b", "#8e2a20", "#ffffff"),
    "live": ("#ffffff", "#555555", "#222222"),
    "old": ("#f1f1f1", "#c6c6c6", "#8c8c8c"),
    "mixed": ("#dfe6ee", "#7d8b99", "#333333"),
}
#: Cell colours (fill, stroke, dashed) by kind.
CELL_STYLES = {
    "replay": ("#fde6cf", "#e07b24", False),
    "cell": ("#ffffff", "#a0a0a0", False),
    "unmonitored": ("#efeaf7", "#7d62b3", True),
    "preexisting": ("#e7f3eb", "#4f9a6e", True),
}
_FATE_STATES = {"store": "stored", "replay": "replayed", "lost": "lost"}
_LINE = "#c9c9c9"
_INK = "#222222"
_MUTED = "#6b6b6b"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class PlannedHistory:
    """A history with the plan made for its live variables: everything the picture shows.

    ``fates`` maps live names to ``store``, ``replay`` or ``lost`` (as ``Plan.actions``);
    ``sizes`` to their bytes; ``replay`` holds the ids of the executions a restore replays.
    """

    history: History
    fates: Mapping[str, str]
    sizes: Mapping[str, int]
    replay: frozenset[int]
    title: str = "Application History Graph"
    strategy: str = ""
    restore_seconds: float | None = None
    reasons: Mapping[str, str] = field(default_factory=dict)


def from_checkpoint(document: Mapping, title: str) -> PlannedHistory:
    """The graph a validated checkpoint document carries (``read_checkpoint``): no kernel."""
    variables = document["variables"]
    plan = document["plan"]
    return PlannedHistory(
        history=History.from_json(document["history"]),
        fates={name: info["action"] for name, info in variables.items()},
        sizes={name: info["size"] for name, info in variables.items()},
        replay=frozenset(plan["replay"]),
        title=title,
        strategy=plan["strategy"],
        restore_seconds=plan["restore_seconds"],
        reasons={name: info["why"] for name, info in variables.items()},
    )


def from_plan(history: History, plan: Plan, sizes: Mapping[str, int], title: str) -> PlannedHistory:
    """The graph of a plan made now, in a kernel (``%nbelastic status``)."""
    return PlannedHistory(
        history=history,
        fates=plan.actions,
        sizes=dict(sizes),
        replay=frozenset(plan.replay),
        title=title,
        strategy=plan.strategy,
        restore_seconds=plan.restore_seconds,
        reasons=dict(plan.reasons),
    )


def write_graph(graph: PlannedHistory, path: str | Path) -> None:
    """Draw ``graph`` to ``path``: Graphviz DOT for ``.dot``/``.gv``, SVG otherwise."""
    path = Path(path)
    text = render_dot(graph) if path.suffix.lower() in (".dot", ".gv") else render_svg(graph)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise NbelasticError(
            f"cannot write the graph to {path} ({error.strerror or error}): check the path"
        ) from None


# --- what each execution and snapshot is -------------------------------------------------------


def cell_kind(execution: Execution, replay: Iterable[int]) -> str:
    """``replay``, ``cell``, ``unmonitored`` or ``preexisting``: how an execution is drawn."""
    if execution.code == PREEXISTING_CODE:
        return "preexisting"
    if execution.code == UNMONITORED_CODE:
        return "unmonitored"
    return "replay" if execution.id in replay else "cell"


def snapshot_state(graph: PlannedHistory, snapshot: Snapshot) -> str:
    """``stored``, ``replayed``, ``lost``, ``live`` (outside the plan) or ``old``."""
    if graph.history.active.get(snapshot.name) != snapshot:
        return "old"
    return _FATE_STATES.get(graph.fates.get(snapshot.name, ""), "live")


def cell_label(execution: Execution) -> str:
    """``[3] df = load(...)``: the id and the first line of code that says what the cell does.

    >>> cell_label(Execution(3, "# load\\nframe = read_csv('sales.csv')\\nframe.head()", 0.0))
    "[3] frame = read_csv('sales.csv') …"
    >>> cell_label(Execution(4, "total = sum(x for x in range(10_000) if x % 3 == 0)", 0.0))
    '[4] total = sum(x for x in range(10_0…'
    """
    if execution.code == PREEXISTING_CODE:
        return f"[{execution.id}] before nbelastic watched"
    if execution.code == UNMONITORED_CODE:
        return f"[{execution.id}] changed outside cells"
    lines = [line.strip() for line in execution.code.splitlines() if line.strip()]
    code = [line for line in lines if not line.startswith("#")] or lines or [""]
    first = code[0] + (" …" if len(code) > 1 else "")
    return _truncate(f"[{execution.id}] {first}", CODE_CHARS + 4)


def duration(seconds: float) -> str:
    """A runtime as people read it.

    >>> duration(0.0002), duration(0.0351), duration(1.5049), duration(95.0)
    ('<1 ms', '35 ms', '1.50 s', '1.6 min')
    """
    if seconds < 0.0005:
        return "<1 ms"
    if seconds < 0.9995:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 59.995:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


# --- layout ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """One drawn snapshot, or (``hidden``) the snapshots of a row drawn as one node."""

    key: str
    row: int
    lane_key: str
    state: str
    label: str
    sublabel: str
    tooltip: str
    hidden: tuple[Snapshot, ...] = ()

    @property
    def height(self) -> int:
        return 30 if self.sublabel else 20

    @property
    def width(self) -> int:
        return max(44, round(max(_text_width(self.label), _text_width(self.sublabel, 10)) + 16))


@dataclass
class _Layout:
    graph: PlannedHistory
    rows: dict[int, int] = field(default_factory=dict)  # execution id -> row
    nodes: dict[str, _Node] = field(default_factory=dict)  # node key -> node
    node_of: dict[Snapshot, str] = field(default_factory=dict)  # snapshot -> node key
    lanes: dict[str, int] = field(default_factory=dict)  # lane key -> lane
    lane_x: list[int] = field(default_factory=list)  # each lane's centre
    cell_width: int = 0
    top: int = 0
    width: int = 0  # of the cells and lanes, without the header

    def row_y(self, row: int) -> int:
        return self.top + row * ROW + ROW // 2

    def x_of(self, lane_key: str) -> int:
        return self.lane_x[self.lanes[lane_key]]


def _layout(graph: PlannedHistory) -> _Layout:
    """Rows, nodes and lanes; ``top`` is set once the header above them is known."""
    layout = _Layout(graph)
    executions = graph.history.executions
    layout.rows = {execution.id: row for row, execution in enumerate(executions)}
    read = frozenset(snapshot for e in executions for snapshot in e.reads)
    for row, execution in enumerate(executions):
        _place_writes(layout, row, execution, read)
    labels = [cell_label(e) for e in executions]
    times = [duration(e.runtime) for e in executions]
    longest = max(
        (_text_width(a) + _text_width(b) for a, b in zip(labels, times, strict=True)), default=0
    )
    layout.cell_width = round(max(longest, 120) + 3 * SIZE)
    _assign_lanes(layout)
    widths = [44] * (max(layout.lanes.values(), default=-1) + 1)
    for node in layout.nodes.values():
        lane = layout.lanes[node.lane_key]
        widths[lane] = max(widths[lane], node.width)
    x = PAD + layout.cell_width + COLUMN_GAP
    for lane_width in widths:
        layout.lane_x.append(x + lane_width // 2)
        x += lane_width + LANE_GAP
    layout.width = x - LANE_GAP + PAD
    return layout


def _place_writes(
    layout: _Layout, row: int, execution: Execution, read: frozenset[Snapshot]
) -> None:
    """Make the nodes of the snapshots ``execution`` wrote; beyond a few, one node for the rest.

    The ones kept are those a reader most wants: replayed or lost ones, then the ones other
    cells read, then live before old.
    """
    graph = layout.graph

    def importance(snapshot: Snapshot) -> tuple:
        state = snapshot_state(graph, snapshot)
        return (state not in ("replayed", "lost"), snapshot not in read, state == "old", snapshot)

    writes = sorted(execution.writes, key=importance)
    shown = writes if len(writes) <= MOST_WRITES_SHOWN else writes[: MOST_WRITES_SHOWN - 1]
    for snapshot in sorted(shown):
        key = str(snapshot)
        layout.nodes[key] = _snapshot_node(graph, snapshot, row)
        layout.node_of[snapshot] = key
    hidden = tuple(sorted(set(writes) - set(shown)))
    if hidden:
        key = f"+{execution.id}"
        layout.nodes[key] = _hidden_node(graph, hidden, row, key)
        layout.node_of.update((snapshot, key) for snapshot in hidden)


def _snapshot_node(graph: PlannedHistory, snapshot: Snapshot, row: int) -> _Node:
    state = snapshot_state(graph, snapshot)
    name = _truncate(snapshot.name, NAME_CHARS)
    sublabel = ""
    tooltip = f"{snapshot}: {'an older version' if state == 'old' else state}"
    if state != "old" and snapshot.name in graph.sizes:
        sublabel = format_bytes(graph.sizes[snapshot.name])
        tooltip = f"{snapshot}, {sublabel}: {graph.reasons.get(snapshot.name, state)}"
    return _Node(
        str(snapshot), row, snapshot.name, state, f"{name}@{snapshot.version}", sublabel, tooltip
    )


def _hidden_node(graph: PlannedHistory, hidden: Sequence[Snapshot], row: int, key: str) -> _Node:
    states = [snapshot_state(graph, snapshot) for snapshot in hidden]
    counts = sorted({state: states.count(state) for state in states}.items())
    sublabel = ", ".join(f"{count} {state}" for state, count in counts)
    state = states[0] if len(counts) == 1 else "mixed"
    names = ", ".join(str(snapshot) for snapshot in hidden)
    return _Node(key, row, key, state, f"+{len(hidden)} more", sublabel, names, tuple(hidden))


def _assign_lanes(layout: _Layout) -> None:
    """Give each lane key a lane for the rows from its first node to its last use.

    Greedy interval colouring in order of first row: optimal for intervals, and deterministic.
    """
    spans: dict[str, tuple[int, int]] = {}

    def use(lane_key: str, row: int) -> None:
        start, end = spans.get(lane_key, (row, row))
        spans[lane_key] = (min(start, row), max(end, row))

    for node in layout.nodes.values():
        use(node.lane_key, node.row)
    for row, execution in enumerate(layout.graph.history.executions):
        for snapshot in (*execution.reads, *execution.deletes):
            if snapshot in layout.node_of:
                use(layout.nodes[layout.node_of[snapshot]].lane_key, row)
    lane_ends: list[int] = []  # the last row each lane is taken
    for key, (start, end) in sorted(spans.items(), key=lambda item: (item[1][0], item[0])):
        lane = next((i for i, last in enumerate(lane_ends) if last < start), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(end)
        lane_ends[lane] = end
        layout.lanes[key] = lane


# --- SVG ---------------------------------------------------------------------------------------


def render_svg(graph: PlannedHistory) -> str:
    """The whole picture as an SVG document: title, plan summary, legend, then the graph."""
    layout = _layout(graph)
    width = max(layout.width, _header_width(graph))
    legend, legend_bottom = _legend(width, PAD + 56)
    layout.top = legend_bottom + 30
    height = layout.top + len(layout.rows) * ROW + PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="{SIZE}">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        *_header(graph),
        *legend,
        *_columns(layout, width),
        *_row_lines(layout),
        *_read_edges(layout),
        *_write_edges(layout),
        *_deletes(layout),
        *(_svg_node(layout, node) for node in layout.nodes.values()),
        *(_svg_cell(layout, execution) for execution in graph.history.executions),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def _header(graph: PlannedHistory) -> list[str]:
    return [
        f'<text x="{PAD}" y="{PAD + 16}" font-family="{TITLE_FONT}" font-size="18" '
        f'font-weight="600" fill="{_INK}">{_xml(graph.title)}</text>',
        f'<text x="{PAD}" y="{PAD + 38}" fill="{_MUTED}">{_xml(plan_summary(graph))}</text>',
    ]


def _header_width(graph: PlannedHistory) -> int:
    widths = (
        _text_width(graph.title, 18),
        _text_width(plan_summary(graph)),
        30 + _text_width(_ROWS_HINT),
    )
    return round(max(widths) + 2 * PAD)


def plan_summary(graph: PlannedHistory) -> str:
    """One line: what the plan loads, what it replays, and the restore estimate.

    >>> h = History()
    >>> _ = h.record("a = 1", 2.0, writes=["a"])
    >>> _ = h.record("b = 2", 0.5, writes=["b"])
    >>> graph = PlannedHistory(h, {"a": "replay", "b": "store"}, {"a": 28, "b": 1500},
    ...                        frozenset({1}), strategy="optimal", restore_seconds=2.0)
    >>> plan_summary(graph)
    'optimal plan: load 1 variable (1.5 kB), replay 1 cell (2.00 s); restore about 2.00 s'
    """
    stored = [name for name, fate in graph.fates.items() if fate == "store"]
    size = sum(graph.sizes.get(name, 0) for name in stored)
    runtime = sum(e.runtime for e in graph.history.executions if e.id in graph.replay)
    parts = [
        f"load {_count(len(stored), 'variable')} ({format_bytes(size)})",
        f"replay {_count(len(graph.replay), 'cell')} ({duration(runtime)})"
        if graph.replay
        else "replay nothing",
    ]
    lost = sum(1 for fate in graph.fates.values() if fate == "lost")
    if lost:
        parts.append(f"cannot restore {_count(lost, 'variable')}")
    text = ", ".join(parts)
    if graph.strategy:
        text = f"{graph.strategy} plan: {text}"
    if graph.restore_seconds is not None:
        text += f"; restore about {graph.restore_seconds:.2f} s"
    return text


_LEGEND = (
    ("snapshot", "stored", "stored: loaded from the store"),
    ("snapshot", "replayed", "replayed: rebuilt by its cells"),
    ("snapshot", "lost", "lost: cannot be restored"),
    ("snapshot", "old", "older version"),
    ("cell", "replay", "cell to replay"),
    ("cell", "cell", "cell"),
    ("cell", "unmonitored", "unmonitored change"),
    ("cell", "preexisting", "preexisting state"),
)


_ROWS_HINT = "each row: a cell, the snapshots it writes, and a dot on each snapshot's line it reads"


def _legend(width: int, y: int) -> tuple[list[str], int]:
    """The legend from ``y`` down, wrapped to ``width``; returns its elements and its bottom."""
    parts, x = ['<g class="legend">'], PAD
    for kind, style, text in _LEGEND:
        item_width = 30 + round(_text_width(text)) + 22
        if x + item_width > width - PAD and x > PAD:
            x, y = PAD, y + 24
        if kind == "snapshot":
            fill, stroke, _ = SNAPSHOT_STYLES[style]
            shape = _rect(x, y, 24, 14, fill, stroke, radius=7)
        else:
            fill, stroke, dashed = CELL_STYLES[style]
            shape = _rect(x, y, 24, 14, fill, stroke, radius=3, dashed=dashed)
        parts.append(
            f'<g class="legend-item {kind} {style}">{shape}'
            f'<text x="{x + 30}" y="{y + 11}" fill="{_INK}">{_xml(text)}</text></g>'
        )
        x += item_width
    y += 24
    parts.append(
        f'<g class="legend-item rows"><line x1="{PAD}" y1="{y + 7}" x2="{PAD + 24}" '
        f'y2="{y + 7}" stroke="{_MUTED}" stroke-width="1.5"/>'
        f'<circle cx="{PAD + 16}" cy="{y + 7}" r="4" fill="{SNAPSHOT_STYLES["stored"][1]}"/>'
        f'<text x="{PAD + 30}" y="{y + 11}" fill="{_INK}">{_xml(_ROWS_HINT)}</text></g>'
    )
    parts.append("</g>")
    return parts, y + 14


def _columns(layout: _Layout, width: int) -> list[str]:
    """Column headings and a light band on every other row."""
    first = layout.top - 8
    parts = [
        f'<text x="{PAD}" y="{first}" fill="{_MUTED}">cells, in run order</text>',
    ]
    if layout.lane_x:
        x = PAD + layout.cell_width + COLUMN_GAP
        parts.append(f'<text x="{x}" y="{first}" fill="{_MUTED}">variable snapshots</text>')
    for row in range(1, len(layout.rows), 2):
        parts.append(
            f'<rect x="{PAD // 2}" y="{layout.top + row * ROW}" width="{width - PAD}" '
            f'height="{ROW}" fill="#f8f8f8"/>'
        )
    return parts


def _row_lines(layout: _Layout) -> list[str]:
    """A light line from each cell to the farthest lane it reads, writes or deletes in."""
    parts = []
    for row, execution in enumerate(layout.graph.history.executions):
        touched = _row_keys(layout, (*execution.writes, *execution.reads, *execution.deletes))
        if touched:
            right = max(layout.x_of(layout.nodes[key].lane_key) for key in touched)
            y = layout.row_y(row)
            parts.append(
                f'<line class="row" x1="{PAD + layout.cell_width}" y1="{y}" x2="{right}" '
                f'y2="{y}" stroke="{_LINE}" stroke-width="1"/>'
            )
    return parts


def _read_edges(layout: _Layout) -> list[str]:
    """Snapshot -> reading execution: down the snapshot's lane to the reader's row, a dot there."""
    parts = []
    for row, execution in enumerate(layout.graph.history.executions):
        written_here = {layout.nodes[k].lane_key for k in _row_keys(layout, execution.writes)}
        for key in _row_keys(layout, execution.reads):
            node = layout.nodes[key]
            x, y = layout.x_of(node.lane_key), layout.row_y(row)
            colour = SNAPSHOT_STYLES[node.state][1]
            parts.append(
                f'<path class="edge read" data-from="{_xml(key)}" data-to="cell {execution.id}" '
                f'd="M{x},{layout.row_y(node.row) + node.height // 2} V{y}" '
                f'stroke="{colour}" stroke-width="2" fill="none"/>'
            )
            if node.lane_key not in written_here:
                parts.append(f'<circle cx="{x}" cy="{y}" r="4" fill="{colour}"/>')
    return parts


def _write_edges(layout: _Layout) -> list[str]:
    """Execution -> the snapshots it wrote: a darker line along its row to each of them."""
    parts = []
    box_right = PAD + layout.cell_width
    for execution in layout.graph.history.executions:
        for key in _row_keys(layout, execution.writes):
            node = layout.nodes[key]
            x, y = layout.x_of(node.lane_key) - node.width // 2, layout.row_y(node.row)
            parts.append(
                f'<path class="edge write" data-from="cell {execution.id}" data-to="{_xml(key)}" '
                f'd="M{box_right},{y} H{x}" stroke="{_MUTED}" stroke-width="1.5" fill="none"/>'
            )
    return parts


def _deletes(layout: _Layout) -> list[str]:
    """A cross where an execution deleted a variable, at the end of its lane."""
    parts = []
    for row, execution in enumerate(layout.graph.history.executions):
        for key in _row_keys(layout, execution.deletes):
            node = layout.nodes[key]
            x, y = layout.x_of(node.lane_key), layout.row_y(row)
            colour = SNAPSHOT_STYLES["old"][1]
            parts.append(
                f'<path class="edge delete" data-from="{_xml(key)}" data-to="cell {execution.id}" '
                f'd="M{x},{layout.row_y(node.row) + node.height // 2} V{y}" stroke="{colour}" '
                'stroke-width="2" stroke-dasharray="3 3" fill="none"/>'
                f'<path d="M{x - 5},{y - 5} L{x + 5},{y + 5} M{x - 5},{y + 5} L{x + 5},{y - 5}" '
                f'stroke="{_MUTED}" stroke-width="2"/>'
            )
    return parts


def _row_keys(layout: _Layout, snapshots: Iterable[Snapshot]) -> list[str]:
    """The node keys of ``snapshots`` that have a node, each once, in a stable order."""
    keys = {layout.node_of[s] for s in snapshots if s in layout.node_of}
    return sorted(keys)


def _svg_node(layout: _Layout, node: _Node) -> str:
    fill, stroke, ink = SNAPSHOT_STYLES[node.state]
    x, y = layout.x_of(node.lane_key), layout.row_y(node.row)
    left, top = x - node.width // 2, y - node.height // 2
    kind = "more" if node.hidden else "snapshot"
    texts = [
        f'<text x="{x}" y="{y + (-2 if node.sublabel else 4)}" text-anchor="middle" '
        f'fill="{ink}">{_xml(node.label)}</text>'
    ]
    if node.sublabel:
        texts.append(
            f'<text x="{x}" y="{y + 11}" text-anchor="middle" font-size="10" '
            f'fill="{ink}">{_xml(node.sublabel)}</text>'
        )
    return (
        f'<g class="{kind} {node.state}" data-node="{_xml(node.key)}">'
        f"<title>{_xml(node.tooltip)}</title>"
        f"{_rect(left, top, node.width, node.height, fill, stroke, radius=node.height // 2)}"
        f"{''.join(texts)}</g>"
    )


def _svg_cell(layout: _Layout, execution: Execution) -> str:
    kind = cell_kind(execution, layout.graph.replay)
    fill, stroke, dashed = CELL_STYLES[kind]
    y = layout.row_y(layout.rows[execution.id])
    top = y - BOX_HEIGHT // 2
    raised = " raised" if execution.raised else ""
    runtime = duration(execution.runtime) + (" raised" if execution.raised else "")
    return (
        f'<g class="cell {kind}{raised}" data-node="cell {execution.id}">'
        f"<title>{_xml(_truncate(execution.code, 600))}</title>"
        f"{_rect(PAD, top, layout.cell_width, BOX_HEIGHT, fill, stroke, 4, dashed)}"
        f'<text x="{PAD + 8}" y="{y + 4}" fill="{_INK}">{_xml(cell_label(execution))}</text>'
        f'<text x="{PAD + layout.cell_width - 8}" y="{y + 4}" text-anchor="end" '
        f'fill="{"#c0392b" if execution.raised else _MUTED}">{_xml(runtime)}</text></g>'
    )


def _rect(
    x: int, y: int, width: int, height: int, fill: str, stroke: str, radius: int, dashed=False
) -> str:
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (
        f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="{radius}" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/>'
    )


# --- DOT ---------------------------------------------------------------------------------------


def render_dot(graph: PlannedHistory) -> str:
    """The same graph for Graphviz (``dot -Tsvg``), for those who have it: same nodes, colours."""
    lines = [
        "digraph history {",
        f"  label={_dot(graph.title + chr(10) + plan_summary(graph))}; labelloc=t;",
        '  rankdir=TB; node [fontname="monospace", fontsize=10, style=filled];',
    ]
    for execution in graph.history.executions:
        fill, stroke, dashed = CELL_STYLES[cell_kind(execution, graph.replay)]
        label = f"{cell_label(execution)}  {duration(execution.runtime)}"
        style = '"filled,dashed"' if dashed else "filled"
        lines.append(
            f"  {_dot(f'cell {execution.id}')} [shape=box, style={style}, label={_dot(label)}, "
            f'fillcolor="{fill}", color="{stroke}"];'
        )
    for execution in graph.history.executions:
        for snapshot in execution.writes:
            fill, stroke, ink = SNAPSHOT_STYLES[snapshot_state(graph, snapshot)]
            label = str(snapshot)
            if snapshot_state(graph, snapshot) != "old" and snapshot.name in graph.sizes:
                label += "\n" + format_bytes(graph.sizes[snapshot.name])
            lines.append(
                f'  {_dot(str(snapshot))} [shape=box, style="rounded,filled", '
                f'label={_dot(label)}, fillcolor="{fill}", color="{stroke}", fontcolor="{ink}"];'
            )
            lines.append(f"  {_dot(f'cell {execution.id}')} -> {_dot(str(snapshot))};")
    writers = {s for e in graph.history.executions for s in e.writes}
    for execution in graph.history.executions:
        for snapshot in execution.reads:
            if snapshot in writers:
                lines.append(f"  {_dot(str(snapshot))} -> {_dot(f'cell {execution.id}')};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot(text: str) -> str:
    escaped = _NOT_XML.sub("\ufffd", text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


# --- text --------------------------------------------------------------------------------------


def _xml(text: str) -> str:
    """Text safe inside an element or a double-quoted attribute, whatever the checkpoint held."""
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text_width(text: str, size: int = SIZE) -> float:
    """Estimated width in px of ``text`` in the monospace font: wide characters count twice."""
    cells = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return cells * size * 0.6


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
