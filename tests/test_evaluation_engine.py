"""The evaluation engine against TFMA 0.47.1 on the taxi and German credit data.

Every supported metric, slice kind (overall, single feature, crossed features,
feature_values, cross_slicing_specs), threshold list, example weights, baseline
model diffs, confidence intervals, min_slice_size and threshold validation is
computed by ``toolkit.evaluate`` and by TFMA as installed (``tfma.analyze_raw_data``;
with a baseline model, TFMA's public pipeline given both models, see ``stock_tfma``)
on the same dataframe and config, and compared value by value *and* encoding by encoding.

Tolerances:
- counts (example counts, TP/TN/FP/FN) without weights: exact equality;
- rates, means, calibration, errors, weighted sums: 1e-9 absolute (relative for
  weighted sums); both sides sum the same float64 numbers in another order;
- AUC and PR AUC: 1e-9 absolute. TFMA does not compute the exact rank AUC: it
  puts scores in 10,000 equal buckets, re-bins onto ``num_thresholds``
  thresholds and integrates the confusion matrices with interpolation. The
  engine reproduces that estimator, so only float summation order differs.
  TFMA's own bucketing error (its distance to the exact AUC) is up to half the
  share of positive/negative pairs that share a bucket;
  ``test_auc_is_tfmas_bucketed_estimator`` checks the engine stays within it;
- metrics TFMA computes through tf.keras in float32 (RootMeanSquaredError):
  1e-6 relative;
- confidence intervals (Poisson bootstrap and jackknife, 20 resamples each as in
  TFMA) are random on both sides, so both are compared, per slice and per metric,
  with the method itself simulated here from its definition: the engine's width and
  centre (averaged over 64 seeds) within 4.5 standard errors of the simulated mean,
  about 10% of the width (``check_engine_intervals``); TFMA's one run within 4.5
  standard deviations of one run per interval and, per metric, over its slices
  (``check_tfma_intervals``, slow: TFMA's interval runs take about a minute). The
  spreads are measured by the simulation (one width from 20 resamples varies by
  ~16%), not taken from either implementation.

Documented differences from TFMA: AUC of a single-class slice is NaN with a
note (TFMA: 0.0); ``MetricsSpec.thresholds`` apply to the named metric (TFMA
0.47.1 reports "Metric not found." for them).

TFMA runs once per config (session fixtures); each run takes seconds.
"""
from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest

from datapaths import GERMAN_CSV, TAXI_CSV
from toolkit.evaluation import (
    EvalConfigError,
    InvalidValuesError,
    MissingColumnError,
    evaluate,
    write_tfma_artifact,
)
from toolkit.errors import ToolkitError

EXACT = {"example_count", "weighted_example_count", "true_positives", "true_negatives", "false_positives",
         "false_negatives", "tp", "tn", "fp", "fn"}
FLOAT32 = {"root_mean_squared_error"}
AUCS = {"auc", "auc_precision_recall", "auc_majoring"}
FI_THRESHOLDS = (0.25, 0.5, 0.75)
FI_SUBMETRICS = ("false_positive_rate", "false_negative_rate", "true_positive_rate", "true_negative_rate",
                 "positive_rate", "negative_rate", "false_discovery_rate", "false_omission_rate", "precision",
                 "recall")
ENGINE_SEEDS = range(64)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="session")
def taxi() -> pd.DataFrame:
    df = pd.read_csv(TAXI_CSV)
    df["label"] = (df["tips"] > 0.2 * df["fare"]).astype(float)
    credit_card = (df["payment_type"] == "Credit Card").astype(float)
    hour = df["trip_start_hour"].to_numpy()
    z = -2.4 + 3.1 * credit_card + 0.015 * df["fare"] - 0.02 * df["trip_miles"] + 0.35 * np.sin(2 * np.pi * hour / 24)
    df["prediction"] = _sigmoid(z)
    df["baseline_prediction"] = _sigmoid(-1.6 + 2.0 * credit_card)
    return df


def _fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 400, rate: float = 0.5) -> np.ndarray:
    """A deterministic gradient-descent logistic regression (no sklearn)."""
    x = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        w -= rate * x.T @ (_sigmoid(x @ w) - y) / len(y)
    return w


