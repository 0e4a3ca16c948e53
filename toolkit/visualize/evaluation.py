"""The per-slice fairness dashboard: Fairness Indicators' feature set as offline HTML.

For one metric and threshold it draws a bar per slice (with its confidence
interval), marks the baseline slice, gives each slice's difference and ratio to
that baseline, its size, greys slices below ``min_slice_size`` and flags failed
thresholds; a full table holds every slice, metric and threshold. A second
evaluation (``compare_to=``, or a baseline model inside the result) is drawn as
paired bars.

How it displays, and why:

* Bars are ``div``s with inline styles only. JupyterLab strips ``<script>``,
  ``<style>`` and inline ``<svg>`` from untrusted output (papermill's), and
  nbconvert's HTML cannot run widgets offline, so nothing a reader needs may
  depend on scripts, stylesheets or SVG.
* :class:`EvaluationDashboard` displays **two outputs**: first the ipywidgets
  dashboard (controls plus a chart in an ``HTML`` widget), then a static
  output with the same chart for the current choices and the full table. The
  widget's HTML carries one ``<style>`` rule that hides the static chart of the
  same dashboard (a class unique to it). Where the widget renders (a live
  kernel), that rule exists and only the widget's chart is seen; wherever the
  widget cannot render (untrusted notebook, kernel-less reopen, nbconvert HTML
  offline, VS Code without the widget manager) the rule never reaches the page
  and the static chart shows. The full table is never hidden, so it is never
  duplicated in the widget either.
* A single bundle holding both the widget and ``text/html`` was rejected: a
  front end renders one mimetype per output, and both JupyterLab (a trusted
  notebook reopened without its kernel: "model not found") and nbconvert
  (papermill stores widget state, so the widget view wins and is empty offline)
  pick the widget where it cannot render.
* When a control changes, the static output is updated in place (its display
  id), so a saved or exported notebook shows what the user last chose.

Importing this module does not import TensorFlow, TFMA or ipywidgets; the
dashboard imports ipywidgets when it is first displayed.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

from toolkit.errors import ToolkitError
from toolkit.visualize.html import (BAD, GOOD, MUTED, NOTE, PALETTE, ROW, SHADE, TABLE,
                                    TABLE_ATTRS, TD, TH_LEFT, TH_RIGHT, View, badge, esc, escape,
                                    fmt_num, is_kernel, new_uid, plain, root, swatch, tag)

__all__ = ["Choice", "EvaluationDashboard", "dashboard", "evaluation_view", "load_evaluation",
           "register"]

FAIRNESS_PREFIX = "fairness_indicators_metrics/"
#: Default metric, in order of preference: the false positive rate under its usual names.
DEFAULT_METRICS = (FAIRNESS_PREFIX + "false_positive_rate", "false_positive_rate", "fpr",
                   "fall_out")
COUNT_METRICS = ("example_count", "weighted_example_count")
ALL_SLICES = "__all__"
OVERALL = "Overall"
SORTS = {"metric": "metric value", "gap": "gap to baseline", "slice": "slice order"}
DEFAULT_LABELS = ("candidate", "baseline")

BAR_WIDTH = 220
TRACK_HEIGHT = 14
INK = "#5f6368"
GREYED = "opacity:0.45"
FAILURES_LISTED = 12
TABLE_OPEN_ROWS = 60
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
LIVE_NOTE = ("Interactive controls (metric, threshold, baseline, slicing, sort) appear here when "
             "the notebook runs with a live kernel; the static dashboard follows.")


# --------------------------------------------------------------------------
# Data: one series of tidy records per evaluated model
# --------------------------------------------------------------------------

def _float(value: Any) -> float:
    """A number from a tidy cell; NaN for missing values (None, pandas NA, text)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def _tkey(threshold: Any) -> float | None:
    """Thresholds as dictionary keys: rounded floats, None for metrics without one."""
    value = _float(threshold)
    return None if math.isnan(value) else round(value, 9)


def _short(metric: str) -> str:
    return metric[len(FAIRNESS_PREFIX):] if metric.startswith(FAIRNESS_PREFIX) else metric


@dataclass
class _Slice:
    name: str
    key: Any
    spec: str
    cross: bool
    size: int | None
    below_min: bool
    note: str = ""


@dataclass
class _Cell:
    value: float
    lower: float
    upper: float
    note: str = ""


@dataclass(frozen=True)
class _Failure:
    """A failed threshold check, tied to a slice and (when it names one) a threshold."""

    slice: str
    metric: str
    threshold: float | None
    rule: str
    value: float
    message: str

    def describe(self) -> str:
        at = f"@{self.threshold:g}" if self.threshold is not None else ""
        shown = "missing" if math.isnan(self.value) else fmt_num(self.value)
        text = f"{self.slice}: {self.metric}{at} = {shown}, needs {self.rule}"
        return text + (f" ({self.message})" if self.message else "")


@dataclass
class _Series:
    label: str
    slices: dict[str, _Slice] = field(default_factory=dict)
    cells: dict[tuple[str, float | None, str], _Cell] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)
    thresholds: dict[str, list[float]] = field(default_factory=dict)
    failures: list[_Failure] = field(default_factory=list)
    blessed: bool | None = None
    validation_text: str = ""
    has_thresholds: bool = True

    def add(self, record: Mapping[str, Any]) -> None:
        name = str(record.get("slice", OVERALL))
        if name not in self.slices:
            size = _float(record.get("slice_size"))
            self.slices[name] = _Slice(
                name=name, key=record.get("slice_key", ()),
                spec=str(record.get("slice_spec") or _spec_of(name)),
                cross=bool(record.get("is_cross_slice", " vs " in name)),
                size=None if math.isnan(size) else int(size),
                below_min=bool(record.get("below_min_slice_size", False)))
        metric = str(record.get("metric", ""))
        if not metric:
            return
        if metric not in self.thresholds:
            self.metrics.append(metric)
            self.thresholds[metric] = []
        threshold = _tkey(record.get("threshold"))
        if threshold is not None and threshold not in self.thresholds[metric]:
            self.thresholds[metric].append(threshold)
        note = record.get("note")
        note = note if isinstance(note, str) else ""
        slice_ = self.slices[name]
        if slice_.below_min and note and not slice_.note:
            slice_.note = note
        self.cells[(metric, threshold, name)] = _Cell(
            _float(record.get("value")), _float(record.get("lower")), _float(record.get("upper")),
            note)

    def cell(self, metric: str, threshold: float | None, slice_name: str) -> _Cell | None:
        return self.cells.get((metric, threshold, slice_name))


