"""Take back what a failed save wrote: a failed save leaves nothing behind.

A save writes blobs, a history record and a manifest before the notebook, so a save that fails
at the end (the notebook cannot be written, the user interrupts the kernel) would leave a
sidecar folder the notebook never points at, or new blobs in an existing one. ``SaveUndo``
remembers what the sidecar and store held before the save and, unless the save got as far as
writing the notebook, removes what is new: the whole folder if the save created it. In a
sidecar that existed it does so only while it can hold the sidecar alone (no other save is
choosing blobs there that it could be reusing); otherwise it leaves the unreferenced blobs to
``nbelastic gc``.
"""

from __future__ import annotations

import shutil
from contextlib import suppress
from pathlib import Path

from nbelastic.errors import NbelasticError
from nbelastic.lock import sidecar_lock


class SaveUndo:
    """The directories a save writes in, as they were before it started."""

    def __init__(self, *directories: Path) -> None:
        self.before: dict[Path, set[Path] | None] = {}
        for directory in dict.fromkeys(directories):
            self.before[directory] = set(directory.rglob("*")) if directory.is_dir() else None
        self.done = False

    def commit(self) -> None:
        """The notebook now points at what was written: nothing is taken back any more."""
        self.done = True

    def undo(self) -> None:
        """Remove what the save added, if it did not commit. Never raises: the save's own
        error is what the user must see."""
        if self.done:
            return
        for directory, before in self.before.items():
            with suppress(OSError, NbelasticError):
                if before is None:
                    shutil.rmtree(directory, ignore_errors=True)
                else:
                    with sidecar_lock(directory, exclusive=True, timeout=0):
                        _remove_new(directory, before)


def _remove_new(directory: Path, before: set[Path]) -> None:
    added = sorted(set(directory.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True)
    for path in added:
        with suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