@pytest.fixture(scope="session")
def credit() -> pd.DataFrame:
    df = pd.read_csv(GERMAN_CSV)
    df["label"] = df["risk"].astype(float)
    df["age_group"] = np.where(df["age"] < 26, "young", "adult")
    features = np.column_stack([
        df["credit_amount"], df["duration"], df["age"], (df["sex"] == "male").astype(float),
        (df["housing"] == "own").astype(float), (df["checking_account"] == "little").astype(float),
    ]).astype(float)
    standardized = (features - features.mean(axis=0)) / features.std(axis=0)
    w = _fit_logistic(standardized, df["label"].to_numpy())
    df["prediction"] = _sigmoid(np.column_stack([np.ones(len(df)), standardized]) @ w)
    df["baseline_prediction"] = _sigmoid(0.8 - 0.0001 * df["credit_amount"])
    df["weight"] = 1.0 + (df["age"] % 3)
    # A float slicing feature with missing values (rows without a value belong to no slice).
    df["amount_band"] = np.where(df["credit_amount"] > 12000, np.nan, df["credit_amount"] // 4000)
    return df


@pytest.fixture(scope="session")
def tfma():
    import tensorflow_model_analysis

    from toolkit import _quiet

    _quiet.quiet_tensorflow()
    return tensorflow_model_analysis


def _proto(tfma, text: str):
    from google.protobuf import text_format

    return text_format.Parse(text, tfma.EvalConfig())


def assert_stock_tfma() -> None:
    """TFMA's config defaulting is TFMA's own function, not a replacement.

    ``_update_eval_config_with_defaults`` is the private function that drops a baseline
    ModelSpec when TFMA is given no models; the toolkit once replaced it for a run, and a
    reference computed with it replaced would compare the engine with patched TFMA.
    """
    from tensorflow_model_analysis.api import model_eval_lib

    function = model_eval_lib._update_eval_config_with_defaults
    assert function.__module__ == model_eval_lib.__name__, function.__module__
    assert function.__code__.co_filename == model_eval_lib.__file__, function.__code__.co_filename


def stock_tfma(tfma, df: pd.DataFrame, proto, output: str, seed: int | None = None):
    """TFMA as installed, through its public API only, on ``df``.

    Without a baseline ModelSpec: ``tfma.analyze_raw_data``. With one: TFMA's own
    pipeline, ``tfma.ExtractEvaluateAndWriteResults``, given one ``tfma.types.EvalSharedModel``
    per ModelSpec of TFMA's model type ``materialized_prediction`` (predictions read from
    the ModelSpec's column); that is how TFMA is told there are two models, so it keeps the
    baseline and computes ``*_diff`` metrics (``analyze_raw_data`` passes no models, so
    TFMA drops the baseline). Nothing of TFMA's is replaced: checked before, while the
    pipeline is built (when TFMA defaults the config) and after. ``seed``: TFMA's
    ``random_seed_for_testing`` for its interval resampling (through its public
    ``default_evaluators``), so the reference's draws are the same on every run.
    """
    import apache_beam as beam
    import pyarrow as pa
    from tensorflow_model_analysis import constants
    from tfx_bsl.arrow import table_util

    assert_stock_tfma()
    if not any(spec.is_baseline for spec in proto.model_specs):
        evaluators = (None if seed is None
                      else tfma.default_evaluators(eval_config=proto, random_seed_for_testing=seed))
        tfma.analyze_raw_data(df, proto, output_path=output, evaluators=evaluators)
    else:
        models = [tfma.types.EvalSharedModel(model_name=spec.name, is_baseline=spec.is_baseline,
                                             model_type=constants.MATERIALIZED_PREDICTION)
                  for spec in proto.model_specs]
        batch = table_util.CanonicalizeRecordBatch(pa.RecordBatch.from_pandas(df))
        with beam.Pipeline() as pipeline:
            _ = (pipeline | beam.Create([batch])
                 | tfma.ExtractEvaluateAndWriteResults(eval_shared_model=models, eval_config=proto,
                                                       output_path=output))
            assert_stock_tfma()
    assert_stock_tfma()
    return tfma.load_eval_result(output)


def run_tfma(tfma, tmp_path_factory, df: pd.DataFrame, text: str, seed: int | None = None):
    """Stock TFMA on ``df`` (:func:`stock_tfma`): its result, validation result and folder."""
    output = str(tmp_path_factory.mktemp("tfma"))
    result = stock_tfma(tfma, df, _proto(tfma, text), output, seed)
    return result, tfma.load_validation_result(output), output


# ------------------------------------------------------------------------------ configs

CONFUSION = ["BinaryAccuracy", "Precision", "Recall", "FPR", "FNR", "TPR", "TNR", "FalseDiscoveryRate",
             "FalseOmissionRate", "PredictedPositiveRate", "Specificity", "MissRate", "FallOut", "NPV",
             "Prevalence", "F1Score", "BalancedAccuracy", "TruePositives", "TrueNegatives", "FalsePositives",
             "FalseNegatives", "PPV", "NegativePredictiveValue", "TP", "TN", "FP", "FN"]


def _taxi_config(with_fairness: bool) -> str:
    metrics = [
        'metrics { class_name: "ExampleCount" }',
        'metrics { class_name: "WeightedExampleCount" }',
        'metrics { class_name: "AUC" }',
        'metrics { class_name: "AUCPrecisionRecall" }',
        'metrics { class_name: "AUC" config: \'"num_thresholds": 200, "summation_method": "majoring", '
        '"name": "auc_majoring"\' }',
        'metrics { class_name: "MeanLabel" }',
        'metrics { class_name: "MeanPrediction" }',
        'metrics { class_name: "Calibration" }',
        'metrics { class_name: "MeanSquaredError" }',
        'metrics { class_name: "MeanAbsoluteError" }',
        'metrics { class_name: "RootMeanSquaredError" }',
    ]
    for i, name in enumerate(CONFUSION):
        if name == "BinaryAccuracy":
            metrics.append('metrics { class_name: "BinaryAccuracy" config: \'"threshold": 0.4\' }')
        elif i % 3 == 0:
            metrics.append(f'metrics {{ class_name: "{name}" }}')
        else:
            metrics.append(f'metrics {{ class_name: "{name}" config: \'"thresholds": [0.25, 0.5, 0.75]\' }}')
    if with_fairness:
        metrics.append('metrics { class_name: "FairnessIndicators" module: '
                       '"fairness_indicators.fairness_indicators_metrics" '
                       'config: \'{"thresholds": [0.25, 0.5, 0.75]}\' }')
    return f"""
model_specs {{ label_key: "label" prediction_key: "prediction" }}
slicing_specs {{}}
slicing_specs {{ feature_keys: "payment_type" }}
slicing_specs {{ feature_keys: "trip_start_hour" }}
slicing_specs {{ feature_values {{ key: "payment_type" value: "Cash" }} }}
slicing_specs {{ feature_values {{ key: "trip_start_hour" value: "7" }} feature_keys: "payment_type" }}
cross_slicing_specs {{ baseline_spec {{ feature_values {{ key: "payment_type" value: "Credit Card" }} }}
                      slicing_specs {{ feature_keys: "payment_type" }} }}
cross_slicing_specs {{ baseline_spec {{}} slicing_specs {{ feature_keys: "trip_start_hour" }} }}
metrics_specs {{ {' '.join(metrics)} }}
"""


CREDIT_WEIGHTED = """
model_specs { label_key: "label" prediction_key: "prediction" example_weight_key: "weight" }
slicing_specs {}
slicing_specs { feature_keys: "sex" }
slicing_specs { feature_keys: ["sex", "age_group"] }
slicing_specs { feature_values { key: "job" value: "2" } }
slicing_specs { feature_keys: "amount_band" }
cross_slicing_specs { baseline_spec { feature_keys: "sex" } slicing_specs { feature_keys: "age_group" } }
metrics_specs {
  metrics { class_name: "ExampleCount" }
  metrics { class_name: "WeightedExampleCount" }
  metrics { class_name: "AUC" }
  metrics { class_name: "AUCPrecisionRecall" }
  metrics { class_name: "FPR" config: '"thresholds": [0.3, 0.5, 0.7]' }
  metrics { class_name: "FNR" config: '"thresholds": [0.5]' }
  metrics { class_name: "TruePositives" config: '"thresholds": [0.5]' }
  metrics { class_name: "MeanLabel" }
  metrics { class_name: "MeanPrediction" }
  metrics { class_name: "Calibration" }
  metrics { class_name: "MeanSquaredError" }
}
"""

CREDIT_CI = """
model_specs { label_key: "label" prediction_key: "prediction" }
slicing_specs {}
slicing_specs { feature_keys: "sex" }
slicing_specs { feature_keys: "age_group" }
slicing_specs { feature_keys: "purpose" }
slicing_specs { feature_keys: "checking_account" }
metrics_specs {
  metrics { class_name: "ExampleCount" }
  metrics { class_name: "AUC" }
  metrics { class_name: "FPR" config: '"thresholds": [0.5]' }
  metrics { class_name: "FNR" config: '"thresholds": [0.3, 0.5]' }
  metrics { class_name: "MeanPrediction" }
}
options {
  compute_confidence_intervals { value: true }
  confidence_intervals { method: POISSON_BOOTSTRAP }
  min_slice_size { value: 200 }
}
"""

CREDIT_VALIDATION = """
model_specs { name: "candidate" label_key: "label" prediction_key: "prediction" }
model_specs { name: "baseline" label_key: "label" prediction_key: "baseline_prediction" is_baseline: true }
slicing_specs {}
slicing_specs { feature_keys: "sex" }
slicing_specs { feature_keys: "age_group" }
cross_slicing_specs { baseline_spec { feature_keys: "sex" } slicing_specs { feature_keys: "age_group" } }
metrics_specs {
  metrics { class_name: "ExampleCount" }
  metrics {
    class_name: "AUC"
    threshold { value_threshold { lower_bound { value: 0.76 } }
                change_threshold { direction: HIGHER_IS_BETTER absolute { value: 0.05 } } }
  }
  metrics {
    class_name: "FPR" config: '"thresholds": [0.5], "name": "fpr_at_0.5"'
    per_slice_thresholds { slicing_specs { feature_keys: "sex" }
                           threshold { value_threshold { upper_bound { value: 0.5 } } } }
    per_slice_thresholds { slicing_specs { feature_keys: "housing" }
                           threshold { value_threshold { upper_bound { value: 0.9 } } } }
    cross_slice_thresholds { cross_slicing_specs { baseline_spec { feature_keys: "sex" }
                                                   slicing_specs { feature_keys: "age_group" } }
                             threshold { value_threshold { lower_bound { value: -0.1 } upper_bound { value: 0.1 } } } }
  }
  metrics {
    class_name: "FNR" config: '"thresholds": [0.5]'
    threshold { change_threshold { direction: LOWER_IS_BETTER relative { value: 0.0 } } }
  }
}
"""


@pytest.fixture(scope="session")
def taxi_runs(tfma, tmp_path_factory, taxi):
    engine = evaluate(taxi, _taxi_config(with_fairness=True))
    reference, _, _ = run_tfma(tfma, tmp_path_factory, taxi, _taxi_config(with_fairness=True))
    return engine, reference


@pytest.fixture(scope="session")
def credit_weighted_runs(tfma, tmp_path_factory, credit):
    return evaluate(credit, CREDIT_WEIGHTED), run_tfma(tfma, tmp_path_factory, credit, CREDIT_WEIGHTED)[0]


def _jackknife(config: str) -> str:
    return config.replace("confidence_intervals { method: POISSON_BOOTSTRAP }",
                          "confidence_intervals { method: JACKKNIFE }")


@pytest.fixture(scope="session")
def simulated_ci(credit):
    """TFMA's two interval methods simulated from their definition (simulated_intervals)."""
    return {method: simulated_intervals(credit, method) for method in ("POISSON_BOOTSTRAP", "JACKKNIFE")}


@pytest.fixture(scope="session")
def credit_ci_runs(tfma, tmp_path_factory, credit):
    """The engine over ENGINE_SEEDS, and one TFMA run (one fixed draw of TFMA's resampling)."""
    return _engine_intervals(credit, CREDIT_CI), run_tfma(tfma, tmp_path_factory, credit, CREDIT_CI, seed=1)[0]


@pytest.fixture(scope="session")
def credit_jackknife_runs(tfma, tmp_path_factory, credit):
    config = _jackknife(CREDIT_CI)
    return _engine_intervals(credit, config), run_tfma(tfma, tmp_path_factory, credit, config, seed=1)[0]


@pytest.fixture(scope="session")
def credit_validation_runs(tfma, tmp_path_factory, credit):
    engine = evaluate(credit, CREDIT_VALIDATION)
    reference, validation, _ = run_tfma(tfma, tmp_path_factory, credit, CREDIT_VALIDATION)
    return engine, reference, validation


# ------------------------------------------------------------------------------ comparison


def _number(value) -> float:
    return float(value) if not isinstance(value, str) else float(value.replace("Infinity", "inf"))


def _close(name: str, ours, theirs, weighted: bool) -> bool:
    a, b = _number(ours), _number(theirs)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    base = name[:-5] if name.endswith("_diff") else name
    if base in EXACT and not weighted:
        return a == b
    if base in FLOAT32:
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)
    if weighted:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return abs(a - b) <= 1e-9


