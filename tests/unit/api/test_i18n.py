"""The operator UI's languages: every message of the templates, scripts and page code has a Russian translation;
the Russian pages show no English; the language follows the user's setting, else the browser; dates and times are
shown in the user's zone and the language's format."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_datetime
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from metrosight.api.i18n import N_, Languages, format_when, negotiate, parse_accept_language, translate
from metrosight.api.routes.pages import LANGUAGES, WEB
from tests.conftest import REPO_ROOT
from tests.unit.api.conftest import PASSWORD, Api
from tests.unit.api.test_api import enrol, make_watchlist, raise_alert

RU_PO = WEB / "locale" / "ru" / "LC_MESSAGES" / "messages.po"
#: placeholders: %(name)s of the templates and Python code, {name} of the scripts
_PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")
_TAG = re.compile(r"</?[a-z]+\b[^>]*>")


def extracted() -> Catalog:
    """The messages of the templates, scripts and page code as Babel extracts them with babel.cfg."""
    with (REPO_ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    cat = Catalog()
    for filename, lineno, message, comments, context in extract_from_dir(str(REPO_ROOT), method_map, options_map):
        cat.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return cat


@pytest.fixture(scope="module")
def messages() -> Catalog:
    return extracted()


@pytest.fixture(scope="module")
def russian() -> Catalog:
    with RU_PO.open("rb") as f:
        return read_po(f, locale="ru")


def _where(m) -> str:  # type: ignore[no-untyped-def]
    return ", ".join(sorted({p for p, _ in m.locations})) or "?"


def test_babel_finds_the_messages_of_templates_scripts_and_page_code(messages: Catalog):
    found = {m.id if isinstance(m.id, str) else m.id[0] for m in messages if m.id}
    # one of each source: a template, a {% trans %} block, a script's t(), tn(), Python's N_, the value labels
    for expected in (
        "Live alerts",
        "Snapshots are whole frames with every detected face blurred, downscaled; they are kept in memory only.",
        "Why is alert #{id} wrong? (kept as feedback)",
        "{n} sighting",
        "wrong user name or password",
        "confirmed_once",
    ):
        assert expected in found, expected
    assert len(found) > 150


def test_every_message_has_a_russian_translation(messages: Catalog, russian: Catalog):
    """Every string of the templates, scripts and page code is in the Russian catalogue, translated (every plural
    form), not fuzzy, with the same placeholders and markup as the English."""
    problems = []
    for m in messages:
        if not m.id:
            continue
        ru = russian.get(m.id, m.context)
        label = f"{m.id!r} ({_where(m)})"
        if ru is None:
            problems.append(f"not in the catalogue: {label}")
            continue
        forms = list(ru.string) if isinstance(ru.string, tuple | list) else [ru.string]
        if ru.fuzzy or not all(forms):
            problems.append(f"untranslated or fuzzy: {label}")
            continue
        source = " ".join(m.id) if isinstance(m.id, tuple) else m.id
        for form in forms:
            if sorted(set(_PLACEHOLDER.findall(form))) != sorted(set(_PLACEHOLDER.findall(source))):
                problems.append(f"placeholders differ: {label} -> {form!r}")
            if sorted(_TAG.findall(form)) != sorted(_TAG.findall(m.id[0] if isinstance(m.id, tuple) else m.id)):
                problems.append(f"markup differs: {label} -> {form!r}")
    assert not problems, "run the steps of README 'Languages and time zones':\n" + "\n".join(problems)


def test_every_value_the_code_shows_has_a_russian_label(russian: Catalog):
    """The values pages show with _(value) / t(value) (roles, categories, camera states, event kinds, alarm
    priorities and states) are all listed in templates/labels.html and translated: a new one added to the code
    without a label would show in English."""
    from metrosight.analytics.model import KINDS
    from metrosight.api.metrics import STATES
    from metrosight.core.types import Category
    from metrosight.policy.alarms import ALARM_STATES, PRIORITIES
    from metrosight.policy.rules import ROLES

    plain = [*ROLES, *(c.value for c in Category), *STATES, *KINDS]
    missing = [v for v in plain if not (m := russian.get(v)) or not m.string]
    missing += [
        f"alarm|{v}" for v in (*PRIORITIES, *ALARM_STATES) if not (m := russian.get(v, "alarm")) or not m.string
    ]
    assert not missing, f"add to templates/labels.html and translate: {missing}"


def test_every_t_call_of_the_scripts_is_extracted(messages: Catalog):
    """A guard on the extractor: every literal t("...") / tn("...") of the scripts is in the extraction (a message
    the extractor missed would show in English without failing the catalogue test)."""
    found = {m.id if isinstance(m.id, str) else m.id[0] for m in messages if m.id}
    calls = set()
    for js in (WEB / "static").glob("*.js"):
        calls |= set(re.findall(r'\btn?\(\s*"((?:[^"\\]|\\.)*)"', js.read_text(encoding="utf-8")))
    assert calls and not calls - found, sorted(calls - found)


def test_the_catalogue_loads_with_plural_forms_for_the_scripts():
    ru = LANGUAGES.get("ru")
    assert ru is not None and ru.gettext("Cameras") == "Камеры"
    forms = ru.messages["{n} sighting"]
    assert isinstance(forms, dict)
    # CLDR's categories of Russian, each with its gettext form: 1, 2–4, 5–20 (and 0)
    assert (
        forms["one"] == "{n} обнаружение" and forms["few"] == "{n} обнаружения" and forms["many"] == "{n} обнаружений"
    )
    assert ru.translations.ngettext("%(num)s sighting", "%(num)s sightings", 22) == "%(num)s обнаружения"


# -- the language of a request -----------------------------------------------------------------------------------
def test_accept_language_is_read_by_preference():
    assert parse_accept_language("de-DE, ru;q=0.9, en;q=0.8, *;q=0.1, fr;q=0") == ["de-DE", "ru", "en"]
    assert parse_accept_language("") == [] and parse_accept_language(None) == []
    assert parse_accept_language("en;q=abc, ru") == ["ru"]
    assert negotiate("ru-RU,ru;q=0.9,en-US;q=0.8", ["en", "ru"]) == "ru"
    assert negotiate("de-CH, en-GB;q=0.5", ["en", "ru"]) == "en"
    assert negotiate("de, fr", ["en", "ru"]) is None
    langs = Languages.load(WEB)
    assert langs.negotiate(None, "fr, de").code == "en"  # nothing supported: English
    assert langs.negotiate("ru", "en").code == "ru"  # the user's setting first
    assert langs.negotiate("xx", "ru").code == "ru"  # a setting the UI no longer has: the browser's


def test_page_messages_of_python_code_are_translated_when_shown():
    ru = LANGUAGES.by_code["ru"]
    assert translate(ru, N_("too many sign-in attempts; try again in %(seconds)s s", seconds=7)) == (
        'слишком много попыток входа; повторите через <span translate="no">7</span> с'
    )
    assert translate(ru, "an error text the catalogue does not hold") == "an error text the catalogue does not hold"
    assert translate(ru, "the two new passwords differ") == "два новых пароля не совпадают"
    # values are data: escaped and marked as not to be translated
    assert translate(LANGUAGES.by_code["en"], N_("in %(n)s", n="<b>")) == 'in <span translate="no">&lt;b&gt;</span>'
    assert translate(ru, "<script>") == "&lt;script&gt;"


def test_dates_are_shown_in_the_zone_and_the_language_format():
    at = datetime(2026, 11, 29, 19, 30, 5, tzinfo=UTC)
    msk = ZoneInfo("Europe/Moscow")
    ru = str(format_when(at, LANGUAGES.by_code["ru"], msk))
    assert format_datetime(at, "medium", tzinfo=msk, locale="ru") in ru and "22:30:05" in ru
    assert 'datetime="2026-11-29T19:30:05Z"' in ru and 'title="Europe/Moscow"' in ru
    en = str(format_when(at.timestamp(), LANGUAGES.by_code["en"], UTC))
    assert "Nov 29, 2026" in en and "7:30:05" in en
    assert str(format_when(None, LANGUAGES.by_code["en"], UTC)) == "—"
    assert "22:30:05" in str(format_when("2026-11-29T19:30:05+00:00", LANGUAGES.by_code["ru"], msk))


# -- rendered pages ----------------------------------------------------------------------------------------------
#: words that are the same in every language
SAME_EVERYWHERE = {"metrosight", "API", "MiB", "UTC"}
_LATIN = re.compile(r"[A-Za-z]{2,}")
_ZONE = re.compile(r"\b[A-Z][A-Za-z_]+(/[A-Za-z_+\-0-9]+)+")  # an IANA zone name (Europe/Moscow) is an id


class _Visible(HTMLParser):
    """Text a reader sees (and alt/placeholder texts), outside elements marked translate="no", <code>, scripts
    and styles."""

    SKIP = {"script", "style", "code", "pre"}
    VOID = {"br", "img", "input", "meta", "link", "hr", "source", "wbr", "col", "area", "base", "embed", "track"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []  # per open element: is its text excluded
        self.marked: list[bool] = []  # per open element: is it inside translate="no"
        self.texts: list[str] = []
        self.data: list[str] = []  # the texts inside translate="no": names, ids

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        skip = (self.stack[-1] if self.stack else False) or tag in self.SKIP or a.get("translate") == "no"
        if not skip:
            self.texts += [v for k, v in attrs if k in ("alt", "placeholder", "aria-label") and v]
        if tag not in self.VOID:
            self.stack.append(skip)
            self.marked.append((self.marked[-1] if self.marked else False) or a.get("translate") == "no")

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()
            self.marked.pop()

    def handle_data(self, data: str) -> None:
        if self.marked and self.marked[-1] and data.strip():
            self.data.append(data.strip())
        elif not (self.stack and self.stack[-1]) and data.strip():
            self.texts.append(data.strip())


def english_left(html: str) -> list[str]:
    """The visible texts of a page that hold a Latin word (names and ids excepted: they sit in translate="no")."""
    p = _Visible()
    p.feed(html)
    data = sorted(set(p.data), key=len, reverse=True)
    left = []
    for text in p.texts:
        shown = text
        for d in data:  # an id inside an alt text ("snapshot of cam-1") is data too
            shown = shown.replace(d, " ")
        if any(w not in SAME_EVERYWHERE for w in _LATIN.findall(_ZONE.sub("", shown))):
            left.append(text)
    return left


def _sign_in(api: Api, user: str, lang: str = "ru-RU,ru;q=0.9,en;q=0.5") -> None:
    api.client.headers["Accept-Language"] = lang
    res = api.client.post("/login", data={"username": user, "password": PASSWORD}, follow_redirects=False)
    assert res.status_code == 303


def test_the_russian_pages_show_no_english(api: Api):
    make_watchlist(api)
    assert enrol(api, "ada").status_code == 201
    raise_alert(api)
    api.rt.store.events.save("e1", "cam-1", "loitering", 3.0, None, 5, {"zone": "platform", "duration_s": 67.0})
    api.client.headers["Accept-Language"] = "ru"
    res = api.client.post("/login", data={"username": "ada", "password": "wrong"})
    assert res.status_code == 401 and "неверное имя пользователя или пароль" in res.text
    assert not english_left(res.text), english_left(res.text)
    _sign_in(api, "ada")
    for page in ("/", "/cameras", "/watchlists", "/events", "/audit", "/users", "/account", "/account/totp"):
        res = api.client.get(page)
        assert res.status_code == 200 and '<html lang="ru"' in res.text, page
        assert not english_left(res.text), (page, english_left(res.text))
    events = api.client.get("/events").text
    assert "долгое пребывание" in events and "продолжается" in events
    # the same check finds English where it is left
    assert english_left('<p>Камеры <b translate="no">cam-1</b></p><p>Live alerts</p>') == ["Live alerts"]
    res = api.client.get("/auth/oidc/login")  # single sign-on not configured: its error page, in Russian too
    assert res.status_code == 404 and "Вход не выполнен" in res.text and not english_left(res.text)
    _sign_in(api, "vic")  # a viewer on the audit page: the "not allowed" page
    res = api.client.get("/audit")
    assert res.status_code == 403 and "Доступ запрещён" in res.text and not english_left(res.text)


def test_english_is_the_default_and_a_user_setting_wins(api: Api):
    _sign_in(api, "carol", "fr-FR, de;q=0.8")
    res = api.client.get("/cameras")
    assert '<html lang="en"' in res.text and "Cameras" in res.text
    csrf = api.client.cookies.get("metrosight_session") and re.search(r'name="csrf" value="([^"]+)"', res.text)
    assert csrf
    res = api.client.post(
        "/account/preferences", data={"language": "ru", "timezone": "Europe/Moscow", "csrf": csrf.group(1)}
    )
    assert res.status_code == 200 and "Сохранено." in res.text
    res = api.client.get("/cameras")  # the browser still asks for French: the setting wins
    assert '<html lang="ru" data-tz="Europe/Moscow"' in res.text and "Камеры" in res.text
    assert api.rt.store.preferences.get("carol") is not None
    entry = [e for e in api.rt.store.audit.entries() if e.action == "user.preferences"][-1]
    assert entry.actor == "carol" and "Europe/Moscow" in entry.details
    # an unknown zone or language is refused with a clear line, and nothing is changed
    for form, error in (({"timezone": "Mars/Olympus"}, "Mars/Olympus"), ({"language": "xx"}, "xx")):
        res = api.client.post("/account/preferences", data={"csrf": csrf.group(1), **form})
        assert res.status_code == 422 and error in res.text and 'id="prefs-error"' in res.text
    prefs = api.rt.store.preferences.get("carol")
    assert prefs is not None and (prefs.language, prefs.timezone) == ("ru", "Europe/Moscow")
    # without the form's token nothing is changed
    res = api.client.post("/account/preferences", data={"language": "en"})
    assert res.status_code == 403 and api.rt.store.preferences.get("carol") == prefs
    # back to the browser's language and the installation's zone
    res = api.client.post("/account/preferences", data={"language": "", "timezone": "", "csrf": csrf.group(1)})
    assert res.status_code == 200 and '<html lang="en" data-tz="UTC"' in res.text


def test_the_scripts_get_the_catalogue_of_the_page_language(api: Api):
    res = api.client.get("/i18n/ru.js")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/javascript")
    assert res.text.startswith('"use strict";\nwindow.METROSIGHT_I18N = ') and '"Подтвердить"' in res.text
    assert api.client.get("/i18n/en.js").status_code == 200
    assert api.client.get("/i18n/xx.js").status_code == 404
    _sign_in(api, "carol")
    page = api.client.get("/").text
    assert page.index('src="/i18n/ru.js"') < page.index('src="/static/app.js"') < page.index('src="/static/alerts.js"')


def test_catalogue_files_are_packed_and_no_compiled_catalogue_is_committed():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"web/locale/*/LC_MESSAGES/*.po"' in pyproject
    assert not list((WEB / "locale").rglob("*.mo"))
    assert RU_PO.exists()


def test_the_account_password_form_answers_in_the_page_language(api: Api):
    """The page's own form (its hidden csrf field, no X-CSRF-Token header) is accepted, and its errors are shown in
    the user's language."""
    _sign_in(api, "carol")
    page = api.client.get("/account").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    form = {"current": PASSWORD, "password": "copper meadow thistle", "again": "copper meadow thistlf"}
    res = api.client.post("/account", data={**form, "csrf": csrf.group(1)})
    assert res.status_code == 422 and "два новых пароля не совпадают" in res.text
    res = api.client.post("/account", data={**form, "again": form["password"], "csrf": "forged"})
    assert res.status_code == 403 and "срок действия формы истёк" in res.text
    res = api.client.post(
        "/account", data={**form, "again": form["password"], "csrf": csrf.group(1)}, follow_redirects=False
    )
    assert res.status_code == 303 and res.headers["location"] == "/login?changed=1"
    assert "Пароль изменён" in api.client.get("/login?changed=1").text


