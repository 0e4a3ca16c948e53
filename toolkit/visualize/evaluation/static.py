"""Static rendering of the dashboard: the chart and full table as HTML, and plain text.

The HTML uses inline styles and ``div`` bars only (see the package docstring for
why): it is what every front end shows, with or without a kernel, and what the
live widget's chart is made of. :func:`evaluation_view` is the static dashboard
on its own; :mod:`.widget` adds the controls.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from toolkit.visualize.evaluation.loading import dashboard_data
from toolkit.visualize.evaluation.model import (ALL_SLICES, SORTS, Cell, Choice, DashboardData,
                                                Line, Row, Series, Slice, finite, resolve,
                                                rows_of, sub_key_label, value_of)
from toolkit.visualize.html import (BAD, GOOD, MUTED, NOTE, PALETTE, ROW, SHADE, TABLE,
                                    TABLE_ATTRS, TD, TH_LEFT, TH_RIGHT, View, badge, esc, escape,
                                    fmt_num, new_uid, plain, root, swatch, tag)

BAR_WIDTH = 220
TRACK_HEIGHT = 14
INK = "#5f6368"
GREYED = "opacity:0.45"
FAILURES_LISTED = 12
TABLE_OPEN_ROWS = 60


def _num(value: float, signed: bool = False) -> str:
    if not finite(value):
        return tag("span", "–", NOTE)
    text = fmt_num(value)
    if signed and value > 0:
        text = "+" + text
    return tag("span", escape(text), title=repr(float(value)))


def _scale(rows: list[Row]) -> tuple[float, float]:
    values = [0.0]
    for row in rows:
        for line in row.lines:
            if line.cell is not None:
                values += [v for v in (line.cell.value, line.cell.lower, line.cell.upper)
                           if finite(v)]
            if finite(line.reference):
                values.append(line.reference)
    lo, hi = min(values), max(values)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _track(line: Line, colour: str, lo: float, hi: float) -> str:
    """One bar with its interval whiskers and the baseline's value as a dashed mark."""
    def at(x: float) -> float:
        return min(max(100.0 * (x - lo) / (hi - lo), 0.0), 100.0)

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
        low, high = at(cell.lower), at(cell.upper)
        parts.append(f'<i style="position:absolute;left:{low:.2f}%;'
                     f'width:{max(high - low, 0.2):.2f}%;'
                     f'top:3px;height:{TRACK_HEIGHT - 6}px;box-sizing:border-box;'
                     f'border:solid {INK};border-width:0 2px;'
                     f'background:linear-gradient({INK},{INK}) 0 50%/100% 2px no-repeat"></i>')
    if finite(line.reference):
        parts.append(f'<i style="position:absolute;left:{at(line.reference):.2f}%;top:0;'
                     f'height:{TRACK_HEIGHT}px;border-left:1px dashed {INK}"></i>')
    return (f'<div style="position:relative;width:{BAR_WIDTH}px;height:{TRACK_HEIGHT}px;'
            f'margin:1px 0;background:{SHADE}">{"".join(parts)}</div>')


def _lines(row: Row, data: DashboardData, render: Any, marked: bool = False) -> str:
    """One line per series inside a cell, aligned with its bar; ``marked`` adds its swatch."""
    if not data.paired:
        return render(row.lines[0])
    out = []
    for i, line in enumerate(row.lines):
        content = render(line)
        mark = swatch(PALETTE[i % len(PALETTE)]) if marked and content else ""
        out.append(f'<div style="height:{TRACK_HEIGHT + 2}px;white-space:nowrap">{mark}'
                   f"{content}</div>")
    return "".join(out)


def _interval(cell: Cell) -> str:
    """``[lower, upper]`` with a no-break space: notebook stylesheets let table cells wrap."""
    return f"[{fmt_num(cell.lower)},\u00a0{fmt_num(cell.upper)}]"


