"""The replication plan: which groups a restore loads, which cells it replays, and why."""

import doctest
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nbelastic.planner
from nbelastic.history import History
from nbelastic.planner import STRATEGIES, Group, format_bytes, make_plan, plan_cost

GB = 10**9


def one_array_history(runtime: float = 3.0) -> History:
    """``arr = np.load(...)``: one cell that builds one big array."""
    history = History()
    history.record("arr = np.load('big.npy')", runtime, writes=["arr"])
    return history


def shared_ancestor_history() -> History:
    """Two results derived from one expensive load whose variable is then deleted."""
    history = History()
    history.record("raw = load()", 10.0, writes=["raw"])
    history.record("a = clean(raw)", 0.1, reads=["raw"], writes=["a"])
    history.record("b = summarise(raw)", 0.1, reads=["raw"], writes=["b"])
    history.record("del raw", 0.0, deletes=["raw"])
    return history


def names(groups: tuple[Group, ...]) -> list[str]:
    return [name for group in groups for name in group.names]


def test_big_cheap_to_rebuild_array_is_replayed_under_low_bandwidth():
    plan = make_plan(one_array_history(3.0), [Group(("arr",), size=GB)], bandwidth=10e6)

    assert names(plan.recomputed) == ["arr"]
    assert plan.replay == (1,)
    assert plan.restore_seconds == pytest.approx(3.0)


def test_big_cheap_to_rebuild_array_is_stored_under_high_bandwidth():
    plan = make_plan(one_array_history(3.0), [Group(("arr",), size=GB)], bandwidth=10e9)

    assert names(plan.stored) == ["arr"]
    assert plan.replay == ()
    assert plan.restore_seconds == pytest.approx(0.1)


def test_unstorable_group_is_replayed_however_slow_the_replay():
    group = Group(("gen",), size=None, why_unstorable="generator cannot be serialized")
    history = History()
    history.record("gen = slow_stream()", 1e6, writes=["gen"])

    plan = make_plan(history, [group], bandwidth=1e12)

    assert plan.recomputed == (group,)
    assert plan.reasons["gen"].startswith("replayed: generator cannot be serialized")


def test_preexisting_group_is_stored_however_big():
    history = History()
    history.record_existing(["df"])
    history.record("n = 1", 0.0, writes=["n"])

    plan = make_plan(history, [Group(("df",), size=100 * GB), Group(("n",), 28)], bandwidth=1.0)

    assert names(plan.stored) == ["df"]
    assert plan.reasons["df"].startswith(
        "stored: created before nbelastic was loaded, cannot be replayed"
    )


def test_group_the_monitor_marks_unreplayable_is_stored():
    history = History()
    history.record("conn = connect()", 0.0, writes=["conn"])
    group = Group(("conn",), size=GB, replayable=False, why_unreplayable="reads a socket")

    plan = make_plan(history, [group], bandwidth=1.0)

    assert plan.stored == (group,)
    assert plan.reasons["conn"].startswith("stored: reads a socket")


def test_group_built_by_an_unreplayable_cell_is_stored():
    history = History()
    history.record("x = 1", 0.0, writes=["x"])
    history.record("name = input()", 0.0, writes=["name"], replayable=False)

    plan = make_plan(history, [Group(("name",), size=GB)], bandwidth=1.0)

    assert names(plan.stored) == ["name"]
    assert plan.reasons["name"].startswith("stored: cell 2 cannot be replayed")


def test_group_neither_storable_nor_rebuildable_is_lost_with_both_reasons():
    history = History()
    history.record_existing(["gen"])
    group = Group(("gen",), size=None, why_unstorable="generator cannot be serialized")

    plan = make_plan(history, [group], bandwidth=1.0)

    assert plan.lost == (group,)
    assert plan.stored == plan.recomputed == plan.replay == ()
    assert plan.restore_seconds == 0.0
    assert plan.reasons["gen"] == (
        "lost: generator cannot be serialized; "
        "created before nbelastic was loaded, cannot be replayed"
    )


def test_unstorable_group_whose_replay_reads_a_lost_variable_is_lost_too():
    history = History()
    history.record_existing(["gen"])
    history.record("it = iter(gen)", 0.0, reads=["gen"], writes=["it"])
    gen, it = Group(("gen",), size=None), Group(("it",), size=None)

    plan = make_plan(history, [gen, it], bandwidth=1.0)

    assert plan.lost == (gen, it)
    assert (
        plan.reasons["it"]
        == "lost: cannot be serialized; replay reads gen, which cannot be restored"
    )


