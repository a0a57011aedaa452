"""The OS entropy a cell drew, recorded as it runs and given back, draw by draw, on replay.

Everything in Python that asks the OS for random bytes goes through ``os.urandom`` or the
``random`` module's ``_urandom``: ``secrets``, ``random.SystemRandom``, ``uuid.uuid4`` and the
entropy numpy's ``SeedSequence`` takes (``np.random.default_rng()``, ``RandomState()``,
``np.random.seed()``). Both names are replaced by one recorder, so a cell that made a generator
without a seed replays to the same generator. It costs nothing on a cell that draws none: the
recorder runs only when code asks the OS for entropy.

Only draws made on the main thread by code outside the kernel's machinery count: a message id
that the kernel draws to send a display (jupyter_client, ipykernel, zmq) is not the cell's work,
and a replay, whose outputs are captured, would not draw it again; nor is a draw a module makes
while it is imported; draws made on other threads come in no reproducible order. A replay that
asks for other sizes than were recorded gets fresh entropy from then on, and the restore's
verification reports what came out differently.
"""

from __future__ import annotations

import os
import random
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable

# Draws that are not the cell's: the kernel's, nbelastic's, and those a module makes as it is
# imported (numpy.random seeds its global generator, which nbelastic.kernel.rng catches), which a
# replay in a kernel that imported it already would not make again.
_NOT_THE_CELLS = frozenset(
    {"jupyter_client", "ipykernel", "zmq", "tornado", "comm", "nbelastic", "importlib"}
)


class EntropyTape:
    """Records the entropy drawn while a cell runs (``start``/``take``) and plays it back
    (``replay``/``stop_replay``)."""

    def __init__(self) -> None:
        self._recorded: list[bytes] | None = None
        self._replaying: deque[bytes] | None = None
        self._diverged = False
        self._originals: dict[tuple[object, str], Callable[[int], bytes]] = {}

    def install(self) -> None:
        for module in (os, random):
            name = "urandom" if module is os else "_urandom"
            original = getattr(module, name)
            self._originals[(module, name)] = original
            setattr(module, name, self._drawing_with(original))

    def uninstall(self) -> None:
        for (module, name), original in self._originals.items():
            setattr(module, name, original)
        self._originals.clear()

    def start(self) -> None:
        """Record from now on (a cell is about to run)."""
        self._recorded = []

    def take(self) -> list[str]:
        """Stop recording; the draws recorded since ``start``, in hex, in order."""
        recorded, self._recorded = self._recorded, None
        return [draw.hex() for draw in recorded or ()]

    def replay(self, draws: Iterable[str]) -> None:
        """Give back ``draws`` (as ``take`` returned them), in order, until ``stop_replay``."""
        self._recorded = None
        self._replaying = deque(bytes.fromhex(draw) for draw in draws)
        self._diverged = False

    def stop_replay(self) -> bool:
        """Stop giving back; True when the replay asked for exactly what was recorded."""
        left, self._replaying = self._replaying, None
        return not left and not self._diverged

    def _drawing_with(self, original: Callable[[int], bytes]) -> Callable[[int], bytes]:
        def urandom(size: int) -> bytes:
            if (self._recorded is None and self._replaying is None) or not _cells_own_draw():
                return original(size)
            if self._replaying is not None:
                if self._replaying and len(self._replaying[0]) == size and not self._diverged:
                    return self._replaying.popleft()
                self._diverged = True
                return original(size)
            drawn = original(size)
            self._recorded.append(drawn)
            return drawn

        urandom.__doc__ = original.__doc__
        urandom.__wrapped__ = original
        return urandom


def _cells_own_draw() -> bool:
    """Whether the code asking for entropy now is the cell's (see the module's docstring): the
    callers are followed up to the notebook's code (``__main__``) or the kernel's."""
    if threading.current_thread() is not threading.main_thread():
        return False
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__") or ""
        if module == "__main__":
            return True
        if module.partition(".")[0] in _NOT_THE_CELLS:
            return False
        frame = frame.f_back
    return True
