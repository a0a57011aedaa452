"""The sidecar blob store: immutable, content-addressed files that survive a crash mid-save.

A blob is named by the sha256 of its whole file, so an unchanged variable maps to a file that
already exists and is never rewritten, git sees one new file per changed variable group, and a
damaged or truncated file is caught before anything tries to decode it.

Writes are streamed: ``put_stream`` hashes what an encoder writes while it goes to a temp file
under ``blobs/``, so a value is never held in memory a second time as bytes; the temp file is
then renamed to its key. A blob is made durable by ``flush``, which fsyncs every file written
since the last flush and their directories, in parallel threads so that the filesystem commits
them together (one fsync each, in sequence, cost ~5 ms apiece on a busy disk: a save of many
small variables spent most of its time there). A save flushes before anything points at its
blobs, so a crash or a full disk at any moment leaves the previous checkpoint whole: its blobs
were flushed by the save that wrote them and are never rewritten in place. A save killed
mid-write leaves its temp file (never taken for a blob), which ``nbelastic gc`` deletes once it
is older than its ``--min-age``.

Small blobs written inside ``packing()`` (a save's variable groups) go into one pack file
instead, as git packs loose objects: thousands of small variables are one file and one fsync,
not thousands (below ``PACK_MIN_MEMBERS`` new ones, they stay loose files). A packed blob
keeps its key (the sha256 of its own bytes, as if it were loose); the manifest records where
it is (``PackSlot``), and ``open`` hashes that slice before anyone decodes it. A pack is
named by the sha256 of the whole file and never changes either.

Layout under the sidecar root (``analysis.nbelastic/`` next to ``analysis.ipynb``)::

    blobs/<key[:2]>/<key[2:]>     b"NBELASTIC-BLOB 1 <codec>\\n" + payload
    blobs/packs/<pack key>        b"NBELASTIC-PACK 1\\n", then per blob b"<length>\\n" + blob

Example
-------
>>> import tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> store = BlobStore(tmp.name)
>>> key = store.put("json", b"[1,2]")
>>> store.get(key)
('json', b'[1,2]')
>>> store.put("json", b"[1,2]") == key, store.has(key), store.keys() == {key}
(True, True, True)
>>> store.put_stream("json", lambda stream: stream.write(b"[1,2]")) == (key, 5)
True
>>> with store.open(key) as (codec, stream):
...     codec, stream.read()
('json', b'[1,2]')
>>> with store.packing():
...     small, *others = [store.put("json", b"%d" % n) for n in range(PACK_MIN_MEMBERS)]
>>> slot = store.slot(small)
>>> store.path(small).exists(), store.pack_keys() == {slot.pack}, store.get(small)
(False, True, ('json', b'0'))
>>> again = BlobStore(tmp.name)  # another process learns where it is from the manifest
>>> again.locate(small, PackSlot.parse(slot.to_text()))
>>> again.get(small), again.check(small)
(('json', b'0'), None)
>>> store.flush()
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nbelastic.errors import (
    BlobCorruptError,
    BlobMissingError,
    CheckpointFormatError,
    StoreWriteError,
)

BLOB_FORMAT = 1
PACK_FORMAT = 1
PACK_MEMBER_LIMIT = 16 * 1024  # blobs up to this size (header included) go into a pack
PACK_MIN_MEMBERS = 32  # fewer new small blobs stay loose: a few fsyncs cost little
KEY_PATTERN = re.compile(r"[0-9a-f]{64}")
CODEC_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_MAGIC = b"NBELASTIC-BLOB"
PACK_HEADER = b"NBELASTIC-PACK %d\n" % PACK_FORMAT
_SLOT = re.compile(r"([0-9a-f]{64})@(0|[1-9][0-9]*)\+([1-9][0-9]*)")
_MAX_HEADER = 256  # the magic, the format and a codec name, with room to spare
_PROBE_BYTES = 8 * 1024 * 1024
_CHUNK = 1 << 20
_SYNC_THREADS = 16
_CHECK_THREADS = 4
_BANDWIDTH: dict[tuple[int, Path], float] = {}


def short(key: str) -> str:
    """The first 12 hex digits of a key: enough to tell blobs apart in a message."""
    return key[:12]


def blob_header(codec: str) -> bytes:
    """The first line of a blob of ``codec``; ValueError if ``codec`` is not a codec name."""
    if not CODEC_PATTERN.fullmatch(codec):
        raise ValueError(f"not a codec name: {codec!r}")
    return b"%s %d %s\n" % (_MAGIC, BLOB_FORMAT, codec.encode("ascii"))


@dataclass(frozen=True, order=True)
class PackSlot:
    """Where a packed blob is: the pack's key, and the blob's offset and length in it."""

    pack: str
    offset: int
    length: int

    def to_text(self) -> str:
        return f"{self.pack}@{self.offset}+{self.length}"

    @classmethod
    def parse(cls, text: str) -> PackSlot:
        """Parse ``to_text`` output; ValueError for anything else."""
        match = _SLOT.fullmatch(text)
        if match is None:
            raise ValueError(f"not a pack slot (<pack key>@<offset>+<length>): {text[:80]!r}")
        return cls(match[1], int(match[2]), int(match[3]))


class BlobStore:
    """Content-addressed blobs under ``root/blobs``; directories are created on first write."""

    def __init__(self, root: str | os.PathLike, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.durable = durable  # False for a cache, which need not survive a crash
        # Blobs that ``check`` hashed, by file identity: ``open`` need not hash them again.
        self._checked: dict[str, tuple[int, int, int]] = {}
        self._unsynced: list[Path] = []  # written since the last flush
        self._slots: dict[str, PackSlot] = {}  # packed blobs this store knows the place of
        self._pending: dict[str, bytes] | None = None  # the pack being gathered, in packing()

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Where the blob ``key`` lives (whether or not it exists)."""
        return self.root / "blobs" / key[:2] / key[2:]

    def put(self, codec: str, payload: bytes) -> str:
        """Store ``payload`` tagged with ``codec``; return its key. Writes nothing if present.

        A file of the wrong size under the key (a truncated copy, a git-lfs pointer) is
        replaced, so saving again repairs it. The blob is durable after ``flush``.
        """
        header = blob_header(codec)
        digest = hashlib.sha256(header)
        digest.update(payload)
        key = digest.hexdigest()
        if self._pending is not None and len(header) + len(payload) <= PACK_MEMBER_LIMIT:
            self._pack(key, lambda: header + payload)
        elif not self._present(key, len(header) + len(payload)):
            self._write_blob(key, lambda stream: (stream.write(header), stream.write(payload)))
        return key

    def put_stream(self, codec: str, write: Callable[[BinaryIO], object]) -> tuple[str, int]:
        """Store what ``write(stream)`` writes as a ``codec`` blob; return (key, payload size).

        The bytes go to a temp file as they are hashed, so the payload is never in memory
        whole. If ``write`` raises, nothing is stored and its exception propagates (a failure
        to write the file is a StoreWriteError). The blob is durable after ``flush``.
        """
        header = blob_header(codec)
        blobs = self.root / "blobs"
        self._mkdir(blobs)
        temp = _temp_name(blobs)
        try:
            with _HashingFile(temp, self._write_error) as stream:
                stream.write(header)
                write(stream)
            key = stream.digest.hexdigest()
            if self._pending is not None and stream.size <= PACK_MEMBER_LIMIT:
                self._pack(key, temp.read_bytes)
                temp.unlink()
            elif self._present(key, stream.size):
                temp.unlink()
            else:
                self._mkdir(self.path(key).parent)
                os.replace(temp, self.path(key))
                self._written(self.path(key))
        except BaseException as e:
            with contextlib.suppress(OSError):
                temp.unlink()
            if isinstance(e, OSError):
                raise self._write_error(e) from e
            raise
        return key, stream.size - len(header)

    def get(self, key: str) -> tuple[str, bytes]:
        """Return ``(codec, payload)`` of blob ``key``, after checking its hash."""
        with self.open(key) as (codec, stream):
            return codec, stream.read()

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[tuple[str, BinaryIO]]:
        """``(codec, stream)`` of blob ``key``, the stream at the start of its payload.

        The file is hashed before anything reads its payload, unless ``check`` hashed this
        very file in this process: decoding a pickle runs code, so it never sees unverified
        bytes. Decoders read from the stream straight into the objects they build, without a
        copy of the whole payload in between.
        """
        if key in self._slots:  # where the manifest says it is, a loose copy notwithstanding
            member = io.BytesIO(self._read_member(key))
            yield _read_header(key, member), member
            return
        path = self._checked_path(key)
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below, after the caller is done
        except FileNotFoundError:
            raise BlobMissingError(
                f"blob {short(key)} is missing from the sidecar store {self.root}; copy the whole"
                f" sidecar directory along with the notebook, or save again from a kernel that"
                f" still holds the state"
            ) from None
        except OSError as e:
            raise self._unreadable(key, e) from e
        with stream:
            try:
                if self._checked.get(key) != _identity(os.fstat(stream.fileno())):
                    if _sha256(stream) != key:
                        raise self._corrupt(key)
                    stream.seek(0)
                codec = _read_header(key, stream)
            except OSError as e:
                raise self._unreadable(key, e) from e
            yield codec, stream

    def check(self, key: str) -> str | None:
        """Why blob ``key`` cannot be loaded (missing, unreadable, corrupt); None if it can.

        Hashes the file in chunks, so checking every blob before a restore costs no memory, and
        the ``open`` that follows in this process does not hash the unchanged file again.
        """
        if key in self._slots:
            return self._check_member(key)
        path = self._checked_path(key)
        try:
            with open(path, "rb") as stream:
                identity = _identity(os.fstat(stream.fileno()))
                digest = _sha256(stream)
        except FileNotFoundError:
            return f"blob {short(key)} is missing"
        except OSError as e:
            return f"blob {short(key)} cannot be read ({e.strerror or e})"
        if digest != key:
            return f"blob {short(key)} is corrupt (its bytes do not match its hash)"
        self._checked[key] = identity
        return None

    def check_many(self, keys: Iterable[str]) -> dict[str, str | None]:
        """``check`` every key, several files at once (hashing releases the GIL): a restore
        checks all its blobs before loading any. The largest files start first."""
        return check_in_parallel(self.check, keys, self._size)

    def _size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except (OSError, ValueError):
            return self._slots[key].length if key in self._slots else 0

    # --- packs ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def packing(self) -> Iterator[None]:
        """Gather the small blobs put meanwhile into one pack, written when the block ends
        (durable after ``flush``); ``slot`` then says where each is. Nothing is written if the
        block raises."""
        self._pending = {}
        try:
            yield
            pending = self._pending
        finally:
            self._pending = None
        if len(pending) >= PACK_MIN_MEMBERS:
            self._write_pack(pending)
        for key, blob in pending.items() if len(pending) < PACK_MIN_MEMBERS else ():
            self._write_blob(key, lambda stream, blob=blob: stream.write(blob))

    def slot(self, key: str) -> PackSlot | None:
        """Where blob ``key`` is in a pack, or None if it is loose (or unknown)."""
        return self._slots.get(key)

    def locate(self, key: str, slot: PackSlot) -> None:
        """Learn that blob ``key`` is at ``slot`` (as a manifest records it)."""
        self._slots[key] = slot

    def packed_keys(self) -> set[str]:
        """The packed blobs this store knows the place of."""
        return set(self._slots)

    def pack_path(self, pack: str) -> Path:
        """Where the pack ``pack`` lives (whether or not it exists)."""
        return self.root / "blobs" / "packs" / pack

    def pack_keys(self) -> set[str]:
        """Keys of all packs present."""
        packs = self.root / "blobs" / "packs"
        if not packs.is_dir() or packs.is_symlink():
            return set()
        return {f.name for f in packs.iterdir() if KEY_PATTERN.fullmatch(f.name)}

    def _pack(self, key: str, blob: Callable[[], bytes]) -> None:
        """Add blob ``key`` to the pack being gathered, unless it is already stored."""
        assert self._pending is not None
        slot = self._slots.get(key)
        if key in self._pending or (slot and self.pack_path(slot.pack).is_file()):
            return
        if self.path(key).is_file():
            return
        self._pending[key] = blob()

    def _write_pack(self, members: dict[str, bytes]) -> None:
        parts, slots, offset = [PACK_HEADER], {}, len(PACK_HEADER)
        for key in sorted(members):
            blob = members[key]
            prefix = b"%d\n" % len(blob)
            parts += [prefix, blob]
            slots[key] = (offset + len(prefix), len(blob))
            offset += len(prefix) + len(blob)
        data = b"".join(parts)
        pack = _sha256(io.BytesIO(data))
        path = self.pack_path(pack)
        if not _has_size(path, len(data)):
            self._write_at(path, lambda stream: stream.write(data))
        for key, (start, length) in slots.items():
            self._slots[key] = PackSlot(pack, start, length)

    def _read_member(self, key: str) -> bytes:
        """The bytes of packed blob ``key``, checked against its key."""
        slot = self._slots[key]
        packs = self.root / "blobs" / "packs"
        if packs.is_symlink():
            raise CheckpointFormatError(
                f"{packs} is a symbolic link: nbelastic reads no blob through a link out of the"
                f" sidecar store {self.root}; replace the link by the directory it points to"
            )
        try:
            with open(self.pack_path(slot.pack), "rb") as stream:
                stream.seek(slot.offset)
                data = stream.read(slot.length)
        except FileNotFoundError:
            raise BlobMissingError(
                f"blob {short(key)} is missing from the sidecar store {self.root} (its pack"
                f" {short(slot.pack)} is not there); copy the whole sidecar directory along with"
                f" the notebook, or save again from a kernel that still holds the state"
            ) from None
        except OSError as e:
            raise self._unreadable(key, e) from e
        if _sha256(io.BytesIO(data)) != key:
            raise self._corrupt(key)
        return data

    def _check_member(self, key: str) -> str | None:
        try:
            self._read_member(key)
        except BlobCorruptError:
            return f"blob {short(key)} is corrupt (its bytes do not match its hash)"
        except BlobMissingError:
            return f"blob {short(key)} is missing (pack {short(self._slots[key].pack)})"
        return None

    def _corrupt(self, key: str) -> BlobCorruptError:
        return BlobCorruptError(
            f"blob {short(key)} in the sidecar store {self.root} is corrupt (its bytes do not"
            f" match its hash); delete {self.path(key)} and save again from a kernel that still"
            f" holds the state"
        )

    def _unreadable(self, key: str, e: OSError) -> BlobMissingError:
        return BlobMissingError(
            f"cannot read blob {short(key)} in the sidecar store {self.root}: {e.strerror or e};"
            f" check the file's permissions and try again"
        )

    def has(self, key: str) -> bool:
        """Whether blob ``key`` exists, loose or in a known pack (its content is not checked)."""
        if not KEY_PATTERN.fullmatch(key):
            return False
        slot = self._slots.get(key)
        if self.path(key).is_file():
            return True
        return slot is not None and self.pack_path(slot.pack).is_file()

    def keys(self) -> set[str]:
        """Keys of all blobs present; temp files of an interrupted write are not blobs, nor
        is anything under a linked directory (see ``_checked_path``)."""
        blobs = self.root / "blobs"
        if not blobs.is_dir() or blobs.is_symlink():
            return set()
        found = {
            f"{d.name}{f.name}"
            for d in blobs.iterdir()
            if d.is_dir() and not d.is_symlink()
            for f in d.iterdir()
        }
        return {key for key in found if KEY_PATTERN.fullmatch(key)}

    def temp_files(self) -> list[Path]:
        """Temp files under ``blobs/``: a blob being written, or left by a killed save."""
        blobs = self.root / "blobs"
        if not blobs.is_dir():
            return []
        return sorted(
            path
            for pattern in (".nbelastic-*.tmp", "*/.nbelastic-*.tmp")
            for path in blobs.glob(pattern)
        )

    def write_file(self, name: str, data: bytes) -> Path:
        """Atomically and durably replace the file ``root/name`` (e.g. ``manifest.txt``)."""
        path = self.root / name
        self._mkdir(path.parent)
        temp = _temp_name(path.parent)
        try:
            _write_synced(temp, data)
            os.replace(temp, path)
        except BaseException as e:
            with contextlib.suppress(OSError):
                temp.unlink()
            if isinstance(e, OSError):
                raise self._write_error(e) from e
            raise
        _fsync_dir(path.parent)
        return path

    def read_file(self, name: str) -> bytes | None:
        """The file ``root/name``, or None if it cannot be read."""
        try:
            return (self.root / name).read_bytes()
        except OSError:
            return None

    def exists(self) -> bool:
        """Whether the store's directory is there."""
        return self.root.is_dir()

    def flush(self, progress: Callable[[str, int, int], None] | None = None) -> None:
        """Make every blob written since the last flush durable: fsync the files, then their
        directories (which hold the renames), many at once so the filesystem commits them
        together."""
        paths, self._unsynced = self._unsynced, []
        try:
            _fsync_all(paths)
            _fsync_all({path.parent for path in paths}, directories=True)
        except OSError as e:
            raise self._write_error(e) from e

    def measure_bandwidth(self) -> float:
        """Bytes per second to write (with fsync) and read back data in this store.

        ``n / bandwidth`` estimates the seconds to save and later load ``n`` bytes: the store
        cost the planner weighs against replay time. The probe (8 MiB in a temp file) is
        dropped from the page cache before reading back where the OS allows, so the read is not
        a memory copy. The result is rounded to 2 significant digits and cached per process and
        store, so two saves in one session see the same number and plan identically.
        """
        self._mkdir(self.root)
        cache_key = (os.getpid(), self.root.resolve())
        if cache_key not in _BANDWIDTH:
            seconds = self._probe(os.urandom(_PROBE_BYTES))
            _BANDWIDTH[cache_key] = float(f"{_PROBE_BYTES / max(seconds, 1e-9):.2g}")
        return _BANDWIDTH[cache_key]

    def _probe(self, data: bytes) -> float:
        tmp = _temp_name(self.root)
        try:
            start = time.perf_counter()
            _write_synced(tmp, data)
            written = time.perf_counter()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                started_read = time.perf_counter()
                while os.read(fd, 1 << 20):
                    pass
                return written - start + time.perf_counter() - started_read
            finally:
                os.close(fd)
        except OSError as e:
            raise self._write_error(e) from e
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _checked_path(self, key: str) -> Path:
        if not KEY_PATTERN.fullmatch(key):
            raise CheckpointFormatError(
                f"{key!r} is not a blob key (64 lowercase hex digits); the checkpoint metadata"
                f" is damaged: save again from a kernel that still holds the state"
            )
        path = self.path(key)
        linked = next((d for d in (path.parent.parent, path.parent) if d.is_symlink()), None)
        if linked is not None:
            raise CheckpointFormatError(
                f"{linked} is a symbolic link: nbelastic reads no blob through a link out of the"
                f" sidecar store {self.root}; replace the link by the directory it points to"
            )
        return path

    def _present(self, key: str, size: int) -> bool:
        """Whether blob ``key`` is already there whole (a file of its size under its name)."""
        return _has_size(self.path(key), size)

    def _write_blob(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        """Write blob ``key``, whose bytes ``write`` produces, through a temp file."""
        self._write_at(self.path(key), write)

    def _write_at(self, path: Path, write: Callable[[BinaryIO], object]) -> None:
        """Write the immutable file ``path`` (a blob, a pack) through a temp file; durable
        after ``flush``."""
        self._mkdir(path.parent)
        temp = _temp_name(path.parent)
        try:
            with _HashingFile(temp, self._write_error, hashed=False) as stream:
                write(stream)
            os.replace(temp, path)
        except BaseException as e:
            with contextlib.suppress(OSError):
                temp.unlink()
            if isinstance(e, OSError):
                raise self._write_error(e) from e
            raise
        self._written(path)

    def _written(self, path: Path) -> None:
        if self.durable:
            self._unsynced.append(path)

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._write_error(e) from e

    def _write_error(self, e: OSError) -> StoreWriteError:
        return StoreWriteError(
            f"cannot write to the sidecar store {self.root}: {e.strerror or e}; free space or fix"
            f" permissions and save again"
        )


def check_in_parallel(
    check: Callable[[str], str | None], keys: Iterable[str], size: Callable[[str], int]
) -> dict[str, str | None]:
    """``{key: check(key)}``, run from a few threads, the largest blobs first."""
    ordered = sorted(set(keys), key=size, reverse=True)
    threads = min(_CHECK_THREADS, os.cpu_count() or 1, len(ordered))
    if threads <= 1:
        return {key: check(key) for key in ordered}
    with ThreadPoolExecutor(threads, thread_name_prefix="nbelastic-check") as pool:
        return dict(zip(ordered, pool.map(check, ordered), strict=True))


class _HashingFile:
    """A new file that hashes what is written to it; ``write`` takes any contiguous buffer,
    so a pickler hands it the memory of a large array without a copy."""

    def __init__(
        self, path: Path, error: Callable[[OSError], StoreWriteError], *, hashed: bool = True
    ) -> None:
        self._fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
        )
        self._error = error
        self.digest = hashlib.sha256() if hashed else None
        self.size = 0

    def __enter__(self) -> _HashingFile:
        return self

    def __exit__(self, *exc_info) -> None:
        os.close(self._fd)

    def write(self, data) -> int:
        view = byte_view(data)
        if self.digest is not None:
            self.digest.update(view)
        try:
            _write_all(self._fd, view)
        except OSError as e:
            raise self._error(e) from e
        self.size += len(view)
        return len(view)


