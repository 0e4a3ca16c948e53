"""Pushed versions side by side: one metric per slice across every version of a serving
directory, and where a version's gap crossed the gate that decided it.

Before promoting or rolling back, the question is how a metric moved from version to
version on each slice, and which versions were let through close to (or past) a
threshold. :func:`show_versions` reads each version's blessing evaluation
(:func:`toolkit.comparison.version_candidates`: ``toolkit-push.json`` names the blessing, the
store the evaluation) and draws one row per slice and one column per version in push
order: the value with its interval, its gap to the baseline slice, and the threshold the
version was checked against there; a cell is red where that check failed. Static markup
(no script, nothing fetched, every value escaped), so it reads in untrusted notebooks and
as the page ``toolkit models compare`` writes beside the versions.
"""
from __future__ import annotations

import math
import os
import re
from typing import Any, Sequence

from toolkit.visualize.html import (BAD, GOOD, NOTE, View, badge, display_view, esc, escape,
                                    fmt_num, new_uid, root, table, tag)

RED_CELL = f"background:rgba(198,40,40,0.14);color:{BAD}"


def show_versions(serving_dir: str | os.PathLike, metric: str | None = None,
                  threshold: float | None = None, slices: Sequence[str] | None = None,
                  baseline: Any = None, metadata_connection_config: Any = None) -> View:
    """Display ``metric`` (default: the metric the newest version's thresholds checked,
    else ``auc``) of every slice across the pushed versions of ``serving_dir``; returns the
    view. ``threshold`` picks one threshold of a metric computed at several, ``slices``
    limits and orders the rows (display names: ``"Overall"``, ``"sex:female"``),
    ``baseline`` is the slice gaps are measured from (default Overall)."""
    return display_view(versions_view(serving_dir, metric, threshold, slices, baseline,
                                      metadata_connection_config))


def versions_view(serving_dir: str | os.PathLike, metric: str | None = None,
                  threshold: float | None = None, slices: Sequence[str] | None = None,
                  baseline: Any = None, metadata_connection_config: Any = None) -> View:
    """The view :func:`show_versions` displays, without displaying it."""
    from toolkit.comparison import version_candidates
    from toolkit.errors import ToolkitError

    candidates = version_candidates(serving_dir, metadata_connection_config)
    readable = [c for c in candidates if c.result is not None]
    metric = metric or _default_metric(readable)
    base = _baseline_name(baseline)
    columns = []  # per version: {slice: (value, lower, upper, gap, check)}
    order: list[str] = []
    for candidate in candidates:
        cells = _version_cells(candidate, metric, threshold, base) if candidate.result is not None else {}
        order += [name for name in cells if name not in order]
        columns.append(cells)
    if readable and not order:
        known = sorted({str(m) for c in readable for m in c.result.to_dataframe()["metric"]})
        raise ToolkitError(f"no version has metric {metric!r}; known metrics: {', '.join(known)}")
    rows_order = [s for s in slices] if slices is not None else (
        ([base] if base in order else []) + [s for s in order if s != base])
    headers = ["slice"] + [c.name for c in candidates]
    rows = []
    for name in rows_order:
        row = [esc(name)]
        for cells in columns:
            row.append(_cell(cells.get(name), name == base))
        rows.append(row)
    heads = []
    for candidate in candidates:
        if candidate.result is None:
            heads.append(tag("span", esc(f"{candidate.name}: {candidate.source}"), NOTE))
        else:
            verdict = badge("blessed", GOOD) if candidate.result.blessed else badge("NOT blessed", BAD)
            heads.append(f"{esc(candidate.name)} {verdict}")
    label = metric + (f" at threshold {threshold:g}" if threshold is not None else "")
    title = f"{label} across {len(candidates)} pushed versions"
    body = (tag("div", " · ".join(heads), "margin:2px 0 6px 0")
            + table(headers, rows, numeric=range(1, len(headers)))
            + tag("div", esc(f"Each cell: the value [interval], the gap to {base}, and the "
                             "threshold the version was checked against on that slice; red "
                             "where that check failed. Versions in push order (a rollback is "
                             "a new version)."), NOTE))
    text = _text(label, headers, rows_order, columns, base)
    return View(root(body, new_uid(), title, esc(os.fspath(serving_dir))), text, title)


