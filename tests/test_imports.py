"""The import clock: what importing each package took, for the restore estimate."""

from __future__ import annotations

import sys
import textwrap

import pytest
from checkpoint_kernels import save_in_kernel

from nbelastic.kernel.imports import ImportClock
from nbelastic.notebook import read_checkpoint

SLOW = 0.2


@pytest.fixture
def slow_package(tmp_path, monkeypatch):
    """A package that takes SLOW seconds to import, with a submodule that takes as long."""
    package = tmp_path / "slowpkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(f"""\
            import time
            time.sleep({SLOW})
            class Thing:
                pass
            """)
    )
    (package / "part.py").write_text(f"import time\ntime.sleep({SLOW})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("slowpkg", "slowpkg.part"):
        sys.modules.pop(name, None)


@pytest.fixture
def clock():
    clock = ImportClock()
    clock.install()
    yield clock
    clock.uninstall()


def test_an_import_is_charged_to_its_top_level_package(slow_package, clock):
    import slowpkg.part  # noqa: F401

    assert set(clock.seconds) == {"slowpkg"} and clock.seconds["slowpkg"] >= 2 * SLOW


def test_a_module_already_loaded_costs_nothing(slow_package, clock):
    import slowpkg  # noqa: F401

    before = dict(clock.seconds)
    import slowpkg  # noqa: F401, F811

    assert clock.seconds == before


def test_uninstall_gives_back_the_original_import():
    import builtins

    original = builtins.__import__
    clock = ImportClock()
    clock.install()
    clock.uninstall()
    assert builtins.__import__ is original


@pytest.mark.kernel
def test_a_save_records_the_imports_the_stored_values_need(slow_package):
    notebook = save_in_kernel(slow_package, ["import slowpkg", "v = slowpkg.Thing()"], "optimal")
    plan = read_checkpoint(notebook)["plan"]
    assert set(plan["imports"]) == {"slowpkg"} and plan["imports"]["slowpkg"] >= SLOW
    assert plan["restore_seconds"] >= plan["import_seconds"] >= SLOW
