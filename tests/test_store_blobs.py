"""The blob store: content addressing, idempotent writes, verified reads, clean failures."""

import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nbelastic
from nbelastic.errors import (
    BlobCorruptError,
    BlobMissingError,
    CheckpointFormatError,
    StoreWriteError,
)
from nbelastic.store import BlobStore
from nbelastic.store.blobs import PACK_MEMBER_LIMIT, PACK_MIN_MEMBERS


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def plant(store: BlobStore, data: bytes) -> str:
    """Put raw file bytes at their own hash, bypassing put (a blob from elsewhere)."""
    key = hashlib.sha256(data).hexdigest()
    store.path(key).parent.mkdir(parents=True, exist_ok=True)
    store.path(key).write_bytes(data)
    return key


def test_put_get_round_trip_and_layout(tmp_path):
    store = BlobStore(tmp_path / "nb.nbelastic")
    assert not store.root.exists()  # created lazily
    key = store.put("dill", b"\x00payload\n")
    data = (store.root / "blobs" / key[:2] / key[2:]).read_bytes()
    assert data == b"NBELASTIC-BLOB 1 dill\n\x00payload\n"
    assert key == hashlib.sha256(data).hexdigest()
    assert store.get(key) == ("dill", b"\x00payload\n")
    assert store.has(key)
    assert store.keys() == {key}
    assert store.root == tmp_path / "nb.nbelastic"


def test_codec_is_part_of_the_key(tmp_path):
    store = BlobStore(tmp_path)
    assert store.put("json", b"1") != store.put("npy", b"1")


def test_empty_payload(tmp_path):
    store = BlobStore(tmp_path)
    assert store.get(store.put("json", b"")) == ("json", b"")


def test_second_put_does_not_touch_the_file(tmp_path):
    store = BlobStore(tmp_path)
    key = store.put("json", b"[1]")
    before = store.path(key).stat()
    assert store.put("json", b"[1]") == key
    after = store.path(key).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert files_under(tmp_path) == [f"blobs/{key[:2]}/{key[2:]}"]


def test_put_repairs_a_truncated_blob(tmp_path):
    store = BlobStore(tmp_path)
    key = store.put("json", b"[1, 2, 3]")
    store.path(key).write_bytes(b"NBELASTIC-BLOB 1 js")
    with pytest.raises(BlobCorruptError):
        store.get(key)
    store.put("json", b"[1, 2, 3]")
    assert store.get(key) == ("json", b"[1, 2, 3]")


def test_flipped_byte_is_corrupt(tmp_path):
    store = BlobStore(tmp_path)
    key = store.put("json", b'"hello"')
    data = bytearray(store.path(key).read_bytes())
    data[-2] ^= 0x01
    store.path(key).write_bytes(bytes(data))
    with pytest.raises(BlobCorruptError) as info:
        store.get(key)
    message = str(info.value)
    assert key[:12] in message and key not in message
    assert "\n" not in message and "save again" in message


def test_missing_blob(tmp_path):
    store = BlobStore(tmp_path)
    key = "0" * 64
    assert not store.has(key)
    with pytest.raises(BlobMissingError, match=f"blob {key[:12]} is missing.*copy the whole"):
        store.get(key)


@pytest.mark.parametrize("key", ["", "abc", "A" * 64, "../" + "0" * 61, "0" * 65])
def test_malformed_key(tmp_path, key):
    store = BlobStore(tmp_path)
    assert not store.has(key)
    with pytest.raises(CheckpointFormatError, match="not a blob key"):
        store.get(key)


def test_blob_from_a_newer_format(tmp_path):
    store = BlobStore(tmp_path)
    key = plant(store, b"NBELASTIC-BLOB 2 json\n1")
    with pytest.raises(CheckpointFormatError, match="format 2.*upgrade nbelastic"):
        store.get(key)


@pytest.mark.parametrize(
    "data", [b"not a blob", b"NBELASTIC-BLOB 1 json", b"NBELASTIC-BLOB 1 Bad Codec\n1"]
)
def test_file_that_is_not_a_blob(tmp_path, data):
    store = BlobStore(tmp_path)
    key = plant(store, data)
    with pytest.raises(CheckpointFormatError, match="not an nbelastic blob"):
        store.get(key)


@pytest.mark.parametrize("codec", ["", "a b", "x\n", "JSON", "é"])
def test_put_rejects_bad_codec_names(tmp_path, codec):
    with pytest.raises(ValueError):
        BlobStore(tmp_path).put(codec, b"")


