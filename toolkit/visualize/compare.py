"""The comparison view: candidates' metrics per slice side by side, their blessings, the
parameters that differ in their lineages, and their curves per slice.

Drawn from a :class:`toolkit.comparison.Comparison` as static markup (inline styles, no
script, nothing fetched, every value escaped), so the same HTML is the notebook output,
a sweep's ``compare.html`` and the page ``toolkit compare`` writes, and it reads in an
untrusted notebook. The curves are the dashboard's (:mod:`.evaluation.curves`), one line
per candidate; a page stays bounded however many slices there are (``max_slices`` rows
per metric, curves of ``curve_slices`` slices), and says what it left out. In a notebook
with a live kernel :mod:`.compare_widget` adds controls over the metrics section (metric,
baseline candidate, a filter on slice names) and measures the deltas from the baseline
chosen there (:func:`rebase`).
"""
from __future__ import annotations

import json
import math
from typing import Any

from toolkit.visualize.html import (BAD, GOOD, HEADING, MUTED, NOTE, View, badge, esc, escape,
                                    fmt_num, new_uid, root, table, tag)

MAX_SLICES = 40
CURVE_SLICES = 6
MAX_METRICS = 30


def comparison_view(comparison: Any, max_slices: int = MAX_SLICES,
                    curve_slices: int = CURVE_SLICES) -> View:
    """The static view of a comparison (the page :func:`comparison_page` writes)."""
    title = f"Comparison of {len(comparison.names)} candidates"
    return View(static_html(comparison, new_uid(), max_slices, curve_slices), comparison.text(),
                title)


def static_html(comparison: Any, uid: str, max_slices: int = MAX_SLICES,
                curve_slices: int = CURVE_SLICES, baseline: str | None = None,
                first: Any = None, frame: Any = None, slice_filter: str = "",
                curves: str | None = None) -> str:
    """The whole comparison as static markup, deltas measured from ``baseline`` (default the
    first candidate), the metric group ``first`` (a key of :func:`metric_groups`) listed
    before the others, only the slices whose name contains ``slice_filter``.

    The metrics section is classed ``static_class(uid)`` so that a live widget of the same
    view can hide it (:mod:`.compare_widget`). ``frame`` is ``rebase(comparison.
    to_dataframe(), names, baseline)`` and ``curves`` the curves section when the caller
    already has them (neither depends on the other choices)."""
    names = comparison.names
    baseline = baseline if baseline in names else (names[0] if names else None)
    if frame is None:
        frame = rebase(comparison.to_dataframe(), names, baseline)
    metrics = _metrics(frame, names, max_slices, baseline, first, slice_filter)
    metrics = f'<div class="{static_class(uid)}">{metrics}</div>'
    parts = [_candidates(comparison), _parameters(comparison), metrics,
             curves_section(comparison, curve_slices) if curves is None else curves]
    title = f"Comparison of {len(names)} candidates"
    subtitle = esc(f"reference: {baseline}") if names else ""
    return root("".join(parts), uid, title, subtitle)


def static_class(uid: str) -> str:
    return f"tkc-static-{uid}"


def rebase(frame: Any, names: list[str], baseline: str | None) -> Any:
    """``frame`` (``Comparison.to_dataframe()``) with ``delta`` and ``distinct`` measured
    from ``baseline`` instead of the first candidate (the frame itself when it is the first)."""
    from toolkit.comparison import measured_from

    if not names or baseline is None or baseline == names[0] or frame.empty:
        return frame
    return measured_from(frame, baseline, frame.columns)


def metric_groups(frame: Any) -> list[tuple[tuple[str, str, float], Any]]:
    """The tables of the metrics section: ``((metric, sub_key, threshold), rows)`` in the
    frame's order, the threshold NaN for metrics without one (``_diff`` metrics left out)."""
    if frame.empty:
        return []
    frame = frame[~frame["metric"].str.endswith("_diff")]
    keyed = frame.assign(threshold_key=frame["threshold"].fillna(-math.inf))
    found = []
    for (metric, sub_key, threshold), group in keyed.groupby(
            ["metric", "sub_key", "threshold_key"], sort=False):
        found.append(((metric, sub_key, threshold if math.isfinite(threshold) else math.nan),
                      group))
    return found


