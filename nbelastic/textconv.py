"""Readable text for git diffs of nbelastic files (``nbelastic git textconv FILE``).

git runs a textconv command on both sides of a diff and compares the text it prints. For a
notebook, its ``nbelastic`` metadata becomes one line per variable (type, size, fate, hash)
and one per cell execution, so a diff shows variables added, changed and removed instead of
re-indented JSON. For a sidecar blob, a summary of the value; for a checkpoint record, the same
summary as the notebook's.

Nothing here runs code from the file: JSON is parsed, ``.npy`` arrays are read with pickle
disabled, and pickles are only read for the globals they import (nbelastic.store.pickles, the
reading ``nbelastic trust`` shows and a load is held to; nothing is unpickled). Whatever
cannot be summarised is printed as it is: a textconv that fails would break ``git diff``.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json

from nbelastic.notebook import METADATA_KEY
from nbelastic.planner import format_bytes
from nbelastic.store.pickles import UnreadablePickleError, describe, pickle_globals

_BLOB_MAGIC = b"NBELASTIC-BLOB "
_PACK_MAGIC = b"NBELASTIC-PACK "
_PREVIEW_CHARS = 300
_PREVIEW_ITEMS = 8
_MAX_NAMES = 12


def textconv(data: bytes) -> str:
    """The diff text of one file's bytes, whatever kind of nbelastic file it is; the text as
    it is when it cannot be summarised (nested too deeply for Python, say)."""
    try:
        return _textconv(data)
    except RecursionError:
        return data.decode("utf-8", "replace")


def _textconv(data: bytes) -> str:
    if data.startswith(_BLOB_MAGIC):
        return describe_blob(data)
    if data.startswith(_PACK_MAGIC):
        return describe_pack(data)
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return data.decode("utf-8", "replace")
    if isinstance(parsed, dict) and isinstance(parsed.get("document"), dict):
        return _describe_record(parsed)
    if isinstance(parsed, dict) and isinstance(parsed.get("metadata"), dict):
        return _describe_notebook(parsed)
    return data.decode("utf-8")


# --- notebooks and checkpoint records -----------------------------------------------------------


def _describe_notebook(nb: dict) -> str:
    """The notebook as nbformat writes it, with the checkpoint moved out as readable lines."""
    document = nb["metadata"].pop(METADATA_KEY, None)
    text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if document is None:
        return text
    return text + "\n" + describe_document(document)


def _describe_record(record: dict) -> str:
    return f"nbelastic checkpoint record, saved {record.get('saved_at')}\n" + describe_document(
        record["document"]
    )


def describe_document(document: object) -> str:
    """A checkpoint document as lines that diff well: one per variable, one per execution."""
    try:
        lines = [
            f"nbelastic checkpoint (format {document['format']}, {document['producer']})",
            f"  store {document['store']}, manifest {document['manifest'][:12]}",
            f"  plan {document['plan']['strategy']}: replay cells "
            f"{', '.join(map(str, document['plan']['replay'])) or 'none'}, estimated restore "
            f"{document['plan']['restore_seconds']:.2f} s",
            "variables:",
        ]
        for name, info in sorted(document["variables"].items()):
            digest = (info["hash"] or "-")[:16]
            lines.append(
                f"  {name}  {info['type']}  {format_bytes(info['size'])}  {info['action']}  "
                f"{digest}"
            )
        lines.append("history:")
        for execution in document["history"]["executions"]:
            first = (execution["code"].strip().splitlines() or [""])[0][:60]
            writes = ", ".join(execution["writes"]) or "-"
            lines.append(f"  [{execution['id']}] {first}  -> {writes}")
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return "\n".join(lines) + "\n"


# --- blobs --------------------------------------------------------------------------------------


def describe_blob(data: bytes) -> str:
    """A sidecar blob: its codec, size and a summary of the value, without running its code."""
    header, _, payload = data.partition(b"\n")
    parts = header.decode("ascii", "replace").split(" ")
    codec = parts[2] if len(parts) == 3 else "?"
    title = f"nbelastic blob: {codec}, {format_bytes(len(payload))}"
    describe = {
        "json": _json_preview,
        "npy": _npy_preview,
        "module": lambda p: f"module {p.decode('utf-8', 'replace')}",
        "manifest": lambda p: p.decode("utf-8", "replace").rstrip("\n"),
        "dill": _pickle_preview,
        "pickle": _pickle_preview,
    }.get(codec)
    try:
        body = describe(payload) if describe else "(unknown codec)"
    except Exception as error:  # a damaged payload: say so, never break git diff
        body = f"(cannot summarise: {type(error).__name__})"
    return f"{title}\n{body}\n"


def describe_pack(data: bytes) -> str:
    """A pack of small blobs: each blob as ``describe_blob`` shows it, headed by its key.

    >>> blob = b"NBELASTIC-BLOB 1 json\\n[1]"
    >>> print(describe_pack(b"NBELASTIC-PACK 1\\n%d\\n" % len(blob) + blob), end="")
    nbelastic pack: 1 blob
    blob 15f0f2f05f52: nbelastic blob: json, 3 B
    list, 1 items
    [1]
    """
    header, _, rest = data.partition(b"\n")
    members = []
    while rest:
        length, newline, rest = rest.partition(b"\n")
        if not newline or not length.isdigit() or len(rest) < int(length):
            members.append(f"(damaged after {len(members)} blobs)\n")
            break
        blob, rest = rest[: int(length)], rest[int(length) :]
        key = hashlib.sha256(blob).hexdigest()[:12]
        members.append(f"blob {key}: {describe_blob(blob)}")
    count = f"{len(members)} blob{'s' if len(members) != 1 else ''}"
    return f"nbelastic pack: {count}\n" + "".join(members)


def _json_preview(payload: bytes) -> str:
    """The type, its length, and the value on one line, cut at a readable length."""
    value = json.loads(payload.decode("utf-8"))
    kind = type(value).__name__
    if isinstance(value, (list, dict, str)):
        kind += f", {len(value)} {'characters' if isinstance(value, str) else 'items'}"
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > _PREVIEW_CHARS:
        text = text[:_PREVIEW_CHARS] + f" ... ({len(text) - _PREVIEW_CHARS} more characters)"
    return f"{kind}\n{text}"


def _npy_preview(payload: bytes) -> str:
    """dtype, shape and the first values; numpy reads the array with pickle disabled."""
    try:
        import numpy
    except ImportError:
        return _npy_header(payload)
    array = numpy.lib.format.read_array(io.BytesIO(payload), allow_pickle=False)
    flat = array.reshape(-1)[:_PREVIEW_ITEMS].tolist()
    more = " ..." if array.size > _PREVIEW_ITEMS else ""
    return f"ndarray dtype={array.dtype} shape={array.shape}\nfirst values: {flat}{more}"


def _npy_header(payload: bytes) -> str:
    """dtype and shape from the .npy header alone (a Python literal, read with literal_eval)."""
    length_bytes = 2 if payload[6] == 1 else 4
    start = 8 + length_bytes
    length = int.from_bytes(payload[8:start], "little")
    header = ast.literal_eval(payload[start : start + length].decode("latin1"))
    return f"ndarray dtype={header['descr']} shape={tuple(header['shape'])}"


def _pickle_preview(payload: bytes) -> str:
    """The globals a pickle imports, read by nbelastic.store.pickles (it is not unpickled)."""
    try:
        names = [describe(name) for name in pickle_globals(payload)]
    except UnreadablePickleError as error:
        return f"dill pickle (not loaded): {error}"
    shown = ", ".join(names[:_MAX_NAMES]) + (" ..." if len(names) > _MAX_NAMES else "")
    return f"dill pickle (not loaded: unpickling runs code)\nrefers to: {shown or 'no global'}"
