"""Read, write and strip the checkpoint that a notebook carries in its metadata.

A checkpoint lives under one metadata key, ``nbelastic``, so that the notebook alone says how to
rebuild its state: where the sidecar store is, which manifest lists the stored variables, the
plan and the history graph. The variables' bytes stay in the sidecar (``sidecar_dir``).

Three promises hold here:

* what is read is checked before anyone acts on it: the ``format`` version first (a newer format
  gets "upgrade nbelastic", not a schema error), then the JSON Schema shipped in
  ``nbelastic/schema/checkpoint-1.json``, then the few rules a schema cannot say;
* every problem is one line naming the file, what is wrong and what to do, because the CLI and
  the ``%nbelastic`` magic print it as it is;
* writing touches nothing but the key, is byte-deterministic (the same checkpoint written twice
  gives the same file) and atomic (a failed write leaves the old file whole).

``.ipynb`` notebooks are read and checked with nbformat; text notebooks (``.py``, ``.md``, ...) go
through jupytext, told to keep the checkpoint in the text header.

nbformat, jupytext and jsonschema are imported by the functions that use them: importing them
takes over a second (jsonschema's format checkers compile grammars), and the kernel extension,
the git textconv driver and most commands import this module for a constant or ``sidecar_dir``.
A checkpoint passes a quick check (nbelastic.schema_check) before jsonschema is asked.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import suppress
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from nbelastic import __version__, jupyter_trust
from nbelastic.errors import (
    CheckpointFormatError,
    NoCheckpointError,
    NotebookNotFoundError,
    StoreWriteError,
)
from nbelastic.pending import discard_pending, newer_checkpoint
from nbelastic.schema_check import conforms

if TYPE_CHECKING:
    import jsonschema
    import nbformat

METADATA_KEY = "nbelastic"
FORMAT_VERSION = 1

_SCHEMA = f"checkpoint-{FORMAT_VERSION}.json"
_IPYNB = ".ipynb"
# jupytext's metadata filter entry that keeps the filter itself in a "-all" text header.
_FILTER_ITSELF = "jupytext.notebook_metadata_filter"
_PYTHON_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {
        "codemirror_mode": {"name": "ipython", "version": 3},
        "file_extension": ".py",
        "mimetype": "text/x-python",
        "name": "python",
        "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3",
    },
}
_MAX_REASON = 200
_CHECKPOINT_ID = re.compile(r"[1-9][0-9]*-[0-9a-f]{12}")


def sidecar_dir(notebook: str | os.PathLike) -> Path:
    """The default sidecar store of a notebook: its name with the suffix ``.nbelastic``.

    A notebook and its jupytext twin (``analysis.ipynb`` and ``analysis.py``) share one store.

    >>> sidecar_dir("work/analysis.ipynb").as_posix(), sidecar_dir("work/analysis.py").as_posix()
    ('work/analysis.nbelastic', 'work/analysis.nbelastic')
    """
    return Path(notebook).with_suffix(".nbelastic")


def checkpoint_of(nb: nbformat.NotebookNode) -> dict | None:
    """The raw, unvalidated value under the ``nbelastic`` key, or None if there is none.

    For callers that already hold a notebook in memory and only need to know whether it carries
    a checkpoint; ``read_checkpoint`` is the checked way in.

    >>> checkpoint_of({"metadata": {"nbelastic": {"format": 1}}}), checkpoint_of({"metadata": {}})
    ({'format': 1}, None)
    """
    return nb.get("metadata", {}).get(METADATA_KEY)


def held_checkpoint(nb: nbformat.NotebookNode, notebook: str | os.PathLike) -> dict | None:
    """The checkpoint ``nb`` (read from ``notebook``) holds, validated, or None if it holds
    none; a text header's reference stays a reference. CheckpointFormatError if malformed or
    newer: a command must not act on what it cannot read."""
    document = newer_checkpoint(notebook, checkpoint_of(nb))
    if document is None:
        return None
    return _validate(
        document,
        str(notebook),
        remedy=f": save the state again, or remove it with `nbelastic strip {notebook}`",
    )


def hasher_version(document: dict) -> int:
    """Which version of nbelastic.objects' hasher made the checkpoint's content hashes.

    Checkpoints written before the version was recorded have none: they were made by version 1.

    >>> hasher_version({"hasher": 2}), hasher_version({})
    (2, 1)
    """
    return document.get("hasher", 1)


def validate_checkpoint(document: object) -> dict:
    """Check a checkpoint document and return it unchanged; raise CheckpointFormatError if not.

    The format version is checked before the schema, so that a checkpoint from a newer nbelastic
    asks for an upgrade instead of listing whatever the newer layout does differently.

    >>> validate_checkpoint({"format": 2, "plan": "not checked"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nbelastic.errors.CheckpointFormatError: ... in format 2, newer than this nbelastic ...
    """
    return _validate(document, "the document", remedy="")


def read_checkpoint(notebook: str | os.PathLike, *, whole_notebook: bool = True) -> dict:
    """The validated checkpoint of ``notebook``, whole even where the notebook keeps only a
    reference to it (a jupytext text header: see nbelastic.checkpoints.resolve).

    Raises NotebookNotFoundError (no such notebook, or not a notebook), NoCheckpointError (a
    notebook without a checkpoint), CheckpointFormatError (malformed or newer checkpoint) or
    UnknownCheckpointError (a reference to a checkpoint missing from the sidecar).

    ``whole_notebook=False`` is for a restore, which reads nothing but the checkpoint: an
    ``.ipynb`` in nbformat 4 is then read as plain JSON, its cells not checked by nbformat,
    whose import (jsonschema's with it) would cost a fresh kernel over a second.
    """
    # Imported here: the sidecar's history validates its records with this module.
    from nbelastic.checkpoints import resolve

    path = Path(notebook)
    metadata = None if whole_notebook else _plain_ipynb_metadata(path)
    if metadata is None:
        metadata = _load(path).metadata
    document = newer_checkpoint(path, metadata.get(METADATA_KEY))
    if document is None and METADATA_KEY not in metadata:
        raise NoCheckpointError(
            f"{path} has no nbelastic checkpoint: "
            f"run `%nbelastic save` or `nbelastic run {path}` first"
        )
    document = _validate(
        document,
        str(path),
        remedy=f": save the state again, or remove it with `nbelastic strip {path}`",
    )
    return resolve(sidecar_dir(path), document, subject=str(path))


def write_checkpoint(
    notebook: str | os.PathLike, checkpoint: dict, *, new_cells: Sequence[str] = ()
) -> None:
    """Put ``checkpoint`` into the notebook's metadata, replacing any checkpoint it had.

    Cells, outputs and other metadata are kept as they are. If the notebook does not exist it is
    created, with one code cell per string of ``new_cells`` (ignored otherwise), so that a
    script run outside Jupyter still leaves a notebook to open. An invalid ``checkpoint`` raises
    CheckpointFormatError and nothing is written; a failed write raises StoreWriteError and the
    file on disk is left as it was.
    """
    path = Path(notebook)
    _check_suffix(path)
    try:
        validate_checkpoint(checkpoint)
    except CheckpointFormatError as error:
        raise CheckpointFormatError(f"nothing written to {path}: {error}") from None
    text = _read_text(path)
    patched = None if text is None else _with_checkpoint_ipynb(path, text, checkpoint)
    if patched is not None:
        _replace_atomically(path, patched)
        return
    nb = _new_notebook(new_cells) if text is None else _parse(path, text)
    nb.metadata[METADATA_KEY] = checkpoint
    _save(path, nb)


def _with_checkpoint_ipynb(path: Path, text: str, checkpoint: dict) -> str | None:
    """``text``, an ``.ipynb`` in nbformat 4, with ``checkpoint`` in its metadata, written as
    nbformat writes it; None for anything else, which nbformat or jupytext then reads.

    A kernel's save goes through here: it changes nothing but one metadata key, so it needs
    neither nbformat's cell checks nor its import, which takes jsonschema's (over a second).
    """
    if path.suffix != _IPYNB:
        return None
    try:
        nb = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not (
        isinstance(nb, dict)
        and type(nb.get("nbformat")) is int
        and nb["nbformat"] == 4
        and isinstance(nb.get("metadata"), dict)
        and isinstance(nb.get("cells"), list)
        and isinstance(nb["metadata"].get("jupytext", {}), dict)
    ):
        return None
    nb["metadata"][METADATA_KEY] = checkpoint
    if "checkpoint" in checkpoint:
        _keep_in_text_header(nb["metadata"])
    # nbformat.writes' own settings, so a save and Jupyter's next save agree byte for byte.
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def strip_checkpoint(notebook: str | os.PathLike) -> bool:
    """Remove the checkpoint from ``notebook``; False, writing nothing, if it had none.

    Works on malformed and newer-format checkpoints too: it is the way out of both.
    """
    path = Path(notebook)
    nb = _load(path)
    pending = discard_pending(path)
    if METADATA_KEY not in nb.metadata:
        return pending
    del nb.metadata[METADATA_KEY]
    _save(path, nb)
    return True


def strip_checkpoint_text(text: str, name: str = "<stdin>.ipynb") -> str:
    """``text``, a notebook in the format ``name``'s suffix says, without its checkpoint.

    Text without a checkpoint comes back unchanged, byte for byte: as a git clean filter this
    runs on every notebook git looks at, and must not rewrite one it has nothing to remove from.
    ``name`` is only used for its suffix and in error messages; no file is read or written.
    """
    path = Path(name)
    _check_suffix(path)
    nb = _parse(path, text)
    if METADATA_KEY not in nb.metadata:
        return text
    del nb.metadata[METADATA_KEY]
    return _dumps(path, nb)


def check_notebook_path(notebook: str | os.PathLike) -> None:
    """NotebookNotFoundError unless ``notebook`` names a file a notebook can be written to: a
    save checks this before any work, so a wrong path costs nothing and leaves nothing."""
    _check_suffix(Path(notebook))


def read_notebook(notebook: str | os.PathLike) -> nbformat.NotebookNode:
    """The notebook at ``notebook`` (``.ipynb`` or jupytext text), checked as by read_checkpoint.

    Its checkpoint, if any, is left in the metadata unvalidated; read it with read_checkpoint.
    """
    return _load(Path(notebook))


def write_notebook(
    notebook: str | os.PathLike,
    nb: nbformat.NotebookNode,
    *,
    keep_checkpoint_of: str | os.PathLike | None = None,
) -> None:
    """Write ``nb`` to ``notebook`` atomically, in the format its suffix names.

    With ``keep_checkpoint_of`` (usually ``notebook`` itself), the written notebook carries
    exactly the checkpoint that path holds at the time of the call, or none if it holds none or
    does not exist, whatever ``nb`` carried: rewriting cells and outputs then neither drops the
    current checkpoint nor brings in a stale one. ``nb`` itself is not modified.
    """
    import nbformat

    path = Path(notebook)
    _check_suffix(path)
    nb = nbformat.NotebookNode(nb, metadata=copy.deepcopy(nb.metadata))
    if keep_checkpoint_of is not None:
        keep = Path(keep_checkpoint_of)
        _check_suffix(keep)
        text = _read_text(keep)
        kept = None if text is None else checkpoint_of(_parse(keep, text))
        nb.metadata.pop(METADATA_KEY, None)
        if kept is not None:
            nb.metadata[METADATA_KEY] = kept
    _save(path, nb)


def put_back(notebook: str | os.PathLike, text: str | None) -> None:
    """Make ``notebook`` hold ``text`` again (None: no file), atomically: the undo of a
    command that failed after writing it."""
    path = Path(notebook)
    if text is None:
        with suppress(FileNotFoundError):
            path.unlink()
    else:
        _replace_atomically(path, text)


# --- validation -------------------------------------------------------------------------------


def _validate(document: object, subject: str, *, remedy: str) -> dict:
    """Check ``document``; messages start with ``subject`` (a path) and end with ``remedy``."""

    def malformed(where: str, problem: str) -> CheckpointFormatError:
        return CheckpointFormatError(
            f"{subject} has a malformed nbelastic checkpoint: {where}: {_one_line(problem)}{remedy}"
        )

    if not isinstance(document, dict):
        raise malformed("$", f"expected an object, found {type(document).__name__}")
    if "format" not in document:
        raise malformed("$.format", "missing; every checkpoint names its format version")
    version = document["format"]
    if type(version) is not int:  # bool is an int subclass, and true is no version
        raise malformed("$.format", f"{version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{subject} holds a checkpoint in format {version}, newer than this nbelastic "
            f"({__version__}) reads ({FORMAT_VERSION}): "
            "upgrade nbelastic (pip install -U nbelastic)"
        )
    if set(document) == {"format", "checkpoint"}:  # a text header's reference to a record
        if not isinstance(document["checkpoint"], str) or not _CHECKPOINT_ID.fullmatch(
            document["checkpoint"]
        ):
            raise malformed("$.checkpoint", f"{document['checkpoint']!r} is not a checkpoint id")
        return document
    if not conforms(document, _schema()):
        # The quick check may reject what is valid; jsonschema decides, and says what is wrong.
        import jsonschema

        error = jsonschema.exceptions.best_match(_validator().iter_errors(document))
        if error is not None:
            raise malformed(error.json_path, error.message)
    for where, problem in _beyond_schema(document):
        raise malformed(where, problem)
    return document


@cache
def _schema() -> dict:
    return json.loads((resources.files("nbelastic") / "schema" / _SCHEMA).read_text("utf-8"))


@cache
def _validator() -> jsonschema.Draft202012Validator:
    import jsonschema

    return jsonschema.Draft202012Validator(_schema())


def _beyond_schema(document: dict) -> Iterator[tuple[str, str]]:
    """The rules JSON Schema cannot state, for a document that passed the schema."""
    plan, history = document["plan"], document["history"]
    executions = history["executions"]
    numbers = [("$.plan.bandwidth", plan["bandwidth"])]
    numbers.append(("$.plan.restore_seconds", plan["restore_seconds"]))
    numbers += [
        (f"$.history.executions[{i}].runtime", e["runtime"]) for i, e in enumerate(executions)
    ]
    for where, number in numbers:
        # Infinity and NaN would be written as bare words that no JSON reader but Python's accepts.
        if not math.isfinite(number):
            yield where, f"{number!r} is not a finite number"
    store = document["store"]
    if "://" not in store and (PurePosixPath(store).is_absolute() or PureWindowsPath(store).drive):
        # nbelastic writes the path relative to the notebook (or a URL); an absolute one would
        # point a restore at any directory of this machine.
        yield "$.store", f"{store!r} is an absolute path, not one relative to the notebook"
    replay = plan["replay"]
    known = {execution["id"] for execution in executions}
    for index, execution_id in enumerate(replay):
        if index and execution_id <= replay[index - 1]:
            yield f"$.plan.replay[{index}]", "execution ids must be strictly ascending"
        if execution_id not in known:
            yield f"$.plan.replay[{index}]", f"execution {execution_id} is not in the history"
    written = {snapshot for execution in executions for snapshot in execution["writes"]}
    for name, version in history["active"].items():
        if f"{name}@{version}" not in written:
            yield f"$.history.active.{name}", f"no execution writes {name}@{version}"


# --- reading ----------------------------------------------------------------------------------


def _check_suffix(path: Path) -> None:
    if path.is_dir():
        example = next(iter(sorted(path.glob(f"*{_IPYNB}"))), None)
        raise NotebookNotFoundError(
            f"{path} is a directory: give a notebook file"
            + ("" if example is None else f", e.g. {example}")
        )
    if path.suffix == _IPYNB:
        return
    import jupytext

    if path.suffix not in jupytext.NOTEBOOK_EXTENSIONS:
        raise NotebookNotFoundError(
            f"{path} is not a notebook: give a .ipynb file or a jupytext text notebook "
            "(.py, .md, ...)"
        )


def _load(path: Path) -> nbformat.NotebookNode:
    _check_suffix(path)
    text = _read_text(path)
    if text is None:
        raise NotebookNotFoundError(f"no notebook at {path}: check the path")
    return _parse(path, text)


def _plain_ipynb_metadata(path: Path) -> dict | None:
    """The metadata of an ``.ipynb`` in nbformat 4, read as plain JSON; None for anything else
    (another suffix or version, no such file, not JSON), which ``_load`` then reads or explains."""
    if path.suffix != _IPYNB:
        return None
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # Unicode and JSON errors are ValueErrors
        return None
    if isinstance(nb, dict) and type(nb.get("nbformat")) is int and nb["nbformat"] == 4:
        metadata = nb.get("metadata")
        return metadata if isinstance(metadata, dict) else None
    return None


def _read_text(path: Path) -> str | None:
    """The notebook's text, or None if there is no file there."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise _invalid(path, "not UTF-8 text") from None
    except OSError as error:
        raise NotebookNotFoundError(
            f"no notebook at {path} ({error.strerror or error}): check the path"
        ) from None


def _parse(path: Path, text: str) -> nbformat.NotebookNode:
    # nbformat.reads would log validation errors instead of raising them, so read, convert and
    # validate step by step. On malformed input nbformat and jupytext raise many unrelated types
    # (ValueError, AttributeError, TypeError, yaml errors, ...) that all mean the same to the user.
    import nbformat
    import nbformat.reader

    if path.suffix != _IPYNB:
        import jupytext
    try:
        if path.suffix == _IPYNB:
            nb = nbformat.convert(nbformat.reader.reads(text), 4)
            nbformat.validate(nb)
            return nb
        return jupytext.reads(text, fmt={"extension": path.suffix})
    except Exception as error:
        where = getattr(error, "json_path", "$")
        reason = getattr(error, "message", None) or str(error) or type(error).__name__
        raise _invalid(path, reason if where == "$" else f"{where}: {reason}") from None


def _invalid(path: Path, reason: str) -> NotebookNotFoundError:
    return NotebookNotFoundError(
        f"{path} is not a valid notebook: {_one_line(reason)}: check the path, "
        "or repair the file (e.g. restore it from git)"
    )


def _one_line(text: str) -> str:
    """Foreign error messages, squeezed onto one short line.

    >>> _one_line("while parsing\\n  in line 2:\\n    x: [")
    'while parsing in line 2: x: ['
    """
    line = " ".join(text.split())
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 3] + "..."


# --- writing ----------------------------------------------------------------------------------


def _new_notebook(cells: Sequence[str]) -> nbformat.NotebookNode:
    # Cell ids count up instead of being random, so the same cells give the same file.
    import nbformat.v4

    return nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source, id=f"cell-{i}") for i, source in enumerate(cells)],
        metadata=_PYTHON_METADATA,  # copied: nbformat builds new nodes from the dicts
    )


