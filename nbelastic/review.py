"""Show what restoring a checkpoint would run, so a user can decide to trust it.

``nbelastic trust NB`` prints this review, then signs the checkpoint as this user (see
nbelastic.trust). Nothing here runs code from the checkpoint: blobs are only read as bytes,
pickles are walked opcode by opcode (``pickletools``) to name the functions they would call,
and module blobs are read for the name they would import.
"""

from __future__ import annotations

import os
import pickletools
from dataclasses import dataclass
from pathlib import Path

from nbelastic.checkpoints import is_reference, sign_record
from nbelastic.errors import NbelasticError
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
from nbelastic.store import SAFE_CODECS
from nbelastic.trust import SIGNATURE_KEY, sign

_SHOWN_GLOBALS = 12


@dataclass
class Review:
    """A checkpoint as a user should see it before trusting it."""

    notebook: Path
    trusted: bool
    text: str


def review(notebook: str | os.PathLike) -> Review:
    """What restoring ``notebook``'s checkpoint would load and replay, in words."""
    notebook = Path(notebook)
    checkpoint = open_checkpoint(notebook, check_blobs=False, reviewing=True)
    document = checkpoint.document
    if checkpoint.trusted:
        status = "signed by you"
    elif SIGNATURE_KEY in document:
        status = "NOT signed by you (signed by another user, another machine, or edited since)"
    else:
        status = "NOT signed (no signature)"
    lines = [f"{notebook}: checkpoint written by {document['producer']}, {status}"]
    runs_code, safe = [], []
    for entry in checkpoint.manifest.entries:
        label = ", ".join(entry.names)
        if entry.codec in SAFE_CODECS:
            safe.append(f"{label} ({entry.codec})")
            continue
        try:
            codec, payload = checkpoint.store.get(entry.key)
        except NbelasticError:
            runs_code.append(f"{label}: {entry.codec}, its blob is missing or damaged")
            continue
        runs_code.append(
            f"{label}: {codec}, {format_bytes(len(payload))}, {_what_runs(codec, payload)}"
        )
    if runs_code:
        lines.append(f"restoring it would load {len(runs_code)} value(s) that run code:")
        lines += [f"  {line}" for line in runs_code]
    if safe:
        lines.append(f"plain data, loaded even without trust: {', '.join(safe)}")
    replay = document["plan"]["replay"]
    if replay:
        lines.append(f"and replay {len(replay)} cell(s):")
        for execution_id in replay:
            lines.append(f"  cell {execution_id}:")
            code = checkpoint.history.execution(execution_id).code
            lines += [f"    | {line}" for line in code.splitlines() or [""]]
    if not runs_code and not replay:
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


def _what_runs(codec: str, payload: bytes) -> str:
    if codec == "module":
        return f"imports {payload.decode('utf-8', 'replace')}"
    if codec in ("dill", "pickle"):
        names = pickle_globals(payload)
        if names is None:
            return "a pickle that cannot be read"
        more = f" and {len(names) - _SHOWN_GLOBALS} more" if len(names) > _SHOWN_GLOBALS else ""
        if not names:
            return "a pickle that calls no function"
        return "unpickling calls " + ", ".join(names[:_SHOWN_GLOBALS]) + more
    return f"an unknown codec {codec!r} that this nbelastic will not load"


def pickle_globals(payload: bytes) -> list[str] | None:
    """The ``module.name`` of every function or class a pickle refers to, without loading it.

    None when the bytes are not a readable pickle. This is a reading aid, not a proof: a
    pickle crafted to hide what it calls can compute a name this walk does not see, which is
    why trusting a checkpoint means trusting whoever wrote it.

    >>> import pickle, collections
    >>> pickle_globals(pickle.dumps(collections.OrderedDict(a=1)))
    ['collections.OrderedDict']
    >>> pickle_globals(b"not a pickle") is None
    True
    """
    found: set[str] = set()
    strings: list[str] = []  # STACK_GLOBAL takes module and name from the two pushed before it
    pushed: str | None = None  # the string the previous opcode pushed, if it pushed one
    memo: dict[int, str] = {}
    memoized = 0
    try:
        for opcode, argument, _ in pickletools.genops(payload):
            name = opcode.name
            if name == "MEMOIZE":
                if pushed is not None:
                    memo[memoized] = pushed
                memoized += 1
                continue
            if name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if pushed is not None:
                    memo[argument] = pushed
                continue
            pushed = None
            if name == "GLOBAL":
                found.add(str(argument).replace(" ", "."))
            elif name == "STACK_GLOBAL":
                found.add(".".join(strings[-2:]) if len(strings) >= 2 else "(a computed name)")
            elif isinstance(argument, str) and ("UNICODE" in name or "STRING" in name):
                pushed = argument
            elif name in ("GET", "BINGET", "LONG_BINGET") and argument in memo:
                pushed = memo[argument]
            if pushed is not None:
                strings.append(pushed)
    except Exception:  # noqa: BLE001 - pickletools raises ValueError and others on junk
        return None
    return sorted(found)
