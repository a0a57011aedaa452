"""The replication plan: which variable groups to store and which cells to replay.

Restoring a notebook costs the time to load the stored bytes plus the time to replay the chosen
cell executions. Picking the cheapest mix is an s-t minimum cut (ElasticNotebook, VLDB 2024):
groups left on the source side are replayed, groups on the sink side are stored. Replaying a
cell pays for every group it rebuilds, so two groups sharing an expensive ancestor pay it once.
``store-all`` and ``recompute-all`` are the baselines to compare against, or to force a behaviour.

Example
-------
>>> from nbelastic.history import History
>>> h = History()
>>> _ = h.record("big = load()", 3.0, writes=["big"])
>>> _ = h.record("small = big.mean()", 0.5, reads=["big"], writes=["small"])
>>> groups = [Group(("big",), size=10**9), Group(("small",), size=8)]
>>> plan = make_plan(h, groups, bandwidth=100e6)  # big: 10 s to load, 3 s to replay
>>> [g.names for g in plan.recomputed], [g.names for g in plan.stored], plan.replay
([('big',)], [('small',)], (1,))
>>> plan.reasons["big"]
'replayed: rebuilding takes 3.00 s (cell 1), less than loading 1.0 GB (10.00 s)'
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING

from nbelastic.history import PREEXISTING_CODE, UNMONITORED_CODE, Execution, History

if TYPE_CHECKING:
    import networkx as nx

STRATEGIES = ("optimal", "store-all", "recompute-all")

_SOURCE = "source"
_SINK = "sink"


@dataclass(frozen=True)
class Group:
    """Linked variables that are stored or rebuilt together.

    ``size`` is the estimated number of bytes when stored, or None when the group cannot be
    stored at all. ``replayable`` is False when the monitor knows replay cannot rebuild it.
    ``packages`` are the top-level packages loading it imports (pandas for a DataFrame).
    Names are kept sorted so that equal groups compare equal whatever order they came in.

    >>> Group(["b", "a"], size=10).names
    ('a', 'b')
    """

    names: tuple[str, ...]
    size: int | None
    why_unstorable: str = ""
    replayable: bool = True
    why_unreplayable: str = ""
    packages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a group needs at least one name")
        if self.size is not None and self.size < 0:
            raise ValueError(f"group {', '.join(self.names)} has a negative size: {self.size}")
        object.__setattr__(self, "names", tuple(sorted(self.names)))


@dataclass(frozen=True)
class Plan:
    """What to store, what to replay, and what restoring will cost.

    >>> plan = Plan("store-all", 1e6, (), (), (), (), 0.5, 2.0, {})
    >>> plan.restore_seconds
    2.5
    """

    strategy: str
    bandwidth: float
    stored: tuple[Group, ...]
    recomputed: tuple[Group, ...]
    lost: tuple[Group, ...]
    replay: tuple[int, ...]
    store_seconds: float
    replay_seconds: float
    reasons: Mapping[str, str]
    import_seconds: float = 0.0  # importing the packages the stored groups need

    @property
    def restore_seconds(self) -> float:
        """Importing what the stored groups need, loading them, replaying the executions."""
        return self.import_seconds + self.store_seconds + self.replay_seconds

    @property
    def actions(self) -> dict[str, str]:
        """Each variable's fate: ``"store"``, ``"replay"`` or ``"lost"``, sorted by name.

        >>> Plan("store-all", 1.0, (Group(("a",), 1),), (), (), (), 1.0, 0.0, {}).actions
        {'a': 'store'}
        """
        fates = {}
        for action, groups in (
            ("store", self.stored),
            ("replay", self.recomputed),
            ("lost", self.lost),
        ):
            for group in groups:
                for name in group.names:
                    fates[name] = action
        return dict(sorted(fates.items()))

    def names(self, action: str) -> list[str]:
        """Sorted names whose fate is ``action``.

        >>> Plan("store-all", 1.0, (Group(("b", "a"), 1),), (), (), (), 1.0, 0.0, {}).names("store")
        ['a', 'b']
        """
        return [name for name, fate in self.actions.items() if fate == action]


@dataclass(frozen=True)
class _Option:
    """One plannable group with what the planner needs to weigh it."""

    group: Group
    cells: frozenset[int]  # the executions that rebuild it
    why_not_rebuildable: str  # empty when replay can rebuild it

    @property
    def storable(self) -> bool:
        return self.group.size is not None

    @property
    def rebuildable(self) -> bool:
        return not self.why_not_rebuildable


def format_bytes(size: float) -> str:
    """A byte count in decimal units with one decimal, as people read sizes.

    >>> format_bytes(999), format_bytes(1234567), format_bytes(1.2e9), format_bytes(999_960)
    ('999 B', '1.2 MB', '1.2 GB', '1.0 MB')
    """
    if size < 1000:
        return f"{size:.0f} B"
    if size >= 1e18:  # no store holds that much: a damaged or crafted count, said as such
        return "over 1000 PB"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if round(size, 1) < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} PB"


def plan_cost(
    history: History,
    stored_groups: Iterable[Group],
    recomputed_groups: Iterable[Group],
    bandwidth: float,
) -> float:
    """Seconds to restore by loading ``stored_groups`` and replaying ``recomputed_groups``.

    The same cost model as ``make_plan``: each stored group costs size / bandwidth, and the
    union of the recomputed groups' executions is replayed once. An impossible assignment (an
    unstorable group stored, an unrebuildable group recomputed) costs infinity, so a brute
    force can try every assignment and keep the finite ones.

    >>> h = History()
    >>> _ = h.record("a = f()", 4.0, writes=["a"])
    >>> _ = h.record("b = a + 1", 1.0, reads=["a"], writes=["b"])
    >>> a, b = Group(("a",), size=100), Group(("b",), size=None)
    >>> plan_cost(h, [a], [b], bandwidth=100.0)   # load a in 1 s, replay cell 2 in 1 s
    2.0
    >>> plan_cost(h, [b], [a], bandwidth=100.0)
    inf
    """
    _check_bandwidth(bandwidth)
    stored, recomputed = list(stored_groups), list(recomputed_groups)
    available = _names_of(stored + recomputed)
    by_id = _executions_by_id(history)
    cells: set[int] = set()
    replays = history.recompute_sets(group.names for group in recomputed)
    for group, group_cells in zip(recomputed, replays, strict=True):
        if _why_not_rebuildable(history, by_id, group, frozenset(group_cells), available):
            return math.inf
        cells |= group_cells
    return _store_seconds(stored, bandwidth) + _replay_seconds(cells, by_id)


def make_plan(
    history: History,
    groups: Sequence[Group],
    bandwidth: float,
    strategy: str = "optimal",
    imports: Mapping[str, float] | None = None,
) -> Plan:
    """Decide, for every group, whether a restore loads it, replays it, or cannot bring it back.

    ``groups`` must partition (part of) the history's active names; ``bandwidth`` is the
    bytes per second at which stored values load. A live name left out of every group is not
    restored, so a group whose replay reads it cannot be rebuilt. ``imports`` are the seconds
    importing each package took (``Group.packages``): a restore that loads a group imports its
    packages first, once for all groups. The same inputs always give the same plan, whatever
    the order of ``groups``; the optimal plan never costs more than replaying every group.

    >>> h = History()
    >>> _ = h.record_existing(["df"])
    >>> _ = h.record("gen = (x for x in df)", 0.0, reads=["df"], writes=["gen"])
    >>> groups = [Group(("df",), size=10**6), Group(("gen",), None, "generator")]
    >>> plan = make_plan(h, groups, bandwidth=1e9, strategy="recompute-all")
    >>> plan.replay
    (1,)
    >>> plan.reasons["df"]
    'stored: created before nbelastic was loaded, cannot be replayed; 1.0 MB loads in 0.00 s'
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    _check_bandwidth(bandwidth)
    _check_groups(history, groups)
    by_id = _executions_by_id(history)
    imports = dict(imports or {})
    options, lost = _weigh(history, by_id, groups)
    chosen = _DECIDERS[strategy](options, bandwidth, by_id, imports)
    plan = _plan(strategy, bandwidth, by_id, options, lost, chosen, imports)
    if strategy == "optimal":  # the cut weighs the same costs; this keeps the promise anyway
        replay_all = _recompute_all(options, bandwidth, by_id, imports)
        if replay_all != chosen:
            other = _plan(strategy, bandwidth, by_id, options, lost, replay_all, imports)
            if other.restore_seconds < plan.restore_seconds:
                return other
    return plan


