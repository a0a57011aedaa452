"""What a replay can give back: the OS entropy a cell drew is recorded and played back; the
clock, time-based ids and seeds drawn in C are recognised in the code, so the cell is stored."""

from __future__ import annotations

import datetime
import os
import random
import secrets
import threading
import time
import uuid

import numpy as np
import pytest

from nbelastic.kernel.analysis import analyse_cell, code_calls, reads_and_code
from nbelastic.kernel.entropy import EntropyTape
from nbelastic.kernel.unrepeatable import Call, why_unrepeatable


@pytest.fixture
def tape():
    tape = EntropyTape()
    tape.install()
    yield tape
    tape.uninstall()


def draw_everything() -> list:
    return [
        os.urandom(8),
        secrets.token_hex(4),
        random.SystemRandom().random(),
        uuid.uuid4(),
        np.random.default_rng().random(),
    ]


def test_entropy_drawn_while_recording_is_given_back_on_replay(tape):
    tape.start()
    first = draw_everything()
    recorded = tape.take()
    tape.replay(recorded)
    again = draw_everything()
    assert tape.stop_replay()
    assert again == first


def test_nothing_is_recorded_outside_a_cell(tape):
    os.urandom(8)
    tape.start()
    assert tape.take() == []


def test_draws_on_other_threads_are_not_recorded(tape):
    tape.start()
    thread = threading.Thread(target=os.urandom, args=(8,))
    thread.start()
    thread.join()
    assert tape.take() == []


def test_a_replay_asking_for_other_sizes_gets_fresh_entropy_and_says_so(tape):
    tape.start()
    os.urandom(8)
    tape.replay(tape.take())
    assert len(os.urandom(16)) == 16
    assert not tape.stop_replay()


def test_uninstalling_puts_the_os_functions_back():
    originals = os.urandom, random._urandom
    tape = EntropyTape()
    tape.install()
    tape.uninstall()
    assert (os.urandom, random._urandom) == originals


def why(code: str, namespace: dict) -> str:
    return why_unrepeatable(analyse_cell(code).calls, namespace)


@pytest.mark.parametrize(
    ("code", "namespace", "expected"),
    [
        ("t = time.time()", {"time": time}, "it reads the clock (time.time)"),
        ("t = time()", {"time": time.time}, "it reads the clock (time)"),
        ("t = perf_counter()", {"perf_counter": time.perf_counter}, "it reads the clock"),
        ("d = datetime.now()", {"datetime": datetime.datetime}, "it reads the clock"),
        ("d = dt.date.today()", {"dt": datetime}, "it reads the clock (dt.date.today)"),
        ("u = uuid.uuid1()", {"uuid": uuid}, "it makes a time-based id (uuid.uuid1)"),
        ("random.seed()", {"random": random}, "it seeds a generator from the OS"),
        ("r = random.Random()", {"random": random}, "it makes a generator seeded from the OS"),
        ("g.seed()", {"g": random.Random(1)}, "it seeds a generator from the OS (g.seed())"),
    ],
)
def test_sources_a_replay_cannot_give_back_are_named(code, namespace, expected):
    assert expected in why(code, namespace)


@pytest.mark.parametrize(
    ("code", "namespace"),
    [
        ("random.seed(3)", {"random": random}),
        ("r = random.Random(3)", {"random": random}),
        ("np.random.seed()", {"np": np}),  # its entropy is recorded
        ("u = uuid.uuid4()", {"uuid": uuid}),  # its entropy is recorded
        ("t = frame.time()", {"frame": object()}),
        ("s = time.sleep(0)", {"time": time}),
        ("t = time.localtime(0)", {"time": time}),
    ],
)
def test_code_a_replay_repeats_is_not_flagged(code, namespace):
    assert why(code, namespace) == ""


def test_the_clock_read_inside_a_notebook_function_is_found():
    namespace = {"time": time, "__name__": "__main__"}
    exec("def stamped():\n    return [1, time.time()]", namespace)
    reads, codes = reads_and_code({"stamped"}, namespace)
    calls = set().union(*(code_calls(code) for code in codes))
    assert why_unrepeatable(calls, namespace) == "it reads the clock (time.time)"


def test_an_instance_attribute_is_not_looked_up():
    class Hostile:
        def __getattr__(self, name):
            raise AssertionError("looked up")

    assert why_unrepeatable([Call(("h", "clock", "time"), True)], {"h": Hostile()}) == ""