def _single_class_auc(engine, key, name) -> bool:
    """Slices where the engine reports NaN AUC (undefined) and TFMA reports a number."""
    if name not in AUCS:
        return False
    parts = key if engine_is_cross(key) else (key,)
    for part in parts:
        metrics = engine.get_metrics_for_slice(part) or {}
        value = metrics.get(name, {}).get("doubleValue")
        if value == "NaN":
            return True
    return False


def engine_is_cross(key) -> bool:
    from toolkit.evaluation.slicing import is_cross_key

    return is_cross_key(key)


# ------------------------------------------------------------------------------ intervals

#: (metric, index into its thresholds) with an interval in CREDIT_CI; TFMA loads scalar ones as boundedValue
CI_METRICS = (("auc", None), ("fpr", None), ("fnr", 0), ("fnr", 1), ("mean_prediction", None))
CI_FNR_THRESHOLDS = (0.3, 0.5)
CI_FEATURES = ("sex", "age_group", "purpose", "checking_account")
CI_MIN_SLICE = 200
CI_RESAMPLES = 20  # TFMA's bootstrap samples and jackknife buckets
SIMULATED_RUNS = 300
BAND = 4.5  # standard errors


def _ci_slices(credit: pd.DataFrame) -> dict[tuple, np.ndarray]:
    """CREDIT_CI's slices of at least min_slice_size rows: key -> row positions."""
    out = {(): np.arange(len(credit))}
    for feature in CI_FEATURES:
        for value, rows in credit.groupby(feature).indices.items():
            if len(rows) >= CI_MIN_SLICE:
                out[((feature, value),)] = np.sort(rows)
    return out