def _spec_of(slice_name: str) -> str:
    if slice_name == OVERALL:
        return OVERALL
    if " vs " in slice_name:
        return " vs ".join(_spec_of(part) for part in slice_name.split(" vs ", 1))
    return " × ".join(part.split(":", 1)[0] for part in slice_name.split(" × "))


def _records(result: Any) -> list[dict[str, Any]]:
    """Tidy rows of ``result``: its ``to_dataframe()``, a tidy frame, or a TFMA EvalResult."""
    if hasattr(result, "to_dataframe"):
        return _frame_records(result.to_dataframe())
    if hasattr(result, "columns") and {"slice", "metric", "value"} <= set(result.columns):
        return _frame_records(result)
    if hasattr(result, "slicing_metrics"):
        return _records_from_tfma(result)
    raise ToolkitError(f"cannot show a {type(result).__name__} as an evaluation: pass the "
                       "result of toolkit.evaluate(), a tfma.EvalResult or a tidy metrics "
                       "dataframe")


def _frame_records(frame: Any) -> list[dict[str, Any]]:
    """Rows of a dataframe as dicts; column lists zipped, much faster than ``to_dict``."""
    columns = [str(c) for c in frame.columns]
    lists = [frame[c].tolist() for c in frame.columns]
    return [dict(zip(columns, row)) for row in zip(*lists)]


def _candidate_model(result: Any, models: list[str]) -> str:
    config = getattr(result, "eval_config", None)
    candidate = getattr(config, "candidate", None)
    name = getattr(candidate, "name", None)
    return name if name in models else models[0]


def _split_models(result: Any, records: list[dict[str, Any]]) -> list[tuple[str, list[dict]]]:
    """Records per model, candidate first (a result evaluated with a baseline model has two)."""
    models: list[str] = []
    for record in records:
        model = record.get("model")
        model = model if isinstance(model, str) else ""
        if model not in models:
            models.append(model)
    if len(models) <= 1:
        return [(models[0] if models else "", records)]
    first = _candidate_model(result, models)
    ordered = [first] + [m for m in models if m != first]
    return [(m, [r for r in records if (r.get("model") or "") == m]) for m in ordered]


def _parse_metric(name: str) -> tuple[str, float | None]:
    """``fairness_indicators_metrics/false_positive_rate@0.50`` -> (name, 0.5)."""
    match = re.fullmatch(r"(.+)@([-+0-9.eE]+)", name)
    if match:
        return match.group(1), _tkey(match.group(2))
    return name, None


def _failures(validation: Any) -> tuple[list[_Failure], bool | None, str]:
    """Failed checks of a :class:`~toolkit.evaluation.Validation` or TFMA ValidationResult.

    Returns (failures, blessed, summary); ``blessed`` is None without a validation.
    """
    if validation is None:
        return [], None, ""
    if hasattr(validation, "failures"):
        failures = []
        for check in validation.failures:
            metric, threshold = _parse_metric(str(check.metric))
            rule = check.threshold.describe() if hasattr(check.threshold, "describe") \
                else str(check.threshold)
            failures.append(_Failure(str(check.slice), metric, threshold, rule,
                                     _float(check.value), str(check.message or "")))
        summary = validation.summary() if hasattr(validation, "summary") else ""
        return failures, bool(validation.ok), summary
    if hasattr(validation, "validation_ok"):
        return _failures_from_tfma(validation)
    return [], None, ""


def _build_series(label: str, records: list[dict], validation: Any) -> _Series:
    series = _Series(label)
    for record in records:
        series.add(record)
    failures, blessed, text = _failures(validation)
    series.failures, series.blessed, series.validation_text = failures, blessed, text
    series.has_thresholds = not getattr(validation, "missing_thresholds", False)
    return series


def _min_slice_size(result: Any) -> int | None:
    options = getattr(getattr(result, "eval_config", None), "options", None)
    value = getattr(options, "min_slice_size", None)
    if value is None:
        config = getattr(result, "config", None) if not hasattr(result, "eval_config") else None
        wrapped = getattr(getattr(config, "options", None), "min_slice_size", None)
        value = getattr(wrapped, "value", None)
    return int(value) if isinstance(value, (int, float)) and value > 1 else None


