"""Names people type and identifiers machines use: one set of rules for every entry point (CLI, API, config).

Human names (watchlist entries, watchlists, users) are **normalised** before they are stored or looked up:
Unicode NFC (macOS writes file names in NFD: ``José`` as ``Jose`` + a combining accent), leading and trailing
whitespace removed, runs of whitespace made one space. Two names are **look-alikes** when they differ but have the
same :func:`name_keys`: the same look up to case, compatibility forms (NFKC: full-width, ligatures) and
confusable characters of other scripts (Unicode UTS #39 skeleton: Cyrillic ``а`` and Latin ``a``, ``0`` and
``O``, ``l``, ``I`` and ``1``). A new name that looks like an existing one is refused, naming the existing one.

Camera ids (and metro line names, which scope entries and windows like camera ids) are **identifiers**: 1–64
characters, letters of any script, digits, spaces and ``- _ . :``; not starting with ``.``; no ``/``, ``\\``,
``,`` (it separates lists), control characters or other symbols. They are NFC-normalised and trimmed too. No file
name is ever built from one: see :func:`file_token`.

Pure functions; :class:`InvalidInput` (a ``ValueError``) carries a one-line message for the user.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

HUMAN_NAME_MAX = 128
IDENTIFIER_MAX = 64
IDENTIFIER_PUNCT = "-_.:"
IDENTIFIER_RULE = (
    f"1–{IDENTIFIER_MAX} letters, digits, spaces and {' '.join(IDENTIFIER_PUNCT)}, not starting with '.' "
    "(e.g. red-platform-1)"
)
_SPACES = re.compile(r"\s+")


class InvalidInput(ValueError):
    """A name, identifier, date or duration cannot be used; the message says why and what to do."""


def _show(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _bad_char(ch: str) -> str:
    if ch == "\x00":
        return "a NUL character"
    if unicodedata.category(ch).startswith("C") or _invisible(ch):
        return f"a control or invisible character (U+{ord(ch):04X})"
    return repr(ch)


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): drawn as nothing, whatever their general
# category (format characters, but also the combining grapheme joiner, variation selectors and the Hangul fillers,
# which are marks or letters), plus the blank Braille pattern, drawn as a space without being one.
_INVISIBLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_ZWNJ, _ZWJ = "\u200c", "\u200d"
# Scripts whose spelling uses the zero-width (non-)joiner between letters: Arabic (Persian ``علی‌زاده``), Syriac,
# N'Ko, Mongolian and the Brahmic scripts of India and Sri Lanka (after a virama, or between letters).
_JOINING = ((0x0600, 0x08FF), (0x0900, 0x0DFF), (0x1800, 0x18AF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))
MAX_MARKS = 4  # UTS #39 §5.4: more non-spacing marks on one letter only stack into a blot that hides the letter


def _invisible(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _INVISIBLE) or unicodedata.category(ch) in (
        "Cc",
        "Cf",
        "Cs",
        "Co",
        "Cn",
        "Zl",
        "Zp",
    )


def _joiner_allowed(text: str, i: int) -> bool:
    """A ZWNJ/ZWJ at ``text[i]`` that is part of a word's spelling: after a letter or mark of a script that uses
    it (or after a virama) and before a letter or mark."""
    if i == 0 or i + 1 >= len(text):
        return False
    before, after = text[i - 1], text[i + 1]
    if unicodedata.category(after)[0] not in "LM" or unicodedata.category(before)[0] not in "LM":
        return False
    return unicodedata.combining(before) == 9 or any(lo <= ord(before) <= hi for lo, hi in _JOINING)


def _check_chars(text: str, joiners: bool) -> str | None:
    """Why ``text`` cannot be shown as what it is (an invisible character, a mark with no letter, a stack of
    marks), else None."""
    if unicodedata.category(text[0])[0] == "M":
        return f"starts with a combining mark (U+{ord(text[0]):04X}) that has no letter to sit on"
    run, last = 0, ""
    for i, ch in enumerate(text):
        if _invisible(ch) and not (joiners and ch in (_ZWNJ, _ZWJ) and _joiner_allowed(text, i)):
            return f"contains {_bad_char(ch)}"
        if unicodedata.category(ch) in ("Mn", "Me"):
            run += 1
            if run > MAX_MARKS:
                return f"stacks more than {MAX_MARKS} combining marks on one letter"
            if ch == last:
                return f"repeats the combining mark U+{ord(ch):04X} on one letter"
        else:
            run = 0
        last = ch
    return None


def human_name(text: str, what: str = "name", max_len: int = HUMAN_NAME_MAX) -> str:
    """The stored form of a name a person typed or a folder carried: NFC, trimmed, inner whitespace one space.

    Raises:
        InvalidInput: empty, longer than ``max_len`` characters, or containing ``/``, ``\\`` or a control or
        invisible character (format characters such as zero-width spaces, variation selectors, Hangul fillers:
        they hide look-alikes), a combining mark with no letter before it, or more than :data:`MAX_MARKS` marks
        on one letter. A zero-width (non-)joiner is accepted inside a word of a script whose spelling uses it
        (Persian ``علی‌زاده``, Devanagari); it is ignored when names are compared for look-alikes.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"{what}: expected text")
    name = _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if not name:
        raise InvalidInput(f"{what} is empty")
    if len(name) > max_len:
        raise InvalidInput(f"{what} {_show(name)} is longer than {max_len} characters")
    for ch in name:
        if ch in "/\\":
            raise InvalidInput(f"{what} {_show(name)} contains {_bad_char(ch)}; use letters, digits and punctuation")
    if (why := _check_chars(name, joiners=True)) is not None:
        raise InvalidInput(f"{what} {_show(name)} {why}; use letters, digits and punctuation")
    return name


