"""One walk over a value's object graph gives everything the monitor and the planner need.

``profile(value)`` returns a content hash (to detect in-place changes and to verify a restore),
an estimate of the bytes a store would write, the identity tokens of the mutable objects it
reaches (names sharing a token are *linked* and travel together), and whether the value can be
stored at all. Hashes are deterministic across processes: no ``id()``, no ``hash()`` of strings,
sets hashed as sorted element digests.

Example
-------
>>> a = [1, 2]
>>> profile(a).hash == profile([1, 2]).hash
True
>>> bool(profile(a).tokens & profile({"k": a}).tokens)
True
>>> profile((x for x in a)).unstorable
'generator cannot be serialized'
"""

from __future__ import annotations

import dis
import enum
import functools
import io
import marshal
import pickle
import struct
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import xxhash

if TYPE_CHECKING:
    from nbelastic.writewatch import WriteWatch

_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes, type(Ellipsis)})
_FAST_LIST_MIN = 64
_MEMO_STRING_MAX = 40
_MAIN = "__main__"
# How many times the elements of sets may walk again what another element already walked, per
# value: past it the value is left unhashed (see _SetRewalks).
_SET_REWALKS_MAX = 200_000
# Bumped whenever some value's hash changes, so that a checkpoint hashed by another version is
# reported as not comparable instead of as mismatched. 2: pandas hashed column by column. 3: masked
# arrays by their data, mask and fill value; state that loading ignores left out.
HASHER_VERSION = 3


@dataclass(frozen=True)
class Profile:
    """What one walk learned about a value."""

    type_name: str
    # A content hash (None when the value reaches something whose state cannot be read); with
    # a write watch, a fingerprint that is only comparable within this process.
    hash: str | None
    size: int  # estimated bytes once stored
    tokens: frozenset  # identity tokens of reachable mutable objects (for linking)
    unstorable: str  # why the value cannot be stored, or ""
    watched: bool = False  # some buffer entered ``hash`` as a write-watch fingerprint


def type_name(value: object) -> str:
    """``module.QualName`` of the value's type, e.g. ``numpy.ndarray``.

    >>> type_name(3), type_name({})
    ('builtins.int', 'builtins.dict')
    """
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def profile(value: object, watch: WriteWatch | None = None) -> Profile:
    """Walk ``value`` once: hash, size estimate, identity tokens, storability.

    With a ``watch`` (see nbelastic.writewatch), large buffers it can watch enter the hash as
    a fingerprint that changes when they are written, not as their bytes: such a hash detects
    changes within this process only, which is what the monitor needs between cells.

    >>> p = profile({"a": [1.5, "x"], "b": None})
    >>> p.type_name, p.unstorable, len(p.hash)
    ('builtins.dict', '', 32)
    """
    walker = _Walker(watch)
    walker.walk(value)
    return Profile(
        type_name=type_name(value),
        hash=None if walker.opaque else walker.hasher.hexdigest(),
        size=walker.size,
        tokens=frozenset(walker.tokens),
        unstorable=walker.unstorable,
        watched=walker.watched,
    )


def is_user_defined(obj: object) -> bool:
    """True for functions and classes defined in the notebook itself (module ``__main__``)."""
    return getattr(obj, "__module__", None) == _MAIN


