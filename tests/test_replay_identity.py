"""A replay gives back what the cell gave, or the plan does not choose it.

Every source of nondeterminism a cell may use, through real kernels: run in one, save with each
plan, restore in a new kernel, compare the namespaces as described without nbelastic
(kernel_probe.py), and the next draws of the global generators. Sources nbelastic records are
replayed; the others make their cell unreplayable, so what it made is stored.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import describe_namespace, evaluate

from nbelastic.driver import Kernel

pytestmark = pytest.mark.kernel

# numpy.random is loaded at once: until it is, numpy's global generator has no state to keep.
SETUP = (
    "import asyncio, datetime, os, random, secrets, time, uuid\nimport numpy as np, numpy.random"
)
# A slow store: loading anything costs more than replaying it, so the plan replays every cell
# it may, and the replays are what is compared.
SLOW_STORE = 10.0
PLANS = {
    "optimal": {"plan": "optimal", "bandwidth": SLOW_STORE},
    "store-all": {"plan": "store-all"},
    "recompute-all": {"plan": "recompute-all"},
}
NEXT_DRAWS = "[random.random(), float(np.random.random())]"


@dataclass(frozen=True)
class Source:
    cells: tuple[str, ...]
    names: tuple[str, ...]  # the variables it makes
    why: str = ""  # why its cells are not replayed; empty: they are, to the same values


SOURCES = {
    "default_rng": Source(
        ("rng = np.random.default_rng()", "unseeded = rng.random(1000)"), ("rng", "unseeded")
    ),
    "seed_sequence": Source(
        (
            "children = [np.random.default_rng(s).integers(0, 2**30, 4)"
            " for s in np.random.SeedSequence().spawn(2)]",
        ),
        ("children",),
    ),
    "numpy_seed": Source(("np.random.seed()\nlegacy = np.random.rand(4)",), ("legacy",)),
    "global_random": Source(("drawn = [random.random() for _ in range(4)]",), ("drawn",)),
    "global_numpy": Source(("normal = np.random.standard_normal(4)",), ("normal",)),
    "urandom": Source(("raw = os.urandom(16)",), ("raw",)),
    "secrets": Source(("token = secrets.token_hex(8)",), ("token",)),
    "system_random": Source(("system = random.SystemRandom().random()",), ("system",)),
    "uuid4": Source(("id4 = str(uuid.uuid4())",), ("id4",)),
    "seeded_and_unseeded": Source(
        ("mixed = (np.random.default_rng(7).random(3), np.random.default_rng().random(3))",),
        ("mixed",),
    ),
    "await": Source(
        (
            "async def twice(x):\n    await asyncio.sleep(0.01)\n    return 2 * x",
            "awaited = await asyncio.gather(twice(1), twice(2))",
            "after_await = awaited + [len(awaited)]",
        ),
        ("twice", "awaited", "after_await"),
    ),
    "time": Source(("stamp = time.time()",), ("stamp",), "it reads the clock (time.time)"),
    "perf_counter": Source(
        ("started = time.perf_counter()\nelapsed = time.perf_counter() - started",),
        ("started", "elapsed"),
        "it reads the clock (time.perf_counter)",
    ),
    "datetime_now": Source(
        ("moment = datetime.datetime.now()",),
        ("moment",),
        "it reads the clock (datetime.datetime.now)",
    ),
    "uuid1": Source(
        ("id1 = str(uuid.uuid1())",), ("id1",), "it makes a time-based id (uuid.uuid1)"
    ),
    "random_seed": Source(
        ("random.seed()\nreseeded = random.random()",),
        ("reseeded",),
        "it seeds a generator from the OS (random.seed())",
    ),
    "clock_in_function": Source(
        ("def stamped(x):\n    return [x, time.time()]", "stamped_value = stamped(1)"),
        ("stamped", "stamped_value"),
        "it reads the clock (time.time)",
    ),
    "seeded_and_clock": Source(
        ("seeded_part = np.random.default_rng(3).random(2)\nclock_part = time.monotonic()",),
        ("seeded_part", "clock_part"),
        "it reads the clock (time.monotonic)",
    ),
}
if importlib.util.find_spec("torch") is not None:
    SOURCES["torch"] = Source(("import torch\ntorch_drawn = torch.randn(3)",), ("torch_drawn",))
    SOURCES["torch_seed"] = Source(
        ("torch.seed()\ntorch_reseeded = torch.rand(2)",),
        ("torch_reseeded",),
        "it seeds a generator from the OS (torch.seed())",
    )
# The default run: one of each kind of source, in one kernel.
REPRESENTATIVE = (
    "default_rng",
    "seeded_and_unseeded",
    "global_random",
    "uuid4",
    "secrets",
    "await",
    "time",
    "datetime_now",
    "clock_in_function",
    "random_seed",
)


@dataclass
class Saved:
    """One kernel's run of some sources, saved once with each plan."""

    sources: dict[str, Source]
    before: dict[str, str]
    next_draws: list[float]
    saves: dict[str, dict]  # plan -> what the save reported
    notebooks: dict[str, Path]
    status: str  # what %nbelastic status printed before the saves


