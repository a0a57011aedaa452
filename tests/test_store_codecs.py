"""Codecs: the right codec for each value, exact round trips, shared references kept."""

import dataclasses
import io
import pickle
import subprocess
import sys
import tracemalloc
import types
from pathlib import Path

import dill
import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import as_strided

import nbelastic
from nbelastic.errors import (
    CheckpointFormatError,
    RestoreError,
    StoreWriteError,
    UnserializableError,
)
from nbelastic.store import (
    CODECS,
    SAFE_CODECS,
    BlobStore,
    decode_group,
    encode_group,
    load_group,
    store_group,
)
from nbelastic.store.codecs import _RefusingMain


def roundtrip(values):
    codec, payload = encode_group(values)
    return codec, decode_group(codec, payload, list(values))


class MyInt(int):
    pass


class MyDict(dict):
    pass


class Tagged(np.ndarray):
    pass


class Halves:
    """Pickles as two overlapping views of a base it makes anew each time."""

    def __reduce__(self):
        base = np.arange(5)
        return tuple, ((base[:3], base[2:]),)


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)


def square(x):
    return x * x


def test_codec_names():
    assert CODECS == ("json", "npy", "module", "dill", "pickle")
    assert frozenset({"json", "npy"}) == SAFE_CODECS


JSON_VALUES = [
    None,
    True,
    False,
    0,
    -5,
    2**100,
    1.5,
    -0.0,
    1e300,
    1.0,
    "",
    "héllo wörld ✓ 😀 \n\t\"'\\",
    [],
    [1, [2.5, ["x", None]], True],
    {},
    {"b": 1, "a": [True, {"z": 0.1, "y": "s"}]},
    {"1": 1, "": None},
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=repr)
def test_json_round_trip_is_exact(value):
    codec, out = roundtrip({"v": value})
    assert codec == "json"
    # repr tells int from float from bool, list from tuple, and shows dict order and -0.0
    assert type(out["v"]) is type(value)
    assert repr(out["v"]) == repr(value)


def _shared_list():
    inner = [1]
    return [inner, inner]


def _cyclic_list():
    cycle = [1]
    cycle.append(cycle)
    return cycle


NOT_JSON = {
    "tuple": (1, 2),
    "tuple in list": [1, (2,)],
    "nan": float("nan"),
    "inf in list": [float("inf")],
    "int keys": {1: "a"},
    "set": {1, 2},
    "bytes": b"abc",
    "int subclass": MyInt(3),
    "dict subclass": MyDict(a=1),
    "shared sublist": _shared_list(),
    "cycle": _cyclic_list(),
    "lone surrogate": "\ud800",
    "numpy scalar": np.float64(1.0),
    "complex": 1j,
}


@pytest.mark.parametrize("name", NOT_JSON)
def test_values_json_would_change_go_to_dill(name):
    value = NOT_JSON[name]
    codec, out = roundtrip({"v": value})
    assert codec == "dill"
    assert type(out["v"]) is type(value)
    assert repr(out["v"]) == repr(value)


def test_int_too_long_for_json_goes_to_dill():
    value = 10**5000  # json.loads refuses ints over 4300 digits by default
    codec, out = roundtrip({"v": value})
    assert codec == "dill"
    assert out["v"] == value


def test_shared_sublist_keeps_identity():
    _, out = roundtrip({"v": _shared_list()})
    assert out["v"][0] is out["v"][1]


def test_cycle_keeps_identity():
    _, out = roundtrip({"v": _cyclic_list()})
    assert out["v"][1] is out["v"]


ARRAYS = {
    "int8": np.arange(-3, 3, dtype=np.int8),
    "uint64": np.array([0, 2**64 - 1], dtype=np.uint64),
    "float16": np.array([1.5, -2.0], dtype=np.float16),
    "big-endian float32": np.array([1.0, np.nan, np.inf], dtype=">f4"),
    "complex128": np.array([1 + 2j, -1j]),
    "bool": np.array([True, False]),
    "unicode": np.array(["a", "héllo"]),
    "bytes": np.array([b"ab", b"c"]),
    "datetime64": np.array(["2024-01-01T12:00:00.123456789", "NaT"], dtype="datetime64[ns]"),
    "timedelta64": np.array([1, 2], dtype="timedelta64[s]"),
    "structured": np.array([(1, (2.0, 3.0)), (4, (5.0, 6.0))], dtype=[("a", "i4"), ("b", "f8", 2)]),
    "0-d": np.array(3.5),
    "empty 2-d": np.zeros((0, 3)),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "strided view": np.arange(10)[::3],
}