class _SetRewalks:
    """Counts what set elements walk again: each element is hashed on its own (see _set), so an
    object graph that many elements share, with sets inside (a dask client's task states), is
    walked once per path through it, which grows exponentially with the nesting. Past
    _SET_REWALKS_MAX the walk stops and the value is left without a hash: the monitor counts it
    as changed whenever a cell reads it, and a restore as not comparable, rather than the
    cell never returning."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.count = 0
        self.exhausted = False

    def walked(self, obj: object) -> None:
        if id(obj) in self.seen:
            self.count += 1
            self.exhausted = self.count > _SET_REWALKS_MAX
        else:
            self.seen.add(id(obj))


class _Walker:
    """Iterative pre-order walk; shared objects and cycles are hashed as back-references."""

    def __init__(self, watch: WriteWatch | None = None, rewalks: _SetRewalks | None = None) -> None:
        self.watch = watch
        self.rewalks = rewalks  # set when this walk is one element of a set
        self.watched = False
        self.hasher = xxhash.xxh3_128()
        self.memo: dict[int, int] = {}
        self.keep: list[object] = []  # derived objects stay alive so their ids stay unique
        self.tokens: set = set()
        self.size = 0
        self.opaque = False
        self.unstorable = ""
        self.stack: list[object] = []
        self.strings_seen: set[str] = set()
        self.buffers_counted: dict[int, int] = {}  # base array id -> its bytes in ``size``
        self.figures_counted: set[int] = set()  # ids of the matplotlib figures in ``size``
        self.top: object = None

    def write(self, tag: bytes, text: str = "") -> None:
        self.hasher.update(tag)
        self.hasher.update(text.encode("utf-8", "surrogatepass"))
        self.hasher.update(b"\x00")

    def mark_opaque(self, reason: str) -> None:
        self.opaque = True
        if not self.unstorable:
            self.unstorable = reason

    def walk(self, root: object) -> None:
        if self.top is None:
            self.top = root
        self.stack.append(root)
        while self.stack:
            if self.rewalks is not None and self.rewalks.exhausted:
                self.stack.clear()
                self.opaque = True
                return
            obj = self.stack.pop()
            cls = type(obj)
            # Looking the class up hashes it, which a hostile metaclass can make fail too.
            try:
                if cls in _SCALARS:
                    self.scalar(obj)
                    continue
                index = self.memo.get(id(obj))
                if index is not None:
                    self.write(b"R", str(index))
                    continue
                self.memo[id(obj)] = len(self.memo)
                self.keep.append(obj)
                if self.rewalks is not None:
                    self.rewalks.walked(obj)
                handler = _HANDLERS.get(cls) or _resolve_handler(cls)
                handler(self, obj)
            except Exception as error:  # noqa: BLE001 - a hostile object must not break the cell
                self.mark_opaque(f"{type_name(obj)} could not be inspected ({_first_line(error)})")

    def push_all(self, items: list) -> None:
        self.stack.extend(reversed(items))

    def scalar(self, obj: object) -> None:
        cls = type(obj)
        if cls is str:
            self.write(b"s", obj)
            # pickle writes a repeated short string (an attribute name) once, then a 2-byte ref
            if len(obj) <= _MEMO_STRING_MAX and obj in self.strings_seen:
                self.size += 2
            else:
                self.size += len(obj) + 5
                if len(obj) <= _MEMO_STRING_MAX:
                    self.strings_seen.add(obj)
        elif cls is int:
            self.hasher.update(b"i")
            self.hasher.update(obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True))
            self.size += 5
        elif cls is float:
            self.hasher.update(b"f" + struct.pack("<d", obj))
            self.size += 9
        elif cls is bytes:
            self.write(b"b", str(len(obj)))
            self.hasher.update(obj)
            self.size += len(obj) + 5
        else:
            self.write(b"c", repr(obj))
            self.size += 2


def _sequence(walker: _Walker, obj: list | tuple) -> None:
    tag = b"L" if isinstance(obj, list) else b"T"
    walker.write(tag, str(len(obj)))
    if isinstance(obj, list):
        walker.tokens.add(id(obj))
    walker.size += 4
    if len(obj) >= _FAST_LIST_MIN and set(map(type, obj)) <= _SCALARS:
        # One pickle, in C and without a memo, hashes the items and measures them: a float
        # takes 9 pickled bytes and ~19 characters of repr, which is also far slower to make.
        walker.write(b"r")
        walker.size += _pickle_into(walker.hasher, [obj])
        return
    walker.push_all(list(obj))


class _HashSink:
    """A write-only file that feeds a hasher and counts the bytes it was fed."""

    def __init__(self, hasher) -> None:
        self.hasher = hasher
        self.count = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.count += len(data)
        return len(data)


def _pickle_into(hasher, chunks: Iterable[list | tuple]) -> int:
    """Pickle each chunk of immutable scalars into ``hasher``, without a memo so that equal
    strings give equal bytes however they are shared; the number of bytes written."""
    sink = _HashSink(hasher)
    pickler = pickle.Pickler(sink, protocol=5)
    pickler.fast = True
    for chunk in chunks:
        pickler.dump(chunk)
    return sink.count


def _dict(walker: _Walker, obj: dict) -> None:
    if _is_module_namespace(obj):  # globals() kept in a variable: the module, not its contents
        walker.write(b"n", f"namespace of {obj['__name__']}")
        return
    walker.write(b"D", str(len(obj)))
    walker.tokens.add(id(obj))
    walker.size += 4
    items: list = []
    for key, value in obj.items():
        items.append(key)
        items.append(value)
    walker.push_all(items)


def _is_module_namespace(obj: dict) -> bool:
    name = obj.get("__name__")
    return isinstance(name, str) and getattr(sys.modules.get(name), "__dict__", None) is obj


def _set(walker: _Walker, obj: set | frozenset) -> None:
    # Set iteration order depends on string hash randomisation: hash each element on its own
    # and combine the sorted digests so the result is the same in every process.
    walker.write(b"S" if isinstance(obj, set) else b"F", str(len(obj)))
    if isinstance(obj, set):
        walker.tokens.add(id(obj))
    digests = []
    known = len(walker.memo)
    for element in obj:
        # Objects met before the set (the set itself, a parent holding it) stay back-references
        # inside an element, or a cycle through the set is walked without end. What an element
        # adds to the memo is dropped after it: the next element must not depend on it.
        if walker.rewalks is None:
            walker.rewalks = _SetRewalks()
        sub = _Walker(rewalks=walker.rewalks)
        sub.memo, sub.keep = walker.memo, walker.keep
        sub.top, sub.buffers_counted = walker.top, walker.buffers_counted
        sub.figures_counted = walker.figures_counted
        sub.walk(element)
        while len(walker.memo) > known:
            walker.memo.popitem()
        walker.tokens |= sub.tokens
        walker.size += sub.size
        if sub.opaque:
            walker.mark_opaque(sub.unstorable)
        digests.append(sub.hasher.digest())
    for digest in sorted(digests):
        walker.hasher.update(digest)


def _code_digest(code: types.CodeType) -> str:
    """Hash of what a code object does, without its file name or line numbers."""
    hasher = xxhash.xxh3_64()
    hasher.update(code.co_code)
    signature = (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)
    hasher.update(repr(signature).encode())
    for names in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars):
        hasher.update("\x00".join(names).encode("utf-8", "surrogatepass") + b"\x01")
    for const in code.co_consts:
        hasher.update(_const_digest(const))
    return hasher.hexdigest()


def _const_digest(const: object) -> bytes:
    if isinstance(const, types.CodeType):
        return _code_digest(const).encode()
    if isinstance(const, frozenset):  # ``x in {"a", "b"}``: sorted, as set order varies
        return repr(sorted(const, key=repr)).encode("utf-8", "surrogatepass")
    if isinstance(const, tuple):  # ``return (1, 2)``, ``x in (1, 2)``: folded into one constant
        return b"(" + b"".join(_const_digest(item) for item in const) + b")"
    return marshal.dumps(const) if type(const) in _SCALARS else b"?"


def _function(walker: _Walker, fn: types.FunctionType) -> None:
    if not is_user_defined(fn) and "<" not in fn.__qualname__:
        _named(walker, fn)  # a library function, pickled by reference: no link through it
        return
    walker.write(b"fn", f"{fn.__module__}.{fn.__qualname__}:{_code_digest(fn.__code__)}")
    walker.tokens.add(id(fn))
    walker.size += 200 + len(fn.__code__.co_code)
    parts: list = [fn.__defaults__, fn.__kwdefaults__, fn.__dict__]
    if fn.__closure__:
        for cell in fn.__closure__:
            try:
                parts.append(cell.cell_contents)
            except ValueError:  # an empty cell: the free variable is not bound yet
                parts.append(None)
    walker.push_all(parts)


def _method(walker: _Walker, method: types.MethodType) -> None:
    walker.write(b"m", method.__func__.__qualname__)
    walker.push_all([method.__self__, method.__func__])


def _named(walker: _Walker, obj: object) -> None:
    """Modules, library classes and builtins are global singletons: hashed by name, no link."""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "")
    walker.write(b"n", f"{getattr(obj, '__module__', '') or ''}.{name}")
    walker.size += 40


# Class attributes that are not the user's: ``__slotnames__`` is a cache copyreg adds on first
# pickling, so hashing it would make a class look changed after it was merely saved.
_CLASS_BOOKKEEPING = frozenset(
    {"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__slotnames__"}
)


def _class(walker: _Walker, cls: type) -> None:
    if not is_user_defined(cls):
        _named(walker, cls)
        return
    walker.write(b"C", cls.__qualname__)
    walker.tokens.add(id(cls))
    walker.size += 500
    members: list = []
    # Sorted: a class rebuilt by unpickling may list its members in another order.
    for key, value in sorted(cls.__dict__.items()):
        if key in _CLASS_BOOKKEEPING:
            continue
        members.append(key)
        if isinstance(value, property):
            members.append((value.fget, value.fset, value.fdel))
        elif isinstance(value, staticmethod | classmethod):
            members.append(value.__func__)
        else:
            members.append(value)
    bases = [base for base in cls.__bases__ if base is not object]
    walker.write(b"B", str(len(bases)))
    walker.push_all(members + bases)


def _opaque(reason: str) -> Callable[[_Walker, object], None]:
    def handler(walker: _Walker, obj: object) -> None:
        walker.write(b"X", type_name(obj))
        walker.tokens.add(id(obj))
        walker.mark_opaque(reason)

    return handler


def _object(walker: _Walker, obj: object) -> None:
    """Plain instances: their ``__dict__`` and slots; anything else: what pickle would save."""
    cls = type(obj)
    walker.write(b"O", f"{cls.__module__}.{cls.__qualname__}")
    walker.tokens.add(id(obj))
    if is_user_defined(cls):
        walker.stack.append(cls)
    slots = _slot_values(obj)
    if _has_default_pickling(cls) and (hasattr(obj, "__dict__") or slots):
        walker.write(b"sl", str(len(slots)))
        walker.push_all([getattr(obj, "__dict__", None), *slots])
        walker.size += 60
        return
    try:
        reduced = obj.__reduce_ex__(4)
    except Exception as error:  # noqa: BLE001 - any failure means "cannot be pickled"
        walker.mark_opaque(f"{type_name(obj)} cannot be serialized ({_first_line(error)})")
        return
    if isinstance(reduced, str):
        walker.write(b"g", reduced)
        walker.tokens.discard(id(obj))  # a global singleton such as pandas.NA: pickled by name
        return
    walker.keep.append(reduced)
    # The lists built here from pickle's item iterators are ours, not the user's: their items
    # are pushed inline, so no short-lived object's id can become an identity token.
    parts = list(reduced[1:3])
    if len(parts) == 2 and _drops_state(cls):
        parts[1] = None  # what loading leaves out is not compared after a restore
    for extra in reduced[3:5]:
        items = list(extra) if extra is not None else []
        walker.keep.append(items)
        walker.write(b"I", str(len(items)))
        parts.extend(items)
    walker.size += 60
    walker.push_all(parts)


_DEFAULT_GETSTATE = getattr(object, "__getstate__", None)  # Python 3.11+ has one on object


def _drops_state(cls: type) -> bool:
    """Whether loading an instance ignores its pickled state: a ``__setstate__`` that does
    nothing (sklearn's Bunch, whose attributes are its items)."""
    code = getattr(getattr(cls, "__setstate__", None), "__code__", None)
    return isinstance(code, types.CodeType) and _does_nothing(code)


@functools.cache
def _does_nothing(code: types.CodeType) -> bool:
    steps = [i for i in dis.get_instructions(code) if i.opname not in ("RESUME", "NOP")]
    names = [i.opname for i in steps]
    returns_none = names in (["LOAD_CONST", "RETURN_VALUE"], ["RETURN_CONST"])
    return returns_none and steps[0].argval is None


def _has_default_pickling(cls: type) -> bool:
    """True when pickle saves an instance as its ``__dict__`` and slots, and nothing else.

    Subclasses of list and dict save their items too, and subclasses of int, str or tuple their
    value (``__getnewargs__``): for those, only ``__reduce_ex__`` says everything.
    """
    return (
        cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is object.__reduce__
        and getattr(cls, "__getstate__", _DEFAULT_GETSTATE) is _DEFAULT_GETSTATE
        and not issubclass(cls, list | dict)
        and not hasattr(cls, "__getnewargs__")
        and not hasattr(cls, "__getnewargs_ex__")
    )


def _slot_values(obj: object) -> list:
    values = []
    for klass in type(obj).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if slot in ("__dict__", "__weakref__"):
                continue
            values.append(getattr(obj, slot, None))
    return values


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _ndarray(walker: _Walker, arr) -> None:
    import numpy as np

    root = arr
    while isinstance(root.base, np.ndarray):
        root = root.base
    walker.tokens.add(id(root))
    walker.tokens.add(id(arr))
    walker.write(b"A", f"{type_name(arr)}|{arr.dtype.descr}|{arr.shape}")
    masked = sys.modules.get("numpy.ma")
    if masked is not None and isinstance(arr, masked.MaskedArray):
        _masked_array(walker, arr, masked)
        return
    if type(arr).__reduce__ is not np.ndarray.__reduce__:
        # A subclass with state beside the buffer (a masked array's mask, a unit): hash what
        # pickle saves, which copies the buffer but misses nothing.
        _object(walker, arr)
        return
    walker.size += 128
    if arr.dtype.hasobject:
        walker.push_all(list(arr.flat))  # the pointers are not stored, only the objects
        return
    walker.size += _stored_buffer_bytes(walker, arr, root)
    _hash_array(walker, arr)


def _masked_array(walker: _Walker, arr, masked) -> None:
    """A masked array as what it holds: data, mask, fill value, hardness. Its pickled state has
    the fill value as computed so far (None until first asked for, filled in by loading), and
    its data as raw bytes, which are pointers for an object array."""
    walker.write(b"M", str(arr.hardmask))
    data = arr.data
    walker.keep.append(data)
    fill = arr.fill_value  # a numpy scalar before a round trip, maybe a plain one after it
    fill = fill.item() if hasattr(fill, "item") else fill
    if data.dtype.hasobject:
        walker.push_all([*data.flat, fill])
    else:
        _hash_array(walker, data)
        walker.push_all([fill])
    mask = masked.getmaskarray(arr)
    _hash_buffer(walker.hasher, mask)
    walker.size += 200 + data.nbytes + mask.nbytes


def _stored_buffer_bytes(walker: _Walker, arr, root) -> int:
    """The bytes a store adds for ``arr``'s buffer. nbelastic.store.codecs pickles a view as a
    copy of its own elements while no other array of the value reaches its base's memory, and
    as a view of the whole base once one does (shared memory stays shared): a lone slice of a
    big array costs the slice, a base with views costs the base once, however many views."""
    import numpy as np

    if arr is walker.top:
        return arr.nbytes  # a variable that is an array alone goes to an .npy of its own
    shareable = (
        (arr is root or (type(arr) is np.ndarray and arr.size > 0))
        and (root.flags.c_contiguous or root.flags.f_contiguous)
        and not root.dtype.hasobject
    )
    if not shareable:
        return arr.nbytes
    counted = walker.buffers_counted.get(id(root))
    if counted is None:
        walker.buffers_counted[id(root)] = arr.nbytes
        return arr.nbytes
    walker.buffers_counted[id(root)] = root.nbytes
    return root.nbytes - counted


def _numpy_value(walker: _Walker, obj) -> None:
    """numpy scalars and dtypes are immutable and often cached singletons: hash, never link."""
    import numpy as np

    if isinstance(obj, np.generic):
        walker.write(b"g", f"{type_name(obj)}|{obj.dtype.descr}")
        walker.hasher.update(np.asarray(obj).tobytes() if not obj.dtype.hasobject else b"")
        if obj.dtype.hasobject:
            walker.stack.append(obj.item())
    else:
        walker.write(b"t", str(obj.descr))
    walker.size += 32


def _torch_tensor(walker: _Walker, tensor) -> None:
    """Tensors (and Parameters): their bytes, dtype, shape and grad flag, read without autograd.

    ``.grad`` is left out, as ``torch.save`` and pickle leave it out: it is not saved state.
    """
    import torch

    data = tensor.detach()
    if data.layout != torch.strided or data.is_quantized:
        _object(walker, tensor)
        return
    walker.write(
        b"Tt",
        f"{type_name(tensor)}|{data.dtype}|{tuple(data.shape)}|{tensor.requires_grad}",
    )
    walker.tokens.add(id(tensor))
    walker.tokens.add(("torch-storage", data.untyped_storage().data_ptr()))
    flat = data.cpu().reshape(-1).contiguous()
    if flat.numel():
        walker.hasher.update(flat.view(torch.uint8).numpy())
    walker.size += data.element_size() * data.nelement() + 400


def _hash_array(walker: _Walker, arr) -> None:
    """A numeric array's bytes, or the watch's fingerprint of them when it has one."""
    watched = walker.watch.fingerprint(arr) if walker.watch is not None else None
    if watched is None:
        _hash_buffer(walker.hasher, arr)
    else:
        walker.write(b"W")
        walker.hasher.update(watched.token)
        walker.watched = True


def _hash_buffer(hasher, arr) -> None:
    """Feed a numeric array's bytes in C order; a strided view goes in slabs of about 4 MiB so
    no full copy is ever made."""
    import numpy as np

    if arr.ndim == 0 or arr.flags.c_contiguous:
        hasher.update(arr.reshape(-1).view(np.uint8))
        return
    row_bytes = max(1, arr[0].nbytes if arr.ndim > 1 else arr.itemsize)
    step = max(1, (4 << 20) // row_bytes)
    for start in range(0, arr.shape[0], step):
        slab = np.ascontiguousarray(arr[start : start + step])
        hasher.update(slab.reshape(-1).view(np.uint8))


def _pandas(walker: _Walker, obj) -> None:
    """Frames, Series and Indexes, column by column: the hash must not depend on how pandas
    groups columns into blocks, which it may change in place. Numeric columns are hashed
    through their buffers, columns of plain scalars through one pickle of their values, and
    anything else is walked like any other object."""
    import pandas as pd

    walker.write(b"P", type_name(obj))
    walker.tokens.add(id(obj))
    walker.size += 500
    later: list = []  # walked after this object's own parts, in this order
    try:
        if isinstance(obj, pd.DataFrame):
            walker.write(b"c", repr(list(map(str, obj.dtypes))))
            _pandas_index(walker, obj.columns, later)
            _pandas_index(walker, obj.index, later)
            columns = obj._mgr
            for position in range(obj.shape[1]):
                _pandas_values(walker, columns.iget_values(position), later)
            buffers = [block.values for block in obj._mgr.blocks]
        elif isinstance(obj, pd.Series):
            walker.write(b"c", f"{obj.name!r}|{obj.dtype}")
            _pandas_index(walker, obj.index, later)
            _pandas_values(walker, obj._values, later)
            buffers = [obj._values]
        else:
            _pandas_index(walker, obj, later)
            materialized = isinstance(obj, pd.RangeIndex | pd.MultiIndex)
            buffers = [] if materialized else [obj._values]
    except (TypeError, ValueError, AttributeError):
        # An unusual layout: fall back to what pickle would save, which is slower but exact.
        _object(walker, obj)
        return
    later.append(getattr(obj, "attrs", None))
    flags = getattr(obj, "flags", None)
    later.append(getattr(flags, "allows_duplicate_labels", None))
    later.extend(getattr(obj, name, None) for name in getattr(obj, "_metadata", ()))
    walker.push_all(later)
    for values in buffers:
        walker.tokens.add(id(_buffer_owner(values)))


def _buffer_owner(values) -> object:
    """The array that owns the memory behind a column (shared with numpy views of it)."""
    base = getattr(values, "_ndarray", getattr(values, "_data", values))
    while getattr(base, "base", None) is not None and type(base.base).__name__ == "ndarray":
        base = base.base
    return base


def _pandas_index(walker: _Walker, index, later: list) -> None:
    import pandas as pd

    walker.write(b"x", f"{type_name(index)}|{index.dtype}|{list(index.names)!r}")
    if isinstance(index, pd.RangeIndex):
        walker.write(b"r", f"{index.start}|{index.stop}|{index.step}")
        walker.size += 100
    elif isinstance(index, pd.MultiIndex):
        for level in index.levels:
            _pandas_index(walker, level, later)
        for codes in index.codes:
            _pandas_values(walker, codes, later)
    else:
        _pandas_values(walker, index._values, later)


def _pandas_values(walker: _Walker, values, later: list) -> None:
    """One column: a numpy array or one of pandas' extension arrays."""
    import numpy as np
    import pandas as pd

    if isinstance(values, np.ndarray):
        walker.write(b"a", f"{values.dtype.str}|{values.shape}")
        if values.dtype.hasobject:
            _object_column(walker, values, later, plain=False)
        else:
            _hash_array(walker, values)
            walker.size += values.nbytes
        return
    walker.write(b"e", f"{type_name(values)}|{values.dtype}")
    if isinstance(values, pd.Categorical):
        walker.write(b"k", str(values.ordered))
        _pandas_index(walker, values.categories, later)
        _pandas_values(walker, values.codes, later)
    elif isinstance(getattr(values, "_ndarray", None), np.ndarray):
        # datetimes, periods, strings...: a numpy array and a dtype. A string array holds
        # nothing but strings and missing values, as pandas checks every write to it.
        if values._ndarray.dtype.hasobject:
            plain = isinstance(values.dtype, pd.StringDtype)
            _object_column(walker, values._ndarray, later, plain=plain)
        else:
            _pandas_values(walker, values._ndarray, later)
    elif isinstance(values, pd.api.extensions.ExtensionArray) and hasattr(values, "_mask"):
        _pandas_values(walker, values._data, later)  # nullable Int64, Float64, boolean
        _pandas_values(walker, values._mask, later)
    else:
        later.append(values)  # any other extension array: what pickle saves


# What pandas' type inference calls a column of immutable scalars (missing values skipped).
_SCALAR_KINDS = frozenset(
    {
        "string",
        "bytes",
        "floating",
        "integer",
        "mixed-integer-float",
        "decimal",
        "complex",
        "boolean",
        "datetime",
        "datetime64",
        "date",
        "timedelta",
        "timedelta64",
        "time",
        "period",
        "empty",
    }
)
_PICKLE_CHUNK = 1 << 16  # elements per pickled slice, so no full list of the column is made


def _object_column(walker: _Walker, values, later: list, *, plain: bool) -> None:
    """A 1-D object column. Immutable scalars are hashed by pickling them without a memo (so
    equal strings hash equal however they are shared); anything else (lists, instances) is
    walked, which sees a change inside an element and links the elements' owners."""
    watched = None
    if walker.watch is not None and values.ndim == 1:
        watched = walker.watch.fingerprint(values)
    # The watch fingerprints the pointers: while they are unwritten the column holds the same
    # objects, and what follows from immutable ones (plainness, size) still holds.
    facts = watched.facts if watched is not None else {}
    if not plain and values.ndim == 1 and "plain" not in facts:
        facts["plain"] = _holds_plain_scalars(values)
    if values.ndim != 1 or not (plain or facts["plain"]):
        walker.write(b"o", "walked")
        later.extend(values.reshape(-1).tolist())
        return
    walker.write(b"o", "pickled")
    if watched is None:
        chunks = (
            values[i : i + _PICKLE_CHUNK].tolist() for i in range(0, len(values), _PICKLE_CHUNK)
        )
        _pickle_into(walker.hasher, chunks)
    else:
        walker.write(b"W")
        walker.hasher.update(watched.token)
        walker.watched = True
    if "size" not in facts:
        facts["size"] = _sampled_size(values)
    walker.size += facts["size"]


def _holds_plain_scalars(values) -> bool:
    import pandas as pd

    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in _SCALAR_KINDS:
        return True
    if not kind.startswith("mixed"):
        return False
    return {type(item) for item in values.tolist()} <= _SCALARS | _missing_types()


def _missing_types() -> frozenset:
    import pandas as pd

    return frozenset({type(pd.NA), type(pd.NaT)})


_SAMPLE = 4096


def _sampled_size(values) -> int:
    """Bytes pickle writes for an object column, from a sample of its cells.

    pickle writes each distinct string (or other memoised object) once and a 2- or 5-byte
    reference for every repeat, so the number of distinct objects matters as much as their size:
    it is estimated from how often sampled cells repeat (Chao1), exact when the sample is the
    whole column. Numbers and None are written in full every time.
    """
    import numpy as np

    count = len(values)
    if count <= _SAMPLE:
        sample = values.tolist()
    else:
        positions = np.random.default_rng(count).integers(0, count, _SAMPLE)
        sample = values[positions].tolist()
    if not sample:
        return 0
    scale = count / len(sample)
    written_in_full = 0
    repeats: dict[int, int] = {}
    sizes: dict[int, int] = {}
    for item in sample:
        if type(item) in _UNMEMOISED:
            written_in_full += _pickled_item_size(item)
            continue
        key = id(item)
        if key in repeats:
            repeats[key] += 1
        else:
            repeats[key] = 1
            sizes[key] = _pickled_item_size(item)
    total = written_in_full * scale
    if repeats:
        cells = sum(repeats.values()) * scale
        distinct = len(repeats)
        if scale > 1:
            once = sum(1 for seen in repeats.values() if seen == 1)
            twice = sum(1 for seen in repeats.values() if seen == 2)
            unseen = once * once / (2 * twice) if twice else once * (once - 1) / 2
            distinct = min(cells, distinct + unseen)
        reference = 2 if distinct < 256 else 5
        total += distinct * sum(sizes.values()) / len(sizes) + (cells - distinct) * reference
    return int(total)


_UNMEMOISED = frozenset({type(None), bool, int, float})


def _pickled_item_size(item: object) -> int:
    cls = type(item)
    if cls is str:
        length = len(item.encode("utf-8", "surrogatepass"))
        return length + (3 if length < 256 else 6)
    if cls is float:
        return 9
    if cls is int:
        return 5
    if item is None or cls is bool:
        return 1
    try:
        return max(1, len(pickle.dumps(item, protocol=5)) - 12)
    except Exception:  # noqa: BLE001 - a size estimate only
        return 64


def _matplotlib(walker: _Walker, obj: object) -> None:
    """Figures, axes, artists, locators, colormaps: never hashed, as their pickled state changes
    each time it is taken (a callback registry advances a counter, transforms are keyed by
    ``id()``), so a cell touching one always counts as changing it and a restore does not compare
    it. Each is linked to the figure that owns it, so a figure, its axes and their artists are
    stored together and keep their identity; walking or pickling the figure itself would cost
    more than most cells. A container of artists (``ax.bar``) is linked through its artists."""
    walker.write(b"W", type_name(obj))
    walker.tokens.add(id(obj))
    walker.opaque = True
    if isinstance(obj, tuple):
        walker.push_all(list(obj))
        return
    figure = _owning_figure(obj)
    if figure is None:
        try:
            walker.size += len(pickle.dumps(obj, protocol=5))
        except Exception as error:  # noqa: BLE001 - whatever stops pickle stops the store too
            walker.mark_opaque(f"{type_name(obj)} cannot be serialized ({_first_line(error)})")
        return
    walker.tokens.add(id(figure))
    if id(figure) not in walker.figures_counted:
        walker.figures_counted.add(id(figure))
        walker.keep.append(figure)
        walker.size += _figure_size(figure)


# Attributes by which matplotlib objects name what they belong to, nearest first.
_OWNER_ATTRIBUTES = ("axes", "axis", "_gridspec", "figure")
_OWNER_DEPTH = 8


def _owning_figure(obj: object) -> object | None:
    """The top-level figure that ``obj`` (an artist, axis, locator, grid spec...) belongs to."""
    for _ in range(_OWNER_DEPTH):
        owner = None
        for attribute in _OWNER_ATTRIBUTES:
            candidate = getattr(obj, attribute, None)
            if candidate is not None and candidate is not obj and _is_matplotlib(type(candidate)):
                owner = candidate
                break
        if owner is None:
            return obj if getattr(obj, "figure", None) is obj else None
        obj = owner
    return None


def _is_matplotlib(cls: type) -> bool:
    return cls.__module__.split(".")[0] in _MATPLOTLIB_PACKAGES


# What pickle writes for a figure, fitted on line, scatter, image, contour, text, 3D and empty
# plots, drawn or not (within 0.7x-1.7x of the pickle, without taking it): a fixed part for the
# figure and for each axes, a part per tick made so far and per artist, and the arrays held.
_FIGURE_BYTES = 10_000
_AXES_BYTES = 20_000
_TICK_BYTES = 2_000
_ARTIST_BYTES = 2_000


def _figure_size(figure) -> int:
    size = _FIGURE_BYTES
    for axes in getattr(figure, "axes", ()):
        size += _AXES_BYTES
        for axis in getattr(axes, "_axis_map", {}).values():
            made = vars(axis)  # ticks are made when first asked for: do not make them here
            size += _TICK_BYTES * (
                len(made.get("majorTicks", ())) + len(made.get("minorTicks", ()))
            )
        for artist in getattr(axes, "_children", ()):
            size += _ARTIST_BYTES + _arrays_bytes(vars(artist).values())
    return size


def _arrays_bytes(values: Iterable) -> int:
    """The bytes of the arrays among ``values`` and in the paths among them (a contour's)."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return 0
    total = 0
    for value in values:
        if isinstance(value, numpy.ndarray):
            total += value.nbytes
        elif isinstance(value, list):
            for item in value[:_FAST_LIST_MIN]:
                vertices = getattr(item, "vertices", None)
                if isinstance(vertices, numpy.ndarray):
                    total += vertices.nbytes * max(1, len(value) // _FAST_LIST_MIN)
    return total


_OPAQUE = {
    types.GeneratorType: "generator",
    types.CoroutineType: "coroutine",
    types.AsyncGeneratorType: "async generator",
    types.FrameType: "frame",
    types.TracebackType: "traceback",
}

_HANDLERS: dict[type, Callable[[_Walker, object], None]] = {
    list: _sequence,
    tuple: _sequence,
    dict: _dict,
    set: _set,
    frozenset: _set,
    types.FunctionType: _function,
    types.MethodType: _method,
    types.ModuleType: _named,
    types.BuiltinFunctionType: _named,
}


def _resolve_handler(cls: type) -> Callable[[_Walker, object], None]:
    """Pick (and cache) the handler for a type not seen before."""
    handler = _pick_handler(cls)
    _HANDLERS[cls] = handler
    return handler


def _pick_handler(cls: type) -> Callable[[_Walker, object], None]:
    for kind, label in _OPAQUE.items():
        if issubclass(cls, kind):
            return _opaque(f"{label} cannot be serialized")
    if issubclass(cls, type):
        return _class
    if issubclass(cls, types.ModuleType):
        return _named
    if issubclass(cls, io.IOBase) and not issubclass(cls, io.StringIO | io.BytesIO):
        return _opaque("open file cannot be serialized")
    numpy = sys.modules.get("numpy")
    if numpy is not None and issubclass(cls, numpy.ndarray):
        return _ndarray
    if numpy is not None and issubclass(cls, numpy.generic | numpy.dtype):
        return _numpy_value
    if issubclass(cls, enum.Enum):
        return _named
    torch = sys.modules.get("torch")
    if torch is not None and issubclass(cls, torch.Tensor):
        return _torch_tensor
    pandas = sys.modules.get("pandas")
    if pandas is not None and issubclass(cls, pandas.DataFrame | pandas.Series | pandas.Index):
        return _pandas
    if _is_matplotlib(cls):
        return _matplotlib
    if cls.__module__.startswith(_KERNEL_MODULES):
        return _named
    if cls.__module__ == "builtins" and cls.__name__ in _BUILTIN_CALLABLES:
        return _named
    return _object


_MATPLOTLIB_PACKAGES = frozenset({"matplotlib", "mpl_toolkits"})
# The kernel's own machinery (output streams, sockets, the shell) leads back to the whole user
# namespace: a value reaching it (a thread's stderr) must not link to every variable.
_KERNEL_MODULES = (
    "ipykernel",
    "jupyter_client",
    "zmq",
    "tornado",
    "traitlets",
    "asyncio",
    "IPython.core",
    "IPython.terminal",
    "nbelastic",
)
_BUILTIN_CALLABLES = frozenset(
    {"builtin_function_or_method", "method_descriptor", "wrapper_descriptor", "method-wrapper"}
)
