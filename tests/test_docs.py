"""The docs cannot lie: every code block runs, every error message is explained, the CLI
reference is the CLI's own help, and the site builds.

See tests/doc_blocks.py for how each kind of code block is run.
"""

from __future__ import annotations

import doctest
import importlib.metadata
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cli_reference
import cut_figure
import doc_blocks
import error_messages
import pytest
from doc_blocks import Block

from nbelastic.driver import Kernel

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
CLI_REFERENCE = DOCS / "cli.md"
MIN_CUT_FIGURE = DOCS / "images" / "min-cut.svg"
# How click words a bad option value: quoted in docs/troubleshooting.md, made by click itself.
CLICK_FORMAT = "Error: Invalid value for '--OPTION': MESSAGE"
# Pages written by a generator, checked by its own test: their blocks are not run here.
GENERATED = {
    "cli.md": "test_cli_reference_is_up_to_date",
    "support-matrix.md": "tests/test_types.py",
    "benchmarks.md": "python -m benchmarks",
}
# Every block that is not run, by page and first line, with why it cannot be.
NOT_RUN = {
    ("README.md", 'pip install -e ".[test]" && python -m pytest -n 2'): "the test suite itself",
    ("getting-started.md", 'pip install ".[demo]"'): "installs packages",
    ("jupyterlab.md", "jupyter lab"): "starts a server and a browser",
    ("jupyterlab.md", "c.NbelasticServer.autorestore = False"): "server configuration",
    ("jupyterlab.md", "nbelastic: restored 5 variables of checkpoint 1-... (saved ...) in 0.4 s"): (
        "printed by a kernel JupyterLab starts"
    ),
    ("moving.md", "nbelastic run analysis.ipynb --store s3://my-bucket/nbelastic"): "S3",
    ("moving.md", "%nbelastic save --store s3://my-bucket/nbelastic"): "S3",
}
RUN_LANGUAGES = {"console", "bash", "python", "output", "pycon"}


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def run_pages() -> list[Path]:
    return [page for page in pages() if page.name not in GENERATED]


def all_blocks() -> list[Block]:
    return [block for page in run_pages() for block in doc_blocks.blocks(page)]


# --- code blocks ---------------------------------------------------------------------------


def test_blocks_not_run_are_exactly_the_known_ones_each_with_a_reason():
    found = {}
    for block in all_blocks():
        if block.not_run is not None or block.language not in RUN_LANGUAGES:
            assert block.not_run, f"{block.where}: mark it <!-- not-run: reason --> or run it"
            found[(block.path.name, block.first_line)] = block.not_run
    assert set(found) == set(NOT_RUN)


def test_output_blocks_follow_a_python_block():
    for page in run_pages():
        previous = None
        for block in doc_blocks.blocks(page):
            if block.language == "output":
                assert previous is not None and previous.language == "python", block.where
            previous = block


def test_the_readme_quick_start_installs_extras_that_exist():
    extras = importlib.metadata.metadata("nbelastic").get_all("Provides-Extra")
    named = re.findall(r'pip install (?:-e )?"\.\[(\w+)\]"', README.read_text())
    assert named and all(extra in extras for extra in named)


def test_the_readme_benchmark_figures_are_those_of_docs_benchmarks():
    """The headline quotes the generated report; rerunning the benchmarks means updating it."""
    section = README.read_text().split("## Benchmarks", 1)[1].split("\n## ", 1)[0]
    report = (DOCS / "benchmarks.md").read_text()
    figures = re.findall(r"\d+\.\d+", section)
    assert figures
    stale = [figure for figure in figures if not re.search(rf"\b{re.escape(figure)}\b", report)]
    assert not stale, (
        f"README.md quotes benchmark figures docs/benchmarks.md no longer has: {stale}"
    )


def test_ci_runs_the_readme_test_command_only_quieter():
    command = next(
        block.text.strip()
        for block in doc_blocks.blocks(README)
        if block.not_run is not None and "pytest" in block.text
    )
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].replace("pip install --quiet ", "pip install ") == command


def test_ci_runs_the_readme_quick_start_with_the_pip_a_new_venv_has():
    quick_start = next(
        block.text.strip()
        for block in doc_blocks.blocks(README)
        if block.language == "bash" and "fixtures/demo.ipynb" in block.text
    )
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"{quick_start.replace('pip install ', 'pip install --quiet ')} || exit 1\n" in ci
    assert "upgrade pip" not in ci and "install --upgrade" not in ci


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """fixtures/demo.ipynb run and saved as demo.ipynb, as Getting started does."""
    directory = tmp_path_factory.mktemp("demo-run")
    result = subprocess.run(
        [_nbelastic(), "run", str(ROOT / "fixtures" / "demo.ipynb"), "-o", "demo.ipynb", "-q"],
        cwd=directory,
        env=_environment(directory),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return directory


def _nbelastic() -> str:
    return str(Path(sys.executable).with_name("nbelastic"))


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="Doc Test",
        GIT_AUTHOR_EMAIL="doc@example.com",
        GIT_COMMITTER_NAME="Doc Test",
        GIT_COMMITTER_EMAIL="doc@example.com",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        JUPYTER_PLATFORM_DIRS="1",
        COLUMNS="100",
    )
    return env


