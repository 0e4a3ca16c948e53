"""HTML building blocks below both the views and the version report: escaping, number
formats, colours, and tables.

Markup is plain HTML with inline ``style`` attributes only. That is what survives
JupyterLab's sanitizer in an untrusted notebook (the output of papermill): it removes
``<script>``, ``<style>``, ``<svg>``, ``id``, ``name`` and ``data-*`` attributes,
disables form inputs, and keeps only whitelisted CSS properties (no custom properties,
no ``var()``, no ``currentColor``, no ``position: sticky``). The same markup reads in a
static page with scripts off. :mod:`toolkit.visualize.html` builds views from these;
:mod:`toolkit.model_report`, which the Pusher imports and so may not import a view,
builds the version report's page from them too.
"""
from __future__ import annotations

import html as _html
import math
from typing import Any, Iterable

from toolkit._text import show_controls

#: Colours of datasets (splits) drawn side by side; mid-tones that read on light
#: and dark notebook themes alike, as do the colours below.
PALETTE = ("#4c8bf5", "#f29d38", "#34a853", "#a142f4", "#e8453c", "#12b5cb")
#: the one grey of secondary text (notes, units, empty cells), in views and the report
MUTED = "#8a8f98"
GRID = "rgba(128,128,128,0.35)"
SHADE = "rgba(128,128,128,0.12)"
GOOD = "#2e7d32"
BAD = "#c62828"
WARN = "#b26a00"


def escape(value: Any) -> str:
    """HTML-escape ``value`` for text and attribute contexts (quotes included).

    Unicode bidi overrides and isolates are replaced by their visible escape
    sequence (for example ``\\u202e``) so a hostile value cannot visually reorder
    the text around it.
    """
    text = _html.escape(value if isinstance(value, str) else str(value), quote=True)
    return show_controls(text)


def truncate(text: Any, n: int = 200) -> str:
    """Shorten very long values: the first ``n`` characters plus the full length."""
    text = text if isinstance(text, str) else str(text)
    if len(text) <= n:
        return text
    return f"{text[:n]}… ({len(text):,} chars)"


def esc(value: Any, n: int = 200) -> str:
    """Truncate then escape: the form every data value takes inside a view."""
    return escape(truncate(value, n))


def plain(value: Any, n: int = 200) -> str:
    """Truncate and neutralise bidi controls: the form data takes in ``text/plain``."""
    return show_controls(truncate(value, n))


def fmt_num(value: float | int | None) -> str:
    """A number as a person reads it in a table: grouped integers, 4 significant digits."""
    if value is None:
        return "–"
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    magnitude = abs(x)
    if magnitude >= 1e5:
        return f"{x:,.0f}"
    if magnitude >= 1000:
        return f"{x:,.1f}"
    if magnitude >= 0.001:
        return f"{x:.4g}"
    return f"{x:.3g}"


def fmt_pct(fraction: float | None, digits: int = 1) -> str:
    if fraction is None or math.isnan(fraction):
        return "–"
    pct = 100.0 * fraction
    if 0 < pct < 10 ** -digits:
        return f"<{10 ** -digits:g}%"
    return f"{pct:.{digits}f}%"


def fmt_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def tag(name: str, body: str = "", style: str = "", title: str | None = None,
        **attrs: Any) -> str:
    """One element. ``body`` is trusted markup; ``title`` and attribute values are escaped."""
    parts = [name]
    if style:
        parts.append(f'style="{style}"')
    if title:
        parts.append(f'title="{esc(title, 1000)}"')
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        parts.append(key if value is True else f'{key}="{escape(value)}"')
    return f"<{' '.join(parts)}>{body}</{name}>"


#: Tables rely on presentational attributes (cellpadding) and inherited alignment
#: so that hundreds of cells need no style of their own. JupyterLab's stylesheet
#: right-aligns and pads every cell; text cells override the alignment inline.
TABLE_ATTRS = 'cellpadding="4" cellspacing="0"'
TABLE = "border-collapse:collapse;margin:4px 0 10px 0;text-align:right"
TH = f"border-bottom:1px solid {GRID};font-weight:600;white-space:nowrap;vertical-align:bottom"
TH_LEFT = TH + ";text-align:left"
TH_RIGHT = TH + ";text-align:right"
TD = "text-align:left"
ROW = f"border-bottom:1px solid {SHADE}"
HEADING = "font-weight:600;font-size:1.05em;margin:10px 0 2px 0"
NOTE = f"color:{MUTED};font-size:0.9em"


def table(headers: Iterable[str], rows: Iterable[Iterable[str]],
          numeric: Iterable[int] = (), nowrap: bool = False, top: bool = False,
          style: str = TABLE) -> str:
    """A simple table; ``rows`` hold ready markup, columns in ``numeric`` align right.

    ``headers`` are escaped here; when none has text there is no header row.
    ``nowrap`` keeps text cells on one line, ``top`` aligns them to the top of their row
    (cells of several lines); ``style`` replaces the table's own style.
    """
    headers, right = list(headers), set(numeric)
    left = TD + (";white-space:nowrap" if nowrap else "") + (";vertical-align:top" if top else "")
    head = "".join(tag("th", escape(h), TH_RIGHT if i in right else TH_LEFT)
                   for i, h in enumerate(headers))
    body = "".join(
        f'<tr style="{ROW}">' + "".join(
            f"<td>{cell}</td>" if i in right else f'<td style="{left}">{cell}</td>'
            for i, cell in enumerate(row)) + "</tr>"
        for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    return f'<table {TABLE_ATTRS} style="{style}">{thead}<tbody>{body}</tbody></table>'


def badge(text: str, colour: str) -> str:
    return tag("span", escape(text),
               f"display:inline-block;padding:0 6px;border-radius:8px;border:1px solid {colour};"
               f"color:{colour};font-size:0.85em;line-height:1.5;white-space:nowrap")


def swatch(colour: str) -> str:
    return (f'<span style="display:inline-block;width:9px;height:9px;border-radius:2px;'
            f'background:{colour};margin-right:4px;vertical-align:baseline"></span>')
