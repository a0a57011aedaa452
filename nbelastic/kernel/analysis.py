"""Which names a cell may read or write, found from its code before it runs.

The cell is analysed after IPython's transforms, so ``%time x = f()`` and ``!echo $name`` are
plain Python calls whose string arguments are analysed in turn. Reads are completed by following
the user-defined functions, classes and instances a cell touches to the globals their code reads,
transitively: ``z = f()`` reads ``x`` when ``f`` does. The result over-approximates (a name in
an untaken branch counts), which only costs a little extra replay, never a wrong restore.
Code that reaches the namespace dynamically (``eval``, ``globals()``, an unknown magic) is
flagged so the monitor checks every variable. The dotted names it calls that a replay may not
give back the same answer for (``time.time``, ``datetime.now``: see nbelastic.kernel.unrepeatable)
are collected too, from the cell and from the code of the functions it reaches.
"""

from __future__ import annotations

import ast
import dis
import functools
import getopt
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from nbelastic.kernel.unrepeatable import SUSPECT_NAMES, Call
from nbelastic.objects import is_user_defined

# Magics whose argument is Python code, and magics known not to touch the namespace.
CODE_MAGICS = frozenset({"time", "timeit", "prun", "capture"})
INERT_MAGICS = frozenset(
    {
        "matplotlib", "pip", "conda", "pwd", "cd", "ls", "load_ext", "reload_ext", "unload_ext",
        "who", "whos", "who_ls", "lsmagic", "config", "precision", "nbelastic", "env",
        "pinfo", "pinfo2", "psearch", "autoreload", "aimport", "writefile", "bash", "sh",
        "html", "HTML", "markdown", "latex", "javascript", "js", "svg", "script", "file",
        "history", "magic", "pdoc", "pdef", "psource", "pfile", "xmode", "colors", "doctest_mode",
    }
)  # fmt: skip
# Options of the code magics, read as IPython reads them, so that what follows is the code.
MAGIC_OPTIONS = {
    "time": ("", ["no-raise-error"]),
    "timeit": ("n:r:tcp:qov:", []),
    "prun": ("D:l:rs:T:q", []),
}
DYNAMIC_BUILTINS = frozenset({"eval", "exec", "globals", "locals", "vars", "__import__"})
# Inside a function only these reach the notebook's namespace (``locals()`` is the function's).
DYNAMIC_IN_FUNCTIONS = frozenset({"eval", "exec", "globals"})
_SHELL_EXPANSION = re.compile(r"\$(\w+)|\{([^{}]+)\}")
_CONTAINER_SCAN_LIMIT = 100


@dataclass
class CellNames:
    """Names a cell's code mentions, by how it uses them."""

    loads: set[str] = field(default_factory=set)
    stores: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    dynamic: bool = False
    calls: set[Call] = field(default_factory=set)  # only those ending in a SUSPECT_NAMES name

    def merge(self, other: CellNames) -> None:
        self.loads |= other.loads
        self.stores |= other.stores
        self.deletes |= other.deletes
        self.dynamic = self.dynamic or other.dynamic
        self.calls |= other.calls


