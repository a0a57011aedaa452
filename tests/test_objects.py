"""profile(): one walk of a value gives its content hash, size estimate, links and storability."""

import collections
import contextlib
import doctest
import functools
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import dill
import numpy as np
import pandas as pd
import pytest

import nbelastic.objects
from nbelastic.objects import Profile, profile
from nbelastic.store.codecs import encode_group


def digest(value) -> str:
    return profile(value).hash


def linked(a, b) -> bool:
    return bool(profile(a).tokens & profile(b).tokens)


def notebook_class(cls: type) -> type:
    """Make a class defined in this test module look like one defined in a notebook cell."""
    cls.__module__ = "__main__"
    return cls


class Attrs:
    def __init__(self):
        self.x = 1


class Slotted:
    __slots__ = ("x",)

    def __init__(self):
        self.x = 1


class Registry(dict):
    """A notebook-style dict subclass."""


class Stack(list):
    pass


class Grade(int):
    pass


def test_doctests_hold():
    assert doctest.testmod(nbelastic.objects).failed == 0


# --- equal values, equal hashes --------------------------------------------------------------

EQUAL_VALUES = {
    "list": (lambda: [1, 2.5, "x", None, b"y"], lambda: [1, 2.5, "x", None, b"y"]),
    "dict": (lambda: {"a": [1], "b": {"c": (2, 3)}}, lambda: {"a": [1], "b": {"c": (2, 3)}}),
    "set of strings": (lambda: {"alpha", "beta", "gamma"}, lambda: {"gamma", "beta", "alpha"}),
    "frozenset in a set": (lambda: {frozenset("ab"), "c"}, lambda: {"c", frozenset("ba")}),
    "long list of scalars": (lambda: list(range(1000)), lambda: list(range(1000))),
    "numpy array": (lambda: np.arange(12.0).reshape(3, 4), lambda: np.arange(12.0).reshape(3, 4)),
    "dataframe": (
        lambda: pd.DataFrame({"a": [1, 2], "s": ["x", "y"]}),
        lambda: pd.DataFrame({"a": [1, 2], "s": ["x", "y"]}),
    ),
}


@pytest.mark.parametrize(("make", "make_other"), EQUAL_VALUES.values(), ids=list(EQUAL_VALUES))
def test_equal_values_built_separately_hash_equal(make, make_other):
    assert digest(make()) == digest(make_other())


def test_a_contiguous_copy_of_a_view_hashes_like_the_view():
    view = np.arange(24.0).reshape(4, 6)[:, ::2]

    assert digest(view) == digest(np.ascontiguousarray(view))


@pytest.mark.parametrize(
    ("a", "b"),
    [(1, 1.0), (1, True), (0, None), ("1", 1), ([1], (1,)), ({1}, frozenset({1})), (b"a", "a")],
    ids=repr,
)
def test_equal_looking_values_of_different_types_hash_differently(a, b):
    assert digest(a) != digest(b)


def test_dict_order_is_part_of_the_hash():
    """Order is observable (iteration, repr), so a restore must reproduce it."""
    assert digest({"a": 1, "b": 2}) != digest({"b": 2, "a": 1})


def test_sharing_inside_a_value_is_part_of_the_hash():
    """``[a, a]`` and ``[[1], [1]]`` are equal but behave differently once one element changes."""
    inner = [1]

    assert digest([inner, inner]) != digest([[1], [1]])


@pytest.mark.parametrize(
    ("a", "b"),
    [(Registry(k=1), Registry(k=2)), (Stack([1]), Stack([2])), (Grade(1), Grade(2))],
    ids=["dict subclass", "list subclass", "int subclass"],
)
def test_builtin_subclasses_hash_their_contents(a, b):
    assert digest(a) != digest(b)


def function_from(source: str):
    """Function ``f`` defined by ``source`` as a notebook cell would define it."""
    namespace: dict = {"__name__": "__main__"}
    exec(textwrap.dedent(source), namespace)
    return namespace["f"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("def f(): return 1", "def f(): return 2"),
        ("def f(): return (1, 2)", "def f(): return (1, 3)"),
        ("def f(x): return x in (1, (2, 'a'))", "def f(x): return x in (1, (2, 'b'))"),
        ("def f(x): return x in {'a', 'b'}", "def f(x): return x in {'a', 'c'}"),
        ("def f(a, b): return a", "def f(a, *, b): return a"),
        ("def f(a, b): return a", "def f(a, /, b): return a"),
        ("def f(): return g", "def f(): return h"),
    ],
    ids=["constant", "tuple constant", "nested tuple constant", "set constant",
         "keyword-only", "positional-only", "global read"],
)  # fmt: skip
def test_functions_that_differ_hash_differently(a, b):
    assert digest(function_from(a)) != digest(function_from(b))


