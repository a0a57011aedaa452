"""The Application History Graph (AHG): cell executions and the variable snapshots they touch.

A *snapshot* is a variable name at a version. Each execution reads some snapshots and writes
new ones (creation, reassignment or in-place modification all bump the version). A snapshot is
*active* when it is the newest version of a name that still exists. Everything here is plain
data: the kernel side feeds it names, the planner asks it which executions rebuild a variable.

Example
-------
>>> h = History()
>>> _ = h.record("x = 1", 0.1, writes=["x"])
>>> _ = h.record("def f(): return x * 10", 0.0, writes=["f"])
>>> _ = h.record("z = f()", 2.0, reads=["f", "x"], writes=["z"])
>>> _ = h.record("x = 5", 0.1, writes=["x"])
>>> sorted(str(s) for s in h.active.values())
['f@1', 'x@2', 'z@1']
>>> sorted(h.recompute_set(["z"]))   # x@1 is no longer alive, so cell 1 must be replayed too
[1, 3]
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from nbelastic.errors import HistoryFormatError

PREEXISTING_CODE = "# state that existed before nbelastic started watching"
UNMONITORED_CODE = "# changed outside a monitored cell"
_VERSION = re.compile(r"[1-9][0-9]*")  # the checkpoint schema's rule: no 0, no leading zeros


@dataclass(frozen=True, order=True)
class Snapshot:
    """A variable name at one version; versions of a name count up from 1."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        """Inverse of ``str``: ``Snapshot.parse("x@2") == Snapshot("x", 2)``.

        Only what ``str`` writes is accepted: ``x@01`` or a non-ASCII digit would otherwise parse
        to a snapshot whose text differs from the one read.
        """
        name, sep, version = text.rpartition("@")
        if not sep or not name or not _VERSION.fullmatch(version):
            raise ValueError(f"not a snapshot: {text!r}")
        return cls(name, int(version))


@dataclass(frozen=True)
class Execution:
    """One run of one cell, as recorded by the monitor."""

    id: int
    code: str
    runtime: float
    reads: tuple[Snapshot, ...] = ()
    writes: tuple[Snapshot, ...] = ()
    deletes: tuple[Snapshot, ...] = ()
    raised: bool = False
    replayable: bool = True
    rng: str | None = None  # blob key of the RNG state before the run, if it drew random numbers
    why_not_replayable: str = ""  # for a cell that cannot be replayed, e.g. "it reads the clock"

    def to_json(self) -> dict:
        data = {
            "id": self.id,
            "code": self.code,
            "runtime": round(self.runtime, 6),
            "reads": [str(s) for s in self.reads],
            "writes": [str(s) for s in self.writes],
            "deletes": [str(s) for s in self.deletes],
            "raised": self.raised,
            "replayable": self.replayable,
            "rng": self.rng,
        }
        if self.why_not_replayable:
            data["why_not_replayable"] = self.why_not_replayable
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> Execution:
        return cls(
            id=int(data["id"]),
            code=str(data["code"]),
            runtime=float(data["runtime"]),
            reads=tuple(Snapshot.parse(s) for s in data["reads"]),
            writes=tuple(Snapshot.parse(s) for s in data["writes"]),
            deletes=tuple(Snapshot.parse(s) for s in data["deletes"]),
            raised=bool(data["raised"]),
            replayable=bool(data["replayable"]),
            rng=data.get("rng"),
            why_not_replayable=str(data.get("why_not_replayable", "")),
        )


@dataclass
class History:
    """The growing graph of executions; ``active`` maps each live name to its newest snapshot."""

    executions: list[Execution] = field(default_factory=list)
    active: dict[str, Snapshot] = field(default_factory=dict)
    _last_version: dict[str, int] = field(default_factory=dict, repr=False)
    _writers: dict[Snapshot, Execution] = field(default_factory=dict, repr=False)
    _by_id: dict[int, Execution] = field(default_factory=dict, repr=False)

    def record(
        self,
        code: str,
        runtime: float,
        *,
        reads: Iterable[str] = (),
        writes: Iterable[str] = (),
        deletes: Iterable[str] = (),
        raised: bool = False,
        replayable: bool = True,
        rng: str | None = None,
        why_not_replayable: str = "",
    ) -> Execution:
        """Append one execution. Names are resolved to snapshots here.

        ``reads`` are names the cell (or a function it called) looked up; names that did not
        exist before the cell are ignored. ``writes`` are names created, reassigned or modified
        in place; each gets a new version. ``deletes`` are names that no longer exist. A
        ``why_not_replayable`` reason makes the execution not replayable.

        >>> h = History()
        >>> e = h.record("lst = []", 0.0, writes=["lst"])
        >>> e = h.record("lst.append(1)", 0.0, reads=["lst"], writes=["lst"])
        >>> [str(s) for s in e.reads], [str(s) for s in e.writes]
        (['lst@1'], ['lst@2'])
        """
        read_snaps = tuple(sorted({self.active[n] for n in reads if n in self.active}))
        deleted = tuple(sorted({self.active[n] for n in deletes if n in self.active}))
        for snap in deleted:
            del self.active[snap.name]
        written = []
        for name in sorted(set(writes)):
            version = self._last_version.get(name, 0) + 1
            self._last_version[name] = version
            snap = Snapshot(name, version)
            self.active[name] = snap
            written.append(snap)
        execution = Execution(
            id=self._next_id(replayable),
            code=code,
            runtime=float(runtime),
            reads=read_snaps,
            writes=tuple(written),
            deletes=deleted,
            raised=raised,
            replayable=replayable and not why_not_replayable,
            rng=rng,
            why_not_replayable=why_not_replayable,
        )
        self._append(execution)
        return execution

    def record_existing(self, names: Iterable[str]) -> Execution:
        """Record the variables that existed before monitoring began.

        They are written by a pseudo execution that cannot be replayed, so the planner must store
        them.

        >>> h = History()
        >>> h.record_existing(["df"]).replayable
        False
        """
        return self.record(PREEXISTING_CODE, 0.0, writes=names, replayable=False)

    def _next_id(self, replayable: bool) -> int:
        # Cells count from 1; the pseudo execution for pre-existing state takes 0 when it is first.
        if self.executions:
            return self.executions[-1].id + 1
        return 1 if replayable else 0

    def _append(self, execution: Execution) -> None:
        self.executions.append(execution)
        self._by_id[execution.id] = execution
        for snap in execution.writes:
            self._writers[snap] = execution

    def writer(self, snapshot: Snapshot) -> Execution:
        """The execution that produced ``snapshot``."""
        return self._writers[snapshot]

    def execution(self, execution_id: int) -> Execution:
        """The execution with this id."""
        return self._by_id[execution_id]

    def recompute_set(self, names: Iterable[str]) -> set[int]:
        """Ids of the executions to replay, in any order, to rebuild these active variables.

        Starts from the writers of the names' active snapshots and adds, transitively, the writer
        of every input snapshot that is no longer active (overwritten or deleted). Active inputs
        are left out: the restore brings them back, stored or replayed, before they are read.

        >>> h = History()
        >>> _ = h.record("a = [1]", 1.0, writes=["a"])
        >>> _ = h.record("a.append(2)", 1.0, reads=["a"], writes=["a"])
        >>> _ = h.record("n = len(a)", 1.0, reads=["a"], writes=["n"])
        >>> sorted(h.recompute_set(["n"])), sorted(h.recompute_set(["a"]))
        ([3], [1, 2])
        """
        return self.recompute_sets([names])[0]

    def recompute_sets(self, groups: Iterable[Iterable[str]]) -> list[set[int]]:
        """``recompute_set`` of each group of names, in one pass over the graph.

        The active snapshots and each writer's closure are worked out once for all groups: a
        planner weighing thousands of small variables written by a few cells would otherwise
        walk the same graph once per variable.

        >>> h = History()
        >>> _ = h.record("a = 1", 1.0, writes=["a"])
        >>> _ = h.record("b = a + 1", 1.0, reads=["a"], writes=["b"])
        >>> h.recompute_sets([["a"], ["b"], ["a", "b"], []])
        [{1}, {2}, {1, 2}, set()]
        """
        active = set(self.active.values())
        closures: dict[int, frozenset[int]] = {}

        def closure(start: Execution) -> frozenset[int]:
            if start.id not in closures:
                todo, needed = [start], set()
                while todo:
                    execution = todo.pop()
                    if execution.id not in needed:
                        needed.add(execution.id)
                        todo += (self._writers[s] for s in execution.reads if s not in active)
                closures[start.id] = frozenset(needed)
            return closures[start.id]

        return [
            set().union(*(closure(self._writers[self.active[name]]) for name in names))
            for names in groups
        ]

    def to_json(self) -> dict:
        """A deterministic JSON form: the same history always gives the same document."""
        return {
            "executions": [e.to_json() for e in self.executions],
            "active": {name: snap.version for name, snap in sorted(self.active.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping) -> History:
        """Rebuild a history from ``to_json`` output.

        The data comes from a notebook, which may be damaged or hostile, so anything else
        raises HistoryFormatError (an NbelasticError, and a ValueError) whatever its shape.
        """
        history = cls()
        try:
            for item in data["executions"]:
                execution = Execution.from_json(item)
                history._append(execution)
                for snap in execution.writes:
                    previous = history._last_version.get(snap.name, 0)
                    history._last_version[snap.name] = max(previous, snap.version)
            active = data["active"].items()
            history.active = {name: Snapshot(name, int(v)) for name, v in active}
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise _malformed(f"{type(error).__name__}: {error}") from None
        missing = [str(s) for s in history.active.values() if s not in history._writers]
        if missing:
            raise _malformed(f"active snapshots without a writer: {', '.join(missing)}")
        return history


def _malformed(problem: str) -> HistoryFormatError:
    return HistoryFormatError(
        f"the checkpoint's history graph is malformed ({problem[:200]}): save again from a "
        "kernel that still holds the state, or remove the checkpoint with `nbelastic strip`"
    )


def linked_groups(reachable: Mapping[str, Iterable[Hashable]]) -> list[tuple[str, ...]]:
    """Partition names into groups whose reachable objects overlap (union-find, linear time).

    ``reachable`` maps each name to identity tokens of the objects it reaches (object ids,
    buffer roots). Two names sharing any token must be stored or rebuilt together so that
    identity relations such as ``b is a`` survive a restore.

    >>> linked_groups({"a": [1, 2], "b": [2], "c": [3], "d": []})
    [('a', 'b'), ('c',), ('d',)]
    """
    parent = {name: name for name in reachable}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    owner: dict[Hashable, str] = {}
    for name in sorted(reachable):
        for token in reachable[name]:
            first = owner.setdefault(token, name)
            if first != name:
                root_a, root_b = find(first), find(name)
                if root_a != root_b:
                    parent[max(root_a, root_b)] = min(root_a, root_b)
    groups: dict[str, list[str]] = {}
    for name in sorted(reachable):
        groups.setdefault(find(name), []).append(name)
    return sorted(tuple(members) for members in groups.values())