def test_put_stream_stores_what_put_stores(tmp_path):
    store = BlobStore(tmp_path)

    def write(stream):
        stream.write(b"\x00pay")
        stream.write(memoryview(b"load\n"))

    key = store.put("dill", b"\x00payload\n")
    assert store.put_stream("dill", write) == (key, 9)
    assert files_under(tmp_path) == [f"blobs/{key[:2]}/{key[2:]}"]


def test_put_stream_of_a_present_blob_leaves_its_file_untouched(tmp_path):
    store = BlobStore(tmp_path)
    key = store.put("json", b"[1]")
    before = store.path(key).stat()
    assert store.put_stream("json", lambda stream: stream.write(b"[1]")) == (key, 3)
    after = store.path(key).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert files_under(tmp_path) == [f"blobs/{key[:2]}/{key[2:]}"]


def test_put_stream_whose_writer_fails_stores_nothing(tmp_path):
    store = BlobStore(tmp_path)

    def write(stream):
        stream.write(b"half a pickle")
        raise ValueError("cannot pickle this")

    with pytest.raises(ValueError, match="cannot pickle this"):
        store.put_stream("dill", write)
    assert files_under(tmp_path) == []


def test_open_streams_the_payload_after_checking_the_hash(tmp_path):
    store = BlobStore(tmp_path)
    key = store.put("npy", b"\x93NUMPY payload")
    with store.open(key) as (codec, stream):
        assert (codec, stream.read(6), stream.read()) == ("npy", b"\x93NUMPY", b" payload")
    store.path(key).write_bytes(store.path(key).read_bytes()[:-1] + b"!")
    with pytest.raises(BlobCorruptError), store.open(key):
        raise AssertionError("a corrupt payload was handed out")


def test_flush_fails_when_a_blob_of_this_save_vanished(tmp_path):
    store = BlobStore(tmp_path / "sidecar")
    for i in range(3):
        store.put("json", str(i).encode())
    store.path(store.put("json", b"9")).unlink()
    with pytest.raises(StoreWriteError, match="cannot write to the sidecar store"):
        store.flush()
    store.flush()  # nothing left to make durable


def test_check_many_reports_each_blob(tmp_path):
    store = BlobStore(tmp_path)
    good, bad = store.put("json", b"1"), store.put("json", b"2" * 100_000)
    store.path(bad).write_bytes(store.path(bad).read_bytes()[:-1])
    missing = "0" * 64
    problems = store.check_many([good, bad, missing])
    assert problems == {
        good: None,
        bad: f"blob {bad[:12]} is corrupt (its bytes do not match its hash)",
        missing: f"blob {missing[:12]} is missing",
    }


def test_keys_ignore_temp_files_and_strays(tmp_path):
    store = BlobStore(tmp_path)
    keys = {store.put("json", str(i).encode()) for i in range(5)}
    some = next(iter(keys))
    (store.path(some).parent / ".nbelastic-0123456789abcdef.tmp").write_bytes(b"x")
    (store.root / "blobs" / "README").write_text("stray")
    assert store.keys() == keys
    assert BlobStore(tmp_path / "nothing").keys() == set()


def test_write_file_replaces_atomically(tmp_path):
    store = BlobStore(tmp_path / "sidecar")
    path = store.write_file("manifest.txt", b"one\n")
    assert path == store.root / "manifest.txt"
    store.write_file("manifest.txt", b"two\n")
    assert path.read_bytes() == b"two\n"
    assert files_under(store.root) == ["manifest.txt"]


def test_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    store = BlobStore(tmp_path)

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StoreWriteError) as info:
        store.put("json", b"[1]")
    assert str(info.value) == (
        f"cannot write to the sidecar store {tmp_path}: No space left on device; free space or"
        f" fix permissions and save again"
    )
    assert files_under(tmp_path) == []


def test_store_root_that_is_a_file(tmp_path):
    (tmp_path / "sidecar").write_text("oops")
    with pytest.raises(StoreWriteError, match="cannot write to the sidecar store"):
        BlobStore(tmp_path / "sidecar").put("json", b"1")


FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from nbelastic.errors import StoreWriteError
from nbelastic.store import BlobStore

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
store = BlobStore(sys.argv[1])
small = store.put("json", b"1")
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
for put in (
    lambda: store.put("dill", b"x" * 1024 * 1024),
    lambda: store.put_stream("dill", lambda stream: stream.write(b"x" * 1024 * 1024)),
):
    try:
        put()
    except StoreWriteError as e:
        print(e)
    else:
        sys.exit("no StoreWriteError")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_file_too_large_is_a_store_write_error_and_leaves_nothing(tmp_path):
    repo = Path(nbelastic.__file__).resolve().parent.parent
    root = tmp_path / "sidecar"
    result = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMIT, str(root)],
        capture_output=True,
        text=True,
        cwd=repo,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(
        line.startswith(f"cannot write to the sidecar store {root}: File too large;")
        for line in lines
    )
    store = BlobStore(root)
    assert len(store.keys()) == 1  # only the small blob from before the limit
    assert [p.name for p in root.rglob(".*")] == []


