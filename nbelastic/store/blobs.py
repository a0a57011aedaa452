"""The sidecar blob store: immutable, content-addressed files that survive a crash mid-save.

A blob is named by the sha256 of its whole file, so an unchanged variable maps to a file that
already exists and is never rewritten, git sees one new file per changed variable group, and a
damaged or truncated file is caught before anything tries to decode it. Every write goes to a
temp file in the target directory, is fsynced, then renamed over the target: a crash or a full
disk leaves the previous checkpoint whole.

Layout under the sidecar root (``analysis.nbelastic/`` next to ``analysis.ipynb``)::

    blobs/<key[:2]>/<key[2:]>     b"NBELASTIC-BLOB 1 <codec>\\n" + payload

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
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from nbelastic.errors import (
    BlobCorruptError,
    BlobMissingError,
    CheckpointFormatError,
    StoreWriteError,
)

BLOB_FORMAT = 1
KEY_PATTERN = re.compile(r"[0-9a-f]{64}")
CODEC_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_MAGIC = b"NBELASTIC-BLOB"
_PROBE_BYTES = 8 * 1024 * 1024
_CHUNK = 1 << 20
_BANDWIDTH: dict[tuple[int, Path], float] = {}


def short(key: str) -> str:
    """The first 12 hex digits of a key: enough to tell blobs apart in a message."""
    return key[:12]


class BlobStore:
    """Content-addressed blobs under ``root/blobs``; directories are created on first write."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        # Blobs that ``check`` hashed, by file identity: ``get`` need not hash them again.
        self._checked: dict[str, tuple[int, int, int]] = {}

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Where the blob ``key`` lives (whether or not it exists)."""
        return self.root / "blobs" / key[:2] / key[2:]

    def put(self, codec: str, payload: bytes) -> str:
        """Store ``payload`` tagged with ``codec``; return its key. Writes nothing if present.

        A file of the wrong size under the key (a truncated copy, a git-lfs pointer) is
        replaced, so saving again repairs it.
        """
        if not CODEC_PATTERN.fullmatch(codec):
            raise ValueError(f"not a codec name: {codec!r}")
        data = b"%s %d %s\n%s" % (_MAGIC, BLOB_FORMAT, codec.encode("ascii"), payload)
        key = hashlib.sha256(data).hexdigest()
        path = self.path(key)
        with contextlib.suppress(OSError):
            if path.stat().st_size == len(data):
                return key
        self._write(path, data)
        return key

    def get(self, key: str) -> tuple[str, bytes]:
        """Return ``(codec, payload)`` of blob ``key``, after checking its hash."""
        path = self._checked_path(key)
        try:
            with open(path, "rb") as stream:
                checked = self._checked.get(key) == _identity(os.fstat(stream.fileno()))
                data = stream.read()
        except FileNotFoundError:
            raise BlobMissingError(
                f"blob {short(key)} is missing from the sidecar store {self.root}; copy the whole"
                f" sidecar directory along with the notebook, or save again from a kernel that"
                f" still holds the state"
            ) from None
        except OSError as e:
            raise BlobMissingError(
                f"cannot read blob {short(key)} in the sidecar store {self.root}: {e.strerror};"
                f" check the file's permissions and try again"
            ) from e
        if not checked and hashlib.sha256(data).hexdigest() != key:
            raise self._corrupt(key)
        return _split(key, data)

    def check(self, key: str) -> str | None:
        """Why blob ``key`` cannot be loaded (missing, unreadable, corrupt); None if it can.

        Hashes the file in chunks, so checking every blob before a restore costs no memory, and
        the ``get`` that follows in this process does not hash the unchanged file again.
        """
        path = self._checked_path(key)
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as stream:
                identity = _identity(os.fstat(stream.fileno()))
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return f"blob {short(key)} is missing"
        except OSError as e:
            return f"blob {short(key)} cannot be read ({e.strerror or e})"
        if digest.hexdigest() != key:
            return f"blob {short(key)} is corrupt (its bytes do not match its hash)"
        self._checked[key] = identity
        return None

    def _corrupt(self, key: str) -> BlobCorruptError:
        return BlobCorruptError(
            f"blob {short(key)} in the sidecar store {self.root} is corrupt (its bytes do not"
            f" match its hash); delete {self.path(key)} and save again from a kernel that still"
            f" holds the state"
        )

    def has(self, key: str) -> bool:
        """Whether blob ``key`` exists (its content is not checked)."""
        return bool(KEY_PATTERN.fullmatch(key)) and self.path(key).is_file()

    def keys(self) -> set[str]:
        """Keys of all blobs present; temp files of an interrupted write are not blobs."""
        blobs = self.root / "blobs"
        if not blobs.is_dir():
            return set()
        found = {f"{d.name}{f.name}" for d in blobs.iterdir() if d.is_dir() for f in d.iterdir()}
        return {key for key in found if KEY_PATTERN.fullmatch(key)}

    def write_file(self, name: str, data: bytes) -> Path:
        """Atomically replace the file ``root/name`` (e.g. ``manifest.txt``) with ``data``."""
        path = self.root / name
        self._write(path, data)
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
        """Nothing to wait for: ``put`` has written the blob when it returns (see
        RemoteBlobStore.flush, which waits for its uploads)."""

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
        return self.path(key)

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._write_error(e) from e

    def _write(self, path: Path, data: bytes) -> None:
        self._mkdir(path.parent)
        tmp = _temp_name(path.parent)
        try:
            _write_synced(tmp, data)
            os.replace(tmp, path)
        except BaseException as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if isinstance(e, OSError):
                raise self._write_error(e) from e
            raise
        _fsync_dir(path.parent)

    def _write_error(self, e: OSError) -> StoreWriteError:
        return StoreWriteError(
            f"cannot write to the sidecar store {self.root}: {e.strerror or e}; free space or fix"
            f" permissions and save again"
        )


def _split(key: str, data: bytes) -> tuple[str, bytes]:
    """Parse a verified blob into ``(codec, payload)``."""
    header, newline, payload = data.partition(b"\n")
    parts = header.split(b" ")
    if newline and len(parts) == 3 and parts[0] == _MAGIC and parts[1].isdigit():
        version, codec = int(parts[1]), parts[2].decode("ascii", "replace")
        if version > BLOB_FORMAT:
            raise CheckpointFormatError(
                f"blob {short(key)} has format {version}, newer than this nbelastic reads"
                f" ({BLOB_FORMAT}); upgrade nbelastic"
            )
        if version == BLOB_FORMAT and CODEC_PATTERN.fullmatch(codec):
            return codec, payload
    raise CheckpointFormatError(
        f"blob {short(key)} is not an nbelastic blob (bad header {header[:40]!r}); save again"
        f" from a kernel that still holds the state"
    )


def _identity(status: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file is rewritten or replaced: inode, size, modification time."""
    return status.st_ino, status.st_size, status.st_mtime_ns


def _temp_name(directory: Path) -> Path:
    """A fresh dot-file name in ``directory``: never mistaken for a blob, same filesystem."""
    return directory / f".nbelastic-{secrets.token_hex(8)}.tmp"


def _write_synced(path: Path, data: bytes) -> None:
    """Create ``path`` (must not exist), write all of ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; best effort, as some platforms cannot open directories."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
