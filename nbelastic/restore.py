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
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbelastic.errors import RestoreError
from nbelastic.history import Execution, History
from nbelastic.notebook import read_checkpoint
from nbelastic.objects import profile
from nbelastic.store import BlobStore, Manifest, ManifestEntry, read_manifest

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class Checkpoint:
    """A checkpoint read back and checked: everything a restore needs is known to be there."""

    notebook: Path
    document: dict
    history: History
    store: BlobStore
    manifest: Manifest
    rng_states: dict[int, dict]


def open_checkpoint(notebook: str | os.PathLike, document: dict | None = None) -> Checkpoint:
    """Read and check ``notebook``'s checkpoint before anything is restored.

    ``document`` is an already validated checkpoint to use instead of the notebook's own (an
    earlier one from the sidecar's history). Every problem (no checkpoint, malformed or newer
    metadata, missing sidecar, missing blob) raises an NbelasticError with one line saying
    what to do, and nothing has been changed.
    """
    notebook = Path(notebook)
    if document is None:
        document = read_checkpoint(notebook)
    history = History.from_json(document["history"])
    store = BlobStore(notebook.parent / document["store"])
    if not store.root.is_dir():
        raise RestoreError(
            f"the sidecar store {store.root} is missing: copy it next to {notebook.name} "
            "(it holds the stored variables) and restore again"
        )
    manifest = read_manifest(store, document["manifest"])
    missing = sorted(n for e in manifest.entries if not store.has(e.key) for n in e.names)
    missing += [
        f"the random state of cell {e.id}"
        for e in history.executions
        if e.rng is not None and not store.has(e.rng)
    ]
    if missing:
        raise RestoreError(
            f"the sidecar store {store.root} lacks the blobs of {', '.join(missing)}: "
            "copy the whole sidecar directory and restore again"
        )
    rng_states = {
        e.id: json.loads(store.get(e.rng)[1]) for e in history.executions if e.rng is not None
    }
    return Checkpoint(notebook, document, history, store, manifest, rng_states)


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
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every variable that was saved came back with the recorded content."""
        return not self.mismatched and not self.failed_cells

    def summary(self) -> str:
        """One line for people: what came back, how, and whether it checked out."""
        total = len(self.verified) + len(self.unverifiable) + len(self.mismatched)
        parts = [
            f"restored {total} variables in {self.seconds:.2f} s",
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
            "seconds": round(self.seconds, 4),
        }


def rebuild(
    history: History,
    entries: Sequence[ManifestEntry],
    replay: Sequence[int],
    variables: Mapping[str, Mapping],
    *,
    load_group: Callable[[ManifestEntry], Mapping[str, object]],
    run_execution: Callable[[Execution], str | None],
    namespace: MutableMapping[str, object],
    progress: ProgressCallback | None = None,
) -> RestoreReport:
    """Replay ``replay`` and bind the stored ``entries`` into ``namespace``, then verify.

    ``run_execution`` runs one cell and returns the error text if it raised, else None.
    ``variables`` is the checkpoint's variable table (``hash`` and ``action`` per name).
    """
    started = time.perf_counter()
    report = RestoreReport()
    names_before = set(namespace)
    # Each stored name is bound right after the execution that wrote its active version; a
    # linked group is decoded once, at its first name, so its members keep sharing objects.
    bind_after: dict[int, list[tuple[ManifestEntry, str]]] = {}
    for entry in entries:
        for name in entry.names:
            bind_after.setdefault(_bind_point(history, name), []).append((entry, name))
    decoded: dict[ManifestEntry, Mapping[str, object]] = {}
    steps = sorted(set(replay) | set(bind_after))
    total = len(replay) + len(entries)
    done = 0
    for step in steps:
        if step in replay:
            execution = history.execution(step)
            error = run_execution(execution)
            if error is not None and not execution.raised:
                report.failed_cells[step] = error
            report.replayed.append(step)
            done += 1
            if progress:
                progress(f"replayed cell {step}", done, total)
        for entry, name in bind_after.get(step, ()):
            if entry not in decoded:
                decoded[entry] = load_group(entry)
                done += 1
                if progress:
                    progress(f"loaded {', '.join(entry.names)}", done, total)
            namespace[name] = decoded[entry][name]
            report.loaded.append(name)
    for name in set(namespace) - names_before - set(variables):
        del namespace[name]
    _verify(report, variables, namespace)
    report.seconds = time.perf_counter() - started
    return report


def _bind_point(history: History, name: str) -> int:
    snapshot = history.active.get(name)
    if snapshot is None:
        return history.executions[-1].id if history.executions else 0
    return history.writer(snapshot).id


def _verify(report: RestoreReport, variables: Mapping[str, Mapping], namespace: Mapping) -> None:
    for name, info in sorted(variables.items()):
        if info["action"] == "lost":
            report.lost[name] = info["why"]
        elif name not in namespace:
            report.mismatched[name] = "missing after restore"
        elif info["hash"] is None:
            report.unverifiable.append(name)
        else:
            restored = profile(namespace[name])
            if restored.hash is None:
                report.unverifiable.append(name)
            elif restored.hash != info["hash"]:
                report.mismatched[name] = "content differs from the saved value"
            else:
                report.verified.append(name)