def test_the_same_function_defined_twice_hashes_equal_wherever_it_is_defined():
    source = "def f(x, k=(1, 'a')):\n    return x in {'p', 'q'} or k"

    assert digest(function_from(source)) == digest(function_from("\n\n\n" + source))


def test_large_ints_hash_without_decimal_conversion_limits():
    big = 10**5000

    assert digest(big) == digest(10**5000)
    assert digest(big) != digest(big + 1)
    assert digest([big] * 100) != digest([big + 1] * 100)


# --- the same hash in another process --------------------------------------------------------

CROSS_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import pandas as pd
    from nbelastic.objects import profile

    class Point:
        scale = 2

        def __init__(self, x, tags):
            self.x = x
            self.tags = tags

        def norm(self):
            return abs(self.x) * self.scale

        def label(self, unit="m", *, digits=2):
            kind = "tagged" if self.tags & {"a", "b"} else "plain"
            return f"{self.x:.{digits}f} {unit}", kind, (1.5, "x", (None, b"y"))

    def values():
        return {
            "strings": {
                "names": {"alice", "bob", "carol", "dave", "eve"},
                "nested": {"k": frozenset({"x", ("y", "z")}), "t": "h\\u00e9llo" * 3},
                "keys": {f"key{i}": {f"v{i}", f"w{i}"} for i in range(40)},
            },
            "numpy": np.arange(60.0).reshape(6, 10)[:, ::3],
            "numpy strings": np.array(["a", "bb", "ccc"]),
            "dataframe": pd.DataFrame(
                {
                    "a": [1, 2, 3],
                    "s": ["x", "y", "z"],
                    "c": pd.Categorical(["u", "v", "u"]),
                },
                index=pd.Index(["r1", "r2", "r3"], name="row"),
            ),
        }

    hashes = {name: profile(value).hash for name, value in values().items()}
    hashes["notebook class instance"] = profile(Point(-3, {"a", "b", "c"})).hash
    hashes["notebook function"] = profile(Point.label).hash

    class Node:
        def __init__(self, name, parent=None):
            self.name, self.parent, self.children = name, parent, set()
            if parent is not None:
                parent.children.add(self)

    root = Node("root")
    for i in range(4):
        Node(f"leaf{i}", Node(f"inner{i}", root))
    hashes["tree with child sets"] = profile(root).hash
    print(json.dumps(hashes))
    """
)


@pytest.fixture(scope="module")
def hashes_in_other_processes() -> list[dict[str, str]]:
    """Hashes from two fresh interpreters with different string hash seeds, run side by side."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CROSS_PROCESS_SCRIPT],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")
    ]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes)
    return [json.loads(output) for output in outputs]


def cross_process_values() -> dict:
    namespace: dict = {}
    source = CROSS_PROCESS_SCRIPT.split("hashes = ")[0]
    exec(compile(source, "<cross-process>", "exec"), namespace)
    return namespace["values"]()


@pytest.mark.parametrize(
    "name",
    [
        "strings",
        "numpy",
        "numpy strings",
        "dataframe",
        "notebook class instance",
        "notebook function",
        "tree with child sets",
    ],
)
def test_hash_is_the_same_in_processes_with_different_hash_seeds(hashes_in_other_processes, name):
    first, second = hashes_in_other_processes

    assert first[name] is not None
    assert first[name] == second[name]


@pytest.mark.parametrize("name", ["strings", "numpy", "numpy strings", "dataframe"])
def test_hash_is_the_same_in_this_process_and_another(hashes_in_other_processes, name):
    assert digest(cross_process_values()[name]) == hashes_in_other_processes[0][name]


# --- every in-place mutation changes the hash ------------------------------------------------


def counter():
    count = 0

    def bump():
        nonlocal count
        count += 1
        return count

    return bump


