"""The server extension's kernel side: each kernel knows its notebook and restores its state.

**Which notebook.** jupyter_server's sessions name the notebook by ``path`` and ``name``, and
JupyterLab changes both after the kernel started (a new notebook's path is a uuid at first; a
rename or move PATCHes it). Every kernel a session starts gets ``NBELASTIC_NOTEBOOK`` (the
notebook at start, kept current for a restart through jupyter_server's ``update_env``) and
``NBELASTIC_SESSION_FILE``, a file in a private directory of this server that holds the
session's current notebook and is rewritten on every session PATCH (see nbelastic.sessions).

**Restore.** When a session starts a kernel for a notebook that carries a checkpoint, and again
after Kernel > Restart, the server sends ``await autorestore()`` to the kernel before the UI
hears back, so it runs before any cell of the user's (a kernel runs requests in the order they
arrive). The kernel shows the outcome above the first cell's output; the server logs it.
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import contextvars
import shutil
import tempfile
import uuid
from contextlib import suppress
from pathlib import Path

from nbelastic.errors import NbelasticError
from nbelastic.notebook import checkpoint_of, read_notebook
from nbelastic.pending import newer_checkpoint
from nbelastic.sessions import (
    FRONTEND_WRITES_ENV,
    LOCATION_ENV,
    NOTEBOOK_ENV,
    session_notebook,
    write_location,
)

_MODULE = "__import__('nbelastic.kernel.autorestore', fromlist=['_'])"
_RESTORE_CODE = f"await {_MODULE}.autorestore()"
_BANNER = f"{_MODULE}.last_banner"
_RESTORE_TIMEOUT = 3600.0
_TASKS: set[asyncio.Task] = set()  # restores under way, kept from the garbage collector


class KernelNotebooks:
    """The notebook of each kernel this server started, told to the kernel as it changes."""

    def __init__(self, serverapp, *, autorestore: bool, frontend_writes: bool) -> None:
        self.root = Path(serverapp.root_dir)
        self.sessions = serverapp.session_manager
        self.kernels = serverapp.kernel_manager
        self.log = serverapp.log
        self.autorestore = autorestore
        self.frontend_writes = frontend_writes
        self.directory = Path(tempfile.mkdtemp(prefix="nbelastic-sessions-"))
        atexit.register(shutil.rmtree, self.directory, ignore_errors=True)
        self.files: dict[str, Path] = {}  # kernel id -> its location file
        self.notebooks: dict[str, Path | None] = {}  # kernel id -> its notebook
        self._starting: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
            "nbelastic_location", default=None
        )

    def install(self) -> None:
        """Wrap the session and kernel managers' methods that start, change and stop kernels."""
        self._wrap_get_kernel_env()
        self._wrap_start()
        self._wrap_update()
        self._wrap_restart()
        self._wrap_shutdown()

    def _wrap_get_kernel_env(self) -> None:
        original = self.sessions.get_kernel_env

        def get_kernel_env(path, name=None):
            env = original(path, name)
            notebook = session_notebook(self.root, path, name)
            if notebook is not None:
                env[NOTEBOOK_ENV] = str(notebook)
            location = self._starting.get()
            if location is not None:
                env[LOCATION_ENV] = str(location)
            if self.frontend_writes:
                env[FRONTEND_WRITES_ENV] = "1"
            return env

        self.sessions.get_kernel_env = get_kernel_env

    def _wrap_start(self) -> None:
        original = self.sessions.start_kernel_for_session

        async def start_kernel_for_session(session_id, path, name, type, kernel_name, *a, **kw):
            notebook = session_notebook(self.root, path, name)
            location = self.directory / f"{uuid.uuid4()}.json"
            write_location(location, notebook)
            token = self._starting.set(location)
            try:
                kernel_id = await original(session_id, path, name, type, kernel_name, *a, **kw)
            except BaseException:
                location.unlink(missing_ok=True)
                raise
            finally:
                self._starting.reset(token)
            self.files[kernel_id] = location
            self.notebooks[kernel_id] = notebook
            if type == "notebook":
                await self.restore(kernel_id)
            return kernel_id

        self.sessions.start_kernel_for_session = start_kernel_for_session

    def _wrap_update(self) -> None:
        original = self.sessions.update_session

        async def update_session(session_id, **kwargs):
            await original(session_id, **kwargs)
            model = await self.sessions.get_session(session_id=session_id)
            kernel_id = (model.get("kernel") or {}).get("id")
            if kernel_id in self.files:
                notebook = session_notebook(self.root, model.get("path"), model.get("name"))
                self.notebooks[kernel_id] = notebook
                write_location(self.files[kernel_id], notebook)

        self.sessions.update_session = update_session

    def _wrap_restart(self) -> None:
        original = self.kernels.restart_kernel

        async def restart_kernel(kernel_id, *args, **kwargs):
            restarted = await original(kernel_id, *args, **kwargs)
            await self.restore(kernel_id)
            return restarted

        self.kernels.restart_kernel = restart_kernel

    def _wrap_shutdown(self) -> None:
        original = self.kernels.shutdown_kernel

        async def shutdown_kernel(kernel_id, *args, **kwargs):
            try:
                return await original(kernel_id, *args, **kwargs)
            finally:
                self.notebooks.pop(kernel_id, None)
                location = self.files.pop(kernel_id, None)
                if location is not None:
                    location.unlink(missing_ok=True)

        self.kernels.shutdown_kernel = shutdown_kernel

    async def restore(self, kernel_id: str) -> None:
        """Ask the kernel to restore its notebook's checkpoint, if autorestore is on and the
        notebook carries one; the request is sent before this returns."""
        notebook = self.notebooks.get(kernel_id)
        if not self.autorestore or notebook is None or not _carries_checkpoint(notebook):
            return
        client = self.kernels.get_kernel(kernel_id).client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            msg_id = client.execute(
                _RESTORE_CODE,
                silent=True,
                store_history=False,
                user_expressions={"banner": _BANNER},
            )
        except Exception as error:  # a kernel that died at once: the UI will say so
            self.log.warning("nbelastic: could not restore %s: %s", notebook, error)
            client.stop_channels()
            return
        task = asyncio.ensure_future(_wait_for_restore(client, msg_id, notebook, self.log))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)


def _carries_checkpoint(notebook: Path) -> bool:
    try:
        return newer_checkpoint(notebook, checkpoint_of(read_notebook(notebook))) is not None
    except NbelasticError:
        return False


async def _wait_for_restore(client, msg_id: str, notebook: Path, log) -> None:
    """Log what the restore did (the kernel's banner), or that it failed outright."""
    try:
        while True:
            reply = await client.get_shell_msg(timeout=_RESTORE_TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        if content["status"] != "ok":
            log.warning("nbelastic: restoring %s failed: %s", notebook, content)
            return
        banner = content.get("user_expressions", {}).get("banner", {})
        with suppress(ValueError, SyntaxError):
            line = ast.literal_eval(banner.get("data", {}).get("text/plain", "None"))
            if isinstance(line, str):
                log.info("%s", line)
    except Exception as error:  # the kernel was shut down or died meanwhile
        log.warning("nbelastic: could not restore %s: %s", notebook, error)
    finally:
        client.stop_channels()
