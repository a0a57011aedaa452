"""Rebuild a namespace from a checkpoint: replay the chosen cells, load stored groups, verify.

The order matters. Executions are replayed in their original order, and each stored variable
is bound right after the execution that wrote its active version, so a replayed cell that reads
it sees exactly the value it read the first time. Values of one linked group come from one
decode, so identity (``b is a``) and shared memory survive. At the end every variable's content
hash is compared with the one recorded at save time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbelastic.environment import differences
from nbelastic.errors import NbelasticError, RestoreError, TrustError
from nbelastic.history import Execution, History
from nbelastic.locations import open_store, require_sidecar
from nbelastic.notebook import hasher_version, read_checkpoint
from nbelastic.objects import HASHER_VERSION, Profile, profile
from nbelastic.store import BlobStore, Manifest, ManifestEntry, read_manifest
from nbelastic.store.remote import RemoteBlobStore, is_url
from nbelastic.trust import is_trusted

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class Checkpoint:
    """A checkpoint read back and checked, with what is damaged in it and whether it is trusted.

    ``damaged`` maps each group whose blob is missing or corrupt to the problem; ``warnings``
    are lines for people (a changed environment, a lost random state). ``rng_at_save`` is the
    global generators' state when it was saved, where a restore leaves them.
    """

    notebook: Path
    document: dict
    history: History
    store: BlobStore | RemoteBlobStore
    manifest: Manifest
    rng_states: dict[int, dict]
    trusted: bool = False
    damaged: dict[ManifestEntry, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rng_at_save: dict | None = None


def open_checkpoint(
    notebook: str | os.PathLike,
    document: dict | None = None,
    *,
    check_blobs: bool = True,
    progress: ProgressCallback | None = None,
    trust: bool = False,
    reviewing: bool = False,
    check_environment: bool = True,
) -> Checkpoint:
    """Read and check ``notebook``'s checkpoint before anything is restored.

    ``document`` is an already validated checkpoint to use instead of the notebook's own (an
    earlier one from the sidecar's history). Every problem (no checkpoint, malformed or newer
    metadata, missing sidecar or manifest) raises an NbelasticError with one line saying
    what to do, and nothing has been changed. A missing or corrupt variable blob is not an error
    here: it is listed in ``damaged`` (checked only with ``check_blobs``), and the restore
    rebuilds that group by replaying cells if it can. Blobs of a remote store are downloaded
    while they are checked, in parallel, reporting to ``progress``.

    A checkpoint this user did not sign (and was not told to ``trust``) may name any URL as its
    store: it is not contacted, or opening a notebook would make this machine call an address
    of the sender's choosing with this user's credentials. Only a review (``reviewing``, for
    ``nbelastic trust``), which the user asked for, reads it.

    Nor may it name a directory outside the notebook's folder (``../other.nbelastic``, or a
    link leading there): its data would come from this user's other notebooks.

    Without ``check_environment`` the packages' versions are not compared here: a restore
    compares them after loading (see ``warn_of_environment``).
    """
    notebook = Path(notebook)
    if document is None:
        document = read_checkpoint(notebook)
    trusted = is_trusted(document)
    if is_url(document["store"]) and not (trusted or trust or reviewing):
        raise TrustError(
            f"{notebook} keeps its state at {document['store']} and you did not sign it: "
            f"nothing was fetched; review it with `nbelastic trust {notebook}`"
        )
    if not (trusted or trust or reviewing) and _outside_folder(document["store"], notebook):
        raise TrustError(
            f"{notebook} keeps its state in {document['store']}, outside the notebook's folder, "
            f"and you did not sign it: nothing was read; review it with `nbelastic trust "
            f"{notebook}`"
        )
    history = History.from_json(document["history"])
    require_sidecar(notebook, document)
    store = open_store(document["store"], notebook)
    if not store.exists():
        raise RestoreError(
            f"nothing is stored at {store.url}: check the URL and your credentials"
            if isinstance(store, RemoteBlobStore)
            else f"the sidecar store {store.root} is missing: copy it next to {notebook.name} "
            "(it holds the stored variables) and restore again"
        )
    manifest = read_manifest(store, document["manifest"])
    checkpoint = Checkpoint(notebook, document, history, store, manifest, {})
    checkpoint.trusted = trusted
    if check_environment:
        warn_of_environment(checkpoint)
    if hasher_version(document) != HASHER_VERSION:
        checkpoint.warnings.append(
            f"this checkpoint was hashed by hasher version {hasher_version(document)} and this "
            f"nbelastic hashes with version {HASHER_VERSION}: restored values are not compared "
            "(save again to record comparable hashes)"
        )
    if check_blobs:
        if isinstance(store, RemoteBlobStore):
            rng = [e.rng for e in history.executions if e.rng is not None]
            rng += [document["rng"]] if document.get("rng") else []
            store.prefetch([*(e.key for e in manifest.entries), *rng], progress)
        problems = store.check_many(entry.key for entry in manifest.entries)
        for entry in manifest.entries:
            problem = problems[entry.key] or codec_disagreement(store, entry)
            if problem is not None:
                checkpoint.damaged[entry] = problem
    for execution in history.executions:
        if execution.rng is None:
            continue
        try:
            checkpoint.rng_states[execution.id] = json.loads(store.get(execution.rng)[1])
        except (NbelasticError, ValueError, RecursionError):
            checkpoint.warnings.append(
                f"the random state before cell {execution.id} is missing or damaged: "
                "its random draws may come out differently"
            )
    if document.get("rng"):
        try:
            checkpoint.rng_at_save = json.loads(store.get(document["rng"])[1])
        except (NbelasticError, ValueError):
            checkpoint.warnings.append(
                "the random generators' state at save is missing or damaged: the next random "
                "draws will not be the ones the saved kernel would have made"
            )
    return checkpoint


def _outside_folder(location: str, notebook: Path) -> bool:
    """Whether a local store leads out of the notebook's folder (``..``, or a link)."""
    if is_url(location):
        return False
    folder = notebook.resolve().parent
    return not (folder / location).resolve().is_relative_to(folder)


