"""Where a save puts the stored variables: a sidecar directory, or a remote store.

By default the sidecar directory next to the notebook. ``--store URL`` (any fsspec URL, e.g.
``s3://bucket/prefix``) or ``--store DIR`` puts them elsewhere, and the checkpoint records the
place. A later save without ``--store`` keeps a recorded URL: the team's bucket stays the place,
and a collaborator who saves does not silently fork the state into a local directory.

A notebook's sidecar goes by the notebook's name (``analysis.ipynb``: ``analysis.nbelastic/``),
never by the name recorded at save time: renaming or moving the pair (``git mv``, a file
browser) keeps them together, and every command finds the same sidecar (``sidecar_dir``).
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from urllib.parse import unquote, urlsplit

from nbelastic.errors import BlobMissingError, NbelasticError
from nbelastic.notebook import read_checkpoint, sidecar_dir
from nbelastic.store.blobs import BlobStore
from nbelastic.store.remote import RemoteBlobStore, is_url


def save_store(
    notebook: str | os.PathLike, requested: str | None = None
) -> BlobStore | RemoteBlobStore:
    """The store a save of ``notebook`` writes to, given the ``--store`` the user asked for."""
    if requested:
        requested = _local_path(requested)
        return RemoteBlobStore(requested) if is_url(requested) else BlobStore(Path(requested))
    recorded = None
    with suppress(NbelasticError):
        recorded = read_checkpoint(notebook, whole_notebook=False)["store"]
    if recorded is not None and is_url(recorded):
        return RemoteBlobStore(recorded)
    return BlobStore(sidecar_dir(notebook))


def _local_path(location: str) -> str:
    """A ``file://`` URL as the directory it names, which the sidecar's own code writes to (and
    the checkpoint records relative to the notebook, as for ``--store DIR``); else unchanged.

    >>> _local_path("file:///data/state"), _local_path("s3://bucket/state")
    ('/data/state', 's3://bucket/state')
    """
    parts = urlsplit(location)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return location
    return unquote(parts.path)


def open_store(location: str, notebook: str | os.PathLike) -> BlobStore | RemoteBlobStore:
    """The store a checkpoint of ``notebook`` names: a URL, the notebook's sidecar, or a
    directory relative to the notebook's.

    >>> open_store("demo.nbelastic", "work/analysis.ipynb").root.as_posix()
    'work/analysis.nbelastic'
    >>> open_store("../shared/state", "work/analysis.ipynb").root.as_posix()
    'work/../shared/state'
    """
    if is_url(location):
        return RemoteBlobStore(location)
    if is_sidecar_name(location):
        return BlobStore(sidecar_dir(notebook))
    return BlobStore(Path(notebook).parent / location)


def is_sidecar_name(location: str) -> bool:
    """Whether a recorded local store is a sidecar: a directory named ``*.nbelastic`` next to
    the notebook, as a save without ``--store`` records it.

    >>> is_sidecar_name("demo.nbelastic"), is_sidecar_name("../demo.nbelastic")
    (True, False)
    """
    return location.endswith(".nbelastic") and Path(location).name == location


def require_sidecar(notebook: str | os.PathLike, document: object) -> None:
    """Raise BlobMissingError if ``document`` (``notebook``'s checkpoint as it is, or None)
    keeps its state in the notebook's sidecar and there is none.

    Every command that reads the sidecar asks this first, so all of them say the same line.
    A notebook renamed without its sidecar (``demo.ipynb`` to ``analysis.ipynb``, keeping
    ``demo.nbelastic/``) is told to rename the sidecar too.
    """
    location = document.get("store", "") if isinstance(document, dict) else None
    sidecar = sidecar_dir(notebook)
    if not isinstance(location, str) or is_url(location) or sidecar.is_dir():
        return
    if location and not is_sidecar_name(location):
        return  # a directory of its own (--store DIR), which the commands check themselves
    old = Path(notebook).parent / location
    hint = ""
    if location and old != sidecar and old.is_dir():
        hint = f" ({old} is there: rename it to {sidecar.name}, as the notebook is)"
    raise BlobMissingError(
        f"the sidecar store {sidecar} is missing{hint}: copy it next to "
        f"{Path(notebook).name} (it holds the stored variables) and try again"
    )
