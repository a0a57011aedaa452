"""The Application History Graph: snapshots, executions, what a variable needs to be rebuilt."""

import doctest
import json

import pytest

import nbelastic.history
from nbelastic.history import PREEXISTING_CODE, Execution, History, Snapshot, linked_groups


def snaps(items) -> list[str]:
    return [str(s) for s in items]


def active(history: History) -> dict[str, str]:
    return {name: str(snap) for name, snap in history.active.items()}


def test_doctests_hold():
    assert doctest.testmod(nbelastic.history).failed == 0


# --- record: versions, reads, writes ---------------------------------------------------------


def test_a_first_write_creates_version_1():
    history = History()
    execution = history.record("x = 1", 0.1, writes=["x"])

    assert snaps(execution.writes) == ["x@1"]
    assert active(history) == {"x": "x@1"}


def test_every_later_write_bumps_the_version():
    history = History()
    for _ in range(3):
        history.record("x = x + 1", 0.1, reads=["x"], writes=["x"])

    assert active(history) == {"x": "x@3"}


def test_a_cell_reads_the_version_that_existed_before_it_ran():
    history = History()
    history.record("lst = []", 0.0, writes=["lst"])
    execution = history.record("lst.append(1)", 0.0, reads=["lst"], writes=["lst"])

    assert snaps(execution.reads) == ["lst@1"]
    assert snaps(execution.writes) == ["lst@2"]


def test_reads_of_names_that_do_not_exist_are_ignored():
    history = History()
    execution = history.record("y = print", 0.0, reads=["print", "y"], writes=["y"])

    assert execution.reads == ()


def test_a_name_listed_twice_is_written_once():
    history = History()
    execution = history.record("x = x = 1", 0.0, writes=["x", "x"])

    assert snaps(execution.writes) == ["x@1"]


def test_snapshots_of_one_execution_are_sorted_by_name():
    history = History()
    history.record("b = a = 1", 0.0, writes=["b", "a"])
    execution = history.record("c, d = b, a", 0.0, reads=["b", "a"], writes=["d", "c"])

    assert snaps(execution.reads) == ["a@1", "b@1"]
    assert snaps(execution.writes) == ["c@1", "d@1"]


def test_execution_ids_count_from_1_in_recording_order():
    history = History()
    ids = [history.record(f"x{i} = {i}", 0.0, writes=[f"x{i}"]).id for i in range(3)]

    assert ids == [1, 2, 3]
    assert [e.id for e in history.executions] == [1, 2, 3]


def test_writer_and_execution_find_what_was_recorded():
    history = History()
    first = history.record("x = 1", 0.0, writes=["x"])
    second = history.record("x += 1", 0.0, reads=["x"], writes=["x"])

    assert history.writer(Snapshot("x", 1)) is first
    assert history.writer(Snapshot("x", 2)) is second
    assert history.execution(2) is second


def test_a_cell_that_raised_keeps_its_writes():
    history = History()
    execution = history.record("a.append(2); 1/0", 0.5, writes=["a"], raised=True)

    assert execution.raised
    assert active(history) == {"a": "a@1"}


# --- deletes and re-creation -----------------------------------------------------------------


def test_a_deleted_name_is_no_longer_active():
    history = History()
    history.record("x = 1", 0.0, writes=["x"])
    execution = history.record("del x", 0.0, deletes=["x"])

    assert snaps(execution.deletes) == ["x@1"]
    assert history.active == {}


def test_deleting_a_name_that_does_not_exist_records_nothing():
    history = History()
    execution = history.record("del ghost", 0.0, deletes=["ghost"])

    assert execution.deletes == ()


def test_a_name_recreated_after_delete_continues_its_versions():
    history = History()
    history.record("x = 1", 0.0, writes=["x"])
    history.record("del x", 0.0, deletes=["x"])
    history.record("x = 2", 0.0, writes=["x"])

    assert active(history) == {"x": "x@2"}


def test_delete_and_recreate_in_one_cell_deletes_the_old_version_and_writes_a_new_one():
    history = History()
    history.record("x = 1", 0.0, writes=["x"])
    execution = history.record("del x; x = 2", 0.0, writes=["x"], deletes=["x"])

    assert snaps(execution.deletes) == ["x@1"]
    assert snaps(execution.writes) == ["x@2"]
    assert active(history) == {"x": "x@2"}


# --- record_existing -------------------------------------------------------------------------


def test_state_that_predates_monitoring_is_written_by_pseudo_execution_0():
    history = History()
    execution = history.record_existing(["df", "cfg"])

    assert execution.id == 0
    assert execution.code == PREEXISTING_CODE
    assert not execution.replayable
    assert snaps(execution.writes) == ["cfg@1", "df@1"]
    assert history.record("y = 1", 0.0, writes=["y"]).id == 1