def closure_over_list():
    seen = []

    def add(item):
        seen.append(item)

    return add


def fitted_model():
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


def write_through_view(arr):
    view = arr[1:3]
    view[0] = 7


def write_to_base(view):
    view.base[0] = 5


def sklearn_bunch():
    from sklearn.utils import Bunch

    return Bunch(data=np.zeros(3), target=[0, 1, 0])


def object_array():
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = [1], [2]
    return arr


def mutate_class_attribute(instance):
    type(instance).shared.append(1)


def frame_with_strings():
    return pd.DataFrame({"n": [1, 2, 3], "s": pd.array(["x", "y", None], dtype="str")})


def frame_with_categories():
    return pd.DataFrame({"c": pd.Categorical(["u", "v", "u"]), "n": [1.0, 2.0, 3.0]})


def frame_with_multiindex():
    index = pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)], names=["k", "i"])
    return pd.DataFrame({"v": [1.0, 2.0, 3.0]}, index=index)


def replace_multiindex(frame):
    frame.index = pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 9)], names=["k", "i"])


@notebook_class
class WithClassState:
    shared: list = []


MUTATIONS = {
    "list append": (lambda: [1], lambda v: v.append(2)),
    "list item set": (lambda: [1, 2], lambda v: v.__setitem__(0, 5)),
    "list sort": (lambda: [2, 1], lambda v: v.sort()),
    "long list of scalars": (lambda: list(range(100)), lambda v: v.__setitem__(50, -1)),
    "dict update": (lambda: {"a": 1}, lambda v: v.update(b=2)),
    "dict value replaced": (lambda: {"a": 1}, lambda v: v.__setitem__("a", 2)),
    "set add": (lambda: {1}, lambda v: v.add(2)),
    "nested list": (lambda: {"k": [[1], [2]]}, lambda v: v["k"][1].append(3)),
    "list inside a tuple": (lambda: (1, [2]), lambda v: v[1].append(3)),
    "numpy in place": (lambda: np.zeros(4), lambda v: v.__iadd__(1)),
    "numpy through a view": (lambda: np.zeros(4), write_through_view),
    "numpy view sees its base change": (lambda: np.zeros(6)[::2], write_to_base),
    "numpy reshape in place": (lambda: np.zeros(4), lambda v: setattr(v, "shape", (2, 2))),
    "numpy object array": (object_array, lambda v: v[0].append(9)),
    "numpy masked array mask": (
        lambda: np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0]),
        lambda v: v.__setitem__(0, np.ma.masked),
    ),
    "pandas df.loc": (
        lambda: pd.DataFrame({"a": [1, 2]}),
        lambda v: v.loc.__setitem__((0, "a"), 10),
    ),
    "pandas new column": (lambda: pd.DataFrame({"a": [1, 2]}), lambda v: v.__setitem__("c", 1)),
    "pandas index name": (
        lambda: pd.DataFrame({"a": [1, 2]}),
        lambda v: setattr(v.index, "name", "id"),
    ),
    "pandas columns name": (
        lambda: pd.DataFrame({"a": [1, 2]}),
        lambda v: setattr(v.columns, "name", "fields"),
    ),
    "pandas series index name": (
        lambda: pd.Series([1, 2]),
        lambda v: setattr(v.index, "name", "id"),
    ),
    "pandas attrs": (lambda: pd.DataFrame({"a": [1]}), lambda v: v.attrs.update(unit="m")),
    "pandas flags": (
        lambda: pd.DataFrame({"a": [1]}),
        lambda v: setattr(v.flags, "allows_duplicate_labels", False),
    ),
    "pandas df[c] = ...": (
        lambda: pd.DataFrame({"a": [1, 2], "b": [3, 4]}),
        lambda v: v.__setitem__("a", [5, 6]),
    ),
    "pandas df[c] += 1": (
        lambda: pd.DataFrame({"a": [1, 2], "b": [3, 4]}),
        lambda v: v.__setitem__("b", v["b"] + 1),
    ),
    "pandas string column cell": (
        frame_with_strings,
        lambda v: v.loc.__setitem__((0, "s"), "z"),
    ),
    "pandas string column missing value filled": (
        frame_with_strings,
        lambda v: v.loc.__setitem__((2, "s"), "w"),
    ),
    "pandas object column None becomes NaN": (
        lambda: pd.Series(["a", None], dtype=object),
        lambda v: v.__setitem__(1, float("nan")),
    ),
    "pandas object column element mutated": (
        lambda: pd.Series([[1], [2]]),
        lambda v: v[0].append(3),
    ),
    "pandas object column instance attribute": (
        lambda: pd.Series([Attrs(), Attrs()]),
        lambda v: setattr(v[1], "x", 5),
    ),
    "pandas string series item": (
        lambda: pd.Series(["a", "b"], dtype="str"),
        lambda v: v.__setitem__(0, "c"),
    ),
    "pandas string index value": (
        lambda: pd.Series([1, 2], index=pd.Index(["a", "b"], dtype="str")),
        lambda v: setattr(v, "index", pd.Index(["a", "c"], dtype="str")),
    ),
    "pandas categorical cell": (
        frame_with_categories,
        lambda v: v.loc.__setitem__((0, "c"), "v"),
    ),
    "pandas categorical categories": (
        frame_with_categories,
        lambda v: v.__setitem__("c", v["c"].cat.rename_categories(["U", "V"])),
    ),
    "pandas MultiIndex names": (
        frame_with_multiindex,
        lambda v: setattr(v.index, "names", ["key", "i"]),
    ),
    "pandas MultiIndex value": (frame_with_multiindex, replace_multiindex),
    "pandas nullable int set missing": (
        lambda: pd.Series([1, 2], dtype="Int64"),
        lambda v: v.__setitem__(0, pd.NA),
    ),
    "pandas datetime cell": (
        lambda: pd.Series(pd.to_datetime(["2024-01-01", "2024-01-02"])),
        lambda v: v.__setitem__(0, pd.Timestamp("2025-01-01")),
    ),
    "pandas interval index (walked)": (
        lambda: pd.Series([1, 2], index=pd.interval_range(0, 2)),
        lambda v: setattr(v, "index", pd.interval_range(0, 4, periods=2)),
    ),
    "sklearn fit": (fitted_model, lambda v: v.fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])),
    "object attribute": (Attrs, lambda v: setattr(v, "x", 2)),
    "object new attribute": (Attrs, lambda v: setattr(v, "y", 2)),
    "__slots__ attribute": (Slotted, lambda v: setattr(v, "x", 2)),
    "dict subclass item": (Registry, lambda v: v.__setitem__("k", 1)),
    "list subclass append": (Stack, lambda v: v.append(1)),
    "sklearn Bunch item": (sklearn_bunch, lambda v: v.data.__setitem__(0, 5.0)),
    "class attribute of a notebook class": (WithClassState, mutate_class_attribute),
    "closure cell rebound": (counter, lambda v: v()),
    "closure cell contents": (closure_over_list, lambda v: v("x")),
    "function default": (lambda: lambda acc=[]: acc, lambda v: v.__defaults__[0].append(1)),
    "function attribute": (lambda: lambda: None, lambda v: setattr(v, "cache", {})),
    "partial arguments": (
        lambda: functools.partial(print, [1]),
        lambda v: v.args[0].append(2),
    ),
    "deque append": (lambda: collections.deque([1]), lambda v: v.append(2)),
    "defaultdict item": (lambda: collections.defaultdict(list), lambda v: v["k"].append(1)),
    "bytearray": (lambda: bytearray(b"ab"), lambda v: v.extend(b"c")),
    "StringIO write": (io.StringIO, lambda v: v.write("text")),
}


