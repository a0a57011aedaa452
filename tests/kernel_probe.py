"""Describe a kernel's user namespace independently of nbelastic, to compare two kernels.

Run inside a kernel with ``runpy.run_path`` so that nothing is added to the namespace. The
descriptions use plain reprs and sha256 of raw bytes: no nbelastic code takes part, so a
round-trip test cannot pass because both sides share a bug.
"""

import hashlib
import re
import types

_IPYTHON = re.compile(r"^(_+|_i+|_i\d+|_\d+|_ih|_oh|_dh|_exit_code|In|Out|get_ipython|exit|quit)$")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


_MAX_DEPTH = 6


def describe(value, seen=None, depth=0):
    """A deterministic text for ``value``; each object is spelled out once, then referenced."""
    seen = {} if seen is None else seen
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return f"{kind}:{value!r}"
    if id(value) in seen:
        return f"{kind}:<ref {seen[id(value)]}>"
    if depth > _MAX_DEPTH:
        return f"{kind}:<deep>"
    seen[id(value)] = len(seen)
    deeper = depth + 1
    module = type(value).__module__.split(".")[0]
    if module == "numpy" and hasattr(value, "dtype") and hasattr(value, "shape"):
        if value.dtype.hasobject:
            return f"{kind}:{value.dtype}:{value.shape}:" + str(
                [describe(v, seen, deeper) for v in value.ravel().tolist()]
            )
        return f"{kind}:{value.dtype}:{value.shape}:{_digest(value.tobytes())}"
    if module == "numpy" and hasattr(value, "bit_generator"):
        # a Generator's own state says nothing of where it is: its bit generator's does
        return f"{kind}:" + describe(value.bit_generator.state, seen, deeper)
    if module == "pandas" and hasattr(value, "to_csv"):
        return f"{kind}:{getattr(value, 'dtypes', None)}:{_digest(value.to_csv().encode())}"
    if module == "torch" and hasattr(value, "detach"):
        return f"{kind}:{_digest(value.detach().cpu().numpy().tobytes())}"
    if isinstance(value, (list, tuple)):
        return f"{kind}:[" + ", ".join(describe(v, seen, deeper) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(
            f"{describe(k, seen, deeper)}: {describe(v, seen, deeper)}" for k, v in value.items()
        )
        return f"{kind}:{{{items}}}"
    if isinstance(value, (set, frozenset)):
        return f"{kind}:{sorted(describe(v, {}, deeper) for v in value)}"
    if isinstance(value, types.ModuleType):
        return f"module:{value.__name__}"
    if isinstance(value, (types.FunctionType, type)):
        return f"{kind}:{value.__qualname__}"
    if isinstance(value, types.GeneratorType):
        return f"generator:{value.__qualname__}"
    if module in ("matplotlib", "threading"):
        return kind  # callbacks, caches, thread counters: nothing comparable across kernels
    default_getstate = getattr(object, "__getstate__", None)  # Python 3.11+ has one
    if getattr(type(value), "__getstate__", default_getstate) is not default_getstate:
        # the object says what its state is (torch optimizers leave out warn-once flags)
        state = value.__getstate__()
        if isinstance(state, dict):
            state = dict(sorted(state.items()))
        return f"{kind}:" + describe(state, seen, deeper)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        # attribute order is not state (unpickling may set attributes in another order)
        return f"{kind}:" + describe(dict(sorted(vars(value).items())), seen, deeper)
    text = repr(value)
    return kind if " at 0x" in text else f"{kind}:{text}"


def describe_namespace():
    shell = get_ipython()  # noqa: F821 - defined inside a kernel
    hidden = shell.user_ns_hidden
    result = {}
    for name, value in shell.user_ns.items():
        if name.startswith("__") and name.endswith("__"):
            continue
        if _IPYTHON.match(name) or (name in hidden and hidden[name] is value):
            continue
        result[name] = describe(value)
    return result
