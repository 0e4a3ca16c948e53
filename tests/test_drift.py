"""Drift over time: distances equal TFDV's drift comparator, flags, the view and its size.

The taxi data is cut into five row-range "spans"; span 4 (index 3) is shifted on
purpose: pickup hours move by 12 and every payment is "Cash".
"""
from __future__ import annotations

import os
import sys
import types

import numpy as np
import pandas as pd
import pytest
from tensorflow_metadata.proto.v0 import statistics_pb2

import toolkit
from datapaths import TAXI_CSV
from toolkit.drift import DriftReport, FeatureDrift, compute_drift
from toolkit.visualize import view_of
from toolkit.visualize.drift import drift_view, drift_view_of

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "reliability"))
from hostile_data import BIDI, BIG, BREAKOUT, PAYLOADS, SCRIPT, SVG, assert_inert  # noqa: E402

SPANS = 5
SHIFTED = 3
THRESHOLD = 0.1
#: 100 spans x 50 features: the HTML must stay under this (see test_size_at_100_spans).
SIZE_LIMIT = 1_000_000


@pytest.fixture(scope="module")
def tfdv():
    import tensorflow_data_validation

    return tensorflow_data_validation


@pytest.fixture(scope="module")
def frames() -> list[pd.DataFrame]:
    taxi = pd.read_csv(TAXI_CSV)
    size = len(taxi) // SPANS
    out = [taxi.iloc[i * size:(i + 1) * size].reset_index(drop=True).copy()
           for i in range(SPANS)]
    shifted = out[SHIFTED]
    shifted["trip_start_hour"] = (shifted["trip_start_hour"] + 12) % 24
    shifted["payment_type"] = "Cash"
    return out


@pytest.fixture(scope="module")
def stats(tfdv, frames):
    return [tfdv.generate_statistics_from_dataframe(f) for f in frames]


@pytest.fixture(scope="module")
def schema(tfdv, stats):
    schema = tfdv.infer_schema(stats[0])
    for feature in schema.feature:
        if feature.type == 1:  # BYTES: categorical
            feature.drift_comparator.infinity_norm.threshold = THRESHOLD
        else:
            feature.drift_comparator.jensen_shannon_divergence.threshold = THRESHOLD
    return schema


@pytest.fixture(scope="module")
def report(stats, schema) -> DriftReport:
    return compute_drift(stats, schema)


def _tfdv_values(tfdv, current, previous, schema) -> dict[str, float]:
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=previous)
    return {".".join(info.path.step): info.drift_measurements[0].value
            for info in anomalies.drift_skew_info if info.drift_measurements}


# --------------------------------------------------------------------------
# Parity with TFDV
# --------------------------------------------------------------------------

def test_distances_equal_tfdv_comparators(tfdv, stats, schema, report):
    compared = 0
    for i in range(1, SPANS):
        for attr, base in (("to_previous", i - 1), ("to_reference", 0)):
            expected = _tfdv_values(tfdv, stats[i], stats[base], schema)
            for feature in report.features:
                mine = getattr(feature, attr)[i]
                if feature.name not in expected:
                    assert mine is None, (feature.name, i, attr)
                    continue
                assert mine == pytest.approx(expected[feature.name], abs=1e-9), \
                    (feature.name, i, attr)
                compared += 1
    kinds = {f.kind for f in report.features}
    assert kinds == {"numeric", "categorical"}
    assert compared >= 8 * 16  # most of the 18 taxi features on 4 spans, both ways


def _numeric(buckets, num_nan=0):
    feature = statistics_pb2.FeatureNameStatistics(type=statistics_pb2.FeatureNameStatistics.FLOAT)
    feature.path.step.append("x")
    feature.num_stats.common_stats.num_non_missing = 10
    hist = feature.num_stats.histograms.add(type=statistics_pb2.Histogram.STANDARD,
                                            num_nan=num_nan)
    for low, high, count in buckets:
        hist.buckets.add(low_value=low, high_value=high, sample_count=count)
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(num_examples=10)
    dataset.features.add().CopyFrom(feature)
    return stats


INF = float("inf")


