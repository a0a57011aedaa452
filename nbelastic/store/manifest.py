"""The manifest: which blob holds which variables, one sorted line per linked group.

Format 2 adds a fifth field, where a packed blob is in its pack (``-`` for a loose blob);
format 1 manifests, which have four fields, are still read.

The text form is written to ``manifest.txt`` for humans and git (one changed variable is one
changed line) and is also stored as a blob of codec ``manifest``, so the manifest of any older
checkpoint stays readable by the key the notebook metadata records. Reading is strict: a
damaged or newer manifest is reported, never half-understood.

Example
-------
>>> key = "ab" * 32
>>> linked = ManifestEntry(("b", "a"), "dill", 9, key)
>>> packed = ManifestEntry(("y",), "json", 2, key, PackSlot("cd" * 32, 17, 26))
>>> m = Manifest([packed, linked])
>>> print(m.to_text(), end="")  # doctest: +NORMALIZE_WHITESPACE
# nbelastic manifest 2
a,b   dill  9  abababababababababababababababababababababababababababababababab  -
y     json  2  abababababababababababababababababababababababababababababababab
    cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd@17+26
>>> Manifest.from_text(m.to_text()) == m, m.entry_for("b").names
(True, ('a', 'b'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nbelastic.errors import CheckpointFormatError
from nbelastic.store.blobs import CODEC_PATTERN, KEY_PATTERN, BlobStore, PackSlot, short

MANIFEST_FORMAT = 2
_HEADER = f"# nbelastic manifest {MANIFEST_FORMAT}"
_READABLE = {f"# nbelastic manifest {version}": version for version in (1, MANIFEST_FORMAT)}
_LOOSE = "-"
_ANY_HEADER = re.compile(r"# nbelastic manifest ([1-9][0-9]*)")
_SIZE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True, order=True)
class ManifestEntry:
    """One stored group: its variable names (sorted), codec, payload size, blob key, and
    where the blob is in a pack (None: a file of its own)."""

    names: tuple[str, ...]
    codec: str
    size: int
    key: str
    pack: PackSlot | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(sorted(self.names)))
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"a group needs distinct names: {self.names!r}")
        bad = [name for name in self.names if not name.isidentifier()]
        if bad:
            raise ValueError(f"not a variable name: {bad[0]!r}")
        if not CODEC_PATTERN.fullmatch(self.codec):
            raise ValueError(f"not a codec name: {self.codec!r}")
        if type(self.size) is not int or self.size < 0:
            raise ValueError(f"not a size: {self.size!r}")
        if not KEY_PATTERN.fullmatch(self.key):
            raise ValueError(f"not a blob key: {self.key!r}")

    def to_line(self) -> str:
        where = self.pack.to_text() if self.pack else _LOOSE
        return f"{','.join(self.names)}\t{self.codec}\t{self.size}\t{self.key}\t{where}\n"

    @classmethod
    def from_line(cls, line: str, version: int = MANIFEST_FORMAT) -> ManifestEntry:
        """Parse one line of a manifest of format ``version``, without its newline;
        ValueError says what is wrong."""
        fields = line.split("\t")
        if version == 1 and len(fields) == 4:
            fields.append(_LOOSE)
        if len(fields) != 5:
            raise ValueError(
                "expected 5 tab-separated fields: names, codec, size, key, pack slot"
                if version == MANIFEST_FORMAT
                else "expected 4 tab-separated fields: names, codec, size, key"
            )
        names, codec, size, key, where = fields
        if not _SIZE.fullmatch(size):
            raise ValueError(f"not a size: {size!r}")
        pack = None if where == _LOOSE else PackSlot.parse(where)
        return cls(tuple(names.split(",")), codec, int(size), key, pack)


@dataclass(frozen=True)
class Manifest:
    """The stored groups of one checkpoint, kept sorted; a variable is in at most one group."""

    entries: tuple[ManifestEntry, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(sorted(self.entries)))
        seen: set[str] = set()
        for entry in self.entries:
            twice = seen.intersection(entry.names)
            if twice:
                raise ValueError(f"variable {min(twice)!r} is in two groups")
            seen.update(entry.names)

    def to_text(self) -> str:
        """The deterministic text form: a header line, then one sorted line per group."""
        return _HEADER + "\n" + "".join(entry.to_line() for entry in self.entries)

    @classmethod
    def from_text(cls, text: str) -> Manifest:
        """Parse :meth:`to_text` output; anything else raises CheckpointFormatError."""
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        header = _ANY_HEADER.fullmatch(lines[0]) if lines else None
        if header and lines[0] not in _READABLE and int(header.group(1)) > MANIFEST_FORMAT:
            raise CheckpointFormatError(
                f"the manifest has format {header.group(1)}, newer than this nbelastic reads"
                f" ({MANIFEST_FORMAT}); upgrade nbelastic"
            )
        if not lines or lines[0] not in _READABLE:
            raise _format_error(1, "not an nbelastic manifest header")
        version = _READABLE[lines[0]]
        entries, seen = [], set()
        for number, line in enumerate(lines[1:], start=2):
            try:
                entry = ManifestEntry.from_line(line, version)
            except ValueError as e:
                raise _format_error(number, str(e)) from None
            twice = seen.intersection(entry.names)
            if twice:
                raise _format_error(number, f"variable {min(twice)!r} is already in a group")
            seen.update(entry.names)
            entries.append(entry)
        return cls(tuple(entries))

    def entry_for(self, name: str) -> ManifestEntry | None:
        """The group holding variable ``name``, or None if it is not stored."""
        return next((entry for entry in self.entries if name in entry.names), None)


def write_manifest(store: BlobStore, manifest: Manifest) -> str:
    """Store ``manifest`` as a blob and as ``manifest.txt``; return the blob key.

    ``manifest.txt`` is rewritten only when its text changes, so saving unchanged state
    touches no file.
    """
    data = manifest.to_text().encode("utf-8")
    key = store.put("manifest", data)
    if store.read_file("manifest.txt") != data:
        store.write_file("manifest.txt", data)
    return key


def read_manifest(store: BlobStore, key: str) -> Manifest:
    """The manifest stored under ``key``, checked against its hash and parsed strictly;
    ``store`` learns where its packed blobs are."""
    codec, payload = store.get(key)
    if codec != "manifest":
        raise CheckpointFormatError(
            f"blob {short(key)} holds a {codec} value, not a manifest; the checkpoint metadata is"
            f" damaged"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointFormatError(
            f"manifest blob {short(key)} is not UTF-8 text; the checkpoint is damaged"
        ) from None
    manifest = Manifest.from_text(text)
    for entry in manifest.entries:
        if entry.pack is not None:
            store.locate(entry.key, entry.pack)
    return manifest


def _format_error(line: int, problem: str) -> CheckpointFormatError:
    return CheckpointFormatError(
        f"malformed nbelastic manifest, line {line}: {problem}; the checkpoint is damaged, save"
        f" again from a kernel that still holds the state"
    )
