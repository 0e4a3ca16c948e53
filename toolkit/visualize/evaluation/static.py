"""Static rendering of the dashboard: the chart and full table as HTML.

The HTML uses inline styles and ``div`` bars only (see the package docstring for
why): it is what every front end shows, with or without a kernel, and what the
live widget's chart is made of; :mod:`.text` is the dashboard's plain-text form,
:func:`~toolkit.visualize.evaluation.evaluation_view` the static dashboard on its own,
and :mod:`.widget` adds the controls.

Hundreds of slices: the chart opens on the rows of :func:`~.model.select` (the
baseline, the ``top`` largest and smallest gaps to it, every failing slice); a
``<details>`` element below it ("Show all") holds every slice of the choice in
compact rows inside a scrolling box, which works without scripts. Only the chosen
metric and threshold are embedded then; every metric stays one call away
(``result.to_dataframe()``) and, when small enough, in an embedded CSV download.
Interval bounds of metrics in [0, 1] are shown clipped to it, marked
:data:`CLIP_MARK`; the numbers stored in the result are TFMA's, unchanged. Below the
chart, the chosen slice's ROC, precision-recall and calibration curves, when the
evaluation has them (:mod:`.curves`, inline SVG).
"""
from __future__ import annotations

import base64
import csv
import io
import math
from typing import Any

from toolkit.visualize.evaluation.curves import chosen_curves_html
from toolkit.visualize.evaluation.model import (ALL_SLICES, SORTS, Cell, Choice, DashboardData,
                                                Line, Row, Selection, Series, Slice,
                                                clipped_bounds, finite, is_unit_metric, matching,
                                                rows_of, select, sub_key_label, value_of)
from toolkit.visualize.html import (BAD, GOOD, MUTED, NOTE, PALETTE, ROW, SHADE, TABLE,
                                    TABLE_ATTRS, TD, TH_LEFT, TH_RIGHT, badge, esc, escape,
                                    fmt_bytes, fmt_num, root, swatch, tag)

BAR_WIDTH = 220
TRACK_HEIGHT = 14
INK = "#5f6368"
GREYED = "opacity:0.45"
FAILURES_LISTED = 12
TABLE_OPEN_ROWS = 60
#: The table of every metric is embedded (as the dashboard always did) only below this
#: size; a larger evaluation points to ``result.to_dataframe()`` instead.
FULL_TABLE_LIMIT = 256 * 1024
#: Bytes of that table per slice, metric and threshold (measured: about 110 with intervals),
#: low on purpose: a larger evaluation is known to exceed the limit without building it.
FULL_TABLE_CELL_BYTES = 60
#: The metrics table is embedded as a CSV download (a data: URI) only below this size.
CSV_LIMIT = 256 * 1024
#: Height of the scrolling boxes that hold long lists of slices ("Show all", the live chart).
LIST_HEIGHT = 600
#: Marks an interval bound shown clipped to [0, 1].
CLIP_MARK = "†"
CLIP_NOTE = (f"{CLIP_MARK} interval bound clipped to [0, 1], where the metric lies (a rate, "
             "accuracy, AUC...); TFMA's confidence interval method can give bounds past it, "
             "and result.to_dataframe() keeps the computed bounds.")
#: Background of the live chart's sticky header row (JupyterLab's theme colour).
STICKY_HEAD = "position:sticky;top:0;z-index:1;background:var(--jp-layout-color0,#fff)"


def _num(value: float, signed: bool = False, exact: bool = True) -> str:
    """A number; ``exact`` adds its full precision as a tooltip (left out of compact rows)."""
    if not finite(value):
        return tag("span", "–", NOTE)
    text = fmt_num(value)
    if signed and value > 0:
        text = "+" + text
    return tag("span", escape(text), title=repr(float(value))) if exact else escape(text)


def _scale(rows: list[Row], unit: bool = False) -> tuple[float, float]:
    values = [0.0]
    for row in rows:
        for line in row.lines:
            if line.cell is not None:
                lower, upper, _, _ = clipped_bounds(line.cell, unit)
                values += [v for v in (line.cell.value, lower, upper) if finite(v)]
            if finite(line.reference):
                values.append(line.reference)
    lo, hi = min(values), max(values)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _at(lo: float, hi: float) -> Any:
    def at(x: float) -> float:
        return min(max(100.0 * (x - lo) / (hi - lo), 0.0), 100.0)
    return at


