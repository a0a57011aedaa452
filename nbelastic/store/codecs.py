"""Codecs: a group of variables <-> bytes, with safe formats tried before pickle.

Loading a pickle runs code, so values that plain JSON or a pickle-free ``.npy`` file can hold
exactly go there, and a checkpoint made only of those can be opened without trusting it. Modules
are stored by name. Everything else goes through one pickle per group, codec "dill" (loaded by
``dill.load``): linked variables share one pickle memo, so ``b is a`` and numpy views sharing
memory with their base survive; a view whose base nothing else in the group reaches is stored as
its own elements, not with its base. When dill cannot pickle a group that the standard pickle can (a
torch optimizer), and nothing in it is pickled by reference to the notebook's own ``__main__``,
the "pickle" codec holds it.

A "dill" blob is written by the standard C pickler when the group holds nothing that dill
pickles its own way (anything defined in ``__main__``, which dill pickles by value, and the types
dill registers); dill's pure-Python pickler is ten times slower on object-heavy data such as
pandas string columns, and ``dill.load`` reads both alike, so the format is unchanged.

Values are streamed into the store (``store_group``): a pickler or ``numpy.save`` writes into the
blob's file while it is hashed, protocol 5 hands large array buffers to the file without a copy,
and loading (``load_group``) reads them from the file straight into the new arrays. Saving or
restoring never holds a second copy of a large value in memory.

Example
-------
>>> encode_group({"x": [1, 2.0, "é"]})
('json', b'[1,2.0,"\\xc3\\xa9"]')
>>> decode_group("json", b'[1,2.0,"\\xc3\\xa9"]', ["x"])
{'x': [1, 2.0, 'é']}
>>> encode_group({"t": (1, 2)})[0]
'dill'
"""

from __future__ import annotations

import importlib
import io
import json
import math
import pickle
import re
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO, Protocol

import dill
import dill._dill

from nbelastic.errors import (
    CheckpointFormatError,
    NbelasticError,
    RestoreError,
    UnserializableError,
)
from nbelastic.store.blobs import byte_view
from nbelastic.store.pickles import (
    RefusedGlobalError,
    UnreadablePickleError,
    pickle_globals,
    restricted_load,
)

CODECS = ("json", "npy", "module", "dill", "pickle")
SAFE_CODECS = frozenset({"json", "npy"})
_MAX_JSON_INT_BITS = 14_000  # ~4200 digits, under CPython's default int <-> str limit of 4300
_MAIN = re.compile(b"__main__")
_NPY_MAGIC = b"\x93NUMPY"


class BlobSink(Protocol):
    """Where ``store_group`` puts what it encodes: a BlobStore or a RemoteBlobStore."""

    def put(self, codec: str, payload: bytes) -> str: ...

    def put_stream(self, codec: str, write: Callable[[BinaryIO], object]) -> tuple[str, int]: ...


def store_group(sink: BlobSink, values: Mapping[str, object]) -> tuple[str, str, int]:
    """Encode a group of variables (one name unless linked) into ``sink``.

    Returns ``(codec, key, payload size)``. Raises UnserializableError when no codec can hold
    the group (the planner then recomputes it), and StoreWriteError when the store fails.
    """
    if not values:
        raise ValueError("a group has at least one variable")
    if len(values) == 1:
        (value,) = values.values()
        encoded = _encode_json(value)
        if encoded is None:
            stored = _store_npy(sink, value)
            if stored is not None:
                return stored
            encoded = _encode_module(value)
        if encoded is not None:
            codec, payload = encoded
            return codec, sink.put(codec, payload), len(payload)
    return _store_pickled(sink, values)


def encode_group(values: Mapping[str, object]) -> tuple[str, bytes]:
    """:func:`store_group` into memory: ``(codec, payload)``.

    >>> encode_group({"n": None})
    ('json', b'null')
    >>> import types
    >>> encode_group({"m": types})
    ('module', b'types')
    """
    sink = _MemorySink()
    codec, _, _ = store_group(sink, values)
    return codec, sink.payload


