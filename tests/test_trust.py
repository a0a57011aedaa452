"""Trust: checkpoints are signed per user; an unsigned or foreign one runs no code at restore."""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import json
import os
import pickle
import re
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from checkpoint_kernels import restore_in_kernel, save_in_kernel
from javascript import needs_node, round_trip_file

from nbelastic.driver import Kernel
from nbelastic.errors import BlobCorruptError, TrustError
from nbelastic.history import History
from nbelastic.notebook import read_checkpoint, sidecar_dir, write_checkpoint
from nbelastic.restore_plan import loader, plan_load
from nbelastic.review import _what_runs
from nbelastic.store import BlobStore, Manifest, ManifestEntry, read_manifest, write_manifest
from nbelastic.store.pickles import pickle_globals
from nbelastic.trust import SECRET_ENV, is_trusted, secret_path, sign

KEY = "ab" * 32
PROGRESS = re.compile(r"nbelastic restore: [0-9]+/[0-9]+ ")


def document() -> dict:
    history = History()
    history.record("x = 41", 0.01, writes=["x"])
    history.record("y = x + 1", 2.5, reads=["x"], writes=["y"])
    return {
        "format": 1,
        "producer": "nbelastic 0.1.0",
        "store": "nb.nbelastic",
        "manifest": KEY,
        "plan": {"strategy": "optimal", "bandwidth": 1.2e9, "replay": [2], "restore_seconds": 2.5},
        "history": history.to_json(),
        "variables": {
            "x": {"type": "builtins.int", "size": 28, "hash": "9f", "action": "store", "why": "."},
            "y": {"type": "builtins.int", "size": 28, "hash": "a0", "action": "replay", "why": "."},
        },
    }


@pytest.fixture
def other_user(tmp_path, monkeypatch):
    """Switch to another user's secret for the rest of the test."""

    def switch() -> None:
        monkeypatch.setenv(SECRET_ENV, str(tmp_path / "other-secret"))

    return switch


def test_a_checkpoint_signed_here_is_trusted_here():
    assert is_trusted(sign(document()))


def test_an_unsigned_checkpoint_is_not_trusted():
    assert not is_trusted(document())


def test_a_checkpoint_signed_by_another_user_is_not_trusted(other_user):
    signed = sign(document())
    other_user()
    assert not is_trusted(signed)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["history"]["executions"][1].__setitem__("code", "import os; os.remove('x')"),
        lambda d: d.__setitem__("manifest", "cd" * 32),
        lambda d: d["plan"]["replay"].append(1),
        lambda d: d["variables"]["x"].__setitem__("hash", "00"),
    ],
    ids=["replayed code", "manifest key", "replay list", "recorded hash"],
)
def test_any_edit_after_signing_breaks_the_signature(edit):
    signed = sign(document())
    edit(signed)
    assert not is_trusted(signed)


def test_signing_is_deterministic_and_replaces_an_old_signature():
    once = sign(document())
    assert sign(once) == once == sign(document())


def test_the_secret_is_made_once_readable_only_by_its_owner(signing_secret):
    sign(document())
    first = signing_secret.read_bytes()
    sign(document())
    assert signing_secret.read_bytes() == first
    assert stat.S_IMODE(signing_secret.stat().st_mode) == 0o600


def test_checking_a_signature_never_makes_a_secret(tmp_path, monkeypatch):
    signed = sign(document())
    monkeypatch.setenv(SECRET_ENV, str(tmp_path / "none" / "secret"))
    assert not is_trusted(signed)
    assert not (tmp_path / "none").exists()


def test_the_default_secret_lives_in_the_jupyter_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(SECRET_ENV)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    assert secret_path() == tmp_path / "nbelastic" / "secret"


def test_a_damaged_secret_is_one_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "secret"
    path.write_text("short")
    monkeypatch.setenv(SECRET_ENV, str(path))
    with pytest.raises(TrustError, match=f"the signing secret {path} is too short.*delete it"):
        sign(document())


@pytest.mark.parametrize("suffix", [".ipynb", ".py"])
def test_a_signature_survives_writing_and_reading_the_notebook(tmp_path, suffix):
    notebook = tmp_path / f"nb{suffix}"
    write_checkpoint(notebook, sign(document()), new_cells=["x = 41"])
    assert is_trusted(read_checkpoint(notebook))


