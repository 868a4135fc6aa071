"""The operator UI's languages: gettext catalogues (Babel), the language of a request, dates in the reader's zone.

The catalogues are the ``.po`` files under ``metrosight/web/locale/<code>/LC_MESSAGES/messages.po``; they are read
and compiled in memory when the app starts (no compiled ``.mo`` is kept in the repository or the wheel). English is
the source language (the message ids), so it has no catalogue. Templates translate through Jinja2's i18n extension
(``{{ _("...") }}``, ``{% trans %}``), scripts through ``t("...")`` / ``tn(...)`` of ``/static/i18n.js``, which read the
whole catalogue of the page's language from ``/i18n/<code>.js`` (:meth:`Language.script`).

A page's language is the user's own setting, else the first supported language of the browser's
``Accept-Language``, else English (:func:`negotiate`). Its dates and times are shown in the user's zone, else the
installation's (``deployment.timezone``), else UTC, in the language's own format (:func:`format_when`).
"""

from __future__ import annotations

import gettext
import io
import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Final

from babel import Locale
from babel.core import negotiate_locale
from babel.dates import format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from markupsafe import Markup, escape

#: the source language: the message ids are English
SOURCE: Final = "en"
#: the language names shown in the language choice, in their own language
NATIVE_NAMES: Final = {"en": "English", "ru": "Русский"}
#: the placeholders of a message: %(name)s (templates, Python) and {name} (scripts)
_PLACEHOLDER: Final = re.compile(r"%\(\w+\)[sd]|\{\w+\}")
log = logging.getLogger(__name__)
#: a plural category of CLDR -> sample numbers searched for its gettext form
_SAMPLES: Final = (*range(0, 200), 0.5, 1.5, 2.5)


@dataclass(frozen=True)
class Text:
    """A message of Python code shown on a page, translated when the page renders (the ``tr`` filter):
    ``N_("in %(n)s s", n=5)``. ``msgid`` is the English text with ``%(name)s`` placeholders."""

    msgid: str
    values: Mapping[str, object] = field(default_factory=dict)


def N_(msgid: str, **values: object) -> Text:  # noqa: N802 (gettext's name for a message marked for extraction)
    """Mark ``msgid`` for Babel's extraction (keyword ``N_``); the page translates it (:func:`translate`)."""
    return Text(msgid, values)


def translate(language: Language, text: Text | str | None) -> Markup:
    """``text`` in ``language``, as HTML: a :class:`Text` through the catalogue with its values filled in, each
    escaped and marked ``translate="no"`` (data: names, ids, settings); a plain string (an error of the service)
    through the catalogue when it holds it, else unchanged (escaped)."""
    if text is None:
        return Markup("")
    if isinstance(text, str):
        return escape(language.gettext(text) if text else text)
    values = {k: Markup('<span translate="no">{}</span>').format(v) for k, v in text.values.items()}
    translated = language.gettext(text.msgid)
    try:
        return escape(translated) % values if values else escape(translated)
    except (KeyError, ValueError, TypeError):  # a translation with other placeholders: the English
        return escape(text.msgid) % values if values else escape(text.msgid)


def catalogue_dir(web: Path) -> Path:
    """The folder of the catalogues: ``<web>/locale``."""
    return web / "locale"


@dataclass(frozen=True)
class Language:
    """One language of the UI.

    Attributes:
        code: ``en``, ``ru``, … (a Babel locale identifier).
        translations: gettext's translations (a NullTranslations for English).
        messages: message id (``context\x04id`` with a context) -> translation (str), or plural forms keyed by CLDR
            category (dict), for scripts.
    """

    code: str
    translations: gettext.NullTranslations
    messages: Mapping[str, str | Mapping[str, str]] = field(default_factory=dict)

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.code)

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def script(self) -> str:
        """The catalogue as a script for ``/static/i18n.js``: ``window.METROSIGHT_I18N = {...};``."""
        payload = {"lang": self.code, "messages": self.messages}
        text = json.dumps(payload, ensure_ascii=False, sort_keys=True).replace("</", "<\\/")
        return f'"use strict";\nwindow.METROSIGHT_I18N = {text};\n'


def placeholders(text: str) -> frozenset[str]:
    """The placeholders of a message: ``%(name)s`` of templates and Python code, ``{name}`` of scripts."""
    return frozenset(_PLACEHOLDER.findall(text))


def _fills(text: str, python_format: bool) -> bool:
    """Whether ``text`` can be filled in: its placeholders are all known to Python's ``%`` (no stray ``%``)."""
    if not python_format:
        return True
    try:
        text % defaultdict(int)  # noqa: B018 (tried for its error)
    except (ValueError, TypeError):
        return False
    return True


