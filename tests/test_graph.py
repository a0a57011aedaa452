"""Drawing the history graph with its plan: what each cell and snapshot looks like, and where."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nbelastic.driver import Kernel
from nbelastic.graph import (
    CELL_STYLES,
    MOST_WRITES_SHOWN,
    SNAPSHOT_STYLES,
    PlannedHistory,
    from_plan,
    render_dot,
    render_svg,
    write_graph,
)
from nbelastic.history import UNMONITORED_CODE, History
from nbelastic.planner import Group, make_plan

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
DOCS_IMAGE = ROOT / "docs" / "images" / "history-graph.svg"
SVG = "{http://www.w3.org/2000/svg}"


def analysis() -> PlannedHistory:
    """Preexisting data, a slow load, an in-place change, a generator, a big cheap array and a
    change made outside the cells, planned at 100 MB/s."""
    history = History()
    history.record_existing(["raw"])
    history.record("df = load(raw)", 3.0, reads=["raw"], writes=["df"])
    history.record("df['b'] = 1", 0.2, reads=["df"], writes=["df"])
    history.record("gen = iter(df)", 0.01, reads=["df"], writes=["gen"])
    history.record("big = np.zeros((5000, 25000))", 0.04, writes=["big"])
    history.record(UNMONITORED_CODE, 0.0, writes=["tweak"], replayable=False)
    sizes = {"raw": 100, "df": 1_000_000, "big": 1_000_000_000, "tweak": 10, "gen": 0}
    groups = [Group((name,), None if name == "gen" else size) for name, size in sizes.items()]
    plan = make_plan(history, groups, bandwidth=100e6)
    return from_plan(history, plan, sizes, "analysis.ipynb")


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def nodes(root: ET.Element) -> dict[str, ET.Element]:
    """Every drawn cell and snapshot by its ``data-node`` key (``cell 3``, ``df@2``)."""
    return {g.get("data-node"): g for g in root.iter(f"{SVG}g") if g.get("data-node")}


def fill(node: ET.Element) -> str:
    return node.find(f"{SVG}rect").get("fill")


def texts(node: ET.Element) -> list[str]:
    return [t.text for t in node.iter(f"{SVG}text")]


def edges(root: ET.Element, kind: str) -> set[tuple[str, str]]:
    return {
        (p.get("data-from"), p.get("data-to"))
        for p in root.iter(f"{SVG}path")
        if p.get("class") == f"edge {kind}"
    }


def structure(svg: str) -> list[tuple[str, ...]]:
    """What a picture shows, without positions or measured numbers: each node's class and colour,
    and each edge."""
    root = parse(svg)
    drawn = [(key, g.get("class"), fill(g)) for key, g in sorted(nodes(root).items())]
    linked = [(kind, *edge) for kind in ("write", "read") for edge in sorted(edges(root, kind))]
    return drawn + linked


def test_the_plan_is_the_one_the_pictures_below_rely_on():
    graph = analysis()
    assert dict(graph.fates) == {
        "big": "replay",
        "df": "store",
        "gen": "replay",
        "raw": "store",
        "tweak": "store",
    }
    assert graph.replay == {3, 4}


def test_each_stored_variable_is_drawn_in_the_stored_colour():
    drawn = nodes(parse(render_svg(analysis())))
    for key in ("raw@1", "df@2", "tweak@1"):
        assert drawn[key].get("class") == "snapshot stored"
        assert fill(drawn[key]) == SNAPSHOT_STYLES["stored"][0]


def test_each_replayed_variable_is_drawn_in_the_replayed_colour():
    drawn = nodes(parse(render_svg(analysis())))
    for key in ("gen@1", "big@1"):
        assert drawn[key].get("class") == "snapshot replayed"
        assert fill(drawn[key]) == SNAPSHOT_STYLES["replayed"][0]


def test_older_versions_are_grey_whatever_their_name_became():
    drawn = nodes(parse(render_svg(analysis())))
    assert drawn["df@1"].get("class") == "snapshot old"
    assert fill(drawn["df@1"]) == SNAPSHOT_STYLES["old"][0]


def test_each_cell_to_replay_is_drawn_in_the_replay_colour_and_only_those():
    drawn = nodes(parse(render_svg(analysis())))
    cells = {key: g for key, g in drawn.items() if key.startswith("cell ")}
    replayed = {key for key, g in cells.items() if fill(g) == CELL_STYLES["replay"][0]}
    assert replayed == {"cell 3", "cell 4"}
    assert cells["cell 1"].get("class") == "cell cell"


def test_preexisting_state_and_unmonitored_changes_have_their_own_dashed_boxes():
    drawn = nodes(parse(render_svg(analysis())))
    for key, kind in (("cell 0", "preexisting"), ("cell 5", "unmonitored")):
        assert drawn[key].get("class") == f"cell {kind}"
        rect = drawn[key].find(f"{SVG}rect")
        assert rect.get("fill") == CELL_STYLES[kind][0]
        assert rect.get("stroke-dasharray")


def test_labels_show_code_runtimes_and_the_sizes_of_live_variables():
    drawn = nodes(parse(render_svg(analysis())))
    assert texts(drawn["cell 1"]) == ["[1] df = load(raw)", "3.00 s"]
    assert texts(drawn["cell 3"]) == ["[3] gen = iter(df)", "10 ms"]
    assert texts(drawn["df@2"]) == ["df@2", "1.0 MB"]
    assert texts(drawn["big@1"]) == ["big@1", "1.0 GB"]
    assert texts(drawn["df@1"]) == ["df@1"]


def test_the_header_sums_up_the_plan():
    root = parse(render_svg(analysis()))
    header = [t.text for t in root.findall(f"{SVG}text")][:2]
    assert header == [
        "analysis.ipynb",
        "optimal plan: load 3 variables (1.0 MB), replay 2 cells (50 ms); restore about 0.06 s",
    ]


def test_the_legend_names_every_colour_used():
    root = parse(render_svg(analysis()))
    legend = {g.get("class") for g in root.iter(f"{SVG}g") if "legend-item" in g.get("class", "")}
    for state in ("stored", "replayed", "lost", "old"):
        assert f"legend-item snapshot {state}" in legend
    for kind in ("replay", "cell", "unmonitored", "preexisting"):
        assert f"legend-item cell {kind}" in legend


def test_edges_go_from_writer_to_snapshot_and_from_snapshot_to_each_reader():
    root = parse(render_svg(analysis()))
    assert edges(root, "write") == {
        ("cell 0", "raw@1"),
        ("cell 1", "df@1"),
        ("cell 2", "df@2"),
        ("cell 3", "gen@1"),
        ("cell 4", "big@1"),
        ("cell 5", "tweak@1"),
    }
    assert edges(root, "read") == {
        ("raw@1", "cell 1"),
        ("df@1", "cell 2"),
        ("df@2", "cell 3"),
    }


def test_a_deleted_variable_ends_at_the_cell_that_deleted_it():
    history = History()
    history.record("tmp = 1", 0.0, writes=["tmp"])
    history.record("del tmp", 0.0, deletes=["tmp"])
    graph = PlannedHistory(history, {}, {}, frozenset())
    root = parse(render_svg(graph))
    assert edges(root, "delete") == {("tmp@1", "cell 2")}
    assert nodes(root)["tmp@1"].get("class") == "snapshot old"


def test_a_variable_lost_by_the_plan_is_drawn_in_the_lost_colour():
    history = History()
    history.record_existing(["lock"])
    plan = make_plan(history, [Group(("lock",), None, "a lock")], bandwidth=1e6)
    drawn = nodes(parse(render_svg(from_plan(history, plan, {"lock": 0}, "t"))))
    assert fill(drawn["lock@1"]) == SNAPSHOT_STYLES["lost"][0]


def test_the_same_graph_always_gives_the_same_bytes():
    graph = analysis()
    again = PlannedHistory(
        History.from_json(graph.history.to_json()),
        dict(reversed(list(graph.fates.items()))),
        dict(graph.sizes),
        frozenset(sorted(graph.replay, reverse=True)),
        graph.title,
        graph.strategy,
        graph.restore_seconds,
        dict(graph.reasons),
    )
    assert render_svg(graph) == render_svg(again)
    assert render_dot(graph) == render_dot(again)


def test_any_text_in_a_checkpoint_still_gives_valid_xml():
    history = History()
    history.record('s = "<b>&\x00\x1b\ud800"\n', 0.0, writes=["<odd name>"])
    graph = PlannedHistory(history, {"<odd name>": "store"}, {"<odd name>": 3}, frozenset(), "&")
    drawn = nodes(parse(render_svg(graph)))
    assert texts(drawn["<odd name>@1"]) == ["<odd name>@1", "3 B"]
    assert texts(drawn["cell 1"])[0] == '[1] s = "<b>&\ufffd\ufffd\ufffd"'


def test_a_hundred_cell_chain_stays_a_few_lanes_wide():
    history = History()
    history.record("x0 = 0.0", 0.001, writes=["x0"])
    for i in range(1, 130):
        history.record(f"x{i} = x{i - 1} + {i}", 0.001, reads=[f"x{i - 1}"], writes=[f"x{i}"])
    names = [f"x{i}" for i in range(130)]
    plan = make_plan(history, [Group((n,), 9) for n in names], bandwidth=1e8)
    root = parse(render_svg(from_plan(history, plan, dict.fromkeys(names, 9), "chain")))
    lanes = {
        g.find(f"{SVG}text").get("x")  # labels are centred on their lane
        for g in root.iter(f"{SVG}g")
        if g.get("class", "").startswith("snapshot")
    }
    assert len(lanes) <= 3
    assert int(root.get("width")) < 1000


def test_a_cell_writing_many_names_shows_the_ones_that_matter_and_one_node_for_the_rest():
    history = History()
    names = [f"name{i:02}" for i in range(40)]
    history.record("from lots import *", 0.1, writes=names)
    history.record("y = name07 + name33", 0.1, reads=["name07", "name33"], writes=["y"])
    fates = {name: "store" for name in [*names, "y"]}
    fates["name33"] = "replay"
    graph = PlannedHistory(history, fates, dict.fromkeys(fates, 8), frozenset({1}))
    root = parse(render_svg(graph))
    drawn = nodes(root)
    row = [key for key in drawn if not key.startswith("cell ") and key != "y@1"]
    assert len(row) == MOST_WRITES_SHOWN
    assert {"name07@1", "name33@1", "+1"} <= set(row)
    assert texts(drawn["+1"]) == [
        f"+{41 - MOST_WRITES_SHOWN} more",
        f"{41 - MOST_WRITES_SHOWN} stored",
    ]
    assert "name39@1" in drawn["+1"].find(f"{SVG}title").text


def test_dot_output_has_every_cell_snapshot_and_edge():
    dot = render_dot(analysis())
    assert dot.startswith("digraph history {") and dot.endswith("}\n")
    assert '"cell 3" [shape=box, style=filled, label="[3] gen = iter(df)  10 ms"' in dot
    stored = SNAPSHOT_STYLES["stored"][0]
    assert (
        f'"df@2" [shape=box, style="rounded,filled", label="df@2\\n1.0 MB", fillcolor="{stored}"'
        in dot
    )
    assert '"cell 2" -> "df@2";' in dot and '"df@1" -> "cell 2";' in dot


def test_write_graph_picks_the_format_from_the_suffix(tmp_path):
    graph = analysis()
    write_graph(graph, tmp_path / "g.svg")
    write_graph(graph, tmp_path / "g.dot")
    assert (tmp_path / "g.svg").read_text() == render_svg(graph)
    assert (tmp_path / "g.dot").read_text() == render_dot(graph)


# --- from a saved checkpoint, and from a kernel ------------------------------------------------


def nbelastic(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbelastic", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def saved_demo(tmp_path_factory) -> Path:
    """fixtures/demo.ipynb run and saved at a fixed bandwidth, so its plan does not depend on
    how fast this machine's disk is."""
    notebook = tmp_path_factory.mktemp("graph") / "demo.ipynb"
    shutil.copy(FIXTURES / "demo.ipynb", notebook)
    result = nbelastic("run", str(notebook), "--bandwidth", "100MB/s", "-q")
    assert result.returncode == 0, result.stderr
    return notebook