@pytest.mark.parametrize("name", ARRAYS)
def test_npy_round_trip_is_exact(name):
    value = ARRAYS[name]
    codec, payload = encode_group({"v": value})
    assert codec == "npy"
    out = decode_group(codec, payload, ["v"])["v"]
    assert type(out) is np.ndarray
    assert out.dtype == value.dtype
    assert out.shape == value.shape
    if value.flags.contiguous or value.flags.f_contiguous:  # others come back C-ordered
        assert out.flags.f_contiguous == value.flags.f_contiguous
        assert out.flags.c_contiguous == value.flags.c_contiguous
    assert out.tobytes() == value.tobytes()  # bit for bit, NaN and NaT included


def test_npy_payload_holds_no_pickle():
    value = ARRAYS["structured"]
    codec, payload = encode_group({"v": value})
    assert codec == "npy"
    assert payload.startswith(b"\x93NUMPY")
    out = np.load(io.BytesIO(payload), allow_pickle=False)
    assert np.array_equal(out, value)


NOT_NPY = {
    "object dtype": np.array([1, "a", None], dtype=object),
    "structured with object": np.array([(1, "x")], dtype=[("a", "i4"), ("b", "O")]),
    "ndarray subclass": np.arange(3).view(Tagged),
    "masked": np.ma.masked_array([1, 2], mask=[False, True]),
    "dtype metadata": np.zeros(2, dtype=np.dtype("i4", metadata={"unit": "m"})),
    "string dtype": np.array(["a", "bc"], dtype=np.dtypes.StringDType()),
}


@pytest.mark.parametrize("name", NOT_NPY)
def test_arrays_npy_cannot_hold_go_to_dill(name):
    value = NOT_NPY[name]
    codec, out = roundtrip({"v": value})
    assert codec == "dill"
    assert type(out["v"]) is type(value)
    assert out["v"].dtype == value.dtype
    assert np.array_equal(np.asarray(out["v"]), np.asarray(value))


def test_memmap_is_not_copied_into_npy(tmp_path):
    # dill pickles a memmap's open mmap and fails: the planner replays the cell that mapped it
    value = np.memmap(tmp_path / "m.bin", dtype="i4", mode="w+", shape=(3,))
    with pytest.raises(UnserializableError, match="^v: memmap cannot be serialized"):
        encode_group({"v": value})


def test_module_is_stored_by_name():
    codec, payload = encode_group({"m": types})
    assert (codec, payload) == ("module", b"types")
    assert decode_group(codec, payload, ["m"])["m"] is types


def test_module_not_importable_by_its_name_goes_to_dill():
    fake = types.ModuleType("nbelastic_no_such_module")
    fake.x = 1
    codec, _ = encode_group({"m": fake})
    assert codec == "dill"


def test_missing_module_is_a_restore_error():
    with pytest.raises(RestoreError, match="m: cannot load.*ModuleNotFoundError"):
        decode_group("module", b"nbelastic_no_such_module", ["m"])


def test_aliases_keep_identity():
    shared = [1, 2]
    codec, out = roundtrip({"a": shared, "b": shared})
    assert codec == "dill"
    assert out["b"] is out["a"]
    assert out["a"] == [1, 2]


def test_alias_inside_a_container_keeps_identity():
    shared = [1, 2]
    _, out = roundtrip({"d": {"k": shared}, "l": shared})
    assert out["d"]["k"] is out["l"]


def test_group_payload_does_not_depend_on_name_order():
    shared = [1]
    assert encode_group({"a": shared, "b": shared}) == encode_group({"b": shared, "a": shared})


def test_decode_returns_the_requested_names_in_order():
    shared = [1]
    codec, payload = encode_group({"a": shared, "b": shared})
    assert list(decode_group(codec, payload, ["b", "a"])) == ["b", "a"]


def _views(base):
    return {
        "reversed": base[::-1],
        "column": base[:, 1],
        "view of view": base[1:][:, ::-2],
        "reversed both": base[::-1, ::-1],
        "reinterpreted": base.ravel(order="K").view(np.uint8)[5:17],
        "transposed": base.T,
    }


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("kind", list(_views(np.zeros((2, 2)))))
def test_numpy_views_keep_sharing_memory(order, kind):
    base = np.array(np.arange(24.0).reshape(4, 6), order=order)
    view = _views(base)[kind]
    codec, out = roundtrip({"a": base, "v": view})
    assert codec == "dill"
    a, v = out["a"], out["v"]
    assert np.array_equal(a, base)
    assert np.array_equal(v, view)
    assert v.dtype == view.dtype and v.strides == view.strides
    assert np.shares_memory(a, v)  # fails if the view came back as a copy
    a += 100
    rederived = _views(a)[kind]
    assert v.__array_interface__["data"] == rederived.__array_interface__["data"]
    assert np.array_equal(v, rederived)