def _drop_mismatched(catalogue: Catalog, path: Path) -> None:
    """Empty every translation that names a placeholder the English has not, or cannot be filled in (a stray
    ``%``): filling it in would fail or show a wrong value. The English text shows instead, and a warning names the
    message."""
    for m in catalogue:
        if not m.id or not m.string:
            continue
        ids = [m.id] if isinstance(m.id, str) else list(m.id)
        forms = [str(f or "") for f in ([m.string] if isinstance(m.string, str) else list(m.string))]
        wanted = placeholders(" ".join(ids))
        python_format = "python-format" in m.flags or any("%(" in i for i in ids)
        if any(placeholders(f) - wanted or not _fills(f, python_format) for f in forms):
            log.warning("%s: the translation of %r cannot be filled in as the English; English is shown", path, ids[0])
            m.string = "" if isinstance(m.string, str) else tuple("" for _ in forms)


def load_language(path: Path, code: str) -> Language:
    """The language of the catalogue at ``path`` (a ``.po`` file). Fuzzy and empty translations, and those whose
    placeholders differ from the English, are left out (the English text shows). Raises ValueError for a catalogue
    Babel cannot read."""
    with path.open("rb") as f:
        catalogue = read_po(f, locale=code)
    _drop_mismatched(catalogue, path)
    buf = io.BytesIO()
    write_mo(buf, catalogue)
    buf.seek(0)
    translations = gettext.GNUTranslations(buf)
    locale = Locale.parse(code)
    index = gettext.c2py(catalogue.plural_expr)
    categories: dict[str, int] = {}
    for n in _SAMPLES:
        categories.setdefault(locale.plural_form(n), index(int(n)) if float(n).is_integer() else index(2))
    messages: dict[str, str | Mapping[str, str]] = {}
    for m in catalogue:
        if not m.id or m.fuzzy:
            continue
        if isinstance(m.id, tuple | list):
            forms = [str(f or "") for f in m.string] if isinstance(m.string, tuple | list) else [str(m.string or "")]
            if all(forms):
                messages[str(m.id[0])] = {cat: forms[min(i, len(forms) - 1)] for cat, i in categories.items()}
        elif m.string:  # a message with a context is keyed "context\x04id", as gettext does (tp() of the scripts)
            messages[f"{m.context}\x04{m.id}" if m.context else str(m.id)] = str(m.string)
    return Language(code, translations, messages)


@dataclass(frozen=True)
class Languages:
    """The UI's languages: English and every catalogue found."""

    by_code: Mapping[str, Language]

    @classmethod
    def load(cls, web: Path) -> Languages:
        """English plus one language per ``<web>/locale/<code>/LC_MESSAGES/messages.po``."""
        found = {SOURCE: Language(SOURCE, gettext.NullTranslations())}
        for po in sorted(catalogue_dir(web).glob("*/LC_MESSAGES/messages.po")):
            code = po.parent.parent.name
            found[code] = load_language(po, code)
        return cls(found)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.by_code)

    def get(self, code: str | None) -> Language | None:
        return self.by_code.get(code) if code else None

    def negotiate(self, preferred: str | None, accept_language: str | None) -> Language:
        """The user's ``preferred`` language if supported, else the browser's, else English."""
        chosen = self.get(preferred) or self.get(negotiate(accept_language, self.codes))
        return chosen or self.by_code[SOURCE]


def parse_accept_language(header: str | None) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first (``q=0`` dropped; bad parts ignored)."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "")[:1024].split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            key, _, value = p.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        tag = tag.strip()
        if tag and tag != "*" and q > 0 and len(tag) <= 35:
            ranked.append((-q, i, tag.replace("_", "-")))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(accept_language: str | None, available: Iterable[str]) -> str | None:
    """The first of ``available`` the header asks for (``ru-RU`` matches ``ru``), or None."""
    codes = list(available)
    for tag in parse_accept_language(accept_language):
        found = negotiate_locale([tag], codes, sep="-") or negotiate_locale([tag.split("-")[0]], codes, sep="-")
        if found:
            return found
    return None


def format_number(value: float, digits: int, language: Language) -> str:
    """``value`` with ``digits`` decimals in the language's notation (``0,962`` in Russian), without grouping."""
    return format_decimal(value, format="0." + "0" * digits if digits > 0 else "0", locale=language.locale)


def format_when(value: datetime | float | str | None, language: Language, tz: tzinfo) -> Markup:
    """A ``<time>`` element: ``value`` (a datetime or ISO 8601 text, naive = UTC, or Unix seconds) in ``tz``, in the
    language's medium date-time format; its ``datetime`` attribute is the ISO instant and its title the zone. None,
    0, "" or unreadable text: "—"."""
    if value is None or (not isinstance(value, datetime) and not value):
        return Markup("—")
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return Markup("—")
    else:
        dt = value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), UTC)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    shown = format_datetime(dt, format="medium", tzinfo=tz, locale=language.locale)
    iso = dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
    zone = getattr(tz, "key", None) or str(tz)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, zone, shown)