def analyse_cell(source: str, transform: Callable[[str], str] = lambda s: s) -> CellNames:
    """Names used by already-transformed cell ``source``; ``transform`` handles nested magics.

    >>> names = analyse_cell("y = x + 1\\ndel z")
    >>> sorted(names.loads), sorted(names.stores), sorted(names.deletes), names.dynamic
    (['x'], ['y'], ['z'], False)
    >>> analyse_cell("print(eval('x'))").dynamic
    True
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return CellNames()
    visitor = _NameVisitor(transform)
    visitor.visit(tree)
    return visitor.names


class _NameVisitor(ast.NodeVisitor):
    def __init__(self, transform: Callable[[str], str]) -> None:
        self.transform = transform
        self.names = CellNames()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.names.loads.add(node.id)
        elif isinstance(node.ctx, ast.Store):
            self.names.stores.add(node.id)
        else:
            self.names.deletes.add(node.id)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        # ``x += 1`` reads x, though its target is parsed as a store only.
        if isinstance(node.target, ast.Name):
            self.names.loads.add(node.target.id)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.ClassDef) -> None:
        self.names.stores.add(node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.names.stores.add(alias.asname or alias.name.partition(".")[0])

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global) -> None:
        self.names.loads.update(node.names)
        self.names.stores.update(node.names)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in DYNAMIC_BUILTINS:
            self.names.dynamic = True
        dotted = _dotted(node.func)
        if dotted and dotted[-1] in SUSPECT_NAMES:
            self.names.calls.add(Call(dotted, not node.args and not node.keywords))
        method = _ipython_method(node)
        if method is not None:
            self._ipython_call(method, node)
        self.generic_visit(node)

    def _ipython_call(self, method: str, node: ast.Call) -> None:
        args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
        if method == "run_line_magic" and len(args) >= 2:
            self._magic(args[0], args[1], "")
        elif method == "run_cell_magic" and len(args) >= 3:
            self._magic(args[0], args[1], args[2])
        elif method in ("system", "getoutput") and args and isinstance(args[0], str):
            self._shell_command(args[0])
        elif method not in ("system", "getoutput"):
            self.names.dynamic = True

    def _magic(self, name: object, line: object, cell: object) -> None:
        if name in CODE_MAGICS and isinstance(line, str) and isinstance(cell, str):
            code = _code_after_options(name, line) + "\n" + cell if name in MAGIC_OPTIONS else cell
            self.names.merge(analyse_cell(self.transform(code), self.transform))
        elif name not in INERT_MAGICS:
            self.names.dynamic = True

    def _shell_command(self, command: str) -> None:
        # IPython expands $name and {expression} in shell commands from the user namespace.
        for simple, expression in _SHELL_EXPANSION.findall(command):
            if simple:
                self.names.loads.add(simple)
            else:
                self.names.merge(analyse_cell(expression))


def _dotted(node: ast.expr) -> tuple[str, ...]:
    """``("time", "time")`` for ``time.time``; empty for anything but names and attributes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ()
    parts.append(node.id)
    return tuple(reversed(parts))


def _code_after_options(magic: str, line: str) -> str:
    """The code in a code magic's line: ``%timeit -n 3 f(x)`` runs ``f(x)``."""
    short, long = MAGIC_OPTIONS[magic]
    try:
        _, words = getopt.getopt(line.split(), short, long)
    except getopt.GetoptError:  # not an option after all, e.g. ``%time -x``
        return line
    return " ".join(words)


def _ipython_method(node: ast.Call) -> str | None:
    """``m`` for a call shaped ``get_ipython().m(...)``, as IPython's transforms write them."""
    func = node.func
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "get_ipython"
    ):
        return func.attr
    return None


_code_globals_cache: dict[types.CodeType, frozenset[str]] = {}
_code_calls_cache: dict[types.CodeType, frozenset[Call]] = {}
_CALL_OPS = frozenset({"PRECALL", "CALL", "CALL_FUNCTION", "CALL_METHOD"})


