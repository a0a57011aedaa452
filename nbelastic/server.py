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

"On disk" includes a kernel's pending save: kernels this server starts do not rewrite the
notebook the UI has open (its next save would ask "File Changed"), they leave the checkpoint in
``<NB>.nbelastic/pending.json`` (nbelastic.pending), which the pre-save hook puts into the
UI's save and the post-save hook then deletes.

**Kernels know their notebook and restore the checkpoint** (nbelastic.server_kernels): when a
session starts a kernel for a notebook that carries a checkpoint, and after Kernel > Restart,
the server asks that kernel to restore it (nbelastic.kernel.autorestore), which prints a
one-line banner above the first cell's output. A checkpoint this user did not sign is not
loaded. Turn either job off with ``c.NbelasticServer.autorestore = False`` or
``c.NbelasticServer.keep_checkpoint = False`` in ``jupyter_server_config.py``.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

from traitlets import Bool
from traitlets.config import Configurable

from nbelastic import canonical
from nbelastic.errors import NbelasticError
from nbelastic.notebook import METADATA_KEY, checkpoint_of, read_notebook
from nbelastic.pending import discard_pending, newer_checkpoint, read_pending
from nbelastic.server_kernels import KernelNotebooks


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
        serverapp.contents_manager.register_post_save_hook(guard.post_save)
    KernelNotebooks(
        serverapp,
        autorestore=settings.autorestore,
        frontend_writes=settings.keep_checkpoint,  # only this guard writes a pending save
    ).install()
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
        self.pending: dict[str, dict | None] = {}  # API path -> pending save a save decided on

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
        """Put the checkpoint on disk (or a kernel's pending save, see nbelastic.pending) back
        into ``model`` when the UI never saw it."""
        if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
            return
        metadata = model["content"].setdefault("metadata", {})
        sent = identity(metadata.get(METADATA_KEY))
        seen = self.seen.get(_key(path), "never loaded through this server")
        self.seen[_key(path)] = sent  # after this save, the UI holds what it sent
        notebook = self.root / _key(path)
        try:
            on_disk = newer_checkpoint(notebook, checkpoint_of(read_notebook(notebook)))
        except NbelasticError:
            return  # a new file, or one that is not a notebook (yet): nothing to keep
        self.pending[_key(path)] = read_pending(notebook)
        if on_disk is None or identity(on_disk) in (sent, seen):
            return
        metadata[METADATA_KEY] = on_disk

    def post_save(self, model: dict, os_path: str, contents_manager=None, **kwargs) -> None:
        """The file now holds what the pre-save hook decided: a pending save it took into
        account is done with (unless a kernel saved a newer one meanwhile)."""
        path = model.get("path", "")
        pending = self.pending.pop(_key(path), None)
        if pending is not None:
            discard_pending(Path(os_path), pending)


def _key(path: str) -> str:
    return path.strip("/")
