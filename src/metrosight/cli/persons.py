"""``metrosight person …``: which watchlist entries are one human being (list, show, link, unlink, distinct);
every change is audited."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from metrosight.cli.common import governed
from metrosight.cli.context import cli_context
from metrosight.store.persons import PersonInfo

person_app = typer.Typer(
    help="Persons: one person may be on several watchlists (one entry, one authorisation each).", no_args_is_help=True
)


def person_json(p: PersonInfo) -> dict[str, object]:
    """One person as the JSON object ``person list/show --json`` print."""
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
def person_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Persons with their entries (watchlist/name, status) and the persons recorded as different people."""
    c = cli_context(ctx)
    rows = c.services().store.persons.all()
    if as_json:
        for p in rows:
            c.emit(json.dumps(person_json(p)))
        return
    table = Table("person", "name", "entries", "different from")
    for p in rows:
        entries = ", ".join(f"{e.watchlist}/{e.name} ({e.status})" for e in p.entries)
        table.add_row(str(p.id), p.name, entries, ", ".join(map(str, p.distinct_from)))
    c.out.print(table)


@person_app.command("show")
def person_show(
    ctx: typer.Context,
    person_id: Annotated[int, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One person's entries."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        p = rt.store.persons.all(person_id)[0]
    if as_json:
        c.emit(json.dumps(person_json(p)))
        return
    c.out.print(f"person {p.id}: {p.name}", highlight=False)
    for e in p.entries:
        c.out.print(
            f"  entry {e.entry_id}: {e.watchlist}/{e.name}, {e.status}, ref. {e.reference or '-'}", highlight=False
        )
    if p.distinct_from:
        c.out.print(f"  different from: {', '.join(map(str, p.distinct_from))}", highlight=False)


@person_app.command("link")
def person_link(
    ctx: typer.Context,
    person_id: Annotated[int, typer.Argument(help="the person to keep")],
    other: Annotated[int, typer.Argument(help="the person whose entries join it")],
    reason: Annotated[str, typer.Option("--reason", help="why they are one person (audited)")] = "same person",
) -> None:
    """Record that two persons are one human being: the second's entries move to the first (approvals stay per
    entry). Matching then treats them as one candidate and alerts name every list."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        n = rt.store.persons.link(person_id, other, c.actor(rt), reason)
    c.out.print(
        f"linked person {other} to person {person_id}: {n} entr{'y' if n == 1 else 'ies'} moved", highlight=False
    )


@person_app.command("unlink")
def person_unlink(
    ctx: typer.Context,
    watchlist: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument(help="the entry's name")],
    reason: Annotated[str, typer.Option("--reason", help="why the entry is another person (audited)")],
) -> None:
    """Give an entry a person of its own (undoes a wrong link)."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        pid = rt.store.persons.unlink_entry(watchlist, name, c.actor(rt), reason)
    c.out.print(f"{watchlist}/{name} is now person {pid}", highlight=False)


@person_app.command("distinct")
def person_distinct(
    ctx: typer.Context,
    person_a: Annotated[int, typer.Argument()],
    person_b: Annotated[int, typer.Argument()],
    reason: Annotated[
        str, typer.Option("--reason", help="why they are different people (audited)")
    ] = "different people",
) -> None:
    """Record that two look-alike persons are different people: enrolment stops warning about the pair, they are
    never linked by name, and the matcher keeps them apart (a probe close to both is ambiguous)."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        rt.store.persons.mark_distinct(person_a, person_b, c.actor(rt), reason)
    c.out.print(f"persons {person_a} and {person_b} recorded as different people", highlight=False)
