"""The jupyter_server extension, against a real server on 127.0.0.1 through its REST API."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest
from javascript import needs_node, round_trip
from sidecar_documents import save_values
from test_cli import nbelastic

pytest.importorskip("jupyter_server")
from tornado.websocket import websocket_connect  # noqa: E402  (jupyter_server brings tornado)

from nbelastic.notebook import read_checkpoint  # noqa: E402
from nbelastic.server import identity  # noqa: E402
from nbelastic.trust import SECRET_ENV  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "nbelastic-test-token"


class Server:
    """A jupyter_server process with the extension enabled, and its REST API."""

    def __init__(self, root: Path, home: Path, *options: str) -> None:
        self.root = root
        config = home / "config"
        config.mkdir(parents=True)
        # The same file that installing puts in etc/jupyter/jupyter_server_config.d
        enabling = ROOT / "jupyter-config" / "jupyter_server_config.d" / "nbelastic.json"
        (config / "jupyter_server_config.json").write_text(enabling.read_text())
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_CONFIG_PATH": str(config),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        }
        self.log_path = home / "server.log"
        # A free port can be taken (by a kernel of another test) before the server binds it:
        # the server then exits (no port_retries), and a new port is tried.
        for _ in range(3):
            if self._launch(root, env, options):
                return
        raise AssertionError(f"the server did not start:\n{self.log_path.read_text()}")

    def _launch(self, root: Path, env: dict, options: tuple[str, ...]) -> bool:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1",
                "--ServerApp.open_browser=False",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.allow_root=True",
                *options,
            ],
            cwd=root,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.request("GET", "/api/status")
                return True
            except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
                if self.process.poll() is not None:
                    self.log.close()
                    return False
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
        return json.loads(text) if text else {}

    def load(self, name: str) -> dict:
        """What JupyterLab does when it opens a notebook."""
        return self.request("GET", f"/api/contents/{name}?content=1")

    def save(self, name: str, model: dict) -> None:
        """What JupyterLab does when the user saves."""
        body = {"type": "notebook", "format": "json", "content": model["content"]}
        self.request("PUT", f"/api/contents/{name}", body)

    def open_session(self, name: str) -> str:
        """Open the notebook with a kernel, as JupyterLab does; the kernel's id."""
        body = {"path": name, "type": "notebook", "name": "", "kernel": {"name": "python3"}}
        return self.request("POST", "/api/sessions", body)["kernel"]["id"]

    def open_like_lab(self, name: str) -> dict:
        """Open the notebook ``name`` as JupyterLab 4.6 does (recorded from a real session):
        a session whose path is a uuid next to the notebook, then PATCHes of path and name.
        The session's model."""
        folder, _, base = name.rpartition("/")
        placeholder = f"{folder}/{uuid.uuid4()}" if folder else str(uuid.uuid4())
        body = {"path": placeholder, "type": "notebook", "name": base}
        session = self.request("POST", "/api/sessions", {**body, "kernel": {"name": "python3"}})
        self.request("PATCH", f"/api/sessions/{session['id']}", {"path": name})
        return self.request("PATCH", f"/api/sessions/{session['id']}", {"name": base})

    def rename(self, session: dict, old: str, new: str) -> None:
        """Rename or move a notebook in the file browser, as JupyterLab 4.6 does."""
        self.request("PATCH", f"/api/contents/{old}", {"path": new})
        base = new.rpartition("/")[2]
        self.request("PATCH", f"/api/sessions/{session['id']}", {"path": new, "name": base})

    def restart(self, kernel_id: str) -> None:
        """Kernel > Restart."""
        self.request("POST", f"/api/kernels/{kernel_id}/restart", {})

    def close(self, session: dict) -> None:
        """Shut down the kernel and close the notebook."""
        self.request("DELETE", f"/api/sessions/{session['id']}")

    def run_cell(self, kernel_id: str, code: str) -> str:
        """Run ``code`` in the kernel through its websocket; what it printed."""
        return asyncio.run(self._run_cell(kernel_id, code))

    async def _run_cell(self, kernel_id: str, code: str) -> str:
        url = f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels?token={TOKEN}"
        connection = await websocket_connect(url)
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": uuid.uuid4().hex,
            "date": "",
            "version": "5.3",
        }
        content = {"code": code, "silent": False, "store_history": True, "allow_stdin": False}
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        await connection.write_message(json.dumps({**message, "channel": "shell"}))
        printed = []
        while True:
            reply = json.loads(await asyncio.wait_for(connection.read_message(), 120))
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = reply["msg_type"]
            if kind == "stream":
                printed.append(reply["content"]["text"])
            elif kind == "error":
                printed.append(f"{reply['content']['ename']}: {reply['content']['evalue']}\n")
            elif kind == "status" and reply["content"]["execution_state"] == "idle":
                break
        connection.close()
        return "".join(printed)

    def log_text(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def start_server(tmp_path):
    servers: list[Server] = []
    root = tmp_path / "root"
    root.mkdir()

    def start(*options: str) -> Server:
        server = Server(root, tmp_path / f"home{len(servers)}", *options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def disk_checkpoint(notebook: Path):
    return nbformat.read(notebook, as_version=4).metadata.get("nbelastic")


def plain_notebook(path: Path) -> Path:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    return path


@needs_node
def test_the_copy_the_ui_sends_back_has_the_identity_of_the_checkpoint_on_disk(tmp_path):
    saved = save_values(plain_notebook(tmp_path / "analysis.ipynb"), {"x": 1})
    sent = json.loads(round_trip(json.dumps(saved)))
    assert type(sent["plan"]["bandwidth"]) is int  # 100000000.0 came back as 100000000
    assert identity(sent) == identity(saved)


def test_ui_saving_a_copy_loaded_before_the_kernel_saved_keeps_the_checkpoint(start_server):
    server = start_server()
    notebook = plain_notebook(server.root / "analysis.ipynb")
    opened = server.load("analysis.ipynb")
    saved = save_values(notebook, {"x": 1})  # %nbelastic save, while the UI has it open
    server.save("analysis.ipynb", opened)
    assert disk_checkpoint(notebook) == saved


def test_ui_saving_an_older_checkpoint_keeps_the_newer_one_on_disk(start_server):
    server = start_server()
    notebook = plain_notebook(server.root / "analysis.ipynb")
    save_values(notebook, {"x": 1})
    opened = server.load("analysis.ipynb")
    newer = save_values(notebook, {"x": 2})
    server.save("analysis.ipynb", opened)
    assert disk_checkpoint(notebook) == newer
    server.save("analysis.ipynb", opened)  # and again: the UI still never saw the newer one
    assert disk_checkpoint(notebook) == newer


def test_ui_saving_after_the_user_deleted_the_checkpoint_strips_it(start_server):
    server = start_server()
    notebook = plain_notebook(server.root / "analysis.ipynb")
    save_values(notebook, {"x": 1})
    opened = server.load("analysis.ipynb")
    del opened["content"]["metadata"]["nbelastic"]  # the metadata editor
    server.save("analysis.ipynb", opened)
    assert disk_checkpoint(notebook) is None


def test_a_checkpoint_can_be_kept_off(start_server):
    server = start_server("--NbelasticServer.keep_checkpoint=False")
    notebook = plain_notebook(server.root / "analysis.ipynb")
    opened = server.load("analysis.ipynb")
    save_values(notebook, {"x": 1})
    server.save("analysis.ipynb", opened)
    assert disk_checkpoint(notebook) is None


@pytest.mark.kernel
def test_opening_a_notebook_restores_its_state_with_a_one_line_banner(start_server):
    server = start_server()
    subdirectory = server.root / "work"
    subdirectory.mkdir()
    notebook = subdirectory / "analysis.ipynb"
    cells = ["data = [1, 2, 3]", "total = sum(data)"]
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), notebook
    )
    assert nbelastic("run", str(notebook)).returncode == 0
    kernel = server.open_session("work/analysis.ipynb")
    first = server.run_cell(kernel, "print(total, data)")
    banner, value = first.splitlines()
    assert banner.startswith("nbelastic: restored 2 variables of checkpoint 1-")
    assert value == "6 [1, 2, 3]"
    assert server.run_cell(kernel, "print('again')") == "again\n"  # the banner shows once
    # The kernel knows its notebook's full path: a save goes to the right file.
    assert "saved" in server.run_cell(kernel, "more = total * 2\n%nbelastic save")
    assert "more" in read_checkpoint(notebook)["variables"]


