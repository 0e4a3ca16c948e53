"""The statistics view's data model: TFDV's distribution distances, and each feature's
numbers across the datasets shown (its kind, missing share, non-uniformity, distances)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from tensorflow_metadata.proto.v0 import statistics_pb2

from toolkit.drift import histogram_js_divergence, values_linf_distance

Histogram = statistics_pb2.Histogram
DatasetList = statistics_pb2.DatasetFeatureStatisticsList
Dataset = statistics_pb2.DatasetFeatureStatistics

#: the distance shown for each kind of feature when datasets are compared
DISTANCE_NAME = {"numeric": "JS divergence", "categorical": "L∞ distance"}


# Distances, as TFDV defines them for drift and skew comparators

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


# One feature across the datasets

_KINDS = {"num_stats": "numeric", "string_stats": "categorical",
          "bytes_stats": "other", "struct_stats": "other"}


def _feature_name(feature: statistics_pb2.FeatureNameStatistics) -> str:
    return ".".join(feature.path.step) if feature.path.step else feature.name


def common_statistics(
        feature: statistics_pb2.FeatureNameStatistics) -> statistics_pb2.CommonStatistics:
    kind = feature.WhichOneof("stats")
    if kind == "struct_stats":
        return feature.struct_stats.common_stats
    return getattr(feature, kind).common_stats if kind else statistics_pb2.CommonStatistics()


def missing_share(feature: statistics_pb2.FeatureNameStatistics) -> float:
    common = common_statistics(feature)
    total = common.num_non_missing + common.num_missing
    return common.num_missing / total if total else 0.0


def standard_histogram(feature: statistics_pb2.FeatureNameStatistics) -> Histogram | None:
    for hist in feature.num_stats.histograms:
        if hist.type == Histogram.STANDARD:
            return hist
    return None


def quantile_histogram(feature: statistics_pb2.FeatureNameStatistics) -> Histogram | None:
    for hist in feature.num_stats.histograms:
        if hist.type == Histogram.QUANTILES:
            return hist
    return None


def value_counts(feature: statistics_pb2.FeatureNameStatistics) -> dict[str, float]:
    stats = feature.string_stats
    if stats.rank_histogram.buckets:
        return {b.label: b.sample_count for b in stats.rank_histogram.buckets}
    return {v.value: v.frequency for v in stats.top_values}


def total_values(feature: statistics_pb2.FeatureNameStatistics) -> float:
    common = common_statistics(feature)
    return float(common.tot_num_values or common.num_non_missing)


@dataclass
class Feature:
    """One feature across the datasets shown: its statistics in each (None where it is
    absent), and the numbers the view sorts and flags it by."""

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


def collect_features(datasets: list[tuple[str, Dataset]]) -> list[Feature]:
    features: dict[str, Feature] = {}
    for index, (_, ds) in enumerate(datasets):
        for f in ds.features:
            kind = _KINDS.get(f.WhichOneof("stats") or "", "other")
            name = _feature_name(f)
            entry = features.get(name)
            if entry is None:
                entry = features[name] = Feature(name, kind, len(features),
                                                  [None] * len(datasets))
            if entry.kind == kind and entry.per_dataset[index] is None:
                entry.per_dataset[index] = f
    for entry in features.values():
        present = [f for f in entry.per_dataset if f is not None]
        entry.missing = max(missing_share(f) for f in present)
        first = present[0]
        if entry.kind == "numeric":
            hist = standard_histogram(first)
            constant = (first.num_stats.min == first.num_stats.max
                        and common_statistics(first).num_non_missing > 0)
            entry.non_uniformity = 1.0 if constant else non_uniformity(
                [b.sample_count for b in hist.buckets] if hist else [])
        elif entry.kind == "categorical":
            entry.non_uniformity = non_uniformity(list(value_counts(first).values()))
        if len(datasets) > 1:
            entry.distances = [_distance(entry.kind, entry.per_dataset[0], other)
                               for other in entry.per_dataset[1:]]
    return list(features.values())


def _distance(kind: str, base: Any, other: Any) -> float | None:
    if base is None or other is None:
        return None
    if kind == "numeric":
        a, b = standard_histogram(base), standard_histogram(other)
        return jensen_shannon_divergence(a, b) if a is not None and b is not None else None
    if kind == "categorical":
        return l_infinity_distance(value_counts(base), value_counts(other))
    return None
