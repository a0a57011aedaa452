"""How long importing each package took in this kernel, timed as the cells import them.

A restore imports the packages the stored values need (unpickling a DataFrame imports pandas)
before it loads a byte: seconds the plan must count, or its estimate is off by the whole
import (0.11 s estimated, 3.6 s taken on the demo). The clock wraps ``builtins.__import__``
and times only the outermost import of a module not yet loaded, on the main thread, charged to
its top-level package; an import statement for a module already loaded costs one dictionary
lookup. Packages imported before the extension was loaded are not timed: the kernel's own
start-up imports them, so a restoring kernel has them too.

>>> clock = ImportClock()
>>> clock.install()
>>> import sys
>>> _ = sys.modules.pop("colorsys", None)
>>> import colorsys
>>> clock.uninstall()
>>> clock.seconds["colorsys"] > 0, clock.cost(["colorsys", "never-imported"]) > 0
(True, True)
"""

from __future__ import annotations

import builtins
import sys
import threading
import time
from collections.abc import Iterable


class ImportClock:
    """Seconds spent importing each top-level package since ``install``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._original = None
        self._depth = 0

    def install(self) -> None:
        if self._original is not None:
            return
        original = self._original = builtins.__import__
        main = threading.main_thread()

        def timed_import(name, globals=None, locals=None, fromlist=(), level=0):
            if (
                level
                or self._depth
                or name in sys.modules
                or threading.current_thread() is not main
            ):
                return original(name, globals, locals, fromlist, level)
            started = time.perf_counter()
            self._depth += 1
            try:
                return original(name, globals, locals, fromlist, level)
            finally:
                self._depth -= 1
                top = name.partition(".")[0]
                # Rounded as the checkpoint records them: a restored kernel plans with the
                # recorded times, and its plan must come out the same to the last digit.
                took = time.perf_counter() - started
                self.seconds[top] = round(self.seconds.get(top, 0.0) + took, 6)

        timed_import.__wrapped__ = original
        builtins.__import__ = timed_import

    def uninstall(self) -> None:
        if getattr(builtins.__import__, "__wrapped__", None) is self._original is not None:
            builtins.__import__ = self._original
        self._original = None

    def cost(self, packages: Iterable[str]) -> float:
        """Seconds to import ``packages`` (top-level names) again, as they took here."""
        return sum(self.seconds.get(package, 0.0) for package in set(packages))
