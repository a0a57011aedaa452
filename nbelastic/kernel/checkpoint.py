"""Save the live namespace into a notebook checkpoint, and bring one back, inside the kernel.

Saving profiles every live variable afresh (content hash, size, links), reconciles the history
with what is really there, asks the planner what to store, encodes the stored groups into the
sidecar and embeds graph, plan and manifest into the notebook. Restoring reads them back and
drives ``restore.rebuild`` with this kernel's shell as the cell runner.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from IPython.utils.capture import capture_output

from nbelastic import __version__
from nbelastic.checkpoints import find_checkpoint, next_checkpoint_id, record_checkpoint
from nbelastic.environment import fingerprint, packages_of
from nbelastic.errors import NbelasticError, UnserializableError
from nbelastic.history import UNMONITORED_CODE, Execution, History, linked_groups
from nbelastic.kernel.entropy import EntropyTape
from nbelastic.kernel.monitor import Monitor
from nbelastic.kernel.namespace import user_namespace
from nbelastic.kernel.rng import rng_state, set_rng_state
from nbelastic.kernel.undo import SaveUndo
from nbelastic.locations import save_store
from nbelastic.lock import notebook_lock, sidecar_lock
from nbelastic.notebook import (
    FORMAT_VERSION,
    check_notebook_path,
    read_checkpoint,
    sidecar_dir,
    validate_checkpoint,
    write_checkpoint,
)
from nbelastic.objects import HASHER_VERSION, Profile, profile
from nbelastic.pending import discard_pending, write_pending
from nbelastic.planner import Group, Plan, format_bytes, make_plan
from nbelastic.rebuild import (
    ProgressCallback,
    RestoreReport,
    comparable_variables,
    open_checkpoint,
    rebuild,
    warn_of_environment,
)
from nbelastic.restore_plan import complete_report, loader, plan_restore, without_reserved_names
from nbelastic.sessions import frontend_writes
from nbelastic.store import (
    BlobStore,
    Manifest,
    ManifestEntry,
    store_group,
    write_manifest,
)
from nbelastic.store.remote import RemoteBlobStore, store_location
from nbelastic.trust import sign


@dataclass
class SaveReport:
    """What a save decided and wrote."""

    notebook: Path
    plan: Plan
    profiles: dict[str, Profile]
    bytes_stored: int
    bytes_new: int
    seconds: float
    checkpoint: str  # its id in the sidecar's history (see nbelastic.checkpoints)

    def summary(self) -> str:
        """One line for people: where, what was stored, what will be replayed, how long."""
        plan = self.plan
        parts = [
            f"saved {len(self.profiles)} variables to {self.notebook.name} "
            f"(checkpoint {self.checkpoint})",
            f"stored {len(plan.names('store'))} ({format_bytes(self.bytes_stored)}, "
            f"{format_bytes(self.bytes_new)} new)",
            f"replay {len(plan.names('replay'))} via {len(plan.replay)} cells",
        ]
        if plan.lost:
            parts.append("NOT restorable: " + ", ".join(plan.names("lost")))
        parts.append(f"est. restore {plan.restore_seconds:.2f} s; took {self.seconds:.2f} s")
        return "; ".join(parts)

    def to_json(self) -> dict:
        return {
            "notebook": str(self.notebook),
            "stored": self.plan.names("store"),
            "replayed": self.plan.names("replay"),
            "replay_cells": list(self.plan.replay),
            "lost": self.plan.names("lost"),
            "bytes_stored": self.bytes_stored,
            "bytes_new": self.bytes_new,
            "estimated_restore_seconds": round(self.plan.restore_seconds, 4),
            "seconds": round(self.seconds, 4),
            "checkpoint": self.checkpoint,
        }


def save_checkpoint(
    monitor: Monitor,
    notebook: str | os.PathLike,
    *,
    strategy: str = "optimal",
    bandwidth: float | None = None,
    progress: ProgressCallback | None = None,
    store_url: str | None = None,
) -> SaveReport:
    """Store the kernel's state in ``notebook`` (created, with the executed cells, if missing).

    ``store_url`` puts the blobs at an fsspec URL or in a directory instead of the sidecar
    (see nbelastic.locations).
    """
    started = time.perf_counter()
    rng_now = rng_state()
    notebook = Path(notebook)
    if notebook.is_dir():
        raise NbelasticError(f"{notebook} is a directory: give the path of a .ipynb notebook")
    if not notebook.parent.is_dir():
        raise NbelasticError(f"no directory {notebook.parent}: create it or fix the path")
    check_notebook_path(notebook)  # before any work: a wrong path fails now, writing nothing
    store = save_store(notebook, store_url)
    local = [store.root] if isinstance(store, BlobStore) else []
    undo = SaveUndo(sidecar_dir(notebook), *local)
    try:
        namespace, profiles, groups = _survey(monitor)
        if bandwidth is None:
            bandwidth = store.measure_bandwidth()
        with _excluding_gc(store):  # a gc meanwhile would not see the blobs this save reuses
            keys_before = _stored_keys(store)
            with _packing(store):  # small groups share one pack file: one file, one fsync
                plan, entries = _plan_and_store(
                    store,
                    monitor.history,
                    groups,
                    namespace,
                    bandwidth,
                    strategy,
                    progress,
                    monitor.imports.seconds,
                )
            entries = [_with_slot(store, entry) for entry in entries]
            manifest = Manifest(tuple(sorted(entries)))
            manifest_key = store.put("manifest", manifest.to_text().encode("utf-8"))
            rng_keys = {
                execution_id: store.put("json", json.dumps(state, sort_keys=True).encode())
                for execution_id, state in monitor.rng_states.items()
            }
            rng_now_key = store.put("json", json.dumps(rng_now, sort_keys=True).encode())
            store.flush(progress)  # every blob is in place before anything points at it
            document = _document(
                notebook,
                store,
                manifest_key,
                plan,
                monitor.history,
                profiles,
                rng_keys,
                monitor.imports.seconds,
            )
            document["rng"] = rng_now_key
            document["environment"] = fingerprint(namespace.values())
            new_cells = [e.code for e in monitor.history.executions if e.replayable]
            # One save at a time takes an id (signed with the rest: a text notebook keeps only
            # the id, see nbelastic.checkpoints), records the checkpoint in the sidecar's
            # history, writes the notebook, then manifest.txt. The record comes first because a
            # text notebook refers to it; a crash after it leaves a checkpoint that `nbelastic
            # log` lists and the notebook does not hold yet, and manifest.txt one save behind
            # (the next save rewrites it).
            with notebook_lock(notebook):
                document["checkpoint"] = next_checkpoint_id(sidecar_dir(notebook), document)
                document = sign(document)
                checkpoint_id = record_checkpoint(sidecar_dir(notebook), document)
                _write_notebook(monitor, notebook, document, new_cells)
                undo.commit()
                write_manifest(store, manifest)
    except BaseException:
        undo.undo()
        raise
    new_keys = _stored_keys(store) - keys_before
    return SaveReport(
        notebook=notebook,
        plan=plan,
        profiles=profiles,
        bytes_stored=sum(e.size for e in entries),
        bytes_new=sum(e.size for e in entries if e.key in new_keys),
        seconds=time.perf_counter() - started,
        checkpoint=checkpoint_id,
    )


def _write_notebook(monitor: Monitor, notebook: Path, document: dict, new_cells) -> None:
    """Put the checkpoint into ``notebook``, or leave it pending for the front-end that has
    the notebook open (see nbelastic.pending): rewriting the file under JupyterLab would make
    its next save ask "File Changed"."""
    if frontend_writes(notebook, monitor.shell.user_ns):
        validate_checkpoint(document)
        write_pending(notebook, document)
        return
    write_checkpoint(notebook, document, new_cells=new_cells)
    discard_pending(notebook)  # superseded by the file's newer checkpoint


def _stored_keys(store: BlobStore | RemoteBlobStore) -> set[str]:
    """The blobs present, loose or in the packs this store knows of."""
    return store.keys() | (store.packed_keys() if isinstance(store, BlobStore) else set())


def _packing(store: BlobStore | RemoteBlobStore) -> AbstractContextManager:
    """A local store packs small blobs; a remote one keeps a file per blob."""
    return store.packing() if isinstance(store, BlobStore) else nullcontext()


def _with_slot(store: BlobStore | RemoteBlobStore, entry: ManifestEntry) -> ManifestEntry:
    slot = store.slot(entry.key) if isinstance(store, BlobStore) else None
    return replace(entry, pack=slot) if slot else entry


def _excluding_gc(store: BlobStore | RemoteBlobStore) -> AbstractContextManager:
    """The sidecar's shared lock (see nbelastic.lock.sidecar_lock) for a local store."""
    if not isinstance(store, BlobStore):
        return nullcontext()
    with suppress(OSError):  # if it cannot be made, the save's first write says why
        store.root.mkdir(parents=True, exist_ok=True)
    return sidecar_lock(store.root, exclusive=False)