def codec_disagreement(store: BlobStore | RemoteBlobStore, entry: ManifestEntry) -> str | None:
    """Why a checked blob is not what its manifest line says it is (its own header names
    another codec), or None. A disagreement is corruption: neither claim can be believed, and
    a review must not show plain data where a load would unpickle."""
    try:
        with store.open(entry.key) as (codec, _):
            pass
    except NbelasticError as error:
        return str(error)
    if codec == entry.codec:
        return None
    return (
        f"blob {entry.key[:12]} is corrupt (its header says {codec}, "
        f"the manifest says {entry.codec})"
    )


def warn_of_environment(checkpoint: Checkpoint) -> None:
    """Add the line saying how this environment differs from the one the checkpoint was saved
    in, if it does.

    Cheapest once the restored values are loaded: the packages they needed are imported by
    then and say their own version, where a package not imported yet is looked up among every
    installed distribution (a tenth of a second to half a second).
    """
    environment = checkpoint.document.get("environment")
    changed = differences(environment) if environment else []
    if changed:
        checkpoint.warnings.append(
            f"saved in another environment: here {'; '.join(changed)}; "
            "values may load or behave differently"
        )


def comparable_variables(checkpoint: Checkpoint) -> dict[str, dict]:
    """The checkpoint's variable table, without hashes when another hasher version made them:
    those variables are then reported as not comparable, not as mismatched."""
    variables = checkpoint.document["variables"]
    if hasher_version(checkpoint.document) == HASHER_VERSION:
        return variables
    return {name: {**info, "hash": None} for name, info in variables.items()}