def test_storable_group_whose_replay_reads_a_lost_variable_is_stored():
    history = History()
    history.record_existing(["gen"])
    history.record("n = next(gen)", 0.0, reads=["gen"], writes=["n"])

    plan = make_plan(history, [Group(("gen",), None), Group(("n",), size=GB)], bandwidth=1.0)

    assert names(plan.lost) == ["gen"]
    assert names(plan.stored) == ["n"]


def test_group_whose_replay_reads_an_ungrouped_variable_is_stored():
    history = History()
    history.record("import numpy as np", 0.5, writes=["np"])
    history.record("arr = np.zeros(10**9)", 1.0, reads=["np"], writes=["arr"])

    plan = make_plan(history, [Group(("arr",), size=10 * GB)], bandwidth=1.0)

    assert names(plan.stored) == ["arr"]
    assert plan.reasons["arr"].startswith("stored: replay reads np, which cannot be restored")


def test_shared_ancestor_cell_is_paid_once():
    # Alone, a or b replays in 10.1 s against 6 s to load; together they replay in 10.2 s.
    groups = [Group(("a",), size=600), Group(("b",), size=600)]

    plan = make_plan(shared_ancestor_history(), groups, bandwidth=100.0)

    assert names(plan.recomputed) == ["a", "b"]
    assert plan.replay == (1, 2, 3)
    assert plan.replay_seconds == pytest.approx(10.2)
    assert plan.reasons["a"] == (
        "replayed: shares cell 1 with b, so rebuilding adds 0.10 s (cell 2), "
        "less than loading 600 B (6.00 s)"
    )


def test_shared_ancestor_is_not_worth_replaying_for_one_group():
    groups = [Group(("a",), size=600), Group(("b",), size=600)]

    plan = make_plan(shared_ancestor_history(), groups[:1], bandwidth=100.0)

    assert names(plan.stored) == ["a"]
    assert (
        plan.reasons["a"]
        == "stored: 600 B loads in 6.00 s; rebuilding would add 10.10 s (cells 1, 2)"
    )


def test_decimal_runtimes_and_sizes_still_give_the_cheapest_plan():
    # With float capacities networkx stores both groups here (1.13 s) instead of replaying g.
    history = History()
    for pad in range(3):
        history.record(f"p{pad} = 0", 0.0, writes=[f"p{pad}"])
    history.record("u = f()", 0.5, writes=["u"])
    history.record("v = f()", 0.41, writes=["v"])
    history.record("g = h(u, v)", 0.0, reads=["u", "v"], writes=["g"])
    history.record("k = h(v)", 0.59, reads=["v"], writes=["k"])
    history.record("del u, v", 0.0, deletes=["u", "v"])

    plan = make_plan(history, [Group(("g",), 98), Group(("k",), 15)], bandwidth=100.0)

    assert names(plan.recomputed) == ["g"]
    assert plan.restore_seconds == pytest.approx(1.06)


def test_store_all_stores_every_storable_group():
    groups = [Group(("a",), size=1), Group(("b",), size=None)]

    plan = make_plan(shared_ancestor_history(), groups, bandwidth=1.0, strategy="store-all")

    assert names(plan.stored) == ["a"]
    assert names(plan.recomputed) == ["b"]
    assert plan.replay == (1, 3)
    assert plan.reasons["a"] == "stored: strategy store-all; 1 B loads in 1.00 s"


def test_recompute_all_replays_every_rebuildable_group():
    history = shared_ancestor_history()
    history.record_existing(["c"])
    groups = [Group(("a",), size=1), Group(("b",), size=1), Group(("c",), size=1)]

    plan = make_plan(history, groups, bandwidth=1.0, strategy="recompute-all")

    assert names(plan.recomputed) == ["a", "b"]
    assert names(plan.stored) == ["c"]
    assert (
        plan.reasons["a"]
        == "replayed: strategy recompute-all; rebuilding takes 10.10 s (cells 1, 2)"
    )


def test_function_reading_a_reassigned_global_replays_the_old_assignment():
    history = History()
    history.record("x = 1", 0.1, writes=["x"])
    history.record("def f(): return x * 10", 0.01, writes=["f"])
    history.record("z = f()", 2.0, reads=["f", "x"], writes=["z"])
    history.record("x = 5", 0.1, writes=["x"])
    groups = [Group(("x",), size=28), Group(("f",), size=100), Group(("z",), size=GB)]

    plan = make_plan(history, groups, bandwidth=1e6)

    assert names(plan.recomputed) == ["z"]
    assert plan.replay == (1, 3)
    assert names(plan.stored) == ["f", "x"]


