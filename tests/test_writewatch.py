"""The write watch: the OS says whether a large buffer was written, so the monitor need not
hash it. Every way of writing must move the fingerprint (no false "unchanged"); reading must not.

The in-process tests need a kernel with userfaultfd write-protection (Linux 6.7+) and are skipped
elsewhere; the round trips run in real kernels with the watch on where it works and off.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from test_roundtrip import REPLAY, assert_fully_monitored, assert_restored, writes_of

from nbelastic.writewatch import MIN_BYTES, WriteWatch

LARGE = MIN_BYTES // 8 * 3  # float64 elements: three times the smallest watched buffer


@pytest.fixture
def watch():
    opened, note = WriteWatch.open_reporting()
    if opened is None:
        pytest.skip(f"no write watch on this machine: {note}")
    yield opened
    opened.close()


def token(watch: WriteWatch, array) -> bytes:
    watched = watch.fingerprint(array)
    assert watched is not None, "this array should be watched"
    return watched.token


def test_an_unwritten_array_keeps_its_fingerprint(watch):
    array = np.arange(LARGE, dtype=np.float64)
    assert token(watch, array) == token(watch, array)


def test_reading_an_array_keeps_its_fingerprint(watch):
    array = np.arange(LARGE, dtype=np.float64)
    before = token(watch, array)
    assert array.sum() > 0 and array[::7].copy().size
    assert token(watch, array) == before


def test_one_element_written_in_the_middle_changes_the_fingerprint(watch):
    array = np.zeros(LARGE)
    before = token(watch, array)
    array[LARGE // 2] = 1.0
    assert token(watch, array) != before


def test_a_write_on_a_partial_page_at_either_end_changes_the_fingerprint(watch):
    array = np.zeros(LARGE)
    first = token(watch, array)
    array[0] = 1.0
    second = token(watch, array)
    array[-1] = 1.0
    assert len({first, second, token(watch, array)}) == 3


def test_writing_the_same_value_back_still_counts_as_a_change(watch):
    """Documented false "changed": the OS sees a write, not whether it altered a byte."""
    array = np.zeros(LARGE)
    before = token(watch, array)
    array[LARGE // 2] = 0.0
    assert token(watch, array) != before


def test_the_fingerprint_is_stable_after_a_write_was_seen(watch):
    array = np.zeros(LARGE)
    token(watch, array)
    array[5000] = 2.0
    seen = token(watch, array)
    assert token(watch, array) == seen


def test_a_write_through_a_view_changes_the_base_fingerprint(watch):
    base = np.zeros(LARGE)
    before = token(watch, base)
    view = base[LARGE // 4 :]
    view[10] = 3.0
    assert token(watch, base) != before


def test_a_write_seen_through_a_view_still_changes_the_base_fingerprint(watch):
    """The view is checked first (and its pages protected again): the base must still see it."""
    base = np.zeros(LARGE * 2)
    view = base[LARGE // 2 :]
    before_base, before_view = token(watch, base), token(watch, view)
    view[LARGE] = 7.0
    assert token(watch, view) != before_view
    assert token(watch, base) != before_base


def test_a_write_anywhere_in_a_base_changes_the_fingerprint_of_its_views(watch):
    """Documented false "changed": the whole base is watched, not each view's own pages."""
    base = np.zeros(LARGE * 2)
    view = base[:LARGE]
    before = token(watch, view)
    base[-100] = 1.0
    assert token(watch, view) != before


