"""The sidecar store: codecs (value <-> bytes), content-addressed blobs, and the manifest.

Plain data and files only: nothing here knows about IPython or the history graph.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names as type checkers see them; at run time __getattr__ loads them
    from nbelastic.store.blobs import BlobStore
    from nbelastic.store.codecs import (
        CODECS,
        SAFE_CODECS,
        decode_group,
        encode_group,
        load_group,
        store_group,
    )
    from nbelastic.store.manifest import Manifest, ManifestEntry, read_manifest, write_manifest

# Where each public name lives. They are imported on first use (PEP 562), so that importing one
# submodule (the pickle inspector behind git's textconv, say) does not load every codec and dill.
_HOMES = {
    "BlobStore": "blobs",
    "CODECS": "codecs",
    "SAFE_CODECS": "codecs",
    "decode_group": "codecs",
    "encode_group": "codecs",
    "load_group": "codecs",
    "store_group": "codecs",
    "Manifest": "manifest",
    "ManifestEntry": "manifest",
    "read_manifest": "manifest",
    "write_manifest": "manifest",
}


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "CODECS",
    "SAFE_CODECS",
    "BlobStore",
    "Manifest",
    "ManifestEntry",
    "decode_group",
    "encode_group",
    "load_group",
    "read_manifest",
    "store_group",
    "write_manifest",
]
