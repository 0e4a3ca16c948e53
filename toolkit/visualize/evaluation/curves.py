"""ROC, precision-recall and calibration curves of a slice, as static SVG images.

Drawn from the stored plot values (TFMA's ``ConfusionMatrixPlot`` and
``CalibrationPlot``, whichever engine computed them), one line per model: the
candidate and, when present, the baseline model or the compared evaluation. The
SVG is plain markup made here (no script, no stylesheet, nothing fetched), embedded
as an ``<img>`` of a ``data:`` URI because JupyterLab's sanitizer removes inline
``<svg>`` from untrusted output and keeps images; so it shows in untrusted notebooks,
in exported HTML and in the live widget alike. Every label goes through
:func:`~toolkit.visualize.html.esc` (valid XML too).

Only the chosen slice (the dashboard's baseline slice, Overall by default) is drawn,
so the page stays small however many slices there are, and each line is thinned:
TFMA's 1,000 thresholds collapse to the distinct points, then to points at least
:data:`MIN_STEP` apart (the ends kept); a calibration curve with more than
:data:`MAX_BUCKETS` occupied buckets has neighbouring buckets merged (weighted sums
added, so each drawn point is still a mean prediction and a mean label).
"""
from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from toolkit.visualize.html import MUTED, NOTE, PALETTE, esc, tag

#: Drawing area (pixels) and margins of one chart.
SIZE = 180
LEFT, TOP, RIGHT, BOTTOM = 38, 10, 10, 34
#: Points closer than this (in the unit square) to the last kept one are dropped.
MIN_STEP = 0.004
MAX_BUCKETS = 40
CONFUSION_FIELD = "confusionMatrixAtThresholds"
CALIBRATION_FIELD = "calibrationHistogramBuckets"


@dataclass
class ModelCurves:
    """One model's drawable curves in one slice."""

    label: str
    roc: list[tuple[float, float]] = field(default_factory=list)  # (false positive rate, recall)
    pr: list[tuple[float, float]] = field(default_factory=list)  # (recall, precision)
    calibration: list[tuple[float, float]] = field(default_factory=list)  # (mean prediction, mean label)


# ----------------------------------------------------------------------------- points


def confusion_points(counts: Any) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """ROC (fpr, tpr) and precision-recall (recall, precision) points from (tp, tn, fp, fn) rows.

    Precision is 1 where nothing is predicted positive and recall 0 without positives,
    as TFMA writes them; points with an undefined rate are left out.
    """
    from toolkit.evaluation.values import confusion_fields

    fields = confusion_fields(np.asarray(counts, float).reshape(-1, 4))
    roc = _distinct(zip(fields["false_positive_rate"], fields["recall"]))
    pr = _distinct(zip(fields["recall"], fields["precision"]))
    return roc, pr


def calibration_points(sums: Any) -> list[tuple[float, float]]:
    """(mean prediction, mean label) of each occupied bucket, from (labels, predictions, weight) rows."""
    sums = np.asarray(sums, float).reshape(-1, 3)
    sums = sums[sums[:, 2] > 0]
    if len(sums) > MAX_BUCKETS:
        groups = np.arange(len(sums)) * MAX_BUCKETS // len(sums)
        sums = np.stack([np.bincount(groups, weights=sums[:, i]) for i in range(3)], axis=1)
    return [(float(p / w), float(y / w)) for y, p, w in sums if math.isfinite(p / w) and math.isfinite(y / w)]


def _distinct(points) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for x, y in points:
        x, y = float(x), float(y)
        if math.isfinite(x) and math.isfinite(y) and (not out or out[-1] != (x, y)):
            out.append((x, y))
    return out


def thin(points: Sequence[tuple[float, float]], step: float = MIN_STEP) -> list[tuple[float, float]]:
    """The points at least ``step`` from the last kept one, first and last always kept."""
    if len(points) <= 2:
        return list(points)
    kept = [points[0]]
    for x, y in points[1:-1]:
        if math.hypot(x - kept[-1][0], y - kept[-1][1]) >= step:
            kept.append((x, y))
    kept.append(points[-1])
    return kept


def from_values(label: str, values: Mapping[str, Any]) -> ModelCurves | None:
    """A model's curves from its typed plot values (``MetricValue`` with ``plot`` set)."""
    curves = ModelCurves(label)
    for value in values.values():
        kind = getattr(value, "plot", "")
        if kind == "confusion_plot" and not curves.roc:
            curves.roc, curves.pr = confusion_points(value.value)
        elif kind == "calibration_plot" and not curves.calibration:
            curves.calibration = calibration_points(value.value)
    return curves if (curves.roc or curves.calibration) else None


def from_tfma_dict(label: str, plots: Mapping[str, Any]) -> ModelCurves | None:
    """A model's curves from TFMA's JSON form (``{"confusionMatrixAtThresholds": ...}``)."""
    curves = ModelCurves(label)
    matrices = (plots.get(CONFUSION_FIELD) or {}).get("matrices") or []
    if matrices:
        names = ("truePositives", "trueNegatives", "falsePositives", "falseNegatives")
        counts = [[_number(m.get(n, 0.0)) for n in names] for m in matrices]
        curves.roc, curves.pr = confusion_points(counts)
    buckets = (plots.get(CALIBRATION_FIELD) or {}).get("buckets") or []
    if buckets:
        names = ("totalWeightedLabel", "totalWeightedRefinedPrediction", "numWeightedExamples")
        curves.calibration = calibration_points([[_number(b.get(n, 0.0)) for n in names] for b in buckets])
    return curves if (curves.roc or curves.calibration) else None


