"""JavaScript's JSON, run by node: what JupyterLab does to a notebook's text on every save."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")
_READ_STDIN = "let t='';process.stdin.on('data',d=>t+=d).on('end',()=>"


def node(script: str, data: str) -> str:
    """Run ``script`` with ``data`` on stdin; its stdout."""
    return subprocess.run(
        [NODE, "-e", script], input=data, capture_output=True, text=True, check=True
    ).stdout


def on_stdin(expression: str) -> str:
    """A node script that writes ``expression`` of the JSON text read from stdin (``t``)."""
    return f"{_READ_STDIN}process.stdout.write({expression}))"


def round_trip(text: str) -> str:
    """``JSON.stringify(JSON.parse(text), null, 1)``, as JupyterLab writes a notebook back."""
    return node(on_stdin("JSON.stringify(JSON.parse(t),null,1)+'\\n'"), text)


def round_trip_file(path: Path) -> None:
    """Rewrite the notebook at ``path`` as a UI save in JupyterLab would."""
    path.write_text(round_trip(path.read_text(encoding="utf-8")), encoding="utf-8")