def _replicates(name: str, index, weights: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The metric of one slice under each row weighting (a row of ``weights``), from its
    definition: positive means a score above the threshold; AUC is the weighted
    Mann-Whitney statistic (TFMA's bucketed AUC differs from it by under 1e-3 here,
    test_auc_is_tfmas_bucketed_estimator)."""
    pos, neg = (y == 1).astype(float), (y == 0).astype(float)
    if name == "mean_prediction":
        return weights @ p / weights.sum(axis=1)
    if name == "fpr":
        return weights @ (neg * (p > 0.5)) / (weights @ neg)
    if name == "fnr":
        return weights @ (pos * (p <= CI_FNR_THRESHOLDS[index])) / (weights @ pos)
    order = np.argsort(p, kind="stable")
    scores, w, labels = p[order], weights[:, order], y[order]
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    positives = np.add.reduceat(w * labels, starts, axis=1)
    negatives = np.add.reduceat(w * (1 - labels), starts, axis=1)
    below = np.cumsum(negatives, axis=1) - negatives
    return (positives * (below + 0.5 * negatives)).sum(axis=1) / (positives.sum(axis=1) * negatives.sum(axis=1))


def simulated_intervals(credit: pd.DataFrame, method: str) -> dict[tuple, dict]:
    """TFMA's interval method, run SIMULATED_RUNS times here from its definition, per slice and metric.

    A run draws CI_RESAMPLES resamples (Poisson(1) multiplicities per row, or a uniformly
    random bucket per row with each bucket left out once), computes the metric on each and
    reports ``sample mean -/+ t(0.975, 19) * standard error`` (bootstrap: the resamples'
    standard deviation; jackknife: that of the pseudo-values over sqrt(20)), as TFMA's
    ``poisson_bootstrap``/``jackknife`` and ``math_util.calculate_confidence_interval`` do.
    Per slice and metric: the point value, and per run the width and the offset of the
    centre from the point value. Their spread is the sampling variability of one run.
    """
    from scipy import stats

    rng = np.random.default_rng(20261207)
    k, n = CI_RESAMPLES, len(credit)
    if method == "POISSON_BOOTSTRAP":
        weights = rng.poisson(1.0, (SIMULATED_RUNS * k, n)).astype(float)
    else:
        buckets = rng.integers(0, k, (SIMULATED_RUNS, n))
        weights = (buckets[:, None, :] != np.arange(k)[None, :, None]).reshape(-1, n).astype(float)
    t = stats.t.ppf(0.975, k - 1)
    y, p = credit["label"].to_numpy(), credit["prediction"].to_numpy()
    out = {}
    for key, rows in _ci_slices(credit).items():
        for name, index in CI_METRICS:
            point = _replicates(name, index, np.ones((1, len(rows))), y[rows], p[rows])[0]
            values = _replicates(name, index, weights[:, rows], y[rows], p[rows]).reshape(SIMULATED_RUNS, k)
            if method == "POISSON_BOOTSTRAP":
                error = values.std(axis=1, ddof=1)
            else:
                error = (k * point - (k - 1) * values).std(axis=1, ddof=1) / np.sqrt(k)
            out[(key, name, index)] = {"point": point, "width": 2 * t * error,
                                       "offset": values.mean(axis=1) - point}
    return out


def _engine_intervals(credit: pd.DataFrame, config: str) -> dict[tuple, dict]:
    """The engine over ENGINE_SEEDS, per (slice, metric, threshold index): point value and,
    per seed, interval width and centre offset. Also the first seed's result."""
    out: dict = {}
    first = None
    for seed in ENGINE_SEEDS:
        result = evaluate(credit, config, random_seed=seed)
        first = first or result
        for sm in result.slices:
            if sm.is_cross or sm.error:
                continue
            for mkey, mv in sm.metrics.items():
                for name, index in CI_METRICS:
                    if mkey.name != name or mkey.is_diff:
                        continue

                    def pick(values):
                        return float(np.asarray(values, float).reshape(-1)[index or 0])

                    entry = out.setdefault((sm.key, name, index), {"point": pick(mv.value), "width": [],
                                                                   "offset": []})
                    entry["width"].append(pick(mv.upper) - pick(mv.lower))
                    entry["offset"].append((pick(mv.upper) + pick(mv.lower)) / 2 - pick(mv.value))
    return {"result": first, "intervals": out}


def _label(method: str, key: tuple, name: str, index) -> str:
    return f"{method} {key} {name}{'' if index is None else f'@{CI_FNR_THRESHOLDS[index]}'}"


def check_engine_intervals(simulated: dict, engine: dict, method: str) -> int:
    """Each (slice, metric) interval of the engine against TFMA's method simulated.

    The mean width and mean centre offset over ENGINE_SEEDS against the mean over the
    simulated runs, within BAND standard errors of that difference,
    ``sd * sqrt(1/len(ENGINE_SEEDS) + 1/SIMULATED_RUNS)``, where ``sd`` is the spread of one
    run measured by the simulation (about 16% of the width: a standard deviation from 20
    resamples). That is about 10% of the width, per slice and metric: a 2x (even a 1.25x)
    width error in one metric or one slice, or an interval centred off by a tenth of its
    half width, fails; a correct engine fails one of the 90 checks with probability under
    1e-3 (4.5 standard errors of a normal difference). Returns the number of intervals.
    """
    intervals = engine["intervals"]
    assert set(intervals) == set(simulated), set(intervals) ^ set(simulated)
    seeds = len(ENGINE_SEEDS)
    for (key, name, index), sim in simulated.items():
        ours = intervals[(key, name, index)]
        label = _label(method, key, name, index)
        tolerance = 1e-3 if name == "auc" else 1e-9  # the engine's AUC is TFMA's bucketed estimator
        assert abs(ours["point"] - sim["point"]) <= tolerance, (label, ours["point"], sim["point"])
        for part in ("width", "offset"):
            runs = sim[part]
            mean, sd = runs.mean(), runs.std(ddof=1)
            got = np.mean(ours[part])
            band = BAND * sd * math.sqrt(1 / seeds + 1 / SIMULATED_RUNS)
            assert abs(got - mean) <= band, f"{label}: engine {part} {got:.5g}, simulated {mean:.5g} +/- {band:.2g}"
    return len(simulated)


def check_tfma_intervals(simulated: dict, reference, method: str) -> int:
    """TFMA's one run (one draw of its resampling) against its method simulated: that the simulation
    the engine is held to is TFMA's method.

    Each scalar interval (TFMA loads array metrics without intervals) within BAND standard
    deviations of one simulated run; and per metric the mean standardized deviation over its
    slices within BAND times that mean's spread over the simulated runs, which includes the
    correlation of overlapping slices (TFMA resamples each slice on its own, so its spread is
    smaller: the band is conservative). A 2x width error in one metric is ~6 standard
    deviations of one run over every slice. Returns the number of intervals checked.
    """
    pooled: dict[tuple[str, str], list] = {}
    for (key, name, index), sim in simulated.items():
        if index is not None:
            continue
        bounded = reference.get_metrics_for_slice(key)[name]["boundedValue"]
        lower, upper = bounded["lowerBound"], bounded["upperBound"]
        for part, theirs in (("width", upper - lower), ("offset", (upper + lower) / 2 - bounded["value"])):
            runs = sim[part]
            mean, sd = runs.mean(), runs.std(ddof=1)
            z = (theirs - mean) / sd
            assert abs(z) <= BAND * math.sqrt(1 + 1 / SIMULATED_RUNS), \
                f"{_label(method, key, name, index)}: TFMA {part} {theirs:.5g}, simulated {mean:.5g}, z={z:.2f}"
            pooled.setdefault((name, part), []).append((z, (runs - mean) / sd))
    for (name, part), entries in pooled.items():
        z = np.mean([e[0] for e in entries])
        spread = np.mean([e[1] for e in entries], axis=0).std(ddof=1)
        assert abs(z) <= BAND * spread, f"{method} {name} {part}: TFMA's mean z {z:.2f}, spread {spread:.2f}"
    return len(pooled[("auc", "width")])


def compare(engine, reference, weighted=False, skip=()):
    """Same slices, same metric names, same encodings, values within tolerance."""
    ours = dict(engine.slicing_metrics)
    theirs = dict(reference.slicing_metrics)
    assert set(ours) == set(theirs), (set(ours) ^ set(theirs))
    divergences = []
    for key, by_output in theirs.items():
        ref = by_output[""][""]
        got = ours[key][""][""]
        assert set(got) - set(skip) == set(ref) - set(skip), (key, set(got) ^ set(ref))
        for name, ref_value in ref.items():
            if name in skip:
                continue
            value = got[name]
            assert set(value) == set(ref_value), (key, name, value, ref_value)
            kind = next(iter(ref_value))
            if kind == "arrayValue":
                assert value[kind]["dataType"] == ref_value[kind]["dataType"]
                assert value[kind]["shape"] == ref_value[kind]["shape"]
                pairs = list(zip(value[kind]["float64Values"], ref_value[kind]["float64Values"]))
            elif kind == "boundedValue":
                pairs = [(value[kind]["value"], ref_value[kind]["value"])]
            elif kind == "debugMessage":
                assert value == ref_value
                continue
            else:
                pairs = [(value[kind], ref_value[kind])]
            for a, b in pairs:
                if _close(name, a, b, weighted):
                    continue
                if _single_class_auc(engine, key, name.removesuffix("_diff")):
                    divergences.append((key, name, a, b))
                    continue
                raise AssertionError(f"{key} {name}: engine {a} vs TFMA {b}")
    return divergences


# ------------------------------------------------------------------------------ parity


def test_taxi_parity_every_metric_and_slice_kind(taxi_runs):
    engine, reference = taxi_runs
    divergences = compare(engine, reference)
    names = set(reference.get_metric_names())
    assert {"auc", "auc_precision_recall", "auc_majoring", "fpr", "root_mean_squared_error"} <= names
    # every FairnessIndicators sub-metric (negative_rate included) is in TFMA's output, so compared
    assert {f"fairness_indicators_metrics/{m}@{t:.2f}" for t in FI_THRESHOLDS for m in FI_SUBMETRICS} <= names
    kinds = {type(k[0][1]) for k in engine.get_slice_names() if k and not engine_is_cross(k)}
    assert {str, int} <= kinds  # string and integer slice values
    assert any(engine_is_cross(k) for k in engine.get_slice_names())
    # crossed features (feature_values on the hour with feature_keys on the payment type)
    assert any(len(k) == 2 and not engine_is_cross(k) for k in engine.get_slice_names())
    # Single-class slices (e.g. the one "Prcard" trip): TFMA says AUC 0.0, the engine NaN.
    assert divergences, "expected single-class slices in the taxi data"
    for key, name, ours, theirs in divergences:
        assert ours == "NaN"


def test_fairness_indicators_names_and_values(taxi_runs):
    engine, reference = taxi_runs
    overall = engine.get_metrics_for_slice(())
    expected = [f"fairness_indicators_metrics/{m}@{t:.2f}" for t in FI_THRESHOLDS for m in FI_SUBMETRICS]
    assert [n for n in overall if n.startswith("fairness_indicators_metrics/")] == expected
    # Same confusion matrices as TFMA's standalone metrics at the same thresholds.
    pairs = {"false_positive_rate": "fpr", "false_negative_rate": "fnr", "true_positive_rate": "tpr",
             "true_negative_rate": "tnr", "false_discovery_rate": "false_discovery_rate",
             "false_omission_rate": "false_omission_rate", "precision": "precision", "recall": "recall",
             "positive_rate": "predicted_positive_rate"}
    for key in reference.get_slice_names():
        if engine_is_cross(key):
            continue
        ours, theirs = engine.get_metrics_for_slice(key), reference.get_metrics_for_slice(key)
        for sub, standalone in pairs.items():
            ref = theirs[standalone]
            if "arrayValue" in ref:
                pairs_at = zip(FI_THRESHOLDS, ref["arrayValue"]["float64Values"])
            else:  # configured with TFMA's default threshold 0.5
                pairs_at = [(0.5, ref["doubleValue"])]
            for t, value in pairs_at:
                got = ours[f"fairness_indicators_metrics/{sub}@{t:.2f}"]["doubleValue"]
                assert _close(sub, got, value, False), (key, sub, t, got, value)


def test_credit_weighted_parity(credit, credit_weighted_runs):
    engine, reference = credit_weighted_runs
    compare(engine, reference, weighted=True)
    overall = engine.get_metrics_for_slice(())
    assert overall["example_count"]["doubleValue"] == pytest.approx(credit["weight"].sum())  # weighted, as TFMA
    bands = [k for k in engine.get_slice_names() if k and not engine_is_cross(k) and k[0][0] == "amount_band"]
    assert bands and all(isinstance(k[0][1], float) for k in bands)
    assert (("job", 2),) in engine.get_slice_names()  # feature_values "2" on an integer column


def test_auc_is_tfmas_bucketed_estimator(taxi, taxi_runs):
    """Engine AUC = TFMA's bucketed AUC, within its bucketing error of the exact rank AUC."""
    engine, _ = taxi_runs
    y, p = taxi["label"].to_numpy(), taxi["prediction"].to_numpy()
    order = np.argsort(p, kind="mergesort")
    ranks = pd.Series(p[order]).rank(method="average").to_numpy()
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    exact = (ranks[y[order] == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    bucket = np.floor(p * 10000).astype(int)
    pos = np.bincount(bucket, weights=y, minlength=10001)
    neg = np.bincount(bucket, weights=1 - y, minlength=10001)
    bound = 0.5 * (pos * neg).sum() / (n_pos * n_neg)
    got = engine.get_metrics_for_slice(())["auc"]["doubleValue"]
    assert abs(got - exact) <= bound + 1e-12


@pytest.mark.parametrize("method", ["POISSON_BOOTSTRAP", "JACKKNIFE"])
def test_intervals_per_slice_and_metric(credit, simulated_ci, method):
    """The engine's intervals, width and centre, per slice and metric, against TFMA's
    method simulated from its definition (check_engine_intervals)."""
    config = CREDIT_CI if method == "POISSON_BOOTSTRAP" else _jackknife(CREDIT_CI)
    engine = _engine_intervals(credit, config)
    assert engine["result"].eval_config.options.confidence_interval_method == method
    assert check_engine_intervals(simulated_ci[method], engine, method) == 9 * len(CI_METRICS)


@pytest.mark.slow  # TFMA's bootstrap run alone takes about a minute on 2 cores
def test_confidence_intervals_and_min_slice_size_match_tfma(credit, credit_ci_runs, simulated_ci):
    """Poisson bootstrap: point values and small slices as TFMA; intervals of the engine and of
    TFMA per slice and metric against the simulated method."""
    engine, reference = credit_ci_runs
    result = engine["result"]
    compare(result, reference)
    errors = [k for k, v in result.slicing_metrics if "__ERROR__" in v[""][""]]
    assert errors and set(errors) == {k for k, v in reference.slicing_metrics if "__ERROR__" in v[""][""]}
    ours = result.get_metrics_for_slice(())
    assert "doubleValue" in ours["example_count"]  # TFMA reports counts without intervals
    assert "arrayValue" in ours["fnr"]
    assert check_engine_intervals(simulated_ci["POISSON_BOOTSTRAP"], engine, "POISSON_BOOTSTRAP") == 45
    assert check_tfma_intervals(simulated_ci["POISSON_BOOTSTRAP"], reference, "POISSON_BOOTSTRAP") == 9
    frame = result.to_dataframe()
    auc = frame[(frame["slice"] == "Overall") & (frame["metric"] == "auc")].iloc[0]
    assert auc["lower"] < auc["value"] < auc["upper"]
    small = frame[frame["below_min_slice_size"]]
    assert not small.empty and small["value"].isna().all() and (small["slice_size"] < 200).all()


@pytest.mark.slow  # TFMA's jackknife run takes about half a minute on 2 cores
def test_jackknife_intervals_match_tfma(credit_jackknife_runs, simulated_ci):
    """Jackknife: point values as TFMA; intervals of TFMA per slice and metric against the
    simulated method (the engine's: test_intervals_per_slice_and_metric)."""
    engine, reference = credit_jackknife_runs
    assert engine["result"].eval_config.options.confidence_interval_method == "JACKKNIFE"
    compare(engine["result"], reference)
    assert check_tfma_intervals(simulated_ci["JACKKNIFE"], reference, "JACKKNIFE") == 9


def test_small_slices_have_no_intervals_and_are_marked(credit):
    """min_slice_size with intervals: small slices carry TFMA's error, no values (the TFMA
    comparison of the same is slow: test_confidence_intervals_and_min_slice_size_match_tfma)."""
    result = evaluate(credit, CREDIT_CI, random_seed=0)
    small = {((feature, value),) for feature in CI_FEATURES
             for value, size in credit.groupby(feature).size().items() if size < CI_MIN_SLICE}
    errors = {k for k, v in result.slicing_metrics if "__ERROR__" in v[""][""]}
    assert small and errors == small
    frame = result.to_dataframe()
    assert (frame[frame["below_min_slice_size"]]["slice_size"] < 200).all()


def test_jackknife_is_the_default_interval_method(credit):
    config = CREDIT_CI.replace("confidence_intervals { method: POISSON_BOOTSTRAP }", "")
    result = evaluate(credit, config, random_seed=1)
    assert result.eval_config.options.confidence_interval_method == "JACKKNIFE"
    auc = result.get_metrics_for_slice(())["auc"]["boundedValue"]
    assert auc["lowerBound"] < auc["value"] < auc["upperBound"]


def test_validation_matches_tfma(credit_validation_runs):
    engine, reference, tfma_validation = credit_validation_runs
    compare(engine, reference)
    assert "auc_diff" in engine.get_metrics_for_slice(())
    from tensorflow_model_analysis.slicer import slicer_lib

    theirs = set()
    for per_slice in tfma_validation.metric_validations_per_slice:
        key = (slicer_lib.deserialize_cross_slice_key(per_slice.cross_slice_key)
               if per_slice.HasField("cross_slice_key") else slicer_lib.deserialize_slice_key(per_slice.slice_key))
        for failure in per_slice.failures:
            theirs.add((key, failure.metric_key.name, failure.metric_key.is_diff))
    ours = {(c.slice_key, c.metric_key.name, c.metric_key.is_diff) for c in engine.validation.failures}
    assert ours == theirs
    assert engine.blessed is False and tfma_validation.validation_ok is False
    assert [s.to_dict() for s in engine.validation.missing_slices] == [{"feature_keys": ["housing"]}]
    assert len(tfma_validation.missing_slices) == 1


CREDIT_TWO_MODELS = """
model_specs { name: "candidate" label_key: "label" prediction_key: "prediction" }
model_specs { name: "baseline" label_key: "label" prediction_key: "baseline_prediction" }
slicing_specs {}
slicing_specs { feature_keys: "sex" }
slicing_specs { feature_keys: "age_group" }
cross_slicing_specs { baseline_spec { feature_keys: "sex" } slicing_specs { feature_keys: "age_group" } }
metrics_specs {
  metrics { class_name: "ExampleCount" }
  metrics { class_name: "AUC" }
  metrics { class_name: "FPR" config: '"thresholds": [0.5], "name": "fpr_at_0.5"' }
  metrics { class_name: "FNR" config: '"thresholds": [0.5]' }
}
"""


def test_tfma_engine_baseline_diffs_are_stock_tfmas(tfma, tmp_path_factory, credit, credit_validation_runs,
                                                     monkeypatch):
    """``engine="tfma"`` with a baseline model runs TFMA unpatched and gives stock TFMA's diffs.

    While it runs, every call of TFMA's public config defaulting comes from TFMA's own
    code, with TFMA's private ``_update_eval_config_with_defaults`` in place (the toolkit
    used to replace it for the run). Its candidate metrics and every ``*_diff`` equal the
    stock reference's, metric by metric; and the reference's diffs equal candidate minus
    baseline of one ``analyze_raw_data`` run that evaluates the two prediction columns as
    two ordinary models, so the reference does not rest on the baseline route alone.
    """
    import os
    import sys

    from tensorflow_model_analysis.api import model_eval_lib
    from tensorflow_model_analysis.utils import config_util

    _, reference, _ = credit_validation_runs
    assert_stock_tfma()
    private = model_eval_lib._update_eval_config_with_defaults
    public = config_util.update_eval_config_with_defaults
    calls = []

    def observed(*args, **kwargs):
        calls.append((sys._getframe(1).f_code.co_filename, model_eval_lib._update_eval_config_with_defaults))
        return public(*args, **kwargs)

    monkeypatch.setattr(config_util, "update_eval_config_with_defaults", observed)
    result = evaluate(credit, CREDIT_VALIDATION, engine="tfma")
    monkeypatch.undo()
    package = os.path.dirname(tfma.__file__) + os.sep
    assert calls and all(caller.startswith(package) for caller, _ in calls), calls
    assert all(function is private for _, function in calls)
    assert result.engine == "tfma"
    compare(result, reference)

    folder = str(tmp_path_factory.mktemp("tfma"))
    stock_tfma(tfma, credit, _proto(tfma, CREDIT_TWO_MODELS), folder)
    models = {name: tfma.load_eval_result(folder, model_name=name) for name in ("candidate", "baseline")}
    by_model = {name: dict(r.slicing_metrics) for name, r in models.items()}
    ours_by_key = dict(result.slicing_metrics)
    diffs = 0
    for key, by_output in dict(reference.slicing_metrics).items():
        theirs, ours = by_output[""][""], ours_by_key[key][""][""]
        for name, value in theirs.items():
            if not name.endswith("_diff"):
                continue
            candidate, baseline = (by_model[m][key][""][""][name[:-5]]["doubleValue"]
                                   for m in ("candidate", "baseline"))
            assert value["doubleValue"] == pytest.approx(candidate - baseline, abs=1e-12), (key, name)
            assert ours[name]["doubleValue"] == value["doubleValue"], (key, name)
            diffs += 1
    assert diffs >= 4 * 5


def test_blessing_pass_fail_and_change_thresholds(credit):
    base = {
        "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
        "slicing_specs": [{}, {"feature_keys": ["sex"]}],
        "metrics_specs": [{"metrics": [{"class_name": "AUC", "threshold": {}}]}],
    }

    def with_threshold(threshold):
        config = json.loads(json.dumps(base))
        config["metrics_specs"][0]["metrics"][0]["threshold"] = threshold
        return config

    passing = evaluate(credit, with_threshold({"value_threshold": {"lower_bound": 0.5}}))
    assert passing.blessed and not passing.validation.failures and len(passing.validation.checks) == 3
    failing = evaluate(credit, with_threshold({"value_threshold": {"lower_bound": 0.99}}))
    assert not failing.blessed
    assert {c.slice for c in failing.validation.failures} == {"Overall", "sex:female", "sex:male"}
    assert "needs >= 0.99" in failing.validation.summary()

    change = with_threshold({"change_threshold": {"direction": "HIGHER_IS_BETTER", "absolute": 0.0}})
    better = evaluate(credit, change, baseline="baseline_prediction")
    assert better.blessed, better.validation.summary()
    worse = evaluate(credit.assign(weak=credit["baseline_prediction"], baseline_prediction=credit["prediction"]),
                     {**change, "model_specs": [{"label_key": "label", "prediction_key": "weak"}]},
                     baseline="baseline_prediction")
    assert not worse.blessed and all(c.metric == "auc_diff" for c in worse.validation.failures)
    other_frame = credit[["prediction"]].assign(prediction=credit["baseline_prediction"])
    assert evaluate(credit, change, baseline=other_frame).blessed
    with pytest.raises(EvalConfigError, match="no baseline model"):
        evaluate(credit, change)
    assert evaluate(credit, change, rubber_stamp=True).blessed
    none = evaluate(credit, base | {"metrics_specs": [{"metrics": [{"class_name": "AUC"}]}]})
    assert not none.blessed and none.validation.missing_thresholds


def test_bounds_just_missed_are_not_blessed_and_say_why(credit):
    """A lower bound, an upper bound and change thresholds set 1e-9 past values computed here
    with numpy each fail: not blessed, one failure naming the slice, metric, value and bound.
    The same bound 1e-9 on the other side passes, so the failure is that bound's."""
    y, p, b = (credit[c].to_numpy() for c in ("label", "prediction", "baseline_prediction"))
    negatives = y == 0

    def accuracy(scores):
        return ((scores > 0.5) == (y == 1)).mean()  # BinaryAccuracy's default threshold 0.5

    def fpr(scores):
        return ((scores > 0.5) & negatives).sum() / negatives.sum()

    mean, rate = p.mean(), fpr(p)
    gain, fpr_change = accuracy(p) - accuracy(b), fpr(p) - fpr(b)
    eps = 1e-9
    mean_prediction = {"class_name": "MeanPrediction"}
    fpr_metric = {"class_name": "FPR", "config": '"thresholds": [0.5]'}
    binary_accuracy = {"class_name": "BinaryAccuracy"}
    cases = [  # metric, threshold(missed by step), reported name, value, reason
        (mean_prediction, lambda step: {"value_threshold": {"lower_bound": mean + step}},
         "mean_prediction", mean, lambda step: f">= {mean + step:g}"),
        (fpr_metric, lambda step: {"value_threshold": {"upper_bound": rate - step}},
         "fpr", rate, lambda step: f"<= {rate - step:g}"),
        (binary_accuracy, lambda step: {"change_threshold": {"direction": "HIGHER_IS_BETTER",
                                                             "absolute": gain + step}},
         "binary_accuracy_diff", gain, lambda step: f"change vs baseline model >= {gain + step:g}"),
        (binary_accuracy, lambda step: {"change_threshold": {"direction": "HIGHER_IS_BETTER",
                                                             "relative": gain / accuracy(b) + step}},
         "binary_accuracy_diff", gain,
         lambda step: f"relative change vs baseline model >= {gain / accuracy(b) + step:g}"),
        (fpr_metric, lambda step: {"change_threshold": {"direction": "LOWER_IS_BETTER",
                                                        "absolute": fpr_change - step}},
         "fpr_diff", fpr_change, lambda step: f"change vs baseline model <= {fpr_change - step:g}"),
    ]
    for metric, threshold, name, value, reason in cases:
        def run(step):
            config = {"model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
                      "slicing_specs": [{}], "metrics_specs": [{"metrics": [dict(metric, threshold=threshold(step))]}]}
            return evaluate(credit, config, baseline="baseline_prediction")

        missed = run(eps)
        assert not missed.blessed, name
        [failure] = missed.validation.failures
        assert (failure.slice, failure.metric) == ("Overall", name)
        assert failure.value == pytest.approx(value, abs=1e-12), name
        assert f"  Overall: {name} = {value:.6g}, needs {reason(eps)}" in missed.validation.summary().splitlines()
        met = run(-eps)
        assert met.blessed and not met.validation.failures, met.validation.summary()
        assert [c.value for c in met.validation.checks] == [failure.value]


def test_metrics_spec_thresholds_apply_by_name(credit):
    config = {"metrics_specs": [{"metrics": [{"class_name": "AUC"}],
                                 "thresholds": {"auc": {"value_threshold": {"lower_bound": 0.5}}}}]}
    assert evaluate(credit, config).blessed


def test_threshold_on_multi_threshold_metric_is_a_clear_error(credit):
    config = {"metrics_specs": [{"metrics": [{"class_name": "FPR", "config": '"thresholds": [0.3, 0.5]',
                                              "threshold": {"value_threshold": {"upper_bound": 0.5}}}]}]}
    with pytest.raises(EvalConfigError, match="one value per threshold"):
        evaluate(credit, config)


def test_load_eval_result_round_trip(tfma, tmp_path, credit):
    config = CREDIT_VALIDATION + "options { compute_confidence_intervals { value: true } }"
    result = evaluate(credit, config, random_seed=3)
    write_tfma_artifact(result, str(tmp_path))
    loaded = tfma.load_eval_result(str(tmp_path))
    assert dict(loaded.slicing_metrics) == dict(result.slicing_metrics)
    assert loaded.config == result.config
    validation = tfma.load_validation_result(str(tmp_path))
    assert validation.validation_ok == result.blessed
    assert len(validation.missing_slices) == 1
    failed = sum(len(s.failures) for s in validation.metric_validations_per_slice)
    assert failed == len(result.validation.failures)
    baseline = tfma.load_eval_result(str(tmp_path), model_name="baseline")
    assert "auc" in baseline.get_metrics_for_slice(())


def test_engine_tfma_and_auto_fallback(credit, tfma):
    config = {
        "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
        "slicing_specs": [{}, {"feature_keys": ["sex"]}],
        "metrics_specs": [{"metrics": [{"class_name": "AUC"}, {"class_name": "FPR"},
                                       {"class_name": "MatthewsCorrelationCoefficient"}]}],
    }
    with pytest.warns(UserWarning, match="MatthewsCorrelationCoefficient"):
        auto = evaluate(credit, config)
    assert auto.engine == "toolkit+tfma"
    forced = evaluate(credit, config, engine="tfma")
    assert forced.engine == "tfma"
    compare(auto, forced)
    assert "matthews_correlation_coefficient" in auto.get_metrics_for_slice((("sex", "male"),))
    with pytest.raises(EvalConfigError, match="MatthewsCorrelationCoefficient"):
        evaluate(credit, config, engine="toolkit")


def test_engine_tfma_computes_fairness_indicators(credit, tfma):
    config = {
        "model_specs": [{"label_key": "label", "prediction_key": "prediction"}],
        "slicing_specs": [{}, {"feature_keys": ["sex"]}],
        "metrics_specs": [{"metrics": [{"class_name": "FairnessIndicators",
                                        "config": '{"thresholds": [0.3, 0.5]}'}]}],
    }
    forced = evaluate(credit, config, engine="tfma")
    assert forced.engine == "tfma"
    names = [f"fairness_indicators_metrics/{m}@{t}" for t in (0.3, 0.5) for m in FI_SUBMETRICS]  # TFMA's spelling
    assert set(names) <= set(forced.get_metrics_for_slice((("sex", "female"),)))
    compare(evaluate(credit, config, engine="toolkit"), forced)


# ------------------------------------------------------------------------------ bad input


def test_missing_label_or_prediction_column_is_named(credit):
    with pytest.raises(MissingColumnError) as info:
        evaluate(credit.drop(columns=["label"]), {"metrics_specs": [{"metrics": [{"class_name": "AUC"}]}]})
    message = str(info.value)
    assert "'label'" in message and "'prediction'" in message and "available columns" in message
    assert isinstance(info.value, ToolkitError)
    with pytest.raises(MissingColumnError, match="'score'"):
        evaluate(credit, {"model_specs": [{"prediction_key": "score"}]})


def test_predictions_outside_unit_interval_and_nan_scores(credit):
    config = {"metrics_specs": [{"metrics": [{"class_name": "AUC"}]}]}
    # As TFMA, scores outside [0, 1] are evaluated, with a warning (test_logits_parity_with_tfma) ...
    with pytest.warns(UserWarning, match=r"toolkit.evaluate: prediction column 'prediction'.*outside \[0, 1\].*"
                                         r"look like logits.*sigmoid"):
        evaluate(credit.assign(prediction=credit["prediction"] * 3), config)
    # ... labels outside [0, 1] are refused, as TFMA refuses them ("label must be within [0, 1]").
    with pytest.raises(InvalidValuesError, match=r"label column 'label' has \d+ values outside \[0, 1\]"):
        evaluate(credit.assign(label=credit["label"] * 3, prediction=credit["prediction"] * 3), config)
    with pytest.raises(InvalidValuesError, match="3 missing/NaN"):
        evaluate(credit.assign(prediction=credit["prediction"].where(credit.index > 2)), config)
    # Regression metrics accept any real prediction.
    regression = {"metrics_specs": [{"metrics": [{"class_name": "MeanSquaredError"}]}]}
    assert evaluate(credit.assign(prediction=credit["prediction"] * 3), regression).get_metrics_for_slice(())


def test_unknown_slicing_feature_is_named(credit):
    with pytest.raises(MissingColumnError, match="slicing feature.*'gender'"):
        evaluate(credit, {"slicing_specs": [{"feature_keys": ["gender"]}]})


def test_empty_and_single_class_slices_are_marked(credit):
    data = credit.assign(label_group=np.where(credit["label"] > 0, "good", "bad"))
    result = evaluate(data, {
        "slicing_specs": [{}, {"feature_values": {"housing": "castle"}}, {"feature_keys": ["label_group"]}],
        "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"}, {"class_name": "AUC"}]}],
    })
    assert (("housing", "castle"),) not in result.get_slice_names()  # as TFMA: no such slice
    frame = result.to_dataframe()
    empty = frame[frame["slice"] == "housing:castle"]
    assert len(empty) and (empty["slice_size"] == 0).all() and empty["note"].str.contains("no rows").all()
    good = frame[(frame["slice"] == "label_group:good") & (frame["metric"] == "auc")].iloc[0]
    assert math.isnan(good["value"]) and "no negative labels" in good["note"]
    assert result.get_metrics_for_slice((("label_group", "bad"),))["auc"] == {"doubleValue": "NaN"}


