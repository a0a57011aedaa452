"""Show what restoring a checkpoint would run, so a user can decide to trust it.

``nbelastic trust NB`` prints this review, then signs the checkpoint as this user (see
nbelastic.trust). Nothing here runs code from the checkpoint: blobs are only read as bytes,
pickles are read by nbelastic.store.pickles for the globals they would import (the same
reading a trusted load is then held to), and module blobs for the name they would import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nbelastic.checkpoints import is_reference, sign_record
from nbelastic.lock import notebook_lock
from nbelastic.notebook import (
    METADATA_KEY,
    read_checkpoint,
    read_notebook,
    sidecar_dir,
    write_checkpoint,
)
from nbelastic.planner import format_bytes
from nbelastic.rebuild import open_checkpoint
from nbelastic.restore_plan import plan_restore
from nbelastic.store import SAFE_CODECS
from nbelastic.store.pickles import UnreadablePickleError, describe, pickle_globals
from nbelastic.trust import SIGNATURE_KEY, sign

_SHOWN_GLOBALS = 12


@dataclass
class Review:
    """A checkpoint as a user should see it before trusting it."""

    notebook: Path
    trusted: bool
    text: str


def review(notebook: str | os.PathLike) -> Review:
    """What a trusted restore of ``notebook``'s checkpoint would load and replay, in words.

    The review is of the load plan a trusted restore makes, not of the saved plan: a damaged
    blob (missing, corrupt, or of another codec than its manifest line says) is rebuilt by
    replaying cells, and those cells are listed with the others.
    """
    notebook = Path(notebook)
    checkpoint = open_checkpoint(notebook, reviewing=True)
    document = checkpoint.document
    if checkpoint.trusted:
        status = "signed by you"
    elif SIGNATURE_KEY in document:
        status = "NOT signed by you (signed by another user, another machine, or edited since)"
    else:
        status = "NOT signed (no signature)"
    lines = [f"{notebook}: checkpoint written by {document['producer']}, {status}"]
    plan = plan_restore(checkpoint, trust=True)
    runs_code, safe = [], []
    for entry in plan.entries:
        label = ", ".join(entry.names)
        if entry.codec in SAFE_CODECS:
            safe.append(f"{label} ({entry.codec})")
            continue
        with checkpoint.store.open(entry.key) as (codec, stream):
            runs_code.append(
                f"{label}: {codec}, {format_bytes(entry.size)}, {_what_runs(codec, stream)}"
            )
    if runs_code:
        lines.append(f"restoring it would load {len(runs_code)} value(s) that run code:")
        lines += [f"  {line}" for line in runs_code]
    if safe:
        lines.append(f"plain data, loaded even without trust: {', '.join(safe)}")
    lines += [f"  {name}: {why}" for name, why in sorted(plan.rebuilt.items())]
    lines += [f"  {name} NOT loaded: {why}" for name, why in sorted(plan.not_loaded.items())]
    if plan.replay:
        lines.append(f"and replay {len(plan.replay)} cell(s):")
        for execution_id in plan.replay:
            lines.append(f"  cell {execution_id}:")
            code = checkpoint.history.execution(execution_id).code
            lines += [f"    | {line}" for line in code.splitlines() or [""]]
    if not runs_code and not plan.replay:
        lines.append("restoring it runs no code")
    return Review(notebook, checkpoint.trusted, "\n".join(lines))


def trust_notebook(notebook: str | os.PathLike) -> None:
    """Sign ``notebook``'s checkpoint as this user: its next restores load everything.

    A text notebook keeps only a reference in its header, so its signature goes into the
    sidecar's record of the checkpoint, where the restore reads the document from.
    """
    notebook = Path(notebook)
    with notebook_lock(notebook):
        signed = sign(read_checkpoint(notebook))
        if is_reference(read_notebook(notebook).metadata.get(METADATA_KEY)):
            sign_record(sidecar_dir(notebook), signed)
        else:
            write_checkpoint(notebook, signed)


def _what_runs(codec: str, stream: BinaryIO) -> str:
    """What loading a blob of ``codec`` runs, read from its payload ``stream``."""
    if codec == "module":
        return f"imports {stream.read().decode('utf-8', 'replace')}"
    if codec in ("dill", "pickle"):
        try:
            names = sorted(describe(name) for name in pickle_globals(stream))
        except UnreadablePickleError:
            return "a pickle that cannot be read, which will not load"
        more = f" and {len(names) - _SHOWN_GLOBALS} more" if len(names) > _SHOWN_GLOBALS else ""
        if not names:
            return "a pickle that calls no function"
        return "unpickling calls " + ", ".join(names[:_SHOWN_GLOBALS]) + more
    return f"an unknown codec {codec!r} that this nbelastic will not load"
