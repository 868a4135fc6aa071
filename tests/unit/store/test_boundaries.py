"""The store's boundary: only the store touches a database session, and `Store` composes repositories instead of
being one class with every method."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import metrosight
from metrosight.store.repo import Store

PACKAGE = Path(metrosight.__file__).parent


def _outside_the_store() -> list[tuple[str, ast.Module]]:
    return [
        (p.relative_to(PACKAGE).as_posix(), ast.parse(p.read_text(encoding="utf-8")))
        for p in sorted(PACKAGE.rglob("*.py"))
        if "store" not in p.relative_to(PACKAGE).parts[:1]
    ]


def session_uses(modules: list[tuple[str, ast.Module]]) -> list[str]:
    """Imports of SQLAlchemy's ORM (its sessions) and reaches into a store's unit of work (``.uow``)."""
    found = []
    for name, tree in modules:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy.orm"):
                found.append(f"{name}:{node.lineno} imports {node.module}")
            elif isinstance(node, ast.Import) and any(a.name.startswith("sqlalchemy.orm") for a in node.names):
                found.append(f"{name}:{node.lineno} imports sqlalchemy.orm")
            elif isinstance(node, ast.Attribute) and node.attr == "uow":
                found.append(f"{name}:{node.lineno} uses .{node.attr}")
    return found


def test_nothing_outside_the_store_touches_a_database_session():
    assert session_uses(_outside_the_store()) == []


def test_the_check_finds_a_session_used_outside_the_store():
    src = "import sqlalchemy.orm\nfrom sqlalchemy.orm import Session\n\ndef f(store):\n    return store.uow.read()\n"
    assert len(session_uses([("m.py", ast.parse(src))])) == 3


def test_store_is_a_composition_root_not_a_god_class():
    public = [n for n, v in vars(Store).items() if not n.startswith("_") and inspect.isfunction(v)]
    assert sorted(public) == ["checkpoint", "count"]
    st = Store.__init__.__code__.co_names
    for repo in ("users", "watchlists", "entries", "gallery", "persons", "alerts", "reviews", "runs", "events"):
        assert repo in st, repo