def group_label(key: tuple[str, str, float]) -> str:
    """A metric table's heading, e.g. ``binary_accuracy at threshold 0.5``."""
    return _metric_label(*key)


def comparison_page(comparison: Any, title: str | None = None, before: str = "") -> str:
    """The view as one self-contained page; ``before`` is trusted markup put above it."""
    view = comparison_view(comparison)
    heading = title or view.title
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(heading)}</title></head>"
            "<body style=\"font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:16px\">"
            + (tag("h1", esc(title), "font-size:1.3em;margin:0 0 6px 0") if title else "")
            + before + f"{view.html}</body></html>\n")


def _section(name: str) -> str:
    return tag("div", escape(name), HEADING)


def _candidates(comparison: Any) -> str:
    blessing = comparison.blessing()
    rows = []
    for candidate, (_, row) in zip(comparison.candidates, blessing.iterrows()):
        verdict = {True: badge("blessed", GOOD), False: badge("NOT blessed", BAD)}.get(
            row["blessed"], tag("span", "no thresholds", NOTE))
        failed = "<br>".join(esc(line, 300) for line in row["failed"]) or tag("span", "–", NOTE)
        rows.append([esc(candidate.name), verdict, esc(row["checks"]), failed,
                     tag("span", esc(candidate.source, 300), NOTE)])
    return (_section("Candidates")
            + table(["candidate", "blessing", "checks", "failed checks", "from"], rows,
                    numeric=[2], top=True))


def _parameters(comparison: Any) -> str:
    differing = comparison.parameters()
    if not any(c.store is not None and c.evaluation is not None for c in comparison.candidates):
        return (_section("Parameters that differ")
                + tag("div", esc("No lineage: no candidate was read from a metadata store."), NOTE))
    if not len(differing):
        return (_section("Parameters that differ")
                + tag("div", esc("None: every parameter and input recorded upstream of the "
                                 "evaluations is the same."), NOTE))
    rows = []
    for record in differing.itertuples(index=False):
        rows.append([esc(record[0]), esc(record[1])] + [_code(v) for v in record[2:]])
    return (_section("Parameters that differ")
            + table(["component", "parameter", *comparison.names], rows, top=True))


def _code(value: Any) -> str:
    if value is None:
        return tag("span", "–", NOTE)
    shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return tag("code", esc(shown, 400), "white-space:pre-wrap;word-break:break-word")


def _metric_label(metric: str, sub_key: str, threshold: float) -> str:
    label = metric + (f" ({sub_key})" if sub_key else "")
    return label + (f" at threshold {threshold:g}" if not math.isnan(threshold) else "")


def _metrics(frame: Any, names: list[str], max_slices: int, baseline: str | None = None,
             first: Any = None, slice_filter: str = "") -> str:
    if frame.empty:
        return _section("Metrics per slice") + tag("div", "No metrics.", NOTE)
    baseline = baseline or names[0]
    groups = metric_groups(frame)
    chosen = [g for g in groups if _same(g[0], first)]
    groups = chosen + [g for g in groups if not _same(g[0], first)]
    parts = [_section("Metrics per slice"),
             tag("div", esc(f"Each cell: value [interval] and, after the first candidate, the "
                            f"difference to {baseline}; bold where the intervals do not "
                            "overlap.") if baseline == names[0] else
                 esc(f"Each cell: value [interval] and, for every candidate but {baseline}, "
                     f"the difference to {baseline}; bold where the intervals do not "
                     "overlap."), NOTE)]
    if slice_filter.strip():
        every = list(dict.fromkeys(frame["slice"]))
        found = sum(1 for name in every if matches(name, slice_filter))
        parts.append(tag("div", esc(f"Only the slices whose name contains "
                                    f"“{slice_filter.strip()}”: {found:,} of {len(every):,}."),
                         NOTE))
    for key, group in groups[:MAX_METRICS]:
        slices = [name for name in dict.fromkeys(group["slice"])
                  if matches(name, slice_filter)]
        parts.append(tag("div", esc(group_label(key)), "font-weight:600;margin:8px 0 0 0"))
        parts.append(metric_table(group, names, baseline, slices[:max_slices]) if slices
                     else tag("div", "No slice matches.", NOTE))
        if len(slices) > max_slices:
            parts.append(tag("div", esc(f"… {len(slices) - max_slices} more slices: "
                                        "comparison.to_dataframe() has every one"), NOTE))
    if len(groups) > MAX_METRICS:
        parts.append(tag("div", esc(f"… {len(groups) - MAX_METRICS} more metrics: "
                                    "comparison.to_dataframe() has every one"), NOTE))
    return "".join(parts)


