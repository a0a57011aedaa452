"""Loading the extension and watching cells import nothing heavy; saving imports what it needs.

Every kernel pays for what ``%load_ext nbelastic`` imports, most never save: jsonschema,
networkx, jupytext, nbformat and fsspec took 1.4 s and 47 MB there. Each check runs in a fresh
interpreter, since this one has imported everything long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("jsonschema", "networkx", "jupytext", "nbformat", "fsspec", "dill", "tornado")

_CELLS = [
    "import random\nnumbers = [random.random() for _ in range(100)]",
    "def total(values):\n    return sum(values)",
    "result = total(numbers)",
    "del result",
]


def imported_after(script: str) -> list[str]:
    """The HEAVY modules imported once ``script`` ran in a fresh Python."""
    report = f"print(__import__('json').dumps(sorted(set({HEAVY!r}) & set(sys.modules))))"
    code = "import sys\n" + textwrap.dedent(script) + "\n" + report
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_the_kernel_package_imports_nothing_heavy():
    assert imported_after("import nbelastic.kernel") == []


def test_loading_the_extension_and_running_cells_imports_nothing_heavy():
    script = f"""
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "nbelastic")
        for code in {_CELLS!r}:
            assert shell.run_cell(code).success
    """
    assert imported_after(script) == []


def test_status_plans_without_importing_the_notebook_readers():
    script = f"""
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "nbelastic")
        for code in {_CELLS!r}:
            assert shell.run_cell(code).success
        shell.run_line_magic("nbelastic", "status")
    """
    imported = set(imported_after(script))
    assert "networkx" in imported
    assert not {"jsonschema", "nbformat", "jupytext", "fsspec"} & imported


@pytest.mark.parametrize(
    "module", ["nbelastic.notebook", "nbelastic.planner", "nbelastic.textconv"]
)
def test_modules_imported_for_a_constant_or_a_helper_import_nothing_heavy(module):
    assert imported_after(f"import {module}") == []


def test_saving_imports_what_it_needs(tmp_path):
    notebook = tmp_path / "saved.ipynb"
    script = f"""
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "nbelastic")
        for code in {_CELLS!r}:
            assert shell.run_cell(code).success
        import nbelastic
        nbelastic.save({str(notebook)!r}, quiet=True)
    """
    imported = set(imported_after(script))
    assert notebook.exists()
    assert {"nbformat", "networkx", "dill"} <= imported