class _Data:
    """Every series of a dashboard plus the choices it offers."""

    def __init__(self, result: Any, compare_to: Any = None, labels: Sequence[str] | None = None):
        validation = getattr(result, "validation", None)
        by_model = _split_models(result, _records(result))
        if compare_to is not None:
            other = _split_models(compare_to, _records(compare_to))[0][1]
            parts = [(by_model[0][1], validation),
                     (other, getattr(compare_to, "validation", None))]
        else:
            parts = [(records, validation if i == 0 else None)
                     for i, (_, records) in enumerate(by_model)]
        names = [model for model, _ in by_model]
        if labels is None:
            own = compare_to is None and all(names)
            labels = names if own else DEFAULT_LABELS
        labels = list(labels) + [f"model {i + 1}" for i in range(len(labels), len(parts))]
        self.series = [_build_series(labels[i] if len(parts) > 1 else "", records, check)
                       for i, (records, check) in enumerate(parts)]
        self.paired = len(self.series) > 1
        self.min_slice_size = _min_slice_size(result)
        primary = self.series[0]
        self.slices: dict[str, _Slice] = dict(primary.slices)
        for series in self.series[1:]:
            for name, slice_ in series.slices.items():
                self.slices.setdefault(name, slice_)
        self.specs = list(dict.fromkeys(s.spec for s in self.slices.values()))
        self.baselines = [s.name for s in self.slices.values() if not s.cross]
        every = primary.metrics + [m for s in self.series[1:] for m in s.metrics
                                   if m not in primary.metrics]
        self.all_metrics = every
        self.metrics = [m for m in every
                        if not (m.endswith("_diff") and m[:-len("_diff")] in every)]
        if not self.metrics:
            raise ToolkitError("the evaluation has no metrics to show")
        self._full_table: str | None = None

    @property
    def full_table(self) -> str:
        """The all-slices table (it depends only on the data: built once, on first use)."""
        if self._full_table is None:
            self._full_table = _full_table(self)
        return self._full_table

    def thresholds(self, metric: str) -> list[float]:
        found: list[float] = []
        for series in self.series:
            found += [t for t in series.thresholds.get(metric, []) if t not in found]
        return found

    def keep_threshold(self, metric: str, threshold: float | None) -> float | None:
        """``threshold`` if ``metric`` was evaluated at it, else None (its first threshold)."""
        return threshold if threshold in self.thresholds(metric) else None

    def metric_label(self, metric: str) -> str:
        short = _short(metric)
        clash = short != metric and short in self.all_metrics
        return metric if clash else short


# --------------------------------------------------------------------------
# Choices: what the view shows, validated
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """What a dashboard shows: metric, threshold, baseline slice, slicing and sort order."""

    metric: str
    threshold: float | None
    baseline: str
    slicing: str
    sort: str

    @property
    def cross(self) -> bool:
        """Whether the chosen slicing is a cross-slice spec (differences, no baseline slice)."""
        return self.slicing != ALL_SLICES and " vs " in self.slicing


def _default_metric(data: _Data) -> str:
    for name in DEFAULT_METRICS:
        if name in data.metrics:
            return name
    fairness = [m for m in data.metrics if m.startswith(FAIRNESS_PREFIX)]
    if fairness:
        return fairness[0]
    uncounted = [m for m in data.metrics if m not in COUNT_METRICS]
    return (uncounted or data.metrics)[0]


def _resolve_metric(data: _Data, metric: str | None) -> str:
    if metric is None:
        return _default_metric(data)
    if metric in data.metrics:
        return metric
    matches = [m for m in data.metrics if _short(m) == metric]
    if len(matches) == 1:
        return matches[0]
    raise ToolkitError(f"metric {metric!r} is not in this evaluation; choose one of: "
                       + ", ".join(data.metrics))


def _resolve_threshold(data: _Data, metric: str, threshold: Any) -> float | None:
    available = data.thresholds(metric)
    if not available:
        return None
    if threshold is None:
        return available[0]
    wanted = _tkey(threshold)
    for value in available:
        if wanted is not None and math.isclose(value, wanted, abs_tol=1e-9):
            return value
    raise ToolkitError(f"threshold {threshold!r} was not evaluated for {metric}; choose one of: "
                       + ", ".join(f"{t:g}" for t in available))


def _slice_name(value: Any) -> str:
    if isinstance(value, Mapping):
        value = tuple(sorted(value.items()))
    if isinstance(value, (tuple, list)):
        if not value:
            return OVERALL
        return " × ".join(f"{k}:{v}" for k, v in value)
    return str(value)


def _resolve_baseline(data: _Data, baseline: Any) -> str:
    if baseline is None:
        return OVERALL if OVERALL in data.baselines else data.baselines[0]
    for name in data.baselines:
        if data.slices[name].key == baseline or name == baseline:
            return name
    name = _slice_name(baseline)
    if name in data.baselines:
        return name
    raise ToolkitError(f"baseline slice {baseline!r} is not among the evaluated slices: "
                       + ", ".join(data.baselines[:30]))


def _resolve_slicing(data: _Data, slicing: Any) -> str:
    if slicing is None or slicing in ("all", ALL_SLICES):
        return ALL_SLICES
    if isinstance(slicing, str) and slicing in data.specs:
        return slicing
    wanted = {slicing} if isinstance(slicing, str) else set(slicing)
    for spec in data.specs:
        if " vs " not in spec and set(spec.split(" × ")) == wanted:
            return spec
    raise ToolkitError(f"slicing {slicing!r} is not among the evaluated slicing specs: "
                       + ", ".join(data.specs))


def _resolve(data: _Data, metric: Any = None, threshold: Any = None, baseline: Any = None,
             slicing: Any = None, sort: str = "metric") -> Choice:
    if sort not in SORTS:
        raise ToolkitError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    chosen = _resolve_metric(data, metric)
    return Choice(chosen, _resolve_threshold(data, chosen, threshold),
                  _resolve_baseline(data, baseline), _resolve_slicing(data, slicing), sort)


# --------------------------------------------------------------------------
# Rows of the chart for one choice
# --------------------------------------------------------------------------

@dataclass
class _Line:
    """One series on one slice: its value and how it compares with the baseline slice."""

    cell: _Cell | None
    reference: float
    diff: float
    ratio: float
    failures: list[_Failure]
    other_failures: int


@dataclass
class _Row:
    slice: _Slice
    lines: list[_Line]
    is_baseline: bool