def plan_now(
    monitor: Monitor,
    *,
    strategy: str = "optimal",
    bandwidth: float | None = None,
) -> tuple[Plan, dict[str, Profile]]:
    """The plan a save would make now (without encoding anything), with each variable's profile."""
    _, profiles, groups = _survey(monitor)
    if bandwidth is None:
        bandwidth = BlobStore(tempfile.gettempdir()).measure_bandwidth()
    plan = make_plan(monitor.history, groups, bandwidth, strategy, monitor.imports.seconds)
    return plan, profiles


def _survey(monitor: Monitor) -> tuple[dict, dict[str, Profile], list[Group]]:
    """Profile every live variable, reconcile the history, and form the linked groups."""
    namespace = user_namespace(monitor.shell)
    profiles = {name: profile(value) for name, value in namespace.items()}
    _reconcile(monitor, namespace, profiles)
    tokens = {name: p.tokens for name, p in profiles.items()}
    groups = [_group(names, profiles, namespace) for names in linked_groups(tokens)]
    return namespace, profiles, groups


def _reconcile(monitor: Monitor, namespace: dict, profiles: dict[str, Profile]) -> None:
    """Make the history agree with the namespace before planning.

    Variables created or changed where the monitor could not see (a silent execution, an object
    mutated through a path no cell touched) are attributed to a pseudo execution that cannot be
    replayed, so the planner stores them; names that vanished are recorded as deleted.
    """
    history = monitor.history
    vanished = set(history.active) - set(namespace)
    unseen = []
    for name, fresh in profiles.items():
        known = monitor.profiles.get(name)
        # Where the monitor fingerprinted watched buffers, it compares fingerprints.
        watched = known is not None and known.watched
        current = monitor.profile(namespace[name]) if watched else fresh
        changed = known is not None and current.hash is not None and current.hash != known.hash
        if name not in history.active or known is None or changed:
            unseen.append(name)
            monitor.remember(name, current)
    if vanished or unseen:
        history.record(UNMONITORED_CODE, 0.0, writes=unseen, deletes=vanished, replayable=False)


