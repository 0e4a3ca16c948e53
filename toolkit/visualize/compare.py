"""The comparison view: candidates' metrics per slice side by side, their blessings, the
parameters that differ in their lineages, and their curves per slice.

Drawn from a :class:`toolkit.comparison.Comparison` as static markup (inline styles, no
script, nothing fetched, every value escaped), so the same HTML is the notebook output,
a sweep's ``compare.html`` and the page ``toolkit compare`` writes, and it reads in an
untrusted notebook. The curves are the dashboard's (:mod:`.evaluation.curves`), one line
per candidate; a page stays bounded however many slices there are (``max_slices`` rows
per metric, curves of ``curve_slices`` slices), and says what it left out.
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
    """The view of a comparison (``toolkit.show(comparison)``, its ``_repr_html_``)."""
    names = comparison.names
    frame = comparison.to_dataframe()
    parts = [_candidates(comparison), _parameters(comparison),
             _metrics(frame, names, max_slices), _curves(comparison, curve_slices)]
    title = f"Comparison of {len(names)} candidates"
    subtitle = esc(f"reference: {names[0]}") if names else ""
    return View(root("".join(parts), new_uid(), title, subtitle), comparison.text(), title)


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


def _metrics(frame: Any, names: list[str], max_slices: int) -> str:
    if frame.empty:
        return _section("Metrics per slice") + tag("div", "No metrics.", NOTE)
    frame = frame[~frame["metric"].str.endswith("_diff")]
    keyed = frame.assign(threshold_key=frame["threshold"].fillna(-math.inf))
    groups = list(keyed.groupby(["metric", "sub_key", "threshold_key"], sort=False))
    parts = [_section("Metrics per slice"),
             tag("div", esc(f"Each cell: value [interval] and, after the first candidate, the "
                            f"difference to {names[0]}; bold where the intervals do not "
                            "overlap."), NOTE)]
    for (metric, sub_key, threshold), group in groups[:MAX_METRICS]:
        slices = list(dict.fromkeys(group["slice"]))
        cells = {(r.slice, r.candidate): r for r in group.itertuples(index=False)}
        rows = []
        for slice_name in slices[:max_slices]:
            row = [esc(slice_name)]
            for i, name in enumerate(names):
                record = cells.get((slice_name, name))
                row.append(_cell(record, i > 0))
            rows.append(row)
        thr = threshold if math.isfinite(threshold) else math.nan
        parts.append(tag("div", esc(_metric_label(metric, sub_key, thr)),
                         "font-weight:600;margin:8px 0 0 0"))
        parts.append(table(["slice", *names], rows, numeric=range(1, len(names) + 1)))
        if len(slices) > max_slices:
            parts.append(tag("div", esc(f"… {len(slices) - max_slices} more slices: "
                                        "comparison.to_dataframe() has every one"), NOTE))
    if len(groups) > MAX_METRICS:
        parts.append(tag("div", esc(f"… {len(groups) - MAX_METRICS} more metrics: "
                                    "comparison.to_dataframe() has every one"), NOTE))
    return "".join(parts)


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


def _curves(comparison: Any, curve_slices: int) -> str:
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