def _matches(failure: _Failure, choice: Choice) -> bool:
    base = failure.metric[:-len("_diff")] if failure.metric.endswith("_diff") else failure.metric
    if base != choice.metric:
        return False
    return failure.threshold is None or choice.threshold is None or \
        math.isclose(failure.threshold, choice.threshold, abs_tol=1e-9)


def _line(series: _Series, slice_: _Slice, choice: Choice, compare: bool) -> _Line:
    cell = series.cell(choice.metric, choice.threshold, slice_.name)
    reference = math.nan
    if compare:
        base = series.cell(choice.metric, choice.threshold, choice.baseline)
        reference = base.value if base is not None else math.nan
    value = cell.value if cell is not None else math.nan
    diff = value - reference
    ratio = value / reference if _finite(reference) and reference != 0 else math.nan
    mine = [f for f in series.failures if f.slice == slice_.name]
    shown = [f for f in mine if _matches(f, choice)]
    return _Line(cell, reference, diff, ratio, shown, len(mine) - len(shown))


def _rows(data: _Data, choice: Choice) -> list[_Row]:
    if choice.slicing == ALL_SLICES:
        chosen = [s for s in data.slices.values() if not s.cross]
    else:
        chosen = [s for s in data.slices.values() if s.spec == choice.slicing]
    compare = not choice.cross
    rows = [_Row(s, [_line(series, s, choice, compare) for series in data.series],
                 compare and s.name == choice.baseline) for s in chosen]
    pinned = [r for r in rows if r.is_baseline]
    if compare and not pinned:
        base = data.slices[choice.baseline]
        pinned = [_Row(base, [_line(series, base, choice, True) for series in data.series], True)]
    others = [r for r in rows if not r.is_baseline]
    if choice.sort == "metric":
        others.sort(key=lambda r: _descending(_value(r.lines[0])))
    elif choice.sort == "gap":
        others.sort(key=lambda r: _descending(abs(r.lines[0].diff)))
    return pinned + others


def _value(line: _Line) -> float:
    return line.cell.value if line.cell is not None else math.nan


def _descending(value: float) -> tuple[int, float]:
    return (0, -value) if _finite(value) else (1, 0.0)


# --------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------

def _num(value: float, signed: bool = False) -> str:
    if not _finite(value):
        return tag("span", "–", NOTE)
    text = fmt_num(value)
    if signed and value > 0:
        text = "+" + text
    return tag("span", escape(text), title=repr(float(value)))


def _scale(rows: list[_Row]) -> tuple[float, float]:
    values = [0.0]
    for row in rows:
        for line in row.lines:
            if line.cell is not None:
                values += [v for v in (line.cell.value, line.cell.lower, line.cell.upper)
                           if _finite(v)]
            if _finite(line.reference):
                values.append(line.reference)
    lo, hi = min(values), max(values)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _track(line: _Line, colour: str, lo: float, hi: float) -> str:
    """One bar with its interval whiskers and the baseline's value as a dashed mark."""
    def at(x: float) -> float:
        return min(max(100.0 * (x - lo) / (hi - lo), 0.0), 100.0)

    parts = []
    cell = line.cell
    if cell is not None and _finite(cell.value):
        left, right = sorted((at(0.0), at(cell.value)))
        width = max(right - left, 0.4)
        parts.append(f'<i style="position:absolute;left:{left:.2f}%;width:{width:.2f}%;'
                     f'top:2px;height:{TRACK_HEIGHT - 4}px;background:{colour}"></i>')
    if cell is not None and _finite(cell.lower) and _finite(cell.upper):
        # One element draws the interval: end caps are its side borders, the line a
        # 2px-high background gradient across its middle.
        low, high = at(cell.lower), at(cell.upper)
        parts.append(f'<i style="position:absolute;left:{low:.2f}%;'
                     f'width:{max(high - low, 0.2):.2f}%;'
                     f'top:3px;height:{TRACK_HEIGHT - 6}px;box-sizing:border-box;'
                     f'border:solid {INK};border-width:0 2px;'
                     f'background:linear-gradient({INK},{INK}) 0 50%/100% 2px no-repeat"></i>')
    if _finite(line.reference):
        parts.append(f'<i style="position:absolute;left:{at(line.reference):.2f}%;top:0;'
                     f'height:{TRACK_HEIGHT}px;border-left:1px dashed {INK}"></i>')
    return (f'<div style="position:relative;width:{BAR_WIDTH}px;height:{TRACK_HEIGHT}px;'
            f'margin:1px 0;background:{SHADE}">{"".join(parts)}</div>')


def _lines(row: _Row, data: _Data, render: Any, marked: bool = False) -> str:
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


def _interval(cell: _Cell) -> str:
    """``[lower, upper]`` with a no-break space: notebook stylesheets let table cells wrap."""
    return f"[{fmt_num(cell.lower)},\u00a0{fmt_num(cell.upper)}]"


def _ci(line: _Line) -> str:
    cell = line.cell
    if cell is None or not (_finite(cell.lower) and _finite(cell.upper)):
        return ""
    return tag("span", escape(_interval(cell)), NOTE)


def _checks(line: _Line) -> str:
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


def _slice_cell(row: _Row, data: _Data) -> str:
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


def _size(slice_: _Slice, data: _Data) -> str:
    sizes = []
    for series in data.series:
        own = series.slices.get(slice_.name)
        size = own.size if own is not None else None
        sizes.append(fmt_num(size))
    shown = sizes[0] if len(set(sizes)) == 1 else " / ".join(sizes)
    return escape(shown)


