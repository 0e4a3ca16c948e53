"""Text that data and users supply, made safe to print or render."""

from __future__ import annotations

import re

#: Bidi override/embedding (U+202A..U+202E) and isolate (U+2066..U+2069) controls.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def show_controls(text: str) -> str:
    """Bidi controls as visible ``\\u202e``-style text, so that a value taken from data
    cannot reorder the line, log or view around it."""
    return _BIDI_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