@pytest.mark.kernel
def test_status_draws_the_saved_checkpoint_with_its_plan(saved_demo):
    result = nbelastic("status", str(saved_demo), "--graph", "graph.svg", cwd=saved_demo.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("history graph drawn to graph.svg\n")
    drawn = nodes(parse((saved_demo.parent / "graph.svg").read_text()))
    assert drawn["cell 5"].get("class") == "cell replay"
    assert texts(drawn["cell 5"])[0].startswith("[5] batches = (df.iloc")
    assert drawn["df@2"].get("class") == "snapshot stored"
    assert texts(drawn["df@2"]) == ["df@2", "6.4 MB"]
    assert drawn["big_zeros@1"].get("class") == "snapshot replayed"


@pytest.mark.kernel
def test_status_graph_dash_prints_the_svg_alone(saved_demo):
    result = nbelastic("status", str(saved_demo), "--graph", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<svg ")
    assert "cell 5" in nodes(parse(result.stdout))


@pytest.mark.kernel
def test_status_graph_to_a_missing_directory_is_one_clear_line(saved_demo, tmp_path):
    result = nbelastic("status", str(saved_demo), "--graph", str(tmp_path / "no" / "g.svg"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"nbelastic: error: cannot write the graph to {tmp_path / 'no' / 'g.svg'} "
        "(No such file or directory): check the path"
    ]


def test_status_graph_dash_with_json_is_one_clear_line(tmp_path):
    result = nbelastic("status", str(tmp_path / "any.ipynb"), "--json", "--graph", "-")
    assert result.returncode == 2
    assert result.stderr == (
        "nbelastic: error: --json and --graph - both print to stdout: give --graph a file\n"
    )


@pytest.mark.kernel
def test_the_docs_image_is_what_the_current_code_draws_from_the_demo(saved_demo):
    """NBELASTIC_WRITE_DOCS=1 redraws docs/images/history-graph.svg; otherwise the committed
    picture must show the same nodes, colours and edges (runtimes may differ)."""
    result = nbelastic("status", str(saved_demo), "--graph", "-")
    assert result.returncode == 0, result.stderr
    drawn = result.stdout
    if os.environ.get("NBELASTIC_WRITE_DOCS") == "1":
        DOCS_IMAGE.parent.mkdir(exist_ok=True)
        DOCS_IMAGE.write_text(drawn, encoding="utf-8")
    assert structure(DOCS_IMAGE.read_text(encoding="utf-8")) == structure(drawn), (
        "the docs image is stale: regenerate it with "
        "NBELASTIC_WRITE_DOCS=1 pytest tests/test_graph.py -k docs_image"
    )


@pytest.mark.kernel
def test_the_status_magic_draws_the_plan_it_would_make(tmp_path):
    with Kernel(cwd=tmp_path) as kernel:
        for code in ("%load_ext nbelastic", "nums = list(range(10))", "gen = (n for n in nums)"):
            assert kernel.execute(code).error is None
        result = kernel.execute("%nbelastic status --bandwidth 100MB/s --graph now.svg")
    assert result.error is None, result.error
    assert result.stdout.splitlines()[-1] == "history graph drawn to now.svg"
    drawn = nodes(parse((tmp_path / "now.svg").read_text()))
    assert drawn["nums@1"].get("class") == "snapshot stored"
    assert drawn["gen@1"].get("class") == "snapshot replayed"
    assert drawn["cell 2"].get("class") == "cell replay"