def _row_html(row: _Row, data: _Data, lo: float, hi: float, compare: bool,
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
        f'<td>{_lines(row, data, lambda line: _num(_value(line)), marked=True)}</td>',
    ]
    if with_ci:
        cells.append(f'<td style="{TD}">{_lines(row, data, _ci)}</td>')
    if compare:
        def diff(line: _Line) -> str:
            return "" if row.is_baseline else _num(line.diff, signed=True)

        def ratio(line: _Line) -> str:
            if row.is_baseline or not _finite(line.ratio):
                return "" if row.is_baseline else _num(math.nan)
            return tag("span", escape(fmt_num(line.ratio) + "×"), title=repr(line.ratio))

        cells += [f"<td>{_lines(row, data, diff)}</td>", f"<td>{_lines(row, data, ratio)}</td>"]
    if data.paired:
        first, second = _value(row.lines[0]), _value(row.lines[1])
        cells.append(f"<td>{_num(first - second, signed=True)}</td>")
    cells.append(f'<td style="{TD}">{_lines(row, data, _checks)}</td>')
    return f'<tr style="{style}">' + "".join(cells) + "</tr>"


def _title(data: _Data, choice: Choice) -> str:
    at = f" @ {choice.threshold:g}" if choice.threshold is not None else ""
    return f"{data.metric_label(choice.metric)}{at}"


def _subtitle(data: _Data, choice: Choice) -> str:
    slicing = "all slices" if choice.slicing == ALL_SLICES else f"slicing {choice.slicing}"
    if choice.cross:
        return f"{slicing} (cross-slice differences) · sorted by {SORTS[choice.sort]}"
    return f"baseline {choice.baseline} · {slicing} · sorted by {SORTS[choice.sort]}"


def _validation_html(data: _Data) -> str:
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


def _legend(data: _Data) -> str:
    if not data.paired:
        return ""
    entries = " ".join(swatch(PALETTE[i % len(PALETTE)]) + esc(s.label, 60) + "&nbsp;"
                       for i, s in enumerate(data.series))
    return tag("div", entries, "margin:2px 0")


def _chart_html(data: _Data, choice: Choice) -> str:
    """Title, validation, legend and the per-slice chart for one choice."""
    rows = _rows(data, choice)
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


def _table_cell(series: _Series, metric: str, threshold: float | None, slice_: _Slice,
                failed: set[tuple[str, str, float | None]]) -> str:
    cell = series.cell(metric, threshold, slice_.name)
    if cell is None:
        return ""
    text = escape(fmt_num(cell.value)) if _finite(cell.value) else "–"
    if _finite(cell.lower) and _finite(cell.upper):
        text += f'\u00a0<small style="color:{MUTED}">{escape(_interval(cell))}</small>'
    if (slice_.name, metric, threshold) in failed or (slice_.name, metric, None) in failed:
        return tag("span", text, f"color:{BAD};font-weight:600", title="failed threshold")
    if cell.note and not _finite(cell.value):
        return tag("span", "–", NOTE, title=cell.note)
    return text


def _metric_table(data: _Data, metrics: list[str], with_threshold: bool) -> tuple[str, int]:
    heads = [tag("th", "Slice", TH_LEFT)]
    if data.paired:
        heads.append(tag("th", "Model", TH_LEFT))
    heads.append(tag("th", "Size", TH_RIGHT))
    if with_threshold:
        heads.append(tag("th", "Threshold", TH_RIGHT))
    heads += [tag("th", esc(data.metric_label(m), 60), TH_RIGHT, title=m) for m in metrics]
    rows = []
    for i, series in enumerate(data.series):
        failed = {(f.slice, f.metric, f.threshold) for f in series.failures}
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
                cells += [f"<td>{_table_cell(series, m, threshold, own, failed)}</td>"
                          for m in metrics]
                style = ROW + (";" + GREYED if own.below_min else "")
                rows.append(f'<tr style="{style}">' + "".join(cells) + "</tr>")
    html = (f'<table {TABLE_ATTRS} style="{TABLE};white-space:nowrap"><thead>'
            f'<tr>{"".join(heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')
    return html, len(rows)


def _full_table(data: _Data) -> str:
    """Every slice, metric and threshold: metrics without a threshold, then those with one."""
    plain_metrics = [m for m in data.all_metrics if not data.thresholds(m)]
    threshold_metrics = [m for m in data.all_metrics if data.thresholds(m)]
    parts, total = [], 0
    if plain_metrics:
        html, n = _metric_table(data, plain_metrics, False)
        parts.append(html)
        total += n
    if threshold_metrics:
        html, n = _metric_table(data, threshold_metrics, True)
        parts.append(tag("div", "Metrics at thresholds", "font-weight:600;margin-top:6px") + html)
        total += n
    thresholds = sorted({t for m in threshold_metrics for t in data.thresholds(m)})
    summary = (f"Full metrics table: {len(data.slices)} slices × {len(data.all_metrics)} metrics"
               + (f" × {len(thresholds)} thresholds" if thresholds else ""))
    is_open = " open" if total <= TABLE_OPEN_ROWS else ""
    return (f"<details{is_open} style=\"margin-top:8px\">"
            f'<summary style="cursor:pointer;font-weight:600">{escape(summary)}</summary>'
            + "".join(parts) + "</details>")


def _static_class(uid: str) -> str:
    return f"tkd-static-{uid}"


def _live_class(uid: str) -> str:
    return f"tkd-live-{uid}"


def _live_rules(uid: str) -> str:
    """The only stylesheet, sent inside the live widget (see the module docstring).

    It hides this dashboard's static chart, and lets the widget's chart scroll
    sideways instead of being clipped by the widget's ``overflow:hidden``.
    """
    live = _live_class(uid)
    return (f"<style>.{_static_class(uid)}{{display:none !important}}"
            f".{live},.{live} .widget-html-content{{min-width:0;max-width:100%;"
            f"overflow-x:auto !important}}</style>")


