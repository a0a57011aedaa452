"""``nbelastic git install|uninstall|status``: readable git diffs of notebook state.

Like ``nbstripout --install``, this writes two things in the current repository:

* a block in the top-level ``.gitattributes``, between marker comments so it can be found and
  removed again, giving notebooks, sidecar blobs and checkpoint records the ``nbelastic`` diff
  driver (and, with ``--strip``, notebooks the ``nbelastic-strip`` clean filter, so commits
  never carry the state);
* the drivers in the repository's own git config (``.git/config``): ``diff.nbelastic.textconv``
  runs ``nbelastic git textconv`` (see nbelastic.textconv) with this very Python, so it works
  whatever the shell's PATH is when git runs it;
* a block in ``.git/info/exclude`` so that ``git add .`` leaves out the empty lock files saves
  leave next to notebooks (see nbelastic.lock).

``.gitattributes`` is committed and shared; the config is per clone, so each collaborator runs
``nbelastic git install`` once (without it git simply shows the raw files).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nbelastic.errors import NbelasticError

BEGIN = "# >>> nbelastic: readable diffs of saved kernel state (nbelastic git install) >>>"
END = "# <<< nbelastic <<<"
DIFF_DRIVER = "nbelastic"
STRIP_FILTER = "nbelastic-strip"
_PATTERNS = ("*.ipynb", "**/*.nbelastic/blobs/**", "**/*.nbelastic/checkpoints/*.json")
_EXCLUDED = (".*.nbelastic-lock",)


@dataclass(frozen=True)
class GitSetup:
    """What ``status`` found in a repository."""

    root: Path
    attributes: bool  # our block is in .gitattributes
    diff_driver: str | None  # the configured textconv command
    strip_filter: str | None  # the configured clean command, if --strip was installed

    @property
    def installed(self) -> bool:
        return self.attributes and self.diff_driver is not None

    def summary(self) -> str:
        if not self.attributes and self.diff_driver is None:
            return f"nbelastic is not installed in {self.root}: run `nbelastic git install`"
        block = "nbelastic block present" if self.attributes else "no nbelastic block"
        lines = [
            f"{self.root}/.gitattributes: {block}",
            f"diff.{DIFF_DRIVER}.textconv: {self.diff_driver or 'not set'}",
        ]
        if self.strip_filter:
            lines.append(f"filter.{STRIP_FILTER}.clean: {self.strip_filter}")
        if not self.installed:
            lines.append("incomplete: run `nbelastic git install` again")
        return "\n".join(lines)


def repository_root(start: Path | None = None) -> Path:
    """The top directory of the git work tree containing ``start`` (default: here)."""
    result = _git(["rev-parse", "--show-toplevel"], cwd=start or Path.cwd(), check=False)
    if result.returncode != 0:
        raise NbelasticError(
            f"{start or Path.cwd()} is not inside a git repository: cd into one (or git init)"
        )
    return Path(result.stdout.strip())


def install(root: Path, *, strip: bool = False) -> None:
    """Write the attributes block and the drivers' config; running it again changes nothing."""
    command = f"{shlex.quote(sys.executable)} -m nbelastic"
    _write_block(root / ".gitattributes", _block(strip))
    _write_block(_exclude_file(root), "\n".join([BEGIN, *_EXCLUDED, END]) + "\n")
    _set(root, f"diff.{DIFF_DRIVER}.textconv", f"{command} git textconv")
    if strip:
        _set(root, f"filter.{STRIP_FILTER}.clean", f"{command} strip --stdin %f")
        _set(root, f"filter.{STRIP_FILTER}.smudge", "cat")
    else:
        _remove_section(root, f"filter.{STRIP_FILTER}")


def uninstall(root: Path) -> None:
    """Remove the attributes block (and the file, if nothing else is in it), the exclude
    block and the config."""
    _write_block(root / ".gitattributes", None)
    _write_block(_exclude_file(root), None)
    _remove_section(root, f"diff.{DIFF_DRIVER}")
    _remove_section(root, f"filter.{STRIP_FILTER}")


def status(root: Path) -> GitSetup:
    """Whether the attributes block and the drivers are in place."""
    return GitSetup(
        root,
        _read_block(root) is not None,
        _config(root, f"diff.{DIFF_DRIVER}.textconv"),
        _config(root, f"filter.{STRIP_FILTER}.clean"),
    )


def _block(strip: bool) -> str:
    lines = [BEGIN]
    for pattern in _PATTERNS:
        extra = f" filter={STRIP_FILTER}" if strip and pattern == "*.ipynb" else ""
        lines.append(f"{pattern} diff={DIFF_DRIVER}{extra}")
    lines.append(END)
    return "\n".join(lines) + "\n"


def _split(text: str) -> tuple[str, str | None, str]:
    """``text`` around our block: (before, block or None, after)."""
    start = text.find(BEGIN)
    end = text.find(END, start)
    if start < 0 or end < 0:
        return text, None, ""
    stop = end + len(END)
    if text[stop : stop + 1] == "\n":
        stop += 1
    return text[:start], text[start:stop], text[stop:]


def _read_block(root: Path) -> str | None:
    path = root / ".gitattributes"
    return _split(path.read_text(encoding="utf-8"))[1] if path.is_file() else None


def _exclude_file(root: Path) -> Path:
    """The clone's own ignore list (``.git/info/exclude``, wherever this work tree keeps it)."""
    return root / _git(["rev-parse", "--git-path", "info/exclude"], root).stdout.strip()


def _write_block(path: Path, block: str | None) -> None:
    """Put ``block`` between our markers in ``path`` (None removes it; an emptied file goes)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    before, _, after = _split(text)
    if block is not None and before and not before.endswith("\n"):
        before += "\n"
    new = before + (block or "") + after
    try:
        if new.strip():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new, encoding="utf-8")
        elif path.is_file():
            path.unlink()
    except OSError as error:
        raise NbelasticError(
            f"cannot write {path} ({error.strerror or error}): fix its permissions and try again"
        ) from None


def _config(root: Path, key: str) -> str | None:
    result = _git(["config", "--local", "--get", key], root, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _set(root: Path, key: str, value: str) -> None:
    _git(["config", "--local", key, value], root)


def _remove_section(root: Path, section: str) -> None:
    _git(["config", "--local", "--remove-section", section], root, check=False)


def _git(arguments: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise NbelasticError("git is not installed or not on PATH: install git first") from None
    if check and result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise NbelasticError(f"git {arguments[0]} failed in {cwd}: {detail}")
    return result
