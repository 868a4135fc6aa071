"""The ``metrosight`` command line (one Typer app)."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.table import Table
from rich.text import Text

from metrosight.config.home import Home
from metrosight.config.load import ConfigError, load_settings
from metrosight.config.model import Settings
from metrosight.console import SafeConsole, error_line, visible
from metrosight.core.types import Category

app = typer.Typer(
    name="metrosight",
    help="Watchlist face recognition and behaviour analytics for metro cameras.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
watchlist_app = typer.Typer(help="Create and list watchlists.", no_args_is_help=True)
config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)
app.add_typer(watchlist_app, name="watchlist")
app.add_typer(config_app, name="config")

out = SafeConsole(soft_wrap=True)  # user-supplied text printed as text (metrosight/console.py)
err = SafeConsole(stderr=True, soft_wrap=True)

SAMPLE_DIR = Path(__file__).with_name("sample")


class _State:
    home: Path | None = None
    config: Path | None = None
    user: str | None = None
    actor: object | None = None  # the authenticated Actor, once per command


state = _State()


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr, then exit non-zero."""
    err.print(error_line(message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings(config: Path | None = None) -> Settings:
    try:
        return load_settings(config or state.config)
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}")


def _runtime(config: Path | None = None):  # type: ignore[no-untyped-def]
    """The installation's services (:class:`metrosight.services.suite.Services`); exits with one line when the
    home or the store cannot be opened."""
    from metrosight.services.suite import Services
    from metrosight.store.db import StoreError

    settings = _settings(config)
    try:
        return Services.open(Home.resolve(state.home), settings)
    except StoreError as exc:
        fail(str(exc), 1)
    except OSError as exc:
        fail(f"cannot use home directory: {exc}", 1)


TOKEN_ENV = "METROSIGHT_TOKEN"
PASSWORD_ENV = "METROSIGHT_PASSWORD"


def _actor(rt):  # type: ignore[no-untyped-def]
    """The authenticated user doing a governed action (anything audited as a person's act).

    The credential is, in this order: an API token in ``METROSIGHT_TOKEN`` (it names its user; ``--as``, if given,
    must agree), the password in ``METROSIGHT_PASSWORD`` for ``--as USER``, or a hidden password prompt when the
    command runs in a terminal. The environment variables are removed once read, so that child processes do not
    inherit them. A refused credential is audited and ends the command with one line; the actor is asked for
    once per command.
    """
    import os

    from metrosight.store.accounts import Accounts

    if state.actor is not None:
        return state.actor
    accounts = Accounts(rt.store)
    token = os.environ.pop(TOKEN_ENV, None)
    if token:
        with governed():
            actor = accounts.token_actor(token.strip())
        if actor is None:
            fail(f"{TOKEN_ENV} is not a valid API token (unknown, revoked or expired, or its user is disabled)")
        if state.user and state.user != actor.name:
            fail(f"{TOKEN_ENV} acts as {actor.name}, not {state.user}: drop --as, or use {state.user}'s credential")
        state.actor = actor
        return actor
    if not state.user:
        fail("this action needs a user: pass --as USER (create users with `metrosight user add`)")
    password = os.environ.pop(PASSWORD_ENV, None)
    if password is None:
        if not sys.stdin.isatty():
            fail(
                f"{state.user} must authenticate: run this in a terminal to be asked for the password, or set "
                f"{TOKEN_ENV} (an API token from `metrosight token create`) or {PASSWORD_ENV}"
            )
        password = typer.prompt(f"password for {state.user}", hide_input=True, err=True)
    with governed():
        actor = accounts.authenticate(state.user, password)
        if actor is None:
            rt.store.record("anonymous", "cli.auth_failed", state.user, {"user": state.user})
    if actor is None:
        fail(
            f"wrong password for {state.user!r}, or no such enabled user with a password "
            "(an admin sets one with `metrosight user password NAME`)"
        )
    state.actor = actor
    return actor


class governed:  # noqa: N801 - used as a context manager
    """Turns refusals of the policy and the store into one clear error line and a non-zero exit."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        from metrosight.core.names import InvalidInput
        from metrosight.policy.crypto import CryptoError
        from metrosight.policy.rules import PolicyError
        from metrosight.recognize.normalize import CohortError
        from metrosight.store.db import StoreError

        if exc is not None and isinstance(exc, PolicyError | StoreError | CryptoError | CohortError | InvalidInput):
            fail(str(exc))
        return False


def _end_of_command() -> None:
    """Every command ends by signing the newest audit head it wrote into the checkpoint file."""
    from metrosight.store.repo import checkpoint_all

    checkpoint_all()


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="METROSIGHT_HOME", help="where the store, media and caches live"),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
    user: Annotated[
        str | None,
        typer.Option("--as", envvar="METROSIGHT_USER", help="the user doing this (recorded in the audit log)"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress details")] = False,
) -> None:
    state.home = home
    state.config = config
    state.user = user
    state.actor = None
    ctx.call_on_close(_end_of_command)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


# -- watchlists -------------------------------------------------------------------------------------------------
@watchlist_app.command("create")
def watchlist_create(
    name: Annotated[str, typer.Argument(help="watchlist name")],
    category: Annotated[Category, typer.Option("--category", help="why people are on it")],
) -> None:
    """Create an empty watchlist."""
    name = name.strip()
    if not name:
        fail("a watchlist needs a non-empty name")
    rt = _runtime()
    with governed():
        rt.store.create_watchlist(name, category, _actor(rt))
    out.print(Text.assemble("created watchlist ", (visible(name), "bold"), f" ({category.value})"))


@watchlist_app.command("list")
def watchlist_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List watchlists with their entry and template counts."""
    rows = _runtime().store.list_watchlists()
    if as_json:
        for r in rows:
            print(
                json.dumps({"name": r.name, "category": r.category, "subjects": r.subjects, "templates": r.templates})
            )
        return
    table = Table("watchlist", "category", "subjects", "templates", "created")
    for r in rows:
        table.add_row(r.name, r.category, str(r.subjects), str(r.templates), r.created_at.strftime("%Y-%m-%d %H:%M"))
    out.print(table)


# -- enrolment --------------------------------------------------------------------------------------------------
@app.command()
def enroll(
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
    are still enrolled. A new entry needs its authorisation (legal basis,
    authority, reference, expiry) and stays *pending* until a different approver approves it. A new entry whose
    name and face match a person enrolled before (e.g. on another list) joins that person; a face that matches
    someone else is reported, to link (`--person ID`, `person link`) or record as different (`person distinct`)."""
    from rich.progress import Progress

    from metrosight.store.repo import NotFound

    rt = _runtime()
    limits = rt.installation.photo_limits
    people: list[tuple[str, Path, list[Path]]] = []  # (subject, folder, files)
    skipped: list[tuple[Path, str]] = []  # entries that are not photos of a person, with the reason
    if from_dir is not None:
        if photos:
            fail("give either photos with --subject, or --from-dir, not both")
        if not from_dir.is_dir():
            fail(f"--from-dir {from_dir}: not a folder")
        people, skipped = _person_folders(from_dir)
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

    actor = _actor(rt)
    auth = _authorisation(rt, legal_basis, authority, reference, expires, valid_from, cameras, lines, urgent)
    try:
        rt.store.watchlist_category(watchlist)
    except NotFound as exc:
        fail(str(exc))
    from metrosight.ingest.images import photo_or_error

    # decoded one at a time, as enrolment reaches each photo (every file by its content, whatever its name)
    items = ((name, photo_or_error(f, limits)) for name, _, files in people for f in files)
    with governed(), Progress(console=err, transient=True) as progress:
        task = progress.add_task("enrolling", total=sum(len(f) for _, _, f in people))
        results = rt.enrolment.enroll(
            watchlist, items, actor, auth, on_result=lambda _r: progress.advance(task), face=face, person_id=person_id
        )
    enrolled = [r for r in results if r.status == "enrolled"]
    dups = [r for r in results if r.status == "duplicate"]
    refused = [r for r in results if r.status == "refused"]
    for path, why in skipped:
        out.print(f"skipped {path}: {why}", highlight=False, soft_wrap=True)
    owner = [i for i, (_, _, files) in enumerate(people) for _ in files]  # results come in the order of the items
    for k in [k for k, r in enumerate(results) if r.status == "refused"]:
        r = results[k]
        out.print(f"refused {r.photo}: {r.reason}", highlight=False, soft_wrap=True)
        if r.faces and face is None:
            path = people[owner[k]][2][k - owner.index(owner[k])]
            out.print(
                "  choose the subject's face and enrol this photo on its own (with the same authorisation "
                f"options): metrosight enroll -w {shlex.quote(watchlist)} -s {shlex.quote(r.subject)} "
                f"{shlex.quote(str(path))} --face N",
                highlight=False,
                soft_wrap=True,
            )
    usable = {owner[k] for k, r in enumerate(results) if r.status in ("enrolled", "duplicate")}
    no_photo = [(name, folder, files) for i, (name, folder, files) in enumerate(people) if i not in usable]
    for name, folder, files in no_photo:
        why = f"none of its {len(files)} file(s) is a usable photo" if files else "its folder holds no photo"
        out.print(f"refused person {name!r} ({folder}): {why}", highlight=False, soft_wrap=True)
    for r in enrolled:
        if r.linked:
            out.print(f"{r.subject}: {r.linked}: one person (person {r.person_id}) on several lists", highlight=False)
    for r in enrolled + dups:
        for w in r.warnings:
            err.print(error_line(f"{r.subject} ({r.photo}): {w}", label="warning:", style="yellow"), highlight=False)
    subjects = len({r.subject for r in enrolled})
    out.print(
        f"enrolled {len(enrolled)} photo(s) of {subjects} person(s) into {watchlist}; "
        f"{len(dups)} already enrolled; {len(refused)} refused"
        + (f"; {len(no_photo)} person(s) refused: {', '.join(n for n, _, _ in no_photo)}" if no_photo else ""),
        highlight=False,
    )
    if auth is not None and enrolled:
        from metrosight.core.when import describe

        tz = rt.clock.tz
        start = describe(auth.valid_from, tz) if auth.valid_from else "now"
        urgent = (
            f"; urgent: matched at once, until {describe(auth.effective_expiry(rt.clock.now()), tz)} unless a "
            "second approver approves it"
            if auth.urgent
            else ""
        )
        out.print(f"authorised from {start} until {describe(auth.expires_at, tz, end=True)}{urgent}", highlight=False)
    from metrosight.core.names import same_name

    pending = [
        e
        for e in rt.store.entries(watchlist)
        if e.status == "pending" and any(same_name(e.name, r.subject) for r in enrolled)
    ]
    if pending:
        out.print(
            f"{len(pending)} entr{'y is' if len(pending) == 1 else 'ies are'} pending: a different approver must run "
            f"`metrosight --as APPROVER watchlist approve {watchlist} NAME` before they are matched",
            highlight=False,
        )
    if not enrolled and not dups:
        raise typer.Exit(1)


def _person_folders(root: Path) -> tuple[list[tuple[str, Path, list[Path]]], list[tuple[Path, str]]]:
    """``--from-dir``: one ``(subject, folder, files)`` per sub-folder, every non-hidden file in it (judged by its
    content later, whatever its name), and the entries that cannot be a person's photo, with the reason. Hidden
    and OS bookkeeping files (``.DS_Store``, ``Thumbs.db``) are skipped without a word."""
    from metrosight.ingest.images import folder_entries

    people: list[tuple[str, Path, list[Path]]] = []
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


def _authorisation(rt, legal_basis, authority, reference, expires, valid_from, cameras, lines, urgent):  # type: ignore[no-untyped-def]
    """The authorisation given on the command line, or None when none of its fields were given. Dates are read
    in the deployment's time zone (:mod:`metrosight.core.when`); camera ids and lines by the identifier rule."""
    from metrosight.core.names import InvalidInput, identifiers
    from metrosight.core.when import parse_when
    from metrosight.policy.rules import Authorisation, PolicyError

    if not any([legal_basis, authority, reference, expires, valid_from, cameras, lines, urgent]):
        return None
    now, tz = rt.clock.now(), rt.clock.tz
    missing = [
        n
        for n, v in (
            ("--legal-basis", legal_basis),
            ("--authority", authority),
            ("--reference", reference),
            ("--expires", expires),
        )
        if not v
    ]
    if missing:
        fail(f"an authorisation needs {', '.join(missing)}")
    try:
        return Authorisation(
            legal_basis=legal_basis,
            issuing_authority=authority,
            reference=reference,
            expires_at=parse_when(expires, now, tz, end=True, what="--expires"),
            valid_from=parse_when(valid_from, now, tz, end=False, what="--valid-from") if valid_from else None,
            cameras=identifiers(cameras, "camera id"),
            lines=identifiers(lines, "line"),
            urgent=urgent,
        )
    except (PolicyError, InvalidInput) as exc:
        fail(str(exc))


# -- identification ---------------------------------------------------------------------------------------------
@app.command()
def identify(
    photos: Annotated[list[Path], typer.Argument(help="photos to search for watchlisted people")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per photo")] = False,
) -> None:
    """Who on the active watchlists is in these photos."""
    from metrosight.ingest.images import iter_photos

    rt = _runtime()
    with governed():
        results = rt.identification.identify(iter_photos(photos, rt.installation.photo_limits), _actor(rt))
    bad = 0
    for r in results:
        if as_json:
            print(json.dumps({"photo": r.photo, "faces": r.faces, "error": r.error}))
            bad += r.error is not None
            continue
        if r.error:
            err.print(error_line(f"{r.photo}: {r.error}", style="red"), highlight=False, soft_wrap=True)
            bad += 1
            continue
        names = [
            f"{f['subject']} ({', '.join(f['watchlists'])}, score {f['score']})"  # type: ignore[arg-type]
            + (
                "; ambiguous, also "
                + ", ".join(  # type: ignore[arg-type]
                    f"{c['subject']} ({c['watchlist']}, score {c['score']})" for c in f["candidates"]
                )
                if f.get("candidates")
                else ""
            )
            for f in r.faces
            if f.get("subject")
        ]
        out.print(
            f"{r.photo}: {len(r.faces)} face(s); " + (", ".join(names) if names else "nobody on an active watchlist"),
            highlight=False,
        )
    if bad:
        raise typer.Exit(2)


# -- video ------------------------------------------------------------------------------------------------------
def _episode_text(stored) -> str:  # type: ignore[no-untyped-def]
    if stored is None:
        return ""
    if stored.opened:
        return f" → alert {stored.alert_id} (new)"
    note = "; actionable: operators notified" if stored.status == "actionable" else ""
    return f" → alert {stored.alert_id} (sighting {stored.sightings}{note})"


def _alert_line(a, crop: str | None, stored=None) -> str:  # type: ignore[no-untyped-def]
    lists = ", ".join(dict.fromkeys(e.watchlist for e in a.entries)) or a.watchlist
    return (
        f"ALERT {a.camera_id} track {a.track_id}: {a.subject} [{lists}/{a.category}] score {a.score:.3f} "
        f"seen {a.first_seen:.2f}s–{a.last_seen:.2f}s best shot {crop or '-'}{_episode_text(stored)}"
        + (
            "; AMBIGUOUS, also " + ", ".join(f"{c.name} [{c.watchlist}] score {c.score:.3f}" for c in a.candidates)
            if a.candidates
            else ""
        )
    )


def alert_json(a, crop: str | None, stored=None) -> str:  # type: ignore[no-untyped-def]
    return json.dumps(
        {
            "type": "alert",
            "camera": a.camera_id,
            "subject": a.subject,
            "person_id": a.person_id,
            "watchlist": a.watchlist,
            "watchlists": list(dict.fromkeys(e.watchlist for e in a.entries)) or [a.watchlist],
            "entries": [e.model_dump() for e in a.entries],
            "category": a.category,
            "score": a.score,
            "first_seen": a.first_seen,
            "last_seen": a.last_seen,
            "track_id": a.track_id,
            "best_shot": crop,
            "event_id": a.event_id,
            "alert_id": stored.alert_id if stored is not None else None,
            "episode": None if stored is None else ("new" if stored.opened else "sighting"),
            "sightings": stored.sightings if stored is not None else None,
            "status": stored.status if stored is not None else None,
            "ambiguous": bool(a.candidates),
            "candidates": [c.model_dump() for c in a.candidates],
        }
    )


@app.command()
def run(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="video file, webcam:N, or a stream URL (rtsp, rtsps, http, https, rtmp, rtmps, udp, rtp); "
            "percent-encode reserved characters of user names and passwords (@ as %40)",
        ),
    ],
    camera: Annotated[str, typer.Option("--camera", help="camera id stamped on alerts")] = "cam0",
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line")] = False,
    analytics_only: Annotated[
        bool, typer.Option("--analytics-only", help="behaviour analytics only (no face model, no identity)")
    ] = False,
    rtsp_transport: Annotated[
        str | None,
        typer.Option(
            "--rtsp-transport",
            help="RTP transport of an rtsp:// source: auto (TCP, then UDP), tcp or udp "
            "(default: the configured camera's, else auto)",
        ),
    ] = None,
) -> None:
    """Watch one source: print alerts as they happen and a summary at the end."""
    from metrosight.analytics_cli import analytics_summary, event_json, event_line
    from metrosight.core.names import InvalidInput, identifier
    from metrosight.ingest.source import SourceError

    try:
        camera = identifier(camera, "--camera")
    except InvalidInput as exc:
        fail(str(exc))
    rt = _runtime(config)

    def on_alert(a, crop, stored):  # type: ignore[no-untyped-def]
        print(alert_json(a, crop, stored) if as_json else _alert_line(a, crop, stored), flush=True)

    def on_event(e, snapshot):  # type: ignore[no-untyped-def]
        print(event_json(e, snapshot) if as_json else event_line(e, snapshot), flush=True)

    from sqlalchemy.exc import SQLAlchemyError

    from metrosight.pipeline.runtime import Runtime
    from metrosight.recognize.normalize import CohortError
    from metrosight.services.sinks import storage_full
    from metrosight.store.db import StoreError

    try:
        report = Runtime(rt).run(
            source,
            camera,
            on_alert=on_alert,
            analytics_only=analytics_only,
            on_event=on_event,
            rtsp_transport=rtsp_transport,
        )
    except (SourceError, CohortError) as exc:
        fail(str(exc))
    except (StoreError, SQLAlchemyError, OSError) as exc:  # e.g. the run row cannot be written: nothing analysed
        detail = getattr(exc, "orig", None) or exc  # the driver's one-line reason, without the SQL
        what = "the disk is full" if storage_full(exc) else "cannot write the store"
        fail(f"{what} ({detail}); nothing was analysed: free space and run it again", 1)
    s = report.stats
    summary = {
        "type": "summary",
        "camera": camera,
        "status": report.status,
        "frames": s.frames,
        "faces": s.faces,
        "tracks": s.tracks,
        "alerts": report.episodes,
        "sightings": s.alerts,
        "embedded": s.embedded,
        "gallery": report.gallery_size,
        "seconds": round(report.seconds, 2),
        "fps": round(report.fps, 2),
        "run_id": report.run_id,
    }
    if report.analytics is not None:
        summary["analytics"] = analytics_summary(report.analytics, camera)
    if as_json:
        print(json.dumps(summary))
    elif analytics_only:
        a = summary["analytics"]
        out.print(
            f"{camera}: {s.frames} frames, {a['person_tracks']} person tracks, events {a['events']}, "  # type: ignore[index]
            f"crossings {a['crossings']}, peak occupancy {a['peak_occupancy']} in {report.seconds:.1f} s "  # type: ignore[index]
            f"({report.fps:.1f} frames/s)",
            highlight=False,
        )
    else:
        out.print(
            f"{camera}: {s.frames} frames, {s.faces} faces, {s.tracks} tracks, {s.alerts} sighting(s) in "
            f"{report.episodes} alert(s) against {report.gallery_size} active entries in {report.seconds:.1f} s "
            f"({report.fps:.1f} frames/s)",
            highlight=False,
        )
        if report.gallery_size == 0:
            out.print("note: no active watchlist entries, so no face was matched (enrol some first)")
        if report.analytics is not None:
            out.print(f"analytics: {summary['analytics']}", highlight=False)
    if report.status == "storage-full":
        fail(report.error or "the disk is full", 1)
    if report.error:
        fail(f"{report.error}; alerts found before the break are stored", 1)


@app.command()
def demo(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The bundled sample: enrol two public-domain portraits and a still from a public-domain White House clip,
    approve them as a second person, and watch the clip."""
    from metrosight.policy.rules import Authorisation, PolicyError
    from metrosight.store.repo import Conflict

    rt = _runtime()
    name = "demo-missing"
    store = rt.store
    demo_users = {"demo-officer", "demo-approver"}
    if store.user_count() == 0:
        # the demo's own two users, with generated passwords shown once (to review its alerts afterwards)
        import secrets

        from metrosight.policy.passwords import new_password_hash

        passwords = {n: secrets.token_urlsafe(12) for n in sorted(demo_users)}
        pw_hash = {n: new_password_hash(p, n) for n, p in passwords.items()}  # 16 random characters meet the policy
        store.add_user("demo-officer", ["admin", "approver"], None, pw_hash["demo-officer"])
        officer = store.actor("demo-officer")
        store.add_user("demo-approver", ["approver", "operator"], officer, pw_hash["demo-approver"])
        out.print(
            "demo users (passwords shown once): " + ", ".join(f"{n} {p}" for n, p in passwords.items()), highlight=False
        )
    elif {n for n, _r, _d in store.list_users()} != demo_users:
        fail(f"{rt.home.root} has users of its own: run the demo on a home of its own (--home DIR)")
    officer, approver = store.actor("demo-officer"), store.actor("demo-approver")
    try:
        store.create_watchlist(name, Category.MISSING, officer)
    except Conflict:
        pass
    from datetime import timedelta

    auth = Authorisation(
        "demo: public-domain portraits", "metrosight demo", "DEMO-1", rt.clock.now() + timedelta(days=7)
    )
    photos = [
        ("Barack Obama", SAMPLE_DIR / "obama.jpg"),
        ("Joe Biden", SAMPLE_DIR / "biden.jpg"),
        # a small still from the clip's first shot, as a CCTV still of a missing person would be
        ("Lin-Manuel Miranda", SAMPLE_DIR / "lin-manuel-miranda-still.png"),
    ]
    from metrosight.ingest.images import photo_or_error

    limits = rt.installation.photo_limits
    results = rt.enrolment.enroll(name, ((n, photo_or_error(p, limits)) for n, p in photos), officer, auth)
    for r in results:
        out.print(
            f"enrol {r.subject} (recorded by demo-officer): {r.status}{' — ' + r.reason if r.reason else ''}",
            highlight=False,
        )
    for e in store.entries(name):
        if e.status == "pending":
            try:
                store.approve(name, e.name, approver)
                out.print(f"approve {e.name} (by demo-approver, a second person): active", highlight=False)
            except PolicyError as exc:
                out.print(f"approve {e.name}: {exc}", highlight=False)
    clip = SAMPLE_DIR / "short_hamilton_clip.mp4"
    out.print(f"watching {clip.name} (The White House, public domain)…", highlight=False)
    from metrosight.pipeline.runtime import Runtime

    report = Runtime(rt).run(
        str(clip),
        "demo-cam",
        on_alert=lambda a, c, st: print(alert_json(a, c, st) if as_json else _alert_line(a, c, st), flush=True),
    )
    s = report.stats
    out.print(
        f"demo-cam: {s.frames} frames, {s.faces} faces, {s.tracks} tracks, {s.alerts} sighting(s) in "
        f"{report.episodes} alert(s) in {report.seconds:.1f} s ({report.fps:.1f} frames/s); store: {rt.home.root}",
        highlight=False,
    )
    out.print(
        "Lin-Manuel Miranda was enrolled from a 44-pixel face in the first shot (0.3 s); the sighting from 2.7 s on "
        "is him found again in a different, closer shot (one alert, one two-person review). Barack Obama is in the audience only at 8-9 s, out of focus: "
        "metrosight sets blurred faces aside rather than risk a false alert. Review alerts with "
        f"`metrosight --home {rt.home.root} --as demo-approver alert list`; see README 'Using it' for your own footage.",
        highlight=False,
    )


# -- configuration ----------------------------------------------------------------------------------------------
@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="YAML configuration file")]) -> None:
    """Validate a configuration file; names the failing key."""
    try:
        settings = load_settings(file)
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}")
    out.print(f"{file}: OK ({len(settings.cameras)} camera(s), detector {settings.detection.detector.kind})")


from metrosight import (
    governance_cli,  # noqa: E402,F401  (registers user/alert/audit/privacy commands)
    persons_cli,  # noqa: E402,F401  (registers the person commands)
)
from metrosight.pipeline.node_cli import node as _node  # noqa: E402

app.command("node")(_node)


from metrosight.eval.cli import calibrate_cmd as _calibrate  # noqa: E402
from metrosight.eval.cli import eval_app as _eval_app  # noqa: E402

app.add_typer(_eval_app, name="eval")
app.command("calibrate")(_calibrate)
from metrosight.bench_cli import bench_app as _bench_app  # noqa: E402

app.add_typer(_bench_app, name="bench")
from metrosight.analytics_cli import analytics_app as _analytics_app  # noqa: E402

app.add_typer(_analytics_app, name="analytics")
from metrosight.api.serve import serve as _serve  # noqa: E402
from metrosight.api.serve import token_app as _token_app  # noqa: E402

app.command("serve")(_serve)
app.add_typer(_token_app, name="token")


from metrosight.cluster_cli import register as _register_cluster  # noqa: E402

_register_cluster(app)  # worker, consume, db upgrade, plan
from metrosight.ops_cli import register as _register_ops  # noqa: E402

_register_ops(app)  # doctor, backup, restore


def entrypoint() -> None:  # pragma: no cover - thin wrapper
    from metrosight.detect.base import DetectorError
    from metrosight.recognize.embedder import EmbedderError

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except (DetectorError, EmbedderError) as exc:  # a model that cannot be loaded or fit (missing file, other model)
        err.print(error_line(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(2)
