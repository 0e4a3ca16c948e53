"""The dashboard's data model: slices, series, choices and the rows of a chart.

Everything here is plain data built from tidy metric records (one dict per slice,
metric and threshold), whatever the evaluation came from; :mod:`.loading` turns
each kind of input into those records. Rendering lives in :mod:`.static` and
:mod:`.widget`, so one model feeds the HTML, the text and the live controls.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from toolkit.errors import ToolkitError
from toolkit.visualize.html import fmt_num

FAIRNESS_PREFIX = "fairness_indicators_metrics/"
#: Default metric, in order of preference: the false positive rate under its usual names.
DEFAULT_METRICS = (FAIRNESS_PREFIX + "false_positive_rate", "false_positive_rate", "fpr",
                   "fall_out")
COUNT_METRICS = ("example_count", "weighted_example_count")
ALL_SLICES = "__all__"
OVERALL = "Overall"
SORTS = {"metric": "metric value", "gap": "gap to baseline", "slice": "slice order"}
DEFAULT_LABELS = ("candidate", "baseline")
#: Slices with the largest and with the smallest gap to the baseline shown by default.
DEFAULT_TOP = 10
#: Metrics whose values lie in [0, 1] (by their name without prefix): their interval
#: bounds are shown clipped to it. Names ending in ``_rate`` or ``accuracy`` count too.
UNIT_METRICS = frozenset({
    "auc", "auc_precision_recall", "precision", "ppv", "recall", "tpr", "specificity", "tnr",
    "fall_out", "fpr", "miss_rate", "fnr", "negative_predictive_value", "npv", "prevalence",
    "f1_score", "sensitivity", "selectivity",
})


def to_float(value: Any) -> float:
    """A number from a tidy cell; NaN for missing values (None, pandas NA, text)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def threshold_key(threshold: Any) -> float | None:
    """Thresholds as dictionary keys: rounded floats, None for metrics without one."""
    value = to_float(threshold)
    return None if math.isnan(value) else round(value, 9)


def sub_key_of(record: Mapping[str, Any]) -> str:
    """The record's TFMA sub key (``classId:0``...), ``""`` for none."""
    value = record.get("sub_key")
    return value if isinstance(value, str) else ""


def sub_key_label(sub_key: str) -> str:
    """``class 0``, ``top 1``, ``k 2`` (``all classes`` for no sub key)."""
    if not sub_key:
        return "all classes"
    labels = {"classId": "class", "topK": "top", "k": "k"}
    return ", ".join(f"{labels.get(name, name)} {value}"
                     for name, _, value in (part.partition(":") for part in sub_key.split()))


def short_name(metric: str) -> str:
    return metric[len(FAIRNESS_PREFIX):] if metric.startswith(FAIRNESS_PREFIX) else metric


def is_unit_metric(metric: str) -> bool:
    """Whether ``metric`` is a rate, accuracy, AUC, precision or recall: a value in [0, 1].

    Judged by its name (TFMA's, without output or Fairness Indicators prefix); ``*_diff``
    metrics (differences to a baseline model) are not.
    """
    name = metric.rsplit("/", 1)[-1].lower()
    if name.endswith("_diff"):
        return False
    name = name.split("@", 1)[0]
    return name in UNIT_METRICS or name.endswith(("_rate", "accuracy"))


def clipped_bounds(cell: "Cell", unit: bool) -> tuple[float, float, bool, bool]:
    """The interval of ``cell`` as shown: for a metric in [0, 1] its bounds clipped to it.

    Returns (lower, upper, lower_clipped, upper_clipped); the stored values are unchanged.
    """
    lower, upper = cell.lower, cell.upper
    if not unit:
        return lower, upper, False, False
    low_cut = finite(lower) and lower < 0.0
    high_cut = finite(upper) and upper > 1.0
    return (0.0 if low_cut else lower), (1.0 if high_cut else upper), low_cut, high_cut


@dataclass
class Slice:
    name: str
    key: Any
    spec: str
    cross: bool
    size: int | None
    below_min: bool
    note: str = ""


@dataclass
class Cell:
    value: float
    lower: float
    upper: float
    note: str = ""


