"""The evaluation engine on Beam gives the in-memory engine's EvalResult: counts exactly,
everything else (confidence intervals included) within 1e-12, the same blessing; the
Evaluator with ``beam_pipeline_args`` runs it (examples read, model called in the workers)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datapaths import GERMAN_CSV

EXACT = {"example_count", "weighted_example_count"}
MULTI_PROCESS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _config(ci: bool = False) -> dict:
    return {
        "model_specs": [{"label_key": "label", "prediction_key": "prediction", "example_weight_key": "weight"}],
        "slicing_specs": [{}, {"feature_keys": ["sex"]}, {"feature_keys": ["age_group", "sex"]},
                          {"feature_keys": ["amount_band"]}, {"feature_values": {"sex": "female"}},
                          {"feature_values": {"sex": "nobody"}}],
        "cross_slicing_specs": [{"baseline_spec": {"feature_keys": ["sex"]}}],
        "metrics_specs": [{"metrics": [
            {"class_name": "ExampleCount"}, {"class_name": "WeightedExampleCount"}, {"class_name": "AUC"},
            {"class_name": "AUC", "config": '{"curve": "PR", "name": "auc_pr"}'},
            {"class_name": "MeanLabel"}, {"class_name": "MeanPrediction"}, {"class_name": "MeanSquaredError"},
            {"class_name": "BinaryAccuracy"}, {"class_name": "Precision"},
            {"class_name": "FairnessIndicators", "config": '{"thresholds": [0.3, 0.5]}'}],
            "thresholds": {"auc": {"value_threshold": {"lower_bound": {"value": 0.6}},
                                   "change_threshold": {"direction": "HIGHER_IS_BETTER",
                                                        "absolute": {"value": -0.5}}}}}],
        "options": {"min_slice_size": 5, "compute_confidence_intervals": ci},
    }


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = pd.read_csv(GERMAN_CSV)
    df["label"] = df["risk"].astype(float)
    df["age_group"] = np.where(df["age"] < 26, "young", "adult")
    rng = np.random.default_rng(0)
    df["prediction"] = np.clip(0.3 * df["label"] + rng.random(len(df)) * 0.7, 0, 1)
    df["baseline_prediction"] = 1 / (1 + np.exp(-(0.8 - 0.0001 * df["credit_amount"])))
    df["weight"] = 1.0 + (df["age"] % 3)
    df["amount_band"] = np.where(df["credit_amount"] > 12000, np.nan, df["credit_amount"] // 4000)
    return df


INTERVAL_FIELDS = ("lower", "upper", "std_error", "sample_mean")


def assert_same_result(expected, actual, intervals: bool = True) -> None:
    """Every metric of every slice: counts exact, others within 1e-12; same blessing. With
    ``intervals``, every interval's bounds, standard error and sample mean within 1e-12 too
    (both engines draw the same resampling weights, so only summation order differs)."""
    assert [s.key for s in actual.slices] == [s.key for s in expected.slices]
    for want, got in zip(expected.slices, actual.slices):
        assert (got.size, got.error, got.empty) == (want.size, want.error, want.empty), want.key
        assert set(got.metrics) == set(want.metrics), want.key
        for key, value in want.metrics.items():
            a = np.asarray(value.value, float)
            b = np.asarray(got.metrics[key].value, float)
            if key.name in EXACT:
                assert np.array_equal(a, b), (want.key, key)
            else:
                np.testing.assert_allclose(b, a, rtol=0, atol=1e-12, err_msg=f"{want.key} {key}")
            assert (got.metrics[key].lower is None) == (value.lower is None)
            if intervals and value.lower is not None:
                for field in INTERVAL_FIELDS:
                    np.testing.assert_allclose(np.asarray(getattr(got.metrics[key], field), float),
                                               np.asarray(getattr(value, field), float), rtol=0, atol=1e-12,
                                               err_msg=f"{want.key} {key} {field}")
                assert got.metrics[key].dof == value.dof
    assert actual.blessed == expected.blessed
    assert [(c.metric, c.slice, c.passed) for c in actual.validation.checks] == \
        [(c.metric, c.slice, c.passed) for c in expected.validation.checks]
    assert actual.missing_values == expected.missing_values


def test_beam_engine_equals_the_in_memory_engine(frame, monkeypatch):
    from toolkit.evaluation import beam_engine, evaluate

    monkeypatch.setattr(beam_engine, "FRAME_BATCH_ROWS", 97)  # 11 batches: merging is exercised
    expected = evaluate(frame, _config(), baseline="baseline_prediction")
    actual = beam_engine.evaluate_on_beam(frame, _config(), [], baseline="baseline_prediction")
    assert_same_result(expected, actual)
    assert any(s.empty for s in actual.slices)


@pytest.mark.parametrize("method", ["POISSON_BOOTSTRAP", "JACKKNIFE"])
def test_intervals_on_beam_equal_the_in_memory_engines(frame, monkeypatch, method):
    """Both engines draw each row's resampling weights from the row and the seed, so for one
    seed every interval (bounds, standard error, sample mean) agrees to 1e-12, under any
    batching and row order; another seed gives other intervals."""
    from toolkit.evaluation import beam_engine, evaluate

    config = _config(ci=True)
    config["options"]["confidence_intervals"] = {"method": method}
    expected = evaluate(frame, config, baseline="baseline_prediction", random_seed=3)
    monkeypatch.setattr(beam_engine, "FRAME_BATCH_ROWS", 97)  # 11 batches
    first = beam_engine.evaluate_on_beam(frame, config, [], baseline="baseline_prediction", random_seed=3)
    shuffled = frame.sample(frac=1.0, random_state=1)
    monkeypatch.setattr(beam_engine, "FRAME_BATCH_ROWS", 300)  # other batches, other rows in each
    second = beam_engine.evaluate_on_beam(shuffled, config, [], baseline="baseline_prediction", random_seed=3)
    assert expected.eval_config.options.confidence_interval_method == method
    bounded = [key for key, value in {s.key: s for s in expected.slices}[()].metrics.items()
               if value.lower is not None]
    assert {key.name for key in bounded} >= {"auc", "mean_prediction", "binary_accuracy"}
    assert any(key.is_diff for key in bounded)
    assert_same_result(expected, first)
    assert_same_result(expected, second)
    assert_same_result(expected, evaluate(shuffled, config, baseline="baseline_prediction", random_seed=3))
    other = evaluate(frame, config, baseline="baseline_prediction", random_seed=4)
    auc = [key for key in bounded if key.name == "auc" and not key.is_diff][0]
    assert {s.key: s for s in other.slices}[()].metrics[auc].lower != \
        {s.key: s for s in expected.slices}[()].metrics[auc].lower


def test_unsupported_metric_on_beam_is_one_line(frame):
    from toolkit.evaluation import EvalConfigError
    from toolkit.evaluation.beam_engine import evaluate_on_beam

    config = _config()
    config["metrics_specs"][0]["metrics"].append({"class_name": "NoSuchMetricAnywhere"})
    config["metrics_specs"][0].pop("thresholds")
    with pytest.raises(EvalConfigError, match=r"^on Beam the toolkit engine computes every metric itself and "
                                              r"does not support NoSuchMetricAnywhere: run without "
                                              r"beam_pipeline_args, or with engine='tfma'$") as info:
        evaluate_on_beam(frame, config, [])
    assert type(info.value) is EvalConfigError and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    from test_evaluator import credit as credit_fixture

    return credit_fixture.__wrapped__(tmp_path_factory)


@pytest.mark.slow
def test_evaluator_on_multi_processing_beam_equals_in_process(credit):
    """Intervals included: the examples the workers read draw the resampling weights the
    examples read in process draw."""
    from test_evaluator import _blessing, _config as evaluator_config

    from toolkit.components import Evaluator

    config = evaluator_config(min_auc=0.65)
    config.options.compute_confidence_intervals.value = True
    results = {}
    for name, args in (("InProcess", []), ("OnBeam", MULTI_PROCESS)):
        evaluator = Evaluator(examples=credit.examples, model=credit.good,
                              eval_config=config).with_id(f"Evaluator{name}")
        credit.context.run(evaluator, beam_pipeline_args=args)
        results[name] = (evaluator.outputs["evaluation"].get()[0].load(), _blessing(evaluator)[1:])
    assert any(value.lower is not None for value in results["InProcess"][0].slices[0].metrics.values())
    assert_same_result(results["InProcess"][0], results["OnBeam"][0])
    assert results["InProcess"][1] == results["OnBeam"][1]


@pytest.mark.slow
def test_evaluator_engine_tfma_runs_tfma_on_the_given_runner(credit, monkeypatch):
    """``engine="tfma"`` with ``beam_pipeline_args`` runs TFMA's own pipeline on that runner
    (the real one; the pipelines built are listed): its metrics agree with the toolkit
    engine in process (the TFMA parity tolerances), and so does the blessing."""
    from test_evaluation_engine import compare
    from test_evaluator import _blessing, _config as evaluator_config

    from toolkit.components import Evaluator, _beam

    built = []
    real = _beam.beam_pipeline

    def listed(args, label):
        built.append((list(args), label))
        return real(args, label)

    monkeypatch.setattr(_beam, "beam_pipeline", listed)

    results = {}
    for name, engine, args in (("Toolkit", "toolkit", []), ("TfmaOnBeam", "tfma", MULTI_PROCESS)):
        evaluator = Evaluator(examples=credit.examples, model=credit.good, engine=engine,
                              eval_config=evaluator_config(min_auc=0.65)).with_id(f"Evaluator{name}")
        credit.context.run(evaluator, beam_pipeline_args=args)
        artifact = evaluator.outputs["evaluation"].get()[0]
        results[name] = (artifact, evaluator.outputs["evaluation"].get()[0].load(),
                         _blessing(evaluator)[1:])
    assert built == [(MULTI_PROCESS, "TFMA's evaluation pipeline")]
    assert results["TfmaOnBeam"][0].properties["engine"] == "tfma"
    assert results["Toolkit"][0].properties["engine"] == "toolkit"
    compare(results["Toolkit"][1], results["TfmaOnBeam"][1])
    assert results["Toolkit"][2] == results["TfmaOnBeam"][2]
