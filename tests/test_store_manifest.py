"""The manifest: deterministic sorted text, strict parsing, stored as a blob and a text file."""

import pytest

from nbelastic.errors import CheckpointFormatError
from nbelastic.store import BlobStore, Manifest, ManifestEntry, read_manifest, write_manifest
from nbelastic.store.blobs import PACK_MIN_MEMBERS, PackSlot

K1, K2, K3 = "1" * 64, "2" * 64, "abcdef0123456789" * 4


def sample() -> Manifest:
    return Manifest(
        (
            ManifestEntry(("x",), "json", 12, K1),
            ManifestEntry(("df", "b", "a"), "dill", 123456, K2),
            ManifestEntry(("arr",), "npy", 0, K3),
        )
    )


EXPECTED = (
    f"# nbelastic manifest 2\na,b,df\tdill\t123456\t{K2}\t-\narr\tnpy\t0\t{K3}\t-\n"
    f"x\tjson\t12\t{K1}\t-\n"
)
FORMAT_1 = (
    f"# nbelastic manifest 1\na,b,df\tdill\t123456\t{K2}\narr\tnpy\t0\t{K3}\nx\tjson\t12\t{K1}\n"
)


def test_text_is_sorted_and_deterministic():
    manifest = sample()
    assert manifest.to_text() == EXPECTED
    shuffled = Manifest(tuple(reversed(manifest.entries)))
    assert shuffled == manifest
    assert shuffled.to_text() == EXPECTED


def test_names_in_a_group_are_sorted():
    assert ManifestEntry(("b", "a"), "dill", 1, K1).names == ("a", "b")


def test_round_trip():
    assert Manifest.from_text(EXPECTED) == sample()
    assert Manifest.from_text(EXPECTED).to_text() == EXPECTED
    assert Manifest.from_text(Manifest().to_text()) == Manifest()
    assert Manifest().to_text() == "# nbelastic manifest 2\n"


def test_a_manifest_of_format_1_is_still_read():
    assert Manifest.from_text(FORMAT_1) == sample()


def test_a_packed_blob_keeps_its_pack_slot():
    slot = PackSlot(K3, 17, 40)
    manifest = Manifest([ManifestEntry(("x",), "json", 12, K1, slot)])
    assert manifest.to_text() == f"# nbelastic manifest 2\nx\tjson\t12\t{K1}\t{K3}@17+40\n"
    assert Manifest.from_text(manifest.to_text()).entries[0].pack == slot


def test_reading_a_packed_manifest_tells_the_store_where_its_blobs_are(tmp_path):
    store = BlobStore(tmp_path)
    with store.packing():
        key, *_ = [store.put("json", b"%d" % n) for n in range(12, 12 + PACK_MIN_MEMBERS)]
    entry = ManifestEntry(("x",), "json", 2, key, store.slot(key))
    manifest_key = write_manifest(store, Manifest([entry]))
    fresh = BlobStore(tmp_path)
    read_manifest(fresh, manifest_key)
    assert fresh.get(key) == ("json", b"12")


def test_unicode_names_round_trip():
    manifest = Manifest([ManifestEntry(("données", "π"), "dill", 3, K1)])
    assert Manifest.from_text(manifest.to_text()) == manifest


def test_entry_for():
    manifest = sample()
    assert manifest.entry_for("b") == ManifestEntry(("a", "b", "df"), "dill", 123456, K2)
    assert manifest.entry_for("x").codec == "json"
    assert manifest.entry_for("missing") is None


BAD_LINES = {
    "three fields": "x\tjson\t12",
    "four fields": f"x\tjson\t12\t{K1}",
    "six fields": f"x\tjson\t12\t{K1}\t-\textra",
    "spaces for tabs": f"x json 12 {K1} -",
    "negative size": f"x\tjson\t-1\t{K1}\t-",
    "size with leading zero": f"x\tjson\t012\t{K1}\t-",
    "float size": f"x\tjson\t1.0\t{K1}\t-",
    "short key": "x\tjson\t1\tabc\t-",
    "upper-case key": f"x\tjson\t1\t{K3.upper()}\t-",
    "carriage return": f"x\tjson\t1\t{K1}\t-\r",
    "name with a space": f"a b\tjson\t1\t{K1}\t-",
    "name not an identifier": f"1x\tjson\t1\t{K1}\t-",
    "empty name": f",x\tdill\t1\t{K1}\t-",
    "no names": f"\tdill\t1\t{K1}\t-",
    "same name twice": f"x,x\tdill\t1\t{K1}\t-",
    "bad codec": f"x\tJSON\t1\t{K1}\t-",
    "pack slot without a length": f"x\tjson\t1\t{K1}\t{K3}@17",
    "pack slot with a short key": f"x\tjson\t1\t{K1}\tabc@17+4",
    "blank line": "",
    "comment": "# a comment",
    "name already in a group": f"df\tjson\t1\t{K1}\t-",
}


