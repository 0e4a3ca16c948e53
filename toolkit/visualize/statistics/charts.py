"""The charts of a feature's row, drawn with HTML and CSS only (``div`` bars with inline
sizes, a gradient strip), which the notebook sanitizer keeps: a numeric feature's
histogram and quantiles, a categorical feature's top values."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

from tensorflow_metadata.proto.v0 import statistics_pb2

from toolkit.visualize.html import GRID, MUTED, NOTE, PALETTE, esc, escape, fmt_num, fmt_pct, tag
from toolkit.visualize.statistics.model import (Feature, Histogram, quantile_histogram,
                                                standard_histogram, total_values, value_counts)

CHART_WIDTH = 220
CHART_HEIGHT = 44
TOP_VALUES_SHOWN = 6


def _finite_range(hists: Iterable[Histogram]) -> tuple[float, float] | None:
    lows, highs = [], []
    for hist in hists:
        for b in hist.buckets:
            if math.isfinite(b.low_value):
                lows.append(b.low_value)
            if math.isfinite(b.high_value):
                highs.append(b.high_value)
    if not lows or not highs:
        return None
    return min(lows), max(highs)


def _display_counts(hist: Histogram, edges: Sequence[float]) -> list[float]:
    """Counts of ``hist`` on ``edges`` (equal-width display buckets), uniform within buckets."""
    counts = [0.0] * (len(edges) - 1)
    low_edge, high_edge = edges[0], edges[-1]
    width = (high_edge - low_edge) / len(counts) if high_edge > low_edge else 0.0
    for b in hist.buckets:
        lo, hi, c = b.low_value, b.high_value, b.sample_count
        if not (math.isfinite(lo) and math.isfinite(hi)) or c <= 0:
            continue
        if width == 0.0 or hi <= lo:
            k = 0 if width == 0.0 else min(int((lo - low_edge) / width), len(counts) - 1)
            counts[max(k, 0)] += c
            continue
        for k in range(len(counts)):
            overlap = min(hi, edges[k + 1]) - max(lo, edges[k])
            if overlap > 0:
                counts[k] += c * overlap / (hi - lo)
    return counts


def _bar(height: float, colour: str, label: str) -> str:
    # A non-empty bucket stays visible: at least ~1px of the chart's height.
    shown = 0 if height <= 0 else max(round(height), 3)
    return f'<i style="flex:1;height:{shown}%;background:{colour}" title="{escape(label)}"></i>'


def numeric_chart(feature: Feature, labels: list[str]) -> str:
    present = [(i, f) for i, f in enumerate(feature.per_dataset) if f is not None]
    hists = [(i, standard_histogram(f)) for i, f in present]
    hists = [(i, h) for i, h in hists if h is not None and h.buckets]
    span = _finite_range(h for _, h in hists)
    if span is None:
        return tag("span", "no values", NOTE)
    lo, hi = span
    nbuckets = max(len(h.buckets) for _, h in hists)
    if len(hists) == 1 and len(labels) == 1:
        hist = hists[0][1]
        series = [(0, [b.sample_count for b in hist.buckets if
                       math.isfinite(b.low_value) and math.isfinite(b.high_value)])]
        bounds = [(b.low_value, b.high_value) for b in hist.buckets
                  if math.isfinite(b.low_value) and math.isfinite(b.high_value)]
    else:
        edges = [lo + (hi - lo) * k / nbuckets for k in range(nbuckets + 1)]
        series = [(i, _display_counts(h, edges)) for i, h in hists]
        bounds = list(zip(edges[:-1], edges[1:]))
    totals = {i: sum(c) or 1.0 for i, c in series}
    peak = max((c / totals[i] for i, counts in series for c in counts), default=0) or 1.0
    groups = []
    for k, (b_lo, b_hi) in enumerate(bounds):
        bars = []
        for i, counts in series:
            share = counts[k] / totals[i] if k < len(counts) else 0.0
            prefix = f"{labels[i]}: " if len(labels) > 1 else ""
            count = round(counts[k]) if k < len(counts) else 0
            text = f"{prefix}[{fmt_num(b_lo)}, {fmt_num(b_hi)}] {count:,} ({fmt_pct(share)})"
            bars.append(_bar(100.0 * share / peak, PALETTE[i % len(PALETTE)], text))
        groups.append(bars[0] if len(bars) == 1 else
                      '<span style="flex:1;display:flex;align-items:flex-end;height:100%">'
                      + "".join(bars) + "</span>")
    chart = (f'<div style="display:flex;align-items:flex-end;gap:2px;width:{CHART_WIDTH}px;'
             f'height:{CHART_HEIGHT}px;border-bottom:1px solid {GRID}">{"".join(groups)}</div>')
    strips = "".join(_quantile_strip(f, i, lo, hi, labels) for i, f in present)
    axis = (f'<div style="display:flex;justify-content:space-between;width:{CHART_WIDTH}px;'
            f'font-size:10px;color:{MUTED}"><span>{escape(fmt_num(lo))}</span>'
            f'<span>{escape(fmt_num(hi))}</span></div>')
    notes = []
    for i, h in hists:
        extra = sum(b.sample_count for b in h.buckets
                    if not (math.isfinite(b.low_value) and math.isfinite(b.high_value)))
        prefix = f"{labels[i]}: " if len(labels) > 1 else ""
        if extra:
            notes.append(f"{prefix}±∞ {fmt_num(extra)}")
        if h.num_nan:
            notes.append(f"{prefix}NaN {fmt_num(h.num_nan)}")
    note = tag("div", escape(" · ".join(notes)), NOTE) if notes else ""
    return chart + strips + axis + note


def _quantile_strip(feature: statistics_pb2.FeatureNameStatistics, index: int,
                    lo: float, hi: float, labels: list[str]) -> str:
    """The quantile histogram on the chart's x-axis: each band holds an equal share of values.

    Drawn as one element with a hard-stop gradient (bands alternate two shades),
    which the notebook sanitizer keeps; the exact quantiles are in its tooltip.
    """
    hist = quantile_histogram(feature)
    if hist is None or not hist.buckets or not hist.buckets[0].sample_count:
        return ""
    colour = PALETTE[index % len(PALETTE)]
    span = hi - lo
    cuts = [b.low_value for b in hist.buckets] + [hist.buckets[-1].high_value]
    cuts = [min(max(c, lo), hi) if math.isfinite(c) else (lo if c < 0 else hi) for c in cuts]
    step = 100.0 / len(hist.buckets)
    quantiles = ", ".join(f"{step * k:g}%: {fmt_num(c)}" for k, c in enumerate(cuts))
    prefix = f"{labels[index]} " if len(labels) > 1 else ""
    if span > 0:
        stops = [f"transparent 0 {100.0 * (cuts[0] - lo) / span:.1f}%"]
        for k in range(len(cuts) - 1):
            start = 100.0 * (cuts[k] - lo) / span
            stop = 100.0 * (cuts[k + 1] - lo) / span
            stops.append(f"{colour if k % 2 == 0 else colour + '80'} {start:.1f}% {stop:.1f}%")
        stops.append(f"transparent {100.0 * (cuts[-1] - lo) / span:.1f}%")
        fill = f"linear-gradient(to right,{','.join(stops)})"
    else:
        fill = colour
    return (f'<div style="width:{CHART_WIDTH}px;height:7px;margin-top:2px;background:{fill}" '
            f'title="{escape(prefix + "quantiles: " + quantiles)}"></div>')


def display_value(value: str) -> str:
    if value == "":
        return tag("i", "(empty string)", f"color:{MUTED}")
    return esc(value, 80)


def categorical_chart(feature: Feature, labels: list[str]) -> str:
    counts = [(value_counts(f), total_values(f)) if f is not None else ({}, 0.0)
              for f in feature.per_dataset]
    order: list[str] = []
    for values, _ in counts:
        for value in sorted(values, key=lambda v: -values[v]):
            if value not in order:
                order.append(value)
            if len(order) >= TOP_VALUES_SHOWN:
                break
        if len(order) >= TOP_VALUES_SHOWN:
            break
    if not order:
        return tag("span", "no values", NOTE)
    peak = max((values.get(v, 0.0) / total for values, total in counts if total
                for v in order), default=0) or 1.0
    cells = []
    for value in order:
        bars, shares = [], []
        for i, (values, total) in enumerate(counts):
            share = values.get(value, 0.0) / total if total else 0.0
            shares.append(fmt_pct(share))
            width = 0 if share <= 0 else max(round(100.0 * share / peak), 1)
            bars.append(f'<i style="display:block;height:5px;margin:1px 0;width:{width}%;'
                        f'background:{PALETTE[i % len(PALETTE)]}"></i>')
        tip = f' title="{esc(value, 300)}"' if len(value) > 12 else ""
        cells.append(
            f'<span style="overflow:hidden;white-space:nowrap;text-overflow:ellipsis"{tip}>'
            f'{display_value(value)}</span><span>{"".join(bars)}</span>'
            f'<small>{escape(" / ".join(shares))}</small>')
    rows = [f'<div style="display:grid;grid-template-columns:10em 110px auto;gap:0 6px;'
            f'align-items:center;line-height:1.2">{"".join(cells)}</div>']
    unique = max((f.string_stats.unique for f in feature.per_dataset if f is not None), default=0)
    more = unique - len(order)
    tail = tag("div", f"… {more:,} more value{'s' if more > 1 else ''}", NOTE) if more > 0 else ""
    return "".join(rows) + tail