def _ci(line: Line) -> str:
    cell = line.cell
    if cell is None or not (finite(cell.lower) and finite(cell.upper)):
        return ""
    return tag("span", escape(_interval(cell)), NOTE)


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


def _slice_cell(row: Row, data: DashboardData) -> str:
    slice_ = row.slice
    weight = "font-weight:600;" if row.is_baseline else ""
    name = tag("span", esc(slice_.name, 120), weight + "white-space:nowrap", title=slice_.name)
    bits = [name]
    if row.is_baseline:
        bits.append(badge("baseline", INK))
    if slice_.below_min:
        limit = f" ({fmt_num(slice_.size)} < {data.min_slice_size})" \
            if data.min_slice_size and slice_.size is not None else ""
        bits.append(tag("div", escape(f"below min_slice_size{limit}"), NOTE,
                        title=slice_.note or None))
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
              with_ci: bool) -> str:
    failed = any(line.failures for line in row.lines)
    style = ROW
    if row.slice.below_min:
        style += ";" + GREYED
    if failed:
        style += f";box-shadow:inset 3px 0 0 {BAD}"
    if row.is_baseline:
        style += f";background:{SHADE}"

    def colour(i: int) -> str:
        return MUTED if row.slice.below_min else PALETTE[i % len(PALETTE)]

    bars = "".join(_track(line, colour(i), lo, hi) for i, line in enumerate(row.lines))
    cells = [
        f'<td style="{TD}">{_slice_cell(row, data)}</td>',
        f"<td>{_size(row.slice, data)}</td>",
        f'<td style="{TD}">{bars}</td>',
        f'<td>{_lines(row, data, lambda line: _num(value_of(line)), marked=True)}</td>',
    ]
    if with_ci:
        cells.append(f'<td style="{TD}">{_lines(row, data, _ci)}</td>')
    if compare:
        def diff(line: Line) -> str:
            return "" if row.is_baseline else _num(line.diff, signed=True)

        def ratio(line: Line) -> str:
            if row.is_baseline or not finite(line.ratio):
                return "" if row.is_baseline else _num(math.nan)
            return tag("span", escape(fmt_num(line.ratio) + "×"), title=repr(line.ratio))

        cells += [f"<td>{_lines(row, data, diff)}</td>", f"<td>{_lines(row, data, ratio)}</td>"]
    if data.paired:
        first, second = value_of(row.lines[0]), value_of(row.lines[1])
        cells.append(f"<td>{_num(first - second, signed=True)}</td>")
    cells.append(f'<td style="{TD}">{_lines(row, data, _checks)}</td>')
    return f'<tr style="{style}">' + "".join(cells) + "</tr>"


def _title(data: DashboardData, choice: Choice) -> str:
    at = f" @ {choice.threshold:g}" if choice.threshold is not None else ""
    of = f" · {sub_key_label(choice.sub_key)}" if choice.sub_key else ""
    return f"{data.metric_label(choice.metric)}{at}{of}"


def _subtitle(data: DashboardData, choice: Choice) -> str:
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


