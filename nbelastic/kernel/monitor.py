"""Watch every cell execution: what it read, what it changed, how long it took, its RNG state.

Per cell the work is proportional to what the cell touches: the names its code reads, the
globals of the notebook functions it calls, and the variables linked to those (sharing objects).
Only those are re-profiled, with the values the cell binds; every other variable is assumed
unchanged, an assumption the save re-checks so an undetected change is stored, never wrongly
replayed. Where the OS can watch writes (nbelastic.writewatch), large arrays and columns are not
hashed at all between cells: the kernel says whether they were written. A name the cell only
assigns or deletes does not count as read: rebinding cannot change the object it named, nor
anything sharing objects with it. Which names a cell bound or deleted is found by comparing
the namespace's object ids before and after it, in C (nbelastic.kernel.namespace).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nbelastic.history import UNMONITORED_CODE, History
from nbelastic.kernel.analysis import analyse_cell, code_calls, reads_and_code
from nbelastic.kernel.entropy import EntropyTape
from nbelastic.kernel.imports import ImportClock
from nbelastic.kernel.namespace import Bindings, UserVariables, user_namespace
from nbelastic.kernel.rng import NumpyRandomLoads, rng_snapshot, rng_state
from nbelastic.kernel.unrepeatable import Call, why_unrepeatable
from nbelastic.objects import Profile, profile
from nbelastic.writewatch import WriteWatch


def _same(old: Profile, new: Profile, value: object) -> bool:
    """Whether ``value`` is unchanged since ``old`` was taken; ``new`` is its profile now.

    A profile without fingerprints holds content hashes only (one the restore's verification
    took, or of a value with no watched buffer), so against a fingerprinted one the value's
    content is hashed once more to compare like with like.
    """
    if new.hash is None:
        return False
    if new.watched and not old.watched:
        return profile(value).hash == old.hash
    return new.hash == old.hash


def _warn(error: BaseException) -> None:
    print(
        f"nbelastic: could not watch this cell ({type(error).__name__}: {error}); "
        "the variables it changed will be stored, not replayed, at the next save",
        file=sys.stderr,
    )


@dataclass
class WatchingCost:
    """What watching has cost so far, for ``%nbelastic status`` and the benchmarks."""

    cells: int = 0
    cells_seconds: float = 0.0  # the cells themselves, from just after one hook to the next
    seconds: float = 0.0  # in the monitor's own hooks

    def summary(self, pages_written: int | None = None) -> str:
        """One line, e.g. ``watching cost 0.012 s over 6 cells (0.3% of their 4.1 s)``, with
        the page faults the write watch caused inside the cells when it is on."""
        share = self.seconds / self.cells_seconds * 100 if self.cells_seconds else 0.0
        faults = "" if pages_written is None else f", and {pages_written} watched pages written"
        return (
            f"watching cost {self.seconds:.3f} s over {self.cells} cells "
            f"({share:.1f}% of their {self.cells_seconds:.1f} s){faults}"
        )


@dataclass
class _Pending:
    code: str
    before: Bindings
    rng_before: tuple
    started: float
    # Found after the cell ran (see Monitor._analyse); None until then.
    reads: set[str] | None = None
    candidates: set[str] | None = None  # may have changed in place: re-profiled
    rebinds: set[str] | None = None  # may be rebound or deleted: profiled afresh or forgotten
    calls: set[Call] | None = None  # calls a replay may not repeat (nbelastic.kernel.unrepeatable)


class Monitor:
    """Keeps the History of one kernel up to date from IPython's pre/post cell events."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.history = History()
        self.profiles: dict[str, Profile] = {}
        # execution id -> RNG state before it ran, with the OS entropy it drew ("entropy")
        self.rng_states: dict[int, dict] = {}
        self.entropy = EntropyTape()
        self.imports = ImportClock()  # what a restore pays to import the stored values' packages
        self._token_owners: dict[object, set[str]] = {}
        self._pending: _Pending | None = None
        self._depth = 0  # cell magics such as %%capture run their body as a nested cell
        self.paused = False
        self.cost = WatchingCost()
        self.watch, self.watch_note = WriteWatch.open_reporting()
        self.numpy_random_loads = NumpyRandomLoads()
        existing = user_namespace(shell)
        if existing:
            self.history.record_existing(existing)
            for name, value in existing.items():
                self.remember(name, self.profile(value))
        # The namespace as the monitor last saw it; None: look at every name again.
        self._seen: Bindings | None = Bindings.of(shell.user_ns)

    def register(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        self.numpy_random_loads.install()
        self.entropy.install()
        self.imports.install()

    def unregister(self) -> None:
        self.shell.events.unregister("pre_run_cell", self.pre_run_cell)
        self.shell.events.unregister("post_run_cell", self.post_run_cell)
        self.numpy_random_loads.uninstall()
        self.entropy.uninstall()
        self.imports.uninstall()
        if self.watch is not None:
            self.watch.close()

    def profile(self, value: object) -> Profile:
        """``value``'s profile as the monitor compares them: watched buffers by fingerprint."""
        return profile(value, self.watch)

    def adopt(
        self,
        history: History,
        rng_states: dict[int, dict],
        profiles: Mapping[str, Profile] | None = None,
    ) -> None:
        """Continue from a restored checkpoint: its history, and profiles of the live values.

        ``profiles`` are those the restore's verification just took of these very values
        (hashing a large frame again would double its cost); the others are profiled here.
        """
        self.history = history
        self.rng_states = dict(rng_states)
        self.profiles.clear()
        self._token_owners.clear()
        known = profiles or {}
        for name, value in user_namespace(self.shell).items():
            self.remember(name, known[name] if name in known else self.profile(value))
        self._seen = Bindings.of(self.shell.user_ns)
        # A restore run from a cell (``%nbelastic restore``) is not that cell's work: recorded,
        # a later save could plan to rebuild every restored variable by running it again.
        self._pending = None

    def adopt_values(self, names: Iterable[str], profiles: Mapping[str, Profile]) -> None:
        """Continue from a checkpoint this user did not trust: its values, never its history.

        The cells in that history were not run here by this user: adopted, a save would sign
        them as this user's and plan to replay them, and the next restore (or JupyterLab
        opening the notebook) would run them. The loaded values are recorded as made where no
        cell was watched, which cannot be replayed, so a save stores them.
        """
        namespace = user_namespace(self.shell)
        loaded = sorted(name for name in names if name in namespace)
        if loaded:
            self.history.record(UNMONITORED_CODE, 0.0, writes=loaded, replayable=False)
        for name in loaded:
            self.remember(
                name, profiles[name] if name in profiles else self.profile(namespace[name])
            )
        self._seen = Bindings.of(self.shell.user_ns)
        self._pending = None  # nor is the restore the work of the cell that ran it (see adopt)

    def pre_run_cell(self, info) -> None:
        """IPython event: note what the cell may touch, before it runs."""
        self._depth += 1
        if self._depth > 1:
            return
        self._pending = None
        raw = info.raw_cell or ""
        if self.paused or not raw.strip():
            return
        started = time.perf_counter()
        try:
            self._pending = self._before(raw)
        except Exception as error:  # noqa: BLE001 - the user's cell must run whatever happens here
            _warn(error)
        self.cost.seconds += time.perf_counter() - started

    def _before(self, raw: str) -> _Pending:
        """What must be caught before the cell runs: which object each name holds, and the RNG
        state. What the cell reads is found after it ran (see ``_analyse``).

        Variables bound or deleted since the last cell the monitor saw (by a silent execution,
        a cell it could not watch) are recorded first, as the work of code that cannot be
        replayed: the save then stores them, and a cell that goes on to change one in place
        is never replayed from a version no replay could make.
        """
        namespace = self.shell.user_ns
        now = Bindings.of(namespace)
        bound: set[str] = set()
        gone: set[str] = set()
        if self._seen is None:
            variables = user_namespace(self.shell)
            bound = variables.keys() - self.profiles.keys()
            gone = self.profiles.keys() - variables.keys()
        elif now != self._seen:
            changed, deleted = self._seen.changes(now)
            bound = {name for name in changed if name in UserVariables(self.shell)}
            gone = deleted & self.profiles.keys()
        if bound or gone:
            self.history.record(UNMONITORED_CODE, 0.0, writes=bound, deletes=gone, replayable=False)
        for name in gone:
            self._forget(name)
        for name in bound:
            self.remember(name, self.profile(namespace[name]))
        self.entropy.start()
        return _Pending(
            code=raw,
            before=now,
            rng_before=self.numpy_random_loads.fill_in(rng_snapshot()),
            started=time.perf_counter(),
        )

    def _analyse(self, pending: _Pending, variables: UserVariables) -> None:
        """The names the cell may have read (and the variables linked to them) or rebound.

        The code analysed is what IPython ran, from its history when it is there: that
        saves transforming the cell a second time, which costs more than the rest of a small
        cell's watching. Functions the cell called are followed as they are after it ran.
        Every variable there was before the cell has a profile (see ``_before``).
        """
        names = analyse_cell(self._ran(pending.code), self.shell.transform_cell)
        pending.calls = names.calls
        if names.dynamic:
            pending.reads = set(self.profiles)
            pending.rebinds = set(self.profiles)
        else:
            pending.reads, codes = reads_and_code(names.loads, variables)
            pending.rebinds = (names.stores | names.deletes) & self.profiles.keys()
            for code in codes:
                pending.calls |= code_calls(code)
        pending.candidates = self._with_linked(pending.reads) & self.profiles.keys()

    def _ran(self, raw: str) -> str:
        """``raw`` as IPython transformed it to run it."""
        history = self.shell.history_manager
        if history is not None and history.input_hist_raw and history.input_hist_raw[-1] == raw:
            return history.input_hist_parsed[-1]
        return self.shell.transform_cell(raw)

    def post_run_cell(self, result) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth > 0:
            return
        pending, self._pending = self._pending, None
        entropy = self.entropy.take()
        if pending is None or self.paused:
            return
        started = time.perf_counter()
        self.cost.cells += 1
        self.cost.cells_seconds += started - pending.started
        try:
            self._after(pending, result, entropy)
        except Exception as error:  # noqa: BLE001 - never break the user's session
            _warn(error)
            # Forget what this cell may have changed: the next save finds those variables
            # unrecorded and stores them rather than trusting a half-written history.
            if pending.candidates is None:
                touched = set(self.profiles)
            else:
                touched = pending.candidates | pending.rebinds
            before = set(pending.before.names)
            for name in list(self.profiles):
                if name in touched or name not in before:
                    self._forget(name)
            self._seen = None
        self.cost.seconds += time.perf_counter() - started

    def _after(self, pending: _Pending, result, entropy: list[str]) -> None:
        runtime = time.perf_counter() - pending.started
        namespace = self.shell.user_ns
        variables = UserVariables(self.shell)
        now = Bindings.of(namespace)
        bound, gone = pending.before.changes(now)
        self._analyse(pending, variables)
        deleted = {name for name in gone if name in self.profiles}
        rebound = {name for name in bound if name in variables}
        written = set(rebound)
        for name in rebound:
            self.remember(name, self.profile(namespace[name]))
        for name in pending.candidates - deleted - rebound:
            if name not in variables:  # deleted by code the monitor did not see
                continue
            old = self.profiles.get(name)
            new = self.profile(namespace[name])
            if old is None or not _same(old, new, namespace[name]):
                written.add(name)
            self.remember(name, new)
        for name in deleted:
            self._forget(name)
        rng_before = self.numpy_random_loads.fill_in(pending.rng_before)
        rng_after = rng_snapshot()
        # A value changed in place is built from its previous version: that is a read too.
        execution = self.history.record(
            pending.code,
            runtime,
            reads=pending.reads | (written - rebound),
            writes=written,
            deletes=deleted,
            raised=not result.success,
            why_not_replayable=why_unrepeatable(pending.calls, namespace),
        )
        if rng_after != rng_before or entropy:
            self.rng_states[execution.id] = {**rng_state(rng_before), "entropy": entropy}
        self._seen = now

    def _with_linked(self, names: Iterable[str]) -> set[str]:
        """``names`` plus every variable sharing an object with one of them."""
        result = set(names)
        for name in list(result):
            known = self.profiles.get(name)
            if known is None:
                continue
            for token in known.tokens:
                result |= self._token_owners.get(token, set())
        return result

    def remember(self, name: str, new: Profile) -> None:
        """Take ``new`` as the current profile of ``name`` (and index its identity tokens)."""
        self._forget(name)
        self.profiles[name] = new
        for token in new.tokens:
            self._token_owners.setdefault(token, set()).add(name)

    def _forget(self, name: str) -> None:
        old = self.profiles.pop(name, None)
        if old is None:
            return
        for token in old.tokens:
            owners = self._token_owners.get(token)
            if owners is not None:
                owners.discard(name)
                if not owners:
                    del self._token_owners[token]
