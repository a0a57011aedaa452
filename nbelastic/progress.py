"""Progress of a long command on stderr: one line rewritten in place on a terminal, plain lines
elsewhere (a pipe, a CI log), nothing with ``--quiet``/``--json``.

The kernel reports its own progress as stderr lines (``nbelastic save: 3/10 encoded x``), which
the driver forwards here line by line; lines in that shape, and the runner's ``cell 2/9 ran``,
are *transient* (replaced by the next one on a terminal), anything else (a warning a replayed
cell printed) is kept on screen.
"""

from __future__ import annotations

import re
import shutil
import sys
from typing import TextIO

_TRANSIENT = re.compile(r"^(nbelastic (save|restore): \d+/\d+ |cell \d+/\d+ |saving the state)")
_CLEAR = "\r\x1b[K"


class Progress:
    """Callable with one or more lines of text; use as a context manager so the transient
    line is cleared before the command prints its result."""

    def __init__(self, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._transient = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __call__(self, text: str) -> None:
        if not self.enabled:
            return
        for line in text.splitlines():
            if line.strip():
                self._show(line, transient=bool(_TRANSIENT.match(line)))

    def close(self) -> None:
        """Clear the transient line, if one is shown."""
        if self._transient:
            self.stream.write(_CLEAR)
            self.stream.flush()
            self._transient = False

    def _show(self, line: str, *, transient: bool) -> None:
        if not self.tty:
            self.stream.write(line + "\n")
        elif transient:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write(_CLEAR + line[:width])
            self._transient = True
        else:
            self.stream.write(_CLEAR + line + "\n")
            self._transient = False
        self.stream.flush()
