"""One writer at a time per notebook: the lock around writing a checkpoint.

A save writes the manifest (``manifest.txt``, the manifest blob), the notebook's metadata and the
sidecar's checkpoint record. Blobs need no lock: they are content-addressed and immutable, so
two saves writing the same blob write the same bytes. The rest must come from one save, or
``manifest.txt`` could describe one save while the notebook holds another. Two saves racing on
one notebook therefore take turns for that last step, and the last one to take it wins whole.

The lock is an OS file lock (``flock`` through ``filelock``), which the kernel releases when the
holder dies, even by ``kill -9``: a crashed save never blocks the next one. Its file sits next
to the notebook as ``.NB.ipynb.nbelastic-lock``, hidden like an editor's lock file; it is
empty and may be deleted whenever no save runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from nbelastic.errors import StoreWriteError

TIMEOUT_SECONDS = 120.0


def lock_path(notebook: str | os.PathLike) -> Path:
    """Where the lock file of ``notebook`` lives.

    >>> lock_path("work/nb.ipynb").as_posix()
    'work/.nb.ipynb.nbelastic-lock'
    """
    notebook = Path(notebook)
    return notebook.with_name(f".{notebook.name}.nbelastic-lock")


@contextmanager
def notebook_lock(
    notebook: str | os.PathLike, *, timeout: float = TIMEOUT_SECONDS
) -> Iterator[None]:
    """Hold ``notebook``'s write lock for the body; StoreWriteError if it cannot be had."""
    path = lock_path(Path(notebook).resolve())
    lock = filelock.FileLock(path, timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise StoreWriteError(
            f"another save of {notebook} has held its lock {path} for over {timeout:.0f} s: "
            "wait for it to finish, or stop it, then save again"
        ) from None
    except OSError as error:
        raise StoreWriteError(
            f"cannot create the lock file {path} ({error.strerror or error}): "
            "fix the permissions of the notebook's directory and save again"
        ) from None
    try:
        yield
    finally:
        lock.release()
