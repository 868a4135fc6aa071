"""``metrosight enroll``: record watchlist entries from photos, with their authorisation."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from metrosight.cli.common import fail, governed
from metrosight.cli.context import CliContext, cli_context
from metrosight.console import error_line
from metrosight.core.names import InvalidInput, identifiers, same_name
from metrosight.core.when import Clock, describe, parse_when
from metrosight.ingest.images import folder_entries, photo_or_error
from metrosight.policy.rules import Authorisation, PolicyError
from metrosight.store.errors import NotFound

if TYPE_CHECKING:
    from metrosight.services.enrolment import EnrolResult
    from metrosight.services.suite import Services

#: one person to enrol: (subject name, their folder (``.`` for photos given by path), their files)
PersonPhotos = tuple[str, Path, list[Path]]


@dataclass(frozen=True)
class AuthorisationOptions:
    """The authorisation options of ``enroll`` as given (text, not yet parsed)."""

    legal_basis: str | None = None
    authority: str | None = None
    reference: str | None = None
    expires: str | None = None
    valid_from: str | None = None
    cameras: str | None = None
    lines: str | None = None
    urgent: bool = False

    def given(self) -> bool:
        """True when any of the options was given."""
        return any(
            [
                self.legal_basis,
                self.authority,
                self.reference,
                self.expires,
                self.valid_from,
                self.cameras,
                self.lines,
                self.urgent,
            ]
        )


def parse_authorisation(opts: AuthorisationOptions, clock: Clock) -> Authorisation | None:
    """The authorisation given on the command line, or None when none of its fields were given. Dates are read
    in the deployment's time zone (:mod:`metrosight.core.when`); camera ids and lines by the identifier rule.
    Exits with one line naming the missing or malformed option."""
    if not opts.given():
        return None
    now, tz = clock.now(), clock.tz
    named = (
        ("--legal-basis", opts.legal_basis),
        ("--authority", opts.authority),
        ("--reference", opts.reference),
        ("--expires", opts.expires),
    )
    missing = [n for n, v in named if not v]
    if missing:
        fail(f"an authorisation needs {', '.join(missing)}")
    legal_basis, authority, reference, expires = (v or "" for _, v in named)  # each given (checked above)
    try:
        return Authorisation(
            legal_basis=legal_basis,
            issuing_authority=authority,
            reference=reference,
            expires_at=parse_when(expires, now, tz, end=True, what="--expires"),
            valid_from=parse_when(opts.valid_from, now, tz, end=False, what="--valid-from")
            if opts.valid_from
            else None,
            cameras=identifiers(opts.cameras, "camera id"),
            lines=identifiers(opts.lines, "line"),
            urgent=opts.urgent,
        )
    except (PolicyError, InvalidInput) as exc:
        fail(str(exc))


def person_folders(root: Path) -> tuple[list[PersonPhotos], list[tuple[Path, str]]]:
    """``--from-dir``: one ``(subject, folder, files)`` per sub-folder, every non-hidden file in it (judged by its
    content later, whatever its name), and the entries that cannot be a person's photo, with the reason. Hidden
    and OS bookkeeping files (``.DS_Store``, ``Thumbs.db``) are skipped without a word."""
    people: list[PersonPhotos] = []
    skipped: list[tuple[Path, str]] = []
    for entry in folder_entries(root):
        if not entry.is_dir():
            skipped.append((entry, "not in a person's folder (expected DIR/<person name>/<photo>)"))
            continue
        files = []
        for f in folder_entries(entry):
            if f.is_dir():
                skipped.append((f, f"a folder inside a person's folder; put the photos directly in {entry}"))
            else:
                files.append(f)
        people.append((entry.name.replace("_", " "), entry, files))
    return people, skipped


def _people_to_enrol(
    photos: list[Path] | None,
    subject: str | None,
    from_dir: Path | None,
    person_id: int | None,
    face: int | None,
) -> tuple[list[PersonPhotos], list[tuple[Path, str]]]:
    """The people the command line names (``--from-dir`` or photos with ``--subject``); exits on a bad mix."""
    people: list[PersonPhotos] = []
    skipped: list[tuple[Path, str]] = []
    if from_dir is not None:
        if photos:
            fail("give either photos with --subject, or --from-dir, not both")
        if not from_dir.is_dir():
            fail(f"--from-dir {from_dir}: not a folder")
        people, skipped = person_folders(from_dir)
        if not people:
            fail(f"--from-dir {from_dir}: no sub-folders with photos (expected DIR/<person name>/<photo>)")
    else:
        if not photos:
            fail("no photos given: pass photo paths with --subject NAME, or --from-dir DIR")
        if not subject or not subject.strip():
            fail("--subject is required with photo paths (the person's full name)")
        people = [(subject, Path("."), list(photos))]
    if person_id is not None and len(people) > 1:
        fail(
            f"--person {person_id} makes the new entry that one person, but --from-dir {from_dir} holds "
            f"{len(people)} person folders: give a folder with one person's sub-folder, or enrol with --subject"
        )
    if face is not None and (from_dir is not None or len(people[0][2]) != 1):
        fail(
            "--face N chooses a face of one photo: give exactly one photo with --subject (for a photo of a "
            "--from-dir folder, re-run it on its own as each refusal shows)"
        )
    return people, skipped


@dataclass(frozen=True)
class _Outcome:
    watchlist: str
    people: list[PersonPhotos]
    results: list[EnrolResult]
    face: int | None

    @property
    def owner(self) -> list[int]:
        """The index in ``people`` of each result (results come in the order of the photos)."""
        return [i for i, (_, _, files) in enumerate(self.people) for _ in files]

    def of(self, status: str) -> list[EnrolResult]:
        return [r for r in self.results if r.status == status]

    def no_photo(self) -> list[PersonPhotos]:
        """The people none of whose files was a usable photo."""
        owner = self.owner
        usable = {owner[k] for k, r in enumerate(self.results) if r.status in ("enrolled", "duplicate")}
        return [p for i, p in enumerate(self.people) if i not in usable]


def _print_refusals(c: CliContext, o: _Outcome, skipped: list[tuple[Path, str]]) -> None:
    for path, why in skipped:
        c.out.print(f"skipped {path}: {why}", highlight=False, soft_wrap=True)
    owner = o.owner
    for k, r in enumerate(o.results):
        if r.status != "refused":
            continue
        if r.disagrees:  # one line for all the photos of a person refused together
            same = [q for j, q in enumerate(o.results) if owner[j] == owner[k] and q.disagrees and q.reason == r.reason]
            if same[0] is r:
                listed = ", ".join(q.photo for q in same)
                c.out.print(f"refused {listed}: {r.reason}", highlight=False, soft_wrap=True)
            continue
        c.out.print(f"refused {r.photo}: {r.reason}", highlight=False, soft_wrap=True)
        if r.faces and o.face is None:
            path = o.people[owner[k]][2][k - owner.index(owner[k])]
            c.out.print(
                "  choose the subject's face and enrol this photo on its own (with the same authorisation "
                f"options): metrosight enroll -w {shlex.quote(o.watchlist)} -s {shlex.quote(r.subject)} "
                f"{shlex.quote(str(path))} --face N",
                highlight=False,
                soft_wrap=True,
            )
    mixed = {owner[k] for k, r in enumerate(o.results) if r.disagrees}
    for name, folder, files in o.no_photo():
        why = f"none of its {len(files)} file(s) is a usable photo" if files else "its folder holds no photo"
        if any(o.people[i][1] == folder and o.people[i][0] == name for i in mixed):
            why = "its photos are not all of one person (above): nothing stored"
        c.out.print(f"refused person {name!r} ({folder}): {why}", highlight=False, soft_wrap=True)


def _print_summary(c: CliContext, rt: Services, o: _Outcome, auth: Authorisation | None) -> None:
    enrolled, dups = o.of("enrolled"), o.of("duplicate")
    for r in enrolled:
        if r.linked:
            c.out.print(f"{r.subject}: {r.linked}: one person (person {r.person_id}) on several lists", highlight=False)
    for r in enrolled + dups:
        for w in r.warnings:
            c.err.print(error_line(f"{r.subject} ({r.photo}): {w}", label="warning:", style="yellow"), highlight=False)
    no_photo = o.no_photo()
    c.out.print(
        f"enrolled {len(enrolled)} photo(s) of {len({r.subject for r in enrolled})} person(s) into {o.watchlist}; "
        f"{len(dups)} already enrolled; {len(o.of('refused'))} refused"
        + (f"; {len(no_photo)} person(s) refused: {', '.join(n for n, _, _ in no_photo)}" if no_photo else ""),
        highlight=False,
    )
    if auth is not None and enrolled:
        tz = rt.clock.tz
        start = describe(auth.valid_from, tz) if auth.valid_from else "now"
        urgent = (
            f"; urgent: matched at once, until {describe(auth.effective_expiry(rt.clock.now()), tz)} unless a "
            "second approver approves it"
            if auth.urgent
            else ""
        )
        c.out.print(f"authorised from {start} until {describe(auth.expires_at, tz, end=True)}{urgent}", highlight=False)
    pending = [
        e
        for e in rt.store.entries.all(o.watchlist)
        if e.status == "pending" and any(same_name(e.name, r.subject) for r in enrolled)
    ]
    if pending:
        c.out.print(
            f"{len(pending)} entr{'y is' if len(pending) == 1 else 'ies are'} pending: a different approver must run "
            f"`metrosight --as APPROVER watchlist approve {o.watchlist} NAME` before they are matched",
            highlight=False,
        )


def enroll(
    ctx: typer.Context,
    photos: Annotated[list[Path] | None, typer.Argument(help="photos of one person (with --subject)")] = None,
    watchlist: Annotated[str, typer.Option("--watchlist", "-w", help="watchlist to enrol into")] = ...,  # type: ignore[assignment]
    subject: Annotated[str | None, typer.Option("--subject", "-s", help="the person's full name")] = None,
    from_dir: Annotated[
        Path | None, typer.Option("--from-dir", help="a folder with one sub-folder of photos per person")
    ] = None,
    legal_basis: Annotated[str | None, typer.Option("--legal-basis", help="law or order allowing the search")] = None,
    authority: Annotated[
        str | None, typer.Option("--authority", help="issuing authority (court, prosecutor …)")
    ] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="case or order number")] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="end of the authorisation: YYYY-MM-DD (the end of that day in the deployment's "
            "time zone), YYYY-MM-DDTHH:MM, or a duration like 30d",
        ),
    ] = None,
    valid_from: Annotated[
        str | None,
        typer.Option("--valid-from", help="start: YYYY-MM-DD (that day's start) or YYYY-MM-DDTHH:MM; default now"),
    ] = None,
    cameras: Annotated[
        str | None, typer.Option("--cameras", help="limit to these camera ids (comma-separated)")
    ] = None,
    lines: Annotated[str | None, typer.Option("--lines", help="limit to these metro lines (comma-separated)")] = None,
    urgent: Annotated[bool, typer.Option("--urgent", help="match at once; lapses after 24 h unless approved")] = False,
    face: Annotated[
        int | None,
        typer.Option(
            "--face",
            min=1,
            help="with one photo: enrol its face number N (as numbered when the photo was "
            "refused for several faces; 1 = leftmost)",
        ),
    ] = None,
    person_id: Annotated[
        int | None,
        typer.Option(
            "--person", min=1, help="the new entry is this enrolled person (on another list): see `person list`"
        ),
    ] = None,
) -> None:
    """Record watchlist entries from photos. The subject's face is taken when it clearly dominates the photo (the
    largest whole face; any other face much smaller, further from the centre, or cut by the edge); a photo with
    several faces of which none dominates is refused with its faces numbered — enrol one with --face N (one photo
    at a time, also for a photo of a --from-dir folder). Refused photos are listed with the reason and the others
    are still enrolled. One person's photos that are not all of one person (a photo clearly of someone else, also
    against the templates of the person they join) are all refused, nothing stored for that person. A new entry
    needs its authorisation (legal basis, authority, reference, expiry) and stays *pending* until a different
    approver approves it. A new entry whose name and face match a person enrolled before (e.g. on another list)
    joins that person; a face that matches someone else is reported, to link (`--person ID`, `person link`) or
    record as different (`person distinct`)."""
    c = cli_context(ctx)
    rt = c.services()
    people, skipped = _people_to_enrol(photos, subject, from_dir, person_id, face)
    actor = c.actor(rt)
    opts = AuthorisationOptions(legal_basis, authority, reference, expires, valid_from, cameras, lines, urgent)
    auth = parse_authorisation(opts, rt.clock)
    try:
        rt.store.watchlists.category(watchlist)
    except NotFound as exc:
        fail(str(exc))
    limits = rt.installation.photo_limits
    # decoded one at a time, as enrolment reaches each photo (every file by its content, whatever its name)
    items = ((name, photo_or_error(f, limits)) for name, _, files in people for f in files)
    with governed(), Progress(console=c.err, transient=True) as progress:
        task = progress.add_task("enrolling", total=sum(len(f) for _, _, f in people))
        results = rt.enrolment.enroll(
            watchlist, items, actor, auth, on_result=lambda _r: progress.advance(task), face=face, person_id=person_id
        )
    outcome = _Outcome(watchlist, people, results, face)
    _print_refusals(c, outcome, skipped)
    _print_summary(c, rt, outcome, auth)
    if not outcome.of("enrolled") and not outcome.of("duplicate"):
        raise typer.Exit(1)
