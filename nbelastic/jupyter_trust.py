"""Jupyter's own notebook trust, kept when nbelastic rewrites a notebook.

Jupyter trusts a notebook (shows its outputs, HTML and JavaScript included) when the HMAC of its
content is in the notary's database, ``<jupyter data dir>/nbsignatures.db``; the server signs a
notebook on every save from the UI. A write from the kernel or the command line (a save's
checkpoint, ``strip``, ``run``) changes the content without signing it, so the next open logs
``Notebook X is not trusted`` and shows it untrusted. A notebook Jupyter trusted before such a
write is signed again after it; one it did not trust is never signed.

Only ``.ipynb`` files of nbformat 4 are handled (what the notary signs). The check reads the
database itself, with nbformat's algorithm (HMAC-SHA256 of every key and value, the file's
transient fields left out), so a save of a notebook Jupyter does not trust never imports
nbformat, which is slow to load; signing goes through nbformat's notary.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

_ERRORS = (OSError, ValueError, RecursionError, sqlite3.Error)


def trusted_text(path: Path) -> bool:
    """Whether Jupyter trusts the notebook now at ``path`` (False if it is none, or unreadable)."""
    data = _data_dir()
    secret_file, db_file = data / "notebook_secret", data / "nbsignatures.db"
    if path.suffix != ".ipynb" or not (secret_file.is_file() and db_file.is_file()):
        return False
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(content, dict) or content.get("nbformat") != 4:
            return False
        mac = hmac.new(secret_file.read_bytes(), digestmod=hashlib.sha256)
        for part in _everything(_without_transient(content)):
            mac.update(part)
        with closing(sqlite3.connect(f"{db_file.as_uri()}?mode=ro", uri=True)) as db:
            query = "SELECT id FROM nbsignatures WHERE algorithm = ? AND signature = ?"
            return db.execute(query, ("sha256", mac.hexdigest())).fetchone() is not None
    except (*_ERRORS, TypeError, AttributeError, UnicodeError):
        return False


def sign_text(text: str) -> None:
    """Record the notebook ``text`` as trusted in Jupyter's notary; failures are ignored (the
    notebook is written, it only shows untrusted)."""
    try:
        nb = _notebook(text)
        if nb is None:
            return
        with _notary() as notary:
            notary.sign(nb)
    except _ERRORS:
        return


def _data_dir() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir())


def _notary():
    from nbformat.sign import NotebookNotary

    return NotebookNotary(data_dir=str(_data_dir()))


def _notebook(text: str):
    """``text`` as the server reads it for the notary, or None if it is no nbformat 4 notebook."""
    from nbformat.reader import reads

    nb = reads(text)
    return nb if nb.get("nbformat") == 4 else None


def _without_transient(nb: dict) -> dict:
    """``nb`` as nbformat's reader hands it to the notary: no signature, no transient fields."""
    metadata = dict(nb.get("metadata") or {})
    for key in ("signature", "orig_nbformat", "orig_nbformat_minor"):
        metadata.pop(key, None)
    cells = []
    for cell in nb.get("cells") or []:
        cell_metadata = {k: v for k, v in (cell.get("metadata") or {}).items() if k != "trusted"}
        cells.append({**cell, "metadata": cell_metadata})
    return {**nb, "metadata": metadata, "cells": cells}


def _everything(value: object) -> Iterator[bytes]:
    """nbformat.sign.yield_everything: a source kept as a list of lines signs as the joined
    text, since the bytes run on."""
    if isinstance(value, dict):
        for key in sorted(value):
            yield key.encode()
            yield from _everything(value[key])
    elif isinstance(value, list):
        for item in value:
            yield from _everything(item)
    elif isinstance(value, str):
        yield value.encode("utf8")
    else:
        yield str(value).encode("utf8")