FREE_TEXT_MAX = 2000


def free_text(text: str, what: str, max_len: int = FREE_TEXT_MAX) -> str:
    """A line of free text an approver or a reviewer will read (a legal basis, an authority, a reference, a
    reason): NFC, trimmed, whitespace runs made one space; empty is allowed (the caller decides if it is needed).

    Raises:
        InvalidInput: longer than ``max_len`` characters, or containing a control character or a bidirectional
        control (``U+202E`` shows ``210 .tra`` as ``art. 012`` to whoever approves) or another invisible one.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"{what}: expected text")
    line = _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if len(line) > max_len:
        raise InvalidInput(f"{what} is longer than {max_len} characters")
    for i, ch in enumerate(line):
        if _invisible(ch) and not (ch in (_ZWNJ, _ZWJ) and _joiner_allowed(line, i)):
            raise InvalidInput(f"{what} {_show(line)} contains {_bad_char(ch)}; write it as plain text")
    return line


def identifier(text: str, what: str = "camera id") -> str:
    """A camera id or line name in its stored form (NFC, trimmed, inner whitespace one space).

    Raises:
        InvalidInput: it breaks the rule in :data:`IDENTIFIER_RULE`; the message names the offending character.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"{what}: expected text")
    ident = _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if not ident:
        raise InvalidInput(f"{what} is empty; {what}s are {IDENTIFIER_RULE}")
    if len(ident) > IDENTIFIER_MAX:
        raise InvalidInput(f"{what} {_show(ident)} is longer than {IDENTIFIER_MAX} characters")
    if ident.startswith("."):
        raise InvalidInput(f"{what} {_show(ident)} starts with '.'; {what}s are {IDENTIFIER_RULE}")
    for ch in ident:
        if (ch == " " or ch in IDENTIFIER_PUNCT or unicodedata.category(ch)[0] in "LMN") and not _invisible(ch):
            continue
        raise InvalidInput(f"{what} {_show(ident)} contains {_bad_char(ch)}; {what}s are {IDENTIFIER_RULE}")
    if (why := _check_chars(ident, joiners=False)) is not None:
        raise InvalidInput(f"{what} {_show(ident)} {why}; {what}s are {IDENTIFIER_RULE}")
    return ident