def test_views_inside_one_variable_share_memory():
    base = np.arange(10)
    codec, out = roundtrip({"parts": [base[:5], base[3:]]})
    assert codec == "dill"
    first, second = out["parts"]
    assert np.shares_memory(first, second)
    first[4] = 99
    assert second[1] == 99


def test_view_alias_keeps_identity_and_read_only_flag():
    base = np.arange(6)
    view = base[1:4]
    view.flags.writeable = False
    _, out = roundtrip({"a": base, "v": view, "w": view})
    assert out["w"] is out["v"]
    assert not out["v"].flags.writeable
    assert out["a"].flags.writeable


def test_object_dtype_view_is_copied_correctly():
    base = np.array([[1, "a"], [None, 2.5]], dtype=object)
    _, out = roundtrip({"a": base, "v": base[:, 1]})
    assert list(out["v"]) == ["a", 2.5]


def test_strided_trick_view_is_copied_correctly():
    base = np.arange(5)
    windows = as_strided(base, shape=(3, 3), strides=(8, 8))
    _, out = roundtrip({"a": base, "w": windows})
    assert np.array_equal(out["w"], windows)


def test_a_lone_slice_inside_a_value_is_stored_as_its_own_elements():
    base = np.arange(200_000.0)
    codec, payload = encode_group({"box": {"coef": base[10:12]}})
    assert codec == "dill"
    assert len(payload) < 1_000  # the base alone is 1.6 MB
    restored = decode_group(codec, payload, ["box"])["box"]["coef"]
    assert np.array_equal(restored, [10.0, 11.0])


def test_a_lone_slice_in_a_fitted_model_is_stored_as_its_own_elements():
    linear_model = pytest.importorskip("sklearn.linear_model")
    features = np.random.default_rng(0).random((100_000, 2))
    model = linear_model.LinearRegression().fit(features, features @ [3.0, 1.0])
    assert isinstance(model.coef_.base, np.ndarray)  # what made the model's blob large
    _, out = roundtrip({"model": model})
    assert len(encode_group({"model": model})[1]) < 5_000
    assert np.array_equal(out["model"].coef_, model.coef_)


def test_two_views_of_one_base_keep_sharing_memory_after_restore():
    base = np.arange(100_000)
    codec, out = roundtrip({"a": base[:5], "b": base[3:9]})
    assert codec == "dill"
    assert np.array_equal(out["a"], base[:5]) and np.array_equal(out["b"], base[3:9])
    out["a"][4] = -1
    assert out["b"][1] == -1


def test_a_view_named_before_its_base_keeps_sharing_memory_after_restore():
    base = np.arange(100_000)
    _, out = roundtrip({"a": base[2:4], "b": base})
    assert np.array_equal(out["b"], base)
    out["b"][2] = -1
    assert out["a"][0] == -1


def test_views_a_reduce_makes_of_one_base_keep_sharing_memory():
    _, out = roundtrip({"h": Halves()})
    first, second = out["h"]
    assert np.array_equal(first, [0, 1, 2]) and np.array_equal(second, [2, 3, 4])
    first[2] = -1
    assert second[0] == -1


def test_only_views_whose_base_is_shared_keep_it():
    lone, shared = np.arange(100_000), np.arange(100_000)
    codec, payload = encode_group({"a": lone[:2], "b": shared[:3], "c": shared})
    assert len(payload) < shared.nbytes + 1_000  # not lone.nbytes as well
    out = decode_group(codec, payload, ["a", "b", "c"])
    assert np.array_equal(out["a"], [0, 1])
    assert np.shares_memory(out["b"], out["c"])


def test_pandas_dataframe_round_trips():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"], "z": [0.5, None, 2.0]})
    codec, out = roundtrip({"df": frame})
    assert codec == "dill"
    pd.testing.assert_frame_equal(out["df"], frame)


def test_user_class_instance_round_trips():
    _, out = roundtrip({"p": Point(1, [2])})
    assert out["p"] == Point(1, [2])


def test_functions_round_trip_with_dill():
    codec, out = roundtrip({"f": lambda x: x + 1, "g": square})
    assert codec == "dill"
    assert out["f"](1) == 2
    assert out["g"](3) == 9