@pytest.mark.parametrize(("make", "mutate"), list(MUTATIONS.values()), ids=list(MUTATIONS))
def test_in_place_mutation_changes_the_hash(make, mutate):
    value = make()
    before = digest(value)
    assert before is not None

    mutate(value)

    assert digest(value) != before


def test_a_write_through_the_numpy_array_a_frame_was_built_on_changes_the_frame():
    """A frame built without copying shares the array's memory: a write to the array is a
    write to the frame, and the two are linked so the monitor re-hashes both."""
    array = np.zeros((4, 2))
    frame = pd.DataFrame(array, copy=False)
    before = digest(frame)

    array[1, 1] = 7.0

    assert digest(frame) != before
    assert linked(frame, array)


def test_a_write_through_a_column_view_changes_the_frame():
    frame = pd.DataFrame({"a": np.zeros(4), "b": np.ones(4)})
    before = digest(frame)

    frame._mgr.blocks[0].values[0, 2] = 5.0  # bypasses pandas, as a C extension could

    assert digest(frame) != before


def test_how_pandas_groups_columns_into_blocks_is_not_part_of_the_hash():
    consolidated = pd.DataFrame({"a": [1, 2], "b": [3, 4], "s": ["x", "y"]})
    separate = pd.DataFrame({"a": [1, 2]})
    separate["b"] = [3, 4]
    separate["s"] = ["x", "y"]
    assert len(separate._mgr.blocks) > len(consolidated._mgr.blocks)

    assert digest(separate) == digest(consolidated)