def _track(line: Line, colour: str, lo: float, hi: float, unit: bool = False) -> str:
    """One bar with its interval whiskers and the baseline's value as a dashed mark.

    A bound clipped to [0, 1] gets no end cap: the whisker runs off the scale.
    """
    at = _at(lo, hi)
    parts = []
    cell = line.cell
    if cell is not None and finite(cell.value):
        left, right = sorted((at(0.0), at(cell.value)))
        width = max(right - left, 0.4)
        parts.append(f'<i style="position:absolute;left:{left:.2f}%;width:{width:.2f}%;'
                     f'top:2px;height:{TRACK_HEIGHT - 4}px;background:{colour}"></i>')
    if cell is not None and finite(cell.lower) and finite(cell.upper):
        # One element draws the interval: end caps are its side borders, the line a
        # 2px-high background gradient across its middle.
        lower, upper, low_cut, high_cut = clipped_bounds(cell, unit)
        low, high = at(lower), at(upper)
        caps = f"0 {0 if high_cut else 2}px 0 {0 if low_cut else 2}px"
        parts.append(f'<i style="position:absolute;left:{low:.2f}%;'
                     f'width:{max(high - low, 0.2):.2f}%;'
                     f'top:3px;height:{TRACK_HEIGHT - 6}px;box-sizing:border-box;'
                     f'border:solid {INK};border-width:{caps};'
                     f'background:linear-gradient({INK},{INK}) 0 50%/100% 2px no-repeat"></i>')
    if finite(line.reference):
        parts.append(f'<i style="position:absolute;left:{at(line.reference):.2f}%;top:0;'
                     f'height:{TRACK_HEIGHT}px;border-left:1px dashed {INK}"></i>')
    return (f'<div style="position:relative;width:{BAR_WIDTH}px;height:{TRACK_HEIGHT}px;'
            f'margin:1px 0;background:{SHADE}">{"".join(parts)}</div>')


def _mini_track(line: Line, colour: str, lo: float, hi: float, unit: bool = False) -> str:
    """The compact bar of the "Show all" list: the value as one gradient, the interval as a line.

    About a third of :func:`_track`'s markup (no caps, no baseline mark): hundreds of
    rows stay small. JupyterLab's sanitizer keeps one gradient layer, not several.
    """
    at = _at(lo, hi)
    cell = line.cell
    background = SHADE
    if cell is not None and finite(cell.value):
        left, right = sorted((at(0.0), at(cell.value)))
        right = max(right, left + 0.4)
        if left < 0.05:  # from the scale's start: a colour stop at 0 ends the bar sharply
            background = f"linear-gradient(90deg,{colour} {right:.1f}%,{SHADE} 0)"
        else:
            background = (f"linear-gradient(90deg,{SHADE} {left:.1f}%,{colour} {left:.1f}%,"
                          f"{colour} {right:.1f}%,{SHADE} {right:.1f}%)")
    whisker = ""
    if cell is not None and finite(cell.lower) and finite(cell.upper):
        lower, upper, _, _ = clipped_bounds(cell, unit)
        low, high = at(lower), at(upper)
        whisker = (f'<i style="position:absolute;left:{low:.1f}%;width:{max(high - low, 0.4):.1f}%;'
                   f'top:4px;height:2px;background:{INK}"></i>')
    return (f'<div style="position:relative;width:{BAR_WIDTH}px;height:10px;margin:4px 0;'
            f'background:{background}">{whisker}</div>')


def _lines(row: Row, data: DashboardData, render: Any, marked: bool = False,
           compact: bool = False) -> str:
    """One line per series inside a cell, aligned with its bar; ``marked`` adds its swatch
    (not in ``compact`` rows: the order of the lines is the legend's)."""
    if not data.paired:
        return render(row.lines[0])
    contents = [render(line) for line in row.lines]
    if not any(contents):
        return ""
    if compact:  # a line of text is as tall as a compact bar with its margins
        return "<br>".join(contents)
    out = []
    for i, content in enumerate(contents):
        mark = swatch(PALETTE[i % len(PALETTE)]) if marked and content else ""
        out.append(f'<div style="height:{TRACK_HEIGHT + 2}px;white-space:nowrap">{mark}'
                   f"{content}</div>")
    return "".join(out)