def test_a_malformed_signature_is_a_format_error(tmp_path):
    from nbelastic.errors import CheckpointFormatError

    with pytest.raises(CheckpointFormatError, match="signature"):
        write_checkpoint(tmp_path / "nb.ipynb", {**document(), "signature": "md5:00"})


# --- JupyterLab's JSON round trip ---------------------------------------------------------------


@needs_node
def test_a_signature_survives_jupyterlab_writing_the_notebook_back(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    write_checkpoint(notebook, sign(document()), new_cells=["x = 41"])
    round_trip_file(notebook)
    assert '"bandwidth": 1200000000,' in notebook.read_text()
    assert is_trusted(read_checkpoint(notebook))


@needs_node
def test_an_edit_after_jupyterlab_wrote_the_notebook_breaks_the_signature(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    write_checkpoint(notebook, sign(document()), new_cells=["x = 41"])
    round_trip_file(notebook)
    edited = read_checkpoint(notebook)
    edited["history"]["executions"][1]["code"] = "import os"
    assert not is_trusted(edited)


def legacy_sign(unsigned: dict, secret: bytes) -> dict:
    """A signature as nbelastic 0.1 made it: over Python's json.dumps text."""
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    message = b"nbelastic checkpoint signature 1\n" + unsigned["manifest"].encode() + b"\n"
    mac = hmac.new(secret, message + text.encode(), hashlib.sha256).hexdigest()
    return {**unsigned, "signature": f"hmac-sha256:{mac}"}


def test_a_checkpoint_signed_by_nbelastic_0_1_is_still_trusted(signing_secret):
    sign(document())  # makes the secret
    old = legacy_sign(document(), signing_secret.read_bytes().strip())
    assert old != sign(document())
    assert is_trusted(old)


@needs_node
def test_a_checkpoint_signed_by_nbelastic_0_1_survives_jupyterlab_writing_it_back(
    tmp_path, signing_secret
):
    sign(document())
    unsigned = document()
    unsigned["history"]["executions"][0]["runtime"] = 3.0
    notebook = tmp_path / "nb.ipynb"
    write_checkpoint(notebook, legacy_sign(unsigned, signing_secret.read_bytes().strip()))
    round_trip_file(notebook)
    assert '"runtime": 3,' in notebook.read_text()
    assert is_trusted(read_checkpoint(notebook))


def test_an_edit_of_a_checkpoint_signed_by_nbelastic_0_1_breaks_its_signature(signing_secret):
    sign(document())
    old = legacy_sign(document(), signing_secret.read_bytes().strip())
    old["plan"]["replay"].append(1)
    assert not is_trusted(old)


@needs_node
@pytest.mark.kernel
def test_a_restore_after_jupyterlab_wrote_the_notebook_loads_every_variable(tmp_path):
    cells = ["import fractions", "x = fractions.Fraction(1, 3)", "def f(v):\n    return v + 1"]
    notebook = save_in_kernel(tmp_path, cells, "store-all")
    round_trip_file(notebook)
    report, values = restore_in_kernel(notebook, ["x", "f"])
    assert report["trusted"] and report["ok"] and report["not_loaded"] == {}
    assert values["x"] == "Fraction(1, 3)"


class _Touch:
    """A pickle payload whose loading creates ``path``, as a hostile notebook's would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_the_review_names_what_a_hostile_pickle_would_call(tmp_path):
    payload = pickle.dumps({"t": _Touch(tmp_path / "marker")})
    assert ("io", "open") in pickle_globals(payload)
    assert not (tmp_path / "marker").exists()


# --- what an untrusted restore loads ------------------------------------------------------------


def _history() -> History:
    history = History()
    history.record("x = load()", 1.0, writes=["x"])
    history.record("y = f(x)", 1.0, reads=["x"], writes=["y"])
    history.record("z = g(y)", 1.0, reads=["y"], writes=["z"])
    return history


def _entries() -> tuple[ManifestEntry, ...]:
    return (
        ManifestEntry(("x",), "npy", 8, "a" * 64),
        ManifestEntry(("y",), "dill", 8, "b" * 64),
        ManifestEntry(("m",), "module", 5, "c" * 64),
    )


VARIABLES = {
    "x": {"action": "store"},
    "y": {"action": "store"},
    "m": {"action": "store"},
    "z": {"action": "replay"},
}


def test_untrusted_loads_only_safe_codecs_and_replays_nothing():
    plan = plan_load(_history(), Manifest(_entries()), [3], VARIABLES, {}, trusted=False)
    assert [entry.names for entry in plan.entries] == [("x",)]
    assert plan.replay == ()
    assert plan.not_loaded == {
        "m": "not trusted: its module blob runs code when loaded",
        "y": "not trusted: its dill blob runs code when loaded",
        "z": "not trusted: it is rebuilt by replaying cells",
    }


def test_trusted_loads_everything_as_planned():
    plan = plan_load(_history(), Manifest(_entries()), [3], VARIABLES, {}, trusted=True)
    assert plan.entries == Manifest(_entries()).entries
    assert plan.replay == (3,)
    assert plan.not_loaded == {}


@pytest.mark.parametrize("trusted", [False, True])
def test_a_blob_whose_codec_disagrees_with_its_manifest_line_is_corrupt(tmp_path, trusted):
    store = BlobStore(tmp_path)
    payload = pickle.dumps({"t": _Touch(tmp_path / "marker")})
    lying = ManifestEntry(("t",), "json", len(payload), store.put("dill", payload))
    with pytest.raises(BlobCorruptError, match="its header says dill, the manifest says json"):
        loader(store, trusted=trusted)(lying)
    assert not (tmp_path / "marker").exists()


def test_an_untrusted_loader_refuses_a_pickle(tmp_path):
    store = BlobStore(tmp_path)
    payload = pickle.dumps({"t": _Touch(tmp_path / "marker")})
    entry = ManifestEntry(("t",), "dill", len(payload), store.put("dill", payload))
    with pytest.raises(TrustError, match="not trusted: its dill blob runs code"):
        loader(store, trusted=False)(entry)
    assert not (tmp_path / "marker").exists()


# --- in real kernels ------------------------------------------------------------------------------


def _plant(notebook: Path, name: str, payload: bytes, manifest_codec: str, signature: str) -> None:
    """Replace ``name``'s blob with ``payload`` and re-point the checkpoint at it, as a hostile
    sender would; the checkpoint ends up unsigned or signed with another user's secret."""
    document = read_checkpoint(notebook)
    store = BlobStore(sidecar_dir(notebook))
    entries = [e for e in read_manifest(store, document["manifest"]).entries if name not in e.names]
    key = store.put("dill", payload)
    entries.append(ManifestEntry((name,), manifest_codec, len(payload), key))
    document["manifest"] = write_manifest(store, Manifest(tuple(entries)))
    document.pop("signature")
    if signature == "foreign":
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(SECRET_ENV, str(notebook.parent / "attacker-secret"))
            document = sign(document)
    write_checkpoint(notebook, document)


@pytest.mark.kernel
@pytest.mark.parametrize("signature", ["unsigned", "foreign"])
@pytest.mark.parametrize("manifest_codec", ["dill", "json"])
def test_an_untrusted_malicious_pickle_executes_nothing(tmp_path, signature, manifest_codec):
    notebook = save_in_kernel(tmp_path, ["t = (1, 2)", "x = [1, 2, 3]"], "store-all")
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"t": _Touch(marker)})
    pickle.loads(payload)  # the payload is live: loading it creates the marker
    assert marker.exists()
    marker.unlink()
    _plant(notebook, "t", payload, manifest_codec, signature)

    report, values = restore_in_kernel(notebook, ["t", "x", "n"])

    assert not marker.exists()
    assert not report["trusted"] and not report["ok"]
    expected = "not trusted" if manifest_codec == "dill" else "corrupt"
    assert expected in report["not_loaded"]["t"]
    assert values == {"x": "[1, 2, 3]"}
    if manifest_codec == "dill":
        assert any("nbelastic trust" in warning for warning in report["warnings"])


