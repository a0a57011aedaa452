"""What one cell costs with about 2 GB of state alive: the extension against a twin kernel.

Two kernels build the same state through ordinary (monitored, in one of them) cells: large numpy
arrays, a 1M-row DataFrame, a 2M-element list, a fitted scikit-learn model, when torch is
importable a torch module, and thousands of small variables, so that a cost growing with the
number of variables would show. Then each probe cell runs in both, round after round, the order
alternating so that neither kernel always goes first. The added time is the difference within
each round, so a burst of load on this shared machine hits both sides of it.

Two clocks per run: the round trip seen from here (what a user waits for, messaging included)
and the time between the first ``pre_run_cell`` and the last ``post_run_cell`` hook inside the
kernel (the cell and the monitor's hooks, without the messaging jitter).
"""

from __future__ import annotations

import importlib.util
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from benchmarks import machine
from benchmarks.measure import PEAK_RSS, run_cells, silent
from nbelastic.driver import Kernel

NAME = "trivial_cell"
TARGET_MS = 5.0  # the bound on the median time a trivial cell gains from the extension
# Rounds of `x = 1`: its cost is a millisecond or so, under the scheduling noise of a shared
# machine, so it takes many rounds for the median difference to settle. A cell that reads a big
# variable costs far more than the noise: it runs at most READING_ROUNDS rounds.
FULL_ROUNDS = 120
QUICK_ROUNDS = 5
READING_ROUNDS = 30
QUICK_SCALE = 0.02  # tens of MB instead of ~2 GB
SMALL_VARIABLES = 10_000  # at every scale: they cost little to build
WARM_UP_ROUNDS = 3

# The state, built at SCALE (1.0: about 2 GB) by cells a user could have written.
STATE_CELLS = (
    "import numpy as np\nimport pandas as pd\nrng = np.random.default_rng(0)",
    "matrix = rng.standard_normal((int(10_000 * SCALE), 8_000))",
    "signal = rng.standard_normal(int(80_000_000 * SCALE))",
    "counts = rng.integers(0, 1_000, int(50_000_000 * SCALE), dtype=np.int32)",
    "rows = int(1_000_000 * SCALE)\n"
    "frame = pd.DataFrame(rng.standard_normal((rows, 20)), columns=[f'f{i}' for i in range(20)])\n"
    "frame['price'] = rng.uniform(1, 100, rows)\n"
    "frame['city'] = rng.choice(['Paris', 'Lyon', 'Nantes', 'Lille'], rows)",
    "values = [float(v) for v in range(int(2_000_000 * SCALE))]",
    f"for k in range({SMALL_VARIABLES}):\n    globals()[f'small{{k}}'] = k",
    "from sklearn.ensemble import RandomForestClassifier\n"
    "model = RandomForestClassifier(n_estimators=30, random_state=0)\n"
    "model.fit(matrix[:, :16], matrix[:, 16] > 0)",
)
TORCH_CELL = (
    "import torch\ntorch.manual_seed(0)\nwidth = int(4096 * SCALE**0.5)\n"
    "net = torch.nn.Sequential(*(torch.nn.Linear(width, width) for _ in range(4)))"
)


# What each big variable is, for the report.
KINDS = {
    "matrix": "numpy array",
    "signal": "numpy array",
    "counts": "numpy array",
    "frame": "DataFrame",
    "values": "list of floats",
    "model": "fitted RandomForestClassifier, pickled",
    "net": "torch module",
}


@dataclass(frozen=True)
class Probe:
    """A cell timed with the state alive, and the big variables it reads."""

    code: str
    touches: tuple[str, ...] = ()


PROBES = (
    Probe("x = 1"),
    Probe("y = len(values)", ("values",)),
    Probe("total = frame['price'].sum()", ("frame",)),
)

# Bytes alive and shape per big variable, printed as JSON by a silent execution. It runs in a
# namespace of its own so that the monitor never sees a variable of ours.
_SIZES = """
import json, pickle, sys
sizes, shapes = {}, {}
for name in ("matrix", "signal", "counts"):
    sizes[name] = int(ns[name].nbytes)
    shapes[name] = " x ".join(f"{n:,}" for n in ns[name].shape) + f" {ns[name].dtype}"
sizes["frame"] = int(ns["frame"].memory_usage(deep=True).sum())
shapes["frame"] = "{:,} rows x {} columns".format(*ns["frame"].shape)
sizes["values"] = sys.getsizeof(ns["values"]) + sum(map(sys.getsizeof, ns["values"]))
shapes["values"] = f"{len(ns['values']):,} elements"
sizes["model"] = len(pickle.dumps(ns["model"]))
shapes["model"] = f"{len(ns['model'].estimators_)} trees"
if "net" in ns:
    sizes["net"] = sum(t.nbytes for t in ns["net"].state_dict().values())
    shapes["net"] = f"{sum(p.numel() for p in ns['net'].parameters()):,} parameters"
print(json.dumps({"sizes": sizes, "shapes": shapes}))
"""
# A stopwatch around every non-silent cell, kept in sys.modules, out of the user's namespace.
_TIMER = """
import sys, time, types
timer = types.ModuleType("nbelastic_benchmark_timer")
timer.times, timer.started = [], 0.0
def start(info):
    timer.started = time.perf_counter()
def stop(result):
    timer.times.append(time.perf_counter() - timer.started)
timer.stop = stop
sys.modules[timer.__name__] = timer
get_ipython().events.register("pre_run_cell", start)
"""
_STOP_TIMER = (
    "get_ipython().events.register('post_run_cell', "
    "__import__('sys').modules['nbelastic_benchmark_timer'].stop)"
)
_TIMES = (
    "print(__import__('json').dumps(__import__('sys').modules['nbelastic_benchmark_timer'].times))"
)
_RSS = (
    "print(next(int(line.split()[1]) for line in open('/proc/self/status') "
    "if line.startswith('VmRSS')) if __import__('os').path.exists('/proc/self/status') else 0)"
)