@pytest.mark.parametrize("a, b", [
    # same boundaries, NaN counts kept
    (([(0, 1, 3), (1, 2, 5)], 2), ([(0, 1, 6), (1, 2, 1)], 0)),
    # different boundaries (re-bucketed; TFDV then drops the NaN counts)
    (([(0, 1, 3), (1, 2, 5)], 2), ([(0.5, 1.5, 6), (1.5, 3, 1)], 1)),
    # point masses and infinite buckets
    (([(0, 0, 4), (0, 2, 5), (2, INF, 1)], 0), ([(0, 2, 6), (5, 5, 2), (-INF, 0, 3)], 0)),
    # disjoint ranges
    (([(0, 1, 3)], 0), ([(2, 3, 3), (3, 4, 1)], 0)),
])
def test_js_divergence_edge_cases_equal_tfdv(tfdv, a, b):
    from tensorflow_metadata.proto.v0 import schema_pb2

    first, second = _numeric(*a), _numeric(*b)
    schema = schema_pb2.Schema()
    feature = schema.feature.add(name="x", type=schema_pb2.FLOAT)
    feature.drift_comparator.jensen_shannon_divergence.threshold = 0.5
    expected = _tfdv_values(tfdv, second, first, schema)["x"]
    mine = compute_drift([first, second], schema).feature("x").to_previous[1]
    assert mine == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------
# Flags, per-span values, inputs
# --------------------------------------------------------------------------

def test_shifted_span_is_flagged(report):
    for name in ("trip_start_hour", "payment_type"):
        feature = report.feature(name)
        assert feature.flagged[SHIFTED], name
        assert feature.flagged[SHIFTED + 1], name  # shifting back is drift again
        assert not any(feature.flagged[:SHIFTED]), name
        assert feature.flagged_reference[SHIFTED] and not feature.flagged_reference[SHIFTED + 1]
    assert report.feature("payment_type").top[SHIFTED] == "Cash"
    # spans are labelled from 1 when they carry no span number
    assert report.flagged["trip_start_hour"] == [str(SHIFTED + 1), str(SHIFTED + 2)]
    # a feature that does not move is never flagged
    assert not any(report.feature("trip_start_month").flagged)


def test_missing_and_mean_per_span(report, frames):
    fare = report.feature("fare")
    for i, frame in enumerate(frames):
        assert fare.mean[i] == pytest.approx(frame["fare"].mean(), rel=1e-9)
        assert fare.missing[i] == pytest.approx(frame["fare"].isna().mean(), abs=1e-12)
    tract = report.feature("pickup_census_tract")
    assert tract.missing[0] == pytest.approx(frames[0]["pickup_census_tract"].isna().mean())


def test_dataframes_features_thresholds_and_reference(frames):
    chosen = compute_drift({f"m{i}": f for i, f in enumerate(frames)},
                           features=["trip_start_hour", "company"], thresholds=0.05,
                           reference="m4")
    assert [f.name for f in chosen.features] == ["trip_start_hour", "company"]
    assert chosen.spans == [f"m{i}" for i in range(SPANS)] and chosen.reference == 4
    hour = chosen.feature("trip_start_hour")
    assert hour.threshold == 0.05 and hour.to_reference[4] is None
    assert hour.to_reference[SHIFTED] > hour.to_reference[0]
    without = compute_drift(frames, features=["fare"])
    assert without.features[0].threshold is None and not any(without.features[0].flagged)
    with pytest.raises(toolkit.ToolkitError, match="no_such"):
        compute_drift(frames, features=["no_such"])
    with pytest.raises(toolkit.ToolkitError, match="sequence of spans"):
        compute_drift(frames[0])


def test_channel_of_artifacts_in_span_order(tmp_path, stats, schema, report):
    from toolkit.artifacts import ExampleStatistics

    artifacts = []
    for i in reversed(range(SPANS)):  # stored out of order: the span property orders them
        artifact = ExampleStatistics(uri=str(tmp_path / f"stats{i}"), properties={"span": i + 10})
        for split in ("eval", "train"):
            os.makedirs(artifact.split_uri(split))
            with open(artifact.stats_path(split), "wb") as fh:
                fh.write(stats[i].SerializeToString())
        artifacts.append(artifact)
    channel = types.SimpleNamespace(get=lambda: artifacts)
    from_channel = compute_drift(channel, schema)
    assert from_channel.spans == [str(i + 10) for i in range(SPANS)]
    assert from_channel.split == "train"
    for mine, expected in zip(from_channel.features, report.features):
        assert mine.to_previous == expected.to_previous
    view = toolkit.show_drift(channel, schema)
    assert view.text.startswith(f"Drift over {SPANS} spans (10 … 14, split 'train'")