def chart_html(data: DashboardData, choice: Choice) -> str:
    """Title, validation, legend and the per-slice chart for one choice."""
    rows = rows_of(data, choice)
    compare = not choice.cross
    with_ci = any(_ci(line) for row in rows for line in row.lines)
    lo, hi = _scale(rows)
    axis = (f'<div style="display:flex;justify-content:space-between;width:{BAR_WIDTH}px;'
            f'font-weight:normal;font-size:10px;color:{MUTED}"><span>{escape(fmt_num(lo))}</span>'
            f'<span>{escape(fmt_num(hi))}</span></div>')
    heads = [("Slice", TH_LEFT, ""), ("Size", TH_RIGHT, "examples in the slice"),
             (esc(_title(data, choice), 120) + axis, TH_LEFT, choice.metric),
             ("Value", TH_RIGHT, "")]
    if with_ci:
        heads.append(("CI", TH_LEFT, "confidence interval"))
    if compare:
        heads += [("Δ baseline", TH_RIGHT, f"value − value of {choice.baseline}"),
                  ("Ratio", TH_RIGHT, f"value / value of {choice.baseline}")]
    if data.paired:
        heads.append((esc(f"Δ {data.series[0].label} − {data.series[1].label}", 80), TH_RIGHT,
                      "difference between the two evaluations"))
    heads.append(("Checks", TH_LEFT, "failed thresholds"))
    head = "".join(tag("th", text, style, title=title or None) for text, style, title in heads)
    body = "".join(_row_html(row, data, lo, hi, compare, with_ci) for row in rows)
    empty = "" if rows else tag("div", "No slices for this choice.", NOTE)
    title = tag("div", "Fairness indicators: " + esc(_title(data, choice), 160)
                + tag("span", esc(_subtitle(data, choice), 300),
                      NOTE + ";font-weight:normal;margin-left:8px"),
                "font-weight:600;font-size:1.1em;margin:0 0 4px 0")
    return (title + _validation_html(data) + _legend(data)
            + f'<table {TABLE_ATTRS} style="{TABLE};white-space:nowrap">'
              f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" + empty)


def _table_cell(series: Series, metric: str, threshold: float | None, slice_: Slice,
                failed: set[tuple[str, str, float | None]], sub_key: str = "") -> str:
    cell = series.cell(metric, threshold, slice_.name, sub_key)
    if cell is None:
        return ""
    text = escape(fmt_num(cell.value)) if finite(cell.value) else "–"
    if finite(cell.lower) and finite(cell.upper):
        text += f'\u00a0<small style="color:{MUTED}">{escape(_interval(cell))}</small>'
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
    return (f"<details{is_open} style=\"margin-top:8px\">"
            f'<summary style="cursor:pointer;font-weight:600">{escape(summary)}</summary>'
            + "".join(parts) + "</details>")


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
    """``header`` and the chart (both hidden where the live widget shows them), then the table.

    ``chart`` is ``chart_html(data, choice)`` and ``table`` is ``full_table(data)`` when the
    caller already built them (the table depends on the data only, not on the choice).
    """
    if chart is None:
        chart = chart_html(data, choice)
    if table is None:
        table = full_table(data)
    static = f'<div class="{static_class(uid)}">{header}{chart}</div>'
    return root(static + table, uid)


# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------

def _text_num(value: float, signed: bool = False) -> str:
    if not finite(value):
        return "–"
    return ("+" if signed and value > 0 else "") + fmt_num(value)


def plain_text(data: DashboardData, choice: Choice) -> str:
    rows = rows_of(data, choice)
    compare = not choice.cross
    lines = [f"Fairness indicators: {plain(_title(data, choice), 160)} "
             f"({plain(_subtitle(data, choice), 300)})"]
    if data.paired:
        lines.append("values: " + " / ".join(plain(s.label, 40) for s in data.series))
    for series in data.series:
        if series.blessed is not None:
            who = f"{plain(series.label, 40)}: " if data.paired else ""
            if not series.has_thresholds:
                lines.append(who + "no thresholds in the EvalConfig (not blessed)")
                continue
            lines.append(who + ("blessed" if series.blessed else
                                f"not blessed, {len(series.failures)} failed checks"))
    table = [["slice", "size", "value", "CI"] + (["Δ baseline", "ratio"] if compare else [])
             + ["checks"]]
    for row in rows:
        name = plain(row.slice.name, 60) + (" (baseline)" if row.is_baseline else "")
        if row.slice.below_min:
            name += " (below min_slice_size)"
        values = " / ".join(_text_num(value_of(line)) for line in row.lines)
        cis = [_ci_text(line.cell) for line in row.lines]
        cols = [name, _size_text(row.slice), values, " / ".join(cis) if any(cis) else ""]
        if compare:
            diffs = " / ".join(_text_num(line.diff, True) for line in row.lines)
            ratios = " / ".join(_text_num(line.ratio) + ("×" if finite(line.ratio) else "")
                                for line in row.lines)
            cols += ["", ""] if row.is_baseline else [diffs, ratios]
        failures = sum(len(line.failures) for line in row.lines)
        cols.append(f"FAILED {failures}" if failures else "")
        table.append(cols)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    lines += _per_class_text(data, choice)
    for series in data.series:
        for failure in series.failures[:FAILURES_LISTED]:
            lines.append("  ✗ " + plain(failure.describe(), 300))
        if len(series.failures) > FAILURES_LISTED:
            lines.append(f"  … {len(series.failures) - FAILURES_LISTED} more failed checks")
    lines.append(f"Full table: {len(data.slices)} slices × {len(data.all_metrics)} metrics "
                 "(in the HTML view, or result.to_dataframe()).")
    return "\n".join(lines)


def _per_class_text(data: DashboardData, choice: Choice) -> list[str]:
    """The chosen metric per class (sub key) and slice: the text form of the per-class tables."""
    keys = [k for k in data.sub_keys_for(choice.metric) if k]
    if not keys:
        return []
    at = f" @ {choice.threshold:g}" if choice.threshold is not None else ""
    slices = [s for s in data.slices.values() if not s.cross]
    table = [["per class: " + plain(data.metric_label(choice.metric) + at, 60)]
             + [plain(s.name, 30) for s in slices]]
    series = data.series[0]
    for key in keys:
        row = [sub_key_label(key)]
        for slice_ in slices:
            cell = series.cell(choice.metric, choice.threshold, slice_.name, key)
            row.append(_text_num(cell.value) if cell is not None else "")
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]


