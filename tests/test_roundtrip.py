"""Round trips through two real kernel processes: run, save, restore in a new kernel, compare.

Every test compares the whole user namespace of both kernels (described without nbelastic, see
kernel_probe.py). Most use the recompute-all plan, the hardest one: every variable that can be
rebuilt by replay is, so a change the monitor missed shows up as a wrong value.
"""

from __future__ import annotations

import json

import nbformat
import pytest

from nbelastic.history import UNMONITORED_CODE

pytestmark = pytest.mark.kernel

REPLAY = {"plan": "recompute-all"}


def history_of(notebook) -> list[dict]:
    return nbformat.read(notebook, as_version=4).metadata["nbelastic"]["history"]["executions"]


def writes_of(notebook, fragment: str) -> set[str]:
    """Names written by the execution whose code contains ``fragment``."""
    for execution in history_of(notebook):
        if fragment in execution["code"]:
            return {snap.rpartition("@")[0] for snap in execution["writes"]}
    raise AssertionError(f"no execution with {fragment!r}")


def assert_restored(rt) -> None:
    assert rt.restore["ok"], rt.restore
    assert rt.after == rt.before
    assert not rt.restore["mismatched"]


def assert_fully_monitored(rt) -> None:
    """No change escaped the monitor: save found nothing to attribute to unmonitored code."""
    assert all(e["code"] != UNMONITORED_CODE for e in history_of(rt.notebook))


def test_plain_values_with_del_and_recreation(roundtrip):
    rt = roundtrip(
        [
            "a = 1",
            "b = 'text'",
            "c = [1, 2.5, None, 'x']",
            "del b",
            "b = {'k': (1, 2)}",
            "d = a + 1",
            "del c",
        ],
        **REPLAY,
    )
    assert_restored(rt)
    assert set(rt.after) == {"a", "b", "d"}
    assert_fully_monitored(rt)


def test_plain_values_stored(roundtrip):
    rt = roundtrip(["a = 1", "b = [1, 2, {'k': None}]", "c = 'x' * 10"], plan="store-all")
    assert_restored(rt)
    assert sorted(rt.save["stored"]) == ["a", "b", "c"]
    assert rt.restore["replayed"] == []


@pytest.mark.parametrize("plan", ["store-all", "recompute-all"])
def test_aliases_keep_identity(roundtrip, plan):
    rt = roundtrip(["a = [1, 2]", "b = a", "d = {'k': a}", "a.append(3)"], plan=plan)
    assert_restored(rt)
    assert rt.check("b is a") is True
    assert rt.check("d['k'] is a") is True
    assert writes_of(rt.notebook, "a.append") == {"a", "b", "d"}


@pytest.mark.parametrize("plan", ["store-all", "recompute-all"])
def test_numpy_view_keeps_sharing_memory(roundtrip, plan):
    rt = roundtrip(
        ["import numpy as np", "arr = np.arange(10.0)", "v = arr[2:5]", "v[0] = 99"], plan=plan
    )
    assert_restored(rt)
    assert rt.check("bool(__import__('numpy').shares_memory(v, arr))") is True
    assert rt.check("float(arr[2])") == 99.0
    assert writes_of(rt.notebook, "v[0] = 99") == {"arr", "v"}


def test_equal_small_ints_and_strings_are_not_linked(roundtrip):
    rt = roundtrip(["p = 3", "q = 3", "s = 'ab'", "t = 'ab'"], plan="store-all")
    assert_restored(rt)
    manifest = (rt.notebook.parent / "roundtrip.nbelastic" / "manifest.txt").read_text()
    groups = [line.split("\t")[0] for line in manifest.splitlines() if not line.startswith("#")]
    assert sorted(groups) == ["p", "q", "s", "t"]


IN_PLACE = [
    ("lst = []", "lst.append(1)", "lst"),
    ("d = {}", "d.update(k=1)", "d"),
    ("import numpy as np\narr = np.zeros(4)", "arr += 1", "arr"),
    ("import numpy as np\nbase = np.zeros(4)\nview = base[1:]", "view[0] = 7", "base"),
    ("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})", "df.loc[0, 'a'] = 10", "df"),
    ("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})", "df['c'] = 1", "df"),
    ("import pandas as pd\ndf = pd.DataFrame({'s': ['x', 'y']})", "df.loc[0, 's'] = 'z'", "df"),
    (
        "import pandas as pd\ndf = pd.DataFrame({'c': pd.Categorical(['u', 'v'])})",
        "df.loc[0, 'c'] = 'v'",
        "df",
    ),
    (
        "import pandas as pd\n"
        "df = pd.DataFrame({'v': [1.0]}, index=pd.MultiIndex.from_tuples([('a', 1)]))",
        "df.index.names = ['k', 'i']",
        "df",
    ),
    (
        "import numpy as np\nimport pandas as pd\narr = np.zeros((3, 2))\n"
        "df = pd.DataFrame(arr, copy=False)",
        "arr[0, 0] = 5",
        "df",
    ),
    ("import pandas as pd\ns = pd.Series([[1], [2]])", "s[0].append(3)", "s"),
    (
        "from sklearn.linear_model import LinearRegression\nmodel = LinearRegression()\n"
        "X = [[0.0], [1.0], [2.0]]\ny = [0.0, 1.0, 2.0]",
        "model.fit(X, y)",
        "model",
    ),
    ("counts = [0]\ndef bump():\n    counts[0] += 1", "bump()", "counts"),
]