def identifiers(text: str | Iterable[str] | None, what: str = "camera id") -> tuple[str, ...]:
    """A comma-separated list (or an iterable) of identifiers, each checked by :func:`identifier`; empty items are
    skipped and repeats dropped (order kept)."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        ident = identifier(item, what)
        if ident not in out:
            out.append(ident)
    return tuple(out)


def same_identifier(a: str, b: str) -> bool:
    """Whether two camera ids (or line names) name the same camera: equal, or look-alikes (:func:`looks_alike`:
    the same up to case, compatibility forms and look-alike letters). A configuration never holds two cameras
    that look alike (:func:`distinct_identifiers`), so a scope or a ``--camera`` typed as ``CAM-1`` means the
    camera ``cam-1``."""
    return a == b or looks_alike(a, b)


def distinct_identifiers(idents: Iterable[str], what: str = "camera id") -> None:
    """Refuse a list of ids (e.g. the cameras of one configuration) in which two are the same or look alike.

    Raises:
        InvalidInput: naming the first such pair.
    """
    seen: list[str] = []
    for ident in idents:
        other = next((o for o in seen if same_identifier(o, ident)), None)
        if other is not None:
            if other == ident:
                raise InvalidInput(f"{what}s must be unique; {ident!r} is repeated")
            raise InvalidInput(
                f"{what}s {other!r} and {ident!r} look alike (the same up to case, Unicode form or look-alike "
                f"letters); give them {what}s that cannot be mistaken for each other"
            )
        seen.append(ident)


@lru_cache(maxsize=1)
def _prototypes() -> dict[str, str]:
    """Each confusable character → one representative of its class (UTS #39 confusables, from the PyPI package
    confusable-homoglyphs: a symmetric graph of source ↔ prototype links; its connected components over
    single characters are UTS #39's classes). Representative: the smallest ASCII member, else the smallest."""
    from confusable_homoglyphs.confusables import confusables_data  # lazy: heavy, loaded on first use

    parent: dict[str, str] = {}

    def find(c: str) -> str:
        parent.setdefault(c, c)
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    def rank(c: str) -> tuple[bool, str]:
        return (not c.isascii(), c)

    multi: dict[str, str] = {}
    for src, glyphs in confusables_data.items():
        src = src.strip("\u200e\u200f")
        for g in glyphs:
            tgt = g["c"].strip("\u200e\u200f")
            if len(src) == 1 and len(tgt) == 1:
                a, b = find(src), find(tgt)
                if a != b:
                    lo, hi = sorted((a, b), key=rank)
                    parent[hi] = lo
            elif len(src) == 1 and tgt:
                multi[src] = min(multi.get(src, tgt), tgt)
    table = {c: find(c) for c in parent}
    for c, tgt in multi.items():
        table.setdefault(c, tgt)  # a character whose only look-alike is a sequence (e.g. a ligature)
    return {c: r for c, r in table.items() if c != r}


def _skeleton(text: str) -> str:
    table = _prototypes()
    skel = "".join(table.get(ch, ch) for ch in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", skel)


@lru_cache(maxsize=65536)  # a new name is compared with every name of its list: keep the keys of known names
def name_keys(text: str) -> tuple[str, str]:
    """The look-alike keys of a name (whitespace collapsed, NFKC): its UTS #39 skeleton (each character replaced
    by its confusables class representative, in NFD), and the skeleton of its case-folded form. Two names whose
    first or second keys are equal can be mistaken for each other: ``Ivan``/``lvan`` (capital I, small L) by the
    first, ``ALICE``/``alice`` and Cyrillic ``Аlice``/Latin ``alice`` by the second."""
    shown = "".join(ch for ch in _SPACES.sub(" ", text) if not _invisible(ch))  # drawn as nothing: no look
    nfkc = _SPACES.sub(" ", unicodedata.normalize("NFKC", shown)).strip()
    return _skeleton(nfkc), _skeleton(nfkc.casefold())


def looks_alike(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` can be mistaken for each other (see :func:`name_keys`); same names included."""
    ka, kb = name_keys(a), name_keys(b)
    return ka[0] == kb[0] or ka[1] == kb[1]


def same_name(a: str, b: str) -> bool:
    """Whether two names are the same once normalised (NFC, trimmed, whitespace collapsed): e.g. an NFD folder
    name and the same name typed."""
    return (
        _SPACES.sub(" ", unicodedata.normalize("NFC", a)).strip()
        == _SPACES.sub(" ", unicodedata.normalize("NFC", b)).strip()
    )


def find_lookalike(name: str, existing: Iterable[str]) -> str | None:
    """The first of ``existing`` that is a look-alike of ``name`` without being the same name, else None."""
    ka = name_keys(name)
    for other in existing:
        if same_name(other, name):
            continue
        kb = name_keys(other)
        if ka[0] == kb[0] or ka[1] == kb[1]:
            return other
    return None


def file_token(*parts: str, length: int = 32) -> str:
    """A file-name-safe token derived from ``parts`` (hex SHA-256): file and folder names come from this, never
    from a camera id, a name or any other text a user or a camera supplied."""
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return h[:length]