def _ci_text(cell: Cell | None) -> str:
    if cell is None or not (finite(cell.lower) and finite(cell.upper)):
        return ""
    return f"[{fmt_num(cell.lower)}, {fmt_num(cell.upper)}]"


def _size_text(slice_: Slice) -> str:
    return fmt_num(slice_.size)




def evaluation_view(result: Any, compare_to: Any = None, metric: str | None = None,
                    threshold: float | None = None, baseline_slice: Any = None,
                    slicing: Any = None, sort: str = "metric", *,
                    labels: Sequence[str] | None = None, class_id: Any = None) -> View:
    """The static fairness dashboard of ``result`` for one choice, with the full metrics table.

    Args:
      result: a :func:`toolkit.evaluate` result, a ``tfma.EvalResult`` or a tidy
        metrics dataframe (``EvalResult.to_dataframe()``'s columns).
      compare_to: a second evaluation (e.g. the baseline model's) drawn as paired bars.
        A result evaluated with a baseline model is paired on its own.
      metric: metric name (TFMA's, or without the ``fairness_indicators_metrics/``
        prefix); default: the false positive rate if evaluated, else the first metric.
      threshold: one of the metric's thresholds; default its first.
      baseline_slice: display name (``"sex:female"``), TFMA slice key or dict; default Overall.
      slicing: a slicing spec (``"sex"``, ``["sex", "age_group"]``, ``"sex vs sex"``
        for cross slices); default every single (non-cross) slice.
      sort: ``"metric"`` (highest value first), ``"gap"`` (largest absolute
        difference to the baseline first) or ``"slice"`` (evaluation order).
      labels: names of the two evaluations when paired (default candidate, baseline).
      class_id: for a multi-class evaluation, the class to chart: a class id (``0``) or
        a TFMA sub key (``"classId:0"``, ``"topK:1"``); default the metrics without
        binarization, else the metric's first class. The full table has every class.
    """
    data = dashboard_data(result, compare_to, labels)
    choice = resolve(data, metric, threshold, baseline_slice, slicing, sort, class_id)
    uid = new_uid()
    return View(static_html(data, choice, uid), plain_text(data, choice), "Evaluation")
