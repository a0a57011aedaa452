"""The global random generators: unseeded draws replay to the same numbers, and watching them
costs the user nothing they did not ask for (the monitor never loads ``numpy.random`` itself)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import evaluate

from nbelastic.driver import Kernel

REPLAY = {"plan": "recompute-all"}


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_the_hook_notes_numpys_state_as_numpy_random_loads():
    printed = run_python(
        """
        from nbelastic.kernel.rng import NumpyRandomLoads
        loads = NumpyRandomLoads()
        loads.install()
        import numpy.random
        at_load = loads.fill_in(("random", None, None))[1]
        kind, keys, *_ = numpy.random.get_state()
        print(at_load[0] == kind and at_load[1] == keys.tobytes())
        """
    )
    assert printed == "True"


def test_numpy_random_loaded_through_the_hook_keeps_its_own_loader():
    printed = run_python(
        """
        from nbelastic.kernel.rng import NumpyRandomLoads
        NumpyRandomLoads().install()
        import numpy.random
        print(type(numpy.random.__loader__).__name__, type(numpy.random.__spec__.loader).__name__)
        """
    )
    assert printed == "SourceFileLoader SourceFileLoader"


def test_a_state_noted_at_load_is_used_once():
    printed = run_python(
        """
        from nbelastic.kernel.rng import NumpyRandomLoads
        loads = NumpyRandomLoads()
        loads.install()
        import numpy.random
        loads.fill_in(("random", None, None))
        print(loads.fill_in(("random", None, None))[1])
        """
    )
    assert printed == "None"


def test_a_snapshot_that_has_numpys_state_is_kept_as_taken():
    printed = run_python(
        """
        from nbelastic.kernel.rng import NumpyRandomLoads
        loads = NumpyRandomLoads()
        loads.install()
        import numpy.random
        print(loads.fill_in(("random", "taken before", None))[1])
        """
    )
    assert printed == "taken before"


@pytest.mark.kernel
def test_the_monitor_does_not_load_numpy_random(tmp_path):
    with Kernel(cwd=tmp_path) as kernel:
        assert kernel.execute("%load_ext nbelastic").error is None
        assert kernel.execute("import numpy as np").error is None
        assert kernel.execute("x = np.arange(3)").error is None
        assert evaluate(kernel, "'numpy.random' in __import__('sys').modules") is False


@pytest.mark.kernel
def test_draws_in_the_cell_that_imports_numpy_replay_identically(roundtrip):
    rt = roundtrip(["import numpy as np\nr = np.random.rand(5)"], **REPLAY)
    assert rt.restore["ok"], rt.restore
    assert "r" in rt.save["replayed"]
    assert rt.after == rt.before


@pytest.mark.kernel
def test_first_draws_after_import_numpy_replay_identically(roundtrip):
    rt = roundtrip(["import numpy as np", "r = np.random.rand(5)", "s = r + 1"], **REPLAY)
    assert rt.restore["ok"], rt.restore
    assert {"r", "s"} <= set(rt.save["replayed"])
    assert rt.after == rt.before


def test_two_hooks_that_ask_each_other_still_import_numpy_random():
    printed = run_python(
        """
        from nbelastic.kernel.rng import NumpyRandomLoads
        first, second = NumpyRandomLoads(), NumpyRandomLoads()
        first.install()
        second.install()
        import numpy.random
        print(first.fill_in(("random", None, None))[1] is not None)
        """
    )
    assert printed == "True"


def test_the_loader_found_for_numpy_random_answers_like_the_real_one():
    printed = run_python(
        """
        import importlib.util
        from nbelastic.kernel.rng import NumpyRandomLoads
        NumpyRandomLoads().install()
        loader = importlib.util.find_spec("numpy.random").loader
        print(loader.is_package("numpy.random"), loader.get_filename("numpy.random")[-11:])
        """
    )
    assert printed == "True __init__.py"


@pytest.mark.kernel
@pytest.mark.parametrize("plan", ["store-all", "recompute-all"])
def test_the_global_generators_are_left_where_they_were_at_save(roundtrip, plan):
    cells = ["import random\nimport numpy as np", "r = random.random()\nn = np.random.rand(2)"]
    rt = roundtrip(cells, plan=plan)
    assert rt.restore["ok"], rt.restore
    draws = "[random.random(), float(np.random.random())]"
    assert rt.check(draws) == evaluate(rt.original_kernel, draws)
