"""Errors that reach the user: each carries one line saying what went wrong and what to do.

The CLI and the ``%nbelastic`` magic print ``str(error)`` without a traceback, so the message
must stand on its own.
"""


class NbelasticError(Exception):
    """Base of every error nbelastic reports to the user as a single line."""


class NotebookNotFoundError(NbelasticError):
    """The notebook path does not exist or is not a notebook."""


class NoCheckpointError(NbelasticError):
    """The notebook carries no nbelastic checkpoint."""


class CheckpointFormatError(NbelasticError):
    """The checkpoint metadata or manifest is malformed or written by a newer nbelastic."""


class HistoryFormatError(CheckpointFormatError, ValueError):
    """The history graph of a checkpoint is malformed (a ValueError too, as it always was)."""


class BlobMissingError(NbelasticError):
    """A blob named by the manifest is not in the sidecar store."""


class BlobCorruptError(NbelasticError):
    """A blob's bytes do not match its content hash."""


class UnserializableError(NbelasticError):
    """A value cannot be encoded by any codec; the planner falls back to replaying it."""


class StoreWriteError(NbelasticError):
    """Writing to the sidecar store or the notebook failed (full disk, permissions, ...)."""


class RestoreError(NbelasticError):
    """Rebuilding the namespace failed: a replayed cell raised or a value could not be loaded."""


class TrustError(NbelasticError):
    """The signing secret is unusable, or a part of an untrusted checkpoint would run code."""