def test_main_function_keeps_main_globals_by_reference():
    main = sys.modules["__main__"].__dict__
    exec("def nbelastic_probe(x):\n    return x + NBELASTIC_K\n", main)
    try:
        codec, payload = encode_group({"f": main.pop("nbelastic_probe")})
        assert codec == "dill"
        f = decode_group(codec, payload, ["f"])["f"]
        assert f.__globals__ is main
        main["NBELASTIC_K"] = 10
        assert f(1) == 11
    finally:
        main.pop("NBELASTIC_K", None)


def test_generator_is_unserializable():
    with pytest.raises(UnserializableError, match=r"^g: generator cannot be serialized \("):
        encode_group({"g": (i for i in range(3))})


def test_unserializable_member_of_a_group_is_named():
    shared = [1]
    values = {"a": shared, "b": shared, "g": (i for i in shared)}
    with pytest.raises(UnserializableError, match=r"^g \(linked with a, b\): generator"):
        encode_group(values)


def test_too_deep_is_unserializable():
    deep = []
    for _ in range(100_000):
        deep = [deep, ()]
    with pytest.raises(UnserializableError, match="nested too deeply"):
        encode_group({"deep": deep})


def test_empty_group_is_a_caller_error():
    with pytest.raises(ValueError):
        encode_group({})


def test_unknown_codec_is_a_format_error():
    with pytest.raises(CheckpointFormatError, match="unknown codec 'parquet'.*upgrade"):
        decode_group("parquet", b"", ["x"])


def test_single_value_codec_with_many_names_is_a_format_error():
    with pytest.raises(CheckpointFormatError, match="exactly one variable"):
        decode_group("json", b"1", ["a", "b"])


def test_dill_blob_with_other_names_is_a_format_error():
    codec, payload = encode_group({"a": (1,)})
    with pytest.raises(CheckpointFormatError, match="other variables"):
        decode_group(codec, payload, ["b"])


def test_plain_values_never_import_numpy():
    code = (
        "import sys\n"
        "from nbelastic.store import decode_group, encode_group\n"
        "for v in ({'x': [1, 'a']}, {'t': (1,), 'f': len}):\n"
        "    decode_group(*encode_group(v), list(v))\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
    )
    repo = Path(nbelastic.__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo)


def stored_in(tmp_path, values):
    """``store_group`` into a real BlobStore: (codec, key, payload size, store)."""
    store = BlobStore(tmp_path / "sidecar")
    return (*store_group(store, values), store)


def loaded(store, key, names):
    with store.open(key) as (codec, stream):
        return load_group(codec, stream, names)


def test_store_group_writes_the_blob_encode_group_makes(tmp_path):
    frame = pd.DataFrame({"x": np.arange(5), "s": ["a", None, "b", "c", "d"]})
    for values in ({"a": np.arange(6).reshape(2, 3)}, {"df": frame}, {"l": [1, "x"]}):
        codec, key, size, store = stored_in(tmp_path, values)
        assert store.get(key) == encode_group(values)
        assert size == len(encode_group(values)[1])


def test_npy_blob_is_byte_for_byte_what_numpy_save_writes():
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    for value in (
        np.arange(10),
        fortran,
        np.arange(12).reshape(3, 4)[:, ::2],
        np.zeros(3, dtype=[("a", "<i4", (2,)), ("b", "S3")]),
        np.zeros(4, dtype="M8[ns]"),
        np.zeros(4, dtype=">i4"),
        np.array(5.0),
        np.zeros((0, 3)),
    ):
        expected = io.BytesIO()
        np.save(expected, value, allow_pickle=False)
        assert encode_group({"v": value}) == ("npy", expected.getvalue())


@pytest.mark.parametrize(
    "value",
    [
        np.random.default_rng(0).normal(size=4_000_000),
        np.asfortranarray(np.random.default_rng(0).normal(size=(1_000_000, 4))),
        pd.DataFrame({c: np.random.default_rng(0).normal(size=1_000_000) for c in "abcd"}),
    ],
    ids=["array", "fortran array", "numeric frame"],
)
def test_saving_and_loading_a_large_value_never_copies_it(tmp_path, value):
    size = 32_000_000
    tracemalloc.start()
    try:
        _, key, _, store = stored_in(tmp_path, {"v": value})
        _, saving = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        out = loaded(store, key, ["v"])["v"]
        after, loading = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert saving < 0.05 * size
    assert loading - after < 0.05 * size  # the loaded value itself, nothing besides
    assert after >= size
    assert np.array_equal(np.asarray(out), np.asarray(value))