def _plan(
    strategy: str,
    bandwidth: float,
    by_id: Mapping[int, Execution],
    options: Sequence[_Option],
    lost: Sequence[_Option],
    recomputed_names: set[tuple[str, ...]],
    imports: Mapping[str, float],
) -> Plan:
    recomputed = [o for o in options if o.group.names in recomputed_names]
    stored = [o for o in options if o.group.names not in recomputed_names]
    replay = frozenset().union(*(o.cells for o in recomputed))
    reasons = _Reasons(strategy, bandwidth, by_id, recomputed, replay, _replayers(recomputed))
    return Plan(
        strategy=strategy,
        bandwidth=bandwidth,
        stored=tuple(o.group for o in stored),
        recomputed=tuple(o.group for o in recomputed),
        lost=tuple(o.group for o in lost),
        replay=tuple(sorted(replay)),
        store_seconds=_store_seconds([o.group for o in stored], bandwidth),
        replay_seconds=_replay_seconds(replay, by_id),
        reasons=reasons.by_name(stored, lost),
        import_seconds=_import_seconds([o.group for o in stored], imports),
    )


def _import_seconds(groups: Iterable[Group], imports: Mapping[str, float]) -> float:
    """Each package the groups need, once; fsum for an order-independent total."""
    packages = sorted({package for group in groups for package in group.packages})
    return math.fsum(imports.get(package, 0.0) for package in packages)


