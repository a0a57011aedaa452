"""Codecs: a group of variables <-> bytes, with safe formats tried before pickle.

Loading a pickle runs code, so values that plain JSON or a pickle-free ``.npy`` file can hold
exactly go there, and a checkpoint made only of those can be opened without trusting it. Modules
are stored by name. Everything else goes through one dill pickle per group: linked variables
share one pickle memo, so ``b is a`` and numpy views sharing memory with their base survive.
When dill cannot pickle a group that the standard pickle can (a torch optimizer), and nothing
in it is pickled by reference to the notebook's own ``__main__``, the "pickle" codec holds it.

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
import sys
import types
import warnings
from collections.abc import Mapping, Sequence

import dill

from nbelastic.errors import CheckpointFormatError, RestoreError, UnserializableError

CODECS = ("json", "npy", "module", "dill", "pickle")
SAFE_CODECS = frozenset({"json", "npy"})
_MAX_JSON_INT_BITS = 14_000  # ~4200 digits, under CPython's default int <-> str limit of 4300


def encode_group(values: Mapping[str, object]) -> tuple[str, bytes]:
    """Encode a group of variables (one name unless linked) as ``(codec, payload)``.

    Raises UnserializableError when no codec can hold the group; the planner then recomputes it.

    >>> encode_group({"n": None})
    ('json', b'null')
    >>> import types
    >>> encode_group({"m": types})
    ('module', b'types')
    """
    if not values:
        raise ValueError("a group has at least one variable")
    if len(values) == 1:
        (value,) = values.values()
        for encode in (_encode_json, _encode_npy, _encode_module):
            encoded = encode(value)
            if encoded is not None:
                return encoded
    return _encode_pickled(values)


def decode_group(codec: str, payload: bytes, names: Sequence[str]) -> dict[str, object]:
    """Inverse of :func:`encode_group`: ``{name: value}`` for the group ``names``.

    Raises CheckpointFormatError when the codec is unknown or the payload does not hold exactly
    ``names``, and RestoreError when the value cannot be rebuilt here (e.g. a missing package).

    >>> decode_group("json", b'{"b":1,"a":2}', ["d"])
    {'d': {'b': 1, 'a': 2}}
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
            values = {names[0]: json.loads(payload.decode("utf-8"))}
        elif codec == "npy":
            import numpy

            values = {names[0]: numpy.load(io.BytesIO(payload), allow_pickle=False)}
        elif codec == "module":
            values = {names[0]: importlib.import_module(payload.decode("utf-8"))}
        elif codec == "pickle":
            values = pickle.loads(payload)
        else:
            values = dill.loads(payload)
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


def _encode_npy(value: object) -> tuple[str, bytes] | None:
    """A plain ndarray without object fields as ``.npy``; numpy is never imported here."""
    numpy = sys.modules.get("numpy")
    if numpy is None or type(value) is not numpy.ndarray or value.dtype.hasobject:
        return None
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # numpy warns when it would drop dtype metadata or pickle a custom dtype
            warnings.simplefilter("error")
            numpy.save(buffer, value, allow_pickle=False)
    except (ValueError, Warning):
        return None
    return "npy", buffer.getvalue()


def _encode_module(value: object) -> tuple[str, bytes] | None:
    """A module that importing its name gives back, by name."""
    if not isinstance(value, types.ModuleType):
        return None
    name = getattr(value, "__name__", None)
    if isinstance(name, str) and sys.modules.get(name) is value:
        return "module", name.encode("utf-8")
    return None


def _encode_pickled(values: Mapping[str, object]) -> tuple[str, bytes]:
    group = {name: values[name] for name in sorted(values)}
    try:
        return "dill", _dumps(group)
    except Exception as e:
        fallback = _plain_dumps(group)
        if fallback is None:
            raise _unserializable(group, e) from e
        return "pickle", fallback


def _plain_dumps(group: dict[str, object]) -> bytes | None:
    """The standard pickle of ``group``, unless it fails or names something in ``__main__``
    (pickled by reference, it would need that name to exist before it is loaded)."""
    buffer = io.BytesIO()
    try:
        _PlainPickler(buffer).dump(group)
    except Exception:  # noqa: BLE001 - any failure leaves the group to replay
        return None
    payload = buffer.getvalue()
    return None if b"__main__" in payload else payload


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
        _dumps({name: value})
    except Exception:
        return True
    return False


def _dumps(group: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer).dump(group)
    return buffer.getvalue()


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__


class _ViewReducer:
    """Pickle numpy views as views of their base array so shared memory survives."""

    def reducer_override(self, obj: object) -> object:
        numpy = sys.modules.get("numpy")
        ndarray = None if numpy is None else numpy.ndarray
        if numpy is not None and isinstance(obj, numpy.memmap):
            raise pickle.PicklingError("a memory-mapped array is re-opened by replay, not stored")
        if ndarray is None or type(obj) is not ndarray or not isinstance(obj.base, ndarray):
            return NotImplemented
        root = obj.base
        while isinstance(root.base, ndarray):
            root = root.base
        if obj.size == 0 or obj.dtype.hasobject or root.dtype.hasobject:
            return NotImplemented
        if not (root.flags.c_contiguous or root.flags.f_contiguous):
            return NotImplemented
        start = root.__array_interface__["data"][0]
        data = obj.__array_interface__["data"][0]
        low = high = data
        for length, stride in zip(obj.shape, obj.strides, strict=True):
            if stride < 0:
                low += (length - 1) * stride
            else:
                high += (length - 1) * stride
        if low < start or high + obj.itemsize > start + root.nbytes:
            return NotImplemented  # outside the base's own buffer (as_strided tricks): copy
        args = (root, data - start, obj.shape, obj.strides, obj.dtype, obj.flags.writeable)
        return _rebuild_view, args


class _Pickler(_ViewReducer, dill.Pickler):
    """dill, fixed to by-value functions whose globals stay the live ``__main__.__dict__``."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5, byref=False, recurse=False)


class _PlainPickler(_ViewReducer, pickle.Pickler):
    """The standard pickle, for what dill's by-value machinery trips over."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5)


def _rebuild_view(root, offset, shape, strides, dtype, writeable):
    """Unpickle a view of ``root``; the name is part of the dill format, keep it stable."""
    import numpy

    view = numpy.ndarray(shape, dtype, buffer=root, offset=offset, strides=strides)
    if not writeable:
        view.flags.writeable = False
    return view