def interval_text(cell: Cell, unit: bool = False) -> str:
    """``[lower, upper]`` with a no-break space (notebook stylesheets let table cells wrap);
    for a metric in [0, 1] its bounds clipped to it, each clipped one marked."""
    lower, upper, low_cut, high_cut = clipped_bounds(cell, unit)
    low = fmt_num(lower) + (CLIP_MARK if low_cut else "")
    high = fmt_num(upper) + (CLIP_MARK if high_cut else "")
    return f"[{low},\u00a0{high}]"


def is_clipped(cell: Cell | None, unit: bool) -> bool:
    if cell is None or not unit:
        return False
    _, _, low_cut, high_cut = clipped_bounds(cell, unit)
    return low_cut or high_cut


def _clip_title(cell: Cell, exact: bool = True) -> str:
    """What a clipped interval was computed as (``exact``: with full precision)."""
    precise = f" ({cell.lower!r}, {cell.upper!r})" if exact else ""
    return (f"computed interval [{fmt_num(cell.lower)}, {fmt_num(cell.upper)}]{precise}, "
            "shown clipped to [0, 1], where the metric lies")


def _ci(line: Line, unit: bool = False, bare: bool = False) -> str:
    """The interval in muted text; ``bare`` leaves the colour to the cell (compact rows)."""
    cell = line.cell
    if cell is None or not (finite(cell.lower) and finite(cell.upper)):
        return ""
    text = escape(interval_text(cell, unit))
    if is_clipped(cell, unit):
        return tag("span", text, "" if bare else NOTE, title=_clip_title(cell, not bare))
    return text if bare else tag("span", text, NOTE)


def _checks(line: Line) -> str:
    parts = []
    for failure in line.failures[:3]:
        parts.append(tag("span", "✗ " + esc(f"needs {failure.rule}", 80),
                         f"color:{BAD};font-weight:600", title=failure.describe()))
    if len(line.failures) > 3:
        parts.append(tag("span", f"+{len(line.failures) - 3}", f"color:{BAD}"))
    if line.other_failures:
        parts.append(tag("span", f"{line.other_failures}\u00a0other\u00a0failed\u00a0check"
                         + ("s" if line.other_failures > 1 else ""), NOTE))
    return " ".join(parts)


def _slice_cell(row: Row, data: DashboardData, compact: bool = False) -> str:
    slice_ = row.slice
    weight = "font-weight:600;" if row.is_baseline else ""
    name = tag("span", esc(slice_.name, 120), "" if compact else weight + "white-space:nowrap",
               title=slice_.name)
    bits = [name]
    if row.is_baseline:
        bits.append(badge("baseline", INK))
    if slice_.below_min:
        limit = f" ({fmt_num(slice_.size)} < {data.min_slice_size})" \
            if data.min_slice_size and slice_.size is not None else ""
        bits.append(tag("span" if compact else "div", escape(f"below min_slice_size{limit}"),
                        NOTE, title=slice_.note or None))
    return " ".join(bits)


def _size(slice_: Slice, data: DashboardData) -> str:
    sizes = []
    for series in data.series:
        own = series.slices.get(slice_.name)
        size = own.size if own is not None else None
        sizes.append(fmt_num(size))
    shown = sizes[0] if len(set(sizes)) == 1 else " / ".join(sizes)
    return escape(shown)


