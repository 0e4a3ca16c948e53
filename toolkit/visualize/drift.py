"""Drift over time: one row per feature, one inline bar per span.

Each bar is one element whose background is a hard-stop gradient: its coloured
part is the span's distance to its predecessor (red where the comparator's
threshold was crossed), the shade above it the distance to the reference span.
Per-span numbers (both distances, missing %, mean or top value) are in the bar's
tooltip and the text form. Plain HTML with inline styles only, no script and no
SVG, so it reads the same in an untrusted notebook; every value from the data
is escaped. The markup per bar is a few dozen bytes plus its tooltip, so 100
spans x 50 features stay well under a megabyte (``bench/bench_drift.py``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from toolkit.drift import JENSEN_SHANNON, DriftReport, FeatureDrift, compute_drift
from toolkit.visualize.html import (BAD, GRID, MUTED, NOTE, PALETTE, TABLE, TABLE_ATTRS, TD,
                                    TH_LEFT, TH_RIGHT, View, display_view, esc, escape, fmt_num,
                                    fmt_pct, new_uid, plain, root, tag)

BAR_HEIGHT = 22
BAR = PALETTE[0]
#: The reference distance's shade (PALETTE[1]); its alpha grows with the distance.
SHADE_RGB = "#f29d38"
MISSING_SPAN = "#8a8f9833"
SPARK = "▁▂▃▄▅▆▇█"
FLAGGED_LISTED = 6
_NAMES = {JENSEN_SHANNON: "JS divergence", "infinity_norm": "L∞ distance"}


def _slot_width(spans: int) -> int:
    return 22 if spans <= 12 else 12 if spans <= 30 else 6


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _scale(values: Sequence[float | None], threshold: float | None) -> float:
    peak = max((v for v in values if v is not None), default=0.0)
    return max(peak, threshold or 0.0) or 1.0


def _summary_value(feature: FeatureDrift, i: int) -> str:
    if feature.kind == "numeric":
        return f"mean {fmt_num(feature.mean[i])}"
    top = feature.top[i]
    return "top –" if top is None else f"top {plain(top, 40)!r}"


def _tooltip(report: DriftReport, feature: FeatureDrift, i: int) -> str:
    label = plain(report.spans[i], 40)
    if not feature.present[i]:
        return f"{label}: absent"
    parts = [f"{label}: prev {_num(feature.to_previous[i])}"]
    if i != report.reference:
        parts.append(f"ref {_num(feature.to_reference[i])}")
    parts.append(f"missing {fmt_pct(feature.missing[i])}")
    parts.append(_summary_value(feature, i))
    if feature.flagged[i]:
        parts.append("ABOVE THRESHOLD")
    return "; ".join(parts)


def _bar(report: DriftReport, feature: FeatureDrift, i: int, width: int,
         prev_scale: float, ref_scale: float) -> str:
    """One span: the bar rises from the bottom, the reference shade fills the rest."""
    title = escape(_tooltip(report, feature, i))
    if not feature.present[i]:
        return f'<i title="{title}" style="width:{width}px;background:{MISSING_SPAN}"></i>'
    d = feature.to_previous[i]
    r = feature.to_reference[i]
    height = 0 if d is None else min(100, max(round(100 * d / prev_scale), 4 if d > 0 else 0))
    alpha = 0 if r is None else min(255, round(160 * r / ref_scale))
    colour = BAD if feature.flagged[i] else BAR
    shade = f"{SHADE_RGB}{alpha:02x}" if alpha else "#0000"
    outline = f";outline:1px solid {MUTED}" if i == report.reference else ""
    return (f'<i title="{title}" style="width:{width}px;background:linear-gradient('
            f'{shade} {100 - height}%,{colour} 0){outline}"></i>')


def _strip(report: DriftReport, feature: FeatureDrift, width: int) -> str:
    prev_scale = _scale(feature.to_previous, feature.threshold)
    ref_scale = _scale(feature.to_reference, feature.threshold)
    bars = "".join(_bar(report, feature, i, width, prev_scale, ref_scale)
                   for i in range(len(report.spans)))
    return (f'<div style="display:flex;gap:1px;height:{BAR_HEIGHT}px;'
            f'border-bottom:1px solid {GRID}" title="full bar: {prev_scale:.4g}">{bars}</div>')


def _axis(report: DriftReport, width: int) -> str:
    """Span labels above the bars, one every few spans so that they fit."""
    n = len(report.spans)
    every = max(1, math.ceil(60 / (width + 1))) if n > 12 else 1
    groups = []
    for start in range(0, n, every):
        count = min(every, n - start)
        label = report.spans[start] + (" (ref)" if start == report.reference else "")
        groups.append(f'<span style="width:{count * (width + 1) - 1}px;overflow:hidden;'
                      f'white-space:nowrap;text-overflow:clip" title="{esc(label, 80)}">'
                      f'{escape(plain(report.spans[start])[:12])}</span>')
    return (f'<div style="display:flex;gap:1px;font-size:10px;color:{MUTED};'
            f'font-weight:normal;text-align:left">{"".join(groups)}</div>')


def _first_last(feature: FeatureDrift, report: DriftReport) -> str:
    """The mean (or top value) of the reference span and of the last span."""
    def one(i: int) -> str:
        if feature.kind == "numeric":
            return escape(fmt_num(feature.mean[i]))
        top = feature.top[i]
        if top is None:
            return "–"
        short = plain(top, 1000)
        return escape(short if len(short) <= 16 else short[:15] + "…")

    return f"{one(report.reference)} → {one(len(report.spans) - 1)}"


def _row(report: DriftReport, feature: FeatureDrift, width: int) -> str:
    flagged = [report.spans[i] for i, hit in enumerate(feature.flagged) if hit]
    if feature.threshold is None:
        flag_cell = f'<td style="{TD};color:{MUTED}">no threshold</td>'
    elif flagged:
        shown = ", ".join(plain(s, 20) for s in flagged[:FLAGGED_LISTED])
        more = f" +{len(flagged) - FLAGGED_LISTED}" if len(flagged) > FLAGGED_LISTED else ""
        flag_cell = (f'<td style="{TD};color:{BAD};font-weight:600;white-space:nowrap">'
                     f'{len(flagged)}: {esc(shown + more, 80)}</td>')
    else:
        flag_cell = f'<td style="{TD}">none</td>'
    present = [m for m in feature.missing if m is not None]
    missing = (f"{fmt_pct(min(present))}–{fmt_pct(max(present))}"
               if present and min(present) != max(present)
               else fmt_pct(present[0]) if present else "–")
    threshold = "–" if feature.threshold is None else f"{feature.threshold:g}"
    name = (f'<td style="{TD};font-weight:600;white-space:nowrap;max-width:22em;'
            f'overflow:hidden;text-overflow:ellipsis" title="{esc(feature.name, 500)}">'
            f'{esc(feature.name, 60)} <span style="{NOTE};font-weight:normal">'
            f'{escape(_NAMES[feature.comparator])}</span></td>')
    return (f"<tr>{name}<td>{escape(threshold)}</td>{flag_cell}"
            f'<td style="white-space:nowrap">{escape(missing)}</td>'
            f'<td style="{TD};white-space:nowrap">{_first_last(feature, report)}</td>'
            f'<td style="{TD};padding-top:2px;padding-bottom:2px">'
            f"{_strip(report, feature, width)}</td></tr>")


def _legend(report: DriftReport) -> str:
    ref = esc(report.spans[report.reference], 40)
    return tag("div", (
        f'Bar height: distance to the previous span (full bar = the row\'s largest distance or '
        f'its threshold), <span style="color:{BAD};font-weight:600">red</span> above the '
        f'threshold; orange shade above it: distance to the reference span {ref} (outlined); '
        f'grey: feature absent. Hover a bar for its numbers (prev: distance to the previous span, ref: to the reference).'), NOTE + ";margin:2px 0 4px 0")


def _text(report: DriftReport) -> str:
    n = len(report.spans)
    split = f", split {plain(report.split, 40)!r}" if report.split else ""
    flagged = report.flagged
    first, last = plain(report.spans[0], 30), plain(report.spans[-1], 30)
    lines = [(f"Drift over {n} spans ({first} … {last}{split}; reference "
              f"{plain(report.spans[report.reference], 30)}): {len(flagged)} of "
              f"{len(report.features)} features crossed their threshold")]
    for f in report.features:
        prev = f.to_previous
        scale = _scale(prev, f.threshold)
        spark = "".join(
            "·" if not f.present[i] else " " if d is None
            else SPARK[min(len(SPARK) - 1, int(d / scale * (len(SPARK) - 1) + 0.5))]
            for i, d in enumerate(prev))
        worst = max(((d, i) for i, d in enumerate(prev) if d is not None), default=None)
        worst_text = (f"max {worst[0]:.4g} at {plain(report.spans[worst[1]], 20)}"
                      if worst else "not measured")
        ref_worst = max((d for d in f.to_reference if d is not None), default=None)
        hits = [plain(report.spans[i], 20) for i, hit in enumerate(f.flagged) if hit]
        threshold = "no threshold" if f.threshold is None else f"threshold {f.threshold:g}"
        flag = (f"; FLAGGED at {', '.join(hits[:FLAGGED_LISTED])}"
                + (f" +{len(hits) - FLAGGED_LISTED}" if len(hits) > FLAGGED_LISTED else "")
                if hits else "")
        values = (f"{_summary_value(f, report.reference)} → {_summary_value(f, n - 1)}"
                  .replace(" → top ", " → ").replace(" → mean ", " → "))
        lines.append(f"  {plain(f.name, 40)} [{_NAMES[f.comparator]}, {threshold}] "
                     f"|{spark}| vs previous {worst_text}; vs reference max "
                     f"{_num(ref_worst)}; {values}{flag}")
    return "\n".join(lines)


def drift_view(report: DriftReport) -> View:
    """The drift table of a :class:`toolkit.drift.DriftReport`."""
    n = len(report.spans)
    width = _slot_width(n)
    uid = new_uid()
    headers = ["Feature", "Threshold", "Flagged spans", "Missing", "Mean / top (ref → last)"]
    head = "".join(tag("th", escape(h), TH_RIGHT if h in ("Threshold", "Missing") else TH_LEFT)
                   for h in headers)
    head += f'<th style="{TH_LEFT}">{_axis(report, width)}</th>'
    rows = "".join(_row(report, f, width) for f in report.features)
    flagged = report.flagged
    summary = (tag("div", f"{len(flagged)} of {len(report.features)} features crossed their "
                   "threshold against the previous span.",
                   f"color:{BAD};font-weight:600" if flagged else "")
               if report.features else tag("div", "No features to compare.", NOTE))
    body = (summary + _legend(report)
            + f'<table {TABLE_ATTRS} style="{TABLE}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table>")
    split = f" · split {report.split}" if report.split else ""
    subtitle = escape(f"{len(report.features)} features × {n} spans{split}")
    return View(root(body, uid, "Drift over time", subtitle), _text(report), "Drift over time")


def drift_view_of(statistics: Any, schema: Any = None, features: Sequence[str] | None = None,
                  split: str | None = None, reference: int | str = 0,
                  thresholds: Any = None, labels: Sequence[str] | None = None) -> View:
    """The view ``show_drift`` displays, without displaying it."""
    if isinstance(statistics, DriftReport):
        return drift_view(statistics)
    return drift_view(compute_drift(statistics, schema=schema, features=features, split=split,
                                    reference=reference, thresholds=thresholds, labels=labels))


def show_drift(statistics: Any, schema: Any = None, features: Sequence[str] | None = None,
               split: str | None = None, reference: int | str = 0,
               thresholds: Any = None, labels: Sequence[str] | None = None) -> View:
    """Display how features drift over a sequence of spans, oldest first.

    ``statistics`` is a list (or a dict ``{label: ...}``) of
    ``DatasetFeatureStatisticsList`` protos, pandas DataFrames or ExampleStatistics
    artifacts, a channel of ExampleStatistics artifacts, or a
    :class:`toolkit.drift.DriftReport`. The other arguments are those of
    :func:`toolkit.drift.compute_drift`. Displays like :func:`toolkit.show` and
    returns the view.
    """
    return display_view(drift_view_of(statistics, schema, features, split, reference,
                                      thresholds, labels))
