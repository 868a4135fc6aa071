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
    if unicodedata.category(ch).startswith("C"):
        return f"a control or invisible character (U+{ord(ch):04X})"
    return repr(ch)


def human_name(text: str, what: str = "name", max_len: int = HUMAN_NAME_MAX) -> str:
    """The stored form of a name a person typed or a folder carried: NFC, trimmed, inner whitespace one space.

    Raises:
        InvalidInput: empty, longer than ``max_len`` characters, or containing ``/``, ``\\`` or a control or
        invisible character (format characters such as zero-width spaces hide look-alikes).
    """
    if not isinstance(text, str):
        raise InvalidInput(f"{what}: expected text")
    name = _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if not name:
        raise InvalidInput(f"{what} is empty")
    if len(name) > max_len:
        raise InvalidInput(f"{what} {_show(name)} is longer than {max_len} characters")
    for ch in name:
        if ch in "/\\" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise InvalidInput(f"{what} {_show(name)} contains {_bad_char(ch)}; use letters, digits and punctuation")
    return name


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
        if ch == " " or ch in IDENTIFIER_PUNCT or unicodedata.category(ch)[0] in "LMN":
            continue
        raise InvalidInput(f"{what} {_show(ident)} contains {_bad_char(ch)}; {what}s are {IDENTIFIER_RULE}")
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


@lru_cache(maxsize=1)
def _prototypes() -> dict[str, str]:
    """Each confusable character → one representative of its class (UTS #39 confusables, from the PyPI package
    confusable-homoglyphs: a symmetric graph of source ↔ prototype links; its connected components over
    single characters are UTS #39's classes). Representative: the smallest ASCII member, else the smallest."""
    from confusable_homoglyphs.confusables import confusables_data

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
    nfkc = _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()
    return _skeleton(nfkc), _skeleton(nfkc.casefold())


def looks_alike(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` can be mistaken for each other (see :func:`name_keys`); same names included."""
    ka, kb = name_keys(a), name_keys(b)
    return ka[0] == kb[0] or ka[1] == kb[1]


def same_name(a: str, b: str) -> bool:
    """Whether two names are the same once normalised (NFC, trimmed, whitespace collapsed): e.g. an NFD folder
    name and the same name typed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", a)).strip() == _SPACES.sub(
        " ", unicodedata.normalize("NFC", b)
    ).strip()


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
