"""Save a notebook's state in one real kernel and restore it in another, for the trust and
integrity tests that tamper with the checkpoint in between."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from nbelastic.driver import Kernel


def save_in_kernel(
    directory: Path, cells: Sequence[str], plan: str, before_extension: Sequence[str] = ()
) -> Path:
    """Run ``cells`` (``before_extension`` first, unwatched); save to ``directory/nb.ipynb``."""
    notebook = directory / "nb.ipynb"
    with Kernel(cwd=directory) as kernel:
        for code in [*before_extension, "%load_ext nbelastic", *cells]:
            assert kernel.execute(code).error is None, code
        kernel.call("save", {"notebook": str(notebook), "plan": plan, "bandwidth": 1e9})
    return notebook


def restore_in_kernel(notebook: Path, names: Sequence[str], **options) -> tuple[dict, dict]:
    """Restore ``notebook`` in a fresh kernel: the report, and the reprs of ``names`` there."""
    with Kernel(cwd=notebook.parent) as kernel:
        assert kernel.execute("%load_ext nbelastic").error is None
        report = kernel.call("restore", {"notebook": str(notebook), **options})
        shown = kernel.execute(
            "print(__import__('json').dumps({k: repr(v) for k, v in globals().items() "
            f"if k in {list(names)!r}}}))",
            silent=True,
        )
        assert shown.error is None, shown.error
        return report, json.loads(shown.stdout)