def test_a_write_by_the_os_into_the_buffer_changes_the_fingerprint(watch, tmp_path):
    source = tmp_path / "data.bin"
    source.write_bytes(b"\x01" * 8000)
    array = np.zeros(LARGE)
    before = token(watch, array)
    with source.open("rb") as file:
        file.readinto(memoryview(array[LARGE // 2 : LARGE // 2 + 1000]).cast("B"))
    assert token(watch, array) != before
    assert array[LARGE // 2] != 0.0


def test_a_write_from_another_thread_changes_the_fingerprint(watch):
    array = np.zeros(LARGE)
    before = token(watch, array)
    writer = threading.Thread(target=array.__setitem__, args=(LARGE // 3, 4.0))
    writer.start()
    writer.join()
    assert token(watch, array) != before


def test_a_write_in_a_forked_child_does_not_change_the_parent_fingerprint(watch):
    array = np.zeros(LARGE)
    before = token(watch, array)
    child = os.fork()
    if child == 0:
        array[LARGE // 2] = 5.0
        os._exit(0)
    os.waitpid(child, 0)
    assert token(watch, array) == before
    array[LARGE // 2] = 5.0
    assert token(watch, array) != before


def test_a_new_array_at_the_address_of_a_dead_one_gets_a_new_fingerprint(watch):
    array = np.zeros(LARGE)
    address, before = array.ctypes.data, token(watch, array)
    del array
    for _ in range(20):  # the allocator usually hands the same memory back at once
        again = np.empty(LARGE)
        if again.ctypes.data == address:
            break
    assert token(watch, again) != before


def test_replacing_a_string_in_an_object_column_changes_its_fingerprint(watch):
    column = np.array([f"row {i}" for i in range(LARGE)], dtype=object)
    before = token(watch, column)
    column[LARGE // 2] = "changed"
    assert token(watch, column) != before


def test_small_arrays_memory_maps_and_foreign_buffers_are_hashed_instead(watch, tmp_path):
    mapped = np.memmap(tmp_path / "m.bin", dtype=np.float64, mode="w+", shape=(LARGE,))
    foreign = np.frombuffer(bytearray(8 * LARGE), dtype=np.float64)
    assert watch.fingerprint(np.zeros(1000)) is None
    assert watch.fingerprint(mapped) is None
    assert watch.fingerprint(foreign) is None


def test_an_array_rewritten_wholesale_goes_back_to_hashing(watch):
    """A fault per written page costs more than hashing, so such a buffer is hashed."""
    array = np.zeros(LARGE)
    token(watch, array)
    array += 1.0
    assert watch.fingerprint(array) is None


def test_a_dead_array_is_no_longer_watched(watch):
    array = np.zeros(LARGE)
    token(watch, array)
    assert len(watch._entries) == 1
    del array
    assert not watch._entries


def test_the_watch_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("NBELASTIC_WRITE_WATCH", "0")
    opened, note = WriteWatch.open_reporting()
    assert opened is None
    assert "NBELASTIC_WRITE_WATCH=0" in note


BIG_IN_PLACE = [
    ("import numpy as np\narr = np.zeros(2_000_000)", "arr[1_000_000] = 1.0", "arr"),
    ("import numpy as np\narr = np.zeros(2_000_000)", "arr[-1] = 1.0", "arr"),
    ("import numpy as np\narr = np.zeros(2_000_000)", "arr += 1", "arr"),
    (
        "import numpy as np\nbase = np.zeros(2_000_000)\nview = base[500_000:]",
        "view[700_000] = 7",
        "base",
    ),
    (
        "import numpy as np\narr = np.zeros(2_000_000)\n"
        "np.full(2_000_000, 3.0).tofile('three.bin')",
        "with open('three.bin', 'rb') as f:\n    f.readinto(memoryview(arr).cast('B'))",
        "arr",
    ),
    (
        "import numpy as np\nimport threading\narr = np.zeros(2_000_000)",
        "t = threading.Thread(target=arr.__setitem__, args=(900_000, 2.0))\nt.start()\nt.join()",
        "arr",
    ),
    (
        "import pandas as pd\ndf = pd.DataFrame({'x': range(1_000_000), 'y': 0.5})",
        "df.loc[500_000, 'y'] = 9.0",
        "df",
    ),
    (
        "import pandas as pd\ndf = pd.DataFrame({'s': [f'row {i}' for i in range(1_000_000)]})",
        "df.loc[500_000, 's'] = 'changed'",
        "df",
    ),
    (
        "import numpy as np\nimport pandas as pd\narr = np.zeros((1_000_000, 2))\n"
        "df = pd.DataFrame(arr, copy=False)",
        "arr[600_000, 0] = 5",
        "df",
    ),
]


@pytest.fixture(params=["watched", "hashed"])
def watch_mode(request, monkeypatch):
    if request.param == "hashed":
        monkeypatch.setenv("NBELASTIC_WRITE_WATCH", "0")
    elif WriteWatch.open() is None:
        pytest.skip("no write watch on this machine")
    return request.param


@pytest.mark.parametrize(
    ("setup", "mutation", "name"), BIG_IN_PLACE, ids=[m for _, m, _ in BIG_IN_PLACE]
)
def test_in_place_change_of_a_large_value_is_recorded_and_replayed(
    roundtrip, watch_mode, setup, mutation, name
):
    rt = roundtrip([setup, mutation, "marker = 1"], **REPLAY)
    assert_restored(rt)
    assert name in writes_of(rt.notebook, mutation)
    assert_fully_monitored(rt)


def test_reading_a_large_value_is_not_a_write(roundtrip, watch_mode):
    rt = roundtrip(
        [
            "import numpy as np\nimport pandas as pd\narr = np.arange(2_000_000.0)\n"
            "df = pd.DataFrame({'s': [str(i) for i in range(600_000)], 'v': 1.0})",
            "total = arr.sum() + df['v'].sum()\nlongest = df['s'].str.len().max()",
        ],
        **REPLAY,
    )
    assert_restored(rt)
    assert writes_of(rt.notebook, "total =") == {"total", "longest"}
    assert_fully_monitored(rt)


def test_status_says_how_changes_are_noticed(watch_mode, tmp_path):
    from nbelastic.driver import Kernel

    with Kernel(cwd=tmp_path) as kernel:
        kernel.execute("%load_ext nbelastic")
        kernel.execute("import numpy as np\narr = np.zeros(2_000_000)")
        status = kernel.execute("%nbelastic status --bandwidth 100MB/s").stdout
    expected = "watched by the OS" if watch_mode == "watched" else "NBELASTIC_WRITE_WATCH=0"
    notice = next(line for line in status.splitlines() if line.startswith("changes between"))
    assert expected in notice


@pytest.mark.parametrize(
    ("code", "written"),
    [
        ("total = arr.sum()", {"total"}),
        ("arr[1_000_000] = 1.0\ntotal = 0", {"arr", "total"}),
    ],
    ids=["read", "write"],
)
def test_after_a_restore_a_large_array_is_compared_by_content_once(
    roundtrip, watch_mode, code, written
):
    """The restore's verification hashed the array's content; the first cell to touch it
    afterwards must compare like with like, not a content hash against a fingerprint."""
    rt = roundtrip(["import numpy as np\narr = np.arange(2_000_000.0)"], plan="store-all")
    kernel = rt.restored_kernel
    assert kernel.execute(code).error is None
    kernel.call("save", {"notebook": str(rt.notebook), "plan": "store-all"})
    assert writes_of(rt.notebook, code) == written
    assert_fully_monitored(rt)


def test_each_watched_page_written_is_counted_once(watch):
    """Each is one fault: the cost the watch adds inside the cell, reported by status."""
    array = np.zeros(LARGE)
    token(watch, array)
    before = watch.pages_written
    array[LARGE // 2] = 1.0
    array[LARGE // 2 + 1] = 1.0  # the same page again
    array[LARGE // 2 + 4096] = 1.0  # eight pages further on
    token(watch, array)
    assert watch.pages_written - before == 2