def test_same_inputs_give_the_same_plan_whatever_the_group_order():
    groups = [Group(("b",), size=600), Group(("a",), size=600)]
    history = shared_ancestor_history()

    plans = [make_plan(history, order, bandwidth=100.0) for order in (groups, groups[::-1])]

    assert plans[0] == plans[1] == make_plan(history, groups, bandwidth=100.0)
    assert list(plans[0].reasons) == ["a", "b"]


def test_zero_runtimes_and_zero_sizes_are_planned():
    history = History()
    history.record("a = []", 0.0, writes=["a"])
    history.record("b = []", 0.0, writes=["b"])
    history.record("c = 1", 1.0, writes=["c"])
    groups = [Group(("a",), size=0), Group(("b",), size=10), Group(("c",), size=0)]

    plan = make_plan(history, groups, bandwidth=1.0)

    assert plan.restore_seconds == 0.0
    assert "b" in names(plan.recomputed)
    assert "c" in names(plan.stored)


def test_unknown_strategy_is_rejected_naming_the_valid_ones():
    with pytest.raises(ValueError, match="optimal, store-all, recompute-all"):
        make_plan(one_array_history(), [], bandwidth=1.0, strategy="cheapest")


@pytest.mark.parametrize("bandwidth", [0.0, -1.0, math.inf, math.nan])
def test_bandwidth_must_be_positive_and_finite(bandwidth):
    with pytest.raises(ValueError, match="bandwidth"):
        make_plan(one_array_history(), [], bandwidth=bandwidth)


def test_names_that_are_not_active_are_rejected():
    with pytest.raises(ValueError, match="not active in the history: nope"):
        make_plan(one_array_history(), [Group(("nope",), size=1)], bandwidth=1.0)


def test_name_in_two_groups_is_rejected():
    groups = [Group(("arr",), size=1), Group(("arr",), size=2)]
    with pytest.raises(ValueError, match="in more than one group: arr"):
        make_plan(one_array_history(), groups, bandwidth=1.0)


def test_group_names_are_sorted_and_not_empty():
    assert Group(("b", "a"), size=1).names == ("a", "b")
    with pytest.raises(ValueError, match="at least one name"):
        Group((), size=1)


def test_plan_cost_pays_shared_cells_once():
    a, b = Group(("a",), size=600), Group(("b",), size=600)

    assert plan_cost(shared_ancestor_history(), [], [a, b], 100.0) == pytest.approx(10.2)
    assert plan_cost(shared_ancestor_history(), [a], [b], 100.0) == pytest.approx(16.1)


def test_plan_cost_of_an_impossible_assignment_is_infinite():
    history = History()
    history.record_existing(["df"])

    assert plan_cost(history, [Group(("df",), size=None)], [], 1.0) == math.inf
    assert plan_cost(history, [], [Group(("df",), size=1)], 1.0) == math.inf


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1234567, "1.2 MB"), (12e9, "12.0 GB")],
)
def test_format_bytes_uses_decimal_units(size, text):
    assert format_bytes(size) == text


def test_docstring_examples_hold():
    result = doctest.testmod(nbelastic.planner)

    assert result.attempted > 0
    assert result.failed == 0


NAMES = ("a", "b", "c", "d", "e", "f")
RUNTIMES = st.sampled_from([0.0, 0.5, 1.0, 2.0]) | st.floats(0.0, 10.0)
SIZES = st.sampled_from([None, 0, 100, 1000]) | st.integers(0, 10_000)
BANDWIDTHS = st.sampled_from([100.0, 1000.0]) | st.floats(100.0, 1e4)
MOSTLY_TRUE = st.sampled_from([True] * 7 + [False])


@st.composite
def scenarios(draw) -> tuple[History, list[Group], float]:
    """A small random history, a random grouping of its live names, and a bandwidth."""
    some_names = st.lists(st.sampled_from(NAMES), unique=True, max_size=3)
    history = History()
    existing = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=2))
    if existing:
        history.record_existing(existing)
    for cell in range(draw(st.integers(1, 7))):
        history.record(
            f"cell {cell}",
            draw(RUNTIMES),
            reads=draw(some_names),
            writes=draw(some_names),
            deletes=draw(st.lists(st.sampled_from(NAMES), max_size=1)),
            replayable=draw(MOSTLY_TRUE),
        )
    live = sorted(history.active)
    labels = draw(st.lists(st.integers(0, 5), min_size=len(live), max_size=len(live)))
    groups = [
        Group(
            tuple(name for name, own in zip(live, labels, strict=True) if own == label),
            size=draw(SIZES),
            replayable=draw(MOSTLY_TRUE),
        )
        for label in sorted(set(labels))
    ]
    return history, draw(st.permutations(groups)), draw(BANDWIDTHS)