def test_measure_bandwidth(tmp_path, monkeypatch):
    store = BlobStore(tmp_path / "sidecar")
    bandwidth = store.measure_bandwidth()
    assert isinstance(bandwidth, float) and bandwidth > 0
    assert float(f"{bandwidth:.2g}") == bandwidth
    assert files_under(store.root) == []

    def no_probe(size):
        raise AssertionError("measured twice")

    monkeypatch.setattr(os, "urandom", no_probe)
    (tmp_path / "link").symlink_to(tmp_path / "sidecar")
    assert BlobStore(tmp_path / "link").measure_bandwidth() == bandwidth


def test_measure_bandwidth_failure_is_a_store_write_error(tmp_path):
    (tmp_path / "sidecar").write_text("oops")
    with pytest.raises(StoreWriteError):
        BlobStore(tmp_path / "sidecar").measure_bandwidth()


# --- packs ------------------------------------------------------------------------------------


def pack_many(store: BlobStore, count: int = PACK_MIN_MEMBERS) -> list[str]:
    with store.packing():
        return [store.put("json", b"%d" % n) for n in range(count)]


def test_many_small_blobs_put_while_packing_are_one_pack_file(tmp_path):
    store = BlobStore(tmp_path)
    keys = pack_many(store)
    (pack,) = store.pack_keys()
    assert files_under(tmp_path) == [f"blobs/packs/{pack}"]
    assert hashlib.sha256(store.pack_path(pack).read_bytes()).hexdigest() == pack
    assert [store.get(key) for key in keys] == [("json", b"%d" % n) for n in range(len(keys))]
    assert {store.slot(key).pack for key in keys} == {pack} and store.keys() == set()


def test_a_packed_blob_keeps_the_key_it_would_have_had_loose(tmp_path):
    keys = pack_many(BlobStore(tmp_path / "packed"))
    assert keys == [BlobStore(tmp_path / "loose").put("json", b"%d" % n) for n in range(len(keys))]


def test_a_few_small_blobs_stay_loose_files(tmp_path):
    store = BlobStore(tmp_path)
    keys = pack_many(store, PACK_MIN_MEMBERS - 1)
    assert store.pack_keys() == set() and store.keys() == set(keys)
    assert all(store.slot(key) is None for key in keys)


def test_a_large_blob_put_while_packing_stays_a_file_of_its_own(tmp_path):
    store = BlobStore(tmp_path)
    with store.packing():
        small = [store.put("json", b"%d" % n) for n in range(PACK_MIN_MEMBERS)]
        large, _ = store.put_stream("json", lambda s: s.write(b"1" * PACK_MEMBER_LIMIT))
    assert store.keys() == {large} and store.slot(large) is None
    assert store.slot(small[0]) is not None


def test_a_corrupt_packed_blob_is_caught_and_the_others_still_load(tmp_path):
    store = BlobStore(tmp_path)
    keys = pack_many(store)
    slot = store.slot(keys[3])
    path = store.pack_path(slot.pack)
    data = bytearray(path.read_bytes())
    data[slot.offset + slot.length - 1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "corrupt" in store.check(keys[3])
    with pytest.raises(BlobCorruptError):
        store.get(keys[3])
    assert store.check(keys[4]) is None and store.get(keys[4]) == ("json", b"4")


def test_a_missing_pack_is_a_missing_blob(tmp_path):
    store = BlobStore(tmp_path)
    keys = pack_many(store)
    store.pack_path(store.slot(keys[0]).pack).unlink()
    assert "missing" in store.check(keys[0]) and not store.has(keys[0])
    with pytest.raises(BlobMissingError, match="its pack .* is not there"):
        store.get(keys[0])


def test_blobs_already_in_a_known_pack_are_not_packed_again(tmp_path):
    store = BlobStore(tmp_path)
    keys = pack_many(store)
    assert pack_many(store) == keys
    assert len(store.pack_keys()) == 1


def test_nothing_is_packed_when_the_block_raises(tmp_path):
    store = BlobStore(tmp_path)
    with pytest.raises(RuntimeError), store.packing():
        [store.put("json", b"%d" % n) for n in range(PACK_MIN_MEMBERS)]
        raise RuntimeError("a codec failed")
    assert files_under(tmp_path) == []