def _replayers(recomputed: Sequence[_Option]) -> dict[int, list[int]]:
    """For each cell, where the groups it rebuilds are in ``recomputed``."""
    index: dict[int, list[int]] = {}
    for position, option in enumerate(recomputed):
        for cell in option.cells:
            index.setdefault(cell, []).append(position)
    return index


def _check_bandwidth(bandwidth: float) -> None:
    # Infinity and NaN would turn every store cost into 0 or NaN and make the cut meaningless.
    if not 0 < bandwidth < math.inf:
        raise ValueError(f"bandwidth must be a positive, finite bytes per second: {bandwidth}")


def _check_groups(history: History, groups: Sequence[Group]) -> None:
    """Reject names the history cannot rebuild, or that would be restored twice."""
    names = [name for group in groups for name in group.names]
    unknown = sorted(set(names) - set(history.active))
    if unknown:
        raise ValueError(f"not active in the history: {', '.join(unknown)}")
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise ValueError(f"in more than one group: {', '.join(repeated)}")


def _executions_by_id(history: History) -> dict[int, Execution]:
    return {execution.id: execution for execution in history.executions}


def _names_of(groups: Iterable[Group]) -> set[str]:
    return {name for group in groups for name in group.names}


def _store_seconds(groups: Iterable[Group], bandwidth: float) -> float:
    """fsum makes the total independent of the groups' order."""
    sizes = [group.size for group in groups]
    if None in sizes:
        return math.inf
    return math.fsum(size / bandwidth for size in sizes)


def _replay_seconds(cells: Iterable[int], by_id: Mapping[int, Execution]) -> float:
    return math.fsum(by_id[cell].runtime for cell in cells)


def _why_not_rebuildable(
    history: History,
    by_id: Mapping[int, Execution],
    group: Group,
    cells: frozenset[int],
    available: Collection[str],
    seen: dict[frozenset[int], str] | None = None,
) -> str:
    """Why replaying ``cells`` cannot rebuild ``group``; empty when it can.

    Besides non-replayable executions, a replay that reads a live variable fails when that
    variable is not restored itself (``available`` names the ones that are). ``seen`` keeps
    the answer per set of cells for one ``available``: thousands of variables written by the
    same cells share it.
    """
    if not group.replayable:
        return group.why_unreplayable or "the monitor marked it as not replayable"
    if seen is None:
        return _why_cells_cannot_replay(history, by_id, cells, available)
    if cells not in seen:
        seen[cells] = _why_cells_cannot_replay(history, by_id, cells, available)
    return seen[cells]