def load_group(codec: str, stream: BinaryIO, names: Sequence[str]) -> dict[str, object]:
    """Inverse of :func:`store_group`: ``{name: value}`` for the group ``names``, read from a
    blob's payload ``stream`` (see BlobStore.open).

    Raises CheckpointFormatError when the codec is unknown or the payload does not hold exactly
    ``names``, and RestoreError when the value cannot be rebuilt here (e.g. a missing package).
    """
    label = ", ".join(names)
    if codec not in CODECS:
        raise CheckpointFormatError(
            f"{label}: unknown codec {codec!r} (written by a newer nbelastic?); upgrade nbelastic"
        )
    if codec not in ("dill", "pickle") and len(names) != 1:
        raise CheckpointFormatError(f"{label}: codec {codec!r} holds exactly one variable")
    try:
        if codec == "json":
            values = {names[0]: json.loads(stream.read().decode("utf-8"))}
        elif codec == "npy":
            values = {names[0]: _load_npy(stream, label)}
        elif codec == "module":
            values = {names[0]: importlib.import_module(stream.read().decode("utf-8"))}
        else:
            values = _unpickle(codec, stream, label)
    except NbelasticError:
        raise
    except Exception as e:
        raise RestoreError(
            f"{label}: cannot load from its {codec} blob ({type(e).__name__}: {_first_line(e)});"
            f" install what it needs and restore again"
        ) from e
    if not isinstance(values, dict) or sorted(values) != sorted(names):
        raise CheckpointFormatError(
            f"{label}: the {codec} blob holds other variables; the checkpoint is damaged"
        )
    return {name: values[name] for name in names}


def _load_npy(stream: BinaryIO, label: str) -> object:
    """One ``.npy`` array, pickling disabled; anything else (an ``.npz`` archive, which
    ``numpy.load`` would open as an NpzFile) is a damaged blob."""
    import numpy

    start = stream.tell()
    if stream.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
        raise CheckpointFormatError(
            f"{label}: its npy blob holds no .npy array; the checkpoint is damaged: save again"
            " from a kernel that still holds the state"
        )
    stream.seek(start)
    return numpy.lib.format.read_array(stream, allow_pickle=False)


def _unpickle(codec: str, stream: BinaryIO, label: str) -> object:
    """Unpickle, importing only the globals a review of these very bytes names (see
    nbelastic.store.pickles): what ``nbelastic trust`` showed is all the load can call."""
    start = stream.tell()
    try:
        allowed = pickle_globals(stream)
    except UnreadablePickleError as error:
        raise CheckpointFormatError(
            f"{label}: its {codec} blob is damaged ({error}); save again from a kernel that "
            "still holds the state"
        ) from None
    stream.seek(start)
    unpickler = pickle.Unpickler if codec == "pickle" else dill.Unpickler
    try:
        return restricted_load(unpickler, stream, allowed)
    except RefusedGlobalError as refused:
        raise CheckpointFormatError(
            f"{label}: its {codec} blob imports {refused}, a name its bytes do not hold (a "
            "crafted pickle?), so it was not loaded"
        ) from None


def decode_group(codec: str, payload: bytes, names: Sequence[str]) -> dict[str, object]:
    """:func:`load_group` from a payload in memory.

    >>> decode_group("json", b'{"b":1,"a":2}', ["d"])
    {'d': {'b': 1, 'a': 2}}
    """
    return load_group(codec, io.BytesIO(payload), names)


class _MemorySink:
    """A BlobSink that keeps the last payload, for :func:`encode_group`."""

    payload = b""

    def put(self, codec: str, payload: bytes) -> str:
        self.payload = payload
        return codec

    def put_stream(self, codec: str, write: Callable[[BinaryIO], object]) -> tuple[str, int]:
        buffer = _Buffer()
        write(buffer)
        self.payload = buffer.getvalue()
        return codec, len(self.payload)


class _Buffer(io.BytesIO):
    def write(self, data) -> int:
        return super().write(byte_view(data))