class PageRun:
    """A page's directory, its current kernel, and how each block runs there."""

    def __init__(self, directory: Path, shell_state: Path, demo: Path | None) -> None:
        self.directory = directory
        self.shell_state = shell_state  # what a block exported, for the blocks after it
        shell_state.write_text("")
        shutil.copytree(ROOT / "fixtures", directory / "fixtures")
        if demo is not None:
            shutil.copy(demo / "demo.ipynb", directory)
            shutil.copytree(demo / "demo.nbelastic", directory / "demo.nbelastic")
        self.env = _environment(directory)
        self.session: str | None = None
        self.kernel: Kernel | None = None
        self.last_cell: str | None = None

    def close(self) -> None:
        if self.kernel is not None:
            self.kernel.__exit__(None, None, None)
            self.kernel = None

    def run(self, block: Block, shown_output: bool) -> None:
        """Run ``block``; ``shown_output`` when an output block follows it."""
        for name, value in block.directives:
            if name == "kernel-session":
                self.session = value
            elif name == "new-kernel":
                self.close()
        if block.language == "python":
            self._run_python(block, shown_output)
        else:
            getattr(self, f"_run_{block.language}")(block)

    def _run_console(self, block: Block) -> None:
        commands = doc_blocks.console_commands(block)
        result = self._bash(doc_blocks.console_script(commands))
        outputs = doc_blocks.split_outputs(result.stdout)
        assert len(outputs) == len(commands), f"{block.where}: the shell stopped\n{result.stdout}"
        for index, (command, (output, status)) in enumerate(zip(commands, outputs, strict=True)):
            following = commands[index + 1].text if index + 1 < len(commands) else ""
            assert status == 0 or following == "echo $?", (
                f"{block.where}: `{command.text}` exited {status}:\n{output}"
            )
            assert doc_blocks.matches(command.expected, output), (
                f"{block.where}: `{command.text}` printed\n{output}\n\nthe docs show\n"
                f"{command.expected}"
            )

    def _run_bash(self, block: Block) -> None:
        result = self._bash("set -e\n" + doc_blocks.without_pip_install(block.text))
        assert result.returncode == 0, f"{block.where}: exited {result.returncode}\n{result.stdout}"

    def _bash(self, script: str) -> subprocess.CompletedProcess:
        state = shlex.quote(str(self.shell_state))
        script = f". {state}\n{script}\n__status=$?; export -p > {state}; exit $__status\n"
        return subprocess.run(
            ["bash", "-c", script],
            cwd=self.directory,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )

    def _run_python(self, block: Block, shown_output: bool) -> None:
        if self.kernel is None:
            session = str(self.directory / self.session) if self.session else None
            self.kernel = Kernel(cwd=self.directory, session=session).__enter__()
        result = self.kernel.execute(block.text)
        assert result.error is None, f"{block.where}: {result.error}\n{result.stderr}"
        self.last_cell = doc_blocks.without_progress(result.stdout + result.stderr)
        # The magic reports a failure on stderr without raising: what the docs do not show
        # must not have failed.
        complaints = doc_blocks.without_progress(result.stderr).strip()
        assert shown_output or not complaints, f"{block.where}: the cell printed\n{complaints}"

    def _run_pycon(self, block: Block) -> None:
        test = doctest.DocTestParser().get_doctest(
            block.text, {}, block.where, str(block.path), block.line
        )
        report = io.StringIO()
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test, out=report.write)
        assert runner.failures == 0, report.getvalue()

    def _run_output(self, block: Block) -> None:
        assert doc_blocks.matches(block.text.rstrip("\n"), self.last_cell.rstrip("\n")), (
            f"{block.where}: the cell printed\n{self.last_cell}\nthe docs show\n{block.text}"
        )


@pytest.mark.kernel
@pytest.mark.parametrize("page", run_pages(), ids=lambda page: page.name)
def test_every_code_block_of_the_page_runs_as_shown(page, tmp_path, request):
    runnable = [b for b in doc_blocks.blocks(page) if b.not_run is None]
    if not runnable:
        pytest.skip("no code block to run")
    setups = {
        value for block in runnable for name, value in block.directives if name == "doc-setup"
    }
    assert setups <= {"demo"}, setups
    demo = request.getfixturevalue("demo_run") if setups else None
    directory = tmp_path / "work"
    directory.mkdir()
    run = PageRun(directory, tmp_path / "exported.sh", demo)
    try:
        for block, after in zip(runnable, [*runnable[1:], None], strict=True):
            run.run(block, shown_output=after is not None and after.language == "output")
    finally:
        run.close()