def _number(value: Any) -> float:
    if isinstance(value, Mapping):
        value = value.get("value", 0.0)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ----------------------------------------------------------------------------- drawing


def px(x: float, y: float) -> tuple[float, float]:
    """Pixel position of a point of the unit square (y up), rounded to 0.1 px."""
    return round(LEFT + x * SIZE, 1), round(TOP + (1.0 - y) * SIZE, 1)


def _points_attr(points: Sequence[tuple[float, float]]) -> str:
    return " ".join("%g,%g" % px(min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)) for x, y in points)


def svg_chart(title: str, x_label: str, y_label: str, lines: Sequence[tuple[str, str, list]],
              diagonal: str = "", markers: bool = False) -> str:
    """One square chart: axes from 0 to 1, an optional reference diagonal, a polyline per
    ``(label, colour, points)``; ``markers`` adds a dot per point (calibration buckets)."""
    width, height = LEFT + SIZE + RIGHT, TOP + SIZE + BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" data-curve="{esc(title)}">'
             f"<title>{esc(title)}</title>"]
    x0, y0 = px(0, 0)
    x1, y1 = px(1, 1)
    parts.append(f'<rect x="{x0}" y="{y1}" width="{SIZE}" height="{SIZE}" fill="none" stroke="#dadce0"/>')
    for t in (0.0, 0.5, 1.0):
        tx, _ = px(t, 0)
        _, ty = px(0, t)
        parts.append(f'<text x="{tx}" y="{y0 + 12}" font-size="10" text-anchor="middle" fill="{MUTED}">{t:g}</text>')
        parts.append(f'<text x="{x0 - 4}" y="{ty + 3}" font-size="10" text-anchor="end" fill="{MUTED}">{t:g}</text>')
    parts.append(f'<text x="{(x0 + x1) / 2}" y="{y0 + 27}" font-size="11" text-anchor="middle">{esc(x_label)}</text>')
    parts.append(f'<text x="12" y="{(y0 + y1) / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {(y0 + y1) / 2})">{esc(y_label)}</text>')
    if diagonal:
        parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bdc1c6" '
                     f'stroke-dasharray="4 3" data-line="{esc(diagonal)}"/>')
    for label, colour, points in lines:
        if not points:
            continue
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" '
                     f'data-model="{esc(label)}" points="{_points_attr(points)}"><title>{esc(label)}</title></polyline>')
        if markers:
            parts += [f'<circle cx="{cx:g}" cy="{cy:g}" r="2.2" fill="{colour}"/>'
                      for cx, cy in (px(min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)) for x, y in points)]
    parts.append("</svg>")
    return "".join(parts)


def curves_html(models: Sequence[ModelCurves], slice_name: str) -> str:
    """The three charts of one slice side by side, with a legend naming each model's colour."""
    if not models:
        return ""
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(models))]
    charts = []
    if any(m.roc for m in models):
        charts.append(svg_chart(f"ROC curve: {slice_name}", "false positive rate", "true positive rate",
                                [(m.label, c, thin(m.roc)) for m, c in zip(models, colours)], diagonal="chance"))
    if any(m.pr for m in models):
        charts.append(svg_chart(f"Precision-recall curve: {slice_name}", "recall", "precision",
                                [(m.label, c, thin(m.pr)) for m, c in zip(models, colours)]))
    if any(m.calibration for m in models):
        charts.append(svg_chart(f"Calibration curve: {slice_name}", "mean prediction", "mean label",
                                [(m.label, c, m.calibration) for m, c in zip(models, colours)],
                                diagonal="perfect calibration", markers=True))
    legend = ""
    if len(models) > 1 or models[0].label:
        legend = " ".join(
            f'<span style="white-space:nowrap"><span style="display:inline-block;width:14px;height:3px;'
            f'background:{c};vertical-align:middle;margin-right:4px"></span>{esc(m.label or "model")}</span>'
            for m, c in zip(models, colours))
    head = tag("div", esc(f"Curves of slice {slice_name}"), "font-weight:600;margin:10px 0 2px 0")
    note = tag("div", esc("From the evaluation's ConfusionMatrixPlot and CalibrationPlot (TFMA's values); "
                             "other slices: choose them as the baseline slice."), NOTE)
    body = "".join(f'<div style="display:inline-block;vertical-align:top;margin-right:8px">{image(c)}</div>'
                   for c in charts)
    return f'<div class="tk-curves">{head}{tag("div", legend) if legend else ""}{body}{note}</div>'


def image(svg: str) -> str:
    """``svg`` as an ``<img>`` of a ``data:`` URI: notebook front ends strip inline ``<svg>``
    from untrusted output but keep images, and an SVG shown as an image can run no script
    and load nothing."""
    title = re.search(r"<title>(.*?)</title>", svg).group(1)
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    width, height = LEFT + SIZE + RIGHT, TOP + SIZE + BOTTOM
    return (f'<img src="data:image/svg+xml;base64,{encoded}" width="{width}" height="{height}" '
            f'alt="{title}" title="{title}">')


def chosen_curves_html(data: Any, choice: Any) -> str:
    """The curves of the dashboard's chosen (baseline) slice and class, "" when not evaluated."""
    models = getattr(data, "curves", {}).get((choice.baseline, choice.sub_key), [])
    return curves_html(models, choice.baseline)
