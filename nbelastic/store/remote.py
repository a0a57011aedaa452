"""Blob stores at an fsspec URL (``s3://bucket/prefix``, ``gcs://...``, ``az://...``).

Teams move state between machines through object storage. The checkpoint records the URL, so a
copy of the ``.ipynb`` alone restores on any machine whose credentials reach the bucket (the
usual ones of the backend: ``AWS_*`` variables, ``~/.aws``, ...).

The layout is the local sidecar's (``blobs/<key[:2]>/<key[2:]>`` and ``manifest.txt``), so the
blob format and its checks are shared. Transfers are streamed in chunks, never a second copy of
a whole blob in memory:

* ``put_stream`` writes the blob into a private local cache as it is encoded (see
  BlobStore.put_stream), ``put`` hashes a payload already in memory; either hands the upload to
  a small thread pool and returns. A bounded number of uploads is in flight, and ``flush``
  waits for them before the notebook points at the blobs. An object store makes an object
  visible only when its upload completes, so a crash leaves no half blob behind a key.
* ``prefetch`` downloads many blobs in parallel into the local cache; ``check`` hashes them
  there, and ``get`` and ``open`` read the verified local copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import BinaryIO

from nbelastic.errors import (
    BlobCorruptError,
    BlobMissingError,
    CheckpointFormatError,
    StoreWriteError,
)
from nbelastic.store.blobs import (
    KEY_PATTERN,
    BlobStore,
    PackSlot,
    blob_header,
    check_in_parallel,
    short,
)

ProgressCallback = Callable[[str, int, int], None]
TRANSFERS = 8  # parallel uploads or downloads
_CHUNK = 4 * 1024 * 1024
_PROBE_BYTES = 4 * 1024 * 1024
_BANDWIDTH: dict[tuple[int, str], float] = {}


def is_url(location: str) -> bool:
    """Whether a checkpoint's ``store`` is a URL rather than a path next to the notebook.

    >>> is_url("s3://bucket/nb"), is_url("analysis.nbelastic"), is_url("file:///tmp/x")
    (True, False, True)
    """
    return "://" in location


def store_location(store: BlobStore | RemoteBlobStore, notebook: str | os.PathLike) -> str:
    """What a checkpoint records for ``store``: its URL, or its path relative to the notebook."""
    if isinstance(store, RemoteBlobStore):
        return store.url
    return os.path.relpath(store.root.resolve(), Path(notebook).resolve().parent)


class RemoteBlobStore:
    """Content-addressed blobs under ``url/blobs``, with the interface of BlobStore."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.root = self.url  # named in messages, as BlobStore's root is
        try:
            import fsspec

            self._fs, self._path = fsspec.core.url_to_fs(self.url)
        except ImportError as error:
            raise StoreWriteError(
                f"the store {self.url} needs a package that is not installed ({_one_line(error)}): "
                f"install it (for s3://, pip install s3fs) and try again"
            ) from None
        except (ValueError, OSError) as error:
            raise StoreWriteError(
                f"cannot open the store {self.url} ({_one_line(error)}): check the URL"
            ) from None
        self._cache_dir = tempfile.TemporaryDirectory(prefix="nbelastic-cache-")
        self._cache = BlobStore(self._cache_dir.name, durable=False)
        self._uploads = ThreadPoolExecutor(TRANSFERS, thread_name_prefix="nbelastic-upload")
        self._in_flight = threading.BoundedSemaphore(TRANSFERS)
        self._pending: list[Future] = []
        self._sent: set[str] = set()  # keys put by this object: each is uploaded once

    def __repr__(self) -> str:
        return f"RemoteBlobStore({self.url!r})"

    def path(self, key: str) -> str:
        """The object path of blob ``key`` in the filesystem (without the protocol)."""
        return f"{self._path}/blobs/{key[:2]}/{key[2:]}"

    def exists(self) -> bool:
        """Whether anything is stored under the URL."""
        try:
            return bool(self._fs.exists(self._path))
        except OSError as error:
            raise self._error("reach", error) from None

    def put(self, codec: str, payload: bytes) -> str:
        """Queue ``payload`` for upload and return its key; ``flush`` waits for the uploads."""
        header = blob_header(codec)
        digest = hashlib.sha256(header)
        digest.update(payload)
        key = digest.hexdigest()
        if key not in self._sent:
            self._queue(key, header, payload)
        return key

    def put_stream(self, codec: str, write: Callable[[BinaryIO], object]) -> tuple[str, int]:
        """Write the blob into the local cache, queue its upload; (key, payload size)."""
        key, size = self._cache.put_stream(codec, write)
        if key not in self._sent:
            self._queue(key, None, None)
        return key, size

    def _queue(self, key: str, header: bytes | None, payload: bytes | None) -> None:
        """Upload in the background: ``header`` and ``payload``, or the cached blob if None."""
        self._sent.add(key)
        self._in_flight.acquire()  # bounds the payloads held for upload
        self._pending.append(self._uploads.submit(self._upload, key, header, payload))

    def flush(self, progress: ProgressCallback | None = None) -> None:
        """Wait for every queued upload; StoreWriteError names the first that failed."""
        pending, self._pending = self._pending, []
        failed = None
        for done, future in enumerate(as_completed(pending), start=1):
            error = future.exception()
            failed = failed or error
            if progress:
                progress(f"uploaded to {self.url}", done, len(pending))
        if isinstance(failed, StoreWriteError):
            raise failed
        if failed is not None:
            raise self._error("write to", failed)

    def _upload(self, key: str, header: bytes | None, payload: bytes | None) -> None:
        try:
            path = self.path(key)
            cached = self._cache.path(key)
            size = cached.stat().st_size if payload is None else len(header) + len(payload)
            with contextlib.suppress(FileNotFoundError):
                if self._fs.size(path) == size:
                    return  # immutable: an object of the right size under its hash is it
            with self._fs.open(path, "wb", block_size=max(_CHUNK, 5 * 1024 * 1024)) as stream:
                if payload is None:
                    with open(cached, "rb") as source:
                        while chunk := source.read(_CHUNK):
                            stream.write(chunk)
                else:
                    view = memoryview(payload)
                    stream.write(header)
                    for start in range(0, len(view), _CHUNK):
                        stream.write(view[start : start + _CHUNK])
        except OSError as error:
            raise self._error("write to", error) from None
        finally:
            self._in_flight.release()

    def prefetch(self, keys: Iterable[str], progress: ProgressCallback | None = None) -> None:
        """Download ``keys`` in parallel into the local cache; missing ones are skipped here
        and reported by ``check`` or ``get``."""
        wanted = sorted({k for k in keys if KEY_PATTERN.fullmatch(k) and not self._cached(k)})
        with ThreadPoolExecutor(TRANSFERS, thread_name_prefix="nbelastic-download") as pool:
            futures = [pool.submit(self._download, key) for key in wanted]
            for done, future in enumerate(as_completed(futures), start=1):
                with contextlib.suppress(BlobMissingError, OSError):
                    future.result()
                if progress:
                    progress(f"downloaded from {self.url}", done, len(futures))

    def _download(self, key: str) -> None:
        """Stream blob ``key`` into the cache; a copy that does not hash to its key is dropped."""
        target = self._cache.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{threading.get_ident()}.part")
        try:
            source = self._fs.open(self.path(key), "rb", block_size=_CHUNK)
            with source, open(partial, "wb") as sink:
                while chunk := source.read(_CHUNK):
                    sink.write(chunk)
            os.replace(partial, target)
        except FileNotFoundError:
            raise BlobMissingError(self._missing(key)) from None
        finally:
            with contextlib.suppress(OSError):
                partial.unlink()

    def _cached(self, key: str) -> bool:
        return self._cache.path(key).is_file()

    def _fetch(self, key: str) -> None:
        if not self._cached(key):
            try:
                self._download(key)
            except OSError as error:
                raise BlobMissingError(
                    f"cannot read blob {short(key)} from {self.url} ({_one_line(error)}): "
                    "check the credentials and the network, then try again"
                ) from None

    def get(self, key: str) -> tuple[str, bytes]:
        """``(codec, payload)`` of blob ``key``, downloaded if needed and checked."""
        with self.open(key) as (codec, stream):
            return codec, stream.read()

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[tuple[str, BinaryIO]]:
        """``(codec, payload stream)`` of blob ``key``, downloaded if needed and checked (see
        BlobStore.open)."""
        self._cache._checked_path(key)
        self._fetch(key)
        with contextlib.ExitStack() as stack:
            try:
                opened = stack.enter_context(self._cache.open(key))
            except BlobCorruptError:
                raise BlobCorruptError(
                    f"blob {short(key)} in {self.url} is corrupt (its bytes do not match its "
                    "hash); save again from a kernel that still holds the state"
                ) from None
            yield opened

    def check(self, key: str) -> str | None:
        """Why blob ``key`` cannot be loaded, or None; downloads it into the cache."""
        self._cache._checked_path(key)
        try:
            self._fetch(key)
        except BlobMissingError:
            return f"blob {short(key)} is missing from {self.url}"
        return self._cache.check(key)

    def check_many(self, keys: Iterable[str]) -> dict[str, str | None]:
        """``check`` every key (see BlobStore.check_many); ``prefetch`` them first."""
        return check_in_parallel(self.check, keys, lambda key: self._cache._size(key))

    def has(self, key: str) -> bool:
        """Whether blob ``key`` exists in the store (its content is not checked)."""
        try:
            return bool(KEY_PATTERN.fullmatch(key)) and bool(self._fs.exists(self.path(key)))
        except OSError as error:
            raise self._error("reach", error) from None

    def locate(self, key: str, slot: PackSlot) -> None:
        """A remote store keeps a file per blob: a manifest that names a pack was not written
        for it."""
        raise CheckpointFormatError(
            f"blob {short(key)} is in pack {short(slot.pack)}, which a remote store does not hold;"
            f" save again from a kernel that still holds the state"
        )

    def keys(self) -> set[str]:
        """Keys of all blobs in the store."""
        try:
            found = self._fs.find(f"{self._path}/blobs")
        except FileNotFoundError:
            return set()
        except OSError as error:
            raise self._error("list", error) from None
        keys = {"".join(path.rsplit("/", 2)[-2:]) for path in found}
        return {key for key in keys if KEY_PATTERN.fullmatch(key)}

    def write_file(self, name: str, data: bytes) -> str:
        """Replace the object ``url/name`` (e.g. ``manifest.txt``) with ``data``."""
        try:
            self._fs.pipe_file(f"{self._path}/{name}", data)
        except OSError as error:
            raise self._error("write to", error) from None
        return f"{self.url}/{name}"

    def read_file(self, name: str) -> bytes | None:
        """The object ``url/name``, or None if there is none."""
        try:
            return self._fs.cat_file(f"{self._path}/{name}")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._error("read", error) from None

    def measure_bandwidth(self) -> float:
        """Bytes per second to upload and download a 4 MiB probe; cached per process and URL."""
        cache_key = (os.getpid(), self.url)
        if cache_key not in _BANDWIDTH:
            probe = f"{self._path}/.nbelastic-probe-{os.getpid()}"
            data = os.urandom(_PROBE_BYTES)
            try:
                started = time.perf_counter()
                self._fs.pipe_file(probe, data)
                self._fs.cat_file(probe)
                seconds = time.perf_counter() - started
                self._fs.rm_file(probe)
            except OSError as error:
                raise self._error("write to", error) from None
            _BANDWIDTH[cache_key] = float(f"{_PROBE_BYTES / max(seconds, 1e-9):.2g}")
        return _BANDWIDTH[cache_key]

    def _missing(self, key: str) -> str:
        return (
            f"blob {short(key)} is missing from {self.url}; save again from a kernel that still "
            "holds the state"
        )

    def _error(self, verb: str, error: BaseException) -> StoreWriteError:
        return StoreWriteError(
            f"cannot {verb} the store {self.url} ({_one_line(error)}): check the URL, the "
            "credentials and the network, then save again"
        )


def _one_line(error: BaseException) -> str:
    """A foreign error's message on one short line."""
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(reason.split())[:200]
