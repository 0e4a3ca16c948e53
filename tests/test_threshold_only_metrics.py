"""A metric named only in a MetricsSpec's threshold maps is computed, as TFMA does.

TFX's penguin_tfma tutorial bounds ``sparse_categorical_accuracy`` in
``per_slice_thresholds`` with no ``metrics`` list at all; TFMA computes the metric (for a
Keras model, from its compiled metrics) and checks the bound. Here the Palmer penguins
get class scores from a small numpy softmax regression, and every expected value is
counted with numpy from those scores, never read from the engine.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from datapaths import DATA
from toolkit.evaluation import evaluate, load_eval_config
from toolkit.evaluation.config import THRESHOLD_ONLY_METRICS, MetricConfig
from toolkit.evaluation.metrics import metric_name, resolve

PENGUINS_CSV = os.path.join(DATA, "penguins", "penguins.csv")


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    df = pd.read_csv(PENGUINS_CSV)
    df = df.dropna(subset=["bill_length_mm", "bill_depth_mm", "island"]).reset_index(drop=True)
    species = sorted(df["species"].unique())
    df["label"] = df["species"].map({s: i for i, s in enumerate(species)}).astype(int)
    x = df[["bill_length_mm", "bill_depth_mm"]].to_numpy(float)
    x = np.column_stack([np.ones(len(x)), (x - x.mean(axis=0)) / x.std(axis=0)])
    y = np.eye(len(species))[df["label"]]
    w = np.zeros((x.shape[1], len(species)))

    def fit(steps):
        nonlocal w
        for _ in range(steps):
            z = x @ w
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            w -= 0.5 * x.T @ (p - y) / len(x)
        return p

    df["baseline"] = list(fit(1))  # barely trained: the baseline model
    df["prediction"] = list(fit(20))
    return df


def _accuracy(frame: pd.DataFrame, column: str = "prediction") -> float:
    scores = np.stack(frame[column].to_numpy())
    return float((scores.argmax(axis=1) == frame["label"].to_numpy()).mean())


def _per_slice(bound: float) -> dict:
    return {"thresholds": [{"slicing_specs": [{}],
                            "threshold": {"value_threshold": {"lower_bound": {"value": bound}}}}]}


def _value(result, slice_key: tuple, name: str) -> float:
    frame = result.to_dataframe()
    rows = frame[(frame["slice_key"] == slice_key) & (frame["metric"] == name)]
    assert len(rows) == 1, f"{name} on {slice_key}: {len(rows)} rows"
    return float(rows["value"].iloc[0])


def test_a_per_slice_threshold_alone_computes_its_metric_on_every_slice(penguins):
    accuracy = _accuracy(penguins)
    config = {"model_specs": [{"label_key": "label"}],
              "slicing_specs": [{}, {"feature_keys": ["island"]}],
              "metrics_specs": [{"per_slice_thresholds": {
                  "sparse_categorical_accuracy": _per_slice(accuracy - 0.01)}}]}
    result = evaluate(penguins, config)
    assert _value(result, (), "sparse_categorical_accuracy") == pytest.approx(accuracy, rel=1e-6)
    for island, rows in penguins.groupby("island"):
        assert _value(result, (("island", island),), "sparse_categorical_accuracy") \
            == pytest.approx(_accuracy(rows), rel=1e-6)
    assert result.blessed
    assert [c.slice_key for c in result.validation.checks] == [()]  # only the overall slice

    above = dict(config, metrics_specs=[{"per_slice_thresholds": {
        "sparse_categorical_accuracy": _per_slice(accuracy + 0.01)}}])
    failed = evaluate(penguins, above)
    assert not failed.blessed
    assert [c.value for c in failed.validation.checks if not c.passed] \
        == [pytest.approx(accuracy, rel=1e-6)]


def test_cross_slice_and_change_thresholds_name_metrics_too(penguins):
    by_island = dict(iter(penguins.groupby("island")))
    gap = _accuracy(by_island["Biscoe"]) - _accuracy(by_island["Dream"])
    improvement = _accuracy(penguins) - _accuracy(penguins, "baseline")
    assert improvement > 0
    crossing = {"baseline_spec": {"feature_values": {"island": "Biscoe"}},
                "slicing_specs": [{"feature_values": {"island": "Dream"}}]}
    change = {"change_threshold": {"direction": "HIGHER_IS_BETTER",
                                   "absolute": {"value": improvement - 0.01}}}
    config = {
        "model_specs": [{"name": "candidate", "label_key": "label"},
                        {"name": "baseline", "label_key": "label", "prediction_key": "baseline",
                         "is_baseline": True}],
        "slicing_specs": [{}],
        "cross_slicing_specs": [crossing],
        "metrics_specs": [{
            "cross_slice_thresholds": {"sparse_categorical_accuracy": {"thresholds": [{
                "cross_slicing_specs": [crossing],
                "threshold": {"value_threshold": {"upper_bound": {"value": abs(gap) + 0.01}}}}]}},
            "per_slice_thresholds": {"sparse_categorical_accuracy": {"thresholds": [{
                "slicing_specs": [{}], "threshold": change}]}},
        }]}
    result = evaluate(penguins, config)
    checks = result.validation.checks
    assert result.blessed, [(c.slice, c.metric, c.value, c.message) for c in checks]
    diffs = [c for c in checks if c.metric_key.is_diff]
    assert [(c.slice_key, c.value) for c in diffs] == [((), pytest.approx(improvement, rel=1e-6))]
    cross = [c for c in checks if not c.metric_key.is_diff]
    assert len(cross) == 1 and cross[0].slice_key != ()
    assert abs(cross[0].value) == pytest.approx(abs(gap), rel=1e-6)

    tighter = {"value_threshold": {"upper_bound": {"value": abs(gap) - 0.01}}}
    config["metrics_specs"][0]["cross_slice_thresholds"]["sparse_categorical_accuracy"][
        "thresholds"][0]["threshold"] = tighter
    assert not evaluate(penguins, config).blessed


def test_a_listed_metric_is_not_computed_twice_and_unknown_names_are_not_invented(penguins):
    config = {"model_specs": [{"label_key": "label"}],
              "metrics_specs": [{"metrics": [{"class_name": "SparseCategoricalAccuracy"}],
                                 "per_slice_thresholds": {
                                     "sparse_categorical_accuracy": _per_slice(0.0)},
                                 "thresholds": {
                                     "loss": {"value_threshold": {"upper_bound": {"value": 9}}}}}]}
    parsed = load_eval_config(config)
    assert [m.class_name for m in parsed.metrics_specs[0].metrics] == ["SparseCategoricalAccuracy"]
    result = evaluate(penguins, config)
    assert list(result.to_dataframe()["metric"]) == ["sparse_categorical_accuracy"]
    assert {c.metric: c.message for c in result.validation.checks} \
        == {"sparse_categorical_accuracy": "", "loss": "Metric not found."}
    assert not result.blessed

    spec_level = load_eval_config({"metrics_specs": [{"thresholds": {
        "binary_accuracy": {"value_threshold": {"lower_bound": {"value": 0.5}}}, "loss": {}}}]})
    assert [m.class_name for m in spec_level.metrics_specs[0].metrics] == ["BinaryAccuracy"]


@pytest.mark.parametrize("name", sorted(THRESHOLD_ONLY_METRICS))
def test_every_threshold_only_name_is_a_metric_the_engine_computes_under_that_name(name):
    class_name, options = THRESHOLD_ONLY_METRICS[name]
    metric = MetricConfig(class_name, config=dict(options))
    resolved, reason = resolve(metric)
    assert resolved is not None, reason
    assert metric_name(metric) == name