def byte_view(data) -> memoryview:
    """``data`` (bytes, a memoryview, a pickle.PickleBuffer) as a flat view of its bytes."""
    view = memoryview(data)
    if not view.c_contiguous:
        view = data.raw()  # a PickleBuffer of Fortran-ordered memory: contiguous all the same
    return view.cast("B")


def _read_header(key: str, stream: BinaryIO) -> str:
    """Read a verified blob's header line from ``stream``, leaving it at the payload; the codec."""
    line = stream.readline(_MAX_HEADER)
    header = line.removesuffix(b"\n")
    parts = header.split(b" ")
    if line != header and len(parts) == 3 and parts[0] == _MAGIC and parts[1].isdigit():
        version, codec = int(parts[1]), parts[2].decode("ascii", "replace")
        if version > BLOB_FORMAT:
            raise CheckpointFormatError(
                f"blob {short(key)} has format {version}, newer than this nbelastic reads"
                f" ({BLOB_FORMAT}); upgrade nbelastic"
            )
        if version == BLOB_FORMAT and CODEC_PATTERN.fullmatch(codec):
            return codec
    raise CheckpointFormatError(
        f"blob {short(key)} is not an nbelastic blob (bad header {header[:40]!r}); save again"
        f" from a kernel that still holds the state"
    )