def _row_html(row: Row, data: DashboardData, lo: float, hi: float, compare: bool,
              with_ci: bool, unit: bool = False, compact: bool = False) -> str:
    """One slice's row; ``compact`` (the "Show all" list) draws a smaller bar and drops the
    full-precision tooltips, so a thousand rows stay a few hundred KB."""
    failed = any(line.failures for line in row.lines)
    styles = [] if compact else [ROW]  # compact rows: the notebook's table stripes suffice
    if row.slice.below_min:
        styles.append(GREYED)
    if failed:
        styles.append(f"box-shadow:inset 3px 0 0 {BAD}")
    if row.is_baseline:
        styles.append(f"background:{SHADE}")
    style = ";".join(styles)
    exact = not compact

    def colour(i: int) -> str:
        return MUTED if row.slice.below_min else PALETTE[i % len(PALETTE)]

    draw = _mini_track if compact else _track
    bars = "".join(draw(line, colour(i), lo, hi, unit) for i, line in enumerate(row.lines))
    cells = [
        f'<td style="{TD}">{_slice_cell(row, data, compact)}</td>',
        f"<td>{_size(row.slice, data)}</td>",
        f"<td>{bars}</td>" if compact else f'<td style="{TD}">{bars}</td>',
        f"<td>{_lines(row, data, lambda line: _num(value_of(line), exact=exact), True, compact)}"
        "</td>",
    ]
    if with_ci:
        ci_style = f"{TD};{NOTE}" if compact else TD
        cells.append(f'<td style="{ci_style}">'
                     f"{_lines(row, data, lambda line: _ci(line, unit, compact), False, compact)}"
                     "</td>")
    if compare:
        def diff(line: Line) -> str:
            return "" if row.is_baseline else _num(line.diff, signed=True, exact=exact)

        def ratio(line: Line) -> str:
            if row.is_baseline or not finite(line.ratio):
                return "" if row.is_baseline else _num(math.nan)
            text = escape(fmt_num(line.ratio) + "×")
            return tag("span", text, title=repr(line.ratio)) if exact else text

        cells += [f"<td>{_lines(row, data, diff, False, compact)}</td>",
                  f"<td>{_lines(row, data, ratio, False, compact)}</td>"]
    if data.paired:
        first, second = value_of(row.lines[0]), value_of(row.lines[1])
        cells.append(f"<td>{_num(first - second, signed=True, exact=exact)}</td>")
    checks = _lines(row, data, _checks)
    cells.append(f'<td style="{TD}">{checks}</td>' if checks else "<td></td>")
    return (f'<tr style="{style}">' if style else "<tr>") + "".join(cells) + "</tr>"


def choice_title(data: DashboardData, choice: Choice) -> str:
    at = f" @ {choice.threshold:g}" if choice.threshold is not None else ""
    of = f" · {sub_key_label(choice.sub_key)}" if choice.sub_key else ""
    return f"{data.metric_label(choice.metric)}{at}{of}"


def choice_subtitle(data: DashboardData, choice: Choice) -> str:
    slicing = "all slices" if choice.slicing == ALL_SLICES else f"slicing {choice.slicing}"
    if choice.cross:
        return f"{slicing} (cross-slice differences) · sorted by {SORTS[choice.sort]}"
    return f"baseline {choice.baseline} · {slicing} · sorted by {SORTS[choice.sort]}"


def _validation_html(data: DashboardData) -> str:
    parts = []
    for series in data.series:
        if series.blessed is None:
            continue
        who = f"{series.label}: " if data.paired else ""
        if not series.has_thresholds:
            parts.append(tag("div", escape(f"{who}no thresholds in the EvalConfig: nothing "
                                           "validated, so not blessed"), NOTE))
            continue
        if series.blessed:
            parts.append(tag("div", badge("✓ " + who + "blessed", GOOD)
                             + tag("span", " every threshold passed", NOTE)))
            continue
        summary = series.validation_text.splitlines()[0] if series.validation_text else \
            f"not blessed: {len(series.failures)} failed checks"
        items = "".join(tag("li", esc(f.describe(), 300))
                        for f in series.failures[:FAILURES_LISTED])
        more = len(series.failures) - FAILURES_LISTED
        if more > 0:
            items += tag("li", f"… {more:,} more", NOTE)
        body = badge("✗ " + who + "not blessed", BAD) + " " + tag("span", esc(summary, 200), NOTE)
        if items:
            body += tag("ul", items, "margin:2px 0 4px 0;padding-left:20px")
        parts.append(tag("div", body, "margin:2px 0"))
    return "".join(parts)


def _legend(data: DashboardData) -> str:
    if not data.paired:
        return ""
    entries = " ".join(swatch(PALETTE[i % len(PALETTE)]) + esc(s.label, 60) + "&nbsp;"
                       for i, s in enumerate(data.series))
    return tag("div", entries, "margin:2px 0")


