"""Text that data and users supply, made safe to print or render."""

from __future__ import annotations

import re
import unicodedata

#: Bidi override/embedding (U+202A..U+202E) and isolate (U+2066..U+2069) controls.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def show_controls(text: str) -> str:
    """Bidi controls as visible ``\\u202e``-style text, so that a value taken from data
    cannot reorder the line, log or view around it."""
    return _BIDI_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str) -> str:
    """``text`` with control, line- and paragraph-separator characters turned into spaces,
    so that it prints as one line."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


def squeeze(text: str) -> str:
    """``text`` as one line with every run of whitespace or unprintable characters made
    one space (for messages that quote multi-line errors)."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(printable.split())


def first_line(text: str | None, limit: int | None = None) -> str:
    """The first non-blank line of ``text``, stripped (cut to ``limit`` characters)."""
    for line in (text or "").splitlines():
        if line.strip():
            line = line.strip()
            return shorten(line, limit) if limit else line
    return ""


def error_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception as one line: its first line, or its type's name when it has none."""
    return first_line(str(exc), limit) or type(exc).__name__
