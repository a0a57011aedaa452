"""One writer at a time per notebook: the lock around writing a checkpoint.

A save writes the manifest (``manifest.txt``, the manifest blob), the notebook's metadata and the
sidecar's checkpoint record. Blobs need no lock: they are content-addressed and immutable, so
two saves writing the same blob write the same bytes. The rest must come from one save, or
``manifest.txt`` could describe one save while the notebook holds another. Two saves racing on
one notebook therefore take turns for that last step, and the last one to take it wins whole.

The lock is an OS file lock (``flock``) on ``.NB.ipynb.nbelastic-lock`` next to the notebook,
which the kernel releases when the holder dies, even by ``kill -9``: a crashed save never
blocks the next one. The holder deletes the file before it lets go, so no file stays next to
the notebook after a save. A waiter may meanwhile have locked the deleted file; it sees that
the name no longer leads to the file it holds, and takes the lock again on the new file, so two
savers never both hold it. Only a killed save leaves the empty file behind; the next save
removes it.

Saves and ``nbelastic gc`` also exclude each other on the sidecar (``sidecar_lock``).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from nbelastic.errors import StoreWriteError

TIMEOUT_SECONDS = 120.0
_POLL_SECONDS = 0.05


def lock_path(notebook: str | os.PathLike) -> Path:
    """Where the lock file of ``notebook`` lives while a save holds it.

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
    descriptor = _acquire(path, notebook, timeout)
    try:
        yield
    finally:
        with suppress(OSError):
            path.unlink()  # while still held: see the module docstring
        os.close(descriptor)


def _acquire(path: Path, notebook: str | os.PathLike, timeout: float) -> int:
    """A descriptor of ``path`` locked by this process, the file still under that name."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreWriteError(
                f"cannot create the lock file {path} ({error.strerror or error}): "
                "fix the permissions of the notebook's directory and save again"
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            if time.monotonic() >= deadline:
                raise StoreWriteError(
                    f"another save of {notebook} has held its lock {path} for over "
                    f"{timeout:.0f} s: wait for it to finish, or stop it, then save again"
                ) from None
            time.sleep(_POLL_SECONDS)
            continue
        if _still_named(descriptor, path):
            return descriptor
        os.close(descriptor)  # its holder deleted it while this one waited: lock the new file


def _still_named(descriptor: int, path: Path) -> bool:
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


@contextmanager
def sidecar_lock(
    sidecar: str | os.PathLike, *, exclusive: bool, timeout: float = TIMEOUT_SECONDS
) -> Iterator[None]:
    """Saves share a sidecar; ``gc`` and ``strip --sidecar`` hold it alone.

    A save decides which blobs it reuses long before it writes the checkpoint that names them,
    and a gc that read the checkpoints meanwhile would delete a reused blob: so a save holds
    the shared lock from choosing its blobs to writing its checkpoint, and a collection the
    exclusive one from reading the checkpoints to its last deletion. The lock is ``flock`` on
    the sidecar directory itself (no file is left behind), which the OS releases when the
    holder dies; a sidecar that does not exist (or is no directory) holds nothing to protect.
    """
    try:
        descriptor = os.open(sidecar, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (FileNotFoundError, NotADirectoryError):  # what writes there will say why it can't
        yield
        return
    except OSError as error:
        raise StoreWriteError(
            f"cannot lock the sidecar {sidecar} ({error.strerror or error}): fix its "
            "permissions and try again"
        ) from None
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreWriteError(
                        f"{'a save or gc' if exclusive else 'a gc'} of {sidecar} has been "
                        f"running for over {timeout:.0f} s: wait for it to finish, or stop it, "
                        "then try again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(descriptor)