class Chart:
    """Everything one choice draws: its rows, the default selection, scale and columns."""

    def __init__(self, data: DashboardData, choice: Choice):
        self.data, self.choice = data, choice
        self.rows = rows_of(data, choice)
        self.selection: Selection = select(self.rows, choice.top, by_value=choice.cross)
        self.compare = not choice.cross
        self.unit = is_unit_metric(choice.metric)
        self.with_ci = any(line.cell is not None and finite(line.cell.lower)
                           and finite(line.cell.upper) for row in self.rows for line in row.lines)
        self.lo, self.hi = _scale(self.rows, self.unit)

    def head(self, sticky: bool = False) -> str:
        data, choice, lo, hi = self.data, self.choice, self.lo, self.hi
        axis = (f'<div style="display:flex;justify-content:space-between;width:{BAR_WIDTH}px;'
                f'font-weight:normal;font-size:10px;color:{MUTED}"><span>{escape(fmt_num(lo))}'
                f'</span><span>{escape(fmt_num(hi))}</span></div>')
        heads = [("Slice", TH_LEFT, ""), ("Size", TH_RIGHT, "examples in the slice"),
                 (esc(choice_title(data, choice), 120) + axis, TH_LEFT, choice.metric),
                 ("Value", TH_RIGHT, "")]
        if self.with_ci:
            heads.append(("CI", TH_LEFT, "confidence interval"
                          + (f" ({CLIP_MARK}: bound clipped to [0, 1])" if self.unit else "")))
        if self.compare:
            heads += [("Δ baseline", TH_RIGHT, f"value − value of {choice.baseline}"),
                      ("Ratio", TH_RIGHT, f"value / value of {choice.baseline}")]
        if data.paired:
            heads.append((esc(f"Δ {data.series[0].label} − {data.series[1].label}", 80),
                          TH_RIGHT, "difference between the two evaluations"))
        heads.append(("Checks", TH_LEFT, "failed thresholds"))
        extra = ";" + STICKY_HEAD if sticky else ""
        return "".join(tag("th", text, style + extra, title=title or None)
                       for text, style, title in heads)

    def table(self, rows: list[Row], compact: bool = False, sticky: bool = False) -> str:
        body = "".join(_row_html(row, self.data, self.lo, self.hi, self.compare, self.with_ci,
                                 self.unit, compact) for row in rows)
        return (f'<table {TABLE_ATTRS} style="{TABLE};white-space:nowrap">'
                f"<thead><tr>{self.head(sticky)}</tr></thead><tbody>{body}</tbody></table>")

    def top_html(self) -> str:
        """The title, the validation summary and the legend of paired series."""
        data, choice = self.data, self.choice
        title = tag("div", "Fairness indicators: " + esc(choice_title(data, choice), 160)
                    + tag("span", esc(choice_subtitle(data, choice), 300),
                          NOTE + ";font-weight:normal;margin-left:8px"),
                    "font-weight:600;font-size:1.1em;margin:0 0 4px 0")
        return title + _validation_html(data) + _legend(data)

    def clip_note(self, rows: list[Row]) -> str:
        if any(is_clipped(line.cell, self.unit) for row in rows for line in row.lines):
            return tag("div", escape(CLIP_NOTE), NOTE)
        return ""

    def summary(self) -> str:
        """Which slices the default rows are, in words (empty when every slice shows)."""
        sel = self.selection
        if not sel.hidden:
            return ""
        top = self.choice.top
        gap = "value" if self.choice.cross else "gap to the baseline (value − baseline)"
        what = [] if self.choice.cross else ["the baseline"]
        if top:
            what.append(f"the {top} largest and the {top} smallest by {gap}")
        if sel.failing:
            what.append(f"{len(sel.failing):,} failing a threshold")
        return (f"{len(sel.shown):,} of {len(sel.rows):,} slices: " + ", ".join(what) + ".")


