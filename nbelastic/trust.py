"""Trust: only a checkpoint this user signed may run code when it is restored.

Restoring unpickles values (dill), imports modules and replays cells: all of that runs code, and
a notebook someone sent you is not code you chose to run. As Jupyter does for notebook outputs,
every checkpoint saved here is signed with an HMAC-SHA256 keyed by a secret that only this user
can read; a restore loads code-running parts only from a checkpoint whose signature checks out,
or when the user says so after a review (``nbelastic trust NB``, ``--trust``).

What is signed is the whole checkpoint document except the signature itself, in its canonical
form (nbelastic.canonical): JupyterLab rewrites the notebook through JavaScript's JSON on every
save, and the signature must survive that. The document names the manifest and the RNG blobs
by their sha256, and the manifest names every blob by its sha256, so the signature covers every
byte a restore will read: swapping a blob changes its key, which no longer matches what was
signed.

The secret lives in ``<jupyter data dir>/nbelastic/secret`` (mode 0600, created on first save);
``NBELASTIC_SECRET_FILE`` points elsewhere, for tests and for users who keep secrets apart.

nbelastic 0.1 signed Python's ``json.dumps`` text instead; such a checkpoint still verifies,
also after a JavaScript round trip turned its integral floats into ints (see ``_legacy_forms``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
import secrets
from contextlib import suppress
from pathlib import Path

from nbelastic import canonical
from nbelastic.errors import TrustError

SECRET_ENV = "NBELASTIC_SECRET_FILE"
SIGNATURE_KEY = "signature"
_SCHEME = "hmac-sha256:"
_DOMAIN = b"nbelastic checkpoint signature 1\n"
_SECRET_BYTES = 32


def secret_path() -> Path:
    """Where this user's signing secret is kept."""
    override = os.environ.get(SECRET_ENV)
    if override:
        return Path(override)
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "nbelastic" / "secret"


def sign(document: dict) -> dict:
    """A copy of ``document`` signed as this user; the secret is created if there is none."""
    signed = {key: value for key, value in document.items() if key != SIGNATURE_KEY}
    form = canonical.encode(signed)
    signed[SIGNATURE_KEY] = _signature(form, signed, _secret(create=True)).decode("ascii")
    return signed


def is_trusted(document: dict) -> bool:
    """True when ``document`` carries a valid signature made with this user's secret."""
    claimed = document.get(SIGNATURE_KEY)
    if not isinstance(claimed, str):
        return False
    secret = _secret(create=False)
    if secret is None:
        return False
    unsigned = {key: value for key, value in document.items() if key != SIGNATURE_KEY}
    try:
        forms = [canonical.encode(unsigned), *_legacy_forms(unsigned)]
    except (ValueError, RecursionError):
        return False
    claim = claimed.encode("utf-8", "replace")
    return any(hmac.compare_digest(claim, _signature(form, unsigned, secret)) for form in forms)


def _signature(form: bytes, unsigned: dict, secret: bytes) -> bytes:
    # The manifest key comes first on its own so that what is signed reads as "this manifest,
    # in this document", even to someone checking the scheme by hand.
    manifest = str(unsigned.get("manifest", "")).encode("ascii", "replace")
    message = _DOMAIN + manifest + b"\n" + form
    return (_SCHEME + hmac.new(secret, message, hashlib.sha256).hexdigest()).encode("ascii")


def _legacy_forms(unsigned: dict) -> list[bytes]:
    """What nbelastic 0.1 signed: Python's json.dumps of the document as it reads now, and of
    the document with the schema's three float fields (runtimes, bandwidth, restore estimate)
    made floats again, as they were when signed before JavaScript wrote ``2.0`` as ``2``."""
    as_read = canonical.legacy(unsigned).encode("utf-8")
    floats = copy.deepcopy(unsigned)
    plan = floats.get("plan")
    if isinstance(plan, dict):
        for key in ("bandwidth", "restore_seconds"):
            plan[key] = _as_float(plan.get(key))
    history = floats.get("history")
    executions = history.get("executions") if isinstance(history, dict) else None
    for execution in executions if isinstance(executions, list) else ():
        if isinstance(execution, dict):
            execution["runtime"] = _as_float(execution.get("runtime"))
    return [as_read, canonical.legacy(floats).encode("utf-8")]


def _as_float(value: object) -> object:
    return float(value) if type(value) is int else value


def _secret(*, create: bool) -> bytes | None:
    """This user's secret; None if there is none and ``create`` is false."""
    path = secret_path()
    try:
        secret = path.read_bytes().strip()
    except FileNotFoundError:
        if not create:
            return None
        return _create_secret(path)
    except OSError as error:
        raise _unreadable(path, error) from None
    if len(secret) < _SECRET_BYTES:
        raise TrustError(
            f"the signing secret {path} is too short (damaged?): delete it so that nbelastic "
            "makes a new one, then `nbelastic trust` the notebooks you saved before"
        )
    return secret


def _create_secret(path: Path) -> bytes:
    """Make the secret atomically: a concurrent first save reads the same one, never half."""
    secret = secrets.token_hex(_SECRET_BYTES).encode("ascii")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(descriptor, "wb") as stream:
            stream.write(secret + b"\n")
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(temporary, path)  # fails if another process made the secret first
        except FileExistsError:
            return _secret(create=False) or secret
        return secret
    except OSError as error:
        raise _unreadable(path, error) from None
    finally:
        with suppress(OSError):
            temporary.unlink()


def _unreadable(path: Path, error: OSError) -> TrustError:
    return TrustError(
        f"cannot use the signing secret {path} ({error.strerror or error}): fix its permissions, "
        f"or set {SECRET_ENV} to a file only you can read"
    )