# --------------------------------------------------------------------------
# The view
# --------------------------------------------------------------------------

def test_view_content_and_text(report):
    view = view_of(report)  # registered for DriftReport
    html = view.html
    assert "<script" not in html and "<svg" not in html and "<style" not in html
    assert "http://" not in html and "https://" not in html
    assert html.count("<tr>") == 1 + len(report.features)  # the header and a row each
    assert html.count("<i title=") == len(report.features) * SPANS
    assert "#c62828" in html  # flagged bars are red
    text = view.text
    assert "trip_start_hour" in text and "FLAGGED at 4, 5" in text
    assert text.splitlines()[0].startswith(f"Drift over {SPANS} spans")
    assert len(text.splitlines()) == 1 + len(report.features)


def test_show_drift_without_a_pipeline(frames, capsys):
    view = toolkit.show_drift(frames[:3], features=["fare", "payment_type"], thresholds=0.2)
    assert "fare" in capsys.readouterr().out
    assert view.html.count("<tr>") == 1 + 2


def test_hostile_names_and_values_are_escaped():
    rng = np.random.default_rng(0)
    values = PAYLOADS + [BIG]
    frames = []
    for shift in range(3):
        frames.append(pd.DataFrame({
            SCRIPT: rng.choice(values, 200),
            BREAKOUT: rng.normal(shift, 1, 200),
            BIDI + " name": rng.choice(PAYLOADS, 200),
            SVG: rng.integers(0, 5, 200),
        }))
    labels = [SCRIPT, BREAKOUT, BIDI]
    view = drift_view_of(frames, thresholds=0.01, labels=labels)
    assert_inert(view.html, "drift view")
    # text/plain is never parsed as markup; it is kept short and bidi-neutral
    assert BIG not in view.text and "\u202e" not in view.text
    assert "&lt;script&gt;" in view.html


# --------------------------------------------------------------------------
# Size at 100 spans x 50 features
# --------------------------------------------------------------------------

def synthetic_report(spans: int = 100, features: int = 50) -> DriftReport:
    """A report of the given shape with every cell filled (the largest markup)."""
    rng = np.random.default_rng(1)
    names = [f"feature_with_a_realistic_name_{k:03d}" for k in range(features)]
    report = DriftReport(spans=[f"2024-{s // 28 + 1:02d}-{s % 28 + 1:02d}" for s in range(spans)],
                         span_numbers=list(range(spans)), examples=[1000] * spans, reference=0,
                         split="train")
    for k, name in enumerate(names):
        numeric = k % 3 != 0
        prev = [None] + list(rng.uniform(0, 0.2, spans - 1))
        ref = [None] + list(rng.uniform(0, 0.3, spans - 1))
        report.features.append(FeatureDrift(
            name=name, kind="numeric" if numeric else "categorical",
            comparator="jensen_shannon_divergence" if numeric else "infinity_norm",
            threshold=0.1, to_previous=prev, to_reference=ref,
            missing=list(rng.uniform(0, 0.05, spans)),
            mean=list(rng.normal(1000, 300, spans)) if numeric else [None] * spans,
            top=[None] * spans if numeric else [f"category_value_{s % 7}" for s in range(spans)],
            present=[True] * spans))
    return report


def test_size_at_100_spans_by_50_features():
    """The view stays under 1 MB: one notebook output that Jupyter's default IOPub rate
    limit (1 MB/s over a 3 s window) never drops, next to the text form and other views."""
    report = synthetic_report()
    view = drift_view(report)  # its build time is measured by bench/bench_drift.py
    size = len(view.html.encode("utf-8"))
    assert size < SIZE_LIMIT, size
    assert len(view.text.encode("utf-8")) < 50_000
    assert view.html.count("<i title=") == 100 * 50