def _filter_entries(metadata: dict) -> list[str]:
    text = metadata.get("jupytext", {}).get("notebook_metadata_filter", "")
    return [entry.strip() for entry in text.split(",") if entry.strip()]


def _header_entries(metadata: dict) -> list[str]:
    """The filter entries that make jupytext keep the checkpoint in a text header: only its
    reference (format and id) when it has an id, so the header stays a few lines; all of it
    otherwise."""
    document = metadata.get(METADATA_KEY)
    if isinstance(document, dict) and "checkpoint" in document:
        return [f"{METADATA_KEY}.checkpoint", f"{METADATA_KEY}.format"]
    return [METADATA_KEY]


def _is_ours(entry: str) -> bool:
    name = entry.lstrip("-")
    return name == METADATA_KEY or name.startswith(f"{METADATA_KEY}.")


def _keep_in_text_header(metadata: dict) -> None:
    """Make jupytext write the checkpoint into the text header, now and on later saves.

    jupytext writes only its own section and the kernelspec unless the notebook's
    ``notebook_metadata_filter`` names more keys. A text notebook without a header reads back
    with the filter ``-all``; the header must then keep the filter itself, or the next read
    would infer another filter and the next write would differ.
    """
    entries = [e for e in _filter_entries(metadata) if not _is_ours(e)]
    if "all" not in entries:
        entries[:0] = _header_entries(metadata)
        if "-all" in entries and _FILTER_ITSELF not in entries:
            entries.insert(entries.index("-all"), _FILTER_ITSELF)
    metadata.setdefault("jupytext", {})["notebook_metadata_filter"] = ",".join(entries)