def _group(names: tuple[str, ...], profiles: dict[str, Profile], namespace: dict) -> Group:
    reasons = [profiles[n].unstorable for n in names if profiles[n].unstorable]
    if reasons:
        return Group(names, None, why_unstorable=reasons[0])
    packages = tuple(sorted({p for n in names for p in packages_of(namespace[n])}))
    return Group(names, sum(profiles[n].size for n in names), packages=packages)


def _plan_and_store(
    store: BlobStore,
    history: History,
    groups: list[Group],
    namespace: dict,
    bandwidth: float,
    strategy: str,
    progress: ProgressCallback | None,
    imports: dict[str, float],
) -> tuple[Plan, list[ManifestEntry]]:
    """Plan, then stream each group into the store, one at a time to bound memory.

    A group that turns out not to encode is marked unstorable and the plan is made again; blobs
    already written stay valid (content-addressed) and are reused by the new plan.
    """
    written: dict[tuple[str, ...], ManifestEntry] = {}
    while True:
        plan = make_plan(history, groups, bandwidth, strategy, imports)
        failed = None
        for index, group in enumerate(plan.stored):
            if group.names in written:
                continue
            try:
                codec, key, size = store_group(store, {n: namespace[n] for n in group.names})
            except UnserializableError as error:
                failed = (group, str(error))
                break
            written[group.names] = ManifestEntry(group.names, codec, size, key)
            if progress:
                progress(f"stored {', '.join(group.names)}", index + 1, len(plan.stored))
        if failed is None:
            return plan, [written[g.names] for g in plan.stored]
        bad, reason = failed
        groups = [Group(g.names, None, why_unstorable=reason) if g == bad else g for g in groups]