def test_equal_strings_hash_equal_whether_or_not_cells_share_one_object():
    shared = "".join(["ab", "c"])
    one_object = pd.Series([shared, shared, shared], dtype="str")
    three_objects = pd.Series(["".join(["ab", "c"]) for _ in range(3)], dtype="str")
    assert one_object[0] is one_object[1]
    assert three_objects.array._ndarray[0] is not three_objects.array._ndarray[1]

    assert digest(one_object) == digest(three_objects)


def test_a_string_column_hashes_differently_from_an_object_column_of_the_same_strings():
    assert digest(pd.Series(["a", "b"], dtype="str")) != digest(pd.Series(["a", "b"], dtype=object))


def test_an_object_column_links_to_the_mutable_objects_in_it():
    inner = [1, 2]

    assert linked(pd.Series([inner, [3]]), inner)


def test_mutating_and_undoing_gives_the_original_hash():
    value = {"a": [1, 2]}
    before = digest(value)

    value["a"].append(3)
    value["a"].pop()

    assert digest(value) == before


def test_hashing_the_same_value_twice_gives_the_same_hash():
    value = {"df": pd.DataFrame({"a": [1.5]}), "arr": np.ones(3), "obj": Attrs()}

    assert digest(value) == digest(value)


# --- identity tokens: what links two variables -----------------------------------------------


def test_an_alias_links_to_the_original():
    a = [1, 2]
    b = a

    assert linked(a, b)


@pytest.mark.parametrize(
    "container",
    [
        lambda a: {"k": a},
        lambda a: [0, [a]],
        lambda a: (a,),
        lambda a: functools.partial(print, a),
        lambda a: np.array([a, None], dtype=object),
    ],
    ids=["dict value", "nested list", "tuple", "partial", "object array"],
)
def test_a_container_links_to_what_it_contains(container):
    a = [1, 2]

    assert linked(a, container(a))


def test_a_dict_subclass_links_to_its_items():
    data = np.zeros(3)

    assert linked(data, Registry(data=data))


def test_an_object_links_to_its_attribute_values():
    a = [1]
    holder = Attrs()
    holder.x = a

    assert linked(a, holder)


def test_a_closure_links_to_what_it_captures():
    data = {"k": 1}

    def read():
        return data

    assert linked(data, read)


@pytest.mark.parametrize(
    "view",
    [lambda a: a[2:5], lambda a: a[::2], lambda a: a.T, lambda a: a.reshape(2, 5)[1]],
    ids=["slice", "strided", "transpose", "view of a view"],
)
def test_a_numpy_view_links_to_its_base(view):
    arr = np.arange(10.0)

    assert linked(arr, view(arr))


def test_two_views_of_one_array_link_to_each_other():
    arr = np.arange(10.0)

    assert linked(arr[:3], arr[5:])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (3, 3),
        (10**6, 10**6),
        ("ab", "ab"),
        (None, None),
        (True, True),
        ((1, 2), (1, 2)),
        (np.float64(1.0), np.float64(1.0)),
        (np.int64(3), np.int64(3)),
        (np.dtype("float64"), np.dtype("float64")),
    ],
    ids=repr,
)
def test_equal_immutable_values_do_not_link(a, b):
    assert not linked([a], [b])


def test_shared_numpy_dtypes_do_not_link_arrays_or_containers():
    """Every float64 array refers to the same dtype object: that is no reason to link them."""
    dtype = np.dtype("float64")

    assert not linked(np.zeros(3), np.ones(3))
    assert not linked({"t": dtype}, [dtype, np.float64(2.0)])
    assert not linked(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0]}))