def test_a_translation_that_cannot_be_filled_in_shows_the_english(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A catalogue edited by hand with a wrong placeholder or a stray % must not break a page (a KeyError or
    ValueError when the page fills it in): that message shows in English, with a warning; the others translate."""
    po = tmp_path / "locale" / "ru" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n'
        '"Plural-Forms: nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20)'
        ' ? 1 : 2);\\n"\n\n'
        '#, python-format\nmsgid "alert #%(id)s"\nmsgstr "тревога № %(num)s"\n\n'
        '#, python-format\nmsgid "in %(days)s days"\nmsgstr "через %(days)s сут. (100%)"\n\n'
        'msgid "face {number}"\nmsgstr "лицо {n}"\n\n'
        'msgid "Cameras"\nmsgstr "Камеры"\n',
        encoding="utf-8",
    )
    ru = Languages.load(tmp_path).by_code["ru"]
    assert ru.gettext("Cameras") == "Камеры"
    assert ru.gettext("alert #%(id)s") % {"id": 7} == "alert #7"
    assert ru.gettext("in %(days)s days") % {"days": 3} == "in 3 days"
    assert "face {number}" not in ru.messages and ru.messages["Cameras"] == "Камеры"
    assert sum("cannot be filled in" in r.getMessage() for r in caplog.records) == 3
