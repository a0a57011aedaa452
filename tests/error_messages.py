"""Every message nbelastic can show a user as an error or a warning, read from its source.

An AST scan of ``nbelastic/`` finds each place a message is made:

* a call constructing an NbelasticError subclass (raised, returned by a helper or passed to
  the CLI's ``_fail``) or a click exception;
* ``click.echo(..., err=True)`` in the CLI;
* ``....warnings.append(...)``: the warnings a restore prints as ``nbelastic: ...``;
* ``raise ValueError/ArgumentTypeError`` inside the option parsers whose messages click shows;
* any other string that starts with ``nbelastic: ``: lines the kernel, the magic and the
  server print or log themselves (docstrings aside).

Each message becomes a *template*: its literal text with ``{}`` where an f-string, a ``%`` or a
concatenation puts a value; both branches of a conditional expression are templates of their
own. A message the scan cannot read (a variable, a helper's result) is a *pass-through*: it
must be listed in FORWARDED with the reason its text is covered elsewhere, so that no message
is silently missed.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path

import nbelastic
from nbelastic.errors import NbelasticError

PACKAGE = Path(nbelastic.__file__).resolve().parent
CLICK_ERRORS = {"BadParameter", "UsageError", "ClickException", "FileError", "BadArgumentUsage"}
# Functions whose ValueErrors the CLI shows as they are (through click.BadParameter).
OPTION_PARSERS = {("headless.py", "parse_every"), ("kernel/__init__.py", "parse_bandwidth")}
PARSER_ERRORS = {"ValueError", "ArgumentTypeError"}
PREFIX = "nbelastic: "
# Messages made from a value the scan cannot read: where, and why their text is covered.
FORWARDED = {
    ("cli.py", "_every"): "the ValueError of headless.parse_every, scanned there",
    ("cli.py", "_bandwidth"): "the ArgumentTypeError of kernel.parse_bandwidth, scanned there",
    ("driver.py", "call"): "an NbelasticError raised in the kernel, scanned where it is made",
    ("restore_plan.py", "load"): "rebuild.codec_disagreement's BlobCorruptError, scanned there",
}


@dataclass(frozen=True)
class Message:
    """One message template and where it is made."""

    where: str  # module path relative to nbelastic/, and line
    function: str
    kind: str  # the error class, "stderr" or "warning"
    template: str | None  # None: a pass-through

    def pattern(self) -> re.Pattern:
        """Matches the message in the docs, where each ``{}`` may be written as anything."""
        parts = [re.escape(part) for part in self.template.split("{}")]
        return re.compile(".*?".join(parts))


def error_classes() -> set[str]:
    """The names of NbelasticError and all its subclasses, once every module is imported."""
    for module in pkgutil.walk_packages(nbelastic.__path__, "nbelastic."):
        if not module.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(module.name)
    found, pending = set(), [NbelasticError]
    while pending:
        cls = pending.pop()
        found.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return found


def messages() -> list[Message]:
    """Every message template (and pass-through) in nbelastic/, in file order."""
    errors = error_classes() | CLICK_ERRORS
    found: list[Message] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        helpers = _returned_values(tree)
        for function, call in _calls(tree):
            kind = _kind(call, module, function, errors)
            if kind is None:
                continue
            argument = _message_argument(call)
            where = f"{module}:{call.lineno}"
            templates = _templates(argument, helpers) if argument is not None else [None]
            if argument is None and kind in CLICK_ERRORS | PARSER_ERRORS:
                continue  # no message of its own: click words it
            for template in templates:
                found.append(Message(where, f"{module}:{function}", kind, template))
        for function, node in _prefixed_strings(tree):
            for template in _templates(node, helpers):
                template = re.sub(r"%[sdr]", "{}", template)
                found.append(
                    Message(f"{module}:{node.lineno}", f"{module}:{function}", "printed", template)
                )
    return found


def _prefixed_strings(tree: ast.AST):
    """(function, node) for each string or f-string starting with ``nbelastic: ``."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    for function, node in _nodes(tree):
        if id(node) in docstrings:
            continue
        first = node.values[0] if isinstance(node, ast.JoinedStr) and node.values else node
        if (
            isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and first.value.startswith(PREFIX)
        ):
            yield function, node


def _nodes(tree: ast.AST):
    """(enclosing function name, node) for every string and f-string outside f-strings."""

    def visit(node: ast.AST, function: str):
        for child in ast.iter_child_nodes(node):
            name = (
                child.name
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                else function
            )
            if isinstance(child, ast.JoinedStr) or (
                isinstance(child, ast.Constant) and isinstance(child.value, str)
            ):
                yield function, child
            if not isinstance(child, ast.JoinedStr):
                yield from visit(child, name)

    yield from visit(tree, "<module>")


def _calls(tree: ast.AST):
    """(enclosing function name, call) for every call in ``tree``."""

    def visit(node: ast.AST, function: str):
        for child in ast.iter_child_nodes(node):
            name = function
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = child.name
            if isinstance(child, ast.Call):
                yield function, child
            yield from visit(child, name)

    yield from visit(tree, "<module>")


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _kind(call: ast.Call, module: str, function: str, errors: set[str]) -> str | None:
    callee = _callee(call)
    if callee in errors:
        return callee
    if (module, function) in OPTION_PARSERS and callee in PARSER_ERRORS:
        return callee
    to_stderr = any(k.arg == "err" and _is_true(k.value) for k in call.keywords)
    if module == "cli.py" and callee == "echo" and to_stderr:
        return "stderr"
    if callee == "append" and isinstance(call.func, ast.Attribute):
        target = call.func.value
        if isinstance(target, ast.Attribute) and target.attr == "warnings":
            return "warning"
    return None


def _is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _message_argument(call: ast.Call) -> ast.AST | None:
    if call.args:
        return call.args[0]
    for keyword in call.keywords:
        if keyword.arg in ("message", "hint"):
            return keyword.value
    return None


def _returned_values(tree: ast.AST) -> dict[str, list[ast.AST]]:
    """What each function of a module returns, by name: a message may come from a helper."""
    found: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            returns = [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value]
            found.setdefault(node.name, []).extend(returns)
    return found


def _templates(node: ast.AST, helpers: dict[str, list[ast.AST]], depth: int = 0) -> list:
    """The literal templates ``node`` can evaluate to; [None] where it is not a literal.

    A call to a function of the same module stands for what that function returns.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        combined = [""]
        for value in node.values:
            pieces = _templates(value, helpers) if isinstance(value, ast.Constant) else ["{}"]
            combined = [c + p for c in combined for p in pieces]
        return combined
    if isinstance(node, ast.Call) and _callee(node) in helpers and depth < 3:
        returned = helpers[_callee(node)]
        return [t for value in returned for t in _templates(value, helpers, depth + 1)] or [None]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _templates(node.left, helpers), _templates(node.right, helpers)
        if None in left and None in right:
            return [None]
        left = ["{}" if t is None else t for t in left]
        right = ["{}" if t is None else t for t in right]
        return [a + b for a in left for b in right]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return [re.sub(r"%[sdr]", "{}", t) if t else t for t in _templates(node.left, helpers)]
    if isinstance(node, ast.IfExp):
        return _templates(node.body, helpers) + _templates(node.orelse, helpers)
    return [None]


def words(template: str) -> str:
    """The literal text of a template, to tell a real message from a bare placeholder."""
    return re.sub(r"[^A-Za-z]", "", template.replace("{}", ""))
