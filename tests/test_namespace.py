"""Which names are the user's, and which a cell bound or deleted: found by comparing object
ids in C, so a cell's watching does not grow with the number of variables alive."""

from __future__ import annotations

from types import SimpleNamespace

import nbformat
import pytest
from conftest import describe_namespace

from nbelastic.driver import Kernel
from nbelastic.kernel.namespace import Bindings, UserVariables

REPLAY = {"plan": "recompute-all"}


def changes(namespace: dict, change) -> tuple[list[str], list[str]]:
    before = Bindings.of(namespace)
    change(namespace)
    bound, deleted = before.changes(Bindings.of(namespace))
    return sorted(bound), sorted(deleted)


def test_an_unchanged_namespace_has_no_changes():
    assert changes({"a": 1, "b": [2]}, lambda ns: None) == ([], [])


def test_a_name_holding_another_object_is_bound():
    assert changes({"a": [1], "b": [2]}, lambda ns: ns.update(b=[2])) == (["b"], [])


def test_a_name_changed_in_place_is_not_bound():
    assert changes({"a": [1]}, lambda ns: ns["a"].append(2)) == ([], [])


def test_a_new_name_is_bound():
    assert changes({"a": 1}, lambda ns: ns.update(z=0)) == (["z"], [])


def test_a_deleted_name_is_deleted_and_the_others_still_compared():
    def change(ns):
        del ns["a"]
        ns["c"] = [3]

    assert changes({"a": 1, "b": [2], "c": [3]}, change) == (["c"], ["a"])


def test_a_name_deleted_and_bound_again_is_bound():
    def change(ns):
        value = ns.pop("a")
        ns["b"] = [0]
        ns["a"] = value

    assert changes({"a": [1], "b": [2]}, change) == (["b"], [])


def shell(user_ns: dict, hidden: dict | None = None) -> SimpleNamespace:
    """The two dicts of an IPython shell that UserVariables reads."""
    return SimpleNamespace(user_ns=user_ns, user_ns_hidden=hidden or {})


def test_ipython_names_and_dunders_are_not_user_variables():
    variables = UserVariables(shell({"_i3": "x = 1", "_": 5, "__name__": "__main__", "x": 1}))
    assert ("x" in variables, "_i3" in variables, "_" in variables) == (True, False, False)
    assert "__name__" not in variables and list(variables) == ["x"]


def test_a_name_ipython_put_there_counts_once_the_user_rebinds_it():
    ipython_display = object()
    namespace = {"display": ipython_display}
    variables = UserVariables(shell(namespace, {"display": ipython_display}))
    assert "display" not in variables
    namespace["display"] = "mine"
    assert variables["display"] == "mine"


def test_a_name_that_is_not_a_user_variable_cannot_be_looked_up():
    with pytest.raises(KeyError):
        UserVariables(shell({"_": 5}))["_"]


def executions(notebook) -> list[dict]:
    return nbformat.read(notebook, as_version=4).metadata["nbelastic"]["history"]["executions"]


def written_by(notebook, code: str) -> set[str]:
    (execution,) = [e for e in executions(notebook) if e["code"] == code]
    return {snapshot.rpartition("@")[0] for snapshot in execution["writes"]}


@pytest.mark.kernel
def test_among_thousands_of_variables_a_cell_records_just_what_it_bound(roundtrip):
    rt = roundtrip(
        [
            "for k in range(3000):\n    globals()[f'v{k}'] = [k]",
            "x = 1",
            "v7 = 'seven'",
            "v8.append(-8)",
            "del v9",
        ],
        **REPLAY,
    )
    assert rt.restore["ok"], rt.restore
    assert rt.after == rt.before and "v9" not in rt.after
    assert written_by(rt.notebook, "x = 1") == {"x"}
    assert written_by(rt.notebook, "v7 = 'seven'") == {"v7"}
    assert written_by(rt.notebook, "v8.append(-8)") == {"v8"}
    (deleting,) = [e for e in executions(rt.notebook) if e["code"] == "del v9"]
    assert [s.rpartition("@")[0] for s in deleting["deletes"]] == ["v9"]


@pytest.mark.kernel
def test_names_bound_and_deleted_by_silent_code_between_cells_are_caught(tmp_path):
    notebook = tmp_path / "silent.ipynb"
    with Kernel(cwd=tmp_path) as first:
        assert first.execute("%load_ext nbelastic").error is None
        assert first.execute("a = [1]").error is None
        assert first.execute("b = [5]", silent=True).error is None
        assert first.execute("del a", silent=True).error is None
        assert first.execute("b.append(6)").error is None
        before = describe_namespace(first)
        first.call("save", {"notebook": str(notebook), **REPLAY})
    assert written_by(notebook, "b.append(6)") == {"b"}
    with Kernel(cwd=tmp_path) as second:
        report = second.call("restore", {"notebook": str(notebook)})
        assert report["ok"], {k: v for k, v in report.items() if v}
        assert describe_namespace(second) == before


@pytest.mark.kernel
def test_a_notebook_saved_again_after_a_restore_in_a_cell_restores(tmp_path):
    first_save, second_save = tmp_path / "first.ipynb", tmp_path / "second.ipynb"
    with Kernel(cwd=tmp_path) as first:
        assert first.execute("%load_ext nbelastic").error is None
        assert first.execute("base = list(range(5))").error is None
        assert first.execute("total = sum(base)").error is None
        first.call("save", {"notebook": str(first_save), **REPLAY})
    with Kernel(cwd=tmp_path) as second:
        assert second.execute("%load_ext nbelastic").error is None
        assert second.execute(f"%nbelastic restore {first_save}").error is None
        assert second.execute("more = total + 1").error is None
        before = describe_namespace(second)
        second.call("save", {"notebook": str(second_save), **REPLAY})
    assert not [e for e in executions(second_save) if "restore" in e["code"]]
    with Kernel(cwd=tmp_path) as third:
        report = third.call("restore", {"notebook": str(second_save)})
        assert report["ok"], {k: v for k, v in report.items() if v}
        assert describe_namespace(third) == before
