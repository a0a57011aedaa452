"""The workload notebooks: what each one is, how big it runs, and the small change saved twice.

Each notebook reads its size from ``SCALE``, which the runner sets in a silent execution before
the first cell (1.0 is the full size, ``--quick`` shrinks it), so the same cells serve both a
real measurement and the smoke test. Each one leans on a different part of the cost model, said
in ``stresses`` and repeated in the report so a bad row can be read against its purpose.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


@dataclass(frozen=True)
class Workload:
    """One notebook of the suite."""

    name: str
    stresses: str  # what part of the cost model it leans on, for the report
    change: str  # a cell appended before the second (incremental) save
    quick_scale: float
    requires: tuple[str, ...] = ()  # importable modules it needs, beyond the test extra

    @property
    def notebook(self) -> Path:
        return NOTEBOOKS / f"{self.name}.ipynb"

    def cells(self) -> list[str]:
        """The code cells' sources, in order (markdown cells carry no state)."""
        nb = nbformat.read(self.notebook, as_version=4)
        return [cell.source for cell in nb.cells if cell.cell_type == "code"]

    def missing(self) -> list[str]:
        """The required modules that cannot be imported here."""
        return [module for module in self.requires if importlib.util.find_spec(module) is None]


WORKLOADS = (
    Workload(
        name="sklearn_training",
        stresses=(
            "large arrays that are cheap to regenerate (seeded synthetic data) next to a small "
            "model that is expensive to train: the cut should store the model, replay the data"
        ),
        change="baseline_accuracy = round(baseline_accuracy, 3)",
        quick_scale=0.01,
    ),
    Workload(
        name="pandas_cleaning",
        stresses=(
            "a frame of a few hundred MB with object columns, rewritten by several cells: "
            "hashing cost in the monitor, store size and codec speed for pandas"
        ),
        change="top_customers = top_customers.head(10)",
        quick_scale=0.005,
    ),
    Workload(
        name="numpy_simulation",
        stresses=(
            "unseeded numpy and random draws, views (final is a column of paths) and an "
            "in-place write: RNG state capture on replay, linked variables, big cheap arrays"
        ),
        change="var_95 = round(var_95, 2)",
        quick_scale=0.01,
    ),
    Workload(
        name="unpicklable",
        stresses=(
            "a generator, a lock and an open file next to plain data: dill fails outright, "
            "nbelastic must replay what cannot be stored and store the rest"
        ),
        change="summary['checked'] = True",
        quick_scale=0.01,
    ),
    Workload(
        name="many_cells",
        stresses=(
            "about 130 cheap cells around one expensive one: per-cell monitoring overhead, a "
            "large history graph for the min-cut, many tiny variables"
        ),
        change="label = 'v2'",
        quick_scale=0.05,
    ),
    Workload(
        name="torch_training",
        stresses=(
            "an unseeded torch training loop on CPU: tensors with gradients, an optimizer "
            "sharing parameters with the model, torch's own random generator"
        ),
        change="accuracy = round(accuracy, 3)",
        quick_scale=0.02,
        requires=("torch",),
    ),
)