def chart_html(data: DashboardData, choice: Choice, chart: Chart | None = None) -> str:
    """Title, validation, legend and the per-slice chart for one choice (static form).

    The chart holds the default rows (:func:`~.model.select`); when slices are left out, a
    closed ``<details>`` ("Show all") below it lists every slice in compact rows.
    """
    chart = chart or Chart(data, choice)
    sel = chart.selection
    empty = "" if sel.rows else tag("div", "No slices for this choice.", NOTE)
    summary = chart.summary()
    note = tag("div", escape(summary + " Every slice: “Show all” below; every metric: "
                             "result.to_dataframe()."), NOTE + ";margin:2px 0") if summary else ""
    html = chart.top_html() + note + chart.table(sel.shown) + empty
    if sel.hidden:
        listing = (f'<div style="max-height:{LIST_HEIGHT}px;overflow-y:auto;overflow-x:auto">'
                   + chart.table(sel.rows, compact=True) + "</div>")
        html += chart.clip_note(sel.rows)
        html += (f'<details style="margin:4px 0">'
                 f'<summary style="cursor:pointer;font-weight:600">'
                 f"{escape(f'Show all {len(sel.rows):,} slices ({sel.hidden:,} not listed above)')}"
                 f"</summary>{listing}</details>")
    else:
        html += chart.clip_note(sel.shown)
    return html + chosen_curves_html(data, choice)


def live_chart_html(data: DashboardData, choice: Choice, chart: Chart | None = None,
                    filter_text: str = "", show_all: bool = False) -> str:
    """The widget's chart: the default rows, every row (``show_all``) or the slices whose
    name contains ``filter_text``. The lists asked for scroll in a box whose header row
    stays in view (``position: sticky``, which only the live widget keeps: sanitizers
    strip it from other output)."""
    chart = chart or Chart(data, choice)
    sel = chart.selection
    if filter_text.strip():
        rows = matching(sel.rows, filter_text)
        found = sum(1 for r in rows if not r.is_baseline)
        note = (f"{found:,} of {len(sel.rows):,} slices match “{filter_text.strip()}”"
                + (" (the baseline is always shown)." if chart.compare else "."))
    elif show_all or not sel.hidden:
        rows, note = sel.rows, ""
    else:
        rows = sel.shown
        note = chart.summary() + " Tick “Show all” or type in the filter to see the others."
    empty = "" if rows else tag("div", "No slices for this choice.", NOTE)
    # The default rows are as many as the static chart has: only the lists asked for scroll.
    longer = bool(filter_text.strip()) or (show_all and sel.hidden > 0)
    height = f"max-height:{LIST_HEIGHT}px;" if longer else ""
    box = (f'<div style="{height}overflow:auto">' + chart.table(rows, sticky=True) + "</div>")
    return (chart.top_html() + (tag("div", escape(note), NOTE + ";margin:2px 0") if note else "")
            + box + empty + chart.clip_note(rows) + chosen_curves_html(data, choice))


def _table_cell(series: Series, metric: str, threshold: float | None, slice_: Slice,
                failed: set[tuple[str, str, float | None]], sub_key: str = "") -> str:
    cell = series.cell(metric, threshold, slice_.name, sub_key)
    if cell is None:
        return ""
    text = escape(fmt_num(cell.value)) if finite(cell.value) else "–"
    if finite(cell.lower) and finite(cell.upper):  # a clipped bound: the note below the table
        text += (f'\u00a0<small style="color:{MUTED}">'
                 f"{escape(interval_text(cell, is_unit_metric(metric)))}</small>")
    if (slice_.name, metric, threshold) in failed or (slice_.name, metric, None) in failed:
        return tag("span", text, f"color:{BAD};font-weight:600", title="failed threshold")
    if cell.note and not finite(cell.value):
        return tag("span", "–", NOTE, title=cell.note)
    return text


