"""Browser tests: a real JupyterLab driven by Chromium (a package, so that its conftest is not
mistaken for tests/conftest.py)."""
