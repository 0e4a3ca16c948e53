"""Feature statistics view: the Facets Overview feature set as static HTML.

One table for numeric features and one for categorical features; each feature
shows its summary numbers per dataset (split), a standard histogram drawn with
plain ``div`` bars, its deciles (the quantile histogram) as a strip, and, when
two or more datasets are shown, the distribution distance TFDV uses for drift
and skew: Jensen-Shannon divergence for numeric histograms, L-infinity distance
for categorical values. A small inline script adds sorting and a name filter
where scripts run (trusted notebooks, exported HTML, VS Code); everything else,
including per-criterion rankings, is readable without it.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from tensorflow_metadata.proto.v0 import statistics_pb2

from toolkit.artifacts import STATS_FILE, files_by_split, read_statistics
from toolkit.drift import histogram_js_divergence, values_linf_distance
from toolkit.errors import ToolkitError
from toolkit.visualize.html import (BAD, GRID, HEADING, MUTED, NOTE, PALETTE, TABLE,
                                    TABLE_ATTRS, TD, TH_LEFT, TH_RIGHT, WARN, View, display_view,
                                    esc, escape, fmt_num, fmt_pct, new_uid, plain, root, swatch,
                                    tag)
from toolkit.visualize.reading import splits_with, toolkit_artifact

Histogram = statistics_pb2.Histogram
DatasetList = statistics_pb2.DatasetFeatureStatisticsList
Dataset = statistics_pb2.DatasetFeatureStatistics

CHART_WIDTH = 220
CHART_HEIGHT = 44
TOP_VALUES_SHOWN = 6
RANKED = 10
#: Features drawn in detail; beyond this a view would weigh megabytes per thousand
#: features in the notebook. The rankings and counts still cover every feature.
FEATURES_SHOWN = 500
#: Distances at or above this are highlighted (TFDV examples use 0.01-0.1 thresholds).
DISTANCE_ALERT = 0.1


# --------------------------------------------------------------------------
# Distances, as TFDV defines them for drift and skew comparators
# --------------------------------------------------------------------------

def jensen_shannon_divergence(a: Histogram, b: Histogram) -> float | None:
    """TFDV's Jensen-Shannon divergence of two numeric histograms (log base 2), as its
    drift and skew comparators measure it; None when either side is empty."""
    return histogram_js_divergence(a, b)


def l_infinity_distance(counts_a: Mapping[str, float],
                        counts_b: Mapping[str, float]) -> float | None:
    """TFDV's L-infinity distance between normalized value frequencies; None (nothing to
    compare) when either side has no values."""
    if sum(counts_a.values()) <= 0 or sum(counts_b.values()) <= 0:
        return None
    return values_linf_distance(counts_a, counts_b)


def non_uniformity(counts: Sequence[float]) -> float:
    """0 for a perfectly even distribution, 1 when all mass sits in one bucket or value.

    Defined as one minus the normalized Shannon entropy of the bucket (or value)
    proportions; used to sort features the way Facets' "non-uniformity" does.
    """
    positive = [c for c in counts if c > 0]
    total = sum(positive)
    if total <= 0:
        return 0.0
    if len(counts) <= 1 or len(positive) == 1:
        return 1.0
    entropy = -sum(c / total * math.log(c / total) for c in positive)
    return max(0.0, 1.0 - entropy / math.log(len(counts)))


# --------------------------------------------------------------------------
# Reading statistics
# --------------------------------------------------------------------------

def _stats_from_folder(folder: str) -> dict[str, DatasetList]:
    direct = os.path.join(folder, STATS_FILE)
    if os.path.isfile(direct):
        return {"": read_statistics(direct)}
    found = files_by_split(folder, STATS_FILE)
    if not found:
        raise ToolkitError(f"no statistics in {folder!r}: expected Split-<name>/FeatureStats.pb "
                           "files (an ExampleStatistics artifact folder) or FeatureStats.pb")
    return {split: read_statistics(path) for split, path in found.items()}


def _is_dataframe(obj: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def artifact_statistics(source: Any) -> dict[str, DatasetList]:
    """Statistics per split of an ExampleStatistics artifact (the toolkit's, TFX's or any
    object with its ``uri``), read by ``ExampleStatistics.load``."""
    artifact = toolkit_artifact(source, "ExampleStatistics")
    splits = splits_with(artifact, STATS_FILE)
    if not splits:
        return _stats_from_folder(artifact.uri)
    return {split: artifact.load(split) for split in splits}


def _is_statistics_artifact(source: Any) -> bool:
    type_name = getattr(source, "type_name", None) or getattr(source, "TYPE_NAME", None)
    return hasattr(source, "uri") and (hasattr(source, "stats_path")
                                       or type_name == "ExampleStatistics")


def load_statistics(source: Any) -> dict[str, DatasetList]:
    """Statistics keyed by split (``""`` for a single unnamed set) from any supported source.

    ``source`` may be a pandas DataFrame (statistics computed with TFDV), a
    ``DatasetFeatureStatisticsList`` or ``DatasetFeatureStatistics`` proto, a path
    to a ``FeatureStats.pb`` file or to an artifact folder with
    ``Split-*/FeatureStats.pb`` files, an ExampleStatistics artifact, or a channel
    holding one.
    """
    if isinstance(source, DatasetList):
        return {"": source}
    if isinstance(source, Dataset):
        wrapped = DatasetList()
        wrapped.datasets.add().CopyFrom(source)
        return {"": wrapped}
    if _is_dataframe(source):
        import tensorflow_data_validation as tfdv

        # A filtered frame's index would otherwise appear as a feature.
        frame = source.reset_index(drop=True)
        return {"": tfdv.generate_statistics_from_dataframe(frame)}
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            return _stats_from_folder(path)
        if os.path.isfile(path):
            return {"": read_statistics(path)}
        raise ToolkitError(f"statistics path {path!r} does not exist")
    if _is_statistics_artifact(source):
        return artifact_statistics(source)
    if hasattr(source, "get") and callable(source.get) and not isinstance(source, Mapping):
        artifacts = list(source.get())
        if len(artifacts) != 1:
            raise ToolkitError(f"expected one ExampleStatistics artifact in the channel, "
                               f"found {len(artifacts)}")
        return load_statistics(artifacts[0])
    raise ToolkitError(
        f"cannot show statistics of a {type(source).__name__}: pass a pandas DataFrame, "
        "a DatasetFeatureStatisticsList, a FeatureStats.pb path, an artifact folder or an "
        "ExampleStatistics artifact")


def _datasets(stats_by_name: Mapping[str, Any]) -> list[tuple[str, Dataset]]:
    """Flatten {name: list-or-dataset} into labelled datasets, in order."""
    out: list[tuple[str, Dataset]] = []
    for name, value in stats_by_name.items():
        if isinstance(value, Dataset):
            out.append((name or value.name or "data", value))
            continue
        datasets = list(value.datasets)
        for ds in datasets:
            if len(datasets) == 1:
                label = name or ds.name or "data"
            else:
                label = f"{name}/{ds.name}" if name else (ds.name or "data")
            out.append((label, ds))
    seen: dict[str, int] = {}
    unique = []
    for label, ds in out:
        seen[label] = seen.get(label, 0) + 1
        unique.append((label if seen[label] == 1 else f"{label} ({seen[label]})", ds))
    return unique


# --------------------------------------------------------------------------
# Per-feature model
# --------------------------------------------------------------------------

_KINDS = {"num_stats": "numeric", "string_stats": "categorical",
          "bytes_stats": "other", "struct_stats": "other"}


def _feature_name(feature: statistics_pb2.FeatureNameStatistics) -> str:
    return ".".join(feature.path.step) if feature.path.step else feature.name


def _common(feature: statistics_pb2.FeatureNameStatistics) -> statistics_pb2.CommonStatistics:
    kind = feature.WhichOneof("stats")
    if kind == "struct_stats":
        return feature.struct_stats.common_stats
    return getattr(feature, kind).common_stats if kind else statistics_pb2.CommonStatistics()


def _missing(feature: statistics_pb2.FeatureNameStatistics) -> float:
    common = _common(feature)
    total = common.num_non_missing + common.num_missing
    return common.num_missing / total if total else 0.0


def _standard_histogram(feature: statistics_pb2.FeatureNameStatistics) -> Histogram | None:
    for hist in feature.num_stats.histograms:
        if hist.type == Histogram.STANDARD:
            return hist
    return None


def _quantile_histogram(feature: statistics_pb2.FeatureNameStatistics) -> Histogram | None:
    for hist in feature.num_stats.histograms:
        if hist.type == Histogram.QUANTILES:
            return hist
    return None


def _value_counts(feature: statistics_pb2.FeatureNameStatistics) -> dict[str, float]:
    stats = feature.string_stats
    if stats.rank_histogram.buckets:
        return {b.label: b.sample_count for b in stats.rank_histogram.buckets}
    return {v.value: v.frequency for v in stats.top_values}


def _total_values(feature: statistics_pb2.FeatureNameStatistics) -> float:
    common = _common(feature)
    return float(common.tot_num_values or common.num_non_missing)


@dataclass
class _Feature:
    name: str
    kind: str
    order: int
    per_dataset: list[statistics_pb2.FeatureNameStatistics | None]
    missing: float = 0.0
    non_uniformity: float = 0.0
    distances: list[float | None] | None = None

    @property
    def distance(self) -> float | None:
        values = [d for d in (self.distances or []) if d is not None]
        return max(values) if values else None


def _collect(datasets: list[tuple[str, Dataset]]) -> list[_Feature]:
    features: dict[str, _Feature] = {}
    for index, (_, ds) in enumerate(datasets):
        for f in ds.features:
            kind = _KINDS.get(f.WhichOneof("stats") or "", "other")
            name = _feature_name(f)
            entry = features.get(name)
            if entry is None:
                entry = features[name] = _Feature(name, kind, len(features),
                                                  [None] * len(datasets))
            if entry.kind == kind and entry.per_dataset[index] is None:
                entry.per_dataset[index] = f
    for entry in features.values():
        present = [f for f in entry.per_dataset if f is not None]
        entry.missing = max(_missing(f) for f in present)
        first = present[0]
        if entry.kind == "numeric":
            hist = _standard_histogram(first)
            constant = (first.num_stats.min == first.num_stats.max
                        and _common(first).num_non_missing > 0)
            entry.non_uniformity = 1.0 if constant else non_uniformity(
                [b.sample_count for b in hist.buckets] if hist else [])
        elif entry.kind == "categorical":
            entry.non_uniformity = non_uniformity(list(_value_counts(first).values()))
        if len(datasets) > 1:
            entry.distances = [_distance(entry.kind, entry.per_dataset[0], other)
                               for other in entry.per_dataset[1:]]
    return list(features.values())


def _distance(kind: str, base: Any, other: Any) -> float | None:
    if base is None or other is None:
        return None
    if kind == "numeric":
        a, b = _standard_histogram(base), _standard_histogram(other)
        return jensen_shannon_divergence(a, b) if a is not None and b is not None else None
    if kind == "categorical":
        return l_infinity_distance(_value_counts(base), _value_counts(other))
    return None


# --------------------------------------------------------------------------
# Charts (HTML/CSS only: divs with inline sizes)
# --------------------------------------------------------------------------

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


def _numeric_chart(feature: _Feature, labels: list[str]) -> str:
    present = [(i, f) for i, f in enumerate(feature.per_dataset) if f is not None]
    hists = [(i, _standard_histogram(f)) for i, f in present]
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
    hist = _quantile_histogram(feature)
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


def _display_value(value: str) -> str:
    if value == "":
        return tag("i", "(empty string)", f"color:{MUTED}")
    return esc(value, 80)


def _categorical_chart(feature: _Feature, labels: list[str]) -> str:
    counts = [(_value_counts(f), _total_values(f)) if f is not None else ({}, 0.0)
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
            f'{_display_value(value)}</span><span>{"".join(bars)}</span>'
            f'<small>{escape(" / ".join(shares))}</small>')
    rows = [f'<div style="display:grid;grid-template-columns:10em 110px auto;gap:0 6px;'
            f'align-items:center;line-height:1.2">{"".join(cells)}</div>']
    unique = max((f.string_stats.unique for f in feature.per_dataset if f is not None), default=0)
    more = unique - len(order)
    tail = tag("div", f"… {more:,} more value{'s' if more > 1 else ''}", NOTE) if more > 0 else ""
    return "".join(rows) + tail


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------

def _cell(text: str, style: str = "", exact: float | None = None, colour: str = "") -> str:
    """A cell, right-aligned unless ``style`` says otherwise; ``exact`` becomes its tooltip."""
    if colour:
        style = f"{style};color:{colour};font-weight:600" if style else \
            f"color:{colour};font-weight:600"
    title = repr(exact) if exact is not None and fmt_num(exact) != repr(exact) else None
    return tag("td", text, style, title=title)


def _missing_cell(feature: statistics_pb2.FeatureNameStatistics) -> str:
    missing = _missing(feature)
    colour = BAD if missing >= 0.5 else (WARN if missing > 0 else "")
    return _cell(fmt_pct(missing), colour=colour)


def _numeric_cells(f: statistics_pb2.FeatureNameStatistics) -> list[str]:
    s = f.num_stats
    common = s.common_stats
    zeros = s.num_zeros / (common.tot_num_values or common.num_non_missing or 1)
    return [
        _cell(fmt_num(common.num_non_missing)),
        _missing_cell(f),
        _cell(fmt_num(s.mean), exact=s.mean),
        _cell(fmt_num(s.std_dev), exact=s.std_dev),
        _cell(fmt_pct(zeros), colour=BAD if zeros >= 0.5 else ""),
        _cell(fmt_num(s.min), exact=s.min),
        _cell(fmt_num(s.median), exact=s.median),
        _cell(fmt_num(s.max), exact=s.max),
    ]


def _categorical_cells(f: statistics_pb2.FeatureNameStatistics) -> list[str]:
    s = f.string_stats
    common = s.common_stats
    top = s.top_values[0] if s.top_values else None
    if top is None and s.rank_histogram.buckets:
        bucket = s.rank_histogram.buckets[0]
        top = statistics_pb2.StringStatistics.FreqAndValue(value=bucket.label,
                                                           frequency=bucket.sample_count)
    total = _total_values(f) or 1.0
    top_cell = (f'<td style="{TD};max-width:14em;overflow:hidden;white-space:nowrap;'
                f'text-overflow:ellipsis" title="{esc(top.value, 300)}">'
                f'{_display_value(top.value)}</td>' if top else f'<td style="{TD}">–</td>')
    return [
        _cell(fmt_num(common.num_non_missing)),
        _missing_cell(f),
        _cell(fmt_num(s.unique)),
        top_cell,
        _cell(f"{fmt_num(top.frequency)} ({fmt_pct(top.frequency / total)})" if top else "–"),
        _cell(fmt_num(s.avg_length), exact=s.avg_length),
    ]


def _other_cells(f: statistics_pb2.FeatureNameStatistics) -> list[str]:
    common = _common(f)
    kind = f.WhichOneof("stats") or ""
    detail = ""
    if kind == "bytes_stats":
        b = f.bytes_stats
        detail = (f"unique {fmt_num(b.unique)}, avg {fmt_num(b.avg_num_bytes)} bytes, "
                  f"max {fmt_num(b.max_num_bytes)} bytes")
    return [
        _cell(escape(kind.replace("_stats", "") or "unknown"), TD),
        _cell(fmt_num(common.num_non_missing)),
        _missing_cell(f),
        _cell(fmt_num(common.avg_num_values), exact=common.avg_num_values),
        _cell(escape(detail), TD),
    ]


_COLUMNS = {
    "numeric": ["Count", "Missing", "Mean", "Std dev", "Zeros", "Min", "Median", "Max"],
    "categorical": ["Count", "Missing", "Unique", "Top value", "Top freq", "Avg length"],
    "other": ["Stats", "Count", "Missing", "Avg values", "Details"],
}
_CELLS = {"numeric": _numeric_cells, "categorical": _categorical_cells, "other": _other_cells}
_DISTANCE_NAME = {"numeric": "JS divergence", "categorical": "L∞ distance"}
_TYPE_NAMES = {0: "INT", 1: "FLOAT", 2: "STRING", 3: "BYTES", 4: "STRUCT"}


def _name_cell(feature: _Feature, rows: int) -> str:
    first = next(f for f in feature.per_dataset if f is not None)
    type_name = _TYPE_NAMES.get(first.type, "")
    common = _common(first)
    extra = ""
    if common.max_num_values > 1 or common.min_num_values != common.max_num_values:
        extra = (f'<div style="{NOTE}">{fmt_num(common.min_num_values)}–'
                 f'{fmt_num(common.max_num_values)} values per example</div>')
    span = f' rowspan="{rows}"' if rows > 1 else ""
    # Usual names stay on one line; only very long ones may break anywhere.
    wrap = ("white-space:nowrap" if len(feature.name) <= 40
            else "min-width:12em;max-width:24em;overflow-wrap:anywhere")
    return (f'<td style="{TD};font-weight:600;{wrap}"{span} '
            f'title="{esc(feature.name, 500)}">{esc(feature.name, 120)} '
            f'<span style="{NOTE};font-weight:normal">{type_name}</span>{extra}</td>')


def _distance_cell(feature: _Feature, labels: list[str], rows: int) -> str:
    distances = feature.distances or []
    parts = []
    for label, d in zip(labels[1:], distances):
        colour = WARN if d is not None and d >= DISTANCE_ALERT else ""
        value = f"{d:.4f}" if d is not None else "–"
        text = value if len(labels) == 2 else f"{escape(label)}: {value}"
        parts.append(tag("div", text, f"color:{colour};font-weight:600" if colour else ""))
    vs = f"{labels[0]} vs " + ", ".join(labels[1:])
    title = f"{_DISTANCE_NAME.get(feature.kind, 'distance')}, {vs}"
    span = f' rowspan="{rows}"' if rows > 1 else ""
    return f'<td{span} title="{escape(title)}">{"".join(parts) or "–"}</td>'


def _feature_body(feature: _Feature, labels: list[str]) -> str:
    multi = len(labels) > 1
    rows = len(labels)
    chart = (_numeric_chart(feature, labels) if feature.kind == "numeric" else
             _categorical_chart(feature, labels) if feature.kind == "categorical" else "")
    span = f' rowspan="{rows}"' if rows > 1 else ""
    html_rows = []
    for i, (label, f) in enumerate(zip(labels, feature.per_dataset)):
        cells = []
        if i == 0:
            # Name, chart and distance come first so they stay in sight in a
            # narrow notebook; the numbers follow and may scroll sideways.
            cells.append(_name_cell(feature, rows))
            if feature.kind != "other":
                cells.append(f'<td style="{TD}"{span}>{chart}</td>')
            if multi and feature.kind in _DISTANCE_NAME:
                cells.append(_distance_cell(feature, labels, rows))
        if multi:
            cells.append(f'<td style="{TD};white-space:nowrap">{swatch(PALETTE[i % len(PALETTE)])}'
                         f'{esc(label, 60)}</td>')
        if f is None:
            cells.append(f'<td style="{TD};color:{MUTED}" colspan="{len(_COLUMNS[feature.kind])}">'
                         f'not in this dataset</td>')
        else:
            cells.extend(_CELLS[feature.kind](f))
        html_rows.append("<tr>" + "".join(cells) + "</tr>")
    distance = feature.distance
    attrs = (f' data-f="{esc(feature.name, 500)}" data-o="{feature.order}" '
             f'data-m="{feature.missing:.6g}" data-u="{feature.non_uniformity:.6g}" '
             f'data-d="{distance if distance is not None else -1:.6g}"')
    return f'<tbody style="border-top:1px solid {GRID}"{attrs}>{"".join(html_rows)}</tbody>'


def _feature_table(kind: str, features: list[_Feature], labels: list[str]) -> str:
    if not features:
        return ""
    multi = len(labels) > 1
    headers = ["Feature"]
    if kind == "numeric":
        headers.append("Histogram · quantiles")
    elif kind == "categorical":
        headers.append("Top values")
    if multi and kind in _DISTANCE_NAME:
        headers.append(_DISTANCE_NAME[kind])
    headers += (["Dataset"] if multi else []) + _COLUMNS[kind]
    text_columns = {"Feature", "Dataset", "Top value", "Stats", "Details",
                    "Histogram · quantiles", "Top values"}
    head = "".join(tag("th", escape(h), TH_LEFT if h in text_columns else TH_RIGHT)
                   for h in headers)
    title = {"numeric": "Numeric features", "categorical": "Categorical features",
             "other": "Other features"}[kind]
    bodies = "".join(_feature_body(f, labels) for f in features)
    return (tag("div", f"{title} ({len(features)})", HEADING)
            + f'<table class="tkv-sortable" {TABLE_ATTRS} style="{TABLE}">'
            f"<thead><tr>{head}</tr></thead>{bodies}</table>")


def _rankings(features: list[_Feature], multi: bool) -> str:
    """Top features per sort criterion: the sorting that works without scripts."""
    criteria = [("Most missing", lambda f: f.missing, fmt_pct),
                ("Least uniform", lambda f: f.non_uniformity, lambda v: f"{v:.3f}")]
    if multi:
        criteria.append(("Largest distance", lambda f: f.distance or 0.0, lambda v: f"{v:.4f}"))
    columns = []
    for title, key, fmt in criteria:
        ranked = sorted((f for f in features if key(f) > 0), key=lambda f: (-key(f), f.order))
        items = "".join(
            f'<li>{esc(f.name, 60)} <span style="{NOTE}">{escape(fmt(key(f)))}</span></li>'
            for f in ranked[:RANKED])
        body = f'<ol style="margin:2px 0;padding-left:22px">{items}</ol>' if items else \
            tag("div", "none", NOTE)
        columns.append(tag("div", tag("div", escape(title), "font-weight:600") + body,
                           "min-width:14em"))
    return ('<details style="margin:4px 0 6px 0"><summary style="cursor:pointer">'
            "Rankings: most missing, least uniform"
            + (", largest distance" if multi else "") + "</summary>"
            + tag("div", "".join(columns), "display:flex;flex-wrap:wrap;gap:18px;margin:4px 0")
            + "</details>")


#: Progressive enhancement: where scripts run (trusted notebooks, exported HTML,
#: VS Code) this adds a name filter and sort controls above the tables. It only
#: reorders and hides the ``<tbody>`` of each feature; it never builds markup
#: from data (values are read with getAttribute and compared as text).
_SCRIPT = """<script>(function () {
  var me = document.currentScript;
  var root = (me && me.closest && me.closest('.tkv-__UID__'))
    || document.querySelector('.tkv-__UID__');
  if (!root || root.getAttribute('data-tkv-ready')) return;
  root.setAttribute('data-tkv-ready', '1');
  var note = root.querySelector('.tkv-static-note');
  if (note) note.parentNode.removeChild(note);
  function element(tag, css) {
    var e = document.createElement(tag);
    if (css) e.style.cssText = css;
    return e;
  }
  var bar = element('div', 'display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:4px 0');
  var filter = element('input', 'padding:2px 6px;min-width:14em');
  filter.type = 'search';
  filter.placeholder = 'Filter features';
  var sort = element('select');
  [['o', 'Sort: feature order'], ['f', 'Sort: name'], ['m', 'Sort: missing %'],
   ['u', 'Sort: non-uniformity']].concat(__DIST__).forEach(function (pair) {
    var option = element('option'); option.value = pair[0]; option.textContent = pair[1];
    sort.appendChild(option);
  });
  var reverse = element('input');
  reverse.type = 'checkbox';
  var label = element('label');
  label.appendChild(reverse);
  label.appendChild(document.createTextNode(' reverse'));
  var count = element('span', 'opacity:.7');
  [filter, sort, label, count].forEach(function (e) { bar.appendChild(e); });
  root.querySelector('.tkv-controls').appendChild(bar);
  function key(body, k) {
    var v = body.getAttribute('data-' + k);
    return k === 'f' ? v.toLowerCase() : parseFloat(v);
  }
  function compare(k) {
    return function (a, b) {
      var x = key(a, k), y = key(b, k), c;
      if (k === 'f') c = x < y ? -1 : x > y ? 1 : 0;
      else if (k === 'o') c = x - y;
      else c = y - x;
      if (reverse.checked) c = -c;
      return c || key(a, 'o') - key(b, 'o');
    };
  }
  function apply() {
    var text = filter.value.toLowerCase(), shown = 0, all = 0;
    root.querySelectorAll('table.tkv-sortable').forEach(function (table) {
      var bodies = Array.prototype.slice.call(table.tBodies).sort(compare(sort.value));
      var visible = 0;
      bodies.forEach(function (body) {
        table.appendChild(body);
        var match = body.getAttribute('data-f').toLowerCase().indexOf(text) >= 0;
        body.style.display = match ? '' : 'none';
        all += 1;
        if (match) visible += 1;
      });
      table.style.display = visible ? '' : 'none';
      shown += visible;
    });
    count.textContent = shown + ' of ' + all + ' features';
  }
  filter.addEventListener('input', apply);
  sort.addEventListener('change', apply);
  reverse.addEventListener('change', apply);
  apply();
})();</script>"""


def _script(uid: str, multi: bool) -> str:
    dist = "[['d', 'Sort: distance']]" if multi else "[]"
    return _SCRIPT.replace("__UID__", uid).replace("__DIST__", dist)


# --------------------------------------------------------------------------
# Text form
# --------------------------------------------------------------------------

def _text(features: list[_Feature], labels: list[str], datasets: list[tuple[str, Dataset]],
          limit: int = 60) -> str:
    summary = ", ".join(f"{plain(label, 40)}: {fmt_num(ds.num_examples)} examples"
                        for label, ds in datasets)
    lines = [f"Feature statistics ({len(features)} features; {summary})"]
    multi = len(labels) > 1
    for kind, heading in (("numeric", "Numeric"), ("categorical", "Categorical"),
                          ("other", "Other")):
        chosen = [f for f in features if f.kind == kind]
        if not chosen:
            continue
        lines.append(f"{heading} features ({len(chosen)}):")
        for feature in chosen[:limit]:
            for i, f in enumerate(feature.per_dataset):
                who = f" [{plain(labels[i], 20)}]" if multi else ""
                name = f"  {plain(feature.name, 40)}{who}"
                if f is None:
                    lines.append(f"{name}: not in this dataset")
                elif kind == "numeric":
                    s = f.num_stats
                    lines.append(
                        f"{name}: count {fmt_num(s.common_stats.num_non_missing)}, missing "
                        f"{fmt_pct(_missing(f))}, mean {fmt_num(s.mean)}, std {fmt_num(s.std_dev)},"
                        f" min {fmt_num(s.min)}, median {fmt_num(s.median)}, max {fmt_num(s.max)}")
                elif kind == "categorical":
                    s = f.string_stats
                    top = (f", top {plain(s.top_values[0].value, 40)!r} "
                           f"({fmt_num(s.top_values[0].frequency)})" if s.top_values else "")
                    lines.append(f"{name}: count {fmt_num(s.common_stats.num_non_missing)}, "
                                 f"missing {fmt_pct(_missing(f))}, unique {fmt_num(s.unique)}{top}")
                else:
                    lines.append(f"{name}: count {fmt_num(_common(f).num_non_missing)}")
            if multi and feature.distance is not None:
                lines.append(f"    {_DISTANCE_NAME[feature.kind]}: {feature.distance:.4f}")
        if len(chosen) > limit:
            lines.append(f"  … and {len(chosen) - limit} more")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

def statistics_view(stats_by_name: Mapping[str, Any]) -> View:
    """Side-by-side statistics of datasets or splits, e.g. ``{"train": ..., "eval": ...}``.

    Values are ``DatasetFeatureStatisticsList`` (or ``DatasetFeatureStatistics``)
    protos. With two or more datasets, each feature also shows its distance from
    the first dataset (Jensen-Shannon divergence or L-infinity distance).
    """
    datasets = _datasets(stats_by_name)
    if not datasets:
        return View(root(tag("div", "No statistics.", NOTE), new_uid()), "No statistics.",
                    "Feature statistics")
    labels = [label for label, _ in datasets]
    features = _collect(datasets)
    uid = new_uid()
    multi = len(labels) > 1
    legend = " ".join(
        f'<span style="white-space:nowrap;margin-right:10px">{swatch(PALETTE[i % len(PALETTE)])}'
        f'{esc(label, 60)} <span style="{NOTE}">{fmt_num(ds.num_examples)} examples</span></span>'
        for i, (label, ds) in enumerate(datasets))
    kinds = {k: [f for f in features if f.kind == k] for k in ("numeric", "categorical", "other")}
    counts = ", ".join(f"{len(v)} {k}" for k, v in kinds.items() if v)
    shown = {k: [f for f in v if f.order < FEATURES_SHOWN] for k, v in kinds.items()}
    note = tag("div", "Sorting and filtering controls appear where scripts run (a trusted "
               "notebook, exported HTML); the rankings below work everywhere.",
               NOTE, class_="tkv-static-note")
    if len(features) > FEATURES_SHOWN:
        note += tag("div", f"Showing the first {FEATURES_SHOWN:,} of {len(features):,} features "
                    "in detail (the rankings cover all); show the statistics of fewer columns "
                    "to see the others.", NOTE)
    body = (tag("div", legend, "margin:2px 0")
            + '<div class="tkv-controls"></div>' + note
            + _rankings(features, multi)
            + tag("div", "".join(_feature_table(k, v, labels) for k, v in shown.items()),
                  "max-height:760px;overflow:auto")
            + _script(uid, multi))
    subtitle = f"{len(features)} features ({counts})"
    html = root(body, uid, "Feature statistics", escape(subtitle))
    return View(html, _text(features, labels, datasets), "Feature statistics")


def statistics_view_of(data: Any, compare_to: Any = None,
                       names: Sequence[str] | None = None) -> View:
    """The view ``show_statistics`` displays, without displaying it."""
    names = list(names or [])
    inputs = [data] + ([compare_to] if compare_to is not None else [])
    defaults = ["data", "compare_to"]
    stats: dict[str, DatasetList] = {}
    for i, source in enumerate(inputs):
        named = i < len(names)
        label = names[i] if named else defaults[i]
        prefixed = named or len(inputs) > 1
        loaded = load_statistics(source)
        for split, value in loaded.items():
            if len(loaded) == 1:
                key = label if prefixed or not split else split
            else:
                key = f"{label}/{split}" if prefixed else split
            while key in stats:
                key += "'"
            stats[key] = value
    return statistics_view(stats)


def show_statistics(data: Any, compare_to: Any = None,
                    names: Sequence[str] | None = None) -> View:
    """Display feature statistics of ``data`` (optionally beside ``compare_to``).

    ``data`` and ``compare_to`` may each be a pandas DataFrame, a
    ``DatasetFeatureStatisticsList``, a path to ``FeatureStats.pb`` or to an
    artifact folder with ``Split-*/FeatureStats.pb``, or an ExampleStatistics
    artifact. ``names`` labels them (default ``data`` and ``compare_to``; splits
    keep their own names). Displays like :func:`toolkit.show` and returns the view.
    """
    return display_view(statistics_view_of(data, compare_to, names))
