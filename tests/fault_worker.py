"""A process that saves or restores a notebook's state, for the fault tests to kill and race.

It runs a plain IPython shell with the extension (no kernel, so a trial starts in about a
second) and prints one line per finished step, flushed, so the test knows how far it got:

    python fault_worker.py save NB ROUNDS FIRST STEP   # state i for i = FIRST, FIRST+STEP, ...
    python fault_worker.py restore NB                   # prints the report and the values, JSON
    python fault_worker.py limited NB BYTES             # saves, then saves under RLIMIT_FSIZE
"""

from __future__ import annotations

import json
import sys

from IPython.core.interactiveshell import InteractiveShell

import nbelastic.kernel

SIZE = 300_000  # 2.4 MB of int64 per state: each save writes a new blob of that size


def state_cells(i: int) -> list[str]:
    return [
        f"counter = {i}",
        f"data = np.full({SIZE}, {i}, dtype=np.int64)",
        f"words = [str(k) for k in range({i % 50})]",
    ]


def shell() -> InteractiveShell:
    ipython = InteractiveShell.instance()
    ipython.push({"nbelastic": nbelastic}, interactive=False)  # a tool, not state
    for code in ("%load_ext nbelastic", "import numpy as np"):
        run(ipython, code)
    return ipython


def run(ipython: InteractiveShell, code: str, *, silent: bool = False) -> None:
    ipython.run_cell(code, silent=silent).raise_error()


def save(notebook: str, rounds: int, first: int, step: int) -> None:
    ipython = shell()
    for i in range(first, first + rounds * step, step):
        for code in state_cells(i):
            run(ipython, code)
        code = f"nbelastic.kernel.save({notebook!r}, plan='store-all', bandwidth=1e9, quiet=True)"
        run(ipython, code, silent=True)
        print(f"saved {i}", flush=True)


def restore(notebook: str) -> None:
    ipython = shell()
    run(ipython, f"_report = nbelastic.kernel.restore({notebook!r}, quiet=True)", silent=True)
    namespace = ipython.user_ns
    data = namespace.get("data")
    print(
        json.dumps(
            {
                "report": namespace["_report"].to_json(),
                "counter": namespace.get("counter"),
                "data": None if data is None else [int(data.min()), int(data.max()), len(data)],
                "words": None if "words" not in namespace else len(namespace["words"]),
            }
        )
    )


def limited(notebook: str, limit: int) -> None:
    import resource

    ipython = shell()
    for code in state_cells(1):
        run(ipython, code)
    run(ipython, f"%nbelastic save {notebook} --plan store-all --bandwidth 1GB/s")
    print("saved 1", flush=True)
    for code in state_cells(2):
        run(ipython, code)
    unlimited = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, unlimited[1]))
    # The error goes to stderr as the magic prints it.
    run(ipython, f"%nbelastic save {notebook} --plan store-all --bandwidth 1GB/s")
    resource.setrlimit(resource.RLIMIT_FSIZE, unlimited)  # for IPython's own files at exit


if __name__ == "__main__":
    command, path, *numbers = sys.argv[1:]
    if command == "save":
        save(path, *map(int, numbers))
    elif command == "restore":
        restore(path)
    elif command == "limited":
        limited(path, int(numbers[0]))
    else:
        sys.exit(f"unknown command {command!r}")