def _encode_json(value: object) -> tuple[str, bytes] | None:
    """Canonical JSON if it gives back exactly ``value``: same types, order, no shared parts."""
    try:
        if not _json_exact(value, set()):
            return None
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return "json", text.encode("utf-8")
    except (RecursionError, UnicodeEncodeError, ValueError):
        return None  # very deep nesting, lone surrogates, an int over a lowered digit limit


def _json_exact(value: object, seen: set[int]) -> bool:
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return True
    if kind is int:
        return value.bit_length() <= _MAX_JSON_INT_BITS
    if kind is float:
        return math.isfinite(value)
    if kind is list or kind is dict:
        if id(value) in seen:  # a cycle, or one list reachable twice: JSON would copy it
            return False
        seen.add(id(value))
        if kind is list:
            return all(_json_exact(item, seen) for item in value)
        return all(type(k) is str and _json_exact(v, seen) for k, v in value.items())
    return False


def _store_npy(sink: BlobSink, value: object) -> tuple[str, str, int] | None:
    """A plain ndarray without object fields as ``.npy``; numpy is never imported here."""
    numpy = sys.modules.get("numpy")
    if numpy is None or type(value) is not numpy.ndarray or value.dtype.hasobject:
        return None

    def write(stream: BinaryIO) -> None:
        with warnings.catch_warnings():
            # numpy warns when it would drop dtype metadata or pickle a custom dtype
            warnings.simplefilter("error")
            _write_npy(numpy, stream, value)

    try:
        key, size = sink.put_stream("npy", write)
    except (ValueError, Warning):
        return None
    return "npy", key, size


def _write_npy(numpy, stream: BinaryIO, array) -> None:
    """What ``numpy.save`` writes, byte for byte; the data of a contiguous array goes to
    ``stream`` as a view of its memory, where numpy.save would copy it 16 MiB at a time."""
    fmt = numpy.lib.format
    memory = _memory_order_bytes(numpy, array)
    if memory is not None:
        try:  # raises before writing when the header needs format 2 or 3, as numpy.save picks
            fmt.write_array_header_1_0(stream, fmt.header_data_from_array_1_0(array))
        except (ValueError, UnicodeEncodeError):
            pass
        else:
            stream.write(memory)
            return
    numpy.save(stream, array, allow_pickle=False)


def _memory_order_bytes(numpy, array):
    """The bytes of ``array`` in the order .npy stores them, as a flat uint8 view; None if
    that needs a copy or the dtype is one numpy.save handles its own way."""
    if not getattr(type(array.dtype), "_legacy", False) or array.dtype.itemsize == 0:
        return None
    try:
        if array.flags.c_contiguous:
            return array.reshape(-1).view(numpy.uint8)
        if array.flags.f_contiguous:
            return array.T.reshape(-1).view(numpy.uint8)
    except (ValueError, TypeError):
        pass
    return None


def _encode_module(value: object) -> tuple[str, bytes] | None:
    """A module that importing its name gives back, by name."""
    if not isinstance(value, types.ModuleType):
        return None
    name = getattr(value, "__name__", None)
    if isinstance(name, str) and sys.modules.get(name) is value:
        return "module", name.encode("utf-8")
    return None


def _store_pickled(sink: BlobSink, values: Mapping[str, object]) -> tuple[str, str, int]:
    """The C pickler if dill would write the same, else dill, else the standard pickle unless
    it names something in ``__main__`` (pickled by reference, it would need that name to exist
    before it is loaded)."""
    group = {name: values[name] for name in sorted(values)}
    with _suppress_pickling_errors():
        return ("dill", *_put_pickle(sink, "dill", _FastPickler, group))
    try:
        return ("dill", *_put_pickle(sink, "dill", _Pickler, group))
    except NbelasticError:
        raise
    except Exception as e:
        with _suppress_pickling_errors():
            return ("pickle", *_put_pickle(sink, "pickle", _plain_pickler, group))
        raise _unserializable(group, e) from e


def _put_pickle(
    sink: BlobSink, codec: str, pickler: _PicklerFactory, group: dict[str, object]
) -> tuple[str, int]:
    """Pickle ``group`` into ``sink``: once, or twice when a base array turns up after one of
    its views (see _ViewPlan), and a third time only if the second pickle meets other arrays
    than the first."""
    shared: frozenset[int] | None = frozenset()
    while True:
        try:
            return sink.put_stream(codec, _ViewPlan(pickler, group, shared).dump)
        except _Replan as replan:
            shared = replan.shared


