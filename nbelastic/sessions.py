"""Which notebook a Jupyter kernel belongs to: as the server names it, and as the kernel learns it.

JupyterLab 4 creates a session with ``path=<dir>/<uuid>`` and ``name=Untitled.ipynb``, then
PATCHes the path to the notebook's, and PATCHes path and name again on every rename or move.
The server extension (nbelastic.server) derives the notebook from both (``session_notebook``)
and keeps a small file per kernel up to date with it (``LOCATION_ENV`` names the file): a
kernel's environment is fixed when it starts, the file is read at each save. Kernels started
by other front-ends (VS Code, Notebook 7 without the extension) have Jupyter's own
``JPY_SESSION_NAME`` (``__session__``) or VS Code's ``__vsc_ipynb_file__`` instead.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path, PurePosixPath

# The file holding the notebook of this kernel's session, kept current by the server.
LOCATION_ENV = "NBELASTIC_SESSION_FILE"
# The full path of the notebook when the kernel started (also after a Kernel > Restart).
NOTEBOOK_ENV = "NBELASTIC_NOTEBOOK"
# Set on kernels whose notebook the front-end writes: a save leaves the .ipynb to it (see
# nbelastic.pending).
FRONTEND_WRITES_ENV = "NBELASTIC_FRONTEND_WRITES"


def session_notebook(root: Path, path: str | None, name: str | None) -> Path | None:
    """The notebook of a session with API ``path`` and ``name`` under the server's ``root``;
    None when neither names a file.

    >>> session_notebook(Path("/r"), "work/analysis.ipynb", "").as_posix()
    '/r/work/analysis.ipynb'
    >>> session_notebook(Path("/r"), "work/64f854ef-ebb5-4c2e", "Untitled.ipynb").as_posix()
    '/r/work/Untitled.ipynb'
    >>> session_notebook(Path("/r"), "console-1-64f854ef", "Console 1") is None
    True
    """
    if not path:
        return None
    api = PurePosixPath(path.strip("/"))
    if api.suffix:
        return root.joinpath(*api.parts)
    base = PurePosixPath(name or "").name
    if not PurePosixPath(base).suffix:
        return None
    return root.joinpath(*api.parent.parts, base)


def write_location(file: Path, notebook: Path | None) -> None:
    """Record ``notebook`` in a kernel's location ``file``, atomically (the kernel may read it
    at any moment)."""
    temporary = file.with_name(f".{file.name}.tmp")
    temporary.write_text(json.dumps({"notebook": None if notebook is None else str(notebook)}))
    os.replace(temporary, file)


def kernel_notebook(user_ns: dict) -> Path | None:
    """The notebook this kernel belongs to, from the best source it has; None if none says."""
    location = os.environ.get(LOCATION_ENV)
    if location:
        with suppress(OSError, ValueError, AttributeError, TypeError):
            recorded = json.loads(Path(location).read_text()).get("notebook")
            if recorded:
                return Path(recorded)
    for named in (
        os.environ.get(NOTEBOOK_ENV),
        user_ns.get("__vsc_ipynb_file__"),
        user_ns.get("__session__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if isinstance(named, str) and PurePosixPath(named).suffix:
            return Path(named).absolute()
    return None


def frontend_writes(notebook: Path, user_ns: dict) -> bool:
    """Whether a save into ``notebook`` must leave its file to the front-end: the server said
    so, and it is the existing ``.ipynb`` this kernel's session has open."""
    if os.environ.get(FRONTEND_WRITES_ENV) != "1" or notebook.suffix != ".ipynb":
        return False
    own = kernel_notebook(user_ns)
    if own is None or not notebook.is_file():
        return False
    with suppress(OSError):
        return own.resolve() == notebook.resolve()
    return False