def metric_table(group: Any, names: list[str], baseline: str, slices: list[str]) -> str:
    """One metric's table: a row per slice in ``slices``, a column per candidate, the
    difference to ``baseline`` under every other candidate's value."""
    cells = {(r.slice, r.candidate): r for r in group.itertuples(index=False)}
    rows = [[esc(name)] + [_cell(cells.get((name, candidate)), candidate != baseline)
                           for candidate in names] for name in slices]
    return table(["slice", *names], rows, numeric=range(1, len(names) + 1))


def matches(name: str, text: str) -> bool:
    """Whether slice ``name`` contains ``text`` (case-insensitive; empty text matches all)."""
    text = text.strip().casefold()
    return not text or text in str(name).casefold()


def _same(key: tuple[str, str, float], other: Any) -> bool:
    if other is None:
        return False
    return key[:2] == tuple(other[:2]) and (key[2] == other[2] or (
        math.isnan(key[2]) and math.isnan(other[2])))


def _cell(record: Any, with_delta: bool) -> str:
    if record is None:
        return tag("span", "–", NOTE)
    text = fmt_num(record.value)
    if _finite(record.lower) and _finite(record.upper):
        text += tag("span", f" [{fmt_num(record.lower)}, {fmt_num(record.upper)}]",
                    f"color:{MUTED}")
    if with_delta and _finite(record.delta):
        delta = f"{record.delta:+.3g}"
        text += "<br>" + (tag("b", escape(delta)) if record.distinct
                          else tag("span", escape(delta), NOTE))
    return text


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def curves_section(comparison: Any, curve_slices: int) -> str:
    """ROC, precision-recall and calibration of each slice, one line per candidate."""
    from toolkit.evaluation.slicing import slice_display
    from toolkit.visualize.evaluation.curves import curves_html, from_values

    drawable = [[sm for sm in c.result.slices
                 if not (sm.error or sm.is_cross or sm.empty or not sm.plots)]
                for c in comparison.candidates]
    names = list(dict.fromkeys(slice_display(sm.key) for slices in drawable for sm in slices))
    chosen = set(names[:curve_slices])  # only the slices drawn are computed
    by_slice: dict[str, list] = {}
    for candidate, slices in zip(comparison.candidates, drawable):
        model = candidate.model_name
        for sm in slices:
            if slice_display(sm.key) not in chosen:
                continue
            values = {key: value for key, value in sm.plots.items()
                      if not key.sub_key and (model is None or key.model_name in (model, ""))
                      and getattr(value, "plot", "")}
            curves = from_values(candidate.name, values) if values else None
            if curves is not None:
                by_slice.setdefault(slice_display(sm.key), []).append(curves)
    if not by_slice:
        return ""
    shown = [name for name in names if name in by_slice]
    parts = [_section("Curves per slice")]
    parts += [curves_html(by_slice[name], name) for name in shown]
    if len(names) > curve_slices:
        parts.append(tag("div", esc(f"… curves of {len(names) - curve_slices} more slices "
                                    "are left out"), NOTE))
    return "".join(parts)
