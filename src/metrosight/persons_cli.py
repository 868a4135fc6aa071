"""CLI commands for persons: which watchlist entries are one human being (``person list/show/link/unlink/
distinct``). Registered on the main Typer app by :mod:`metrosight.cli`; every change is audited."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from metrosight.cli import _actor, _runtime, app, governed, out

person_app = typer.Typer(
    help="Persons: one person may be on several watchlists (one entry, one authorisation each).", no_args_is_help=True
)
app.add_typer(person_app, name="person")


def _person_json(p) -> dict:  # type: ignore[no-untyped-def]
    return {
        "id": p.id,
        "name": p.name,
        "entries": [
            {
                "entry_id": e.entry_id,
                "watchlist": e.watchlist,
                "name": e.name,
                "status": e.status,
                "reference": e.reference,
            }
            for e in p.entries
        ],
        "distinct_from": list(p.distinct_from),
    }


@person_app.command("list")
def person_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Persons with their entries (watchlist/name, status) and the persons recorded as different people."""
    rows = _runtime().store.persons()
    if as_json:
        for p in rows:
            print(json.dumps(_person_json(p)))
        return
    table = Table("person", "name", "entries", "different from")
    for p in rows:
        entries = ", ".join(f"{e.watchlist}/{e.name} ({e.status})" for e in p.entries)
        table.add_row(str(p.id), p.name, entries, ", ".join(map(str, p.distinct_from)))
    out.print(table)


@person_app.command("show")
def person_show(
    person_id: Annotated[int, typer.Argument()], as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """One person's entries."""
    rt = _runtime()
    with governed():
        p = rt.store.persons(person_id)[0]
    if as_json:
        print(json.dumps(_person_json(p)))
        return
    out.print(f"person {p.id}: {p.name}", highlight=False)
    for e in p.entries:
        out.print(
            f"  entry {e.entry_id}: {e.watchlist}/{e.name}, {e.status}, ref. {e.reference or '-'}", highlight=False
        )
    if p.distinct_from:
        out.print(f"  different from: {', '.join(map(str, p.distinct_from))}", highlight=False)


@person_app.command("link")
def person_link(
    person_id: Annotated[int, typer.Argument(help="the person to keep")],
    other: Annotated[int, typer.Argument(help="the person whose entries join it")],
    reason: Annotated[str, typer.Option("--reason", help="why they are one person (audited)")] = "same person",
) -> None:
    """Record that two persons are one human being: the second's entries move to the first (approvals stay per
    entry). Matching then treats them as one candidate and alerts name every list."""
    rt = _runtime()
    with governed():
        n = rt.store.link_persons(person_id, other, _actor(rt), reason)
    out.print(f"linked person {other} to person {person_id}: {n} entr{'y' if n == 1 else 'ies'} moved", highlight=False)


@person_app.command("unlink")
def person_unlink(
    watchlist: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument(help="the entry's name")],
    reason: Annotated[str, typer.Option("--reason", help="why the entry is another person (audited)")],
) -> None:
    """Give an entry a person of its own (undoes a wrong link)."""
    rt = _runtime()
    with governed():
        pid = rt.store.unlink_entry(watchlist, name, _actor(rt), reason)
    out.print(f"{watchlist}/{name} is now person {pid}", highlight=False)


@person_app.command("distinct")
def person_distinct(
    person_a: Annotated[int, typer.Argument()],
    person_b: Annotated[int, typer.Argument()],
    reason: Annotated[
        str, typer.Option("--reason", help="why they are different people (audited)")
    ] = "different people",
) -> None:
    """Record that two look-alike persons are different people: enrolment stops warning about the pair, they are
    never linked by name, and the matcher keeps them apart (a probe close to both is ambiguous)."""
    rt = _runtime()
    with governed():
        rt.store.mark_distinct(person_a, person_b, _actor(rt), reason)
    out.print(f"persons {person_a} and {person_b} recorded as different people", highlight=False)
