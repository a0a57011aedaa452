"""The requests JupyterLab 4 really sends to jupyter_server while a user creates, renames,
saves, closes, reopens a notebook and restarts its kernel: fixtures/jupyterlab4_requests.json
holds them for the server-extension tests to replay, and this test keeps it true.

``NBELASTIC_RECORD_REQUESTS=1`` rewrites the fixture from what the page sent instead (after a
JupyterLab upgrade; see the versions it records).
"""

from __future__ import annotations

import json
import os
import re
from importlib.metadata import version
from pathlib import Path

import pytest

from browser.browser_check import require_browser

require_browser()

pytestmark = [pytest.mark.browser, pytest.mark.kernel]

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "jupyterlab4_requests.json"
RECORD_ENV = "NBELASTIC_RECORD_REQUESTS"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Polls of lists (sessions, kernels, the folder shown) and of checkpoints: not the user's doing.
POLLS = re.compile(r"/api/(sessions|kernels|contents)/?$|/checkpoints$")


def user_flow(lab) -> None:
    """New notebook from the launcher; File > Rename Notebook to analysis.ipynb; run `x = 1`;
    Ctrl+S; Kernel > Shut Down Kernel; File > Close Tab; reopen it from the file browser;
    Kernel > Restart Kernel."""
    lab.new_notebook()
    lab.rename("analysis.ipynb")
    lab.run_cell("x = 1")
    lab.save()
    lab.shut_down_kernel()
    lab.close_tab()
    lab.open_from_file_browser("analysis.ipynb")
    lab.restart_kernel()


def kept(requests: list[dict]) -> list[dict]:
    return [r for r in requests if not (r["method"] == "GET" and POLLS.search(r["path"]))]


def shape(request: dict) -> tuple:
    """What stays the same from one session to the next: ids, times and the notebook's
    content left out (the content's keys kept)."""
    body = request["body"]
    if isinstance(body, dict) and isinstance(body.get("content"), dict):
        body = {**body, "content": sorted(body["content"])}
    text = UUID.sub("<uuid>", json.dumps([request["path"], body], sort_keys=True))
    return request["step"], request["method"], text


def test_jupyterlab_sends_the_recorded_requests(lab):
    user_flow(lab)
    sent = [r for r in kept(lab.requests()) if r["method"] != "GET"]
    if os.environ.get(RECORD_ENV) == "1":
        versions = {name: version(name) for name in ("jupyterlab", "jupyter_server")}
        record = {"versions": versions, "flow": user_flow.__doc__, "requests": kept(lab.requests())}
        FIXTURE.write_text(json.dumps(record, indent=1) + "\n")
    recorded = json.loads(FIXTURE.read_text())["requests"]
    expected = [r for r in recorded if r["method"] != "GET"]
    assert [shape(r) for r in sent] == [shape(r) for r in expected]
