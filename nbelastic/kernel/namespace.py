"""The user's variables in IPython's namespace, and which names a cell bound or deleted.

The namespace also holds IPython's own names (``_``, ``_i3``, ``Out``...), three more every
cell, and a notebook may hold thousands of variables, while the monitor looks at it twice a
cell. So whole namespaces are only compared as flat lists of names and object ids, made and
compared in C (about 0.05 ms per thousand names), and whether a name is the user's is asked
only of the few names that changed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import compress
from operator import ne

_IPYTHON_NAMES = re.compile(
    r"^(_+|_i+|_i\d+|_\d+|_ih|_oh|_dh|_exit_code|In|Out|get_ipython|exit|quit)$"
)


def user_namespace(shell) -> dict[str, object]:
    """The user's variables: IPython's own names (``_``, ``_i3``, ``Out``...) and dunders left out.

    A name IPython put there (``open``, ``exit``) counts once the user rebinds it.
    """
    hidden = shell.user_ns_hidden
    names = {}
    for name, value in shell.user_ns.items():
        if is_machinery(name) or (name in hidden and hidden[name] is value):
            continue
        names[name] = value
    return names


@functools.cache
def is_machinery(name: str) -> bool:
    """Dunders and IPython's history names; cached, as most names are asked about again.

    >>> is_machinery("_i3"), is_machinery("__name__"), is_machinery("df")
    (True, True, False)
    """
    return (name.startswith("__") and name.endswith("__")) or bool(_IPYTHON_NAMES.match(name))


class UserVariables(Mapping):
    """The user's variables as a read-only view of ``shell.user_ns``, for lookups: each costs
    one name, where ``user_namespace`` copies the whole namespace."""

    def __init__(self, shell) -> None:
        self._shell = shell

    def __contains__(self, name: object) -> bool:
        namespace = self._shell.user_ns
        if not isinstance(name, str) or name not in namespace or is_machinery(name):
            return False
        hidden = self._shell.user_ns_hidden
        return name not in hidden or hidden[name] is not namespace[name]

    def __getitem__(self, name: str) -> object:
        if name not in self:
            raise KeyError(name)
        return self._shell.user_ns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(user_namespace(self._shell))

    def __len__(self) -> int:
        return len(user_namespace(self._shell))


@dataclass(frozen=True)
class Bindings:
    """Which object each name of a namespace holds: the names in order, and their ids."""

    names: list[str]
    ids: list[int]

    @classmethod
    def of(cls, namespace: dict) -> Bindings:
        # Copied in one step first: a thread binding a name between the two lists would
        # otherwise pair names with the ids of others.
        frozen = namespace.copy()
        return cls(list(frozen), list(map(id, frozen.values())))

    def changes(self, later: Bindings) -> tuple[set[str], set[str]]:
        """The names bound (new, or holding another object) and the names deleted between
        this snapshot and ``later``, of the same dict.

        >>> namespace = {"a": 1, "b": []}
        >>> before = Bindings.of(namespace)
        >>> namespace["b"] = []
        >>> namespace["c"] = 3
        >>> bound, deleted = before.changes(Bindings.of(namespace))
        >>> sorted(bound), sorted(deleted)
        (['b', 'c'], [])
        """
        count = len(self.names)
        if later.names[:count] == self.names:  # a dict keeps its order: nothing was deleted
            ids = later.ids[:count]
            bound = set() if ids == self.ids else set(compress(self.names, map(ne, self.ids, ids)))
            bound.update(later.names[count:])
            return bound, set()
        before = dict(zip(self.names, self.ids, strict=True))
        after = dict(zip(later.names, later.ids, strict=True))
        bound = {name for name, ident in after.items() if before.get(name) != ident}
        return bound, before.keys() - after.keys()