class _suppress_pickling_errors:  # noqa: N801 - used like contextlib.suppress
    """Swallow a failed pickling attempt, never a failure of the store itself."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        return isinstance(error, Exception) and not isinstance(error, NbelasticError)


def _plain_pickler(stream: BinaryIO, views: _ViewPlan) -> pickle.Pickler:
    return _PlainPickler(_RefusingMain(stream), views)


class _RefusingMain:
    """Passes a pickle through to ``stream``, failing it where it names ``__main__``."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._tail = b""  # the last bytes written, where the name may have begun

    def write(self, data) -> int:
        view = byte_view(data)
        edge = len(_MAIN.pattern) - 1
        if _MAIN.search(self._tail + bytes(view[:edge])) or _MAIN.search(view):
            raise pickle.PicklingError("refers to the notebook's __main__")
        self._tail = (self._tail + bytes(view[-edge:]))[-edge:]
        return self._stream.write(view)


def _unserializable(group: dict[str, object], e: Exception) -> UnserializableError:
    """Name the variable that fails (retrying each one alone, on this failure path only)."""
    reason = "nested too deeply" if isinstance(e, RecursionError) else _first_line(e)
    if len(group) == 1:
        culprit = next(iter(group))
    else:
        culprit = next((name for name in group if _fails(name, group[name])), None)
    if culprit is None:
        return UnserializableError(
            f"{', '.join(group)}: these linked variables cannot be serialized together ({reason})"
        )
    linked = ", ".join(name for name in group if name != culprit)
    label = f"{culprit} (linked with {linked})" if linked else culprit
    kind = type(group[culprit]).__name__
    return UnserializableError(f"{label}: {kind} cannot be serialized ({reason})")


def _fails(name: str, value: object) -> bool:
    try:
        _ViewPlan(_Pickler, {name: value}, shared=None).dump(_Buffer())
    except Exception:
        return True
    return False


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__


class _ViewReducer:
    """Pickle a numpy view as a view of its base array where _ViewPlan says its memory is
    shared, else as numpy does (a copy of its own elements)."""

    def __init__(self, file: BinaryIO, views: _ViewPlan, **options) -> None:
        super().__init__(file, **options)
        self._views = views

    def reducer_override(self, obj: object) -> object:
        numpy = sys.modules.get("numpy")
        if numpy is None or not isinstance(obj, numpy.ndarray):
            return NotImplemented
        if isinstance(obj, numpy.memmap):
            raise pickle.PicklingError("a memory-mapped array is re-opened by replay, not stored")
        if not isinstance(obj.base, numpy.ndarray):
            self._views.base_pickled(obj)
            return NotImplemented
        if type(obj) is not numpy.ndarray:
            return NotImplemented
        placed = _place_in_base(numpy, obj)
        if placed is None:
            return NotImplemented
        root, offset = placed
        if not self._views.keeps_base(root):
            return NotImplemented
        args = (root, offset, obj.shape, obj.strides, obj.dtype, obj.flags.writeable)
        return _rebuild_view, args


def _place_in_base(numpy, view) -> tuple[object, int] | None:
    """``(base, byte offset)`` of a view that can be rebuilt from its outermost base array;
    None for views that numpy must copy (object dtype, outside the base's own buffer)."""
    root = view.base
    while isinstance(root.base, numpy.ndarray):
        root = root.base
    if view.size == 0 or view.dtype.hasobject or root.dtype.hasobject:
        return None
    if not (root.flags.c_contiguous or root.flags.f_contiguous):
        return None
    start = root.__array_interface__["data"][0]
    data = view.__array_interface__["data"][0]
    low = high = data
    for length, stride in zip(view.shape, view.strides, strict=True):
        if stride < 0:
            low += (length - 1) * stride
        else:
            high += (length - 1) * stride
    if low < start or high + view.itemsize > start + root.nbytes:
        return None  # outside the base's own buffer (as_strided tricks)
    return root, data - start


