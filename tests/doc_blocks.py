"""The fenced code blocks of the Markdown docs, and how a test runs each kind.

A block's info string says what it is:

* ``console``: a shell session. ``$ `` starts a command (a line ending in ``\\`` continues
  it), the lines after it are its expected output, where ``...`` stands for any text. The
  commands of a block run in one bash process, in order; each must exit 0 unless the next
  command is ``echo $?``, which then shows its status. Output is stdout and stderr as a terminal
  shows them: progress lines, which a terminal overwrites, are left out.
* ``bash``: commands copied as they are; they must exit 0. A leading ``pip install ... &&``
  is not run (the tests run where nbelastic is installed; test_docs checks the extras it names).
* ``python``: one notebook cell, run in the page's real kernel; it must not raise. A block
  right after it with the info string ``output`` is what the cell prints (``...`` as above;
  progress lines, shown only when an operation takes over a second, are left out).
* ``pycon``: a doctest (``>>>`` prompts, expected output after them, ``...`` as in doctest's
  ELLIPSIS), run in the test process: for the parts of nbelastic that need no kernel.
* anything else, or a block preceded by ``<!-- not-run: reason -->``: not run, and listed in
  test_docs.NOT_RUN with its reason.

Comments steer the page's run without showing in the rendered docs: ``<!-- doc-setup: demo -->``
starts the page's directory with ``demo.ipynb`` already run and saved (as Getting started
does); ``<!-- kernel-session: NB -->`` makes the next kernels belong to the notebook ``NB``
(what Jupyter tells a kernel); ``<!-- new-kernel -->`` starts a new kernel for the next cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>.*?)\s*-->$")
_DIRECTIVE = re.compile(
    r"^<!--\s*(?P<name>doc-setup|kernel-session|new-kernel)\s*:?\s*(?P<value>.*?)\s*-->$"
)
_PROGRESS = re.compile(r"^(nbelastic (save|restore): \d+/\d+ |cell \d+/\d+ |saving the state)")
_STATUS_MARKER = "NBELASTIC-DOC-STATUS"


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # of the opening fence, counted from 1
    language: str
    text: str
    not_run: str | None  # the reason given in a <!-- not-run: ... --> comment before it
    directives: tuple[tuple[str, str], ...]  # the steering comments since the previous block

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0] if self.text else ""


def blocks(path: Path) -> list[Block]:
    """Every fenced code block of the Markdown file ``path``, in order."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    directives: list[tuple[str, str]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = _DIRECTIVE.match(line.strip())
        if directive:
            directives.append((directive["name"], directive["value"]))
        opening = _FENCE.match(line)
        if not opening:
            index += 1
            continue
        fence = opening["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end])
            end += 1
        assert end < len(lines), f"{path.name}:{index + 1}: the code block is never closed"
        found.append(
            Block(
                path=path,
                line=index + 1,
                language=opening["info"].strip().split(" ")[0],
                text="\n".join(body) + ("\n" if body else ""),
                not_run=_not_run_reason(lines, index),
                directives=tuple(directives),
            )
        )
        directives = []
        index = end + 1
    return found


def _not_run_reason(lines: list[str], fence_index: int) -> str | None:
    before = fence_index - 1
    while before >= 0 and not lines[before].strip():
        before -= 1
    match = _NOT_RUN.match(lines[before].strip()) if before >= 0 else None
    return match["reason"] if match else None


@dataclass(frozen=True)
class Command:
    """One ``$`` command of a console block and the output the docs show for it."""

    text: str
    expected: str


def console_commands(block: Block) -> list[Command]:
    """The commands of a ``console`` block with their expected outputs."""
    commands: list[Command] = []
    current: list[str] | None = None
    output: list[str] = []
    continued = False
    for line in block.text.splitlines():
        if continued:
            current.append(line)
            continued = line.endswith("\\")
        elif line.startswith("$ "):
            if current is not None:
                commands.append(Command("\n".join(current), _joined(output)))
            current, output = [line[2:]], []
            continued = line.endswith("\\")
        else:
            assert current is not None, f"{block.where}: output before the first `$ ` command"
            output.append(line)
    if current is not None:
        commands.append(Command("\n".join(current), _joined(output)))
    return commands


def _joined(lines: list[str]) -> str:
    return "\n".join(lines).rstrip("\n")


def console_script(commands: list[Command]) -> str:
    """A bash script running ``commands`` in one shell, printing a marker with the status after
    each, so that their outputs can be told apart; ``echo $?`` still sees the status before."""
    parts = []
    for command in commands:
        parts.append(command.text)
        parts.append(f'__status=$?; echo "{_STATUS_MARKER} $__status"; (exit $__status)')
    return "\n".join(parts) + "\n"


def split_outputs(output: str) -> list[tuple[str, int]]:
    """Each command's output (progress lines dropped) and exit status, from a console_script run."""
    results, current = [], []
    for line in output.splitlines():
        if line.startswith(_STATUS_MARKER + " "):
            results.append(("\n".join(current).rstrip("\n"), int(line.split()[1])))
            current = []
        elif not _PROGRESS.match(line):
            current.append(line.rstrip())
    return results


def without_progress(text: str) -> str:
    """``text`` without progress lines: they show only when an operation takes over a second,
    and a terminal overwrites them."""
    return "\n".join(line for line in text.splitlines() if not _PROGRESS.match(line))


def matches(expected: str, actual: str) -> bool:
    """True if ``actual`` is ``expected`` where each ``...`` stands for any text (also none, and
    across lines); trailing spaces are ignored on both sides."""
    expected = "\n".join(line.rstrip() for line in expected.splitlines())
    actual = "\n".join(line.rstrip() for line in actual.splitlines())
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual, flags=re.DOTALL) is not None


def without_pip_install(script: str) -> str:
    """``script`` without a leading ``pip install ... &&`` on each line."""
    return "\n".join(
        re.sub(r"^\s*pip install [^&]*&&\s*", "", line) for line in script.splitlines()
    )
