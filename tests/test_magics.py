"""The ``%nbelastic`` magic and the Python API, used from inside real kernels."""

from __future__ import annotations

import re

import nbformat
import pytest

from nbelastic.driver import Kernel

pytestmark = pytest.mark.kernel


@pytest.fixture
def kernels(tmp_path):
    started: list[Kernel] = []

    def start(session: str | None = None) -> Kernel:
        kernel = Kernel(cwd=tmp_path, session=session).__enter__()
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        kernel.__exit__(None, None, None)


def run_cells(kernel: Kernel, *cells: str) -> None:
    for code in cells:
        result = kernel.execute(code)
        assert result.error is None, result.error


def test_save_to_a_new_path_creates_a_notebook_with_the_executed_cells(kernels, tmp_path):
    kernel = kernels()
    run_cells(kernel, "%load_ext nbelastic", "a = [1, 2]", "b = sum(a)")
    result = kernel.execute("%nbelastic save fresh.ipynb")
    assert result.error is None and "saved 2 variables to fresh.ipynb" in result.stdout
    notebook = nbformat.read(tmp_path / "fresh.ipynb", as_version=4)
    assert [c.source for c in notebook.cells] == ["a = [1, 2]", "b = sum(a)"]
    assert notebook.metadata["nbelastic"]["format"] == 1


def test_save_and_restore_default_to_the_session_notebook(kernels, tmp_path):
    session = str(tmp_path / "session.ipynb")
    first = kernels(session)
    run_cells(first, "%load_ext nbelastic", "x = {'k': 1}")
    assert "saved" in first.execute("%nbelastic save").stdout
    second = kernels(session)
    run_cells(second, "%load_ext nbelastic")
    restored = second.execute("%nbelastic restore")
    assert restored.error is None
    assert restored.stdout.startswith("restored 1 variables")
    assert second.execute("print(x)", silent=True).stdout.strip() == "{'k': 1}"


def test_python_api_restore_works_after_the_extension_is_loaded(kernels):
    first = kernels()
    run_cells(first, "%load_ext nbelastic", "word = 'kept'", "%nbelastic save api2.ipynb")
    second = kernels()
    result = second.execute(
        "%load_ext nbelastic\nimport nbelastic\nprint(nbelastic.restore('api2.ipynb').ok, word)"
    )
    assert result.error is None, result.error
    assert result.stdout.strip().endswith("True kept")


def test_python_api_restores_without_loading_the_extension_first(kernels, tmp_path):
    first = kernels()
    run_cells(first, "%load_ext nbelastic", "import math", "r = math.sqrt(16)")
    run_cells(first, "import nbelastic\nnbelastic.save('api.ipynb')")
    second = kernels()
    result = second.execute(
        "import nbelastic\nreport = nbelastic.restore('api.ipynb')\nprint(report.ok, r)"
    )
    assert result.stdout.strip() == "True 4.0"


def test_status_lists_each_variable_with_its_action(kernels):
    kernel = kernels()
    run_cells(kernel, "%load_ext nbelastic", "nums = list(range(10))", "gen = (n for n in nums)")
    table = kernel.execute("%nbelastic status --bandwidth 100MB/s").stdout
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["variable", "type", "size", "action"]
    gen_row = next(line for line in lines if line.startswith("gen "))
    assert " replay " in gen_row and "generator cannot be serialized" in gen_row
    assert any(line.startswith("nums ") for line in lines)
    assert lines[-3].startswith("estimated restore:")
    assert lines[-2].startswith("changes between cells:")
    assert re.fullmatch(
        r"watching cost \d+\.\d{3} s over \d+ cells \(.*% of their .* s\)"
        r"(, and \d+ watched pages written)?",
        lines[-1],
    )


def test_status_says_what_cannot_be_stored_and_what_replaying_it_costs(kernels):
    kernel = kernels()
    cells = ["%load_ext nbelastic", "import time", "nums = [1, 2]"]
    run_cells(kernel, *cells, "time.sleep(0.2)\ngen = (n for n in nums)")
    table = kernel.execute("%nbelastic status --bandwidth 100MB/s").stdout
    forced = next(line for line in table.splitlines() if line.startswith("cannot be stored"))
    found = re.fullmatch(
        r"cannot be stored, so replayed: gen \(generator cannot be serialized\); "
        r"replaying cells \d+(, \d+)* costs (\d+\.\d\d) s",
        forced,
    )
    assert found, forced
    assert float(found[2]) >= 0.2  # the cell that made gen slept that long


def test_errors_are_one_line_without_traceback(kernels):
    kernel = kernels()
    run_cells(kernel, "%load_ext nbelastic")
    result = kernel.execute("%nbelastic restore missing.ipynb")
    assert result.error is None
    assert result.stderr.strip() == "nbelastic: no notebook at missing.ipynb: check the path"


def test_save_without_a_path_outside_jupyter_says_what_to_do(kernels):
    kernel = kernels()
    run_cells(kernel, "%load_ext nbelastic", "a = 1")
    stderr = kernel.execute("%nbelastic save").stderr
    assert "give its path" in stderr and "Traceback" not in stderr


def test_saving_requires_the_extension(kernels):
    kernel = kernels()
    stderr = kernel.execute(
        "import nbelastic\ntry:\n    nbelastic.save('x.ipynb')\n"
        "except Exception as e:\n    print(e)"
    ).stdout
    assert "%load_ext nbelastic" in stderr


def test_bad_magic_arguments_are_one_line(kernels):
    kernel = kernels()
    run_cells(kernel, "%load_ext nbelastic")
    stderr = kernel.execute("%nbelastic save --plan fastest").stderr
    assert stderr.startswith("nbelastic: argument --plan: invalid choice")
    assert len(stderr.strip().splitlines()) == 1