@pytest.mark.parametrize(
    "shared",
    [np, len, int, pd.DataFrame, json.dumps, np.mean, pd.NA, NotImplemented],
    ids=["module", "builtin", "builtin class", "library class", "library function",
         "numpy dispatcher", "pandas.NA", "NotImplemented"],
)  # fmt: skip
def test_global_singletons_do_not_link(shared):
    """Pickled by name, so each variable gets the same object back wherever it is stored."""
    assert not linked([shared], {"k": shared})


def test_a_notebook_function_links_the_variables_that_hold_it():
    def helper():
        return 1

    helper.__module__ = "__main__"

    assert linked([helper], {"k": helper})


def test_a_closure_made_by_a_library_links_what_it_captures():
    def steps():
        yield 1

    steps.__module__ = "__main__"

    assert linked(contextlib.contextmanager(steps), steps)


def test_equal_lists_that_are_different_objects_do_not_link():
    assert not linked([1, 2], [1, 2])


# --- storability -----------------------------------------------------------------------------


def generator():
    yield 1


@pytest.fixture
def open_file(tmp_path):
    with open(tmp_path / "f.txt", "w") as handle:
        yield handle


@pytest.fixture
def open_socket():
    with socket.socket() as sock:
        yield sock


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (generator, "generator"),
        (lambda: (x for x in range(3)), "generator"),
        (threading.Lock, "lock"),
        (threading.RLock, "RLock"),
    ],
    ids=["generator", "generator expression", "lock", "rlock"],
)
def test_unstorable_values_say_why_and_have_no_hash(make, reason):
    result = profile(make())

    assert reason in result.unstorable
    assert "cannot be serialized" in result.unstorable
    assert result.hash is None


def test_an_open_file_is_unstorable(open_file):
    assert profile(open_file).unstorable == "open file cannot be serialized"


def test_a_socket_is_unstorable(open_socket):
    assert "socket" in profile(open_socket).unstorable


def test_a_container_with_an_unstorable_element_is_unstorable():
    result = profile({"ok": [1, 2], "bad": [generator()]})

    assert result.unstorable == "generator cannot be serialized"
    assert result.hash is None


def test_an_unstorable_set_element_makes_the_set_unstorable():
    lock = threading.Lock()

    assert profile({1, lock}).unstorable != ""


@pytest.mark.parametrize(
    "value",
    [
        io.StringIO("text"),
        io.BytesIO(b"bytes"),
        lambda x: x + 1,
        generator,
        print,
        np,
        functools.partial(int, base=2),
        collections.OrderedDict(a=1),
        Attrs().__init__,
    ],
    ids=["StringIO", "BytesIO", "lambda", "function", "builtin", "module", "partial",
         "OrderedDict", "bound method"],
)  # fmt: skip
def test_storable_values_have_no_reason_and_a_hash(value):
    result = profile(value)

    assert result.unstorable == ""
    assert result.hash is not None


# --- cycles ----------------------------------------------------------------------------------


def test_a_list_containing_itself_hashes_and_links():
    lst = [1]
    lst.append(lst)

    result = profile(lst)

    assert result.hash is not None
    assert id(lst) in result.tokens


def test_equal_cycles_hash_equal_and_differ_from_the_unrolled_value():
    def cycle():
        d = {"name": "n"}
        d["self"] = d
        return d

    assert digest(cycle()) == digest(cycle())
    assert digest(cycle()) != digest({"name": "n", "self": {"name": "n", "self": None}})


class TreeNode:
    def __init__(self, name, parent=None):
        self.name, self.parent, self.children = name, parent, set()
        if parent is not None:
            parent.children.add(self)


def tree() -> TreeNode:
    root = TreeNode("root")
    for i in range(3):
        inner = TreeNode(f"inner{i}", root)
        for j in range(3):
            TreeNode(f"leaf{i}{j}", inner)
    return root


def test_a_cycle_through_a_set_is_walked_once():
    """Children in a set pointing back to their parent: each set element used to walk the
    parent again, and its set, without end."""
    root = tree()

    result = profile(root)

    assert result.unstorable == ""
    assert result.hash == digest(tree())


class Task:
    """A task of a scheduler-like graph: each one keeps the set of tasks it waits for."""

    def __init__(self, waits_for: frozenset):
        self.waits_for = waits_for


