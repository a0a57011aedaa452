"""Garbage collection of the sidecar: delete blobs that no checkpoint can ever load again.

A blob is *referenced* when a checkpoint that still exists names it: the checkpoint a notebook
sharing the sidecar holds (``analysis.ipynb`` and its jupytext twin ``analysis.py``) or one the
sidecar's history records. Referenced means the manifest blob, every blob its manifest lists,
and the random-generator states of the history's cells. A pack (``blobs/packs/``) is kept
whole while any blob in it is referenced, and deleted once none is. Everything else under
``blobs/`` can go, except:

* blobs younger than ``min_age`` seconds: a save in progress writes its blobs before the
  checkpoint that names them, and must not lose them to a concurrent ``gc``;
* nothing at all when a checkpoint cannot be read (a damaged record, a missing manifest, a
  format newer than this nbelastic's): its blobs cannot be told apart from garbage, so the
  collection stops with one line saying what to fix. Deleting is the one thing that cannot
  be undone;
* nothing at all through a link: a sidecar whose ``blobs/`` or ``checkpoints/`` is a symbolic
  link is refused, as that link may lead to another notebook's state.

A collection and a save exclude each other (nbelastic.lock.sidecar_lock): a save reusing an
old blob would otherwise lose it to a gc that read the checkpoints before the save wrote its
own.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import jupytext

from nbelastic.checkpoints import (
    CheckpointRecord,
    current_record,
    history_dir,
    is_reference,
    list_checkpoints,
)
from nbelastic.errors import CheckpointFormatError, NbelasticError
from nbelastic.locations import require_sidecar
from nbelastic.lock import TIMEOUT_SECONDS, sidecar_lock
from nbelastic.notebook import (
    checkpoint_of,
    held_checkpoint,
    read_notebook,
    sidecar_dir,
    strip_checkpoint,
)
from nbelastic.planner import format_bytes
from nbelastic.store import BlobStore, read_manifest
from nbelastic.store.remote import is_url

DEFAULT_MIN_AGE = 3600.0


@dataclass
class Collection:
    """What a collection removed (or, dry, would remove) and what it kept."""

    min_age: float
    removed: dict[str, int] = field(default_factory=dict)  # key -> file size
    kept_young: list[str] = field(default_factory=list)
    referenced: int = 0

    def summary(self, *, dry_run: bool = False) -> str:
        verb = "would remove" if dry_run else "removed"
        line = (
            f"{verb} {len(self.removed)} unreferenced blobs "
            f"({format_bytes(sum(self.removed.values()))}); {self.referenced} in use"
        )
        if self.kept_young:
            line += (
                f"; kept {len(self.kept_young)} younger than {self.min_age:g} s, which a save in"
                " progress may be writing (--min-age 0 removes them)"
            )
        return line

    def to_json(self) -> dict:
        return {
            "removed": sorted(self.removed),
            "bytes_removed": sum(self.removed.values()),
            "kept_young": sorted(self.kept_young),
            "referenced": self.referenced,
        }


def twins(notebook: Path) -> list[Path]:
    """The notebooks sharing ``notebook``'s sidecar: same directory and name, any notebook
    suffix (``analysis.ipynb``, ``analysis.py``, ...), including ``notebook`` itself."""
    return sorted(
        notebook.with_suffix(suffix)
        for suffix in jupytext.NOTEBOOK_EXTENSIONS
        if notebook.with_suffix(suffix).is_file()
    )


def live_documents(notebook: Path) -> list[dict]:
    """Every checkpoint document that may still be restored from ``notebook``'s sidecar."""
    documents = [r.document for r in list_checkpoints(sidecar_dir(notebook))]
    for twin in twins(notebook):
        document = held_checkpoint(read_notebook(twin), twin)
        if document is not None and not is_reference(document):  # a reference's record is in
            documents.append(document)
    return documents


