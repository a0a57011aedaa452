"""Ask the kernel (the OS one) whether a large numpy buffer was written, instead of hashing it.

Hashing every large array a cell touches costs about 1 ms per 25 MB, which on notebooks that
make big arrays or frames is several percent of their run time. On Linux 6.7 and later the
kernel can watch writes for us: a range registered with ``userfaultfd`` in write-protect mode
with ``UFFD_FEATURE_WP_ASYNC`` has its pages write-protected, a write unprotects the page it
lands on without stopping the writer, and the ``PAGEMAP_SCAN`` ioctl of ``/proc/self/pagemap``
says whether any page of a range was written since. So a watched buffer is fingerprinted by
its address and a generation number that moves on whenever a write is seen: two fingerprints
are equal exactly when no byte of the buffer could have changed in between.

Only memory an ndarray owns (numpy's allocator: private, anonymous) is watched, only while
that array is alive, and only for whole pages; the few bytes on partial pages at either end
are compared by content, as a neighbouring object may write its half of those pages. Anything
else (a small array, a memory map, a view of foreign memory, a kernel without these features,
a container that forbids ``userfaultfd``) returns None and is hashed by content as before.
Set ``NBELASTIC_WRITE_WATCH=0`` to turn the watch off.

Fingerprints are meaningful in this process only; checkpoints always hold content hashes.
"""

from __future__ import annotations

import ctypes
import itertools
import mmap
import os
import platform
import sys
import weakref
from dataclasses import dataclass, field

MIN_BYTES = 4 << 20  # below this, hashing costs about as much as asking the kernel
_PAGE = mmap.PAGESIZE
_SYSCALL = {"x86_64": 323, "amd64": 323, "aarch64": 282, "arm64": 282}
_UFFD_USER_MODE_ONLY = 1
_UFFD_API = 0xAA
_FEATURE_WP_UNPOPULATED = 1 << 13  # untouched (zero) pages are protected too
_FEATURE_WP_ASYNC = 1 << 15  # a write unprotects its page itself; nobody has to answer
_REGISTER_MODE_WP = 2
_WRITEPROTECT_MODE_WP = 1
_PAGE_IS_WPALLOWED = 1
_PAGE_IS_WRITTEN = 2
_GENERATIONS = itertools.count(1)
# A fault on a watched page costs about what hashing this many pages does (1.4 us against
# 0.16 us per 4 KiB on the benchmark machine): past that share of pages written, hash instead.
_FAULTS_PER_HASH = 8


def _u64(*names: str) -> list[tuple[str, type]]:
    return [(name, ctypes.c_uint64) for name in names]


