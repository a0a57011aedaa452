"""The global random generators' state (``random``, numpy's, torch's), so that a cell that drew
unseeded random numbers replays to the very same numbers.

The monitor snapshots the state before and after every cell: a cell that changed it drew
numbers, and its state before is kept. numpy's global generator exists only once
``numpy.random`` is loaded, which ``import numpy`` does not do: rather than load it for the
user (a one-time 25 ms, often for nothing), ``NumpyRandomLoads`` catches its state the
moment the user's own code loads it, before anything is drawn from it.
"""

from __future__ import annotations

import importlib.abc
import random
import struct
import sys
import threading
from types import ModuleType

_NUMPY_RANDOM = "numpy.random"


def rng_snapshot() -> tuple:
    """The generators' state in raw form: cheap to take and to compare, twice a cell."""
    numpy_random = sys.modules.get(_NUMPY_RANDOM)
    torch = sys.modules.get("torch")
    numpy_state = None
    if numpy_random is not None and hasattr(numpy_random, "get_state"):
        numpy_state = _numpy_state(numpy_random)
    torch_state = None
    if torch is not None and hasattr(torch, "get_rng_state"):
        torch_state = torch.get_rng_state().numpy().tobytes()
    return (random.getstate(), numpy_state, torch_state)


def _numpy_state(numpy_random: ModuleType) -> tuple:
    kind, keys, pos, has_gauss, cached = numpy_random.get_state()
    return (kind, keys.tobytes(), int(pos), int(has_gauss), float(cached))


def rng_state(snapshot: tuple | None = None) -> dict:
    """The state of ``rng_snapshot`` (default: now) as JSON, as a checkpoint stores it.

    >>> rng_state(rng_snapshot())["random"][0]  # the version of random's state
    3
    """
    (version, internal, gauss), numpy_state, torch_state = snapshot or rng_snapshot()
    state: dict = {"random": [version, list(internal), gauss]}
    if numpy_state is not None:
        kind, keys, pos, has_gauss, cached = numpy_state
        numbers = list(struct.unpack(f"={len(keys) // 4}I", keys))
        state["numpy"] = [kind, numbers, pos, has_gauss, cached]
    if torch_state is not None:
        state["torch"] = list(torch_state)
    return state


def set_rng_state(state: dict) -> None:
    """Put the global random generators back in a state recorded by ``rng_state``."""
    version, internal, gauss = state["random"]
    random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        import numpy

        kind, keys, pos, has_gauss, cached = state["numpy"]
        numpy.random.set_state(
            (kind, numpy.array(keys, dtype=numpy.uint32), pos, has_gauss, cached)
        )
    if "torch" in state:
        import torch

        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


class NumpyRandomLoads(importlib.abc.MetaPathFinder):
    """An import hook that notes numpy's global generator's state as ``numpy.random`` loads.

    Its state at load comes from the OS's entropy: unless it is caught before the first draw,
    a cell that loaded ``numpy.random`` and drew from it (``np.random.rand(3)`` right after
    ``import numpy``) could not be replayed to the same numbers.
    """

    def __init__(self) -> None:
        self._at_load: tuple | None = None
        self._finding = threading.local()

    def install(self) -> None:
        sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def fill_in(self, before: tuple) -> tuple:
        """``before`` (a snapshot taken before a cell), with numpy's state at load when
        ``numpy.random`` was loaded since; each load is used once."""
        at_load, self._at_load = self._at_load, None
        if before[1] is not None or at_load is None:
            return before
        return (before[0], at_load, before[2])

    def find_spec(self, fullname, path, target=None):
        # Another finder that asks the others in turn, as this one does, would ask it back.
        if fullname != _NUMPY_RANDOM or getattr(self._finding, "active", False):
            return None
        self._finding.active = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None:
                        spec.loader = _ThenNote(spec.loader, self)
                    return spec
            return None
        finally:
            self._finding.active = False

    def note(self, numpy_random: ModuleType) -> None:
        try:
            self._at_load = _numpy_state(numpy_random)
        except Exception:  # noqa: BLE001 - the user's import must succeed whatever happens here
            self._at_load = None


class _ThenNote(importlib.abc.Loader):
    """Runs ``loader`` as is, then tells ``watcher`` the module is loaded; anything else asked
    of it (``get_filename``, ``is_package``...) is ``loader``'s answer."""

    def __init__(self, loader: importlib.abc.Loader, watcher: NumpyRandomLoads) -> None:
        self.loader = loader
        self.watcher = watcher

    def __getattr__(self, name: str):
        return getattr(self.loader, name)

    def create_module(self, spec):
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        # The module keeps its own loader: importlib.resources and reloads look it up there.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.watcher.note(module)