def layered_tasks(depth: int) -> Task:
    """Two tasks per layer, both waiting for the same two of the next layer: walking each set
    element on its own visits 2**depth paths."""
    below = frozenset()
    for _ in range(depth):
        below = frozenset({Task(below), Task(below)})
    return Task(below)


def test_a_graph_shared_by_the_elements_of_nested_sets_is_left_unhashed_not_walked_forever():
    """A dask client's task states are such a graph: the cell that made it never returned."""
    result = profile(layered_tasks(60))

    assert result.hash is None
    assert result.unstorable == ""


def test_a_shallow_graph_shared_through_sets_is_still_hashed():
    assert profile(layered_tasks(6)).hash == profile(layered_tasks(6)).hash is not None


def test_a_change_deep_in_a_cycle_through_a_set_changes_the_hash():
    root = tree()
    before = digest(root)

    leaf = next(iter(next(iter(root.children)).children))
    leaf.name = "renamed"

    assert digest(root) != before


def test_objects_referring_to_each_other_hash():
    a, b = Attrs(), Attrs()
    a.x, b.x = b, a

    assert digest(a) is not None
    assert linked(a, b)


def test_a_deep_chain_does_not_hit_the_recursion_limit():
    value: list = []
    for _ in range(sys.getrecursionlimit() * 2):
        value = [value]

    assert digest(value) is not None


# --- hostile objects never break the walk ----------------------------------------------------


class EqRaises:
    def __eq__(self, other):
        raise RuntimeError("no comparisons")

    __hash__ = object.__hash__


class HashTurnsHostile:
    hostile = False

    def __hash__(self):
        if HashTurnsHostile.hostile:
            raise RuntimeError("no hashing")
        return 1


class HashLies:
    def __hash__(self):
        import random

        return random.randrange(1 << 30)


class ReduceRaises:
    def __reduce_ex__(self, protocol):
        raise RuntimeError("no pickling")


class ReduceReturnsGarbage:
    def __reduce_ex__(self, protocol):
        return 42


class ReduceReturnsBadItems:
    def __reduce_ex__(self, protocol):
        return (ReduceReturnsBadItems, (), None, 5, object())


class ReduceReturnsAString:
    def __reduce_ex__(self, protocol):
        return "ReduceReturnsAString"


class GetattrRaises:
    __slots__ = ("x",)

    def __getattr__(self, name):
        raise KeyError(name)


class GetattrLies:
    def __getattr__(self, name):
        return 42


class GetattributeRaises:
    def __getattribute__(self, name):
        raise RuntimeError(name)


class ClassLies:
    @property
    def __class__(self):
        return list


class DictPropertyLies:
    @property
    def __dict__(self):
        return [1, 2, 3]


class UnhashableMeta(type):
    def __eq__(cls, other):
        raise RuntimeError("no comparisons")

    __hash__ = None


class OfUnhashableMeta(metaclass=UnhashableMeta):
    pass


class HashRaisingMeta(type):
    def __hash__(cls):
        raise RuntimeError("no hashing")


class OfHashRaisingMeta(metaclass=HashRaisingMeta):
    pass


class ListWithBrokenIter(list):
    def __iter__(self):
        raise RuntimeError("no iteration")


HOSTILE = {
    "__eq__ raises": EqRaises,
    "__hash__ lies": HashLies,
    "__reduce_ex__ raises": ReduceRaises,
    "__reduce_ex__ returns an int": ReduceReturnsGarbage,
    "__reduce_ex__ returns bad items": ReduceReturnsBadItems,
    "__reduce_ex__ returns a string": ReduceReturnsAString,
    "__getattr__ raises KeyError": GetattrRaises,
    "__getattr__ lies": GetattrLies,
    "__getattribute__ raises": GetattributeRaises,
    "__class__ lies": ClassLies,
    "__dict__ lies": DictPropertyLies,
    "metaclass makes the class unhashable": OfUnhashableMeta,
    "metaclass __hash__ raises": OfHashRaisingMeta,
    "list subclass __iter__ raises": lambda: ListWithBrokenIter([1]),
}