# ------------------------------------------------------------------------------ result API


def test_tidy_frame_schema_and_baseline_slice(credit):
    result = evaluate(credit, {
        "slicing_specs": [{}, {"feature_keys": ["sex"]}, {"feature_keys": ["sex", "age_group"]}],
        "metrics_specs": [{"metrics": [{"class_name": "ExampleCount"}, {"class_name": "AUC"},
                                       {"class_name": "FPR", "config": '"thresholds": [0.3, 0.5]'}]}],
    })
    frame = result.to_dataframe()
    for column in ("slice", "slice_key", "slice_size", "metric", "threshold", "value", "lower", "upper",
                   "below_min_slice_size"):
        assert column in frame.columns
    fpr = frame[(frame["slice"] == "sex:female") & (frame["metric"] == "fpr")]
    assert fpr["threshold"].tolist() == [0.3, 0.5]
    assert "age_group:adult × sex:female" in set(frame["slice"])
    compared = result.against("sex:male").to_dataframe()
    row = compared[(compared["slice"] == "sex:female") & (compared["metric"] == "fpr")
                   & (compared["threshold"] == 0.5)].iloc[0]
    male = frame[(frame["slice"] == "sex:male") & (frame["metric"] == "fpr") & (frame["threshold"] == 0.5)]
    assert row["baseline_diff"] == pytest.approx(row["value"] - male["value"].iloc[0])
    assert row["baseline_ratio"] == pytest.approx(row["value"] / male["value"].iloc[0])
    assert result.against({"sex": "male"}).baseline_slice == (("sex", "male"),)
    assert pickle.loads(pickle.dumps(result)).slicing_metrics == result.slicing_metrics  # stored by Evaluator
    with pytest.raises(EvalConfigError, match="not among the evaluated slices"):
        result.against("sex:unknown")