def referenced_keys(documents: list[dict], store: BlobStore) -> set[str]:
    """The blobs of ``store`` these checkpoint documents need (those kept at a URL are not
    here); NbelasticError if one cannot be read."""
    keys: set[str] = set()
    for document in documents:
        if is_url(str(document.get("store", ""))):
            continue  # its blobs live at that URL, not in this sidecar
        try:
            manifest_key = document["manifest"]
            manifest = read_manifest(store, manifest_key)
            executions = document["history"]["executions"]
        except (KeyError, TypeError) as error:
            raise NbelasticError(
                f"a checkpoint of {store.root} is malformed ({error}): nothing was deleted; "
                "fix or strip it first"
            ) from None
        except NbelasticError as error:
            raise NbelasticError(
                f"cannot tell which blobs a checkpoint of {store.root} uses ({error}): nothing "
                "was deleted; restore the sidecar from git, or delete that checkpoint's record"
            ) from None
        keys.add(manifest_key)
        keys.update(entry.key for entry in manifest.entries)
        keys.update(entry.pack.pack for entry in manifest.entries if entry.pack)  # kept whole
        keys.update(e["rng"] for e in executions if e.get("rng"))
        if document.get("rng"):
            keys.add(document["rng"])
    return keys


def collect(
    notebook: str | os.PathLike,
    *,
    min_age: float = DEFAULT_MIN_AGE,
    dry_run: bool = False,
    lock_timeout: float = TIMEOUT_SECONDS,
) -> Collection:
    """Remove the unreferenced blobs of ``notebook``'s sidecar (see the module docstring).

    Holds the sidecar alone meanwhile (no save runs), and refuses, deleting nothing, a sidecar
    with a link in it: a ``blobs/`` linked to another notebook's sidecar would make this
    collection delete that notebook's state.
    """
    notebook = Path(notebook)
    sidecar = sidecar_dir(notebook)
    require_sidecar(notebook, checkpoint_of(read_notebook(notebook)))
    refuse_links(sidecar)
    with sidecar_lock(sidecar, exclusive=True, timeout=lock_timeout):
        return _collect(BlobStore(sidecar), live_documents(notebook), min_age, dry_run)


def refuse_links(sidecar: Path) -> None:
    """NbelasticError if a directory nbelastic deletes in is a link (it may lead anywhere)."""
    blobs = sidecar / "blobs"
    directories = [blobs, history_dir(sidecar)]
    if blobs.is_dir() and not blobs.is_symlink():
        directories += sorted(blobs.iterdir())
    linked = next((path for path in directories if path.is_symlink()), None)
    if linked is not None:
        raise NbelasticError(
            f"{linked} is a symbolic link: nbelastic deletes nothing through a link, which may "
            "lead to another notebook's state; nothing was deleted: replace the link by the "
            "directory it points to, or remove it"
        )


def _collect(store: BlobStore, live: list[dict], min_age: float, dry_run: bool) -> Collection:
    """The collection itself, for a caller holding the sidecar's lock."""
    needed = referenced_keys(live, store)
    present = {key: store.path(key) for key in sorted(store.keys())}
    present |= {pack: store.pack_path(pack) for pack in store.pack_keys()}
    result = Collection(min_age, referenced=len(needed & present.keys()))
    now = time.time()
    for key in sorted(present.keys() - needed):
        path = present[key]
        try:
            status = path.lstat()
        except FileNotFoundError:
            continue
        if now - status.st_mtime < min_age:
            result.kept_young.append(key)
            continue
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as error:
                raise NbelasticError(
                    f"cannot delete {path} ({error.strerror or error}): fix the permissions "
                    "and run gc again"
                ) from None
            with suppress(OSError):
                path.parent.rmdir()  # only when it became empty
        result.removed[key] = status.st_size
    if not dry_run:
        _remove_stale_temp_files(store, now - min_age)
    return result


def _remove_stale_temp_files(store: BlobStore, before: float) -> None:
    """Delete the temp files that saves killed mid-write left, once older than ``before``
    (a save in progress streams its blob into one)."""
    for temp in store.temp_files():
        with suppress(OSError):
            if temp.stat().st_mtime < before:
                temp.unlink()


def remove_empty_sidecar(notebook: Path) -> bool:
    """Delete ``notebook``'s sidecar when no checkpoint is left in it; True if it went.

    Only what nbelastic writes is removed (empty blob directories, the history directory, the
    manifest text); a directory holding anything else stays.
    """
    sidecar = sidecar_dir(notebook)
    store = BlobStore(sidecar)
    if not sidecar.is_dir() or store.keys() or store.pack_keys() or list_checkpoints(sidecar):
        return False
    with suppress(OSError):
        (sidecar / "manifest.txt").unlink()
    for directory in (*sorted((sidecar / "blobs").glob("*")), sidecar / "blobs"):
        with suppress(OSError):
            directory.rmdir()
    with suppress(OSError):
        history_dir(sidecar).rmdir()
    try:
        sidecar.rmdir()
    except OSError:
        return False
    return True


