"""What a pickle would import, read without running it; and an unpickler held to that reading.

Unpickling runs code only through the globals it imports: every function a pickle calls
(REDUCE, NEWOBJ, OBJ, INST, BUILD's ``__setstate__``, APPENDS' ``extend``...) is a global, or an
object made from one. ``pickle_globals`` names them by running the pickle machine on the bytes
with stand-ins for every value: it keeps the stack, the marks and the memo as the unpickler does,
so ``STACK_GLOBAL`` gets the very two values the unpickler would pop, whatever was pushed, memoised
or fetched before (a decoy string pushed last and popped does not hide the real name). Large
byte strings are skipped, not read: inspecting a blob of arrays costs no second copy of them.

The reading is also enforced: ``restricted_load`` unpickles with a ``find_class`` that admits
only the globals ``pickle_globals`` found in these bytes, so whatever a review shows is all a
load can import. A name the simulation cannot compute (built by a call) is never admitted.

>>> import collections, pickle
>>> pickle_globals(pickle.dumps(collections.OrderedDict(a=1)))
[('collections', 'OrderedDict')]
>>> pickle_globals(b"not a pickle")
Traceback (most recent call last):
...
nbelastic.store.pickles.UnreadablePickleError: not a pickle: opcode b'n' at byte 0 is unknown
"""

from __future__ import annotations

import copyreg
import io
import pickle
import pickletools
import struct
from collections.abc import Callable
from typing import BinaryIO

COMPUTED = ("?", "a name computed while unpickling")  # a global whose name is not in the bytes
_MAX_STRING = 1 << 16  # longer strings are skipped: no module or class has such a name
_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING"}
_UNICODE_OPS = {"UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"}
_LENGTHS = {
    pickletools.TAKEN_FROM_ARGUMENT1: ("<B", 1),
    pickletools.TAKEN_FROM_ARGUMENT4: ("<i", 4),
    pickletools.TAKEN_FROM_ARGUMENT4U: ("<I", 4),
    pickletools.TAKEN_FROM_ARGUMENT8U: ("<Q", 8),
}


class UnreadablePickleError(ValueError):
    """The bytes are not a pickle this machine can follow to its STOP."""


class RefusedGlobalError(pickle.UnpicklingError):
    """The unpickler asked for a global that the reading of its bytes did not find."""


class _Mark:
    """A MARK on the simulated stack."""


class _Value:
    """Any value on the simulated stack but a string: what it is does not matter here."""


_MARK, _VALUE = _Mark(), _Value()


def pickle_globals(payload: bytes | BinaryIO) -> list[tuple[str, str]]:
    """Every ``(module, name)`` the unpickler's ``find_class`` would be asked for, in order of
    first use; COMPUTED stands for a name the bytes do not hold. UnreadablePickleError when the
    bytes are not a whole pickle. A stream is read from where it is to the pickle's STOP."""
    stream = io.BytesIO(payload) if isinstance(payload, bytes | bytearray) else payload
    found: dict[tuple[str, str], None] = {}
    stack: list[object] = []
    memo: dict[int, object] = {}
    start = stream.tell()
    while True:
        offset = stream.tell() - start
        code = stream.read(1)
        op = _OPCODES.get(code)
        if op is None:
            raise UnreadablePickleError(
                "not a pickle: "
                + (f"opcode {code!r} at byte {offset} is unknown" if code else "it ends early")
            )
        try:
            argument = _argument(op, stream)
            if op.name == "STOP":
                return list(found)
            _step(op.name, argument, stack, memo, found.setdefault)
        except (IndexError, KeyError, ValueError, struct.error) as error:
            raise UnreadablePickleError(
                f"not a pickle: {op.name} at byte {offset}: {error}"
            ) from None


def describe(name: tuple[str, str]) -> str:
    """``module.name`` for people."""
    return name[1] if name == COMPUTED else f"{name[0]}.{name[1]}"


def restricted_load(
    unpickler: type[pickle.Unpickler], stream: BinaryIO, allowed: list[tuple[str, str]]
) -> object:
    """Unpickle ``stream`` with ``unpickler`` (pickle's or dill's), refusing any global but
    ``allowed``: a RefusedGlobalError names it."""
    admitted = frozenset(allowed)

    class Restricted(unpickler):
        def find_class(self, module: str, name: str) -> object:
            if (module, name) not in admitted:
                raise RefusedGlobalError(f"{module}.{name}")
            return super().find_class(module, name)

    return Restricted(stream).load()