def run_and_save(directory: Path, names: tuple[str, ...]) -> Saved:
    sources = {name: SOURCES[name] for name in names}
    torch = "import torch\n" if any(name.startswith("torch") for name in names) else ""
    with Kernel(cwd=directory) as kernel:
        for code in ["%load_ext nbelastic", SETUP + "\n" + torch]:
            assert kernel.execute(code).error is None, code
        for source in sources.values():
            for code in source.cells:
                result = kernel.execute(code)
                assert result.error is None, f"{code}: {result.error}"
        before = describe_namespace(kernel)
        status = kernel.execute(f"%nbelastic status --bandwidth {SLOW_STORE}").stdout
        saves, notebooks = {}, {}
        for plan, options in PLANS.items():
            notebooks[plan] = directory / f"{plan}.ipynb"
            saves[plan] = kernel.call("save", {"notebook": str(notebooks[plan]), **options})
        # The saves drew nothing: the next draws are those the restored kernels must make.
        next_draws = evaluate(kernel, NEXT_DRAWS)
    return Saved(sources, before, next_draws, saves, notebooks, status)


def check_restore(saved: Saved, plan: str) -> None:
    notebook = saved.notebooks[plan]
    with Kernel(cwd=notebook.parent) as kernel:
        report = kernel.call("restore", {"notebook": str(notebook)})
        assert report["ok"], report
        assert not report["mismatched"] and not report["lost"], report
        assert describe_namespace(kernel) == saved.before
        assert evaluate(kernel, NEXT_DRAWS) == saved.next_draws
    variables = json.loads(notebook.read_text())["metadata"]["nbelastic"]["variables"]
    replayed = set(saved.saves[plan]["replayed"])
    for name, source in saved.sources.items():
        for variable in source.names:
            if source.why:
                assert variable not in replayed, (name, variable)
                if plan != "store-all":
                    assert source.why in variables[variable]["why"], variables[variable]
            elif plan != "store-all":
                assert variable in replayed, (name, variable, saved.saves[plan])


@pytest.fixture(scope="module")
def representative(tmp_path_factory) -> Saved:
    return run_and_save(tmp_path_factory.mktemp("replay"), REPRESENTATIVE)


@pytest.mark.parametrize("plan", PLANS)
def test_representative_sources_come_back_identical_with_each_plan(representative, plan):
    check_restore(representative, plan)


def test_status_says_which_cell_cannot_be_replayed_and_why(representative):
    lines = {line.split()[0]: line for line in representative.status.splitlines() if line}
    assert re.search(
        r"cell \d+ cannot be replayed: it reads the clock \(time.time\)", lines["stamp"]
    )
    assert "cannot be replayed: it seeds a generator from the OS" in lines["reseeded"]
    assert "  replay  " in lines["unseeded"]


@pytest.mark.slow
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_each_source_comes_back_identical_with_each_plan(tmp_path, source):
    saved = run_and_save(tmp_path, (source,))
    for plan in PLANS:
        check_restore(saved, plan)


