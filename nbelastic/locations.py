"""Where a save puts the stored variables: a sidecar directory, or a remote store.

By default the sidecar directory next to the notebook. ``--store URL`` (any fsspec URL, e.g.
``s3://bucket/prefix``) or ``--store DIR`` puts them elsewhere, and the checkpoint records the
place. A later save without ``--store`` keeps a recorded URL: the team's bucket stays the place,
and a collaborator who saves does not silently fork the state into a local directory.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from nbelastic.errors import NbelasticError
from nbelastic.notebook import read_checkpoint, sidecar_dir
from nbelastic.store.blobs import BlobStore
from nbelastic.store.remote import RemoteBlobStore, is_url


def save_store(
    notebook: str | os.PathLike, requested: str | None = None
) -> BlobStore | RemoteBlobStore:
    """The store a save of ``notebook`` writes to, given the ``--store`` the user asked for."""
    if requested:
        return RemoteBlobStore(requested) if is_url(requested) else BlobStore(Path(requested))
    recorded = None
    with suppress(NbelasticError):
        recorded = read_checkpoint(notebook, whole_notebook=False)["store"]
    if recorded is not None and is_url(recorded):
        return RemoteBlobStore(recorded)
    return BlobStore(sidecar_dir(notebook))