def test_state_found_later_is_written_by_the_next_id_and_is_not_replayable():
    history = History()
    history.record("x = 1", 0.0, writes=["x"])
    execution = history.record_existing(["x"])

    assert execution.id == 2
    assert not execution.replayable
    assert active(history) == {"x": "x@2"}


# --- recompute_set ---------------------------------------------------------------------------


def test_a_variable_whose_inputs_are_alive_needs_only_its_writer():
    history = History()
    history.record("x = 1", 1.0, writes=["x"])
    history.record("y = x + 1", 1.0, reads=["x"], writes=["y"])

    assert history.recompute_set(["y"]) == {2}


def test_a_variable_modified_in_place_needs_every_version_it_was_built_from():
    history = History()
    history.record("a = [1]", 1.0, writes=["a"])
    history.record("a.append(2)", 1.0, reads=["a"], writes=["a"])
    history.record("a.append(3)", 1.0, reads=["a"], writes=["a"])

    assert history.recompute_set(["a"]) == {1, 2, 3}


def test_an_input_overwritten_later_pulls_in_its_writer():
    history = History()
    history.record("x = 1", 1.0, writes=["x"])
    history.record("def f(): return x * 10", 0.0, writes=["f"])
    history.record("z = f()", 1.0, reads=["f", "x"], writes=["z"])
    history.record("x = 5", 1.0, writes=["x"])

    assert history.recompute_set(["z"]) == {1, 3}


def test_an_input_deleted_later_pulls_in_its_writer():
    history = History()
    history.record("raw = load()", 10.0, writes=["raw"])
    history.record("clean = tidy(raw)", 1.0, reads=["raw"], writes=["clean"])
    history.record("del raw", 0.0, deletes=["raw"])

    assert history.recompute_set(["clean"]) == {1, 2}


def test_an_input_modified_in_place_later_pulls_in_its_older_version():
    history = History()
    history.record("a = [1]", 1.0, writes=["a"])
    history.record("n = len(a)", 1.0, reads=["a"], writes=["n"])
    history.record("a.append(2)", 1.0, reads=["a"], writes=["a"])

    assert history.recompute_set(["n"]) == {1, 2}


def test_lost_inputs_are_followed_through_every_generation():
    history = History()
    history.record("a = 1", 1.0, writes=["a"])
    history.record("b = a + 1", 1.0, reads=["a"], writes=["b"])
    history.record("c = b + 1", 1.0, reads=["b"], writes=["c"])
    history.record("del a, b", 0.0, deletes=["a", "b"])

    assert history.recompute_set(["c"]) == {1, 2, 3}


def test_following_stops_at_inputs_that_are_still_alive():
    history = History()
    history.record("a = 1", 1.0, writes=["a"])
    history.record("b = a + 1", 1.0, reads=["a"], writes=["b"])
    history.record("c = b + 1", 1.0, reads=["b"], writes=["c"])
    history.record("del a", 0.0, deletes=["a"])

    assert history.recompute_set(["c"]) == {3}


def test_a_diamond_of_lost_inputs_replays_the_shared_ancestor_once():
    history = History()
    history.record("a = 1", 1.0, writes=["a"])
    history.record("b = a + 1", 1.0, reads=["a"], writes=["b"])
    history.record("c = a * 2", 1.0, reads=["a"], writes=["c"])
    history.record("d = b + c", 1.0, reads=["b", "c"], writes=["d"])
    history.record("del a, b, c", 0.0, deletes=["a", "b", "c"])

    assert history.recompute_set(["d"]) == {1, 2, 3, 4}


def test_an_input_deleted_then_recreated_still_pulls_in_the_old_version():
    history = History()
    history.record("x = 1", 1.0, writes=["x"])
    history.record("y = x + 1", 1.0, reads=["x"], writes=["y"])
    history.record("del x", 0.0, deletes=["x"])
    history.record("x = 10", 1.0, writes=["x"])

    assert history.recompute_set(["y"]) == {1, 2}
    assert history.recompute_set(["x"]) == {4}


def test_several_names_need_the_union_of_their_executions():
    history = History()
    history.record("a = 1", 1.0, writes=["a"])
    history.record("b = a", 1.0, reads=["a"], writes=["b"])
    history.record("a = 2", 1.0, writes=["a"])
    history.record("c = 3", 1.0, writes=["c"])

    assert history.recompute_set(["b", "c"]) == {1, 2, 4}
    assert history.recompute_set([]) == set()


def test_state_that_predates_monitoring_is_reached_like_any_writer():
    history = History()
    history.record_existing(["raw"])
    history.record("clean = tidy(raw)", 1.0, reads=["raw"], writes=["clean"])
    history.record("del raw", 0.0, deletes=["raw"])

    assert history.recompute_set(["clean"]) == {0, 1}


def test_recompute_set_of_a_name_that_is_not_active_raises_key_error():
    history = History()
    history.record("x = 1", 0.0, writes=["x"])
    history.record("del x", 0.0, deletes=["x"])

    with pytest.raises(KeyError):
        history.recompute_set(["x"])