def _metric_table(data: DashboardData, metrics: list[str], with_threshold: bool,
                  sub_key: str = "") -> tuple[str, int]:
    heads = [tag("th", "Slice", TH_LEFT)]
    if data.paired:
        heads.append(tag("th", "Model", TH_LEFT))
    heads.append(tag("th", "Size", TH_RIGHT))
    if with_threshold:
        heads.append(tag("th", "Threshold", TH_RIGHT))
    heads += [tag("th", esc(data.metric_label(m), 60), TH_RIGHT, title=m) for m in metrics]
    rows = []
    for i, series in enumerate(data.series):
        failed = {(f.slice, f.metric, f.threshold) for f in series.failures} if not sub_key else set()
        thresholds = sorted({t for m in metrics for t in series.thresholds.get(m, [])}) \
            if with_threshold else [None]
        for slice_ in data.slices.values():
            own = series.slices.get(slice_.name)
            if own is None:
                continue
            for threshold in thresholds:
                cells = [f'<td style="{TD}">{esc(slice_.name, 120)}</td>']
                if data.paired:
                    cells.append(f'<td style="{TD}">{swatch(PALETTE[i % len(PALETTE)])}'
                                 f"{esc(series.label, 60)}</td>")
                size = escape(fmt_num(own.size)) if own.size is not None else ""
                cells.append(f"<td>{size}</td>")
                if with_threshold:
                    cells.append(f"<td>{escape(f'{threshold:g}')}</td>")
                cells += [f"<td>{_table_cell(series, m, threshold, own, failed, sub_key)}</td>"
                          for m in metrics]
                style = ROW + (";" + GREYED if own.below_min else "")
                rows.append(f'<tr style="{style}">' + "".join(cells) + "</tr>")
    html = (f'<table {TABLE_ATTRS} style="{TABLE};white-space:nowrap"><thead>'
            f'<tr>{"".join(heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')
    return html, len(rows)


def full_table(data: DashboardData) -> str:
    """Every slice, metric and threshold: metrics without a threshold, then those with one;
    a multi-class evaluation gets one such pair of tables per class (TFMA sub key)."""
    parts, total = [], 0
    for sub_key in data.sub_keys:
        metrics = data.metrics_for(sub_key)
        if sub_key or len(data.sub_keys) > 1:
            parts.append(tag("div", esc(f"Per class: {sub_key_label(sub_key)}" if sub_key
                                        else "All classes (metrics without binarization)", 120),
                             "font-weight:600;margin-top:10px;border-top:1px solid #dadce0",
                             title=sub_key or None))
        plain_metrics = [m for m in metrics if not data.thresholds(m)]
        threshold_metrics = [m for m in metrics if data.thresholds(m)]
        if plain_metrics:
            html, n = _metric_table(data, plain_metrics, False, sub_key)
            parts.append(html)
            total += n
        if threshold_metrics:
            html, n = _metric_table(data, threshold_metrics, True, sub_key)
            parts.append(tag("div", "Metrics at thresholds", "font-weight:600;margin-top:6px") + html)
            total += n
    thresholds = sorted({t for m in data.all_metrics for t in data.thresholds(m)})
    classes = [k for k in data.sub_keys if k]
    summary = (f"Full metrics table: {len(data.slices)} slices × {len(data.all_metrics)} metrics"
               + (f" × {len(thresholds)} thresholds" if thresholds else "")
               + (f" × {len(classes)} classes" if classes else ""))
    is_open = " open" if total <= TABLE_OPEN_ROWS else ""
    clipped = any(is_clipped(cell, is_unit_metric(metric)) for series in data.series
                  for (metric, _, _, _), cell in series.cells.items())
    note = tag("div", escape(CLIP_NOTE), NOTE) if clipped else ""
    return (f"<details{is_open} style=\"margin-top:8px\">"
            f'<summary style="cursor:pointer;font-weight:600">{escape(summary)}</summary>'
            + "".join(parts) + note + "</details>")