@pytest.mark.kernel
def test_an_untrusted_checkpoint_replays_no_cell_until_trusted(tmp_path, other_user):
    marker = tmp_path / "replayed"
    cells = [f"open({str(marker)!r}, 'w').close()\nn = 1"]
    notebook = save_in_kernel(tmp_path, cells, "recompute-all")
    marker.unlink()
    other_user()  # the notebook arrives at someone else's

    report, values = restore_in_kernel(notebook, ["t", "x", "n"])
    assert not marker.exists()
    assert report["replayed"] == [] and values == {}
    assert report["not_loaded"] == {"n": "not trusted: it is rebuilt by replaying cells"}

    report, values = restore_in_kernel(notebook, ["t", "x", "n"], trust=True)
    assert marker.exists()
    assert report["ok"] and values == {"n": "1"}


# --- the command line ---------------------------------------------------------------------------


def nbelastic(*args: str, input: str | None = None, **environment: str):
    return subprocess.run(
        [sys.executable, "-m", "nbelastic", *args],
        capture_output=True,
        text=True,
        input=input,
        env={**os.environ, **environment},
        timeout=300,
    )


@pytest.fixture
def foreign_notebook(tmp_path) -> Path:
    """A notebook saved by another user: a dill value, a module, JSON and a replayed cell."""
    notebook = tmp_path / "nb.ipynb"
    cells = ["import json", "t = (1, 2)", "x = [1, 2]", "n = len(x)"]
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), notebook
    )
    other = {SECRET_ENV: str(tmp_path / "sender-secret")}
    result = nbelastic("run", str(notebook), "--bandwidth", "1GB/s", **other)
    assert result.returncode == 0, result.stderr
    return notebook