def versions_page(serving_dir: str | os.PathLike, **options: Any) -> str:
    """The view as one self-contained page."""
    view = versions_view(serving_dir, **options)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(view.title)}</title></head>"
            "<body style=\"font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:16px\">"
            f"{view.html}</body></html>\n")


def _baseline_name(baseline: Any) -> str:
    if baseline is None or baseline == ():
        return "Overall"
    if isinstance(baseline, str):
        return baseline
    from toolkit.evaluation.slicing import slice_display

    if isinstance(baseline, dict):
        baseline = tuple(sorted(baseline.items()))
    return slice_display(tuple(tuple(p) for p in baseline))


def _default_metric(candidates: list) -> str:
    for candidate in reversed(candidates):
        for check in getattr(candidate.result.validation, "checks", []) or []:
            return _split(check.metric)[0]
    names = [str(m) for c in candidates[-1:] for m in c.result.to_dataframe()["metric"]]
    return "auc" if "auc" in names or not names else names[0]


def _split(name: str) -> tuple[str, float | None]:
    """``metric@0.5`` -> (metric, 0.5)."""
    match = re.fullmatch(r"(.+)@([-+0-9.eE]+)", name)
    return (match.group(1), float(match.group(2))) if match else (name, None)


def _version_cells(candidate: Any, metric: str, threshold: float | None,
                   base: str) -> dict[str, tuple]:
    frame = candidate.result.to_dataframe()
    model = candidate.model_name
    if model is not None and (frame["model"] == model).any():
        frame = frame[frame["model"] == model]
    frame = frame[(frame["metric"] == metric) & (frame["sub_key"].fillna("") == "")]
    if threshold is not None:
        frame = frame[(frame["threshold"] - threshold).abs() < 1e-9]
    elif frame["threshold"].notna().any():  # several thresholds: the first one
        first = frame["threshold"].dropna().iloc[0]
        frame = frame[frame["threshold"] == first]
    values = {r.slice: r for r in frame.itertuples(index=False)}
    reference = values.get(base)
    checks = {}
    for check in getattr(candidate.result.validation, "checks", []) or []:
        name, at = _split(check.metric)
        if name == metric and not check.sub_key and (threshold is None or at is None
                                                     or abs(at - threshold) < 1e-9):
            checks[check.slice] = check
    cells = {}
    for name, r in values.items():
        gap = (float(r.value) - float(reference.value)) if reference is not None else math.nan
        cells[name] = (float(r.value), float(r.lower), float(r.upper), gap, checks.get(name))
    return cells


def _cell(cell: tuple | None, is_base: bool) -> str:
    if cell is None:
        return tag("span", "–", NOTE)
    value, lower, upper, gap, check = cell
    text = escape(fmt_num(value))
    if math.isfinite(lower) and math.isfinite(upper):
        text += tag("span", escape(f" [{fmt_num(lower)}, {fmt_num(upper)}]"), NOTE)
    if not is_base and math.isfinite(gap):
        text += "<br>" + tag("span", escape(f"gap {gap:+.3g}"), NOTE)
    if check is not None:
        rule = check.threshold.describe() if hasattr(check.threshold, "describe") else str(check.threshold)
        state = "passed" if check.passed else "FAILED"
        text += "<br>" + tag("span", escape(f"needs {rule}: {state}"), NOTE if check.passed else "")
        if not check.passed:
            return tag("div", text, RED_CELL + ";padding:2px 4px", title=f"failed: needs {rule}")
    return text


def _text(label: str, headers: list[str], order: list[str], columns: list[dict],
          base: str) -> str:
    lines = [label]
    table_rows = [headers]
    for name in order:
        row = [name]
        for cells in columns:
            cell = cells.get(name)
            if cell is None:
                row.append("-")
                continue
            value, _, _, gap, check = cell
            shown = fmt_num(value)
            if name != base and math.isfinite(gap):
                shown += f" ({gap:+.3g})"
            if check is not None and not check.passed:
                shown += " FAILED"
            row.append(shown)
        table_rows.append(row)
    widths = [max(len(r[i]) for r in table_rows) for i in range(len(headers))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table_rows]
    from toolkit._text import show_controls

    return show_controls("\n".join(lines))
