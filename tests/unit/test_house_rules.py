"""The house rules of ``src/metrosight`` that a reader can check on the source alone (issue 14):

- no module over :data:`MAX_MODULE_LINES` lines;
- no function over :data:`MAX_FUNCTION_LINES` lines of code (from its ``def`` to its last line, without its
  docstring: a function is not split for being well documented);
- no module-level mutable state: nothing a module holds may change while the program runs. Flagged are
  (1) a module-level name bound to a mutable container (a list, dict or set display or comprehension, or
  ``list()``, ``dict()``, ``set()``, ``bytearray()``, ``defaultdict``, ``deque``, ``OrderedDict``, ``Counter``, weak
  containers), unless it is an UPPER_CASE constant annotated ``Final`` (``__all__`` aside); (2) a ``global``
  statement; (3) a function that changes a module-level name's contents (item assignment or deletion, or ``append``,
  ``add``, ``update``, ``setdefault``, ``pop``, ``clear``, … on it); (4) a module-level instance of a class defined in
  the same module, unless the class is immutable (a frozen dataclass, a NamedTuple or an Enum).
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "metrosight"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

_MUTABLE_CALLS = frozenset(
    {
        "list",
        "dict",
        "set",
        "bytearray",
        "defaultdict",
        "deque",
        "OrderedDict",
        "Counter",
        "WeakSet",
        "WeakValueDictionary",
        "WeakKeyDictionary",
    }
)
_MUTATORS = frozenset(
    {
        "append",
        "appendleft",
        "extend",
        "extendleft",
        "insert",
        "add",
        "update",
        "setdefault",
        "pop",
        "popleft",
        "popitem",
        "clear",
        "remove",
        "discard",
        "sort",
        "reverse",
    }
)
_CONSTANT = re.compile(r"^_*[A-Z][A-Z0-9_]*$")


@functools.cache
def _modules() -> tuple[tuple[str, ast.Module, str], ...]:
    """Every module of the package: ``(path relative to src/, syntax tree, text)``."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        out.append((path.relative_to(SRC).as_posix(), ast.parse(text, filename=str(path)), text))
    return tuple(out)


def long_modules() -> list[str]:
    """Modules over :data:`MAX_MODULE_LINES` lines, as ``path (N lines)``."""
    return [f"{name} ({n} lines)" for name, _, text in _modules() if (n := len(text.splitlines())) > MAX_MODULE_LINES]


def _functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def code_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from ``def`` to the function's last line, less its docstring's."""
    n = (fn.end_lineno or fn.lineno) - fn.lineno + 1
    first = fn.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        n -= (first.end_lineno or first.lineno) - first.lineno + 1
    return n


def long_functions() -> list[str]:
    """Functions over :data:`MAX_FUNCTION_LINES` lines of code, as ``path:qualified.name (N lines)``."""
    return [
        f"{name}:{qual} ({n} lines)"
        for name, tree, _ in _modules()
        for qual, fn in _functions(tree)
        if (n := code_lines(fn)) > MAX_FUNCTION_LINES
    ]


def _is_mutable(value: ast.expr | None) -> bool:
    if isinstance(value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp | ast.SetComp):
        return True
    if isinstance(value, ast.Call):
        f = value.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        return name in _MUTABLE_CALLS
    return False


def _top_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """Statements run at import: the module's body and the bodies of its top-level if/try/with blocks."""
    stack = list(reversed(tree.body))
    while stack:
        st = stack.pop()
        yield st
        if isinstance(st, ast.If | ast.Try | ast.With):
            blocks = [st.body, getattr(st, "orelse", []), getattr(st, "finalbody", [])]
            blocks += [h.body for h in getattr(st, "handlers", [])]
            stack.extend(s for b in reversed(blocks) for s in reversed(b))


def _targets(st: ast.stmt) -> list[ast.expr]:
    if isinstance(st, ast.Assign):
        return st.targets
    if isinstance(st, ast.AnnAssign | ast.AugAssign):
        return [st.target]
    return []


def _immutable_class(c: ast.ClassDef) -> bool:
    for d in c.decorator_list:
        if isinstance(d, ast.Call) and any(
            k.arg == "frozen" and isinstance(k.value, ast.Constant) and k.value.value is True for k in d.keywords
        ):
            return True
    return any(ast.unparse(b).split(".")[-1] in {"NamedTuple", "Enum", "IntEnum", "StrEnum"} for b in c.bases)


