"""Shared fixtures: real kernel processes and the save -> new kernel -> restore round trip."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from nbelastic.driver import Kernel
from nbelastic.trust import SECRET_ENV

PROBE = Path(__file__).with_name("kernel_probe.py")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def describe_namespace(kernel: Kernel) -> dict[str, str]:
    """Every user variable of ``kernel``, described without nbelastic (see kernel_probe)."""
    code = (
        f"print(__import__('json').dumps(__import__('runpy').run_path({str(PROBE)!r})"
        "['describe_namespace']()))"
    )
    result = kernel.execute(code, silent=True)
    assert result.error is None, result.error
    return json.loads(result.stdout)


def evaluate(kernel: Kernel, expression: str) -> object:
    """The value of ``expression`` in ``kernel``, sent back as JSON."""
    result = kernel.execute(f"print(__import__('json').dumps({expression}))", silent=True)
    assert result.error is None, f"{expression}: {result.error}"
    return json.loads(result.stdout)


@dataclass
class RoundTrip:
    notebook: Path
    before: dict[str, str]
    after: dict[str, str]
    save: dict
    restore: dict
    restored_kernel: Kernel
    original_kernel: Kernel

    def check(self, expression: str) -> object:
        return evaluate(self.restored_kernel, expression)


@pytest.fixture(scope="session", autouse=True)
def signing_secret(tmp_path_factory) -> Path:
    """The tests sign checkpoints with a secret of their own, never the user's; the kernels
    and CLI processes they start inherit it through the environment."""
    path = tmp_path_factory.mktemp("trust") / "secret"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SECRET_ENV, str(path))
        yield path


@pytest.fixture
def roundtrip(tmp_path):
    """Run cells in one kernel, save, restore in a brand-new kernel process, describe both.

    Returns a function ``(cells, expect_errors=(), before_extension=(), **save_options)``. Both
    kernels stay alive until the test ends, for identity checks with ``.check``.
    """
    kernels: list[Kernel] = []

    def start() -> Kernel:
        kernel = Kernel(cwd=tmp_path).__enter__()
        kernels.append(kernel)
        return kernel

    def run(cells, expect_errors=(), before_extension=(), **save_options) -> RoundTrip:
        notebook = tmp_path / "roundtrip.ipynb"
        first = start()
        for code in before_extension:
            assert first.execute(code).error is None
        assert first.execute("%load_ext nbelastic").error is None
        for index, code in enumerate(cells):
            result = first.execute(code)
            if index in expect_errors:
                assert result.error is not None, f"cell {index} should raise"
            else:
                assert result.error is None, f"cell {index}: {result.error}"
        before = describe_namespace(first)
        saved = first.call("save", {"notebook": str(notebook), **save_options})
        second = start()
        restored = second.call("restore", {"notebook": str(notebook)})
        after = describe_namespace(second)
        return RoundTrip(notebook, before, after, saved, restored, second, first)

    yield run
    for kernel in kernels:
        kernel.__exit__(None, None, None)