def code_globals(code: types.CodeType) -> frozenset[str]:
    """Global names a code object (and the functions nested in it) loads, stores or deletes.

    >>> def f():
    ...     return x * 10 + len([])
    >>> sorted(code_globals(f.__code__))
    ['len', 'x']
    """
    cached = _code_globals_cache.get(code)
    if cached is not None:
        return cached
    names = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"):
            names.add(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= code_globals(const)
    result = frozenset(names)
    _code_globals_cache[code] = result
    return result


def code_calls(code: types.CodeType) -> frozenset[Call]:
    """The dotted global names ending in a SUSPECT_NAMES name that ``code`` (and the functions
    nested in it) loads, and whether each is called without arguments there.

    >>> import time
    >>> def f():
    ...     return time.time() - time.sleep(1)
    >>> sorted(code_calls(f.__code__))
    [Call(dotted=('time', 'time'), no_arguments=True)]
    """
    cached = _code_calls_cache.get(code)
    if cached is not None:
        return cached
    calls: set[Call] = set()
    chain: list[str] = []
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            chain = [instruction.argval]
            continue
        if chain and instruction.opname in ("LOAD_ATTR", "LOAD_METHOD"):
            chain.append(instruction.argval)
            continue
        if chain and chain[-1] in SUSPECT_NAMES:
            no_arguments = instruction.opname in _CALL_OPS and instruction.arg == 0
            calls.add(Call(tuple(chain), no_arguments))
        chain = []
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            calls |= code_calls(const)
    result = frozenset(calls)
    _code_calls_cache[code] = result
    return result


def transitive_reads(names: set[str], namespace: Mapping[str, object]) -> set[str]:
    """``names`` plus every global read by the user code reachable from them, transitively.

    A function that calls ``eval``, ``exec`` or ``globals`` may read any variable: then every
    name in the namespace is returned, as for a cell that does so itself.

    >>> ns = {"x": 1}
    >>> exec("def f(): return x * 10", ns)
    >>> ns["f"].__module__ = "__main__"
    >>> sorted(transitive_reads({"f"}, ns))
    ['f', 'x']
    """
    return reads_and_code(names, namespace)[0]


def reads_and_code(
    names: set[str], namespace: Mapping[str, object]
) -> tuple[set[str], list[types.CodeType]]:
    """``transitive_reads``, and the code objects of the notebook's callables it followed."""
    codes: list[types.CodeType] = []
    result = {n for n in names if n in namespace}
    todo = list(result)
    seen_code: set[int] = set()
    while todo:
        value = namespace[todo.pop()]
        for code in _user_code_of(value):
            if id(code) in seen_code:
                continue
            seen_code.add(id(code))
            codes.append(code)
            if code_globals(code) & DYNAMIC_IN_FUNCTIONS:
                return set(namespace), codes
            for name in code_globals(code):
                if name in namespace and name not in result:
                    result.add(name)
                    todo.append(name)
    return result, codes


def _user_code_of(value: object) -> list[types.CodeType]:
    """Code objects of the notebook-defined callables a value can run when used."""
    codes: list[types.CodeType] = []
    pending = [value]
    seen: set[int] = set()
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.FunctionType):
            if is_user_defined(obj):
                codes.append(obj.__code__)
                pending.extend(_closure_values(obj))
        elif isinstance(obj, types.MethodType):
            pending.extend([obj.__func__, obj.__self__])
        elif isinstance(obj, type):
            if is_user_defined(obj):
                pending.extend(_class_members(obj))
        elif isinstance(obj, dict | list | tuple):
            items = obj.values() if isinstance(obj, dict) else obj
            for index, item in enumerate(items):
                if index >= _CONTAINER_SCAN_LIMIT:
                    break
                if callable(item) or is_user_defined(type(item)):
                    pending.append(item)
        elif is_user_defined(type(obj)):
            pending.append(type(obj))
        elif isinstance(obj, functools.partial):  # not hasattr: a hostile __getattr__ may raise
            pending.append(obj.func)
    return codes


def _closure_values(fn: types.FunctionType) -> list[object]:
    values = []
    for cell in fn.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:
            continue
    return values


def _class_members(cls: type) -> list[object]:
    members: list[object] = []
    for klass in cls.__mro__:
        if not is_user_defined(klass):
            continue
        for value in vars(klass).values():
            if isinstance(value, property):
                members.extend(f for f in (value.fget, value.fset, value.fdel) if f)
            elif isinstance(value, staticmethod | classmethod):
                members.append(value.__func__)
            elif isinstance(value, types.FunctionType):
                members.append(value)
    return members