def _drop_from_text_header(metadata: dict) -> None:
    """Undo ``_keep_in_text_header``, so a stripped headerless script has no header again."""
    entries = _filter_entries(metadata)
    if not any(_is_ours(entry) for entry in entries):
        return
    entries = [entry for entry in entries if not _is_ours(entry)]
    if sorted(entries) == sorted([_FILTER_ITSELF, "-all"]):
        entries = ["-all"]
    if entries:
        metadata["jupytext"]["notebook_metadata_filter"] = ",".join(entries)
    else:
        metadata["jupytext"].pop("notebook_metadata_filter", None)
        if not metadata["jupytext"]:
            del metadata["jupytext"]


def _save(path: Path, nb: nbformat.NotebookNode) -> None:
    """Write ``nb`` to ``path`` in the format its suffix names, atomically."""
    _replace_atomically(path, _dumps(path, nb))


def _dumps(path: Path, nb: nbformat.NotebookNode) -> str:
    """``nb`` as the text of a file at ``path``, in the format its suffix names.

    A checkpoint with an id also makes an ``.ipynb`` name its reference in the jupytext filter,
    so that ``jupytext --to py:percent`` carries the reference into the text header and the
    way back restores it.
    """
    document = nb.metadata.get(METADATA_KEY)
    if document is None:
        _drop_from_text_header(nb.metadata)
    elif path.suffix != _IPYNB or (isinstance(document, dict) and "checkpoint" in document):
        _keep_in_text_header(nb.metadata)
    # For .ipynb this is nbformat.writes, minus the marker jupytext puts on notebooks read from
    # text, so a script converted to .ipynb does not claim to be text.
    import jupytext

    text = jupytext.writes(nb, fmt={"extension": path.suffix})
    # nbformat.write and jupytext.write end files with a newline; so does Jupyter. Keep in step,
    # or every save alternating with Jupyter's would show up in git as a change.
    return text if text.endswith("\n") else text + "\n"


def _replace_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    A crash or a full disk at any point leaves either the old file or the new one, never half of
    one. The file keeps its permissions, and Jupyter's trust if it had it (nbelastic.jupyter_trust);
    a symlinked notebook stays a symlink (its target is replaced).
    """
    data = text.encode("utf-8")
    target = path.resolve()
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    keep_jupyter_trust = mode is not None and jupyter_trust.trusted_text(target)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        # 0o666 lets the umask decide a new file's permissions, as for any file the user creates.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise _write_failed(path, error) from None
    try:
        with open(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, target)
        if keep_jupyter_trust:
            jupyter_trust.sign_text(text)
    except BaseException as error:
        with suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError):
            raise _write_failed(path, error) from None
        raise


def _write_failed(path: Path, error: OSError) -> StoreWriteError:
    return StoreWriteError(
        f"could not write {path} ({error.strerror or error}): the file is unchanged; "
        "free disk space or fix the permissions and save again"
    )
