"""The environment a checkpoint was saved in, and how the restoring one differs from it.

A pickled DataFrame written by pandas 2 may load differently, or not at all, under pandas 3; a
function pickled by value carries bytecode of one Python minor version. Nothing can make such a
restore right, but the user can be told which package changed before staring at a mismatch.

The fingerprint names the Python version and the version of every top-level, non-standard
package that a live value comes from: the module of its type, of a function or class itself,
or a module bound to a name. Objects nested deeper inside containers are not looked at, to keep
saving cheap; their packages are usually also the type of some variable.

>>> fingerprint([1, "text"])["packages"]
{}
>>> differences({"python": "1.0.0", "packages": {}})[0].startswith("Python ")
True
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import types
from collections.abc import Iterable, Mapping
from functools import cache

_NOT_PACKAGES = frozenset({"__main__", "builtins"}) | frozenset(sys.stdlib_module_names)


def fingerprint(values: Iterable[object]) -> dict:
    """``{"python": "3.11.7", "packages": {"numpy": "2.1.0", ...}}`` for these live values."""
    packages = {}
    for value in values:
        for top in packages_of(value):
            if top in packages:
                continue
            version = package_version(top)
            if version is not None:
                packages[top] = version
    return {"python": platform.python_version(), "packages": dict(sorted(packages.items()))}


def differences(recorded: Mapping) -> list[str]:
    """What differs here from a saved fingerprint, one phrase each; empty when nothing does.

    Python counts only by minor version: pickled bytecode is compatible within one.
    """
    found = []
    saved_python = str(recorded.get("python", ""))
    here = platform.python_version()
    if saved_python.split(".")[:2] != here.split(".")[:2]:
        found.append(f"Python {here} (saved with {saved_python})")
    for name, saved in sorted(recorded.get("packages", {}).items()):
        version = package_version(name)
        if version is None:
            found.append(f"{name} not installed (saved with {saved})")
        elif version != saved:
            found.append(f"{name} {version} (saved with {saved})")
    return found


def package_version(name: str) -> str | None:
    """The installed version of the top-level package imported as ``name``, if it is one."""
    module = sys.modules.get(name)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    for distribution in (name, *_distributions().get(name, ())):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@cache
def _distributions() -> Mapping[str, list[str]]:
    """Import name -> distribution names (``sklearn`` -> ``scikit-learn``); slow, so once."""
    return importlib.metadata.packages_distributions()


def packages_of(value: object) -> set[str]:
    """The top-level packages (not the standard library's) that loading ``value`` imports,
    as far as its type and, for a module, class or function, its own module tell.

    >>> import json
    >>> sorted(packages_of(json)), sorted(packages_of(1))
    ([], [])
    """
    tops = {name.partition(".")[0] for name in _modules_of(value)}
    return {top for top in tops if top not in _NOT_PACKAGES and not top.startswith("_")}


def _modules_of(value: object) -> Iterable[str]:
    yield type(value).__module__
    if isinstance(value, types.ModuleType):
        yield value.__name__
    elif isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        module = getattr(value, "__module__", None)
        if isinstance(module, str):
            yield module
