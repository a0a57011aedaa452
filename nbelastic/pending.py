"""A kernel's save that waits for the front-end to write it into the notebook.

JupyterLab holds the notebook it opened and, before each save, compares the file on disk with
it (hash and modification time): a kernel that rewrote the ``.ipynb`` meanwhile makes the next
Ctrl+S ask "File Changed". So a kernel started by the server extension does not touch an open
notebook: its save writes the checkpoint to ``<NB>.nbelastic/pending.json`` (atomically) and
the extension's pre-save hook puts it into the model the UI saves; once the file carries it,
the post-save hook deletes ``pending.json``.

Until then the notebook's checkpoint is the pending one: ``newer_checkpoint`` is the one
place that decides, for every reader (restore, verify, log, gc, autorestore, the server). A
pending checkpoint is newer when the file holds none, or one recorded before it (its number
in the sidecar's history, see nbelastic.checkpoints, is lower): a later save of the file from
anywhere else (``nbelastic run``, a kernel saving directly) takes a higher number and wins.
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import suppress
from pathlib import Path

PENDING_NAME = "pending.json"


def pending_path(notebook: str | os.PathLike) -> Path:
    """Where a kernel's save of ``notebook`` waits for the front-end.

    >>> pending_path("work/analysis.ipynb").as_posix()
    'work/analysis.nbelastic/pending.json'
    """
    return Path(notebook).with_suffix(".nbelastic") / PENDING_NAME


def read_pending(notebook: str | os.PathLike) -> dict | None:
    """The pending checkpoint of ``notebook``, unvalidated; None if there is none (or it is
    unreadable: a damaged pending save is no checkpoint)."""
    try:
        document = json.loads(pending_path(notebook).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def write_pending(notebook: str | os.PathLike, document: dict) -> None:
    """Make ``document`` the pending checkpoint of ``notebook``, atomically."""
    path = pending_path(notebook)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".nbelastic-{secrets.token_hex(8)}.tmp")
    text = json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        with suppress(OSError):
            temporary.unlink()


def discard_pending(notebook: str | os.PathLike, document: dict | None = None) -> bool:
    """Delete the pending checkpoint of ``notebook`` (only if it is ``document``, when given:
    a kernel may have saved a newer one meanwhile); whether one was deleted."""
    if document is not None and read_pending(notebook) != document:
        return False
    try:
        pending_path(notebook).unlink()
    except OSError:
        return False
    return True


def newer_checkpoint(notebook: str | os.PathLike, in_file: dict | None) -> dict | None:
    """The checkpoint ``notebook`` holds now: ``in_file`` (what its file carries), or the
    pending one if that is newer (see the module docstring)."""
    pending = read_pending(notebook)
    if pending is None:
        return in_file
    if in_file is None or _number(pending) > _number(in_file):
        return pending
    return in_file


def _number(document: object) -> int:
    """The checkpoint's number in its sidecar's history (0 if it carries none).

    >>> _number({"checkpoint": "12-0123456789ab"}), _number({})
    (12, 0)
    """
    checkpoint = document.get("checkpoint") if isinstance(document, dict) else None
    if not isinstance(checkpoint, str):
        return 0
    number, _, _ = checkpoint.partition("-")
    return int(number) if number.isdigit() else 0
