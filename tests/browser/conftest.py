"""Fixtures of the browser tests: a real ``jupyter lab`` per test and a Chromium page on it.

On a failure the page is saved as a screenshot under the artifacts directory
(``$NBELASTIC_BROWSER_ARTIFACTS``, default ``<pytest basetemp>/artifacts``), and the report
shows its path, what the page showed and the end of the server's log.

``NBELASTIC_RECORD_REQUESTS=FILE`` writes the requests JupyterLab sent to ``/api/sessions`` and
``/api/contents`` during each test into FILE (one entry per test), for the server-extension
tests to replay (fixtures/jupyterlab4_requests.json); run with ``-p no:xdist`` then.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from browser_check import CHROMIUM_ARGS, chromium_path
from lab_server import LabServer

# Helpers, not tests: --doctest-modules would import lab_ui, which needs Playwright, before
# browser_check could skip.
collect_ignore = ["lab_ui.py", "lab_server.py", "browser_check.py"]
RECORD_ENV = "NBELASTIC_RECORD_REQUESTS"
ARTIFACTS_ENV = "NBELASTIC_BROWSER_ARTIFACTS"
RECORDED_APIS = ("/api/sessions", "/api/contents")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    lab = getattr(item, "funcargs", {}).get("lab")
    if report.failed and report.when == "call" and lab is not None:
        default = item.funcargs["tmp_path_factory"].getbasetemp() / "artifacts"
        artifacts = Path(os.environ.get(ARTIFACTS_ENV) or default)
        artifacts.mkdir(parents=True, exist_ok=True)
        screenshot = artifacts / f"{item.name}.png"
        try:
            lab.page.screenshot(path=str(screenshot), full_page=True)
            shown = lab.shown()
        except Exception as error:  # the page itself may be what broke
            shown = f"(the page could not be read: {error})"
        server = item.funcargs["lab_server"]
        report.sections.append(("browser", f"screenshot: {screenshot}\n\n{shown[-4000:]}"))
        report.sections.append(("jupyter lab log", server.log()[-4000:]))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def lab_server(tmp_path, tmp_path_factory):
    """``jupyter lab`` serving ``tmp_path``, with the nbelastic server extension enabled."""
    server = LabServer(tmp_path, tmp_path_factory.mktemp("jupyter-home")).start()
    yield server
    server.stop()


@pytest.fixture
def lab(request, browser, lab_server):
    """A Chromium page showing JupyterLab, with the launcher open."""
    from lab_ui import Lab

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    ui = Lab(page, lab_server.lab_url())
    recorded: dict[object, dict] = {}  # request -> what was sent, in the order sent
    page.on("request", lambda sent: _record(recorded, ui.step, sent))
    page.on("response", lambda answer: _answered(recorded, answer))
    ui.open()
    yield ui
    context.close()
    if os.environ.get(RECORD_ENV):
        _write_recording(Path(os.environ[RECORD_ENV]), request.node.name, list(recorded.values()))


def _record(recorded: dict[object, dict], step: str, sent) -> None:
    url = urlsplit(sent.url)
    if not url.path.startswith(RECORDED_APIS):
        return
    # The query's last item is a cache-busting timestamp with no value: left out.
    query = {k: v for k, v in parse_qsl(url.query, keep_blank_values=True) if not k.isdigit()}
    body = sent.post_data
    recorded[sent] = {
        "step": step,
        "method": sent.method,
        "path": url.path,
        "query": query,
        "body": json.loads(body) if body else None,
        "status": None,
    }


def _answered(recorded: dict[object, dict], answer) -> None:
    if answer.request in recorded:
        recorded[answer.request]["status"] = answer.status


def _write_recording(path: Path, test: str, recorded: list[dict]) -> None:
    everything = json.loads(path.read_text()) if path.exists() else {}
    everything["versions"] = {
        name: version(name) for name in ("jupyterlab", "jupyter_server", "playwright")
    }
    everything.setdefault("tests", {})[test] = recorded
    path.write_text(json.dumps(everything, indent=1, sort_keys=True) + "\n")