@dataclass(frozen=True)
class Failure:
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
class Series:
    label: str
    slices: dict[str, Slice] = field(default_factory=dict)
    cells: dict[tuple[str, float | None, str, str], Cell] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)
    #: TFMA sub keys seen ("" first when present), and the metrics under each
    sub_keys: dict[str, list[str]] = field(default_factory=dict)
    thresholds: dict[str, list[float]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    blessed: bool | None = None
    validation_text: str = ""
    has_thresholds: bool = True
    _by_slice: dict[str, list[Failure]] | None = field(default=None, repr=False)

    def failures_of(self, slice_name: str) -> list[Failure]:
        """The failed checks of one slice (indexed once: dashboards have hundreds of slices)."""
        if self._by_slice is None:
            index: dict[str, list[Failure]] = {}
            for failure in self.failures:
                index.setdefault(failure.slice, []).append(failure)
            self._by_slice = index
        return self._by_slice.get(slice_name, [])

    def add(self, record: Mapping[str, Any]) -> None:
        name = str(record.get("slice", OVERALL))
        if name not in self.slices:
            size = to_float(record.get("slice_size"))
            self.slices[name] = Slice(
                name=name, key=record.get("slice_key", ()),
                spec=str(record.get("slice_spec") or spec_of(name)),
                cross=bool(record.get("is_cross_slice", " vs " in name)),
                size=None if math.isnan(size) else int(size),
                below_min=bool(record.get("below_min_slice_size", False)))
        metric = str(record.get("metric", ""))
        if not metric:
            return
        sub_key = sub_key_of(record)
        if metric not in self.sub_keys.setdefault(sub_key, []):
            self.sub_keys[sub_key].append(metric)
        if metric not in self.thresholds:
            self.metrics.append(metric)
            self.thresholds[metric] = []
        threshold = threshold_key(record.get("threshold"))
        if threshold is not None and threshold not in self.thresholds[metric]:
            self.thresholds[metric].append(threshold)
        note = record.get("note")
        note = note if isinstance(note, str) else ""
        slice_ = self.slices[name]
        if slice_.below_min and note and not slice_.note:
            slice_.note = note
        self.cells[(metric, threshold, name, sub_key)] = Cell(
            to_float(record.get("value")), to_float(record.get("lower")),
            to_float(record.get("upper")), note)

    def cell(self, metric: str, threshold: float | None, slice_name: str, sub_key: str = "") -> Cell | None:
        return self.cells.get((metric, threshold, slice_name, sub_key))


def spec_of(slice_name: str) -> str:
    if slice_name == OVERALL:
        return OVERALL
    if " vs " in slice_name:
        return " vs ".join(spec_of(part) for part in slice_name.split(" vs ", 1))
    return " × ".join(part.split(":", 1)[0] for part in slice_name.split(" × "))


def build_series(label: str, records: list[dict], failures: list[Failure],
                 blessed: bool | None, validation_text: str, has_thresholds: bool) -> Series:
    """One model's series: its records plus what its validation found."""
    series = Series(label)
    for record in records:
        series.add(record)
    series.failures, series.blessed = failures, blessed
    series.validation_text, series.has_thresholds = validation_text, has_thresholds
    return series


class DashboardData:
    """Every series of a dashboard plus the choices it offers.

    ``series`` holds one :class:`Series` per evaluated model, the candidate first;
    ``min_slice_size`` is the evaluation's (None when it is 1, i.e. unset).
    """

    def __init__(self, series: Sequence[Series], min_slice_size: int | None = None):
        self.series = list(series)
        self.paired = len(self.series) > 1
        self.min_slice_size = min_slice_size
        primary = self.series[0]
        self.slices: dict[str, Slice] = dict(primary.slices)
        for other in self.series[1:]:
            for name, slice_ in other.slices.items():
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
        keys: list[str] = []
        for series in self.series:
            keys += [k for k in series.sub_keys if k not in keys]
        #: every sub key, "" (no binarization) first; per-class results make several
        self.sub_keys = sorted(keys, key=lambda k: (k != "", keys.index(k)))
        #: ROC, precision-recall and calibration curves: (slice name, sub key) -> one
        #: :class:`~.curves.ModelCurves` per model (set by :func:`.loading.dashboard_data`)
        self.curves: dict[tuple[str, str], list] = {}

    def metrics_for(self, sub_key: str) -> list[str]:
        """The metrics evaluated under ``sub_key`` (any series), in evaluation order."""
        found: list[str] = []
        for series in self.series:
            found += [m for m in series.sub_keys.get(sub_key, []) if m not in found]
        return found

    def sub_keys_for(self, metric: str) -> list[str]:
        return [k for k in self.sub_keys if metric in self.metrics_for(k)]

    def thresholds(self, metric: str) -> list[float]:
        found: list[float] = []
        for series in self.series:
            found += [t for t in series.thresholds.get(metric, []) if t not in found]
        return found

    def keep_threshold(self, metric: str, threshold: float | None) -> float | None:
        """``threshold`` if ``metric`` was evaluated at it, else None (its first threshold)."""
        return threshold if threshold in self.thresholds(metric) else None

    def metric_label(self, metric: str) -> str:
        short = short_name(metric)
        clash = short != metric and short in self.all_metrics
        return metric if clash else short


@dataclass(frozen=True)
class Choice:
    """What a dashboard shows: metric, threshold, baseline slice, slicing, sort order, the
    class (a TFMA sub key such as ``classId:0``; ``""`` without binarization) and ``top``:
    how many slices with the largest and with the smallest gap to the baseline are shown
    by default (None: every slice)."""

    metric: str
    threshold: float | None
    baseline: str
    slicing: str
    sort: str
    sub_key: str = ""
    top: int | None = DEFAULT_TOP

    @property
    def cross(self) -> bool:
        """Whether the chosen slicing is a cross-slice spec (differences, no baseline slice)."""
        return self.slicing != ALL_SLICES and " vs " in self.slicing


def default_metric(data: DashboardData) -> str:
    for name in DEFAULT_METRICS:
        if name in data.metrics:
            return name
    fairness = [m for m in data.metrics if m.startswith(FAIRNESS_PREFIX)]
    if fairness:
        return fairness[0]
    uncounted = [m for m in data.metrics if m not in COUNT_METRICS]
    return (uncounted or data.metrics)[0]


def resolve_metric(data: DashboardData, metric: str | None) -> str:
    if metric is None:
        return default_metric(data)
    if metric in data.metrics:
        return metric
    matches = [m for m in data.metrics if short_name(m) == metric]
    if len(matches) == 1:
        return matches[0]
    raise ToolkitError(f"metric {metric!r} is not in this evaluation; choose one of: "
                       + ", ".join(data.metrics))


def resolve_threshold(data: DashboardData, metric: str, threshold: Any) -> float | None:
    available = data.thresholds(metric)
    if not available:
        return None
    if threshold is None:
        return available[0]
    wanted = threshold_key(threshold)
    for value in available:
        if wanted is not None and math.isclose(value, wanted, abs_tol=1e-9):
            return value
    raise ToolkitError(f"threshold {threshold!r} was not evaluated for {metric}; choose one of: "
                       + ", ".join(f"{t:g}" for t in available))


def slice_name(value: Any) -> str:
    if isinstance(value, Mapping):
        value = tuple(sorted(value.items()))
    if isinstance(value, (tuple, list)):
        if not value:
            return OVERALL
        return " × ".join(f"{k}:{v}" for k, v in value)
    return str(value)


def resolve_baseline(data: DashboardData, baseline: Any) -> str:
    if baseline is None:
        return OVERALL if OVERALL in data.baselines else data.baselines[0]
    for name in data.baselines:
        if data.slices[name].key == baseline or name == baseline:
            return name
    name = slice_name(baseline)
    if name in data.baselines:
        return name
    raise ToolkitError(f"baseline slice {baseline!r} is not among the evaluated slices: "
                       + ", ".join(data.baselines[:30]))


def resolve_slicing(data: DashboardData, slicing: Any) -> str:
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


def resolve_sub_key(data: DashboardData, metric: str, sub_key: Any) -> str:
    """The class to show: a sub key (``"classId:0"``), a class id (``0``) or None (the first)."""
    available = data.sub_keys_for(metric)
    if sub_key is None or sub_key == "":
        return "" if "" in available or not available else available[0]
    wanted = f"classId:{int(sub_key)}" if isinstance(sub_key, (int, float)) and not isinstance(sub_key, bool) \
        else str(sub_key)
    if wanted in available:
        return wanted
    for key in available:
        if sub_key_label(key) == wanted:
            return key
    raise ToolkitError(f"class {sub_key!r} was not evaluated for {metric}; choose one of: "
                       + ", ".join(repr(k) for k in available))


def resolve_top(top: Any) -> int | None:
    """``top`` as a count of slices, or None for every slice."""
    if top is None:
        return None
    if isinstance(top, bool) or not isinstance(top, numbers.Real) or top < 0 \
            or not float(top).is_integer():
        raise ToolkitError(f"top must be a whole number of slices (0 or more), or None for "
                           f"every slice; got {top!r}")
    return int(top)


def resolve(data: DashboardData, metric: Any = None, threshold: Any = None, baseline: Any = None,
            slicing: Any = None, sort: str = "metric", sub_key: Any = None,
            top: Any = DEFAULT_TOP) -> Choice:
    if sort not in SORTS:
        raise ToolkitError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    chosen = resolve_metric(data, metric)
    return Choice(chosen, resolve_threshold(data, chosen, threshold),
                  resolve_baseline(data, baseline), resolve_slicing(data, slicing), sort,
                  resolve_sub_key(data, chosen, sub_key), resolve_top(top))


@dataclass
class Line:
    """One series on one slice: its value and how it compares with the baseline slice."""

    cell: Cell | None
    reference: float
    diff: float
    ratio: float
    failures: list[Failure]
    other_failures: int


@dataclass
class Row:
    slice: Slice
    lines: list[Line]
    is_baseline: bool
    #: position of the slice in the evaluation (ties in a ranking keep this order)
    index: int = 0


def failure_matches(failure: Failure, choice: Choice) -> bool:
    base = failure.metric[:-len("_diff")] if failure.metric.endswith("_diff") else failure.metric
    if base != choice.metric:
        return False
    return failure.threshold is None or choice.threshold is None or \
        math.isclose(failure.threshold, choice.threshold, abs_tol=1e-9)


def line_of(series: Series, slice_: Slice, choice: Choice, compare: bool) -> Line:
    cell = series.cell(choice.metric, choice.threshold, slice_.name, choice.sub_key)
    reference = math.nan
    if compare:
        base = series.cell(choice.metric, choice.threshold, choice.baseline, choice.sub_key)
        reference = base.value if base is not None else math.nan
    value = cell.value if cell is not None else math.nan
    diff = value - reference
    ratio = value / reference if finite(reference) and reference != 0 else math.nan
    mine = series.failures_of(slice_.name)
    shown = [f for f in mine if failure_matches(f, choice)]
    return Line(cell, reference, diff, ratio, shown, len(mine) - len(shown))


def rows_of(data: DashboardData, choice: Choice) -> list[Row]:
    if choice.slicing == ALL_SLICES:
        chosen = [s for s in data.slices.values() if not s.cross]
    else:
        chosen = [s for s in data.slices.values() if s.spec == choice.slicing]
    compare = not choice.cross
    rows = [Row(s, [line_of(series, s, choice, compare) for series in data.series],
                compare and s.name == choice.baseline, i) for i, s in enumerate(chosen)]
    pinned = [r for r in rows if r.is_baseline]
    if compare and not pinned:
        base = data.slices[choice.baseline]
        pinned = [Row(base, [line_of(series, base, choice, True) for series in data.series], True)]
    others = [r for r in rows if not r.is_baseline]
    if choice.sort == "metric":
        others.sort(key=lambda r: descending(value_of(r.lines[0])))
    elif choice.sort == "gap":
        others.sort(key=lambda r: descending(abs(r.lines[0].diff)))
    return pinned + others


def value_of(line: Line) -> float:
    return line.cell.value if line.cell is not None else math.nan


def descending(value: float) -> tuple[int, float]:
    return (0, -value) if finite(value) else (1, 0.0)


def gap_of(row: Row, by_value: bool = False) -> float:
    """What ranks a slice: its first series' difference to the baseline slice (value − baseline),
    or its value when ``by_value`` (cross slices: their values are differences already)."""
    line = row.lines[0]
    return value_of(line) if by_value else line.diff


def failing(row: Row) -> bool:
    """Whether any series failed any threshold check on this slice (any metric)."""
    return any(line.failures or line.other_failures for line in row.lines)


@dataclass
class Selection:
    """The rows a dashboard shows by default, out of every row of its choice.

    ``shown`` keeps the order of ``rows`` (the baseline pinned first, then the chosen sort);
    ``largest``/``smallest`` are the slices ranked by gap, ``failing`` those failing a check.
    """

    rows: list[Row]
    shown: list[Row]
    largest: list[str]
    smallest: list[str]
    failing: list[str]

    @property
    def hidden(self) -> int:
        return len(self.rows) - len(self.shown)


def select(rows: list[Row], top: int | None, by_value: bool = False) -> Selection:
    """Baseline, the ``top`` largest and ``top`` smallest gaps, and every failing slice.

    Slices whose gap is undefined (no value, below ``min_slice_size``) are not ranked.
    Ties keep the evaluation order. When this would leave out no more slices than it
    lists, or ``top`` is None, every row is shown: hiding pays only on long lists.
    """
    others = [r for r in rows if not r.is_baseline]
    fails = [r.slice.name for r in others if failing(r)]
    if top is None:
        return Selection(rows, list(rows), [], [], fails)
    ranked = sorted((r for r in others if finite(gap_of(r, by_value))), key=lambda r: r.index)
    # Python's sort is stable: ties keep the evaluation order in both rankings.
    largest = [r.slice.name for r in sorted(ranked, key=lambda r: -gap_of(r, by_value))[:top]]
    smallest = [r.slice.name for r in sorted(ranked, key=lambda r: gap_of(r, by_value))[:top]]
    keep = set(largest) | set(smallest) | set(fails)
    chosen = [r for r in rows if r.is_baseline or r.slice.name in keep]
    if len(rows) - len(chosen) <= len(chosen):
        chosen = list(rows)
    return Selection(rows, chosen, largest, smallest, fails)


def matching(rows: list[Row], text: str) -> list[Row]:
    """Rows whose slice name contains ``text`` (case-insensitive); the baseline always."""
    needle = text.strip().casefold()
    if not needle:
        return list(rows)
    return [r for r in rows if r.is_baseline or needle in r.slice.name.casefold()]