def _document(notebook, store, manifest_key, plan, history, profiles, rng_keys, imports) -> dict:
    graph = history.to_json()
    for execution in graph["executions"]:
        execution["rng"] = rng_keys.get(execution["id"], execution["rng"])
    actions = plan.actions
    return {
        "format": FORMAT_VERSION,
        "hasher": HASHER_VERSION,
        "producer": f"nbelastic {__version__}",
        "store": store_location(store, notebook),
        "manifest": manifest_key,
        "plan": {
            "strategy": plan.strategy,
            "bandwidth": plan.bandwidth,
            "replay": list(plan.replay),
            "restore_seconds": round(plan.restore_seconds, 6),
            "import_seconds": round(plan.import_seconds, 6),
            "imports": {
                package: round(seconds, 6)
                for package, seconds in sorted(imports.items())
                # every group's, not just the stored ones': a restored kernel plans with
                # these, and a package left out would make its next plan differ
                if any(package in group.packages for group in (*plan.stored, *plan.recomputed))
            },
        },
        "history": graph,
        "variables": {
            name: {
                "type": p.type_name,
                "size": p.size,
                "hash": p.hash,
                "action": actions[name],
                "why": plan.reasons[name],
            }
            for name, p in sorted(profiles.items())
        },
    }


def restore_checkpoint(
    monitor: Monitor,
    notebook: str | os.PathLike,
    *,
    progress: ProgressCallback | None = None,
    at: str | None = None,
    trust: bool = False,
) -> RestoreReport:
    """Bring the state saved in ``notebook`` back into this kernel and verify it.

    ``at`` names an earlier checkpoint of the sidecar's history (see nbelastic.checkpoints)
    to restore instead of the one the notebook holds. A checkpoint this user did not sign
    loads only what cannot run code, unless ``trust`` (see nbelastic.trust), binds no
    reserved name, and leaves its history behind (see Monitor.adopt_values). Called from a
    cell that does not await it, a replayed cell with top-level ``await`` fails, saying how to
    restore it (see ``restore_checkpoint_async``).
    """
    restoring = _restore(monitor, notebook, progress, at, trust, awaited=False)
    try:
        restoring.send(None)
    except StopIteration as done:
        return done.value
    restoring.close()
    raise AssertionError("a restore that is not awaited waited for its event loop")


async def restore_checkpoint_async(
    monitor: Monitor,
    notebook: str | os.PathLike,
    *,
    progress: ProgressCallback | None = None,
    at: str | None = None,
    trust: bool = False,
) -> RestoreReport:
    """``restore_checkpoint``, awaited in the kernel's running loop (IPython's autoawait), where
    replayed cells with top-level ``await`` run as they did, in order with the others."""
    return await _restore(monitor, notebook, progress, at, trust, awaited=True)