def test_config_forms_agree(credit, tfma):
    text = 'slicing_specs { feature_keys: "sex" } metrics_specs { metrics { class_name: "AUC" } }'
    proto = _proto(tfma, text)
    from google.protobuf import json_format

    forms = [text, proto, json_format.MessageToJson(proto), json_format.MessageToDict(proto)]
    results = [evaluate(credit, form).slicing_metrics for form in forms]
    assert all(r == results[0] for r in results)


# ------------------------------------------------------------------------------ logits

LOGIT_EXTREMES = [1e4, -1e4, 40.0, -40.0, 1.0, 0.0, 1.00001, -1e-5]  # the first rows' scores
#: Confusion metrics at a single negative threshold: TFMA counts them on its one-bucket
#: calibration histogram (positive: above the slice's lowest occupied bucket of < 0, [0, 1),
#: >= 1), so the engine leaves them to TFMA (engine="auto").
SINGLE_NEGATIVE = ('metrics { class_name: "FalsePositives" config: \'"thresholds": [-1.0], "name": "fp_below_0"\' }'
                   ' metrics { class_name: "BinaryAccuracy" config: \'"threshold": -0.5, "name": "acc_below_0"\' }')


def _logit_config(extra: str = "") -> str:
    """Every metric of the taxi config, thresholds for logits (below 0, at 0, above 1), two slicings."""
    metrics = _taxi_config(with_fairness=True).split("metrics_specs {", 1)[1]
    return ('model_specs { label_key: "label" prediction_key: "prediction" } slicing_specs {} '
            'slicing_specs { feature_keys: "payment_type" } metrics_specs { '
            'metrics { class_name: "BinaryAccuracy" config: \'"threshold": 0.0, "name": "accuracy_at_0"\' } '
            'metrics { class_name: "Recall" config: \'"thresholds": [-2.0, 0.0, 2.0], "name": "recall_logit"\' } '
            'metrics { class_name: "Precision" config: \'"thresholds": [3.0], "name": "precision_at_3"\' } '
            f"{extra} {metrics}")