def _why_cells_cannot_replay(
    history: History,
    by_id: Mapping[int, Execution],
    cells: Collection[int],
    available: Collection[str],
) -> str:
    blocked = sorted(cell for cell in cells if not by_id[cell].replayable)
    if any(by_id[cell].code == PREEXISTING_CODE for cell in blocked):
        return "created before nbelastic was loaded, cannot be replayed"
    if any(by_id[cell].code == UNMONITORED_CODE for cell in blocked):
        return "changed outside the monitored cells, cannot be replayed"
    if blocked:
        return why_blocked([by_id[cell] for cell in blocked])
    missing = sorted(
        {
            snapshot.name
            for cell in cells
            for snapshot in by_id[cell].reads
            if history.active.get(snapshot.name) == snapshot and snapshot.name not in available
        }
    )
    if missing:
        return f"replay reads {', '.join(missing)}, which cannot be restored"
    return ""


def _weigh(
    history: History, by_id: Mapping[int, Execution], groups: Sequence[Group]
) -> tuple[list[_Option], list[_Option]]:
    """Split groups into plannable options and lost ones, both sorted by names.

    Losing a group can make another one unrebuildable (its replay reads the lost names), so
    this repeats until no further group is lost.
    """
    replays = history.recompute_sets(group.names for group in groups)
    cells = {g.names: frozenset(c) for g, c in zip(groups, replays, strict=True)}
    remaining = sorted(groups, key=lambda group: group.names)
    lost: list[_Option] = []
    while True:
        available = _names_of(remaining)
        seen: dict[frozenset[int], str] = {}
        options = [
            _Option(
                g,
                cells[g.names],
                _why_not_rebuildable(history, by_id, g, cells[g.names], available, seen),
            )
            for g in remaining
        ]
        newly_lost = [o for o in options if not o.storable and not o.rebuildable]
        if not newly_lost:
            return options, sorted(lost, key=lambda option: option.group.names)
        lost += newly_lost
        remaining = [o.group for o in options if o.storable or o.rebuildable]


_Decider = Callable[
    [Sequence[_Option], float, Mapping[int, Execution], Mapping[str, float]],
    set[tuple[str, ...]],
]


def _store_all(
    options: Sequence[_Option],
    bandwidth: float,
    by_id: Mapping[int, Execution],
    imports: Mapping[str, float],
) -> set[tuple[str, ...]]:
    """Replay only what cannot be stored."""
    return {o.group.names for o in options if not o.storable}


def _recompute_all(
    options: Sequence[_Option],
    bandwidth: float,
    by_id: Mapping[int, Execution],
    imports: Mapping[str, float],
) -> set[tuple[str, ...]]:
    """Store only what cannot be replayed."""
    return {o.group.names for o in options if o.rebuildable}