def test_pandas_string_columns_load_with_dill():
    frame = pd.DataFrame({"s": ["a", None, "b"] * 10, "i": pd.RangeIndex(30)})[::2]
    codec, payload = encode_group({"df": frame})
    assert codec == "dill"
    pd.testing.assert_frame_equal(dill.loads(payload)["df"], frame)


def test_main_functions_inside_containers_are_still_pickled_by_value():
    main = sys.modules["__main__"].__dict__
    exec("class NbelasticShape:\n    sides = 3\n", main)
    exec("def nbelastic_area(x):\n    return x * NbelasticShape.sides\n", main)
    shape, area = main.pop("NbelasticShape"), main.pop("nbelastic_area")
    try:
        codec, payload = encode_group({"d": {"f": [area], "s": shape()}})
        assert codec == "dill"
        out = decode_group(codec, payload, ["d"])["d"]
        assert out["s"].sides == 3 and out["f"][0].__globals__ is main
    finally:
        main.pop("NbelasticShape", None)


def test_types_dill_registers_keep_their_dill_meaning():
    tagged = np.arange(3).view(Tagged)
    tagged.unit = "m"
    _, out = roundtrip({"m": dataclasses.MISSING, "t": tagged, "r": range(2, 9, 3), "s": slice(1)})
    assert out["m"] is dataclasses.MISSING
    assert out["t"].unit == "m" and type(out["t"]) is Tagged
    assert (out["r"], out["s"]) == (range(2, 9, 3), slice(1))


def test_plain_pickle_refuses_main_even_split_across_writes():
    sink = io.BytesIO()
    stream = _RefusingMain(sink)
    stream.write(b"c__ma")
    with pytest.raises(pickle.PicklingError, match="__main__"):
        stream.write(b"in__\nFoo\n")
    stream = _RefusingMain(io.BytesIO())
    stream.write(b"__mai")
    stream.write(b"n_ and more")
    with pytest.raises(pickle.PicklingError):
        stream.write(memoryview(b"x__main__"))


def test_a_failing_store_is_not_mistaken_for_an_unpicklable_value(tmp_path):
    (tmp_path / "sidecar").write_text("not a directory")
    with pytest.raises(StoreWriteError):
        store_group(BlobStore(tmp_path / "sidecar"), {"t": (1, 2)})


def test_a_group_pickled_twice_to_keep_a_view_sharing_leaves_one_blob(tmp_path):
    base = np.arange(100_000)
    _, key, _, store = stored_in(tmp_path, {"a": base[2:4], "b": base})
    blobs = [path for path in (tmp_path / "sidecar").rglob("*") if path.is_file()]
    assert blobs == [store.path(key)]
    out = loaded(store, key, ["a", "b"])
    assert np.shares_memory(out["a"], out["b"])


def test_masked_arrays_and_methods_found_by_name_skip_dills_python_pickler(monkeypatch):
    import nbelastic.store.codecs as codecs

    monkeypatch.setattr(codecs, "_Pickler", None)  # dill's pure-Python pickler: never called
    frame = pd.DataFrame({"a": [1, 2]})
    masked = np.ma.masked_array([1.0, 2.0], mask=[0, 1])
    codec, out = roundtrip({"frame": frame, "total": frame.sum, "masked": masked})
    assert codec == "dill"
    assert out["total"].__self__ is out["frame"]
    assert out["masked"].mask.tolist() == [False, True]


def test_what_dill_pickled_before_does_not_send_arrays_to_its_python_pickler(monkeypatch):
    import nbelastic.store.codecs as codecs

    dill.dumps([np.add, np.dtype("f8"), np.arange(3).view(np.matrix), pd.DataFrame({"a": [1.0]})])
    monkeypatch.setattr(codecs, "_DILL_TYPES", frozenset())  # as if first asked only now
    monkeypatch.setattr(codecs, "_Pickler", None)  # dill's pure-Python pickler: never called
    codec, out = roundtrip({"a": np.arange(4.0), "masked": np.ma.masked_array([1.0], mask=[1])})
    assert codec == "dill"
    assert out["a"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_library_class_dill_cannot_look_up_is_pickled_by_reference():
    torch = pytest.importorskip("torch")
    main = sys.modules["__main__"].__dict__
    exec("def nbelastic_lr(optimizer):\n    return optimizer.param_groups[0]['lr']\n", main)
    lr = main.pop("nbelastic_lr")  # a notebook function makes the group go through dill
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    codec, out = roundtrip({"SGD": torch.optim.SGD, "lr": lr, "optimizer": optimizer})
    assert codec == "dill"
    assert out["SGD"] is torch.optim.SGD and type(out["optimizer"]) is torch.optim.SGD
    assert out["lr"](out["optimizer"]) == 0.5
