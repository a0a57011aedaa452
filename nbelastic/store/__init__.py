"""The sidecar store: codecs (value <-> bytes), content-addressed blobs, and the manifest.

Plain data and files only: nothing here knows about IPython or the history graph.
"""

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