@dataclass
class RestoreReport:
    """What a restore did and what its verification found."""

    loaded: list[str] = field(default_factory=list)
    replayed: list[int] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    unverifiable: list[str] = field(default_factory=list)
    mismatched: dict[str, str] = field(default_factory=dict)
    lost: dict[str, str] = field(default_factory=dict)
    failed_cells: dict[int, str] = field(default_factory=dict)
    rebuilt: dict[str, str] = field(default_factory=dict)
    not_loaded: dict[str, str] = field(default_factory=dict)
    trusted: bool = True
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # The profiles the verification took of the restored values, which the monitor adopts
    # rather than hashing every value a second time.
    profiles: dict[str, Profile] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when every variable that was saved came back with the recorded content."""
        return not self.mismatched and not self.failed_cells and not self.not_loaded

    def summary(self) -> str:
        """One line for people: what came back, how, and whether it checked out."""
        restored = len(self.verified) + len(self.unverifiable) + len(self.mismatched)
        total = restored + len(self.not_loaded)
        parts = [
            f"restored {restored} variables in {self.seconds:.2f} s",
            f"loaded {len(self.loaded)}",
            f"replayed {len(self.replayed)} cells",
            f"verified {len(self.verified)}/{total}",
        ]
        if self.unverifiable:
            parts.append(f"{len(self.unverifiable)} not comparable")
        if self.mismatched:
            names = ", ".join(f"{n} ({why})" for n, why in sorted(self.mismatched.items()))
            parts.append(f"MISMATCH: {names}")
        if self.failed_cells:
            parts.append("failed cells: " + ", ".join(str(i) for i in sorted(self.failed_cells)))
        if self.lost:
            parts.append("not restorable: " + ", ".join(sorted(self.lost)))
        if self.rebuilt:
            parts.append("rebuilt by replay (blob damaged): " + ", ".join(sorted(self.rebuilt)))
        if self.not_loaded:
            parts.append("NOT loaded: " + ", ".join(sorted(self.not_loaded)))
        return "; ".join(parts)

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "loaded": sorted(self.loaded),
            "replayed": self.replayed,
            "verified": sorted(self.verified),
            "unverifiable": sorted(self.unverifiable),
            "mismatched": dict(sorted(self.mismatched.items())),
            "lost": dict(sorted(self.lost.items())),
            "failed_cells": {str(k): v for k, v in sorted(self.failed_cells.items())},
            "rebuilt": dict(sorted(self.rebuilt.items())),
            "not_loaded": dict(sorted(self.not_loaded.items())),
            "trusted": self.trusted,
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 4),
        }


async def rebuild(
    history: History,
    entries: Sequence[ManifestEntry],
    replay: Sequence[int],
    variables: Mapping[str, Mapping],
    *,
    load_group: Callable[[ManifestEntry], Mapping[str, object]],
    run_execution: Callable[[Execution], Awaitable[str | None]],
    namespace: MutableMapping[str, object],
    progress: ProgressCallback | None = None,
    not_loaded: Mapping[str, str] | None = None,
) -> RestoreReport:
    """Replay ``replay`` and bind the stored ``entries`` into ``namespace``, then verify.

    ``run_execution`` runs one cell and returns the error text if it raised, else None; it
    is awaited, so that a cell with top-level ``await`` replays in the caller's running loop,
    in its place among the others (a caller without a loop drives this to its end at once).
    ``variables`` is the checkpoint's variable table (``hash`` and ``action`` per name).
    ``not_loaded`` names the variables left out on purpose, and why; a group that
    ``load_group`` fails to load (an NbelasticError) joins them, and the rest goes on.
    """
    started = time.perf_counter()
    report = RestoreReport(not_loaded=dict(not_loaded or {}))
    names_before = set(namespace)
    # Each stored name is bound right after the execution that wrote its active version; a
    # linked group is decoded once, at its first name, so its members keep sharing objects.
    bind_after: dict[int, list[tuple[ManifestEntry, str]]] = {}
    for entry in entries:
        for name in entry.names:
            point = _bind_point(history, name)
            bind_after.setdefault(point, []).append((entry, name))
            if point > 0 and _written_outside_cells(history, name):
                # Made where no cell was watched (a silent execution): replayed cells may have
                # read it unrecorded, so it is in place before them too, and bound again at its
                # own point in case a replayed cell rebinds an older version.
                bind_after.setdefault(-1, []).append((entry, name))
    decoded: dict[ManifestEntry, Mapping[str, object] | None] = {}
    steps = sorted(set(replay) | set(bind_after))
    total = len(replay) + len(entries)
    done = 0
    for step in steps:
        if step in replay:
            execution = history.execution(step)
            error = await run_execution(execution)
            if error is not None and not execution.raised:
                report.failed_cells[step] = error
            report.replayed.append(step)
            done += 1
            if progress:
                progress(f"replayed cell {step}", done, total)
        for entry, name in bind_after.get(step, ()):
            if entry not in decoded:
                decoded[entry] = _load(load_group, entry, report)
                done += 1
                if progress:
                    progress(f"loaded {', '.join(entry.names)}", done, total)
            values = decoded[entry]
            if values is not None:
                namespace[name] = values[name]
                if name not in report.loaded:
                    report.loaded.append(name)
    for name in set(namespace) - names_before - set(variables):
        del namespace[name]
    _verify(report, variables, namespace)
    _bind_stored_copies_again(report, variables, namespace, decoded, load_group)
    _name_the_cells(report, history, variables)
    report.seconds = time.perf_counter() - started
    return report


def _bind_stored_copies_again(
    report: RestoreReport,
    variables: Mapping[str, Mapping],
    namespace: MutableMapping[str, object],
    decoded: Mapping[ManifestEntry, Mapping[str, object] | None],
    load_group: Callable[[ManifestEntry], Mapping[str, object]],
) -> None:
    """A stored variable that differs at the end was changed by a cell replayed after it was
    bound: its stored copy is decoded and bound again (its whole group, to keep identities),
    rather than leaving a value other than the saved one in its place."""
    changed = [
        e for e, values in decoded.items() if values and set(e.names) & report.mismatched.keys()
    ]
    for entry in changed:
        values = _load(load_group, entry, report)
        if values is None:
            continue
        for name in entry.names:
            namespace[name] = values[name]
            report.mismatched.pop(name, None)
            if name in report.verified:
                report.verified.remove(name)
        _verify(report, {n: variables[n] for n in entry.names}, namespace)
        for name in entry.names:
            if name in report.verified:
                report.warnings.append(
                    f"{name} was changed by a replayed cell after it was loaded: its stored "
                    "copy is bound again"
                )


def _name_the_cells(report: RestoreReport, history: History, variables: Mapping) -> None:
    """Say which cell made each variable that came out differently from a replay."""
    for name, why in list(report.mismatched.items()):
        snapshot = history.active.get(name)
        if variables[name]["action"] == "replay" and snapshot is not None:
            cell = history.writer(snapshot).id
            report.mismatched[name] = f"{why}, after replaying cell {cell}"


def _load(
    load_group: Callable[[ManifestEntry], Mapping[str, object]],
    entry: ManifestEntry,
    report: RestoreReport,
) -> Mapping[str, object] | None:
    try:
        return load_group(entry)
    except NbelasticError as error:
        for name in entry.names:
            report.not_loaded[name] = str(error)
        return None


def _written_outside_cells(history: History, name: str) -> bool:
    snapshot = history.active.get(name)
    return snapshot is None or not history.writer(snapshot).replayable


def _bind_point(history: History, name: str) -> int:
    snapshot = history.active.get(name)
    if snapshot is None:
        return history.executions[-1].id if history.executions else 0
    return history.writer(snapshot).id


def _verify(report: RestoreReport, variables: Mapping[str, Mapping], namespace: Mapping) -> None:
    for name, info in sorted(variables.items()):
        if info["action"] == "lost":
            report.lost[name] = info["why"]
        elif name in report.not_loaded:
            continue
        elif name not in namespace:
            report.mismatched[name] = "missing after restore"
        elif info["hash"] is None:
            report.unverifiable.append(name)
        else:
            restored = report.profiles[name] = profile(namespace[name])
            if restored.hash is None:
                report.unverifiable.append(name)
            elif restored.hash != info["hash"]:
                report.mismatched[name] = "content differs from the saved value"
            else:
                report.verified.append(name)