@pytest.mark.slow
def test_a_large_unseeded_draw_is_replayed_to_the_same_numbers_under_the_default_plan(tmp_path):
    """The issue's measurement: 240 MB drawn from ``default_rng()``, replayed by the plan."""
    cells = ["rng = np.random.default_rng()\nbig = rng.random(30_000_000)"]
    notebook = tmp_path / "big.ipynb"
    with Kernel(cwd=tmp_path) as kernel:
        for code in ["%load_ext nbelastic", SETUP, *cells]:
            assert kernel.execute(code).error is None
        saved = kernel.call("save", {"notebook": str(notebook), "bandwidth": 100e6})
        replayed = saved["replayed"]
        saved_draw = evaluate(kernel, "[float(big[-1]), float(rng.random())]")
    with Kernel(cwd=tmp_path) as kernel:
        report = kernel.call("restore", {"notebook": str(notebook)})
        assert evaluate(kernel, "[float(big[-1]), float(rng.random())]") == saved_draw
    assert "big" in replayed
    assert report["ok"], report


@contextmanager
def two_kernels(directory: Path, monkeypatch) -> Iterator[tuple[Kernel, Kernel]]:
    """The original kernel, and a restoring one that sees NBELASTIC_TEST_SIDE=restored."""
    with ExitStack() as stack:
        original = stack.enter_context(Kernel(cwd=directory))
        monkeypatch.setenv("NBELASTIC_TEST_SIDE", "restored")
        restored = stack.enter_context(Kernel(cwd=directory))
        yield original, restored


def round_trip_diverging(tmp_path, monkeypatch, cells: list[str]) -> tuple[dict, dict, dict]:
    """Run ``cells``, save (replaying what it may), restore where a cell reading
    NBELASTIC_TEST_SIDE takes another branch: the report, and the namespaces before and after."""
    notebook = tmp_path / "diverging.ipynb"
    with two_kernels(tmp_path, monkeypatch) as (original, restored):
        for code in ["%load_ext nbelastic", SETUP, *cells]:
            assert original.execute(code).error is None, code
        before = describe_namespace(original)
        original.call("save", {"notebook": str(notebook), "plan": "recompute-all"})
        report = restored.call("restore", {"notebook": str(notebook)})
        return report, before, describe_namespace(restored)


def cell_id(notebook: Path, code: str) -> int:
    history = json.loads(notebook.read_text())["metadata"]["nbelastic"]["history"]
    return next(e["id"] for e in history["executions"] if e["code"] == code)


def test_a_replay_that_diverges_is_reported_with_its_variable_and_cell(tmp_path, monkeypatch):
    cells = ["side = os.environ.get('NBELASTIC_TEST_SIDE', 'original')"]
    report, _, _ = round_trip_diverging(tmp_path, monkeypatch, cells)
    cell = cell_id(tmp_path / "diverging.ipynb", cells[0])
    assert not report["ok"]
    assert report["mismatched"]["side"].endswith(f"after replaying cell {cell}"), report


def test_a_stored_value_a_replay_changed_is_bound_again_from_its_copy(tmp_path, monkeypatch):
    cells = [
        "data = [time.time()]",  # not replayable: stored
        "size = len(data)\nif os.environ.get('NBELASTIC_TEST_SIDE'):\n    data.append(0)",
    ]
    report, before, after = round_trip_diverging(tmp_path, monkeypatch, cells)
    assert report["ok"], report
    assert after == before
    assert any(w.startswith("data was changed by a replayed cell") for w in report["warnings"])


@pytest.fixture(scope="module")
def awaiting_notebook(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("await")
    notebook = directory / "await.ipynb"
    with Kernel(cwd=directory) as kernel:
        for code in ["%load_ext nbelastic", "import asyncio", "r = await asyncio.sleep(0, 5)"]:
            assert kernel.execute(code).error is None, code
        kernel.call("save", {"notebook": str(notebook), "plan": "recompute-all"})
    return notebook


def test_the_restore_magic_replays_cells_that_await(awaiting_notebook):
    with Kernel(cwd=awaiting_notebook.parent) as kernel:
        assert kernel.execute("%load_ext nbelastic").error is None
        result = kernel.execute(f"%nbelastic restore {awaiting_notebook}\nprint(r)")
        assert result.error is None and not result.stderr, result
        assert result.stdout.endswith("verified 2/2\n5\n"), result.stdout


def test_a_restore_not_awaited_says_how_to_replay_a_cell_that_awaits(awaiting_notebook):
    with Kernel(cwd=awaiting_notebook.parent) as kernel:
        report = evaluate(
            kernel, f"__import__('nbelastic').restore({str(awaiting_notebook)!r}).to_json()"
        )
    [why] = report["failed_cells"].values()
    assert "uses top-level await" in why and "%nbelastic restore" in why