def _page_run(tmp_path: Path, markdown: str) -> tuple[PageRun, list[Block]]:
    tmp_path.mkdir(exist_ok=True)
    page = tmp_path / "page.md"
    page.write_text(markdown)
    directory = tmp_path / "work"
    directory.mkdir()
    return PageRun(directory, tmp_path / "exported.sh", None), doc_blocks.blocks(page)


def test_a_console_block_whose_output_differs_fails(tmp_path):
    run, [block] = _page_run(tmp_path, "```console\n$ echo hello\nhallo\n```\n")
    with pytest.raises(AssertionError, match="printed"):
        run.run(block, shown_output=False)


def test_a_failing_command_fails_unless_its_status_is_shown(tmp_path):
    shown = "```console\n$ false\n$ echo $?\n1\n```\n"
    run, [block] = _page_run(tmp_path, shown)
    run.run(block, shown_output=False)
    run, [block] = _page_run(tmp_path / "hidden", "```console\n$ false\n```\n")
    with pytest.raises(AssertionError, match="exited 1"):
        run.run(block, shown_output=False)


def test_ellipsis_stands_for_any_text_but_the_rest_must_match():
    assert doc_blocks.matches("ran in ... s\n...\ndone", "ran in 1.5 s\nmore\nlines\ndone")
    assert not doc_blocks.matches("ran in ... s", "ran in 1.5 s\nand more")


# --- troubleshooting -----------------------------------------------------------------------


def test_every_error_message_the_cli_can_print_is_in_troubleshooting():
    text = TROUBLESHOOTING.read_text()
    lines = text.splitlines()
    missing = []
    for message in error_messages.messages():
        if message.template is None:
            continue
        if not any(message.pattern().search(line) for line in lines):
            missing.append(f"{message.where} ({message.kind}): {message.template}")
    assert not missing, "explain these in docs/troubleshooting.md:\n" + "\n".join(missing)


def test_every_message_in_troubleshooting_is_one_nbelastic_can_print():
    templates = [m for m in error_messages.messages() if m.template is not None]
    quoted = [
        line[2:] for line in TROUBLESHOOTING.read_text().splitlines() if line.startswith("> ")
    ]
    stale = [
        line
        for line in quoted
        if line != CLICK_FORMAT and not any(m.pattern().search(line) for m in templates)
    ]
    assert not stale, "no longer printed by nbelastic:\n" + "\n".join(stale)


def test_messages_the_scan_cannot_read_are_the_known_forwarded_ones():
    unreadable = {
        tuple(message.function.split(":"))
        for message in error_messages.messages()
        if message.template is None
    }
    assert unreadable == set(error_messages.FORWARDED)


def test_the_scan_finds_messages_in_fstrings_helpers_and_conditionals():
    templates = {m.template for m in error_messages.messages()}
    assert "no notebook at {}: check the path" in templates  # an f-string
    assert any(t and t.startswith("blob {} is missing from {}") for t in templates)  # a helper
    assert any(t and t.startswith("nothing is stored at {}") for t in templates)  # an if-else
    assert any(t and t.startswith("the sidecar store {} is missing") for t in templates)


# --- generated pages and the site ------------------------------------------------------------


def test_cli_reference_is_up_to_date():
    if os.environ.get("NBELASTIC_WRITE_DOCS"):
        CLI_REFERENCE.write_text(cli_reference.render())
    assert CLI_REFERENCE.read_text() == cli_reference.render(), "regenerate docs/cli.md"


def test_min_cut_figure_is_what_the_planner_decides():
    if os.environ.get("NBELASTIC_WRITE_DOCS"):
        MIN_CUT_FIGURE.write_text(cut_figure.render())
    assert MIN_CUT_FIGURE.read_text() == cut_figure.render(), "regenerate docs/images/min-cut.svg"


def test_every_doc_page_is_in_the_site_navigation_and_linked_from_the_readme():
    config = (ROOT / "mkdocs.yml").read_text()
    readme = README.read_text()
    for page in DOCS.glob("*.md"):
        assert f" {page.name}" in config, f"{page.name} is not in mkdocs.yml's nav"
        if page.name != "index.md":
            assert f"(docs/{page.name})" in readme, f"README.md does not link {page.name}"


_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def test_every_relative_link_points_at_a_file_that_exists():
    broken = []
    for page in pages():
        for match in _LINK.finditer(page.read_text()):
            target = match["target"].split("#")[0]
            if target and "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.name}: {match['target']}")
    assert not broken


def test_the_site_builds_without_a_warning(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
