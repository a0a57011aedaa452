"""Round trips of objects that libraries build: they keep their identity and check out equal.

Each test runs cells in one real kernel, saves, restores in a new kernel process and compares
every variable (see conftest.roundtrip), then asks the restored kernel what a user would.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.kernel

FIGURE = [
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt",
    "fig, ax = plt.subplots()",
    "line, = ax.plot([1, 2, 3])\ntitle = ax.set_title('t')",
    "bars = ax.bar([1, 2], [3, 4])\nother, other_ax = plt.subplots()",
]


def assert_verified(rt) -> None:
    assert rt.restore["ok"], rt.restore
    assert not rt.restore["mismatched"]
    assert rt.after == rt.before


@pytest.mark.parametrize("plan", ["store-all", "recompute-all"])
def test_a_figure_keeps_its_axes_and_artists(roundtrip, plan):
    pytest.importorskip("matplotlib")
    rt = roundtrip(FIGURE, plan=plan)
    assert_verified(rt)
    assert (
        rt.check(
            "[ax in fig.axes, ax.figure is fig, line in ax.lines, title is ax.title,"
            " all(bar in ax.patches for bar in bars), other_ax.figure is other]"
        )
        == [True] * 6
    )


def test_a_figure_and_its_axes_are_stored_together(roundtrip):
    pytest.importorskip("matplotlib")
    rt = roundtrip(FIGURE, plan="store-all")
    stored = rt.save["stored"]
    assert {"fig", "ax", "line", "title", "bars"} <= set(stored)
    assert rt.check("other_ax not in fig.axes and other_ax in other.axes")


EQUAL_VALUES = [
    "import numpy as np\nfrom sklearn.datasets import load_digits, load_iris\n"
    "from sklearn.model_selection import GridSearchCV\nfrom sklearn.svm import SVC",
    "iris = load_iris()\ndigits = load_digits()",
    "grid = GridSearchCV(SVC(), {'C': [1, 10], 'kernel': ['linear', 'rbf']}, cv=2)\n"
    "grid.fit(iris.data, iris.target)",
    "masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0])\n"
    "labels = np.ma.masked_array(np.array(['a', 'b', None], dtype=object), mask=[0, 1, 0])",
    "names = {f'n{i}' for i in range(50)}\nby_pair = {frozenset({'x', 'y'}): 1}",
]


def test_equal_library_values_are_verified_not_mismatched(roundtrip):
    pytest.importorskip("sklearn")
    rt = roundtrip(EQUAL_VALUES, plan="store-all")
    assert_verified(rt)
    expected = {"iris", "digits", "grid", "masked", "labels", "names", "by_pair"}
    assert expected <= set(rt.restore["verified"])


TRAINING = [
    "import torch\nfrom torch.optim import SGD\ntorch.manual_seed(0)",
    "class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.lin = torch.nn.Linear(4, 2)\n\n    def forward(self, x):\n"
    "        return self.lin(x)",
    "model = Net()\noptimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
    "x = torch.randn(8, 4)",
    "for _ in range(3):\n    optimizer.zero_grad()\n    model(x).sum().backward()\n"
    "    optimizer.step()",
]


def test_a_notebook_model_and_its_optimizer_are_stored_not_replayed(roundtrip):
    pytest.importorskip("torch")
    rt = roundtrip(TRAINING, plan="store-all")
    assert_verified(rt)
    assert {"model", "optimizer", "SGD", "Net"} <= set(rt.save["stored"])
    assert rt.restore["replayed"] == []
    assert rt.check(
        "[optimizer.param_groups[0]['params'][0] is model.lin.weight,"
        " len(optimizer.state) == 2, type(optimizer) is SGD]"
    ) == [True, True, True]
