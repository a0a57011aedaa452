"""What changed between two checkpoints: variables added, changed and removed, and bytes.

Used by ``nbelastic log`` and ``nbelastic diff`` and by the git diff of a notebook's metadata.
Everything is read from the metadata documents (and the manifests they name); no value is
decoded, so comparing untrusted checkpoints runs no code.

A variable *changed* when its content hash differs. A value without a content hash (an open
file, a generator) counts as changed when its type, its size or the code of the cell that last
wrote it differs: the best evidence the document holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from nbelastic.errors import NbelasticError
from nbelastic.notebook import hasher_version
from nbelastic.store import BlobStore, read_manifest
from nbelastic.store.remote import RemoteBlobStore


@dataclass(frozen=True)
class VariableChange:
    """One variable that differs between two checkpoints; ``before``/``after`` are its rows of
    the documents' ``variables`` table (None where it does not exist)."""

    name: str
    kind: str  # "added", "changed" or "removed"
    before: dict | None
    after: dict | None


@dataclass(frozen=True)
class Changes:
    """The variables that differ between two checkpoints, by name."""

    items: tuple[VariableChange, ...]

    def names(self, kind: str) -> list[str]:
        return [item.name for item in self.items if item.kind == kind]

    def brief(self) -> str:
        """``+new ~changed -removed``, or ``no change``.

        >>> Changes((VariableChange("a", "added", None, {}),)).brief()
        '+a'
        """
        marks = {"added": "+", "changed": "~", "removed": "-"}
        return " ".join(marks[i.kind] + i.name for i in self.items) or "no change"


def compare(before: dict | None, after: dict) -> Changes:
    """The variables that differ from checkpoint document ``before`` (None: an empty state) to
    ``after``, sorted by name."""
    old = {} if before is None else before["variables"]
    new = after["variables"]
    items = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            items.append(VariableChange(name, "added", None, new[name]))
        elif name not in new:
            items.append(VariableChange(name, "removed", old[name], None))
        elif _differs(name, before, after):
            items.append(VariableChange(name, "changed", old[name], new[name]))
    return Changes(tuple(items))


def _differs(name: str, before: dict, after: dict) -> bool:
    old, new = before["variables"][name], after["variables"][name]
    # Hashes by different hasher versions say nothing; size estimates may differ too.
    same_hasher = hasher_version(before) == hasher_version(after)
    if same_hasher and old["hash"] is not None and new["hash"] is not None:
        return old["hash"] != new["hash"]
    facts = ("type", "size")
    if any(old[fact] != new[fact] for fact in facts):
        return True
    return _writer_code(before, name) != _writer_code(after, name)


def _writer_code(document: dict, name: str) -> str | None:
    """The code of the execution that wrote ``name``'s active snapshot."""
    version = document["history"]["active"].get(name)
    snapshot = f"{name}@{version}"
    for execution in document["history"]["executions"]:
        if snapshot in execution["writes"]:
            return execution["code"]
    return None


def stored_blobs(document: dict, store: BlobStore | RemoteBlobStore) -> dict[str, int] | None:
    """Key -> payload size of each blob holding a stored variable of the checkpoint, or None if
    its manifest cannot be read (a missing or damaged sidecar)."""
    try:
        manifest = read_manifest(store, document["manifest"])
    except NbelasticError:
        return None
    return {entry.key: entry.size for entry in manifest.entries}
