"""nbelastic: save a notebook with its live state and resume it in a fresh kernel.

In a notebook: ``%load_ext nbelastic``, work as usual, then ``%nbelastic save``; in a new kernel
``%nbelastic restore``. The same from Python: ``nbelastic.save(path)``, ``nbelastic.restore(path)``.
"""

from __future__ import annotations

__version__ = "0.1.0"


def load_ipython_extension(shell) -> None:
    """``%load_ext nbelastic``: start watching cell executions."""
    from nbelastic.kernel import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell) -> None:
    """``%unload_ext nbelastic``: stop watching."""
    from nbelastic.kernel import unload_ipython_extension as unload

    unload(shell)


def save(notebook=None, **options):
    """Save this kernel's state into ``notebook``; see ``nbelastic.kernel.save``."""
    from nbelastic.kernel import save as save_in_kernel

    return save_in_kernel(notebook, **options)


def restore(notebook=None, **options):
    """Restore ``notebook``'s saved state into this kernel; see ``nbelastic.kernel.restore``."""
    from nbelastic.kernel import restore as restore_in_kernel

    return restore_in_kernel(notebook, **options)


async def restore_async(notebook=None, **options):
    """``await nbelastic.restore_async()``: ``restore`` in the kernel's running loop, where cells
    with top-level ``await`` replay too; see ``nbelastic.kernel.restore_async``."""
    from nbelastic.kernel import restore_async as restore_in_loop

    return await restore_in_loop(notebook, **options)