class _PicklerFactory(Protocol):
    def __call__(self, stream: BinaryIO, views: _ViewPlan) -> pickle.Pickler: ...


class _Replan(Exception):  # noqa: N818 - a signal between two passes, never an error
    """Pickle the group again, knowing the ids of the base arrays it reaches more than once
    (None: every view as a view of its base)."""

    def __init__(self, shared: frozenset[int] | None) -> None:
        super().__init__("pickle again")
        self.shared = shared


class _ViewPlan:
    """Which numpy views one pickle of a group keeps as views of their base array.

    A view keeps its base only when that memory is reached again in the group (the base itself
    or another view of it), so shared memory stays shared after a restore; a lone view, say a
    fitted model's slice of a big array, is a copy of its own elements. Whether a base comes
    again is known only at the end, so the first pickle copies a view whose base it has not
    met yet. When the base turns up after such a copy, that pickle goes on into no file,
    counting the arrays that reach each base, and the group is pickled again with the count
    (``_Replan``). Groups where no base follows one of its views are pickled once, and the
    count costs one dict entry per array.
    """

    def __init__(
        self, pickler: _PicklerFactory, group: dict[str, object], shared: frozenset[int] | None
    ) -> None:
        self._pickler, self._group = pickler, group
        self._shared = shared  # ids of bases reached twice (empty: not known yet), None: all
        self._whole: dict[int, object] = {}  # bases whose buffer is in the pickle
        self._copied: dict[int, object] = {}  # bases that a view was copied from
        self._reached: dict[int, int] = {}  # arrays reaching each base's memory
        self._output: _Divertible | None = None

    def dump(self, stream: BinaryIO) -> None:
        self._output = _Divertible(stream)
        self._pickler(self._output, self).dump(self._group)
        if self._output.discarding:
            raise _Replan(frozenset(key for key, count in self._reached.items() if count > 1))

    def base_pickled(self, base) -> None:
        """``base`` itself is in the pickle: its views met later can point into it."""
        key = id(base)
        self._reached[key] = self._reached.get(key, 0) + 1
        if key in self._copied:
            self._missed()
        self._whole[key] = base

    def keeps_base(self, base) -> bool:
        """Whether a view of ``base`` is pickled as a view of it (else as a copy)."""
        key = id(base)
        self._reached[key] = self._reached.get(key, 0) + 1
        if self._output.discarding:
            return False
        if self._shared is None or key in self._shared or key in self._whole:
            self._whole[key] = base
            return True
        if key in self._copied:
            self._missed()
        self._copied[key] = base
        return False

    def _missed(self) -> None:
        """A base comes after a view copied from it: this pickle cannot keep them sharing."""
        if self._shared:
            raise _Replan(None)  # the second pickle met other arrays (made by a __reduce__)
        self._output.discarding = True


class _Divertible:
    """Passes a pickle through to ``stream`` until told to discard the rest."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.discarding = False

    def write(self, data) -> int:
        if self.discarding:
            return 0
        return self._stream.write(data)


class _Pickler(_ViewReducer, dill.Pickler):
    """dill, fixed to by-value functions whose globals stay the live ``__main__.__dict__``.

    A class or function of a library that importing its module gives back is pickled by
    reference, as the standard pickle does: dill, when it fails to look one up (torch's
    optimizers), pickles it by value, with globals it cannot pickle (a typing sentinel).
    """

    def __init__(self, file: BinaryIO, views: _ViewPlan) -> None:
        super().__init__(file, views, protocol=5, byref=False, recurse=False)

    def reducer_override(self, obj: object) -> object:
        if (isinstance(obj, type) or type(obj) is types.FunctionType) and _importable(obj):
            return obj.__qualname__
        return super().reducer_override(obj)


def _importable(obj: type | types.FunctionType) -> bool:
    """Whether ``obj`` is what its module (already imported, never ``__main__``) names."""
    module = sys.modules.get(getattr(obj, "__module__", None) or "__main__")
    if module is None or module.__name__ == "__main__":
        return False
    found: object = module
    for part in getattr(obj, "__qualname__", "<").split("."):
        if part.startswith("<"):  # a local class or function: no name reaches it
            return False
        found = getattr(found, part, None)
    return found is obj


class _PlainPickler(_ViewReducer, pickle.Pickler):
    """The standard pickle, for what dill's by-value machinery trips over."""

    def __init__(self, file: BinaryIO, views: _ViewPlan) -> None:
        super().__init__(file, views, protocol=5)


