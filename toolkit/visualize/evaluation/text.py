"""The dashboard's plain-text form: the rows the chart lists (the same selection as the
HTML), the per-class values, failed checks; for consoles, papermill logs and ``repr``."""
from __future__ import annotations

from toolkit.visualize.evaluation.model import (Cell, Choice, DashboardData, Slice, finite,
                                                sub_key_label, value_of)
from toolkit.visualize.evaluation.static import (CLIP_NOTE, FAILURES_LISTED, Chart,
                                                 choice_subtitle, choice_title, interval_text,
                                                 is_clipped)
from toolkit.visualize.html import fmt_num, plain


def _text_num(value: float, signed: bool = False) -> str:
    if not finite(value):
        return "–"
    return ("+" if signed and value > 0 else "") + fmt_num(value)


def plain_text(data: DashboardData, choice: Choice, chart: Chart | None = None) -> str:
    """The text/plain form: the default rows of the chart (the same selection as the HTML)."""
    chart = chart or Chart(data, choice)
    sel = chart.selection
    compare, unit = chart.compare, chart.unit
    lines = [f"Fairness indicators: {plain(choice_title(data, choice), 160)} "
             f"({plain(choice_subtitle(data, choice), 300)})"]
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
    if sel.hidden:
        lines.append(plain(chart.summary(), 300))
    table = [["slice", "size", "value", "CI"] + (["Δ baseline", "ratio"] if compare else [])
             + ["checks"]]
    clipped = False
    for row in sel.shown:
        name = plain(row.slice.name, 60) + (" (baseline)" if row.is_baseline else "")
        if row.slice.below_min:
            name += " (below min_slice_size)"
        values = " / ".join(_text_num(value_of(line)) for line in row.lines)
        cis = [_ci_text(line.cell, unit) for line in row.lines]
        clipped = clipped or any(is_clipped(line.cell, unit) for line in row.lines)
        cols = [name, _size_text(row.slice), values, " / ".join(cis) if any(cis) else ""]
        if compare:
            diffs = " / ".join(_text_num(line.diff, True) for line in row.lines)
            ratios = " / ".join(_text_num(line.ratio) + ("×" if finite(line.ratio) else "")
                                for line in row.lines)
            cols += ["", ""] if row.is_baseline else [diffs, ratios]
        failures = sum(len(line.failures) for line in row.lines)
        others = sum(line.other_failures for line in row.lines)
        cols.append(f"FAILED {failures}" if failures else
                    f"{others} other failed check{'s' if others > 1 else ''}" if others else "")
        table.append(cols)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if sel.hidden:
        lines.append(f"  … {sel.hidden:,} more slices not listed: toolkit.show(result, top=None) "
                     "lists every slice.")
    if clipped:
        lines.append(CLIP_NOTE)
    lines += _per_class_text(data, choice, [row.slice for row in sel.shown if not row.slice.cross])
    for series in data.series:
        for failure in series.failures[:FAILURES_LISTED]:
            lines.append("  ✗ " + plain(failure.describe(), 300))
        if len(series.failures) > FAILURES_LISTED:
            lines.append(f"  … {len(series.failures) - FAILURES_LISTED} more failed checks")
    lines.append(f"Full table: {len(data.slices):,} slices × {len(data.all_metrics)} metrics "
                 "(result.to_dataframe()).")
    return "\n".join(lines)


def _per_class_text(data: DashboardData, choice: Choice, slices: list[Slice]) -> list[str]:
    """The chosen metric per class (sub key) and slice: the text form of the per-class tables,
    for the ``slices`` the chart lists."""
    keys = [k for k in data.sub_keys_for(choice.metric) if k]
    if not keys or not slices:
        return []
    at = f" @ {choice.threshold:g}" if choice.threshold is not None else ""
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


def _ci_text(cell: Cell | None, unit: bool = False) -> str:
    if cell is None or not (finite(cell.lower) and finite(cell.upper)):
        return ""
    return interval_text(cell, unit).replace("\u00a0", " ")


def _size_text(slice_: Slice) -> str:
    return fmt_num(slice_.size)
