"""``nbelastic log`` and ``nbelastic diff``: a notebook's recorded checkpoints, read from disk.

No kernel is started and no value is decoded: everything comes from the checkpoint records,
their manifests and the notebook's own metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nbelastic.changes import Changes, compare, stored_blobs
from nbelastic.checkpoints import (
    CheckpointRecord,
    current_record,
    find_checkpoint,
    list_checkpoints,
)
from nbelastic.errors import NoCheckpointError
from nbelastic.locations import open_store, require_sidecar
from nbelastic.notebook import held_checkpoint, read_notebook, sidecar_dir
from nbelastic.planner import format_bytes
from nbelastic.tables import format_table


@dataclass(frozen=True)
class LogEntry:
    """One recorded checkpoint, with what changed since the one before it."""

    record: CheckpointRecord
    changes: Changes
    stored_bytes: int | None  # None when its manifest cannot be read
    new_bytes: int | None  # bytes of blobs the previous checkpoint did not have
    current: bool  # the notebook holds this checkpoint

    def to_json(self) -> dict:
        return {
            "id": self.record.id,
            "saved_at": self.record.saved_at,
            "current": self.current,
            "variables": len(self.record.document["variables"]),
            "added": self.changes.names("added"),
            "changed": self.changes.names("changed"),
            "removed": self.changes.names("removed"),
            "bytes_stored": self.stored_bytes,
            "bytes_new": self.new_bytes,
        }


def checkpoint_log(notebook: str | os.PathLike) -> list[LogEntry]:
    """The notebook's checkpoints, oldest first; NoCheckpointError if it has none."""
    notebook = Path(notebook)
    document = held_checkpoint(read_notebook(notebook), notebook)
    require_sidecar(notebook, document)
    current = current_record(sidecar_dir(notebook), document)
    records = list_checkpoints(sidecar_dir(notebook))
    if not records:
        raise NoCheckpointError(
            f"{notebook} has no recorded checkpoints: save with `%nbelastic save` or "
            f"`nbelastic run {notebook}` (saves made before nbelastic kept a history are not "
            "listed)"
        )
    entries, previous, previous_blobs = [], None, {}
    for record in records:
        blobs = stored_blobs(record.document, open_store(record.document["store"], notebook))
        new = None if blobs is None else sum(s for k, s in blobs.items() if k not in previous_blobs)
        entries.append(
            LogEntry(
                record,
                compare(previous, record.document),
                None if blobs is None else sum(blobs.values()),
                new,
                current is not None and record.id == current.id,
            )
        )
        previous, previous_blobs = record.document, blobs or {}
    return entries


def format_log(entries: list[LogEntry]) -> str:
    """One line per checkpoint; ``*`` marks the one the notebook holds."""
    rows = [
        [
            ("* " if e.current else "  ") + e.record.id,
            e.record.local_time(),
            str(len(e.record.document["variables"])),
            _size(e.stored_bytes),
            _size(e.new_bytes),
            e.changes.brief(),
        ]
        for e in entries
    ]
    header = ["  checkpoint", "saved", "variables", "stored", "new", "changes"]
    return format_table(header, rows, right={2, 3, 4})


@dataclass(frozen=True)
class CheckpointDiff:
    """Two checkpoints and the variables that differ between them."""

    before: CheckpointRecord
    after: CheckpointRecord
    changes: Changes

    def to_json(self) -> dict:
        return {
            "from": self.before.id,
            "to": self.after.id,
            "changes": [
                {
                    "name": item.name,
                    "change": item.kind,
                    "type": (item.after or item.before)["type"],
                    "size_before": None if item.before is None else item.before["size"],
                    "size_after": None if item.after is None else item.after["size"],
                }
                for item in self.changes.items
            ],
        }


def checkpoint_diff(notebook: str | os.PathLike, before: str, after: str) -> CheckpointDiff:
    """Compare the checkpoints ``before`` and ``after`` name (as ``find_checkpoint`` reads them)."""
    read_notebook(notebook)  # no such notebook, or not one: say so, not "no checkpoint"
    old, new = find_checkpoint(notebook, before), find_checkpoint(notebook, after)
    return CheckpointDiff(old, new, compare(old.document, new.document))


def format_diff(diff: CheckpointDiff) -> str:
    """A table of the differing variables with their types and sizes, or one line if none."""
    title = f"{diff.before.id} -> {diff.after.id}"
    if not diff.changes.items:
        return f"{title}: no variable changed"
    rows = []
    for item in diff.changes.items:
        row = item.after or item.before
        before = "" if item.before is None else format_bytes(item.before["size"])
        after = "" if item.after is None else format_bytes(item.after["size"])
        rows.append([item.kind, item.name, row["type"], before, after])
    table = format_table(["change", "variable", "type", "before", "after"], rows, right={3, 4})
    return f"{title}\n{table}"


def _size(size: int | None) -> str:
    return "?" if size is None else format_bytes(size)
