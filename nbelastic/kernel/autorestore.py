"""Restore, as a kernel starts, the checkpoint of the notebook it was started for.

The jupyter_server extension (nbelastic.server) sends ``await autorestore()`` as the new
kernel's first request, so it runs before any cell, in the kernel's loop (cells with top-level
``await`` replay there). It restores only a checkpoint this user signed (an
untrusted one could run anyone's code: see nbelastic.trust), and leaves one line for the user
above the output of the first cell they run: what came back, from when, how long it took, or
why nothing was restored. Nothing here raises: a failed restore must not break the kernel.
"""

from __future__ import annotations

import os
from pathlib import Path

from nbelastic.checkpoints import current_record
from nbelastic.errors import NbelasticError, NoCheckpointError
from nbelastic.kernel import restore_async
from nbelastic.notebook import read_checkpoint, sidecar_dir
from nbelastic.sessions import kernel_notebook
from nbelastic.trust import is_trusted

# The banner of the last restore, which the server reads back to log it.
last_banner: str | None = None


async def autorestore(notebook: str | os.PathLike | None = None) -> str | None:
    """Restore ``notebook`` (default: this kernel's, see nbelastic.sessions) into this kernel
    when it carries a checkpoint this user signed; the banner shown on the first cell, None if
    no checkpoint."""
    from IPython import get_ipython

    global last_banner
    shell = get_ipython()
    if shell is None:
        return None
    path = Path(notebook) if notebook else kernel_notebook(shell.user_ns)
    if path is None:
        return None
    try:
        line = await _restore(path)
    except NoCheckpointError:
        return None
    except NbelasticError as error:
        line = f"nbelastic: the saved state was not restored: {error}"
    _show_on_first_cell(shell, line)
    last_banner = line
    return line


async def _restore(path: Path) -> str:
    document = read_checkpoint(path, whole_notebook=False)
    if not is_trusted(document):
        return (
            f"nbelastic: {path.name} carries saved state you did not sign, so it was not "
            f"restored: review it with `nbelastic trust {path.name}`, then `%nbelastic restore`"
        )
    report = await restore_async(path, quiet=True)
    record = current_record(sidecar_dir(path), document)
    which = "" if record is None else f" of checkpoint {record.id} (saved {record.local_time()})"
    variables = len(report.verified) + len(report.unverifiable) + len(report.mismatched)
    line = f"nbelastic: restored {variables} variables{which} in {report.seconds:.1f} s"
    if not report.ok:
        line += f"; PROBLEMS: {report.summary()}"
    return line


def _show_on_first_cell(shell, line: str) -> None:
    """Print ``line`` when the first cell runs: output printed now would reach no cell."""

    def show(*args) -> None:
        shell.events.unregister("pre_run_cell", show)
        print(line, flush=True)

    shell.events.register("pre_run_cell", show)
