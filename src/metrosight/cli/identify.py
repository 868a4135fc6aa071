"""``metrosight identify``: who on the active watchlists is in these photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from metrosight.cli.common import governed
from metrosight.cli.context import cli_context
from metrosight.console import error_line
from metrosight.ingest.images import iter_photos


def face_text(f: dict[str, Any]) -> str:
    """One identified face: ``NAME (lists, score S)``, with the other candidates when the match is ambiguous."""
    also = (
        "; ambiguous, also "
        + ", ".join(f"{c['subject']} ({c['watchlist']}, score {c['score']})" for c in f["candidates"])
        if f.get("candidates")
        else ""
    )
    return f"{f['subject']} ({', '.join(f['watchlists'])}, score {f['score']})" + also


def identify(
    ctx: typer.Context,
    photos: Annotated[list[Path], typer.Argument(help="photos to search for watchlisted people")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per photo")] = False,
) -> None:
    """Who on the active watchlists is in these photos."""
    c = cli_context(ctx)
    rt = c.services()
    with governed():
        results = rt.identification.identify(iter_photos(photos, rt.installation.photo_limits), c.actor(rt))
    bad = 0
    for r in results:
        if as_json:
            c.emit(json.dumps({"photo": r.photo, "faces": r.faces, "error": r.error}))
            bad += r.error is not None
            continue
        if r.error:
            c.err.print(error_line(f"{r.photo}: {r.error}", style="red"), highlight=False, soft_wrap=True)
            bad += 1
            continue
        names = [face_text(f) for f in r.faces if f.get("subject")]
        c.out.print(
            f"{r.photo}: {len(r.faces)} face(s); " + (", ".join(names) if names else "nobody on an active watchlist"),
            highlight=False,
        )
    if bad:
        raise typer.Exit(2)
