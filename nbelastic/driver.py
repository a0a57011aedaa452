"""Drive real IPython kernel processes from outside: run a notebook's cells, save, restore.

The CLI (and the tests) use this to start a brand-new kernel with ``jupyter_client``, send it
code, collect its outputs as nbformat outputs, and call the kernel-side save/restore, which
answer with one machine-readable line.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager

from nbelastic.checkpoints import find_checkpoint
from nbelastic.errors import NbelasticError
from nbelastic.locations import require_sidecar
from nbelastic.notebook import checkpoint_of, read_notebook
from nbelastic.rebuild import open_checkpoint

RESULT_MARKER = "NBELASTIC-RESULT "
STARTUP_TIMEOUT = 60
_POLL_SECONDS = 1.0


class KernelDiedError(NbelasticError):
    """The kernel process ended while it was running code (killed, crashed, out of memory)."""


class _ThisPython(KernelSpecManager):
    """Kernels run this very interpreter, so they import this nbelastic whatever kernelspecs
    the machine has installed."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(argv=argv, display_name="Python 3", language="python")


@dataclass
class CellResult:
    """What one execution printed, displayed and raised."""

    outputs: list = field(default_factory=list)
    error: str | None = None  # "Name: message" when the code raised
    execution_count: int | None = None

    @property
    def stdout(self) -> str:
        return "".join(o.get("text", "") for o in self.outputs if o.get("name") == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(o.get("text", "") for o in self.outputs if o.get("name") == "stderr")


_START_ATTEMPTS = 3
_PORT_TAKEN = "Address already in use"


class Kernel:
    """A live IPython kernel process, started fresh and shut down on exit."""

    def __init__(self, cwd: str | os.PathLike | None = None, session: str | None = None) -> None:
        self.cwd = Path(cwd) if cwd else Path.cwd()
        self.session = session
        self.manager: KernelManager | None = None
        self.client = None
        self.log = None

    def __enter__(self) -> Kernel:
        env = dict(os.environ)
        if self.session:
            env["JPY_SESSION_NAME"] = self.session
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start(env)
                return self
            except Exception as error:
                detail = self._last_log_line() or str(error)
                self.__exit__(None, None, None)
                # jupyter_client picks free ports, then the kernel binds them: another process
                # can take one in between. Fresh ports on a new try; other failures are final.
                if _PORT_TAKEN in detail and attempt < _START_ATTEMPTS:
                    continue
                raise NbelasticError(f"could not start a Python kernel: {detail}") from error
        raise AssertionError("unreachable")

    def _start(self, env: dict[str, str]) -> None:
        self.manager = KernelManager(kernel_name="python3", kernel_spec_manager=_ThisPython())
        # The kernel's own log (transport warnings, crashes) goes to a file, not the user's
        # terminal; its last line is shown if the kernel fails to start.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in __exit__
        self.manager.start_kernel(cwd=str(self.cwd), env=env, stderr=self.log)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=STARTUP_TIMEOUT)

    def _last_log_line(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def __exit__(self, *exc_info) -> None:
        if self.client is not None:
            self.client.stop_channels()
        if self.manager is not None and self.manager.has_kernel:
            self.manager.shutdown_kernel(now=True)
        if self.log is not None:
            self.log.close()
        self.client = self.manager = self.log = None

    def execute(
        self,
        code: str,
        *,
        silent: bool = False,
        timeout: float | None = None,
        on_output: Callable[[dict], None] | None = None,
    ) -> CellResult:
        """Run ``code`` like a notebook cell (``silent`` runs are not recorded by IPython)."""
        result = CellResult()

        def hook(message: dict) -> None:
            kind = message["msg_type"]
            if kind in ("stream", "display_data", "execute_result", "error"):
                output = nbformat.v4.output_from_msg(message)
                _append_output(result.outputs, output)
                if on_output is not None:
                    on_output(output)
            if kind == "error":
                content = message["content"]
                result.error = f"{content['ename']}: {content['evalue']}"

        msg_id = self.client.execute(code, silent=silent, store_history=not silent)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # outputs until the kernel is idle again
            message = self._next(self.client.get_iopub_msg, deadline, timeout)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            hook(message)
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                break
        reply = self._next(self.client.get_shell_msg, deadline, timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self._next(self.client.get_shell_msg, deadline, timeout)
        result.execution_count = reply["content"].get("execution_count")
        if reply["content"]["status"] == "error" and result.error is None:
            content = reply["content"]
            result.error = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"
        return result

    def _next(self, receive: Callable[..., dict], deadline: float | None, timeout) -> dict:
        """The next message from one channel; checks every second that the kernel still lives,
        so a kernel killed mid-cell ends the wait instead of hanging it forever."""
        while True:
            try:
                return receive(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not self.manager.is_alive():
                    raise _kernel_died() from None
                if deadline is not None and time.monotonic() > deadline:
                    raise NbelasticError(f"the kernel did not answer within {timeout} s") from None

    def call(
        self, operation: str, arguments: dict, on_stderr: Callable[[str], None] | None = None
    ) -> dict:
        """Await ``nbelastic.kernel.remote`` silently; its result, or NbelasticError as sent."""
        code = (
            "await __import__('nbelastic.kernel', fromlist=['remote'])"
            f".remote({operation!r}, {arguments!r})"
        )

        def forward(output: dict) -> None:
            if on_stderr is not None and output.get("name") == "stderr":
                on_stderr(output["text"])

        outcome = self.execute(code, silent=True, on_output=forward)
        for line in outcome.stdout.splitlines():
            if line.startswith(RESULT_MARKER):
                payload = json.loads(line[len(RESULT_MARKER) :])
                if not payload["ok"]:
                    raise NbelasticError(payload["error"])
                return payload["result"]
        detail = outcome.error or outcome.stderr.strip().splitlines()[-1:] or "no answer"
        raise NbelasticError(f"the kernel could not {operation}: {detail}")


@contextmanager
def notebook_cells(
    kernel: Kernel, nb: nbformat.NotebookNode
) -> Iterator[Callable[[nbformat.NotebookNode], CellResult]]:
    """A function that runs one code cell of ``nb`` in ``kernel`` and gives it its outputs and
    execution count, handled as Jupyter handles them (by nbclient, as ``jupyter nbconvert
    --execute``): ``clear_output(wait=True)`` clears at the next output, ``update_display_data``
    replaces the display it names in any cell, and the frames a progress bar draws with ``\r``
    collapse into its last one, so a progress bar leaves its last frame, not every frame."""
    from jupyter_client.asynchronous import AsyncKernelClient
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    connection = AsyncKernelClient()  # nbclient's own kind of client, on the same kernel
    connection.load_connection_info(kernel.manager.get_connection_info())
    connection.start_channels()
    client = NotebookClient(
        nb,
        km=kernel.manager,
        allow_errors=True,
        coalesce_streams=True,
        record_timing=False,
        timeout=None,
    )
    client.kc = connection

    def run(cell: nbformat.NotebookNode) -> CellResult:
        index = next(i for i, candidate in enumerate(nb.cells) if candidate is cell)
        try:
            client.execute_cell(cell, index)
        except DeadKernelError:
            raise _kernel_died() from None
        errors = [output for output in cell.outputs if output.output_type == "error"]
        error = f"{errors[-1].ename}: {errors[-1].evalue}" if errors else None
        return CellResult(cell.outputs, error, cell.execution_count)

    try:
        yield run
    finally:
        connection.stop_channels()


def _kernel_died() -> KernelDiedError:
    return KernelDiedError("the kernel died while running code (killed, crashed or out of memory)")


def _append_output(outputs: list, output: dict) -> None:
    """Merge consecutive stream chunks, as Jupyter shows them."""
    if (
        output.get("output_type") == "stream"
        and outputs
        and outputs[-1].get("output_type") == "stream"
        and outputs[-1]["name"] == output["name"]
    ):
        outputs[-1]["text"] += output["text"]
    else:
        outputs.append(output)


@contextmanager
def notebook_kernel(notebook: Path, *, in_its_folder: bool = True) -> Iterator[Kernel]:
    """A fresh kernel that believes it belongs to ``notebook`` and runs in its directory, or
    in an empty one: Python imports from the directory a kernel starts in before anything
    else, so an ``ipykernel_launcher.py`` or ``nbelastic/`` left next to a notebook someone
    sent would run in it."""
    notebook = notebook.resolve()
    with ExitStack() as stack:
        folder = (
            notebook.parent if in_its_folder else stack.enter_context(tempfile.TemporaryDirectory())
        )
        yield stack.enter_context(Kernel(cwd=folder, session=str(notebook)))


def restore_notebook(
    notebook: Path,
    *,
    at: str | None = None,
    echo: Callable[[str], None] = lambda text: None,
    trust: bool = False,
) -> dict:
    """Restore ``notebook``'s checkpoint (or the earlier one ``at`` names) in a brand-new
    kernel; the kernel's restore report. ``trust`` loads it even if this user did not sign it."""
    # a clear error before any kernel starts
    if at is not None:
        require_sidecar(notebook, checkpoint_of(read_notebook(notebook)))
    document = None if at is None else find_checkpoint(notebook, at).document
    # blobs and environment: in the kernel
    checkpoint = open_checkpoint(
        notebook, document, check_blobs=False, trust=trust, check_environment=False
    )
    arguments = {"notebook": str(notebook.resolve())} | ({} if at is None else {"at": at})
    arguments |= {"trust": True} if trust else {}
    # a checkpoint restored without trust runs no cell, which could need the folder
    with notebook_kernel(notebook, in_its_folder=trust or checkpoint.trusted) as kernel:
        load_extension(kernel)
        return kernel.call("restore", arguments, on_stderr=lambda text: echo(text.rstrip()))


def load_extension(kernel: Kernel) -> None:
    """``%load_ext nbelastic`` in ``kernel``; NbelasticError if it fails."""
    result = kernel.execute("%load_ext nbelastic", silent=True)
    if result.error:
        raise NbelasticError(f"the kernel could not load nbelastic: {result.error}")