def test_logits_parity_with_tfma(tfma, tmp_path_factory, taxi, caplog):
    """Logits (taxi scores as log-odds times 1.7, plus extreme and boundary scores): every metric
    TFMA computes on them, the engine computes the same, with one warning."""
    data = taxi.iloc[:6000]  # a third of the rows: TFMA's run is the test's cost
    p = data["prediction"].to_numpy()
    logits = np.log(p / (1 - p)) * 1.7
    logits[:len(LOGIT_EXTREMES)] = LOGIT_EXTREMES
    data = data.assign(prediction=logits)
    with pytest.warns(UserWarning) as record:
        engine = evaluate(data, _logit_config(), engine="toolkit")
    messages = [str(w.message) for w in record if "look like logits" in str(w.message)]
    assert len(messages) == 1 and "\n" not in messages[0], messages
    assert "prediction column 'prediction'" in messages[0] and "from -1e+04 to 1e+04" in messages[0]
    assert [r for r in caplog.records if r.levelname == "WARNING" and r.getMessage() == messages[0]]
    assert engine.engine == "toolkit"
    reference, _, _ = run_tfma(tfma, tmp_path_factory, data, _logit_config(SINGLE_NEGATIVE))
    divergences = compare(engine, reference, skip={"fp_below_0", "acc_below_0"})
    assert all(ours == "NaN" for _, _, ours, _ in divergences)  # single-class slices (documented)
    names = set(reference.get_metric_names())
    assert {"auc", "auc_precision_recall", "accuracy_at_0", "recall_logit", "calibration",
            "fairness_indicators_metrics/false_positive_rate@0.25"} <= names
    overall, theirs = engine.get_metrics_for_slice(()), reference.get_metrics_for_slice(())
    y = data["label"].to_numpy()
    # a score above the threshold is positive, logits included
    assert overall["accuracy_at_0"]["doubleValue"] == pytest.approx(((logits > 0) == (y == 1)).mean(), abs=1e-12)
    assert overall["binary_accuracy"]["doubleValue"] == pytest.approx(((logits > 0.4) == (y == 1)).mean(), abs=1e-12)
    # TFMA's calibration histogram clips: every score below 0 falls in one bucket, every score
    # above 1 in another, so AUC does not change when the logits are clipped to [-1, 2]
    auc_only = {"metrics_specs": [{"metrics": [{"class_name": "AUC"}, {"class_name": "AUCPrecisionRecall"}]}]}
    with pytest.warns(UserWarning, match="look like logits"):
        clipped = evaluate(data.assign(prediction=np.clip(logits, -1.0, 2.0)), auc_only).get_metrics_for_slice(())
    assert clipped["auc"] == overall["auc"] and clipped["auc_precision_recall"] == overall["auc_precision_recall"]
    # the single negative threshold: TFMA counts scores >= 0 (not > -1) as positive
    assert theirs["fp_below_0"]["doubleValue"] == ((logits >= 0) & (y == 0)).sum()
    assert ((logits > -1) & (y == 0)).sum() > theirs["fp_below_0"]["doubleValue"]
    with pytest.raises(EvalConfigError, match="single negative threshold -1.0"):
        evaluate(data, _logit_config(SINGLE_NEGATIVE), engine="toolkit")
