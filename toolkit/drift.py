"""Drift over time: each span's distance to its predecessor and to a reference span.

TFDV compares two datasets at a time (``validate_statistics(..., previous_statistics=)``
with a schema's ``drift_comparator``). This module runs the same comparison along a
sequence of spans and keeps every value, so a view can draw the picture over time:

- numeric features: the approximate Jensen-Shannon divergence of the STANDARD
  histograms, aligned exactly as TFDV's ``metrics.cc`` aligns them (point and
  infinite buckets set aside, the others re-bucketed on the union of boundaries
  assuming values uniform within a bucket);
- categorical features: the L-infinity distance of the rank histograms, each
  normalised by its own total, as TFDV's ``LInftyDistance``.

The numbers equal the ``drift_skew_info`` measurements TFDV reports (tested to
1e-9), and a span is flagged as TFDV flags it: its distance to the predecessor is
strictly above the comparator's threshold. Per span it also keeps the missing
fraction and the mean (numeric) or top value (categorical).

This is computation only: nothing here imports a view; ``toolkit.visualize.drift``
draws a :class:`DriftReport`.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from toolkit.errors import ToolkitError

JENSEN_SHANNON = "jensen_shannon_divergence"
INFINITY_NORM = "infinity_norm"
#: The comparator TFDV applies to each kind of feature (the schema field name).
COMPARATOR = {"numeric": JENSEN_SHANNON, "categorical": INFINITY_NORM}
DEFAULT_SPLIT = "train"


# --------------------------------------------------------------------------
# Distances, ported from TFDV's anomalies/metrics.cc
# --------------------------------------------------------------------------

def _strip(buckets: Iterable[Any]) -> tuple[list[tuple[float, float, float]],
                                             dict[float, float], float]:
    """Regular buckets, point (zero-width) masses, and the mass in infinite buckets."""
    regular: list[tuple[float, float, float]] = []
    points: dict[float, float] = {}
    infinite = 0.0
    for b in buckets:
        low, high, count = b.low_value, b.high_value, b.sample_count
        if not (math.isfinite(low) and math.isfinite(high)):
            infinite += count
        elif low == high:
            points[low] = points.get(low, 0.0) + count
        else:
            regular.append((low, high, count))
    return regular, points, infinite


def _rebucket(boundaries: Sequence[float],
              buckets: Sequence[tuple[float, float, float]]) -> list[float]:
    """Counts of ``buckets`` on ``boundaries`` (TFDV's ``RebucketHistogram``)."""
    out: list[float] = []
    last = len(boundaries) - 1
    index = 0
    for low, high, count in buckets:
        while index < last and low > boundaries[index]:
            out.append(0.0)
            index += 1
        covered = []
        while index < last and high > boundaries[index]:
            covered.append(boundaries[index])
            index += 1
        covered.append(boundaries[index])
        span = high - low
        for k in range(len(covered) - 1):
            out.append(((covered[k + 1] - covered[k]) / span) * count)
    out.extend(0.0 for _ in range(index, last))
    return out


def _aligned(a: Any, b: Any) -> tuple[list[float], list[float]]:
    """Both histograms on the same buckets (TFDV's ``AlignHistograms``)."""
    regular_a, points_a, inf_a = _strip(a.buckets)
    regular_b, points_b, inf_b = _strip(b.buckets)
    nan_a, nan_b = float(a.num_nan), float(b.num_nan)
    bounds_a = {v for low, high, _ in regular_a for v in (low, high)}
    bounds_b = {v for low, high, _ in regular_b for v in (low, high)}
    if bounds_a == bounds_b:
        counts_a = [c for _, _, c in regular_a]
        counts_b = [c for _, _, c in regular_b]
    else:
        boundaries = sorted(bounds_a | bounds_b)
        counts_a = _rebucket(boundaries, regular_a)
        counts_b = _rebucket(boundaries, regular_b)
        # TFDV rebuilds a re-bucketed histogram from scratch, which drops its
        # num_nan: NaN buckets are only added when no re-bucketing happened.
        nan_a = nan_b = 0.0
    for value in sorted(set(points_a) | set(points_b)):
        counts_a.append(points_a.get(value, 0.0))
        counts_b.append(points_b.get(value, 0.0))
    if inf_a != 0:
        counts_a.append(inf_a)
        counts_b.append(0.0)
    if inf_b != 0:
        counts_a.append(0.0)
        counts_b.append(inf_b)
    if nan_a > 0 or nan_b > 0:
        counts_a += [0.0, nan_a]
        counts_b += [nan_b, 0.0]
    return counts_a, counts_b


def _kl(p: Sequence[float], q: Sequence[float]) -> float:
    result = 0.0
    for pi, qi in zip(p, q):
        if pi > 0 and qi > 0:
            result += pi * math.log2(pi / qi)
    return result


def histogram_js_divergence(a: Any, b: Any) -> float | None:
    """TFDV's approximate Jensen-Shannon divergence of two ``Histogram`` protos (log base 2).

    None where TFDV reports no measurement: a histogram with no mass.
    """
    counts_a, counts_b = _aligned(a, b)
    total_a, total_b = sum(counts_a), sum(counts_b)
    if total_a == 0 or total_b == 0:
        return None
    p = [c / total_a for c in counts_a]
    q = [c / total_b for c in counts_b]
    m = [(pi + qi) / 2 for pi, qi in zip(p, q)]
    return min((_kl(p, m) + _kl(q, m)) / 2, 1.0)


def _normalized(counts: Mapping[str, float]) -> dict[str, float]:
    total = 0.0
    for key in sorted(counts):
        total += counts[key]
    if total == 0:
        return dict(counts)
    return {k: v / total for k, v in counts.items()}


def values_linf_distance(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """TFDV's L-infinity distance: the largest gap between the two normalised value counts.

    Like TFDV, an empty side counts as all zeros (so two empty sides are 0 apart).
    """
    na, nb = _normalized(a), _normalized(b)
    best = 0.0
    for key in set(na) | set(nb):
        best = max(best, abs(na.get(key, 0.0) - nb.get(key, 0.0)))
    return best


# --------------------------------------------------------------------------
# Reading one feature of one span's statistics
# --------------------------------------------------------------------------

_KINDS = {"num_stats": "numeric", "string_stats": "categorical"}


def _feature_name(feature: Any) -> str:
    return ".".join(feature.path.step) if feature.path.step else feature.name


def _standard_histogram(feature: Any) -> Any:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    for hist in feature.num_stats.histograms:
        if hist.type == statistics_pb2.Histogram.STANDARD:
            return hist
    return None


def _rank_counts(feature: Any) -> dict[str, float]:
    """The rank histogram as TFDV reads it (the first bucket of a repeated label wins)."""
    counts: dict[str, float] = {}
    for bucket in feature.string_stats.rank_histogram.buckets:
        counts.setdefault(bucket.label, bucket.sample_count)
    return counts


def _common(feature: Any) -> Any:
    kind = feature.WhichOneof("stats")
    return getattr(feature, kind).common_stats


def _missing(feature: Any) -> float | None:
    common = _common(feature)
    total = common.num_missing + common.num_non_missing
    return common.num_missing / total if total else None


def _top_value(feature: Any) -> str | None:
    stats = feature.string_stats
    if stats.top_values:
        return stats.top_values[0].value
    if stats.rank_histogram.buckets:
        return stats.rank_histogram.buckets[0].label
    return None


def distance(kind: str, current: Any, previous: Any) -> float | None:
    """The drift distance TFDV measures for one feature (``FeatureNameStatistics`` protos)."""
    if current is None or previous is None:
        return None
    if kind == "numeric":
        a, b = _standard_histogram(current), _standard_histogram(previous)
        if a is None or b is None:
            return None
        return histogram_js_divergence(a, b)
    return values_linf_distance(_rank_counts(current), _rank_counts(previous))


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------

@dataclass
class FeatureDrift:
    """One feature along the spans; lists hold one entry per span (None: not measured)."""

    name: str
    kind: str                        #: "numeric" or "categorical"
    comparator: str                  #: JENSEN_SHANNON or INFINITY_NORM
    threshold: float | None
    to_previous: list[float | None]  #: the first span has no predecessor: None
    to_reference: list[float | None]
    missing: list[float | None]      #: fraction of examples without the feature
    mean: list[float | None]         #: numeric features
    top: list[str | None]            #: categorical features
    present: list[bool]

    @property
    def flagged(self) -> list[bool]:
        """Spans whose distance to the predecessor is above the threshold (TFDV's drift)."""
        return [self.threshold is not None and d is not None and d > self.threshold
                for d in self.to_previous]

    @property
    def flagged_reference(self) -> list[bool]:
        """Spans whose distance to the reference span is above the threshold."""
        return [self.threshold is not None and d is not None and d > self.threshold
                for d in self.to_reference]


@dataclass
class DriftReport:
    """Drift of features over an ordered sequence of spans.

    ``toolkit.show(report)`` draws it; :meth:`to_dataframe` gives one row per
    feature and span.
    """

    spans: list[str]                 #: a label per span, in order
    span_numbers: list[int | None]   #: the artifacts' ``span`` property, when known
    examples: list[int]
    reference: int                   #: index of the reference span
    split: str
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def flagged(self) -> dict[str, list[str]]:
        """Feature name -> labels of the spans where its threshold was crossed."""
        out = {}
        for feature in self.features:
            labels = [s for s, hit in zip(self.spans, feature.flagged) if hit]
            if labels:
                out[feature.name] = labels
        return out

    def feature(self, name: str) -> FeatureDrift:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def to_dataframe(self) -> Any:
        import pandas as pd

        rows = []
        for f in self.features:
            for i, label in enumerate(self.spans):
                rows.append({
                    "feature": f.name, "kind": f.kind, "span": label,
                    "to_previous": f.to_previous[i], "to_reference": f.to_reference[i],
                    "threshold": f.threshold, "flagged": f.flagged[i],
                    "missing": f.missing[i], "mean": f.mean[i], "top": f.top[i]})
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return (f"DriftReport({len(self.features)} features x {len(self.spans)} spans, "
                f"{sum(map(len, self.flagged.values()))} flagged)")


# --------------------------------------------------------------------------
# Loading spans
# --------------------------------------------------------------------------

def _is_dataframe(obj: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def _type_name(obj: Any) -> str:
    return str(getattr(obj, "type_name", None) or getattr(obj, "TYPE_NAME", "") or "")


def _is_artifact(obj: Any) -> bool:
    return hasattr(obj, "uri") and bool(_type_name(obj))


def _span_of(obj: Any) -> int | None:
    props = getattr(obj, "properties", None)
    value = props.get("span") if isinstance(props, Mapping) else None
    if value is None:
        value = getattr(obj, "span", None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _pick_split(available: Sequence[str], split: str | None, where: str) -> str:
    if split is not None:
        if split not in available:
            raise ToolkitError(f"no split {split!r} in {where}: it has "
                               f"{', '.join(map(repr, available)) or 'none'}")
        return split
    return DEFAULT_SPLIT if DEFAULT_SPLIT in available else available[0]


def _dataset(source: Any, split: str | None) -> tuple[Any, str]:
    """One span's ``DatasetFeatureStatistics`` and the split it came from."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    if isinstance(source, statistics_pb2.DatasetFeatureStatistics):
        return source, split or source.name
    if isinstance(source, statistics_pb2.DatasetFeatureStatisticsList):
        if not source.datasets:
            raise ToolkitError("a DatasetFeatureStatisticsList without datasets")
        names = [d.name for d in source.datasets]
        if len(names) == 1 and split is None:
            return source.datasets[0], names[0]
        chosen = _pick_split(names, split, "the statistics")
        return source.datasets[names.index(chosen)], chosen
    if _is_dataframe(source):
        import tensorflow_data_validation as tfdv

        stats = tfdv.generate_statistics_from_dataframe(source.reset_index(drop=True))
        return stats.datasets[0], split or ""
    if _is_artifact(source) or isinstance(source, (str, os.PathLike)):
        from toolkit.artifacts import STATS_FILE, files_by_split, read_statistics

        folder = os.fspath(source) if isinstance(source, (str, os.PathLike)) \
            else str(source.uri)
        if os.path.isfile(folder):
            return _dataset(read_statistics(folder), split)
        if os.path.isfile(os.path.join(folder, STATS_FILE)):
            return _dataset(read_statistics(os.path.join(folder, STATS_FILE)), split)
        found = files_by_split(folder, STATS_FILE)
        if not found:
            raise ToolkitError(f"no statistics in {folder!r}: expected Split-<name>/"
                               f"{STATS_FILE} files (an ExampleStatistics artifact)")
        chosen = _pick_split(list(found), split, repr(folder))
        lst = read_statistics(found[chosen])
        return lst.datasets[0], chosen
    raise ToolkitError(
        f"cannot compute drift from a {type(source).__name__}: pass DatasetFeatureStatisticsList "
        "protos, pandas DataFrames, ExampleStatistics artifacts or a channel of them")


def _items(statistics: Any) -> tuple[list[Any], list[str] | None]:
    """The spans in order, and their labels when the caller named them."""
    if isinstance(statistics, Mapping):
        return list(statistics.values()), [str(k) for k in statistics]
    if _is_dataframe(statistics) or hasattr(statistics, "DESCRIPTOR"):
        raise ToolkitError("drift needs a sequence of spans: pass a list of statistics "
                           "(one per span), a dict {label: statistics} or a channel")
    if isinstance(statistics, (list, tuple)):
        items = list(statistics)
    elif callable(getattr(statistics, "get", None)):
        items = list(statistics.get())
    else:
        raise ToolkitError(f"cannot compute drift from a {type(statistics).__name__}: pass a "
                           "list of statistics (one per span), a dict or a channel")
    # A channel of several channels (or a list of them) flattens to their artifacts.
    flat: list[Any] = []
    for item in items:
        if (callable(getattr(item, "get", None)) and not _is_artifact(item)
                and not isinstance(item, Mapping) and not _is_dataframe(item)
                and not hasattr(item, "DESCRIPTOR")):
            flat.extend(item.get())
        else:
            flat.append(item)
    spans = [_span_of(i) if _is_artifact(i) else None for i in flat]
    if flat and all(s is not None for s in spans):
        flat = [i for _, _, i in sorted(zip(spans, range(len(flat)), flat),
                                        key=lambda t: (t[0], t[1]))]
    return flat, None


def _schema_proto(schema: Any) -> Any:
    if schema is None or hasattr(schema, "feature"):
        return schema
    from toolkit.artifacts import SCHEMA_FILE, read_schema

    if isinstance(schema, (str, os.PathLike)):
        path = os.fspath(schema)
        return read_schema(os.path.join(path, SCHEMA_FILE) if os.path.isdir(path) else path)
    if callable(getattr(schema, "get", None)) and not hasattr(schema, "uri"):
        artifacts = list(schema.get())
        if len(artifacts) != 1:
            raise ToolkitError(f"expected one Schema artifact in the channel, found "
                               f"{len(artifacts)}")
        schema = artifacts[0]
    if hasattr(schema, "uri"):
        return read_schema(os.path.join(str(schema.uri), SCHEMA_FILE))
    raise ToolkitError(f"cannot read a schema from a {type(schema).__name__}: pass a Schema "
                       "proto, a Schema artifact or a schema.pbtxt path")


def _schema_thresholds(schema: Any) -> dict[str, dict[str, float]]:
    """Feature name -> {comparator: threshold} from the schema's drift comparators."""
    out: dict[str, dict[str, float]] = {}
    for feature in schema.feature:
        comparator = feature.drift_comparator
        found = {}
        if comparator.HasField("infinity_norm") and comparator.infinity_norm.HasField(
                "threshold"):
            found[INFINITY_NORM] = comparator.infinity_norm.threshold
        if comparator.HasField("jensen_shannon_divergence") and \
                comparator.jensen_shannon_divergence.HasField("threshold"):
            found[JENSEN_SHANNON] = comparator.jensen_shannon_divergence.threshold
        out[feature.name] = found
    return out


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

def compute_drift(statistics: Any, schema: Any = None, features: Sequence[str] | None = None,
                  split: str | None = None, reference: int | str = 0,
                  thresholds: float | Mapping[str, float] | None = None,
                  labels: Sequence[str] | None = None) -> DriftReport:
    """Distances of every span to its predecessor and to a reference span.

    ``statistics`` is the sequence of spans, oldest first: a list (or a dict
    ``{label: ...}``) of ``DatasetFeatureStatisticsList`` protos, pandas DataFrames
    (statistics computed with TFDV), ExampleStatistics artifacts or paths, or a
    channel of ExampleStatistics artifacts. Artifacts that all carry a ``span``
    property are put in span order. ``split`` picks the split of each (default
    ``"train"`` when present, else the first).

    The features are ``features`` if given, else those of ``schema``, else every
    numeric and categorical feature of the statistics. Thresholds come from
    ``thresholds`` (one number for all, or per feature name), else from the
    schema's ``drift_comparator`` (``jensen_shannon_divergence`` for numeric,
    ``infinity_norm`` for categorical features); a feature without one is
    measured but never flagged. ``reference`` is the index or label of the span
    every span is also compared with (default: the first).
    """
    items, named = _items(statistics)
    if not items:
        raise ToolkitError("no statistics to compare: the sequence of spans is empty")
    loaded = [_dataset(item, split) for item in items]
    datasets = [d for d, _ in loaded]
    split_name = loaded[0][1] or split or ""
    numbers = [_span_of(item) if _is_artifact(item) else None for item in items]
    if labels is not None:
        span_labels = [str(label) for label in labels]
        if len(span_labels) != len(items):
            raise ToolkitError(f"{len(span_labels)} labels for {len(items)} spans")
    elif named is not None:
        span_labels = named
    else:
        span_labels = [str(n) if n is not None else str(i + 1) for i, n in enumerate(numbers)]
    if isinstance(reference, str):
        if reference not in span_labels:
            raise ToolkitError(f"reference span {reference!r} is not one of the spans")
        reference = span_labels.index(reference)
    if not -len(items) <= reference < len(items):
        raise ToolkitError(f"reference span index {reference} is out of range: "
                           f"there are {len(items)} spans")
    reference %= len(items)

    per_span: list[dict[str, Any]] = []
    order: list[str] = []
    kinds: dict[str, str] = {}
    for ds in datasets:
        by_name = {}
        for f in ds.features:
            kind = _KINDS.get(f.WhichOneof("stats") or "")
            name = _feature_name(f)
            if kind is None or name in by_name:
                continue
            by_name[name] = f
            if name not in kinds:
                kinds[name] = kind
                order.append(name)
        per_span.append(by_name)

    schema_proto = _schema_proto(schema)
    from_schema = _schema_thresholds(schema_proto) if schema_proto is not None else {}
    if features is not None:
        names = [str(n) for n in features]
    elif schema_proto is not None:
        names = [f.name for f in schema_proto.feature if f.name in kinds]
    else:
        names = order
    unknown = [n for n in names if n not in kinds]
    if unknown:
        raise ToolkitError(f"feature {unknown[0]!r} is in none of the statistics "
                           f"({len(kinds)} numeric or categorical features are)")

    report = DriftReport(spans=span_labels, span_numbers=numbers,
                         examples=[int(ds.num_examples) for ds in datasets],
                         reference=reference, split=split_name)
    for name in names:
        kind = kinds[name]
        comparator = COMPARATOR[kind]
        if isinstance(thresholds, Mapping):
            threshold = thresholds.get(name)
        elif thresholds is not None:
            threshold = float(thresholds)
        else:
            threshold = from_schema.get(name, {}).get(comparator)
        stats = [s.get(name) for s in per_span]
        stats = [f if f is not None and _KINDS.get(f.WhichOneof("stats")) == kind else None
                 for f in stats]
        base = stats[reference]
        report.features.append(FeatureDrift(
            name=name, kind=kind, comparator=comparator,
            threshold=float(threshold) if threshold is not None else None,
            to_previous=[None] + [distance(kind, cur, prev)
                                  for prev, cur in zip(stats, stats[1:])],
            to_reference=[None if i == reference else distance(kind, cur, base)
                          for i, cur in enumerate(stats)],
            missing=[_missing(f) if f is not None else None for f in stats],
            mean=[f.num_stats.mean if f is not None and kind == "numeric"
                  and f.num_stats.common_stats.num_non_missing else None for f in stats],
            top=[_top_value(f) if f is not None and kind == "categorical" else None
                 for f in stats],
            present=[f is not None for f in stats]))
    return report
