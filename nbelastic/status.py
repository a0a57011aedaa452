"""``nbelastic status NB``: what a notebook's saved checkpoint holds, read without a kernel.

Each variable's fate (stored, replayed or lost) and its restore cost as the plan weighed it:
a stored variable costs its bytes over the plan's bandwidth, a replayed one the runtime of the
cells the restore replays for it. Nothing is decoded, so this is safe on untrusted notebooks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nbelastic.checkpoints import CheckpointRecord, current_record
from nbelastic.errors import NbelasticError
from nbelastic.graph import PlannedHistory, from_checkpoint
from nbelastic.history import History
from nbelastic.locations import open_store, require_sidecar
from nbelastic.notebook import read_checkpoint, sidecar_dir
from nbelastic.planner import format_bytes
from nbelastic.store import BlobStore, read_manifest
from nbelastic.store.blobs import short
from nbelastic.store.remote import RemoteBlobStore
from nbelastic.tables import format_table

_FATES = {"store": "stored", "replay": "replayed", "lost": "lost"}


@dataclass(frozen=True)
class VariableStatus:
    """One variable of a saved checkpoint."""

    name: str
    type: str
    size: int
    fate: str  # stored, replayed or lost
    cost: float | None  # estimated seconds to bring it back; None when lost
    why: str


@dataclass(frozen=True)
class SavedStatus:
    """A notebook's checkpoint at a glance."""

    notebook: Path
    record: CheckpointRecord | None  # its record in the sidecar's history, if any
    variables: list[VariableStatus]
    replay: list[int]
    restore_seconds: float
    # what would keep a restore from loading a stored variable, and what it does instead
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "notebook": str(self.notebook),
            "checkpoint": None if self.record is None else self.record.id,
            "saved_at": None if self.record is None else self.record.saved_at,
            "variables": [v.__dict__ for v in self.variables],
            "replay_cells": self.replay,
            "estimated_restore_seconds": round(self.restore_seconds, 4),
            "warnings": self.warnings,
        }

    def table(self) -> str:
        rows = [
            [
                v.name,
                v.type,
                format_bytes(v.size),
                v.fate,
                "-" if v.cost is None else f"{v.cost:.2f} s",
            ]
            for v in self.variables
        ]
        table = format_table(["variable", "type", "size", "fate", "cost"], rows, right={2, 4})
        which = ""
        if self.record is not None:
            which = f"checkpoint {self.record.id}, saved {self.record.local_time()}"
        cells = ", ".join(map(str, self.replay)) or "none"
        footer = f"estimated restore {self.restore_seconds:.2f} s (replays cells {cells})"
        return "\n".join(line for line in (table, footer, which) if line)


def saved_status(notebook: str | os.PathLike) -> SavedStatus:
    """The status of ``notebook``'s checkpoint; NbelasticError if it has none or a bad one."""
    notebook = Path(notebook)
    document = read_checkpoint(notebook)
    plan = document["plan"]
    history = History.from_json(document["history"])
    runtimes = {e.id: e.runtime for e in history.executions}
    replay = set(plan["replay"])
    store = open_store(document["store"], notebook)
    payload = _payload_sizes(document, store)
    rows = []
    for name, info in sorted(document["variables"].items()):
        if info["action"] == "store":
            cost = payload.get(name, info["size"]) / plan["bandwidth"]
        elif info["action"] == "replay" and name in history.active:
            cost = sum(runtimes[c] for c in history.recompute_set([name]) & replay)
        else:
            cost = None
        rows.append(
            VariableStatus(
                name, info["type"], info["size"], _FATES[info["action"]], cost, info["why"]
            )
        )
    found = SavedStatus(
        notebook,
        current_record(sidecar_dir(notebook), document),
        rows,
        list(plan["replay"]),
        plan["restore_seconds"],
    )
    _warn_of_missing_state(found, document, history, store)
    return found


def saved_graph(notebook: str | os.PathLike) -> PlannedHistory:
    """The history graph and plan ``notebook``'s checkpoint holds, to draw (``--graph``)."""
    notebook = Path(notebook)
    return from_checkpoint(read_checkpoint(notebook), f"{notebook.name}: history and restore plan")


def _payload_sizes(document: dict, store: BlobStore | RemoteBlobStore) -> dict[str, int]:
    """Bytes to load for each stored variable: its group's blob (a linked group is loaded
    whole, so each member is charged the group); empty if the manifest cannot be read."""
    try:
        manifest = read_manifest(store, document["manifest"])
    except NbelasticError:
        return {}
    return {name: entry.size for entry in manifest.entries for name in entry.names}


def _warn_of_missing_state(
    found: SavedStatus, document: dict, history: History, store: BlobStore | RemoteBlobStore
) -> None:
    """Add to ``found`` what would keep a restore from loading a stored variable (a missing
    sidecar, manifest or blob) and what the restore does instead, as ``verify`` would find it;
    nothing for a remote store, which status does not contact beyond the manifest."""
    from nbelastic.restore_plan import plan_load

    if isinstance(store, RemoteBlobStore):
        return
    try:
        require_sidecar(found.notebook, document)
        manifest = read_manifest(store, document["manifest"])
    except NbelasticError as error:
        found.warnings.append(f"a restore would fail: {error}")
        return
    damaged = {
        entry: f"its blob {short(entry.key)} is missing"
        for entry in manifest.entries
        if not store.has(entry.key)
    }
    plan = plan_load(history, manifest, document["plan"]["replay"], document["variables"], damaged)
    for name, why in plan.rebuilt.items():
        found.warnings.append(f"{name} is stored, but {why} at restore")
    for name, why in plan.not_loaded.items():
        found.warnings.append(f"{name} is stored, but {why}: a restore cannot load it")