def _mutated_names(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[str]:
    """Names whose contents ``fn`` changes (item assignment/deletion, mutating method calls)."""
    for n in ast.walk(fn):
        targets: list[ast.expr] = []
        if isinstance(n, ast.Assign | ast.Delete):
            targets = n.targets
        elif isinstance(n, ast.AugAssign | ast.AnnAssign):
            targets = [n.target]
        for t in targets:
            if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
                yield t.value.id
        if (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in _MUTATORS
            and isinstance(n.func.value, ast.Name)
        ):
            yield n.func.value.id


def _local_names(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    a = fn.args
    names = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]}
    names |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
    names |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names


def mutable_state(modules: Iterable[tuple[str, ast.Module, str]] | None = None) -> list[str]:
    """Module-level mutable state (see the module docstring) in ``modules`` (default: the package's), as
    ``path:name (why)``."""
    found: list[str] = []
    for name, tree, _ in _modules() if modules is None else modules:
        classes = {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}
        module_names: set[str] = set()
        for st in _top_level(tree):
            for t in _targets(st):
                if not isinstance(t, ast.Name):
                    continue
                module_names.add(t.id)
                final = isinstance(st, ast.AnnAssign) and "Final" in ast.unparse(st.annotation)
                value = st.value if isinstance(st, ast.Assign | ast.AnnAssign) else None
                if _is_mutable(value) and t.id != "__all__" and not (final and _CONSTANT.match(t.id)):
                    found.append(f"{name}:{t.id} (a mutable container; a constant is UPPER_CASE, Final)")
                if (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Name)
                    and value.func.id in classes
                    and not _immutable_class(classes[value.func.id])
                ):
                    found.append(f"{name}:{t.id} (a module-level instance of the mutable {value.func.id})")
        for qual, fn in _functions(tree):
            for g in (n for n in ast.walk(fn) if isinstance(n, ast.Global)):
                found += [f"{name}:{x} (rebound by `global` in {qual})" for x in g.names]
            local = _local_names(fn)
            for x in sorted(set(_mutated_names(fn))):
                if x in module_names and x not in local:
                    found.append(f"{name}:{x} (changed by {qual})")
    return sorted(set(found))


RULES: dict[str, Callable[[], list[str]]] = {
    "modules": long_modules,
    "functions": long_functions,
    "state": mutable_state,
}


def _key(breach: str) -> str:
    return breach.split(" (", 1)[0]


@pytest.mark.parametrize("rule", list(RULES))
def test_house_rule_holds(rule: str) -> None:
    assert RULES[rule]() == []


# -- the checks themselves can fail ------------------------------------------------------------------------------------
def _state_of(source: str) -> list[str]:
    return [_key(b) for b in mutable_state([("m.py", ast.parse(source), source)])]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("cache = {}\n", ["m.py:cache"]),
        ("_SEEN = set()\n", ["m.py:_SEEN"]),
        ("from typing import Final\nLIMITS: Final = {'a': 1}\n", []),
        ("NAMES = ('a', 'b')\nWORDS = frozenset({'x'})\n__all__ = ['f']\n", []),
        ("n = 0\ndef bump():\n    global n\n    n += 1\n", ["m.py:n"]),
        ("from typing import Final\nREG: Final = {}\ndef register(k, v):\n    REG[k] = v\n", ["m.py:REG"]),
        ("from typing import Final\nQ: Final = []\ndef f(Q):\n    Q.append(1)\n", []),
        ("class S:\n    x = 1\nstate = S()\n", ["m.py:state"]),
        (
            "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass P:\n    x: int\nPRIOR = P(1)\n",
            [],
        ),
    ],
)
def test_the_mutable_state_check_finds_what_it_should(source: str, expected: list[str]) -> None:
    assert _state_of(source) == expected


def test_function_length_does_not_count_the_docstring() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(5))
    fn = ast.parse(f'def f():\n    """One.\n\n    Two.\n    """\n{body}\n').body[0]
    assert isinstance(fn, ast.FunctionDef)
    assert code_lines(fn) == 6