def _min_cut(
    options: Sequence[_Option],
    bandwidth: float,
    by_id: Mapping[int, Execution],
    imports: Mapping[str, float],
) -> set[tuple[str, ...]]:
    """The groups to replay so that load time plus replay time is smallest.

    Capacities are exact (fractions scaled to integers): with floats, networkx can leave a
    residual of 1e-17 on a saturated edge and return a cut that is far from minimal (networkx
    issues #4592, #7775; ``test_decimal_runtimes_and_sizes_still_give_the_cheapest_plan``).
    An omitted capacity is infinite, which forces unstorable groups to the replay side and
    makes replaying a group pay for all its cells. Groups that cannot be rebuilt stay out of
    the cut and are stored. Groups rebuilt by the same cells are one node, whose load time is
    theirs summed: once those cells replay, each of them comes free, so they share one fate,
    and thousands of small variables written by a few cells make a graph of a few nodes.
    A package that loading a group imports is a node too, source -> package (its import time)
    -> every group that needs it: storing any of them pays the import once. Packages that a
    group stored anyway (it cannot be rebuilt) needs are paid whatever the cut.
    """
    import networkx as nx  # on the first plan, not at import: %load_ext nbelastic stays cheap

    rebuildable = [option for option in options if option.rebuildable]
    by_cells: dict[frozenset[int], list[_Option]] = {}
    for option in rebuildable:
        by_cells.setdefault(option.cells, []).append(option)
    paid = {p for option in options if not option.rebuildable for p in option.group.packages}
    graph = nx.DiGraph()
    for cells, together in by_cells.items():
        node = ("cells", tuple(sorted(cells)))
        if all(option.storable for option in together):
            cost = sum(Fraction(option.group.size) for option in together) / Fraction(bandwidth)
            graph.add_edge(_SOURCE, node, capacity=cost)
        else:
            graph.add_edge(_SOURCE, node)
        graph.add_edges_from((node, ("cell", cell)) for cell in node[1])
        packages = {p for option in together for p in option.group.packages} - paid
        for package in sorted(p for p in packages if imports.get(p, 0.0) > 0):
            graph.add_edge(_SOURCE, ("package", package), capacity=Fraction(imports[package]))
            graph.add_edge(("package", package), node)
    for cell in sorted(frozenset().union(*by_cells)):
        graph.add_edge(("cell", cell), _SINK, capacity=Fraction(by_id[cell].runtime))
    if _SOURCE not in graph:
        return set()
    _scale_to_integers(graph)
    try:
        _, (replay_side, _) = nx.minimum_cut(graph, _SOURCE, _SINK)
    except nx.NetworkXUnbounded as error:  # only finite cell -> sink edges reach the sink
        raise AssertionError("an infinite path reached the cut; a lost group leaked in") from error
    replayed = {frozenset(node[1]) for node in replay_side if node[0] == "cells"}
    return {option.group.names for cells in replayed for option in by_cells[cells]}


def _scale_to_integers(graph: nx.DiGraph) -> None:
    """Multiply all capacities by their common denominator: as exact as fractions, and faster."""
    import networkx as nx

    capacities = nx.get_edge_attributes(graph, "capacity")
    scale = math.lcm(*(capacity.denominator for capacity in capacities.values()))
    integers = {edge: int(capacity * scale) for edge, capacity in capacities.items()}
    nx.set_edge_attributes(graph, integers, "capacity")


_DECIDERS: dict[str, _Decider] = {
    "optimal": _min_cut,
    "store-all": _store_all,
    "recompute-all": _recompute_all,
}


def _cells(ids: Iterable[int]) -> str:
    ids = sorted(ids)
    if not ids:
        return "no cell"
    return f"cell{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}"


def why_blocked(executions: Sequence[Execution]) -> str:
    """That these executions cannot be replayed, and why, where they say it.

    >>> clock = Execution(3, "t = time.time()", 0.0, why_not_replayable="it reads the clock")
    >>> why_blocked([clock])
    'cell 3 cannot be replayed: it reads the clock'
    >>> why_blocked([clock, Execution(5, "x = 1", 0.0, replayable=False)])
    'cells 3, 5 cannot be replayed (cell 3: it reads the clock)'
    """
    blocked = _cells(e.id for e in executions)
    reasons = [f"cell {e.id}: {e.why_not_replayable}" for e in executions if e.why_not_replayable]
    if len(executions) == 1 and reasons:
        return f"{blocked} cannot be replayed: {executions[0].why_not_replayable}"
    return f"{blocked} cannot be replayed" + (f" ({'; '.join(reasons)})" if reasons else "")


_SHOWN_NAMES = 5


def _some_names(names: Sequence[str], total: int) -> str:
    """The first of ``total`` names and how many more: a sentence per variable stays short
    when thousands of variables share a cell.

    >>> _some_names(["a", "b"], 2), _some_names([f"v{i}" for i in range(6)], 8)
    ('a, b', 'v0, v1, v2, v3, v4 and 3 more')
    """
    if total <= _SHOWN_NAMES:
        return ", ".join(names[:total])
    return f"{', '.join(names[:_SHOWN_NAMES])} and {total - _SHOWN_NAMES} more"