def _static_html(data: _Data, choice: Choice, uid: str, header: str = "",
                 chart: str | None = None) -> str:
    """``header`` and the chart (both hidden where the live widget shows them), then the table.

    ``chart`` is ``_chart_html(data, choice)`` when the caller already built it.
    """
    if chart is None:
        chart = _chart_html(data, choice)
    static = f'<div class="{_static_class(uid)}">{header}{chart}</div>'
    return root(static + data.full_table, uid)


# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------

def _text_num(value: float, signed: bool = False) -> str:
    if not _finite(value):
        return "–"
    return ("+" if signed and value > 0 else "") + fmt_num(value)


def _text(data: _Data, choice: Choice) -> str:
    rows = _rows(data, choice)
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
        values = " / ".join(_text_num(_value(line)) for line in row.lines)
        cis = [_ci_text(line.cell) for line in row.lines]
        cols = [name, _size_text(row.slice), values, " / ".join(cis) if any(cis) else ""]
        if compare:
            diffs = " / ".join(_text_num(line.diff, True) for line in row.lines)
            ratios = " / ".join(_text_num(line.ratio) + ("×" if _finite(line.ratio) else "")
                                for line in row.lines)
            cols += ["", ""] if row.is_baseline else [diffs, ratios]
        failures = sum(len(line.failures) for line in row.lines)
        cols.append(f"FAILED {failures}" if failures else "")
        table.append(cols)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    for series in data.series:
        for failure in series.failures[:FAILURES_LISTED]:
            lines.append("  ✗ " + plain(failure.describe(), 300))
        if len(series.failures) > FAILURES_LISTED:
            lines.append(f"  … {len(series.failures) - FAILURES_LISTED} more failed checks")
    lines.append(f"Full table: {len(data.slices)} slices × {len(data.all_metrics)} metrics "
                 "(in the HTML view, or result.to_dataframe()).")
    return "\n".join(lines)


def _ci_text(cell: _Cell | None) -> str:
    if cell is None or not (_finite(cell.lower) and _finite(cell.upper)):
        return ""
    return f"[{fmt_num(cell.lower)}, {fmt_num(cell.upper)}]"


def _size_text(slice_: _Slice) -> str:
    return fmt_num(slice_.size)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

