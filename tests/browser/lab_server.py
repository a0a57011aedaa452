"""A real ``jupyter lab`` process on 127.0.0.1, as a user starts it, isolated from this machine's
own Jupyter configuration, data, runtime, settings and workspaces.

The nbelastic server extension is enabled by the same file installing puts in
``etc/jupyter/jupyter_server_config.d`` (an editable install does not copy it there); the
configuration under ``sys.prefix`` stays on the path, so JupyterLab itself loads as installed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENABLING = ROOT / "jupyter-config" / "jupyter_server_config.d" / "nbelastic.json"
TOKEN = "nbelastic-browser-token"
# JupyterLab asks on first start whether to fetch news from the internet: no toast, no request.
NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}


class LabServer:
    """``jupyter lab`` serving ``root``; its log is ``home/server.log``."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.home = home
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> LabServer:
        config = self.home / "config" / "jupyter_server_config.d"
        config.mkdir(parents=True)
        (config / "nbelastic.json").write_text(ENABLING.read_text())
        settings = self.home / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(json.dumps(NO_NEWS))
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.home / "config"),
            "JUPYTER_CONFIG_PATH": str(self.home / "config"),
            "JUPYTER_DATA_DIR": str(self.home / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.home / "workspaces"),
        }
        log = open(self.log_path, "w")  # noqa: SIM115  (the process owns it until stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={self.root}",
                "--ServerApp.allow_root=True",
            ],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not start:\n{self.log()}")
            time.sleep(0.2)
        return self

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/api/status?token={TOKEN}", timeout=5).close()
        except (urllib.error.URLError, ConnectionError):
            return False
        return True

    def lab_url(self) -> str:
        return f"{self.url}/lab?token={TOKEN}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
