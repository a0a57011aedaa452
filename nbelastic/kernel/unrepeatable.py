"""What a replay cannot give back: the clock, time-based ids, and seeds drawn below Python.

A replayed cell gets the global generators' state it had (nbelastic.kernel.rng) and the OS
entropy it drew (nbelastic.kernel.entropy). What it read from the clock (``time.time()``,
``datetime.now()``, ``uuid.uuid1()``) or seeded from the OS in C (``random.seed()``,
``random.Random()``, ``torch.seed()``, ``os.getrandom``) would come out differently, and giving
back a recorded clock would feed stale times to the code that polls it. So a cell that calls one
of these, in its own code or in the notebook functions it reaches, is not replayed: the plan
stores what it made, and says why.

It is found from the code (the dotted names called) and the namespace after the cell ran (what
those names are), so the cost is a set lookup per call in the cell's code. Code that reaches
the clock only inside a library is not seen: the restore's verification reports what differs.
"""

from __future__ import annotations

import datetime
import os
import random
import sys
import time
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import NamedTuple

_CLOCKS = frozenset(
    {
        "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns",
        "process_time", "process_time_ns", "thread_time", "thread_time_ns",
    }
)  # fmt: skip
_NOW = frozenset({"now", "today", "utcnow"})
_SEEDS = frozenset({"seed", "seed_all"})
SUSPECT_NAMES = _CLOCKS | _NOW | _SEEDS | {"uuid1", "getrandom", "Random"}
_MISSING = object()


class Call(NamedTuple):
    """A dotted name the code calls (or loads), and whether it is called without arguments."""

    dotted: tuple[str, ...]
    no_arguments: bool


def why_unrepeatable(calls: Iterable[Call], namespace: Mapping[str, object]) -> str:
    """Why a replay of code making ``calls`` would not give back what it gave; empty if not.

    >>> import time
    >>> why_unrepeatable([Call(("time", "time"), True)], {"time": time})
    'it reads the clock (time.time)'
    >>> why_unrepeatable([Call(("df", "time"), True)], {"df": object()})
    ''
    """
    for call in sorted(calls):
        owner, target = _resolve(call.dotted, namespace)
        why = _why(owner, target, call)
        if why:
            return why
    return ""


def _resolve(dotted: tuple[str, ...], namespace: Mapping[str, object]) -> tuple[object, object]:
    """The object owning the last name and what that name is there; attributes are looked up
    on modules and classes only (an instance's ``__getattr__`` could run anything)."""
    owner = _MISSING
    value = namespace.get(dotted[0], _MISSING)
    for name in dotted[1:]:
        owner = value
        if not isinstance(value, ModuleType | type):
            return owner, _MISSING
        value = getattr(value, name, _MISSING)
    return owner, value


def _why(owner: object, target: object, call: Call) -> str:
    name = ".".join(call.dotted)
    last = call.dotted[-1]
    if last in _CLOCKS and target is getattr(time, last, None):
        return f"it reads the clock ({name})"
    if last in _NOW and isinstance(owner, type) and issubclass(owner, datetime.date):
        return f"it reads the clock ({name})"
    uuid = sys.modules.get("uuid")
    if last == "uuid1" and uuid is not None and target is uuid.uuid1:
        return f"it makes a time-based id ({name})"
    if last == "getrandom" and target is getattr(os, "getrandom", None):
        return f"it draws OS entropy that is not recorded ({name})"
    if not call.no_arguments:
        return ""
    if last == "Random" and target is random.Random:
        return f"it makes a generator seeded from the OS ({name}())"
    if last == "seed" and (owner is random or _is_python_generator(owner)):
        return f"it seeds a generator from the OS ({name}())"
    if last in _SEEDS and _is_torch_seeding(owner):
        return f"it seeds a generator from the OS ({name}())"
    return ""


def _is_python_generator(owner: object) -> bool:
    return isinstance(owner, random.Random) and not isinstance(owner, random.SystemRandom)


def _is_torch_seeding(owner: object) -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if isinstance(owner, ModuleType):
        return owner.__name__ in ("torch", "torch.random", "torch.cuda")
    return isinstance(owner, torch.Generator)