# --- JSON ------------------------------------------------------------------------------------


def busy_history() -> History:
    """Every kind of record: pre-existing state, in-place writes, deletes, raises, RNG."""
    history = History()
    history.record_existing(["early"])
    history.record("x = 1", 0.1234567891, writes=["x"])
    history.record("lst = [x]", 0.2, reads=["x"], writes=["lst"])
    history.record("lst.append(2)\n1/0", 0.3, reads=["lst"], writes=["lst"], raised=True)
    history.record("r = rand()", 0.4, writes=["r"], rng="blob-key")
    history.record("del x", 0.0, deletes=["x"])
    history.record("# changed outside a monitored cell", 0.0, writes=["y"], replayable=False)
    return history


def test_json_round_trip_keeps_executions_and_active_snapshots():
    history = busy_history()
    again = History.from_json(json.loads(json.dumps(history.to_json())))

    assert again.to_json() == history.to_json()
    assert again.active == history.active
    assert [e.id for e in again.executions] == [e.id for e in history.executions]
    assert again.executions[4].rng == "blob-key"
    assert again.executions[3].raised
    assert not again.executions[-1].replayable


def test_json_round_trip_keeps_lookups_and_recompute_sets():
    history = busy_history()
    again = History.from_json(history.to_json())

    assert again.writer(Snapshot("lst", 2)).id == 3
    assert again.execution(4).code == "r = rand()"
    for name in history.active:
        assert again.recompute_set([name]) == history.recompute_set([name])


def test_recording_after_a_json_round_trip_continues_every_names_versions():
    again = History.from_json(busy_history().to_json())

    execution = again.record("x = 2; lst = []", 0.0, writes=["x", "lst"])

    assert snaps(execution.writes) == ["lst@3", "x@2"]
    assert execution.id == 7


def test_same_history_gives_the_same_json_text():
    first = json.dumps(busy_history().to_json())
    second = json.dumps(busy_history().to_json())

    assert first == second


def test_json_lists_active_names_sorted_whatever_the_order_they_were_written():
    history = History()
    history.record("b = 1", 0.0, writes=["b"])
    history.record("a = 1", 0.0, writes=["a"])

    assert list(history.to_json()["active"]) == ["a", "b"]


def test_runtimes_are_rounded_to_microseconds_in_json():
    execution = busy_history().to_json()["executions"][1]

    assert execution["runtime"] == 0.123457


def test_from_json_rejects_an_active_snapshot_nobody_wrote():
    data = busy_history().to_json()
    data["active"]["ghost"] = 1

    with pytest.raises(ValueError, match="ghost@1"):
        History.from_json(data)


def test_execution_json_round_trip():
    execution = Execution(3, "y = f(x)", 1.5, (Snapshot("x", 2),), (Snapshot("y", 1),), rng="k")

    assert Execution.from_json(execution.to_json()) == execution


# --- Snapshot --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["x@1", "df_2@17", "a@b@3"])
def test_snapshot_parse_is_the_inverse_of_str(text):
    assert str(Snapshot.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    ["x", "x@", "@1", "x@-1", "x@1.5", "x@one", "x@ 1", "x@1\n", "x@0", "x@01", "x@\u0663"],
)
def test_snapshot_parse_rejects_what_str_never_writes(text):
    """Versions count from 1 in ASCII digits, the same rule as the checkpoint schema."""
    with pytest.raises(ValueError, match="not a snapshot"):
        Snapshot.parse(text)


def test_snapshots_order_by_name_then_version():
    assert sorted([Snapshot("b", 1), Snapshot("a", 10), Snapshot("a", 2)]) == [
        Snapshot("a", 2),
        Snapshot("a", 10),
        Snapshot("b", 1),
    ]


# --- linked_groups ---------------------------------------------------------------------------


def test_names_sharing_a_token_are_grouped():
    assert linked_groups({"a": [1], "b": [1], "c": [2]}) == [("a", "b"), ("c",)]


def test_linking_is_transitive_through_a_middle_name():
    assert linked_groups({"a": [1], "b": [1, 2], "c": [2]}) == [("a", "b", "c")]


def test_names_without_tokens_stand_alone():
    assert linked_groups({"x": [], "y": []}) == [("x",), ("y",)]
    assert linked_groups({}) == []


def test_groups_do_not_depend_on_insertion_order():
    tokens = {"d": ["t"], "a": ["u"], "c": ["t", "u"], "b": []}
    reordered = dict(reversed(list(tokens.items())))

    assert linked_groups(tokens) == linked_groups(reordered) == [("a", "c", "d"), ("b",)]


def test_a_long_chain_of_links_is_one_group_and_fast():
    n = 20_000
    chain = {f"v{i:05}": [i, i + 1] for i in range(n)}

    groups = linked_groups(chain)

    assert len(groups) == 1
    assert len(groups[0]) == n