@pytest.mark.parametrize("problem", BAD_LINES)
def test_malformed_line_names_its_number(problem):
    text = EXPECTED.replace("arr\t", BAD_LINES[problem] + "\narr\t")
    with pytest.raises(CheckpointFormatError, match="^malformed nbelastic manifest, line 3: "):
        Manifest.from_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "# nbelastic manifest\n",
        "# nbelastic manifest 0\n",
        "# nbelastic manifest 01\n",
        "# nbelastic manifest 1 \n",
        "# nbelastic manifest 2 \n",
        "x\tjson\t1\t" + K1 + "\t-\n",
    ],
)
def test_missing_header(text):
    with pytest.raises(CheckpointFormatError, match="line 1: not an nbelastic manifest header"):
        Manifest.from_text(text)


def test_newer_format_asks_for_an_upgrade():
    text = EXPECTED.replace("manifest 2", "manifest 3")
    with pytest.raises(CheckpointFormatError, match="format 3.*upgrade nbelastic"):
        Manifest.from_text(text)


def test_missing_final_newline_is_accepted():
    assert Manifest.from_text(EXPECTED.rstrip("\n")) == sample()


@pytest.mark.parametrize(
    "args",
    [
        ((), "json", 1, K1),
        (("a", "a"), "dill", 1, K1),
        (("a,b",), "dill", 1, K1),
        (("a",), "json\t", 1, K1),
        (("a",), "json", -1, K1),
        (("a",), "json", 1.0, K1),
        (("a",), "json", True, K1),
        (("a",), "json", 1, "k"),
    ],
)
def test_invalid_entry_is_a_caller_error(args):
    with pytest.raises(ValueError):
        ManifestEntry(*args)


def test_variable_in_two_groups_is_a_caller_error():
    with pytest.raises(ValueError, match="'a' is in two groups"):
        Manifest([ManifestEntry(("a",), "json", 1, K1), ManifestEntry(("a", "b"), "dill", 1, K2)])


def test_write_and_read_back(tmp_path):
    store = BlobStore(tmp_path)
    key = write_manifest(store, sample())
    assert store.get(key) == ("manifest", EXPECTED.encode())
    assert (tmp_path / "manifest.txt").read_text() == EXPECTED
    assert read_manifest(store, key) == sample()


def test_older_manifest_stays_readable_by_key(tmp_path):
    store = BlobStore(tmp_path)
    old = write_manifest(store, sample())
    newer = Manifest(sample().entries[:1])
    new = write_manifest(store, newer)
    assert (tmp_path / "manifest.txt").read_text() == newer.to_text()
    assert read_manifest(store, old) == sample()
    assert read_manifest(store, new) == newer


def test_writing_the_same_manifest_twice_touches_nothing(tmp_path):
    store = BlobStore(tmp_path)
    key = write_manifest(store, sample())
    text_file = tmp_path / "manifest.txt"
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert write_manifest(store, sample()) == key
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    assert text_file in before


def test_reading_a_blob_that_is_not_a_manifest(tmp_path):
    store = BlobStore(tmp_path)
    key = store.put("json", b"[]")
    with pytest.raises(CheckpointFormatError, match="holds a json value, not a manifest"):
        read_manifest(store, key)


def test_reading_a_malformed_manifest_blob(tmp_path):
    store = BlobStore(tmp_path)
    key = store.put("manifest", b"# nbelastic manifest 1\nnonsense\n")
    with pytest.raises(CheckpointFormatError, match="line 2"):
        read_manifest(store, key)
    key = store.put("manifest", b"\xff\xfe")
    with pytest.raises(CheckpointFormatError, match="not UTF-8"):
        read_manifest(store, key)
