"""The data types nbelastic promises to handle, one case each: the source of docs/support-matrix.md.

Each case builds a value named ``VALUE`` (renamed per case) and, when the type is mutable,
mutates it in place. tests/test_types.py checks every claim: the change is detected, the size
estimate is within 2x of the bytes stored, and the value survives a round trip through two real
kernels, stored or rebuilt by replay as ``fate`` says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TypeCase:
    label: str
    setup: str  # code that creates VALUE (imports included)
    mutate: str | None  # in-place change of VALUE; None for immutable values
    fate: str  # "store" (kept as bytes) or "replay" (rebuilt by running its cells again)
    requires: str | None = None  # a module the case needs; skipped when it is not installed
    note: str = ""
    codec: str = "dill"  # how a stored value is encoded (see nbelastic.store.codecs)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.label.lower()).strip("_")

    def code(self, text: str) -> str:
        return text.replace("VALUE", f"v_{self.slug}")


CASES = [
    TypeCase("int", "VALUE = 12345678901234567890", None, "store", codec="json"),
    TypeCase("float", "VALUE = 3.25", None, "store", codec="json"),
    TypeCase("str", "VALUE = 'héllo ' * 100", None, "store", codec="json"),
    TypeCase(
        "nested list",
        "VALUE = [[i, str(i), [i * 0.5]] for i in range(300)]",
        "VALUE[3][2].append(1)",
        "store",
        codec="json",
    ),
    TypeCase(
        "nested dict",
        "VALUE = {str(i): {'n': i, 'l': [i]} for i in range(300)}",
        "VALUE['7']['l'][0] = -1",
        "store",
        codec="json",
    ),
    TypeCase("set", "VALUE = {f'item{i}' for i in range(300)}", "VALUE.add('new')", "store"),
    TypeCase(
        "tuple of lists", "VALUE = tuple([i] for i in range(300))", "VALUE[0].append(5)", "store"
    ),
    TypeCase(
        "list with a cycle",
        "VALUE = list(range(300))\nVALUE.append(VALUE)",
        "VALUE[0] = 'x'",
        "store",
    ),
    TypeCase(
        "numpy array",
        "import numpy as np\nVALUE = np.arange(20_000, dtype=np.float64)",
        "VALUE[5] += 1",
        "store",
        "numpy",
        codec="npy",
    ),
    TypeCase(
        "numpy view",
        "import numpy as np\nVALUE = np.arange(20_000.0)[::2]",
        "VALUE[0] = -1",
        "store",
        "numpy",
        "stored with its base array",
        codec="npy",
    ),
    TypeCase(
        "numpy structured",
        "import numpy as np\nVALUE = np.zeros(2000, dtype=[('a', 'i4'), ('b', 'f8')])",
        "VALUE['b'][3] = 2.5",
        "store",
        "numpy",
        codec="npy",
    ),
    TypeCase(
        "numpy object dtype",
        "import numpy as np\nVALUE = np.array([[i] for i in range(500)] + [None], dtype=object)",
        "VALUE[0].append(1)",
        "store",
        "numpy",
    ),
    TypeCase(
        "numpy memmap",
        "import numpy as np\nVALUE = np.memmap('memmap.bin', dtype='f8', mode='w+', shape=(1000,))",
        "VALUE[0] = 9",
        "replay",
        "numpy",
        "the mapping is re-opened by replay",
    ),
    TypeCase(
        "pandas DataFrame",
        "import pandas as pd\n"
        "VALUE = pd.DataFrame({'a': range(2000), 'b': [str(i) for i in range(2000)]})",
        "VALUE.loc[0, 'a'] = 10",
        "store",
        "pandas",
    ),
    TypeCase(
        "pandas new column",
        "import pandas as pd\nVALUE = pd.DataFrame({'a': range(2000)})",
        "VALUE['c'] = 1",
        "store",
        "pandas",
    ),
    TypeCase(
        "pandas Series",
        "import pandas as pd\nVALUE = pd.Series(range(5000), name='s')",
        "VALUE.iloc[2] = -5",
        "store",
        "pandas",
    ),
    TypeCase(
        "pandas categorical",
        "import pandas as pd\nVALUE = pd.DataFrame({'c': pd.Categorical(['a', 'b', 'c'] * 700)})",
        "VALUE.loc[1, 'c'] = 'a'",
        "store",
        "pandas",
    ),
    TypeCase(
        "pandas MultiIndex",
        "import pandas as pd\n"
        "VALUE = pd.DataFrame({'v': range(1000)}, index=pd.MultiIndex.from_product("
        "[range(100), list('abcdefghij')]))",
        "VALUE.iloc[0, 0] = 99",
        "store",
        "pandas",
    ),
    TypeCase(
        "scipy sparse matrix",
        "import scipy.sparse as sp\n"
        "VALUE = sp.random(200, 200, density=0.05, format='csr', random_state=0)",
        "VALUE.data[0] = 42.0",
        "store",
        "scipy",
    ),
    TypeCase(
        "scikit-learn estimator",
        "from sklearn.linear_model import LinearRegression\nVALUE = LinearRegression()",
        "VALUE.fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.5])",
        "store",
        "sklearn",
    ),
    TypeCase(
        "scikit-learn Bunch",
        "from sklearn.datasets import load_iris\nVALUE = load_iris()",
        "VALUE['extra'] = [1]",
        "store",
        "sklearn",
    ),
    TypeCase(
        "numpy masked array",
        "import numpy as np\n"
        "VALUE = np.ma.masked_array(np.arange(2000.0), mask=np.arange(2000) % 3 == 0)",
        "VALUE[1] = np.ma.masked",
        "store",
        "numpy",
    ),
    TypeCase(
        "torch tensor with grad",
        "import torch\nVALUE = torch.arange(5000, dtype=torch.float32).requires_grad_()",
        "with torch.no_grad():\n    VALUE[0] = 7",
        "store",
        "torch",
        "`.grad` is not saved (as with torch.save)",
    ),
    TypeCase(
        "torch module",
        "import torch\ntorch.manual_seed(0)\nVALUE = torch.nn.Linear(64, 32)",
        "with torch.no_grad():\n    VALUE.weight[0, 0] = 1.5",
        "store",
        "torch",
    ),
    TypeCase(
        "torch optimizer",
        "import torch\ntorch.manual_seed(0)\nVALUE_model = torch.nn.Linear(64, 8)\n"
        "VALUE = torch.optim.SGD(VALUE_model.parameters(), lr=0.1, momentum=0.9)\n"
        "VALUE_model(torch.ones(2, 64)).sum().backward()\nVALUE.step()",
        "VALUE.param_groups[0]['lr'] = 0.5",
        "store",
        "torch",
        "with its module's parameters (linked)",
    ),
    TypeCase(
        "matplotlib axes",
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "VALUE_figure, VALUE = plt.subplots()\nVALUE.plot(range(100))",
        "VALUE.set_title('changed')",
        "store",
        "matplotlib",
        "with its figure and artists (linked); not compared after a restore",
    ),
    TypeCase(
        "matplotlib figure",
        "import matplotlib\nmatplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\nVALUE = plt.figure()\n"
        "VALUE.add_subplot().plot(range(100))",
        "VALUE.suptitle('changed')",
        "store",
        "matplotlib",
        "with its axes and artists (linked); not compared after a restore",
    ),
    TypeCase(
        "class with slots",
        "class Slotted:\n    __slots__ = ('x',)\n"
        "    def __init__(self):\n        self.x = list(range(300))\nVALUE = Slotted()",
        "VALUE.x.append(1)",
        "store",
    ),
    TypeCase(
        "class with property",
        "class Temperature:\n    def __init__(self):\n"
        "        self._c = [20.0] * 300\n    @property\n    def first(self):\n"
        "        return self._c[0]\nVALUE = Temperature()",
        "VALUE._c[0] = 25.0",
        "store",
    ),
    TypeCase(
        "closure",
        "def make_counter():\n    seen = []\n    def count(x):\n"
        "        seen.append(x)\n        return len(seen)\n    return count\n"
        "VALUE = make_counter()",
        "VALUE(1)",
        "store",
    ),
    TypeCase("lambda", "VALUE = lambda x: x * 2", None, "store"),
    TypeCase(
        "generator",
        "VALUE = (i * i for i in range(10))",
        "next(VALUE)",
        "replay",
        note="generators cannot be serialized: replayed",
    ),
    TypeCase("iterator", "VALUE = iter(list(range(300)))", "next(VALUE)", "store"),
    TypeCase(
        "open file",
        "VALUE = open('type-case.txt', 'w')",
        "VALUE.write('x')",
        "replay",
        note="re-opened by replay",
    ),
    TypeCase("lock", "import threading\nVALUE = threading.Lock()", "VALUE.acquire()", "replay"),
    TypeCase("thread", "import threading\nVALUE = threading.Thread(target=print)", None, "replay"),
    TypeCase(
        "module",
        "import json as VALUE",
        None,
        "store",
        note="stored as its import name",
        codec="module",
    ),
]


def available(case: TypeCase) -> bool:
    """Whether the case's optional library is installed here."""
    if case.requires is None:
        return True
    import importlib.util

    return importlib.util.find_spec(case.requires) is not None
