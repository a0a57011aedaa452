"""Loading the extension and watching cells import nothing heavy; the rest comes on demand.

Every kernel pays for what ``%load_ext nbelastic`` imports, and most never save: jsonschema,
nbformat, jupytext and networkx once took 1.3 s and 47 MB there. A restore reads an ``.ipynb``
without nbformat (whose jsonschema import alone takes over a second). Each check runs in a
fresh interpreter, since this one imported everything long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import nbformat
import pytest
from test_fuzz_readers import valid_document

from nbelastic.notebook import read_checkpoint

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


_WATCHING = textwrap.dedent(f"""
    from IPython.core.interactiveshell import InteractiveShell
    import nbelastic
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbelastic")
    for code in {_CELLS!r}:
        assert shell.run_cell(code).success
""")


def saved_notebook(tmp_path) -> str:
    """A notebook saved by a fresh Python, which imported what saving needs on demand."""
    notebook = tmp_path / "saved.ipynb"
    imported_after(_WATCHING + f"nbelastic.save({str(notebook)!r}, quiet=True)")
    return str(notebook)


def test_importing_the_kernel_package_imports_nothing_heavy():
    assert imported_after("import nbelastic.kernel") == []


def test_loading_the_extension_and_running_cells_imports_nothing_heavy():
    assert imported_after(_WATCHING) == []


def test_status_plans_without_importing_the_notebook_readers():
    imported = set(imported_after(_WATCHING + 'shell.run_line_magic("nbelastic", "status")'))
    assert "networkx" in imported
    assert not {"jsonschema", "nbformat", "jupytext", "fsspec"} & imported


@pytest.mark.parametrize(
    "module", ["nbelastic.notebook", "nbelastic.planner", "nbelastic.textconv"]
)
def test_modules_imported_for_a_constant_or_a_helper_import_nothing_heavy(module):
    assert imported_after(f"import {module}") == []


def test_a_valid_checkpoint_is_checked_without_jsonschema():
    script = f"""
        import json
        from nbelastic.notebook import validate_checkpoint
        validate_checkpoint(json.loads({json.dumps(valid_document())!r}))
    """
    assert imported_after(script) == []


def test_a_fresh_kernel_saves_with_what_it_imports_on_demand(tmp_path):
    notebook = saved_notebook(tmp_path)
    assert read_checkpoint(notebook)["variables"].keys() == {"numbers", "random", "total"}


def test_restoring_an_ipynb_reads_it_without_nbformat(tmp_path):
    notebook = saved_notebook(tmp_path)
    restore = f"""
        from IPython.core.interactiveshell import InteractiveShell
        import nbelastic
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "nbelastic")
        assert nbelastic.restore({notebook!r}, quiet=True).ok
        assert len(shell.user_ns["numbers"]) == 100
    """
    assert not {"nbformat", "jsonschema", "jupytext"} & set(imported_after(restore))


def test_saving_into_an_existing_ipynb_imports_no_notebook_reader(tmp_path):
    notebook = tmp_path / "existing.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), notebook)
    imported = imported_after(_WATCHING + f"nbelastic.save({str(notebook)!r}, quiet=True)")
    assert not {"nbformat", "jsonschema", "jupytext"} & set(imported)
    assert read_checkpoint(notebook)["variables"].keys() == {"numbers", "random", "total"}