@dataclass
class Stripped:
    """What ``strip --sidecar`` did to one notebook and its sidecar."""

    checkpoint_removed: bool
    records_removed: list[str]
    collection: Collection
    sidecar_removed: bool

    def to_json(self) -> dict:
        return {
            "checkpoint_removed": self.checkpoint_removed,
            "records_removed": self.records_removed,
            **self.collection.to_json(),
            "sidecar_removed": self.sidecar_removed,
        }

    def summary(self) -> str:
        parts = ["checkpoint removed" if self.checkpoint_removed else "no checkpoint"]
        if self.records_removed:
            parts.append(f"dropped {', '.join(self.records_removed)} from its history")
        parts.append(self.collection.summary())
        if self.sidecar_removed:
            parts.append("sidecar deleted")
        return "; ".join(parts)


def _holds(sidecar: Path, document: dict, record: CheckpointRecord) -> bool:
    found = current_record(sidecar, document)
    return found is not None and found.id == record.id


def _own_record(notebook: Path) -> CheckpointRecord | None:
    """The record of the checkpoint ``notebook`` holds; None when it holds none, or one too
    damaged to name its record (stripping is the way out of a damaged checkpoint)."""
    try:
        document = held_checkpoint(read_notebook(notebook), notebook)
    except CheckpointFormatError:
        return None
    return current_record(sidecar_dir(notebook), document)


def strip_with_sidecar(notebook: str | os.PathLike) -> Stripped:
    """Remove ``notebook``'s checkpoint, its records in the sidecar's history, and the blobs
    no remaining checkpoint uses (a twin notebook's, an older save's); then the sidecar itself
    if nothing is left in it. Checks everything it will touch before changing anything: every
    remaining checkpoint, links, and that the sidecar can be written."""
    notebook = Path(notebook)
    sidecar = sidecar_dir(notebook)
    document = checkpoint_of(read_notebook(notebook))
    require_sidecar(notebook, document)
    _check_writable(sidecar)
    refuse_links(sidecar)
    with sidecar_lock(sidecar, exclusive=True):
        own = _own_record(notebook)
        others = [
            held_checkpoint(read_notebook(twin), twin)
            for twin in twins(notebook)
            if twin != notebook
        ]
        others = [document for document in others if document is not None]
        if own is not None and any(_holds(sidecar, document, own) for document in others):
            own = None  # a twin still holds it: its record stays
        records = list_checkpoints(sidecar)
        if document is None and not others:
            dropping = records  # stripped before: the history is all that is left of its state
        else:
            dropping = [record for record in records if own is not None and record.id == own.id]
        remaining = [r.document for r in records if r not in dropping]
        remaining += [document for document in others if not is_reference(document)]
        store = BlobStore(sidecar)
        referenced_keys(remaining, store)  # fails, changing nothing, if one cannot be read
        removed = strip_checkpoint(notebook)
        for record in dropping:
            _delete(record.path)
        dropped = [record.id for record in dropping]
        collection = _collect(store, remaining, 0, dry_run=False)
        if not any(checkpoint_of(read_notebook(twin)) for twin in twins(notebook)):
            _delete(sidecar / "manifest.txt")  # it lists the stripped checkpoint's variables
    return Stripped(removed, dropped, collection, remove_empty_sidecar(notebook))


def _check_writable(sidecar: Path) -> None:
    """NbelasticError, before anything changed, if ``strip --sidecar`` could not finish."""
    if not sidecar.exists() and not sidecar.is_symlink():
        return
    if not sidecar.is_dir():
        raise NbelasticError(
            f"{sidecar} is not a directory, so it is no sidecar store: nothing was changed; "
            "move it away, or strip without --sidecar"
        )
    directories = [sidecar, *(p for p in (sidecar / "blobs", history_dir(sidecar)) if p.is_dir())]
    blobs = sidecar / "blobs"
    if blobs.is_dir():
        directories += [p for p in blobs.iterdir() if p.is_dir()]
    locked = next((d for d in directories if not os.access(d, os.W_OK | os.X_OK)), None)
    if locked is not None:
        raise NbelasticError(
            f"cannot delete in {locked} (read-only, or not yours): nothing was changed; fix "
            "its permissions and strip again"
        )


def _delete(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        raise NbelasticError(
            f"cannot delete {path} ({error.strerror or error}): fix the permissions and strip again"
        ) from None