class _DillNeeded(pickle.PicklingError):
    """The group holds something dill pickles its own way."""


class _FastPickler(_PlainPickler):
    """The C pickler, refusing whatever dill would pickle differently, so that its output is
    the pickle dill would have written (``dill.load`` reads it): functions and classes of
    ``__main__`` (dill pickles them by value), instances of the types dill registers (but bound
    methods that pickle's ``getattr`` by name gives back), and numpy subclass arrays whose
    ``__dict__`` dill adds. Everything else dill pickles by the standard
    rules too. The C pickler calls this only for objects that are not plain builtins (str, int,
    list, dict...), so a pandas string column costs nothing here."""

    def reducer_override(self, obj: object) -> object:
        kind = type(obj)
        if isinstance(obj, type) or kind is types.FunctionType:
            if getattr(obj, "__module__", None) in (None, "__main__"):
                raise _DillNeeded(f"{obj!r} is defined in __main__")
        elif kind is types.MethodType and _found_by_name(obj):
            pass  # pickled as ``getattr(its object, its name)``, which gives it back
        elif kind in _dill_types() or _numpy_subclass(obj):
            raise _DillNeeded(f"dill pickles {kind.__name__} its own way")
        return super().reducer_override(obj)


def _found_by_name(method: types.MethodType) -> bool:
    """Whether the standard pickle of a bound method (its object, then ``getattr`` by name, as
    a figure keeps its axes' callbacks) rebuilds it: dill would pickle its function instead."""
    try:
        return getattr(method.__self__, method.__name__) == method
    except Exception:  # noqa: BLE001 - any failure means "let dill do it"
        return False


_DILL_TYPES: frozenset[type] = frozenset()


def _dill_types() -> frozenset[type]:
    """The types dill pickles otherwise than the standard pickler (files, locks, methods...),
    less those it rebuilds exactly as the standard pickle does (pandas indexes hold slices).

    dill also registers numpy types the first time it pickles one (ndarray itself among them);
    those are left out, so the answer does not depend on what dill pickled before it was first
    asked: numpy subclass arrays are _numpy_subclass's call, ufuncs and dtypes load alike."""
    global _DILL_TYPES
    if not _DILL_TYPES:
        stock = dill._dill.pickle_dispatch_copy
        alike = {slice, range, type(NotImplemented), type(Ellipsis)}
        _DILL_TYPES = frozenset(
            kind
            for kind, save in dill.Pickler.dispatch.items()
            if stock.get(kind) is not save
            and kind not in alike
            and getattr(save, "__name__", None) not in _DILLS_NUMPY_HACKS
        )
    return _DILL_TYPES


_DILLS_NUMPY_HACKS = frozenset({"save_numpy_ufunc", "save_numpy_dtype", "save_numpy_array"})


def _numpy_subclass(obj: object) -> bool:
    """An instance of an ndarray subclass that keeps ndarray's reduce: dill adds its __dict__.
    One with a reduce of its own (a masked array) dill pickles by the standard rules."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(obj, numpy.ndarray) or type(obj) is numpy.ndarray:
        return False
    kind = type(obj)
    keeps_reduce = (
        kind.__reduce_ex__ is numpy.ndarray.__reduce_ex__
        and kind.__reduce__ is numpy.ndarray.__reduce__
    )
    return keeps_reduce and bool(getattr(obj, "__dict__", 0))


def _rebuild_view(root, offset, shape, strides, dtype, writeable):
    """Unpickle a view of ``root``; the name is part of the dill format, keep it stable."""
    import numpy

    view = numpy.ndarray(shape, dtype, buffer=root, offset=offset, strides=strides)
    if not writeable:
        view.flags.writeable = False
    return view
