"""Whether this machine can run the browser tests, and what to do when it cannot.

Without Chromium, Playwright or JupyterLab the browser tests are skipped with the reason; with
``NBELASTIC_REQUIRE_BROWSER=1`` (CI sets it) they error instead, so a CI run cannot pass
without having driven a browser.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

REQUIRE_ENV = "NBELASTIC_REQUIRE_BROWSER"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's chromium (Playwright's own browser download is not used)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for module, package in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed: pip install -e '.[browser]'"
    if chromium_path() is None:
        return "no chromium on PATH: apt-get install chromium"
    return None


def require_browser() -> None:
    """Skip the calling test module when the browser tests cannot run (error if required)."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(f"browser tests: {reason}", allow_module_level=True)