def _sha256(stream: BinaryIO) -> str:
    """The sha256 of what is left in ``stream``, read in chunks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    while count := stream.readinto(buffer):
        digest.update(view[:count])
    return digest.hexdigest()


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _identity(status: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file is rewritten or replaced: inode, size, modification time."""
    return status.st_ino, status.st_size, status.st_mtime_ns


def _temp_name(directory: Path) -> Path:
    """A fresh dot-file name in ``directory``: never mistaken for a blob, same filesystem."""
    return directory / f".nbelastic-{secrets.token_hex(8)}.tmp"


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def _write_synced(path: Path, data: bytes) -> None:
    """Create ``path`` (must not exist), write all of ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        _write_all(fd, memoryview(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(path: Path, *, directory: bool = False) -> None:
    """fsync a file this process wrote (opened for writing, as Windows needs), or make the
    renames in a directory durable (best effort: some platforms cannot open directories)."""
    try:
        fd = os.open(path, os.O_RDONLY if directory else os.O_RDWR | getattr(os, "O_BINARY", 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _fsync_all(paths: Iterable[Path], *, directories: bool = False) -> None:
    """fsync ``paths`` from several threads at once: concurrent fsyncs share one journal commit
    where the filesystem allows it (ext4, xfs), so N files cost far less than N commits."""
    paths = list(paths)
    if len(paths) <= 1:
        for path in paths:
            _fsync(path, directory=directories)
        return
    with ThreadPoolExecutor(min(_SYNC_THREADS, len(paths))) as pool:
        for _ in pool.map(lambda path: _fsync(path, directory=directories), paths):
            pass


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; best effort, as some platforms cannot open directories."""
    _fsync(directory, directory=True)