@pytest.mark.kernel
def test_a_checkpoint_someone_else_signed_is_not_restored(start_server, tmp_path):
    server = start_server()
    notebook = server.root / "shared.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1")]), notebook)
    other_user = {**os.environ, SECRET_ENV: str(tmp_path / "someone-else")}
    ran = subprocess.run(
        [sys.executable, "-m", "nbelastic", "run", str(notebook)], env=other_user, timeout=300
    )
    assert ran.returncode == 0
    kernel = server.open_session("shared.ipynb")
    banner, error = server.run_cell(kernel, "print(a)").splitlines()
    assert "you did not sign, so it was not restored" in banner and "nbelastic trust" in banner
    assert error == "NameError: name 'a' is not defined"


@pytest.mark.kernel
def test_autorestore_can_be_turned_off(start_server):
    server = start_server("--NbelasticServer.autorestore=False")
    notebook = server.root / "analysis.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1")]), notebook)
    assert nbelastic("run", str(notebook)).returncode == 0
    kernel = server.open_session("analysis.ipynb")
    assert server.run_cell(kernel, "print('a' in dir())") == "False\n"


def test_installing_enables_the_extension():
    config = "jupyter-config/jupyter_server_config.d/nbelastic.json"
    data_files = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.data-files]")[1]
    assert f'"etc/jupyter/jupyter_server_config.d" = ["{config}"]' in data_files
    enabled = json.loads((ROOT / config).read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled == {"nbelastic.server": True}