def evaluation_view(result: Any, compare_to: Any = None, metric: str | None = None,
                    threshold: float | None = None, baseline_slice: Any = None,
                    slicing: Any = None, sort: str = "metric", *,
                    labels: Sequence[str] | None = None) -> View:
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
    """
    data = _Data(result, compare_to, labels)
    choice = _resolve(data, metric, threshold, baseline_slice, slicing, sort)
    uid = new_uid()
    return View(_static_html(data, choice, uid), _text(data, choice), "Evaluation")


class EvaluationDashboard(View):
    """The interactive fairness dashboard (ipywidgets 7) with a static copy that always shows.

    Dropdowns pick the metric, threshold, baseline slice, slicing and sort order;
    the chart follows. Displayed in a notebook it emits the widget and then the
    static dashboard (see the module docstring for why both, and why only one is
    ever seen). As a :class:`View` its ``html`` and ``text`` are the static
    dashboard for the current choices.
    """

    def __init__(self, result: Any, compare_to: Any = None, *, metric: str | None = None,
                 threshold: float | None = None, baseline_slice: Any = None, slicing: Any = None,
                 sort: str = "metric", labels: Sequence[str] | None = None):
        self._data = _Data(result, compare_to, labels)
        self.choice = _resolve(self._data, metric, threshold, baseline_slice, slicing, sort)
        self.uid = new_uid()
        self._header_html = ""
        self._header_text = ""
        self._widget: Any = None
        self._header_widget: Any = None
        self._controls: dict[str, Any] = {}
        self._chart: Any = None
        self._handles: list[Any] = []
        self._updating = False
        self._chart_for: tuple[Choice, str] | None = None
        super().__init__("", "", "Evaluation")
        self._render()

    # --- static form ------------------------------------------------------
    def _render(self) -> None:
        self.html = _static_html(self._data, self.choice, self.uid, self._header_html,
                                 self.chart_html)
        text = _text(self._data, self.choice)
        self.text = f"{self._header_text}\n{text}" if self._header_text else text

    @property
    def chart_html(self) -> str:
        """The chart for the current choices, as the widget shows it (built once per choice)."""
        if self._chart_for is None or self._chart_for[0] != self.choice:
            self._chart_for = (self.choice, _chart_html(self._data, self.choice))
        return self._chart_for[1]

    def with_header(self, html: str, text: str) -> "EvaluationDashboard":
        """Put ``html``/``text`` (trusted markup, e.g. an artifact's header) above the dashboard.

        Call it before the dashboard is displayed: the widget shows the header above
        its controls, the static copy above its chart.
        """
        self._header_html, self._header_text = html, text
        self._render()
        if self._header_widget is not None:
            self._header_widget.value = html
            self._header_widget.layout.display = "" if html else "none"
        return self

    def select(self, **changes: Any) -> "EvaluationDashboard":
        """Change what is shown; keywords as in :func:`evaluation_view` (``baseline_slice``...)."""
        current = {"metric": self.choice.metric, "threshold": self.choice.threshold,
                   "baseline_slice": self.choice.baseline, "slicing": self.choice.slicing,
                   "sort": self.choice.sort}
        unknown = set(changes) - set(current)
        if unknown:
            raise ToolkitError(f"unknown dashboard choice(s) {sorted(unknown)}; "
                               f"use {', '.join(current)}")
        if "metric" in changes and "threshold" not in changes:
            metric = _resolve_metric(self._data, changes["metric"])
            current["threshold"] = self._data.keep_threshold(metric, self.choice.threshold)
        current.update(changes)
        self.choice = _resolve(self._data, current["metric"], current["threshold"],
                               current["baseline_slice"], current["slicing"], current["sort"])
        self._render()
        self._sync_controls()
        self._refresh()
        return self

    # --- widget -----------------------------------------------------------
    @property
    def controls(self) -> dict[str, Any]:
        """The Dropdowns by name: metric, threshold, baseline, slicing, sort."""
        self._ensure_widget()
        return dict(self._controls)

    @property
    def widget(self) -> Any:
        """The ipywidgets VBox: controls above the chart (built on first use)."""
        self._ensure_widget()
        return self._widget

    def _options(self) -> dict[str, list[tuple[str, Any]]]:
        data = self._data
        thresholds = [(f"{t:g}", f"{t!r}") for t in data.thresholds(self.choice.metric)]
        return {
            "metric": [(data.metric_label(m), m) for m in data.metrics],
            "threshold": thresholds or [("—", "")],
            "baseline": [(_label(b), b) for b in data.baselines],
            "slicing": [("all slices", ALL_SLICES)] + [(_label(s), s) for s in data.specs],
            "sort": [(label, key) for key, label in SORTS.items()],
        }

    def _values(self) -> dict[str, Any]:
        choice = self.choice
        return {"metric": choice.metric,
                "threshold": "" if choice.threshold is None else f"{choice.threshold!r}",
                "baseline": choice.baseline, "slicing": choice.slicing, "sort": choice.sort}

    def _ensure_widget(self) -> None:
        if self._widget is not None:
            return
        import ipywidgets as widgets

        labels = {"metric": "Metric", "threshold": "Threshold", "baseline": "Baseline",
                  "slicing": "Slicing", "sort": "Sort by"}
        widths = {"metric": "290px", "threshold": "140px", "baseline": "250px",
                  "slicing": "220px", "sort": "200px"}
        options, values = self._options(), self._values()
        for name, label in labels.items():
            dropdown = widgets.Dropdown(options=options[name], value=values[name],
                                        description=label,
                                        style={"description_width": "initial"},
                                        layout=widgets.Layout(width=widths[name]))
            dropdown.observe(self._on_change, names="value")
            self._controls[name] = dropdown
        self._controls["threshold"].disabled = values["threshold"] == ""
        self._chart = widgets.HTML(value=self._chart_value(),
                                   layout=widgets.Layout(width="100%"))
        self._chart.add_class(_live_class(self.uid))
        bar = widgets.HBox(list(self._controls.values()),
                           layout=widgets.Layout(flex_flow="row wrap"))
        shown = "" if self._header_html else "none"
        self._header_widget = widgets.HTML(value=self._header_html,
                                           layout=widgets.Layout(display=shown))
        self._widget = widgets.VBox([self._header_widget, bar, self._chart])

    def _chart_value(self) -> str:
        return _live_rules(self.uid) + root(self.chart_html, self.uid + "-live")

    def _on_change(self, change: Mapping[str, Any]) -> None:
        if self._updating:
            return
        values = {name: control.value for name, control in self._controls.items()}
        changes = {"metric": values["metric"], "baseline_slice": values["baseline"],
                   "slicing": values["slicing"], "sort": values["sort"]}
        if values["metric"] == self.choice.metric:  # a new metric keeps the nearest threshold
            changes["threshold"] = None if values["threshold"] == "" else float(values["threshold"])
        self.select(**changes)

    def _sync_controls(self) -> None:
        if self._widget is None:
            return
        self._updating = True
        try:
            options, values = self._options(), self._values()
            for name, control in self._controls.items():
                if list(control.options) != options[name]:
                    control.options = options[name]
                if control.value != values[name]:
                    control.value = values[name]
            self._controls["threshold"].disabled = values["threshold"] == ""
        finally:
            self._updating = False

    def _refresh(self) -> None:
        if self._chart is not None:
            self._chart.value = self._chart_value()
        for handle in self._handles:
            handle.update({"text/html": self.html, "text/plain": self.text}, raw=True)

    # --- display ----------------------------------------------------------
    def _publish(self, shell: Any) -> None:
        from IPython.display import display

        if is_kernel(shell):
            try:
                self._ensure_widget()
            except ImportError:
                self._widget = None
            if self._widget is not None:
                display({WIDGET_MIME: {"version_major": 2, "version_minor": 0,
                                       "model_id": self._widget.model_id},
                         "text/plain": LIVE_NOTE,
                         "text/html": tag("div", escape(LIVE_NOTE), NOTE)}, raw=True)
        handle = display({"text/html": self.html, "text/plain": self.text}, raw=True,
                         display_id=True)
        if handle is not None:
            self._handles.append(handle)


def _label(text: str, n: int = 60) -> str:
    """Dropdown labels are plain text (the widget escapes them); keep them short."""
    return text if len(text) <= n else text[: n - 1] + "…"


def dashboard(result: Any, compare_to: Any = None, **choices: Any) -> EvaluationDashboard:
    """The interactive dashboard of ``result``; what ``toolkit.show(result)`` displays."""
    return EvaluationDashboard(result, compare_to, **choices)


# --------------------------------------------------------------------------
# ModelEvaluation artifacts and TFMA results
# --------------------------------------------------------------------------

class _LoadedEvaluation:
    """A TFMA EvalResult with its ValidationResult, read from an evaluation folder."""

    def __init__(self, eval_result: Any, validation: Any):
        self.eval_result = eval_result
        self.validation = validation
        self.config = getattr(eval_result, "config", None)

    def to_dataframe(self) -> Any:
        import pandas as pd

        return pd.DataFrame(_records_from_tfma(self.eval_result))


def load_evaluation(source: Any) -> Any:
    """The evaluation in a ``ModelEvaluation`` artifact (or its folder), for the dashboard.

    Reads the result the Evaluator keeps beside TFMA's records (no TensorFlow);
    a folder without it (written by TFMA itself, or by ``write_tfma_artifact``)
    is read with ``tfma.load_eval_result`` and ``tfma.load_validation_result``,
    which import TensorFlow.
    """
    from toolkit.components.evaluator import RESULT_FILE, load_result

    uri = str(getattr(source, "uri", source))
    if os.path.isfile(os.path.join(uri, RESULT_FILE)):
        artifact = source if hasattr(source, "uri") else SimpleNamespace(uri=uri, id=None)
        return load_result(artifact)
    import tensorflow_model_analysis as tfma

    try:
        validation = tfma.load_validation_result(uri)
    except Exception:  # a folder written without validations still has metrics
        validation = None
    return _LoadedEvaluation(tfma.load_eval_result(uri), validation)


def _model_evaluation_view(artifact: Any) -> View:
    return EvaluationDashboard(load_evaluation(artifact))


def _metric_thresholds(config: Any) -> dict[str, tuple[float, ...]]:
    """Thresholds of array-valued metrics (one value per threshold), from the EvalConfig."""
    if config is None:
        return {}
    from toolkit.evaluation.config import iter_metric_configs, load_eval_config
    from toolkit.evaluation.metrics import resolve

    found: dict[str, tuple[float, ...]] = {}
    for _, metric_config in iter_metric_configs(load_eval_config(config)):
        resolved, _ = resolve(metric_config)
        if resolved is not None and resolved.thresholds:
            found[resolved.name] = tuple(resolved.thresholds)
    return found


def _tfma_value(encoded: Mapping[str, Any]) -> tuple[list[float], float, float]:
    if "boundedValue" in encoded:
        bounded = encoded["boundedValue"]
        return ([_float(bounded.get("value"))], _float(bounded.get("lowerBound")),
                _float(bounded.get("upperBound")))
    if "arrayValue" in encoded:
        array = encoded["arrayValue"]
        values = next((array[k] for k in array if k.endswith("Values")), [])
        return [_float(v) for v in values], math.nan, math.nan
    return [_float(encoded.get("doubleValue"))], math.nan, math.nan


def _records_from_tfma(eval_result: Any) -> list[dict[str, Any]]:
    """Tidy rows from a ``tfma.EvalResult`` (TFMA's JSON encoding of each metric)."""
    from toolkit.evaluation.slicing import is_cross_key, slice_display

    try:
        thresholds = _metric_thresholds(getattr(eval_result, "config", None))
    except Exception:  # an unreadable config only loses array thresholds
        thresholds = {}
    records = []
    for key, by_output in eval_result.slicing_metrics:
        cross = is_cross_key(key)
        name = slice_display(key)
        base = {"slice": name, "slice_key": key, "slice_spec": _spec_of(name),
                "is_cross_slice": cross, "below_min_slice_size": False}
        metrics: dict[str, Any] = {}
        for output, by_sub_key in by_output.items():
            for sub_key, values in by_sub_key.items():
                prefix = "/".join(p for p in (output, sub_key) if p)
                metrics.update({(f"{prefix}/{m}" if prefix else m): v for m, v in values.items()})
        error = metrics.pop("__ERROR__", None)
        count = metrics.get("example_count")
        size = _tfma_value(count)[0][0] if isinstance(count, Mapping) else math.nan
        base["slice_size"] = None if math.isnan(size) else int(size)
        if error is not None:
            note = str(error.get("debugMessage", "")) if isinstance(error, Mapping) else str(error)
            records.append(dict(base, below_min_slice_size=True, metric="", note=note))
            continue
        for metric_name, encoded in metrics.items():
            if not isinstance(encoded, Mapping):
                continue
            metric, at = _parse_metric(metric_name)
            values, lower, upper = _tfma_value(encoded)
            listed = thresholds.get(metric, ())
            for i, value in enumerate(values):
                if at is not None:
                    threshold = at
                elif len(values) > 1 or listed:
                    threshold = listed[i] if i < len(listed) else float(i)
                else:
                    threshold = math.nan
                records.append(dict(base, model="", metric=metric, threshold=threshold,
                                    value=value, lower=lower, upper=upper, note=""))
    return records


def _failures_from_tfma(validation: Any) -> tuple[list[_Failure], bool | None, str]:
    from google.protobuf import json_format

    from toolkit.evaluation.slicing import slice_display
    from toolkit.evaluation.tfma_adapter import deserialize_key

    failures = []
    for per_slice in validation.metric_validations_per_slice:
        name = slice_display(deserialize_key(per_slice))  # a slice_key or a cross_slice_key
        for failure in per_slice.failures:
            metric, threshold = _parse_metric(failure.metric_key.name)
            if failure.metric_key.is_diff:
                metric += "_diff"
            rule = json_format.MessageToDict(failure.metric_threshold)
            value = _float(getattr(failure.metric_value.double_value, "value", math.nan)) \
                if failure.HasField("metric_value") else math.nan
            failures.append(_Failure(name, metric, threshold, _describe_rule(rule), value,
                                     failure.message))
    ok = bool(validation.validation_ok)
    text = ("blessed" if ok else f"not blessed: {len(failures)} failed checks")
    return failures, ok, text


def _describe_rule(rule: Mapping[str, Any]) -> str:
    value = rule.get("valueThreshold") or {}
    parts = []
    if "lowerBound" in value:
        parts.append(f">= {_float(value['lowerBound']):g}")
    if "upperBound" in value:
        parts.append(f"<= {_float(value['upperBound']):g}")
    change = rule.get("changeThreshold") or {}
    if "absolute" in change:
        parts.append(f"change {_float(change['absolute']):g}")
    if "relative" in change:
        parts.append(f"relative change {_float(change['relative']):g}")
    return " and ".join(parts) or "a threshold"


def register() -> None:
    """Render ``ModelEvaluation`` artifacts with the dashboard (done at import; idempotent)."""
    from toolkit.visualize import register_view

    register_view("ModelEvaluation", _model_evaluation_view)


register()