@pytest.mark.parametrize(("setup", "mutation", "name"), IN_PLACE, ids=[m for _, m, _ in IN_PLACE])
def test_in_place_mutation_is_recorded_and_replayed(roundtrip, setup, mutation, name):
    rt = roundtrip([setup, mutation, "marker = 1"], **REPLAY)
    assert_restored(rt)
    assert name in writes_of(rt.notebook, mutation)
    assert_fully_monitored(rt)


def test_rebinding_a_name_does_not_rehash_what_its_old_value_shared_objects_with(roundtrip):
    """``holder`` is linked to ``c``; assigning ``holder`` anew cannot change ``c``, so the monitor
    leaves it alone (each hash of ``c`` calls its ``__reduce_ex__``, which counts)."""
    rt = roundtrip(
        [
            "import builtins\nbuiltins.reductions = 0\n"
            "class Counted:\n"
            "    def __reduce_ex__(self, protocol):\n"
            "        builtins.reductions += 1\n"
            "        return (Counted, ())",
            "c = Counted()\nholder = [c]",
            "before = builtins.reductions",
            "holder = None",
            "after = builtins.reductions",
        ],
        plan="store-all",
    )
    assert_restored(rt)
    assert rt.check("after - before") == 0
    assert writes_of(rt.notebook, "holder = None") == {"holder"}


@pytest.mark.parametrize("plan", ["optimal", "store-all", "recompute-all"])
def test_function_reading_a_later_reassigned_global(roundtrip, plan):
    rt = roundtrip(["x = 1", "def f():\n    return x * 10", "z = f()", "x = 5"], plan=plan)
    assert_restored(rt)
    assert rt.check("(z, x)") == [10, 5]
    assert rt.check("f()") == 50, "a restored function must read the new kernel's globals"


def test_underscore_names_are_state_but_ipython_names_are_not(roundtrip):
    rt = roundtrip(["_cache = {'k': 1}", "1 + 1", "_", "__private = [2]"], **REPLAY)
    assert_restored(rt)
    assert set(rt.after) == {"_cache", "__private"}


def test_unserializable_objects_are_rebuilt_by_replay(roundtrip):
    rt = roundtrip(
        [
            "def gen():\n    yield from range(5)",
            "g = gen()",
            "first = next(g)",
            "import threading\nlock = threading.Lock()",
            "fh = open('out.txt', 'w')",
            "later = [1, 2, 3]",
        ],
        plan="store-all",
    )
    assert_restored(rt)
    assert {"g", "lock", "fh"} <= set(rt.save["replayed"])
    assert rt.check("next(g)") == 1
    assert rt.check("type(lock).__name__") == "lock"
    assert rt.check("fh.closed") is False


@pytest.mark.parametrize("plan", ["store-all", "recompute-all"])
def test_notebook_class_and_its_instances(roundtrip, plan):
    rt = roundtrip(
        [
            "class Point:\n    def __init__(self, x):\n        self.x = x\n"
            "    def norm(self):\n        return abs(self.x)",
            "p1 = Point(-3)",
            "pts = [Point(1), p1]",
        ],
        plan=plan,
    )
    assert_restored(rt)
    assert rt.check("type(p1) is Point and pts[1] is p1") is True
    assert rt.check("p1.norm()") == 3


def test_ipython_syntax_cells_are_analysed_and_replayed(roundtrip):
    rt = roundtrip(
        [
            "base = 10",
            "%time x = sum(range(base))",
            "!echo hi $base",
            "%%capture captured\nprint('hidden')\ny = x + 1",
        ],
        **REPLAY,
    )
    assert_restored(rt)
    assert rt.check("(x, y)") == [45, 46]
    assert "base" in {
        s.rpartition("@")[0]
        for e in history_of(rt.notebook)
        if "%time" in e["code"]
        for s in e["reads"]
    }


def test_a_cell_that_raised_is_recorded_and_replayed(roundtrip):
    rt = roundtrip(
        ["a = [1]", "a.append(2)\nraise ValueError('boom')", "b = len(a)"],
        expect_errors={1},
        **REPLAY,
    )
    assert_restored(rt)
    assert rt.check("(a, b)") == [[1, 2], 2]
    assert [e["raised"] for e in history_of(rt.notebook)] == [False, True, False]


def test_unseeded_random_numbers_are_replayed_identically(roundtrip):
    rt = roundtrip(
        [
            "import numpy as np\nimport random",
            "r = np.random.rand(5)",
            "u = random.random()",
            "s = np.random.rand(3) + u",
        ],
        **REPLAY,
    )
    assert_restored(rt)
    assert rt.restore["replayed"]