@pytest.mark.parametrize("make", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_objects_never_raise_out_of_profile(make):
    hostile = make()
    values = [hostile, [1, hostile], {"k": hostile}]
    if type(hostile).__hash__ is not None:
        values += [{hostile}, {hostile: 1}]

    for value in values:
        assert isinstance(profile(value), Profile)


def test_hostile_hash_on_set_elements_and_dict_keys_is_never_called():
    element = HashTurnsHostile()
    value = {"set": {element}, "dict": {element: 1}}
    HashTurnsHostile.hostile = True
    try:
        result = profile(value)
    finally:
        HashTurnsHostile.hostile = False

    assert result.hash is not None
    assert result.unstorable == ""


def test_an_object_that_cannot_be_inspected_is_unstorable_and_named():
    result = profile([1, ReduceRaises()])

    assert result.hash is None
    assert "ReduceRaises" in result.unstorable


# --- size estimates --------------------------------------------------------------------------

CUSTOMERS = [f"customer-{i}" for i in range(5_000)]

SIZED = {
    "large float array": lambda: np.random.default_rng(0).random(500_000),
    "large int8 array": lambda: np.zeros(1_000_000, dtype=np.int8),
    "list of floats": lambda: [i / 7 for i in range(50_000)],
    "list of ints": lambda: list(range(50_000)),
    "list of strings": lambda: [f"item-{i}" for i in range(50_000)],
    "list of records": lambda: [{"id": i, "name": f"n{i}", "score": i / 7} for i in range(5_000)],
    "list of pairs": lambda: [(i, str(i)) for i in range(10_000)],
    "dataframe": lambda: pd.DataFrame({"a": np.arange(100_000.0), "b": np.arange(100_000)}),
    "frame of a few shared strings": lambda: pd.DataFrame(
        {
            "s": np.random.default_rng(0).choice(
                np.array(["north", "south", None], dtype=object), 200_000
            )
        }
    ),
    "frame of distinct strings": lambda: pd.DataFrame(
        {"s": pd.array([f"customer-{i}" for i in range(200_000)], dtype="str")}
    ),
    "frame of 5000 strings, each in 40 cells": lambda: pd.DataFrame(
        {"s": np.random.default_rng(0).choice(np.array(CUSTOMERS, dtype=object), 200_000)}
    ),
    "frame with categorical and datetime columns": lambda: pd.DataFrame(
        {
            "c": pd.Categorical(np.random.default_rng(0).choice(["u", "v", "w"], 100_000)),
            "t": pd.date_range("2024-01-01", periods=100_000, freq="min"),
        }
    ),
    "frame with a MultiIndex": lambda: pd.DataFrame(
        {"v": np.arange(100_000.0)},
        index=pd.MultiIndex.from_product([range(1_000), [f"k{i}" for i in range(100)]]),
    ),
    "object column of mixed scalars": lambda: pd.Series([1, "a", 2.5, None] * 25_000),
}


@pytest.mark.parametrize("make", list(SIZED.values()), ids=list(SIZED))
def test_size_estimate_is_within_2x_of_the_pickled_size(make):
    value = make()

    estimate, actual = profile(value).size, len(dill.dumps(value))

    assert actual / 2 <= estimate <= actual * 2


def test_a_lone_slice_inside_a_value_is_sized_as_the_slice_the_store_keeps():
    numpy = pytest.importorskip("numpy")
    base = numpy.zeros(100_000)
    estimated = profile({"head": base[:2]}).size
    _, payload = encode_group({"box": {"head": base[:2]}})
    assert len(payload) / 2 <= estimated <= 2 * len(payload) < base.nbytes


def test_two_slices_of_one_array_in_a_value_are_sized_as_the_array_once():
    numpy = pytest.importorskip("numpy")
    base = numpy.zeros(100_000)
    estimated = profile({"v": base[:2], "w": base[5:9]}).size
    _, payload = encode_group({"box": {"v": base[:2], "w": base[5:9]}})
    assert base.nbytes <= estimated <= 2 * len(payload)


def test_an_array_and_its_views_in_one_value_are_sized_once():
    numpy = pytest.importorskip("numpy")
    base = numpy.zeros(100_000)
    assert profile({"a": base, "v": base[:2], "w": base[5:9]}).size < 1.5 * base.nbytes


def test_a_variable_that_is_a_slice_is_sized_as_the_slice_its_npy_holds():
    numpy = pytest.importorskip("numpy")
    base = numpy.zeros(100_000)
    assert profile(base[:2]).size < 1_000
