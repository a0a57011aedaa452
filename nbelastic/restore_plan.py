"""What a restore may load and replay: the saved plan, less what is damaged or untrusted.

The plan made at save time assumes that every blob is still there and that the user runs the
checkpoint. At restore either can fail:

* a blob is missing or corrupt: its group is rebuilt by replaying the cells that made it
  (``History.recompute_set``) when the graph allows it, i.e. when none of those cells is a
  pseudo execution and every live variable they read is itself restored; otherwise the group
  is left out with a reason that names the problem;
* the checkpoint is not signed by this user: only values in safe codecs (JSON, ``.npy``) are
  loaded, no cell is replayed, and every other variable is left out, to be loaded after
  ``nbelastic trust``.

Everything else is restored either way.

>>> from nbelastic.history import History
>>> from nbelastic.store import Manifest, ManifestEntry
>>> h = History()
>>> _ = h.record("x = load()", 1.0, writes=["x"])
>>> _ = h.record("y = x * 2", 1.0, reads=["x"], writes=["y"])
>>> x = ManifestEntry(("x",), "npy", 8, "a" * 64)
>>> y = ManifestEntry(("y",), "dill", 8, "b" * 64)
>>> variables = {"x": {"action": "store"}, "y": {"action": "store"}}
>>> plan = plan_load(h, Manifest((x, y)), (), variables, {y: "blob bbbbbbbbbbbb is missing"})
>>> plan.replay, plan.rebuilt
((2,), {'y': 'blob bbbbbbbbbbbb is missing; rebuilt by replaying cell 2'})
>>> untrusted = plan_load(h, Manifest((x, y)), (), variables, {}, trusted=False)
>>> [e.names for e in untrusted.entries], untrusted.not_loaded
([('x',)], {'y': 'not trusted: its dill blob runs code when loaded'})
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from nbelastic.errors import BlobCorruptError, TrustError
from nbelastic.history import PREEXISTING_CODE, UNMONITORED_CODE, History
from nbelastic.planner import why_blocked
from nbelastic.rebuild import Checkpoint, RestoreReport, codec_disagreement
from nbelastic.store import SAFE_CODECS, BlobStore, Manifest, ManifestEntry, load_group
from nbelastic.store.remote import RemoteBlobStore

NOT_TRUSTED = "not trusted"


@dataclass
class LoadPlan:
    """The groups to load, the executions to replay (ascending), and what changed and why."""

    entries: tuple[ManifestEntry, ...]
    replay: tuple[int, ...]
    rebuilt: dict[str, str] = field(default_factory=dict)
    not_loaded: dict[str, str] = field(default_factory=dict)


def plan_restore(checkpoint: Checkpoint, *, trust: bool = False) -> LoadPlan:
    """The load plan for an opened checkpoint; ``trust`` trusts it even if it is not signed."""
    document = checkpoint.document
    return plan_load(
        checkpoint.history,
        checkpoint.manifest,
        document["plan"]["replay"],
        document["variables"],
        checkpoint.damaged,
        trusted=trust or checkpoint.trusted,
    )


def loader(
    store: BlobStore | RemoteBlobStore, *, trusted: bool
) -> Callable[[ManifestEntry], Mapping[str, object]]:
    """Load a group, refusing codecs that run code unless trusted.

    A blob whose own header names another codec than its manifest line is corrupt: loading it
    raises, whatever either says.
    """

    def load(entry: ManifestEntry) -> Mapping[str, object]:
        with store.open(entry.key) as (codec, stream):
            if codec != entry.codec:
                raise BlobCorruptError(codec_disagreement(store, entry))
            if not trusted and codec not in SAFE_CODECS:
                raise TrustError(f"{NOT_TRUSTED}: its {codec} blob runs code when loaded")
            return load_group(codec, stream, entry.names)

    return load


def without_reserved_names(plan: LoadPlan, reserved: Collection[str]) -> LoadPlan:
    """``plan`` less the groups that would bind a name in ``reserved`` or a dunder name."""
    refused = {
        entry
        for entry in plan.entries
        if any(name in reserved or name.startswith("__") for name in entry.names)
    }
    not_loaded = dict(plan.not_loaded)
    for entry in refused:
        for name in entry.names:
            not_loaded[name] = f"{NOT_TRUSTED}: it would rebind a name of Python or IPython"
    entries = tuple(entry for entry in plan.entries if entry not in refused)
    return LoadPlan(entries, plan.replay, dict(plan.rebuilt), not_loaded)


def complete_report(
    report: RestoreReport, checkpoint: Checkpoint, plan: LoadPlan, *, trust: bool = False
) -> RestoreReport:
    """Add to ``report`` what the load plan changed, the checkpoint's warnings and, when it
    was not trusted, the one line that says how to load the rest."""
    report.rebuilt.update(plan.rebuilt)
    report.trusted = trust or checkpoint.trusted
    report.warnings.extend(checkpoint.warnings)
    held_back = sorted(n for n, why in report.not_loaded.items() if why.startswith(NOT_TRUSTED))
    if held_back:
        report.warnings.append(
            f"{checkpoint.notebook} is not signed by you, so nothing that runs code was loaded "
            f"({_names(held_back)}): review it with `nbelastic trust {checkpoint.notebook}`, "
            "which signs it if you accept, then restore again"
        )
    return report


def plan_load(
    history: History,
    manifest: Manifest,
    replay: Iterable[int],
    variables: Mapping[str, Mapping],
    damaged: Mapping[ManifestEntry, str],
    *,
    trusted: bool = True,
) -> LoadPlan:
    """Adapt the saved plan to ``damaged`` groups (entry -> problem) and to trust."""
    intact = [entry for entry in manifest.entries if entry not in damaged]
    if not trusted:
        return _untrusted(manifest, intact, variables, damaged)
    plan = LoadPlan(tuple(intact), ())
    cells = set(replay)
    unavailable = {n for e in damaged for n in e.names}
    unavailable |= {name for name, info in variables.items() if info["action"] == "lost"}
    pending = dict(damaged)
    progress = True
    while pending and progress:  # rebuilding one group may make another's inputs available
        progress = False
        for entry, problem in sorted(pending.items()):
            needed, why_not = _rebuild_cells(history, entry.names, unavailable)
            if why_not:
                continue
            cells |= needed
            unavailable -= set(entry.names)
            for name in entry.names:
                plan.rebuilt[name] = f"{problem}; rebuilt by replaying {_cells(needed)}"
            del pending[entry]
            progress = True
    for entry, problem in sorted(pending.items()):
        _, why_not = _rebuild_cells(history, entry.names, unavailable)
        for name in entry.names:
            plan.not_loaded[name] = f"{problem}, and replaying cannot rebuild it ({why_not})"
    plan.replay = tuple(sorted(cells))
    return plan


def _untrusted(
    manifest: Manifest,
    intact: list[ManifestEntry],
    variables: Mapping[str, Mapping],
    damaged: Mapping[ManifestEntry, str],
) -> LoadPlan:
    safe = tuple(entry for entry in intact if entry.codec in SAFE_CODECS)
    plan = LoadPlan(safe, ())
    for entry, problem in damaged.items():
        for name in entry.names:
            plan.not_loaded[name] = problem
    loaded = {name for entry in safe for name in entry.names}
    for name, info in sorted(variables.items()):
        if name in loaded or name in plan.not_loaded or info["action"] == "lost":
            continue
        entry = manifest.entry_for(name)
        if entry is not None:
            how = f"its {entry.codec} blob runs code when loaded"
        else:
            how = "it is rebuilt by replaying cells"
        plan.not_loaded[name] = f"{NOT_TRUSTED}: {how}"
    return plan


def _rebuild_cells(
    history: History, names: Collection[str], unavailable: Collection[str]
) -> tuple[set[int], str]:
    """The executions that rebuild ``names``, or why replaying cannot."""
    if any(name not in history.active for name in names):
        return set(), "the history does not say which cell made it"
    cells = history.recompute_set(names)
    blocked = [history.execution(c) for c in sorted(cells) if not history.execution(c).replayable]
    if any(execution.code == PREEXISTING_CODE for execution in blocked):
        return cells, "it comes from before nbelastic was loaded"
    if any(execution.code == UNMONITORED_CODE for execution in blocked):
        return cells, "it changed outside the monitored cells"
    if blocked:
        return cells, why_blocked(blocked)
    missing = sorted(
        {
            snapshot.name
            for cell in cells
            for snapshot in history.execution(cell).reads
            if snapshot.name not in names
            and snapshot.name in unavailable
            and history.active.get(snapshot.name) == snapshot
        }
    )
    if missing:
        return cells, f"it needs {', '.join(missing)}, which cannot be restored either"
    return cells, ""


def _names(names: list[str], shown: int = 5) -> str:
    """``a, b, c`` or ``a, b, c, d, e and 3 more``."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _cells(ids: Iterable[int]) -> str:
    ids = sorted(ids)
    return f"cell{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}"