def test_variable_made_before_the_extension_is_stored(roundtrip):
    rt = roundtrip(["late = early + [4]"], before_extension=["early = [1, 2, 3]"], **REPLAY)
    assert_restored(rt)
    assert rt.save["stored"] == ["early"]
    assert rt.save["replayed"] == ["late"]


@pytest.mark.parametrize(("bandwidth", "action"), [(1e3, "replayed"), (1e13, "stored")])
def test_bandwidth_decides_whether_a_big_array_is_stored(roundtrip, bandwidth, action):
    rt = roundtrip(["import numpy as np", "big = np.ones(2_000_000)"], bandwidth=bandwidth)
    assert_restored(rt)
    assert "big" in rt.save[action]


def test_same_state_saved_twice_gives_identical_metadata(roundtrip, tmp_path):
    rt = roundtrip(["import numpy as np", "a = np.arange(5)", "b = [1, 2]"], bandwidth=1e8)
    first = json.dumps(nbformat.read(rt.notebook, as_version=4).metadata["nbelastic"])
    blobs = {p for p in (tmp_path / "roundtrip.nbelastic").rglob("*") if p.is_file()}
    again = rt.restored_kernel.call("save", {"notebook": str(rt.notebook), "bandwidth": 1e8})
    second = json.dumps(nbformat.read(rt.notebook, as_version=4).metadata["nbelastic"])
    assert again["bytes_new"] == 0
    assert first == second
    assert blobs == {p for p in (tmp_path / "roundtrip.nbelastic").rglob("*") if p.is_file()}


def test_work_continues_after_a_restore_and_saves_again(roundtrip, tmp_path):
    from conftest import describe_namespace

    from nbelastic.driver import Kernel

    rt = roundtrip(["x = 1", "def f():\n    return x * 10", "z = f()", "x = 5"], **REPLAY)
    kernel = rt.restored_kernel
    for code in ("w = f() + z", "x += 1", "items = [w, x]"):
        assert kernel.execute(code).error is None
    expected = describe_namespace(kernel)
    kernel.call("save", {"notebook": str(rt.notebook), **REPLAY})
    with Kernel(cwd=tmp_path) as third:
        report = third.call("restore", {"notebook": str(rt.notebook)})
        assert report["ok"], report
        assert describe_namespace(third) == expected
    codes = [e["code"] for e in history_of(rt.notebook)]
    assert codes[-3:] == ["w = f() + z", "x += 1", "items = [w, x]"]


HOSTILE = """
class Hostile:
    def __getattr__(self, name):
        raise RuntimeError("lies")
    def __eq__(self, other):
        raise RuntimeError("no eq")
    def __hash__(self):
        raise RuntimeError("no hash")
    def __reduce_ex__(self, protocol):
        raise RuntimeError("no reduce")
h = Hostile()
"""


def test_hostile_objects_never_break_a_cell_and_are_replayed(roundtrip):
    rt = roundtrip([HOSTILE, "items = [h, 1]", "n = len(items)"], plan="store-all")
    assert_restored(rt)
    assert {"h", "items"} <= set(rt.save["replayed"])
    assert rt.check("type(h).__name__") == "Hostile"
    status = rt.restored_kernel.execute(
        "%load_ext nbelastic\n%nbelastic status --plan store-all --bandwidth 1e9"
    )
    row = next(line for line in status.stdout.splitlines() if line.startswith("h "))
    assert "replay" in row and "cannot be serialized" in row


@pytest.mark.parametrize("plan", ["store-all", "recompute-all"])
def test_unseeded_torch_training_round_trips(roundtrip, plan):
    pytest.importorskip("torch")
    rt = roundtrip(
        [
            "import torch",
            "X = torch.randn(64, 4)\ny = X.sum(dim=1, keepdim=True)",
            "model = torch.nn.Linear(4, 1)\nopt = torch.optim.SGD(model.parameters(), lr=0.05)",
            "for _ in range(20):\n    opt.zero_grad()\n    loss = ((model(X) - y) ** 2).mean()\n"
            "    loss.backward()\n    opt.step()",
        ],
        plan=plan,
    )
    assert_restored(rt)
    assert rt.check("opt.param_groups[0]['params'][0] is model.weight") is True


def test_a_variable_made_by_a_silent_execution_is_in_place_for_replayed_cells(tmp_path):
    from conftest import describe_namespace

    from nbelastic.driver import Kernel

    notebook = tmp_path / "silent.ipynb"
    with Kernel(cwd=tmp_path) as first:
        assert first.execute("%load_ext nbelastic").error is None
        assert first.execute("SCALE = 3", silent=True).error is None
        assert first.execute("a = list(range(SCALE))").error is None
        before = describe_namespace(first)
        first.call("save", {"notebook": str(notebook), "plan": "recompute-all"})
    with Kernel(cwd=tmp_path) as second:
        report = second.call("restore", {"notebook": str(notebook)})
        assert report["ok"], report
        assert describe_namespace(second) == before
