"""The sidecar's checkpoint history: every save kept, so the state can travel back in time.

Each save that changes the notebook's checkpoint also writes its metadata document, with the
time it was made, to ``NB.nbelastic/checkpoints/<n>-<digest>.json``: ``n`` counts saves from 1
and ``digest`` is the first 12 hex digits of the sha256 of the document. The files are written
once and never changed, so git sees one new small file per save; blobs are shared by all
checkpoints through the content-addressed store, so an old checkpoint costs only the bytes of
the variables that changed after it. The one exception to "written once": ``nbelastic trust`` on
a text notebook signs the record in place (see ``sign_record``).

Saving the same state twice records one checkpoint: a save whose document equals the newest
recorded one writes nothing, which keeps "saving unchanged state touches no file" true.

A save puts its own id into the document (``"checkpoint": "3-0a1b2c3d4e5f"``) before signing
it, so the digest leaves out that field and the signature. The id is what a jupytext text
notebook keeps in its header instead of the whole document (see ``resolve`` and
nbelastic.notebook): a reference that the sidecar's history turns back into the document.

A checkpoint is named on the command line by its id (``3-0a1b2c3d4e5f``) or a prefix of it
(``3-0a1b``), its number (``3``), a prefix of its digest (``0a1b2c``, at least 4 digits) or
``latest``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from nbelastic import canonical
from nbelastic.errors import CheckpointFormatError, NbelasticError, StoreWriteError
from nbelastic.notebook import sidecar_dir, validate_checkpoint

CHECKPOINTS_DIR = "checkpoints"
RECORD_FORMAT = 1
_NAME = re.compile(r"([1-9][0-9]*)-([0-9a-f]{12})\.json")
ID_PATTERN = re.compile(r"[1-9][0-9]*-[0-9a-f]{12}")
_NOT_DIGESTED = ("checkpoint", "signature")  # the id itself, and what signs the id
_DIGEST_PREFIX = re.compile(r"[0-9a-f]{4,64}")
_ID_PREFIX = re.compile(r"([1-9][0-9]*)-([0-9a-f]{1,12})")


class UnknownCheckpointError(NbelasticError):
    """A checkpoint reference names no recorded checkpoint, or more than one."""


@dataclass(frozen=True)
class CheckpointRecord:
    """One recorded save: its id, when it was made, and the metadata document it wrote."""

    id: str
    number: int
    digest: str
    saved_at: str  # UTC, ISO 8601, e.g. 2024-05-01T12:00:00Z
    document: dict
    path: Path

    def local_time(self) -> str:
        """When it was saved, in this machine's time zone, to the second."""
        try:
            moment = datetime.strptime(self.saved_at, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return self.saved_at
        return moment.replace(tzinfo=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def document_digest(document: dict) -> str:
    """sha256 of the document's canonical form (nbelastic.canonical), without its id and
    signature: the same state saved twice has one digest, also after JupyterLab rewrote it.

    >>> document_digest({"b": 1, "a": [2]}) == document_digest({"a": [2.0], "b": 1, "signature": 0})
    True
    """
    return canonical.digest(_digested(document))


def _digests(document: dict) -> tuple[str, str]:
    """The digests a record of ``document`` may carry: this version's, and nbelastic 0.1's
    (sha256 of Python's json.dumps text), which old records were named by."""
    old = hashlib.sha256(canonical.legacy(_digested(document)).encode("utf-8")).hexdigest()
    return document_digest(document), old


def _digested(document: dict) -> dict:
    return {key: value for key, value in document.items() if key not in _NOT_DIGESTED}


def history_dir(sidecar: str | os.PathLike) -> Path:
    """Where the checkpoint records of a sidecar store live."""
    return Path(sidecar) / CHECKPOINTS_DIR


def next_checkpoint_id(sidecar: str | os.PathLike, document: dict) -> str:
    """The id a save of ``document`` takes: the newest record's if it holds the same state,
    else the next number with this document's digest."""
    digest = document_digest(document)
    named = _record_files(sidecar)
    if named and _recorded_digest(named[-1][2]) in _digests(document):
        return named[-1][2].stem
    return f"{named[-1][0] + 1 if named else 1}-{digest[:12]}"


def record_checkpoint(
    sidecar: str | os.PathLike, document: dict, *, now: datetime | None = None
) -> str:
    """Keep ``document`` in the sidecar's history under the id it carries (or the one
    ``next_checkpoint_id`` gives it); that id.

    Writes nothing when that record exists. The record is written to a temp file, fsynced and
    linked into place, so a crash leaves no half record. Two saves racing may take the same
    number; their ids still differ by digest and both are listed.
    """
    checkpoint_id = document.get("checkpoint") or next_checkpoint_id(sidecar, document)
    digest = next((d for d in _digests(document) if d[:12] == checkpoint_id[-12:]), None)
    if not ID_PATTERN.fullmatch(checkpoint_id) or digest is None:
        raise ValueError(f"{checkpoint_id!r} is not the id of this document")
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    payload = {
        "format": RECORD_FORMAT,
        "saved_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "digest": digest,
        "document": document,
    }
    data = (json.dumps(payload, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    directory = history_dir(sidecar)
    target = directory / f"{checkpoint_id}.json"
    if target.is_file():
        return checkpoint_id
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".nbelastic-{secrets.token_hex(8)}.tmp"
        _write_synced(temporary, data)
        try:
            os.link(temporary, target)  # never replaces: a record is written once
        except FileExistsError:
            pass  # a concurrent save recorded this very document under this id
        finally:
            with suppress(OSError):
                temporary.unlink()
    except OSError as error:
        raise StoreWriteError(
            f"could not record the checkpoint in {directory} ({error.strerror or error}): "
            "free disk space or fix the permissions and save again"
        ) from None
    return checkpoint_id


def sign_record(sidecar: str | os.PathLike, signed: dict) -> None:
    """Replace the record of ``signed`` by one holding this signed copy of its document.

    The one change a record ever sees: ``nbelastic trust`` on a text notebook, whose header
    keeps only the id, must put the signature where a restore reads the document. The digest
    leaves the signature out, so the id and digest stay; the swap is a temp file and a rename.
    """
    record = current_record(sidecar, signed)
    if record is None:
        raise UnknownCheckpointError(
            f"checkpoint {signed.get('checkpoint')} is not in {history_dir(sidecar)}: "
            "copy the whole sidecar directory along with the notebook"
        )
    payload = json.loads(record.path.read_text(encoding="utf-8"))
    payload["document"] = signed
    data = (json.dumps(payload, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    temporary = record.path.with_name(f".nbelastic-{secrets.token_hex(8)}.tmp")
    try:
        _write_synced(temporary, data)
        os.replace(temporary, record.path)
    except OSError as error:
        raise StoreWriteError(
            f"could not sign the checkpoint record {record.path} ({error.strerror or error}): "
            "free disk space or fix the permissions and trust it again"
        ) from None
    finally:
        with suppress(OSError):
            temporary.unlink()


def list_checkpoints(sidecar: str | os.PathLike) -> list[CheckpointRecord]:
    """Every recorded checkpoint, oldest first; a damaged record is an error naming its file."""
    records = [_read_record(path, number, short) for number, short, path in _record_files(sidecar)]
    return sorted(records, key=lambda record: (record.number, record.saved_at, record.id))


def find_checkpoint(notebook: str | os.PathLike, reference: str) -> CheckpointRecord:
    """The checkpoint of ``notebook``'s sidecar that ``reference`` names: an id or a prefix
    of one (``3-0a1b``), a number, a digest prefix or ``latest``."""
    where = sidecar_dir(notebook)
    records = list_checkpoints(where)
    reference = reference.strip()
    numbered = _ID_PREFIX.fullmatch(reference)
    if reference == "latest":
        found = records[-1:]
    elif reference.isdigit() and any(r.number == int(reference) for r in records):
        found = [r for r in records if r.number == int(reference)]
    elif _DIGEST_PREFIX.fullmatch(reference):  # also all digits: 748542 is a digest prefix
        found = [r for r in records if r.digest.startswith(reference)]
    elif numbered:
        number, digest = int(numbered.group(1)), numbered.group(2)
        found = [r for r in records if r.number == number and r.digest.startswith(digest)]
    else:
        found = []
    if len(found) == 1:
        return found[0]
    if not found:
        known = f"it has {records[0].id} to {records[-1].id}" if records else "it has none yet"
        raise UnknownCheckpointError(
            f"no checkpoint {reference!r} in {where} ({known}): "
            f"list them with `nbelastic log {notebook}`"
        )
    raise UnknownCheckpointError(
        f"{reference!r} names {len(found)} checkpoints in {where} "
        f"({', '.join(r.id for r in found)}): give the full id"
    )


def current_record(sidecar: str | os.PathLike, document: dict | None) -> CheckpointRecord | None:
    """The record of ``document`` (a notebook's checkpoint, whole or a reference): the one its
    id names, or for a document without id the newest with its digest; None if unrecorded."""
    if document is None:
        return None
    records = list_checkpoints(sidecar)
    if "checkpoint" in document:
        matching = [r for r in records if r.id == document["checkpoint"]]
    else:
        digests = _digests(document)
        matching = [r for r in records if r.digest in digests]
    return matching[-1] if matching else None


def is_reference(document: object) -> bool:
    """Whether ``document`` is only a reference (format and id), as a text header keeps it."""
    return isinstance(document, dict) and set(document) == {"format", "checkpoint"}


def resolve(sidecar: str | os.PathLike, document: dict, *, subject: str) -> dict:
    """The whole checkpoint document that ``document`` stands for: itself, or for a reference
    (as a jupytext text header keeps it) the document of the record it names."""
    if not is_reference(document):
        return document
    for record in list_checkpoints(sidecar):
        if record.id == document["checkpoint"]:
            return record.document
    raise UnknownCheckpointError(
        f"{subject} refers to checkpoint {document['checkpoint']}, which is not in "
        f"{history_dir(sidecar)}: copy the whole sidecar directory along with the notebook"
    )


def _record_files(sidecar: str | os.PathLike) -> list[tuple[int, str, Path]]:
    """(number, short digest, path) of each record file, by number; contents not read."""
    directory = history_dir(sidecar)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.fullmatch(path.name)
        if match is not None:
            found.append((int(match.group(1)), match.group(2), path))
    return sorted(found)


def _recorded_digest(path: Path) -> str | None:
    """The digest a record claims, or None if it cannot be read: a damaged old record must
    not stop a new save from being recorded."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("digest")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _read_record(path: Path, number: int, short_digest: str) -> CheckpointRecord:
    def damaged(problem: str) -> CheckpointFormatError:
        return CheckpointFormatError(
            f"the checkpoint record {path} is damaged ({problem}): restore it from git, "
            "or delete it to forget that checkpoint"
        )

    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise damaged(getattr(error, "strerror", None) or type(error).__name__) from None
    if not isinstance(payload, dict) or not {"saved_at", "digest", "document"} <= set(payload):
        raise damaged("not a checkpoint record")
    if type(payload.get("format")) is not int or payload["format"] > RECORD_FORMAT:
        raise damaged(f"record format {payload.get('format')!r}; upgrade nbelastic")
    document = payload["document"]
    try:
        validate_checkpoint(document)
    except CheckpointFormatError as error:
        raise damaged(str(error)) from None
    digest = payload["digest"]
    if digest not in _digests(document) or not digest.startswith(short_digest):
        raise damaged("its document does not match its digest")
    if document.get("checkpoint", f"{number}-{short_digest}") != f"{number}-{short_digest}":
        raise damaged(f"its document says it is checkpoint {document['checkpoint']}")
    return CheckpointRecord(
        f"{number}-{short_digest}", number, digest, str(payload["saved_at"]), document, path
    )