def _argument(op: pickletools.OpcodeInfo, stream: BinaryIO) -> object:
    """The opcode's argument; long byte strings are skipped (None), not read."""
    descriptor = op.arg
    if descriptor is None:
        return None
    if op.name in ("GLOBAL", "INST"):
        return (_line(stream), _line(stream))  # decoded as the unpickler does: UTF-8
    if descriptor.n not in _LENGTHS:
        return descriptor.reader(stream)
    form, size = _LENGTHS[descriptor.n]
    raw = stream.read(size)
    if len(raw) != size:
        raise ValueError("it ends early")
    (length,) = struct.unpack(form, raw)
    if length < 0:
        raise ValueError(f"negative length {length}")
    textual = op.name in _STRING_OPS or op.name in _UNICODE_OPS
    if textual and length <= _MAX_STRING:
        data = stream.read(length)
        if len(data) != length:
            raise ValueError("it ends early")
        if op.name in _UNICODE_OPS:
            return data.decode("utf-8", "surrogatepass")
        try:
            return data.decode("ascii")  # the unpickler's default encoding for old strings
        except UnicodeDecodeError:
            return _VALUE
    position = stream.tell()
    if stream.seek(length, io.SEEK_CUR) > _end(stream) or stream.tell() < position:
        raise ValueError("it ends early")
    return None


def _line(stream: BinaryIO) -> str:
    line = stream.readline()
    if not line.endswith(b"\n"):
        raise ValueError("it ends early")
    return line[:-1].decode("utf-8")


def _end(stream: BinaryIO) -> int:
    here = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(here)
    return end


def _pop_mark(stack: list[object]) -> list[object]:
    """Pop down to the topmost mark, as the unpickler does; what was above it."""
    for index in range(len(stack) - 1, -1, -1):
        if stack[index] is _MARK:
            above = stack[index + 1 :]
            del stack[index:]
            return above
    raise ValueError("no MARK to pop to")


def _pop(stack: list[object], count: int = 1) -> list[object]:
    if len(stack) < count or any(item is _MARK for item in stack[len(stack) - count :]):
        raise ValueError("the stack holds too few values")
    popped = stack[len(stack) - count :]
    del stack[len(stack) - count :]
    return popped


def _step(
    name: str,
    argument: object,
    stack: list[object],
    memo: dict[int, object],
    use: Callable[[tuple[str, str]], object],
) -> None:
    """Apply one opcode to the simulated stack and memo, noting each global it imports."""
    if name in _UNICODE_OPS or name in _STRING_OPS:
        stack.append(argument if isinstance(argument, str) else _VALUE)
    elif name == "MARK":
        stack.append(_MARK)
    elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
        if argument < 0:
            raise ValueError("negative memo key")
        memo[argument] = _pop(stack)[0]
        stack.append(memo[argument])
    elif name == "MEMOIZE":
        memo[len(memo)] = _pop(stack)[0]
        stack.append(memo[len(memo) - 1])
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo[argument])
    elif name == "DUP":
        stack.append(_pop(stack)[0])
        stack.append(stack[-1])
    elif name in ("GLOBAL", "INST"):
        use(argument)
        if name == "INST":
            _pop_mark(stack)
        stack.append(_VALUE)
    elif name == "STACK_GLOBAL":
        module, qualname = _pop(stack, 2)
        both = isinstance(module, str) and isinstance(qualname, str)
        use((module, qualname) if both else COMPUTED)
        stack.append(_VALUE)
    elif name in ("EXT1", "EXT2", "EXT4"):
        use(copyreg._inverted_registry.get(argument, COMPUTED))
        stack.append(_VALUE)
    else:
        _generic(_OPCODES_BY_NAME[name], stack)


def _generic(op: pickletools.OpcodeInfo, stack: list[object]) -> None:
    """Any other opcode, from its documented stack effect: what it pops, what it pushes."""
    before = op.stack_before
    if pickletools.markobject in before:
        _pop_mark(stack)
        before = before[: before.index(pickletools.markobject)]
    _pop(stack, len(before))
    stack.extend(_VALUE for _ in op.stack_after)


_OPCODES_BY_NAME = {op.name: op for op in pickletools.opcodes}
