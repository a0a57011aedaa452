"""Fixtures of the browser tests: a real ``jupyter lab`` per test and a Chromium page on it.

On a failure the page is saved as a screenshot under the artifacts directory
(``$NBELASTIC_BROWSER_ARTIFACTS``, default ``<pytest basetemp>/artifacts``), and the report
shows its path, what the page showed and the end of the server's log.

``lab.requests()`` lists every request the page sent to ``/api/sessions``, ``/api/contents``
and ``/api/kernels/…`` (see test_requests.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser.browser_check import CHROMIUM_ARGS, chromium_path
from browser.lab_server import LabServer

# Helpers, not tests: --doctest-modules would import lab_ui, which needs Playwright, before
# browser_check could skip.
collect_ignore = ["lab_ui.py", "lab_server.py", "browser_check.py"]
ARTIFACTS_ENV = "NBELASTIC_BROWSER_ARTIFACTS"


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


@pytest.fixture(scope="package")
def browser():
    """Chromium, for the tests of this package only: Playwright's sync API keeps an event loop
    running in this thread while it is open, and the other tests' asyncio.run would refuse it."""
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
def lab(browser, lab_server):
    """A Chromium page showing JupyterLab, with the launcher open."""
    from browser.lab_ui import Lab

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    ui = Lab(page, lab_server.lab_url())
    ui.open()
    yield ui
    context.close()
