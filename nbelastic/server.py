"""The jupyter_server extension: JupyterLab saves keep the checkpoint; kernels restore it.

Enabled on install (``jupyter-config/jupyter_server_config.d/nbelastic.json``). Two jobs:

**Saves from the UI keep the checkpoint.** ``%nbelastic save`` writes the notebook's metadata on
disk while JupyterLab holds the copy it loaded earlier; the next save from the UI would write
that older copy back and drop the checkpoint. A pre-save hook decides, per notebook, from what
this server gave the UI (the checkpoint in the last model the UI loaded or saved):

* the UI's copy carries the checkpoint on disk: nothing to do;
* the UI had loaded the checkpoint now on disk, and its copy differs (the user deleted or edited
  the ``nbelastic`` key in the metadata editor): the UI's copy is the user's choice, it is saved;
* otherwise the checkpoint on disk is newer than anything the UI saw (a kernel saved it after
  the UI loaded the notebook, or this server restarted since): it is kept, whatever the UI
  sent. Nothing is lost by default; ``nbelastic strip NB`` removes a checkpoint for good.

**Kernels restore the checkpoint.** When a session starts a kernel for a notebook that carries
a checkpoint, the server asks that kernel to restore it (nbelastic.kernel.autorestore), which
prints a one-line banner above the first cell's output. A checkpoint this user did not sign is
not loaded. Turn either job off with ``c.NbelasticServer.autorestore = False`` or
``c.NbelasticServer.keep_checkpoint = False`` in ``jupyter_server_config.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from pathlib import Path

from traitlets import Bool
from traitlets.config import Configurable

from nbelastic import canonical
from nbelastic.errors import NbelasticError
from nbelastic.notebook import METADATA_KEY, NOTEBOOK_ENV, checkpoint_of, read_notebook

_RESTORE_CODE = "await __import__('nbelastic.kernel.autorestore', fromlist=['_']).autorestore()"
_RESTORE_TIMEOUT = 3600.0


class NbelasticServer(Configurable):
    """Settings of the nbelastic server extension (``c.NbelasticServer.*``)."""

    autorestore = Bool(
        True, help="Restore a notebook's checkpoint when a kernel starts for it."
    ).tag(config=True)
    keep_checkpoint = Bool(
        True, help="Keep the checkpoint on disk when the UI saves an older copy of the notebook."
    ).tag(config=True)


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "nbelastic.server"}]


def _load_jupyter_server_extension(serverapp) -> None:
    settings = NbelasticServer(config=serverapp.config)
    root = Path(serverapp.root_dir)
    if settings.keep_checkpoint:
        guard = SaveGuard(root)
        guard.watch(serverapp.contents_manager)
        serverapp.contents_manager.register_pre_save_hook(guard.pre_save)
    _give_kernels_their_notebook(serverapp.session_manager, root)
    if settings.autorestore:
        _restore_in_new_kernels(serverapp.session_manager, root, serverapp.log)
    serverapp.log.info(
        "nbelastic: keep_checkpoint=%s autorestore=%s",
        settings.keep_checkpoint,
        settings.autorestore,
    )


def identity(document: object) -> str | None:
    """A fingerprint of a checkpoint, or None for no checkpoint: the same for the copy the UI
    sends back (through JavaScript's JSON) as for the file the kernel wrote."""
    if document is None:
        return None
    try:
        return canonical.digest(document)
    except ValueError:  # NaN, which Python reads from a file JavaScript could not parse
        return hashlib.sha256(canonical.legacy(document).encode("utf-8")).hexdigest()


class SaveGuard:
    """The pre-save hook and what it remembers: the checkpoint each UI copy carries."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: dict[str, str | None] = {}  # API path -> identity of the UI's checkpoint

    def watch(self, contents_manager) -> None:
        """Remember the checkpoint of every notebook model the server hands out."""
        original = contents_manager.get

        def remember(path: str, model: dict) -> dict:
            if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
                document = model["content"].get("metadata", {}).get(METADATA_KEY)
                self.seen[_key(path)] = identity(document)
            return model

        if inspect.iscoroutinefunction(original):

            async def get(path, content=True, *args, **kwargs):
                return remember(path, await original(path, content, *args, **kwargs))

        else:

            def get(path, content=True, *args, **kwargs):
                return remember(path, original(path, content, *args, **kwargs))

        contents_manager.get = get

    def pre_save(self, model: dict, path: str, contents_manager=None, **kwargs) -> None:
        """Put the checkpoint on disk back into ``model`` when the UI never saw it."""
        if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
            return
        metadata = model["content"].setdefault("metadata", {})
        sent = identity(metadata.get(METADATA_KEY))
        seen = self.seen.get(_key(path), "never loaded through this server")
        self.seen[_key(path)] = sent  # after this save, the UI holds what it sent
        try:
            on_disk = checkpoint_of(read_notebook(self.root / _key(path)))
        except NbelasticError:
            return  # a new file, or one that is not a notebook (yet): nothing to keep
        if on_disk is None or identity(on_disk) in (sent, seen):
            return
        metadata[METADATA_KEY] = on_disk


def _key(path: str) -> str:
    return path.strip("/")


def _give_kernels_their_notebook(session_manager, root: Path) -> None:
    """Tell each session's kernel the notebook's full path (``NBELASTIC_NOTEBOOK``): the
    session name jupyter_server gives it is relative to the server's root, not to the
    kernel's working directory."""
    original = session_manager.get_kernel_env

    def get_kernel_env(path, name=None):
        env = original(path, name)
        if path:
            env[NOTEBOOK_ENV] = str(root / _key(path))
        return env

    session_manager.get_kernel_env = get_kernel_env


def _restore_in_new_kernels(session_manager, root: Path, log) -> None:
    """After a session starts a kernel for a notebook with a checkpoint, restore it there.

    The restore request is sent before the session is returned to the UI, so the kernel,
    which runs requests in the order they arrive, runs it before any cell of the user's.
    """
    original = session_manager.start_kernel_for_session

    async def start_kernel_for_session(session_id, path, name, type, kernel_name, *args, **kw):
        kernel_id = await original(session_id, path, name, type, kernel_name, *args, **kw)
        if path and type == "notebook" and _carries_checkpoint(root / _key(path)):
            client = session_manager.kernel_manager.get_kernel(kernel_id).client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=60)
                msg_id = client.execute(_RESTORE_CODE, silent=True, store_history=False)
            except Exception as error:  # a kernel that died at once: the UI will say so
                log.warning("nbelastic: could not restore %s: %s", path, error)
                client.stop_channels()
                return kernel_id
            task = asyncio.ensure_future(_wait_for_restore(client, msg_id, path, log))
            _TASKS.add(task)
            task.add_done_callback(_TASKS.discard)
        return kernel_id

    session_manager.start_kernel_for_session = start_kernel_for_session


_TASKS: set[asyncio.Task] = set()  # restores under way, kept from the garbage collector


def _carries_checkpoint(notebook: Path) -> bool:
    try:
        return checkpoint_of(read_notebook(notebook)) is not None
    except NbelasticError:
        return False


async def _wait_for_restore(client, msg_id: str, path: str, log) -> None:
    """Log a restore that failed outright; the kernel's banner tells the user the rest."""
    try:
        while True:
            reply = await client.get_shell_msg(timeout=_RESTORE_TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        if reply["content"]["status"] != "ok":
            log.warning("nbelastic: restoring %s failed: %s", path, reply["content"])
    except Exception as error:  # the kernel was shut down or died meanwhile
        log.warning("nbelastic: could not restore %s: %s", path, error)
    finally:
        client.stop_channels()