def _seconds(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _than(cost: float, other: float) -> str:
    return "less than" if cost < other else "no more than"


@dataclass(frozen=True)
class _Reasons:
    """One readable sentence per group, saying why the plan treats it the way it does."""

    strategy: str
    bandwidth: float
    by_id: Mapping[int, Execution]
    recomputed: Sequence[_Option]
    replay: frozenset[int]
    replayers: Mapping[int, Sequence[int]]  # cell -> positions in recomputed of its groups
    sharers: dict[frozenset[int], tuple[list[int], int]] = field(default_factory=dict)

    def _load(self, group: Group) -> str:
        return f"{format_bytes(group.size)} loads in {_seconds(group.size / self.bandwidth)}"

    def _rebuild(self, cells: Iterable[int]) -> str:
        return f"rebuilding takes {_seconds(_replay_seconds(cells, self.by_id))} ({_cells(cells)})"

    def for_stored(self, option: _Option) -> str:
        if not option.rebuildable:
            return f"stored: {option.why_not_rebuildable}; {self._load(option.group)}"
        if self.strategy != "optimal":
            return f"stored: strategy {self.strategy}; {self._load(option.group)}"
        extra = option.cells - self.replay
        seconds = _replay_seconds(extra, self.by_id)
        return (
            f"stored: {self._load(option.group)}; "
            f"rebuilding would add {_seconds(seconds)} ({_cells(extra)})"
        )

    def for_recomputed(self, option: _Option) -> str:
        if not option.storable:
            why = option.group.why_unstorable or "cannot be serialized"
            return f"replayed: {why}; {self._rebuild(option.cells)}"
        if self.strategy != "optimal":
            return f"replayed: strategy {self.strategy}; {self._rebuild(option.cells)}"
        load = option.group.size / self.bandwidth
        loading = f"loading {format_bytes(option.group.size)} ({_seconds(load)})"
        positions, names = self._sharers(option.cells)
        if names == len(option.group.names):  # no other group shares a cell
            seconds = _replay_seconds(option.cells, self.by_id)
            return f"replayed: {self._rebuild(option.cells)}, {_than(seconds, load)} {loading}"
        shared = frozenset(cell for cell in option.cells if len(self.replayers[cell]) > 1)
        extra = option.cells - shared
        seconds = _replay_seconds(extra, self.by_id)
        first: list[str] = []
        for position in positions:
            if len(first) > _SHOWN_NAMES:
                break
            if self.recomputed[position] is not option:
                first += self.recomputed[position].group.names
        others = _some_names(first, total=names - len(option.group.names))
        return (
            f"replayed: shares {_cells(shared)} with {others}, so rebuilding adds "
            f"{_seconds(seconds)} ({_cells(extra)}), {_than(seconds, load)} {loading}"
        )

    def _sharers(self, cells: frozenset[int]) -> tuple[list[int], int]:
        """Where the replayed groups sharing a cell with ``cells`` are in ``recomputed``, and
        how many names they hold; kept per set of cells, which thousands of groups share."""
        if cells not in self.sharers:
            positions = sorted({p for cell in cells for p in self.replayers.get(cell, ())})
            names = sum(len(self.recomputed[p].group.names) for p in positions)
            self.sharers[cells] = (positions, names)
        return self.sharers[cells]

    def for_lost(self, option: _Option) -> str:
        why = option.group.why_unstorable or "cannot be serialized"
        return f"lost: {why}; {option.why_not_rebuildable}"

    def by_name(self, stored: Iterable[_Option], lost: Iterable[_Option]) -> Mapping[str, str]:
        """Each name with its group's sentence, sorted by name and read-only."""
        sentences = [(o, self.for_stored(o)) for o in stored]
        sentences += [(o, self.for_recomputed(o)) for o in self.recomputed]
        sentences += [(o, self.for_lost(o)) for o in lost]
        pairs = sorted((name, text) for o, text in sentences for name in o.group.names)
        return MappingProxyType(dict(pairs))