def cheapest_assignment(history: History, groups: list[Group], bandwidth: float) -> float:
    """Try every store/recompute assignment; impossible ones cost infinity."""
    costs = []
    for choice in itertools.product((True, False), repeat=len(groups)):
        stored = [group for group, store in zip(groups, choice, strict=True) if store]
        recomputed = [group for group, store in zip(groups, choice, strict=True) if not store]
        costs.append(plan_cost(history, stored, recomputed, bandwidth))
    return min(costs)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_optimal_plan_costs_no_more_than_any_valid_assignment(scenario):
    history, groups, bandwidth = scenario
    plan = make_plan(history, groups, bandwidth)
    kept = [group for group in groups if group not in plan.lost]

    best = cheapest_assignment(history, kept, bandwidth)

    assert math.isfinite(best)
    assert math.isclose(plan.restore_seconds, best, rel_tol=1e-9, abs_tol=1e-12)
    assert plan.restore_seconds == plan_cost(history, plan.stored, plan.recomputed, bandwidth)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.sampled_from(STRATEGIES))
def test_every_strategy_gives_a_consistent_plan(scenario, strategy):
    history, groups, bandwidth = scenario
    plan = make_plan(history, groups, bandwidth, strategy)

    assert sorted(plan.stored + plan.recomputed + plan.lost, key=lambda g: g.names) == sorted(
        groups, key=lambda g: g.names
    )
    cells = set().union(*(history.recompute_set(g.names) for g in plan.recomputed))
    assert plan.replay == tuple(sorted(cells))
    assert plan.restore_seconds == plan_cost(history, plan.stored, plan.recomputed, bandwidth)
    for group in plan.lost:
        assert group.size is None
        assert plan_cost(history, plan.stored, plan.recomputed + (group,), bandwidth) == math.inf
    verdicts = {"stored": plan.stored, "replayed": plan.recomputed, "lost": plan.lost}
    for verdict, placed in verdicts.items():
        for name in names(placed):
            assert plan.reasons[name].startswith(f"{verdict}: ")
    assert sorted(plan.reasons) == sorted(name for group in groups for name in group.names)
    optimal = make_plan(history, groups, bandwidth)
    assert optimal.restore_seconds <= plan.restore_seconds * (1 + 1e-9) + 1e-12


# --- imports ----------------------------------------------------------------------------------


def test_the_estimate_counts_importing_the_packages_stored_groups_need_once():
    history = History()
    history.record_existing(["a", "b"])
    groups = [Group(("a",), 100, packages=("pandas",)), Group(("b",), 100, packages=("pandas",))]
    plan = make_plan(history, groups, bandwidth=100.0, imports={"pandas": 1.5})
    assert plan.import_seconds == 1.5 and plan.restore_seconds == 3.5


def test_a_slow_import_makes_replaying_cheaper_than_loading():
    history = History()
    history.record("import pandas as pd; df = pd.DataFrame()", 0.2, writes=["df"])
    groups = [Group(("df",), 10, packages=("pandas",))]
    plan = make_plan(history, groups, bandwidth=1e6, imports={"pandas": 2.0})
    assert plan.names("replay") == ["df"] and plan.restore_seconds == 0.2
    assert make_plan(history, groups, bandwidth=1e6).names("store") == ["df"]


def test_an_import_shared_by_several_groups_is_paid_once_in_the_cut():
    history = History()
    history.record("a = f()", 0.9, writes=["a"])
    history.record("b = g()", 0.9, writes=["b"])
    groups = [Group((n,), 10, packages=("sklearn",)) for n in "ab"]
    plan = make_plan(history, groups, bandwidth=1e6, imports={"sklearn": 1.0})
    assert plan.names("store") == ["a", "b"] and plan.import_seconds == 1.0  # not 2.0 > 1.8
    plan = make_plan(history, groups, bandwidth=1e6, imports={"sklearn": 2.0})
    assert plan.names("replay") == ["a", "b"] and plan.restore_seconds == 1.8


def test_the_optimal_plan_never_costs_more_than_replaying_every_group():
    history = History()
    for i in range(5):
        history.record(f"v{i} = {i}", 0.01, writes=[f"v{i}"])
    groups = [Group((f"v{i}",), 10**6, packages=("numpy",)) for i in range(5)]
    plan = make_plan(history, groups, bandwidth=1e6, imports={"numpy": 3.0})
    replay_all = make_plan(history, groups, bandwidth=1e6, strategy="recompute-all")
    assert plan.restore_seconds <= replay_all.restore_seconds