@pytest.mark.kernel
def test_verify_of_a_foreign_checkpoint_says_how_to_trust_it(foreign_notebook):
    before = foreign_notebook.read_bytes()
    result = nbelastic("verify", str(foreign_notebook))
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("INCOMPLETE: nb.ipynb: ")
    hints = [line for line in result.stdout.splitlines() if "nbelastic trust" in line]
    assert len(hints) == 1 and "not signed by you" in hints[0]
    assert foreign_notebook.read_bytes() == before

    trusted_once = nbelastic("verify", "--trust", str(foreign_notebook))
    assert trusted_once.returncode == 0, trusted_once.stdout + trusted_once.stderr
    assert foreign_notebook.read_bytes() == before  # --trust signs nothing


@pytest.mark.kernel
def test_trust_shows_what_would_run_and_signs_only_when_accepted(foreign_notebook):
    declined = nbelastic("trust", str(foreign_notebook), input="n\n")
    assert declined.returncode == 1
    for shown in ("NOT signed by you", "t: dill", "json: module", "imports json", "x (json)"):
        assert shown in declined.stdout, declined.stdout
    assert not is_trusted(read_checkpoint(foreign_notebook))

    accepted = nbelastic("trust", "--yes", str(foreign_notebook))
    assert accepted.returncode == 0, accepted.stderr
    assert "signed" in accepted.stdout.splitlines()[-1]
    assert is_trusted(read_checkpoint(foreign_notebook))
    assert nbelastic("verify", str(foreign_notebook)).returncode == 0
    again = nbelastic("trust", str(foreign_notebook))
    assert "already signed by you" in again.stdout


def test_trust_of_a_notebook_without_checkpoint_is_one_clear_line(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    result = nbelastic("trust", "--yes", str(notebook))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no nbelastic checkpoint" in result.stderr


def test_the_document_is_not_changed_by_checking_it():
    signed = sign(document())
    kept = copy.deepcopy(signed)
    is_trusted(signed)
    assert signed == kept


def without_progress(stderr: str) -> list[str]:
    """The lines of ``stderr`` other than progress, which a restore slower than 1 s prints."""
    return [line for line in stderr.splitlines() if not PROGRESS.match(line)]


@pytest.mark.kernel
def test_the_restore_magic_holds_back_code_until_trusted(foreign_notebook):
    with Kernel(cwd=foreign_notebook.parent) as kernel:
        assert kernel.execute("%load_ext nbelastic").error is None
        held_back = kernel.execute(f"%nbelastic restore {foreign_notebook}")
        assert held_back.error is None
        lines = without_progress(held_back.stderr)
        assert len(lines) == 2 and "NOT loaded: json, t" in lines[0]
        assert lines[1].startswith("nbelastic: ") and "`nbelastic trust " in lines[1]
        assert kernel.execute("t").error is not None  # NameError: the pickle was not loaded

        trusted = kernel.execute(f"%nbelastic restore --trust {foreign_notebook}")
        assert without_progress(trusted.stderr) == [] and "verified 4/4" in trusted.stdout
        assert kernel.execute("print(t)").stdout == "(1, 2)\n"


@pytest.mark.parametrize("codec", ["dill", "pickle"])
def test_the_review_names_what_a_pickle_blob_calls_whichever_pickler_wrote_it(codec):
    import collections

    payload = pickle.dumps(collections.OrderedDict(a=1))
    assert _what_runs(codec, io.BytesIO(payload)) == "unpickling calls collections.OrderedDict"
