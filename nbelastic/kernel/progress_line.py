"""Progress of a save or restore in the kernel: one line that updates in place.

In a notebook, a line on stderr per variable shows as a pile of red boxes (3,000 for 3,000
variables) that reads as an error. There the progress is one display, updated at most ten
times a second and cleared when the operation ends, before its one-line summary is printed.
Without a front end to update a display (the CLI drives the kernel and reads its stderr, see
nbelastic.progress; or a terminal IPython), the progress stays as lines on stderr.
Nothing shows for an operation that ends within a second.
"""

from __future__ import annotations

import sys
import time

_DELAY = 1.0  # seconds before the first progress is shown
_INTERVAL = 0.1  # seconds between updates of the display
# Seconds between two stderr lines (the last one always shows): a line per variable of
# thousands of small ones cost more than storing them.
_LINES_INTERVAL = 0.25


class ProgressLine:
    """A progress callback ``(message, done, total)``; call ``finish`` when the operation ends."""

    def __init__(self, verb: str, *, lines: bool | None = None) -> None:
        self.verb = verb
        self.lines = not _has_front_end() if lines is None else lines
        self.started = time.perf_counter()
        self.shown = 0.0
        self.handle = None

    def __call__(self, message: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.started <= _DELAY:
            return
        interval = _LINES_INTERVAL if self.lines else _INTERVAL
        if now - self.shown < interval and not (self.lines and done == total):
            return
        self.shown = now
        text = f"nbelastic {self.verb}: {done}/{total} {message}"
        if self.lines:
            print(text, file=sys.stderr, flush=True)
        else:
            self._display(text)

    def finish(self) -> None:
        """Take the progress line away, so that only the summary printed next stays."""
        if self.handle is not None:
            self.handle.update({"text/plain": ""}, raw=True)
            self.handle = None

    def _display(self, text: str) -> None:
        if self.handle is None:
            from IPython.display import display

            self.handle = display({"text/plain": text}, raw=True, display_id=True)
        else:
            self.handle.update({"text/plain": text}, raw=True)


def _has_front_end() -> bool:
    """Whether this runs in a kernel whose front end can update a display in place."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