def _iowr(kind: int, number: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (kind << 8) | number


class _Range(ctypes.Structure):
    _fields_ = _u64("start", "len")


class _Api(ctypes.Structure):
    _fields_ = [
        ("api", ctypes.c_uint64),
        ("features", ctypes.c_uint64),
        ("ioctls", ctypes.c_uint64),
    ]


class _Register(ctypes.Structure):
    _fields_ = [("range", _Range), ("mode", ctypes.c_uint64), ("ioctls", ctypes.c_uint64)]


class _WriteProtect(ctypes.Structure):
    _fields_ = [("range", _Range), ("mode", ctypes.c_uint64)]


class _ScanArg(ctypes.Structure):
    _fields_ = _u64(
        "size",
        "flags",
        "start",
        "end",
        "walk_end",
        "vec",
        "vec_len",
        "max_pages",
        "category_inverted",
        "category_mask",
        "category_anyof_mask",
        "return_mask",
    )


class _Region(ctypes.Structure):
    _fields_ = [
        ("start", ctypes.c_uint64),
        ("end", ctypes.c_uint64),
        ("categories", ctypes.c_uint64),
    ]


_UFFDIO_API = _iowr(_UFFD_API, 0x3F, ctypes.sizeof(_Api))
_UFFDIO_REGISTER = _iowr(_UFFD_API, 0x00, ctypes.sizeof(_Register))
_UFFDIO_UNREGISTER = (2 << 30) | (ctypes.sizeof(_Range) << 16) | (_UFFD_API << 8) | 0x01
_UFFDIO_WRITEPROTECT = _iowr(_UFFD_API, 0x06, ctypes.sizeof(_WriteProtect))
_PAGEMAP_SCAN = _iowr(ord("f"), 16, ctypes.sizeof(_ScanArg))


@dataclass
class Watched:
    """A watched buffer as a cell sees it: ``token`` changes whenever its bytes may have.

    ``facts`` is for the caller to cache what it derived from these bytes seen through this
    very layout (a column holds only strings, its estimated size); it is emptied whenever the
    buffer is written.
    """

    token: bytes
    facts: dict = field(default_factory=dict)


@dataclass
class _Entry:
    start: int
    end: int
    owner: weakref.ref
    generation: int
    facts: dict = field(default_factory=dict)
    hashed: bool = False  # rewritten wholesale: hashing costs less than the write faults


class WriteWatch:
    """The watched buffers of one kernel; ``open()`` returns None where the OS cannot help.

    Example (Linux 6.7+ only)::

        watch = WriteWatch.open()
        a = numpy.zeros(1 << 20)
        before = watch.fingerprint(a).token
        a[5] = 1.0
        assert watch.fingerprint(a).token != before
    """

    def __init__(self, uffd: int, pagemap: int, libc: ctypes.CDLL) -> None:
        self._uffd = uffd
        self._pagemap = pagemap
        self._libc = libc
        self._entries: dict[int, _Entry] = {}  # by id of the array owning the memory
        self.pages_written = 0  # pages found written under protection: one fault each

    @classmethod
    def open(cls) -> WriteWatch | None:
        """A working watch, or None where the OS cannot help (see ``open_reporting``)."""
        return cls.open_reporting()[0]

    @classmethod
    def open_reporting(cls) -> tuple[WriteWatch | None, str]:
        """A working watch or None, and a line for ``%nbelastic status`` saying which."""
        if os.environ.get("NBELASTIC_WRITE_WATCH", "1") == "0":
            return None, "hashed (the write watch is off: NBELASTIC_WRITE_WATCH=0)"
        number = _SYSCALL.get(platform.machine().lower())
        if not sys.platform.startswith("linux") or number is None:
            return None, "hashed (watching writes needs Linux on x86-64 or arm64)"
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
        refused = "hashed (this system refuses userfaultfd write-protection; Linux 6.7+ has it)"
        uffd = libc.syscall(number, os.O_CLOEXEC | os.O_NONBLOCK | _UFFD_USER_MODE_ONLY)
        if uffd < 0:
            return None, refused
        try:
            pagemap = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(uffd)
            return None, refused
        watch = cls(uffd, pagemap, libc)
        api = _Api(_UFFD_API, _FEATURE_WP_ASYNC | _FEATURE_WP_UNPOPULATED, 0)
        if libc.ioctl(uffd, _UFFDIO_API, ctypes.byref(api)) != 0 or not watch._self_test():
            watch.close()
            return None, refused
        megabytes = MIN_BYTES >> 20
        return watch, f"arrays over {megabytes} MiB watched by the OS, other values hashed"

    def close(self) -> None:
        """Stop watching (closing the descriptor unprotects every range)."""
        if self._uffd < 0:
            return
        self._entries.clear()
        os.close(self._uffd)
        os.close(self._pagemap)
        self._uffd = self._pagemap = -1

    def fingerprint(self, array) -> Watched | None:
        """A fingerprint of ``array``'s bytes that changes when any may have been written, or
        None when this array cannot be watched (its bytes must then be hashed).

        What is watched is the whole buffer of the array that owns the memory, so that a view
        and its base (or two views) see the same writes: a write anywhere in the base changes
        the fingerprint of every view of it.
        """
        if self._uffd < 0 or array.nbytes < MIN_BYTES:
            return None
        owner = array
        while _is_ndarray(owner.base):
            owner = owner.base
        if not owner.flags.owndata:
            return None
        low, high = _span(owner)
        view_low, view_high = _span(array)
        if view_low < low or view_high > high:
            return None
        start = -(-low // _PAGE) * _PAGE
        end = high // _PAGE * _PAGE
        if end - start < MIN_BYTES:
            return None
        entry = self._current(start, end, owner)
        if entry is None or entry.hashed:
            return None
        edges = ctypes.string_at(low, start - low) + ctypes.string_at(end, high - end)
        layout = (view_low, array.shape, array.strides)
        token = f"{start}:{end}:{entry.generation}:{layout}|".encode()
        return Watched(token + edges, entry.facts.setdefault(layout, {}))

    def _current(self, start: int, end: int, owner) -> _Entry | None:
        """The entry for ``owner``'s pages, with a new generation if a write was seen."""
        key = id(owner)
        entry = self._entries.get(key)
        if entry is not None and (
            entry.owner() is not owner or (entry.start, entry.end) != (start, end)
        ):
            self._forget(key)  # another array at a reused id, or this one reallocated
            entry = None
        if entry is None:
            if not self._protect(start, end):
                return None
            entry = _Entry(start, end, weakref.ref(owner, self._on_death(key)), next(_GENERATIONS))
            self._entries[key] = entry
        elif not entry.hashed and self._written(start, end):
            written = self._written_pages(start, end)
            self.pages_written += written
            if written * _FAULTS_PER_HASH > (end - start) // _PAGE:
                self._unregister(start, end)
                entry.hashed = True
            elif not self._protect(start, end):
                self._forget(key)
                return None
            entry.generation = next(_GENERATIONS)
            entry.facts = {}
        return entry

    def _on_death(self, key: int):
        def forget(_ref: weakref.ref) -> None:
            self._forget(key)

        return forget

    def _forget(self, key: int) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and not entry.hashed:
            self._unregister(entry.start, entry.end)

    def _unregister(self, start: int, end: int) -> None:
        if self._uffd >= 0:
            whole = _Range(start, end - start)
            self._libc.ioctl(self._uffd, _UFFDIO_UNREGISTER, ctypes.byref(whole))

    def _protect(self, start: int, end: int) -> bool:
        """Register the range (again: a range unmapped and mapped anew has lost it) and
        write-protect every page of it."""
        whole = _Range(start, end - start)
        request = _Register(whole, _REGISTER_MODE_WP, 0)
        if self._libc.ioctl(self._uffd, _UFFDIO_REGISTER, ctypes.byref(request)) != 0:
            return False
        protect = _WriteProtect(whole, _WRITEPROTECT_MODE_WP)
        return self._libc.ioctl(self._uffd, _UFFDIO_WRITEPROTECT, ctypes.byref(protect)) == 0

    def _written(self, start: int, end: int) -> bool:
        """Whether any page of the range was written, or is no longer protected at all."""
        found = _Region()
        scan = _ScanArg(
            size=ctypes.sizeof(_ScanArg),
            start=start,
            end=end,
            vec=ctypes.addressof(found),
            vec_len=1,
            max_pages=1,
            category_inverted=_PAGE_IS_WPALLOWED,
            category_anyof_mask=_PAGE_IS_WPALLOWED | _PAGE_IS_WRITTEN,
            return_mask=_PAGE_IS_WPALLOWED | _PAGE_IS_WRITTEN,
        )
        return self._libc.ioctl(self._pagemap, _PAGEMAP_SCAN, ctypes.byref(scan)) != 0

    def _written_pages(self, start: int, end: int) -> int:
        """How many pages of the range were written since it was protected: each took one
        fault, the watch's only cost to the cell. A buffer rewritten wholesale (``a *= 2``)
        pays several times what hashing it costs, so past an eighth of its pages it is
        hashed from then on."""
        found = (_Region * 64)()
        pages = 0
        while start < end:
            scan = _ScanArg(
                size=ctypes.sizeof(_ScanArg),
                start=start,
                end=end,
                vec=ctypes.addressof(found),
                vec_len=len(found),
                category_mask=_PAGE_IS_WRITTEN,
                return_mask=_PAGE_IS_WRITTEN,
            )
            regions = self._libc.ioctl(self._pagemap, _PAGEMAP_SCAN, ctypes.byref(scan))
            if regions <= 0:
                break
            pages += sum(region.end - region.start for region in found[:regions]) // _PAGE
            start = scan.walk_end
        return pages

    def _self_test(self) -> bool:
        """Protect two pages of our own, write one, and check the kernel says so."""
        area = mmap.mmap(-1, 4 * _PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        cell = ctypes.c_char.from_buffer(area)
        try:
            start = -(-ctypes.addressof(cell) // _PAGE) * _PAGE
            end = start + 2 * _PAGE
            offset = start - ctypes.addressof(cell)
            area[offset : offset + 1] = b"x"
            if not self._protect(start, end) or self._written(start, end):
                return False
            area[offset + _PAGE] = 1
            seen = self._written(start, end)
            clean_again = self._protect(start, end) and not self._written(start, end)
            self._unregister(start, end)
            return seen and clean_again
        finally:
            del cell
            area.close()


def _is_ndarray(value: object) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _span(array) -> tuple[int, int]:
    """The first and one-past-last byte addresses ``array``'s elements occupy."""
    low = high = array.__array_interface__["data"][0]
    for length, stride in zip(array.shape, array.strides, strict=True):
        if stride < 0:
            low += (length - 1) * stride
        else:
            high += (length - 1) * stride
    return low, high + array.itemsize