@dataclass
class Timing:
    """One probe's seconds per round, with and without the extension, on both clocks."""

    probe: Probe
    with_extension: list[float]  # round trips
    without: list[float]
    hooks_with_extension: list[float]  # inside the kernel, first to last cell hook
    hooks_without: list[float]

    @property
    def added(self) -> list[float]:
        """What the extension added in each round (round trip)."""
        return [a - b for a, b in zip(self.with_extension, self.without, strict=True)]

    @property
    def hooks_added(self) -> list[float]:
        return [a - b for a, b in zip(self.hooks_with_extension, self.hooks_without, strict=True)]


@dataclass
class PerCell:
    """The whole measurement: the state, what it cost to build, and each probe's timings."""

    scale: float
    sizes: dict[str, int]  # bytes alive per big variable
    shapes: dict[str, str]  # how big each one is in its own terms (rows, elements, trees)
    torch: bool  # False when torch is not importable: no torch module in the state
    build_seconds: float  # building the state, extension loaded
    plain_build_seconds: float
    load: str  # the machine's load average before and after the timed rounds
    rss: int  # KiB, the kernel's resident memory with the state alive
    plain_rss: int
    peak_rss: int  # KiB, high-water mark
    plain_peak_rss: int
    timings: list[Timing]

    @property
    def state_bytes(self) -> int:
        return sum(self.sizes.values())

    def touched_bytes(self, probe: Probe) -> int:
        return sum(self.sizes[name] for name in probe.touches)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """First quartile, median, third quartile.

    >>> quartiles([4.0, 1.0, 3.0, 2.0, 5.0])
    (1.5, 3.0, 4.5)
    """
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, middle, high = statistics.quantiles(values, n=4)
    return low, middle, high


def run(directory: Path, *, quick: bool, rounds: int | None = None) -> PerCell:
    """Build the state in two kernels, one with the extension, and time every probe in both."""
    scale = QUICK_SCALE if quick else 1.0
    rounds = rounds or (QUICK_ROUNDS if quick else FULL_ROUNDS)
    torch = importlib.util.find_spec("torch") is not None
    cells = [*STATE_CELLS, *([TORCH_CELL] if torch else [])]
    directory.mkdir(parents=True, exist_ok=True)
    with Kernel(cwd=directory) as monitored, Kernel(cwd=directory) as plain:
        for kernel, extension in ((monitored, True), (plain, False)):
            silent(kernel, f"SCALE = {scale!r}")
            silent(kernel, f"exec({_TIMER!r}, {{'get_ipython': get_ipython}})")
            if extension:
                silent(kernel, "%load_ext nbelastic")
            silent(kernel, _STOP_TIMER)
        build_seconds = run_cells(monitored, cells, NAME)
        plain_build_seconds = run_cells(plain, cells, NAME)
        state = json.loads(silent(monitored, f"exec({_SIZES!r}, {{'ns': get_ipython().user_ns}})"))
        load_before = machine.load()
        timings = [
            _time(probe, monitored, plain, min(rounds, READING_ROUNDS) if probe.touches else rounds)
            for probe in PROBES
        ]
        load = f"{load_before} before, {machine.load()} after"
        return PerCell(
            scale=scale,
            sizes=state["sizes"],
            shapes=state["shapes"],
            torch=torch,
            build_seconds=build_seconds,
            plain_build_seconds=plain_build_seconds,
            load=load,
            rss=int(silent(monitored, _RSS)),
            plain_rss=int(silent(plain, _RSS)),
            peak_rss=int(silent(monitored, PEAK_RSS)),
            plain_peak_rss=int(silent(plain, PEAK_RSS)),
            timings=timings,
        )


def _time(probe: Probe, monitored: Kernel, plain: Kernel, rounds: int) -> Timing:
    """Warm up, then ``rounds`` rounds of the probe in both kernels, alternating who goes first."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for number in range(WARM_UP_ROUNDS + rounds):
        order = ((monitored, True), (plain, False))
        for kernel, extension in order if number % 2 else reversed(order):
            seconds = run_cells(kernel, [probe.code], NAME)
            if number >= WARM_UP_ROUNDS:
                times[extension].append(seconds)
    hooks = {
        extension: json.loads(silent(kernel, _TIMES))[-rounds:]
        for kernel, extension in ((monitored, True), (plain, False))
    }
    return Timing(probe, times[True], times[False], hooks[True], hooks[False])
