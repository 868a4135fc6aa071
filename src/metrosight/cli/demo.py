"""``metrosight demo`` (the bundled sample, end to end) and ``metrosight config check``."""

from __future__ import annotations

import contextlib
import secrets
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from metrosight.cli.common import alert_json, alert_line, fail, require_decoder
from metrosight.cli.context import CliContext, cli_context
from metrosight.cli.models import require_parity
from metrosight.cli.sso import check_sso
from metrosight.config.access import tls_problem
from metrosight.config.home import Home
from metrosight.config.load import ConfigError, load_settings
from metrosight.core.types import Category
from metrosight.ingest.images import photo_or_error
from metrosight.policy.passwords import new_password_hash
from metrosight.policy.rules import Actor, Authorisation, PolicyError
from metrosight.store.errors import Conflict

if TYPE_CHECKING:
    from metrosight.services.suite import Services

SAMPLE_DIR = Path(__file__).parent.with_name("sample")
DEMO_WATCHLIST = "demo-missing"
DEMO_USERS: Final = frozenset({"demo-officer", "demo-approver"})

config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)


def _demo_users(c: CliContext, rt: Services) -> tuple[Actor, Actor]:
    """The demo's own two users (created with generated passwords, shown once, on a fresh home)."""
    store = rt.store
    if store.users.count() == 0:
        passwords = {n: secrets.token_urlsafe(12) for n in sorted(DEMO_USERS)}
        pw_hash = {n: new_password_hash(p, n) for n, p in passwords.items()}  # 16 random characters meet the policy
        store.users.add("demo-officer", ["admin", "approver"], None, pw_hash["demo-officer"])
        officer = store.users.actor("demo-officer")
        store.users.add("demo-approver", ["approver", "operator"], officer, pw_hash["demo-approver"])
        c.out.print(
            "demo users (passwords shown once): " + ", ".join(f"{n} {p}" for n, p in passwords.items()),
            highlight=False,
        )
    elif {n for n, _r, _d in store.users.all()} != DEMO_USERS:
        fail(f"{rt.home.root} has users of its own: run the demo on a home of its own (--home DIR)")
    return store.users.actor("demo-officer"), store.users.actor("demo-approver")


def _enrol_sample(c: CliContext, rt: Services, officer: Actor, approver: Actor) -> None:
    store = rt.store
    with contextlib.suppress(Conflict):
        store.watchlists.create(DEMO_WATCHLIST, Category.MISSING, officer)
    auth = Authorisation(
        "demo: public-domain portraits", "metrosight demo", "DEMO-1", rt.clock.now() + timedelta(days=7)
    )
    photos = [
        ("Barack Obama", SAMPLE_DIR / "obama.jpg"),
        ("Joe Biden", SAMPLE_DIR / "biden.jpg"),
        # a small still from the clip's first shot, as a CCTV still of a missing person would be
        ("Lin-Manuel Miranda", SAMPLE_DIR / "lin-manuel-miranda-still.png"),
    ]
    limits = rt.installation.photo_limits
    results = rt.enrolment.enroll(DEMO_WATCHLIST, ((n, photo_or_error(p, limits)) for n, p in photos), officer, auth)
    for r in results:
        c.out.print(
            f"enrol {r.subject} (recorded by demo-officer): {r.status}{' — ' + r.reason if r.reason else ''}",
            highlight=False,
        )
    for e in store.entries.all(DEMO_WATCHLIST):
        if e.status == "pending":
            try:
                store.entries.approve(DEMO_WATCHLIST, e.name, approver)
                c.out.print(f"approve {e.name} (by demo-approver, a second person): active", highlight=False)
            except PolicyError as exc:
                c.out.print(f"approve {e.name}: {exc}", highlight=False)


def demo(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The bundled sample: enrol two public-domain portraits and a still from a public-domain White House clip,
    approve them as a second person, and watch the clip."""
    # heavy: the single-process host loads the model backends (OpenCV, dlib, onnxruntime)
    from metrosight.pipeline.runtime import Runtime

    c = cli_context(ctx)
    rt = c.services()
    officer, approver = _demo_users(c, rt)
    _enrol_sample(c, rt, officer, approver)
    clip = SAMPLE_DIR / "short_hamilton_clip.mp4"
    c.out.print(f"watching {clip.name} (The White House, public domain)…", highlight=False)
    report = Runtime(rt).run(
        str(clip),
        "demo-cam",
        on_alert=lambda a, cr, st: c.emit(alert_json(a, cr, st) if as_json else alert_line(a, cr, st)),
    )
    s = report.stats
    c.out.print(
        f"demo-cam: {s.frames} frames, {s.faces} faces, {s.tracks} tracks, {s.alerts} sighting(s) in "
        f"{report.episodes} alert(s) in {report.seconds:.1f} s ({report.fps:.1f} frames/s); store: {rt.home.root}",
        highlight=False,
    )
    c.out.print(
        "Lin-Manuel Miranda was enrolled from a 44-pixel face in the first shot (0.3 s); the sighting from 2.7 s on "
        "is him found again in a different, closer shot (one alert, one two-person review). Barack Obama is in the "
        "audience only at 8-9 s, out of focus: metrosight sets blurred faces aside rather than risk a false alert. "
        f"Review alerts as demo-approver: add an authenticator app first (approvers need a second factor: "
        f"`metrosight --home {rt.home.root} --as demo-approver user totp enrol`), then "
        f"`metrosight --home {rt.home.root} --as demo-approver alert list`; see README 'Using it' for your own "
        "footage.",
        highlight=False,
    )


@config_app.command("check")
def config_check(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="YAML configuration file")]) -> None:
    """Validate a configuration file; names the failing key."""
    c = cli_context(ctx)
    try:
        settings = load_settings(file)
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}")
    check_sso(settings)  # what serve would read at start: the single sign-on client secret
    if (why := tls_problem(settings.api.tls)) is not None:  # …and the certificate and key it would serve with
        fail(f"invalid configuration: {why}")
    require_decoder(settings.ingest)  # …and a hardware decoder it asks for
    require_parity(settings, Home.resolve(c.home_dir).cache)  # a faster model variant without measured parity
    c.out.print(f"{file}: OK ({len(settings.cameras)} camera(s), detector {settings.detection.detector.kind})")