async def _restore(monitor, notebook, progress, at, trust, *, awaited: bool) -> RestoreReport:
    if at is None:  # the cells are not read: spare the kernel nbformat (see read_checkpoint)
        document = read_checkpoint(notebook, whole_notebook=False)
    else:
        document = find_checkpoint(notebook, at).document
    checkpoint = open_checkpoint(
        notebook, document, progress=progress, trust=trust, check_environment=False
    )
    trusted = trust or checkpoint.trusted
    plan = plan_restore(checkpoint, trust=trust)
    if not trusted:
        plan = without_reserved_names(plan, _reserved_names(monitor.shell))
    shell = monitor.shell
    monitor.paused = True
    try:
        report = await rebuild(
            checkpoint.history,
            plan.entries,
            plan.replay,
            comparable_variables(checkpoint),
            load_group=loader(checkpoint.store, trusted=trusted),
            run_execution=_cell_runner(shell, checkpoint.rng_states, monitor.entropy, awaited),
            namespace=shell.user_ns,
            progress=progress,
            not_loaded=plan.not_loaded,
        )
    finally:
        monitor.paused = False
    if checkpoint.rng_at_save is not None:
        set_rng_state(checkpoint.rng_at_save)
    if trusted:
        monitor.adopt(checkpoint.history, checkpoint.rng_states, report.profiles)
        # the import times measured where the cells ran, not those of this restore's imports:
        # saving the same state again plans the same way
        monitor.imports.seconds = dict(checkpoint.document["plan"].get("imports", {}))
    else:
        monitor.adopt_values(report.loaded, report.profiles)
    warn_of_environment(checkpoint)
    return complete_report(report, checkpoint, plan, trust=trust)


def _reserved_names(shell) -> set[str]:
    """Names an untrusted checkpoint may not bind: Python's builtins, IPython's own (``In``,
    ``get_ipython``, ``exit``...), and every dunder. Bound from plain data, ``print`` or
    ``get_ipython`` would be the sender's object the next time the user calls it."""
    import builtins

    return set(dir(builtins)) | set(shell.user_ns_hidden) | {"get_ipython", "__builtins__"}


NOT_AWAITED = (
    "it uses top-level await, which a restore can replay only when it is awaited: restore "
    "with `%nbelastic restore` or `await nbelastic.restore_async()`"
)


def _cell_runner(
    shell, rng_states: dict[int, dict], entropy: EntropyTape, awaited: bool
) -> Callable[[Execution], Awaitable[str | None]]:
    """Replays a cell as it ran: from the generators' state it had, given the entropy it drew;
    ``awaited``, in the caller's running loop."""

    async def run(execution: Execution) -> str | None:
        code = execution.code
        if not awaited and _loop_is_running() and _awaits(shell, code):
            return NOT_AWAITED
        state = rng_states.get(execution.id)
        if state is not None:
            set_rng_state(state)
        entropy.replay(state.get("entropy", ()) if state else ())
        try:
            with capture_output(display=True):
                if awaited:
                    result = await _run_cell_async(shell, code)
                else:
                    result = shell.run_cell(code, store_history=False, silent=True)
        finally:
            entropy.stop_replay()
        error = result.error_before_exec or result.error_in_exec
        return None if error is None else f"{type(error).__name__}: {error}"

    return run


async def _run_cell_async(shell, code: str):
    """What ``shell.run_cell`` does, awaited instead of run to its end in a loop of its own."""
    try:
        transformed, failed = shell.transform_cell(code), None
    except Exception:  # noqa: BLE001 - IPython reports it as the cell's error, as run_cell does
        transformed, failed = code, sys.exc_info()
    try:
        return await shell.run_cell_async(
            code,
            store_history=False,
            silent=True,
            transformed_cell=transformed,
            preprocessing_exc_tuple=failed,
        )
    finally:
        shell.events.trigger("post_execute")


def _awaits(shell, code: str) -> bool:
    """Whether IPython would run ``code`` as a coroutine (it has top-level ``await``)."""
    try:
        transformed = shell.transform_cell(code)
    except Exception:  # noqa: BLE001 - run_cell reports it as the cell's error
        return False
    return shell.should_run_async(code, transformed_cell=transformed, preprocessing_exc_tuple=None)


def _loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
