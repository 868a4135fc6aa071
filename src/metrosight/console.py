"""The terminal consoles of the command line: what users, files and cameras supplied is printed as text, never
obeyed as markup or as terminal control.

rich reads ``[red]…[/]`` and ``:emoji:`` codes in every string it prints, and passes escape sequences through to
the terminal. A name, a reason, a legal basis or a file name is text a user or a file supplied: ``bo[/]b`` stopped
the CLI with a traceback, ``[red]Ivan`` changed how an approver saw a name, and an escape sequence in a reason
(``ESC[8m`` hides text, ``ESC]52`` writes the clipboard) reached the terminal. These consoles print every string as
it is, with control characters and bidi controls shown as ``\\x1b`` / ``<U+202E>`` (:func:`visible`); styled
output is built with :class:`rich.text.Text` (see :func:`error_line`).
"""

from __future__ import annotations

import unicodedata
from typing import Any, Final

from rich.console import Console
from rich.text import Text

_BIDI: Final = frozenset({0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})


def _shown(ch: str) -> str:
    if ch in "\n\t":
        return ch
    cp = ord(ch)
    if unicodedata.category(ch) == "Cc":
        return f"\\x{cp:02x}" if cp < 0x100 else f"<U+{cp:04X}>"
    if cp in _BIDI:
        return f"<U+{cp:04X}>"
    return ch


def visible(text: str) -> str:
    """``text`` with control characters (``\\x1b``) and bidirectional controls (``<U+202E>``) written out, so
    that it cannot drive the terminal or reorder what is shown around it; other characters unchanged."""
    if text.isprintable():
        return text
    return "".join(_shown(ch) for ch in text)


class SafeConsole(Console):
    """A rich Console that prints strings as plain text (no markup, no emoji codes, controls made visible)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        kwargs.setdefault("emoji", False)
        super().__init__(**kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:  # every printed string and table cell passes here
        kwargs["markup"] = False
        kwargs["emoji"] = False
        return super().render_str(visible(text), **kwargs)


def error_line(message: str, label: str = "error:", style: str = "bold red") -> Text:
    """``error: MESSAGE`` with the label styled and the message as plain (visible) text."""
    return Text.assemble((label, style), " ", visible(message))
