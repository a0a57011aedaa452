"""Remote stores: blobs at an S3 URL, so that the .ipynb alone restores on another machine.

Tested against a real S3 API: moto's server, started on 127.0.0.1 by these tests. The kernels
and CLI processes reach it through the environment (credentials and ``FSSPEC_S3``), as a user's
would reach their bucket.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from checkpoint_kernels import restore_in_kernel

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from nbelastic.driver import Kernel  # noqa: E402
from nbelastic.errors import BlobCorruptError, StoreWriteError  # noqa: E402
from nbelastic.notebook import read_checkpoint, sidecar_dir  # noqa: E402
from nbelastic.store import read_manifest  # noqa: E402
from nbelastic.store.remote import RemoteBlobStore  # noqa: E402

BUCKET = "team-state"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 for the tests of this module, with one bucket."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    yield endpoint
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """Point fsspec and every process started from here at the server; a fresh bucket."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("FSSPEC_S3", json.dumps({"endpoint_url": s3_endpoint}))
    import fsspec.config
    import s3fs

    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": s3_endpoint})
    s3fs.S3FileSystem.clear_instance_cache()
    filesystem = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    if filesystem.exists(BUCKET):
        filesystem.rm(BUCKET, recursive=True)
    filesystem.mkdir(BUCKET)
    return filesystem


CELLS = [
    "import numpy as np",
    "big = np.arange(3_000_000, dtype=np.int64)",  # 24 MB: several multipart chunks
    "view = big[::2]",
    "config = {'lr': 0.1, 'layers': [64, 32]}",
    "pair = (config, 'x')",
]
NAMES = ["big", "view", "config", "pair"]


def save(directory: Path, url: str) -> Path:
    notebook = directory / "nb.ipynb"
    with Kernel(cwd=directory) as kernel:
        for code in ["%load_ext nbelastic", *CELLS]:
            assert kernel.execute(code).error is None, code
        kernel.call(
            "save",
            {"notebook": str(notebook), "plan": "store-all", "bandwidth": 1e9, "store": url},
        )
        expected = kernel.execute(
            "print(__import__('json').dumps({k: repr(v) for k, v in globals().items() "
            f"if k in {NAMES!r}}}))",
            silent=True,
        )
    (directory / "expected.json").write_text(expected.stdout)
    return notebook


@pytest.mark.kernel
def test_a_copy_of_the_notebook_alone_restores_from_s3(tmp_path, s3):
    url = f"s3://{BUCKET}/projects/nb"
    (tmp_path / "laptop").mkdir()
    notebook = save(tmp_path / "laptop", url)
    assert read_checkpoint(notebook)["store"] == url
    assert not sidecar_dir(notebook).joinpath("blobs").exists()
    assert s3.cat_file(f"{BUCKET}/projects/nb/manifest.txt").startswith(b"# nbelastic manifest")

    elsewhere = tmp_path / "gpu-box"
    elsewhere.mkdir()
    shutil.copy(notebook, elsewhere / "nb.ipynb")
    report, values = restore_in_kernel(elsewhere / "nb.ipynb", NAMES)

    assert report["ok"], report
    assert sorted(report["loaded"]) == sorted(["big", "config", "np", "pair", "view"])
    assert values == json.loads((tmp_path / "laptop" / "expected.json").read_text())


@pytest.mark.kernel
def test_a_corrupt_remote_blob_is_rebuilt_by_replay(tmp_path, s3):
    url = f"s3://{BUCKET}/corrupt"
    (tmp_path / "a").mkdir()
    notebook = save(tmp_path / "a", url)
    store = RemoteBlobStore(url)
    entry = read_manifest(store, read_checkpoint(notebook)["manifest"]).entry_for("config")
    s3.pipe_file(store.path(entry.key), b"NBELASTIC-BLOB 1 json\n{}")

    report, values = restore_in_kernel(notebook, ["config"])

    assert report["ok"], report
    assert "is corrupt" in report["rebuilt"]["config"]
    assert values == {"config": "{'lr': 0.1, 'layers': [64, 32]}"}


def test_blobs_round_trip_through_the_remote_store(s3):
    store = RemoteBlobStore(f"s3://{BUCKET}/unit")
    payload = bytes(range(256)) * 40_000  # 10 MB: streamed in chunks
    key = store.put("npy", payload)
    assert store.put("npy", payload) == key  # queued once
    store.flush()
    assert store.keys() == {key} and store.has(key)
    fresh = RemoteBlobStore(f"s3://{BUCKET}/unit")
    fresh.prefetch([key])
    assert fresh.check(key) is None
    assert fresh.get(key) == ("npy", payload)
    assert fresh.check("0" * 64) == f"blob {'0' * 12} is missing from s3://{BUCKET}/unit"


def test_an_unreachable_store_is_one_clear_error_at_flush(monkeypatch):
    import fsspec.config

    monkeypatch.setitem(
        fsspec.config.conf, "s3", {"endpoint_url": f"http://127.0.0.1:{free_port()}"}
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    store = RemoteBlobStore("s3://nowhere/x")
    store.put("json", b"1")
    with pytest.raises(StoreWriteError, match=r"^cannot write to the store s3://nowhere/x \("):
        store.flush()


@pytest.mark.kernel
def test_run_with_store_then_verify_a_copy(tmp_path, s3):
    notebook = tmp_path / "nb.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS]), notebook
    )
    url = f"s3://{BUCKET}/cli"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbelastic",
            "run",
            str(notebook),
            "--store",
            url,
            "--plan",
            "store-all",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(notebook, copy / "nb.ipynb")
    verify = subprocess.run(
        [sys.executable, "-m", "nbelastic", "verify", str(copy / "nb.ipynb")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("OK: nb.ipynb: 5/5 variables verified")


def test_a_corrupt_remote_blob_is_named_by_its_url(s3):
    store = RemoteBlobStore(f"s3://{BUCKET}/damaged")
    key = store.put("json", b"[1, 2]")
    store.flush()
    s3.pipe_file(store.path(key), b"NBELASTIC-BLOB 1 json\n[1, 3]")
    fresh = RemoteBlobStore(f"s3://{BUCKET}/damaged")
    assert fresh.check(key) == f"blob {key[:12]} is corrupt (its bytes do not match its hash)"
    with pytest.raises(BlobCorruptError, match=f"^blob {key[:12]} in s3://{BUCKET}/damaged is"):
        fresh.get(key)


@pytest.fixture
def listening(tmp_path):
    """An HTTP server on 127.0.0.1 that records the path of every request it receives."""
    import http.server
    import threading

    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_error(404)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", requests
    server.shutdown()


@pytest.mark.kernel
def test_an_unsigned_checkpoint_naming_a_url_store_contacts_nothing(tmp_path, listening):
    url, requests = listening
    notebook = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), notebook)
    assert subprocess.run([sys.executable, "-m", "nbelastic", "run", str(notebook)]).returncode == 0
    sent = nbformat.read(notebook, as_version=4)
    sent.metadata["nbelastic"]["store"] = f"{url}/state"  # as a stranger's notebook could
    nbformat.write(sent, notebook)

    def verify(*options: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "nbelastic", "verify", str(notebook), *options]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    refused = verify()
    assert refused.returncode == 2 and "you did not sign it: nothing was fetched" in refused.stderr
    assert requests == []
    verify("--trust")
    assert requests, "the check above could not have seen a request"