def _csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet will not run as a formula (OWASP's CSV injection advice)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_number(value: float) -> str:
    return repr(float(value)) if finite(value) else ""


def metrics_csv(data: DashboardData, limit: int | None = None) -> str | None:
    """Every slice, metric and threshold of every series as CSV, with the stored values
    (TFMA's bounds, unclipped); None as soon as it grows past ``limit`` characters."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    with_class = any(data.sub_keys)
    writer.writerow((["model"] if data.paired else []) + ["slice", "slice_spec", "slice_size"]
                    + (["sub_key"] if with_class else [])
                    + ["metric", "threshold", "value", "lower", "upper"])
    for series in data.series:
        for (metric, threshold, name, sub_key), cell in series.cells.items():
            slice_ = series.slices[name]
            size = "" if slice_.size is None else slice_.size
            row = (([_csv_cell(series.label)] if data.paired else [])
                   + [_csv_cell(name), _csv_cell(slice_.spec), size]
                   + ([sub_key] if with_class else [])
                   + [_csv_cell(metric), "" if threshold is None else repr(threshold),
                      _csv_number(cell.value), _csv_number(cell.lower), _csv_number(cell.upper)])
            writer.writerow(row)
            if limit is not None and out.tell() > limit:
                return None
    return out.getvalue()


def csv_link(data: DashboardData, limit: int = CSV_LIMIT) -> str:
    """A download link of :func:`metrics_csv` as a data: URI, or "" when the link would be
    ``limit`` bytes or more (base64 makes it 4/3 of the CSV)."""
    text = metrics_csv(data, limit * 3 // 4)
    if text is None:
        return ""
    encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
    uri = "data:text/csv;charset=utf-8;base64," + encoded
    if len(uri) >= limit:
        return ""
    # The sanitizer of an untrusted notebook removes data: links: the note says what else works.
    return (f'<a href="{uri}" download="metrics.csv" style="font-weight:600">'
            f"{escape(f'Download the metrics table (CSV, {fmt_bytes(len(text))})')}</a>"
            + tag("span", escape(" · where the link does nothing (an untrusted notebook): "
                                 "result.to_dataframe().to_csv(path)"), NOTE))


def small_full_table(data: DashboardData, limit: int = FULL_TABLE_LIMIT) -> str | None:
    """:func:`full_table` when it is smaller than ``limit`` bytes, else None."""
    cells = sum(len(series.cells) for series in data.series)
    if cells * FULL_TABLE_CELL_BYTES >= limit:
        return None
    table = full_table(data)
    return table if len(table.encode("utf-8")) < limit else None


def metrics_section(data: DashboardData) -> str:
    """Below the chart, for every choice: the full metrics table of a small evaluation, or a
    pointer to ``result.to_dataframe()``; and the CSV download when it is small enough."""
    link = csv_link(data)
    table = small_full_table(data)
    if table is not None:
        return table + (tag("div", link, "margin:2px 0") if link else "")
    thresholds = sorted({t for m in data.all_metrics for t in data.thresholds(m)})
    counts = (f"{len(data.slices):,} slices × {len(data.all_metrics)} metrics"
              + (f" × {len(thresholds)} thresholds" if thresholds else ""))
    text = (f"Every metric and threshold ({counts}): result.to_dataframe(). Only the chosen "
            "metric and threshold are embedded in this output, to keep the notebook small.")
    if not link:
        text += f" (A CSV download is embedded only below {CSV_LIMIT // 1024} KB.)"
    return tag("div", escape(text) + (tag("div", link) if link else ""),
               NOTE + ";margin-top:8px")


def static_class(uid: str) -> str:
    return f"tkd-static-{uid}"


def live_class(uid: str) -> str:
    return f"tkd-live-{uid}"


def live_rules(uid: str) -> str:
    """The only stylesheet, sent inside the live widget (see :mod:`.widget` for why).

    It hides this dashboard's static chart, and lets the widget's chart scroll
    sideways instead of being clipped by the widget's ``overflow:hidden``.
    """
    live = live_class(uid)
    return (f"<style>.{static_class(uid)}{{display:none !important}}"
            f".{live},.{live} .widget-html-content{{min-width:0;max-width:100%;"
            f"overflow-x:auto !important}}</style>")


def static_html(data: DashboardData, choice: Choice, uid: str, header: str = "",
                chart: str | None = None, table: str | None = None) -> str:
    """``header`` and the chart (both hidden where the live widget shows them), then the
    metrics section (:func:`metrics_section`: the full table or a pointer to it).

    ``chart`` is ``chart_html(data, choice)`` and ``table`` is ``metrics_section(data)`` when
    the caller already built them (the section depends on the data only, not on the choice).
    """
    if chart is None:
        chart = chart_html(data, choice)
    if table is None:
        table = metrics_section(data)
    static = f'<div class="{static_class(uid)}">{header}{chart}</div>'
    return root(static + table, uid)
