"""The Evaluator through the public API on the German credit data: blessing on value and
change thresholds, the gate in front of the Pusher, TFMA-readable artifacts, escaping,
bad input.

One session-scoped pipeline trains two models with the credit notebook's module file:
a good one and a deliberately weak one (a single training step).
"""
from __future__ import annotations

import json
import os
import types

import numpy as np
import pandas as pd
import pytest

from datapaths import GERMAN_CSV, REPO

TRAINER_MODULE = os.path.join(REPO, "notebooks", "credit_trainer.py")
PLANTED = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def credit(tmp_path_factory):
    """German credit with the label, age groups and a planted ``branch`` value; two models."""
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, Trainer

    folder = tmp_path_factory.mktemp("credit_evaluator")
    frame = pd.read_csv(GERMAN_CSV)
    frame["bad_risk"] = 1 - frame.pop("risk")
    frame["age_group"] = pd.cut(frame["age"], bins=[0, 24, 40, 200],
                                labels=["<25", "25-40", ">40"]).astype(str)
    frame["branch"] = np.where(np.arange(len(frame)) % 3 == 0, PLANTED, "north")
    (folder / "data").mkdir()
    frame.to_csv(folder / "data" / "credit.csv", index=False)
    context = InteractiveContext(pipeline_name="credit_evaluator",
                                 pipeline_root=str(folder / "root"))
    example_gen = CsvExampleGen(input_base=str(folder / "data"))
    good = Trainer(module_file=TRAINER_MODULE, examples=example_gen.outputs["examples"],
                   train_args={"num_steps": 200}, eval_args={"num_steps": 1})
    weak = Trainer(module_file=TRAINER_MODULE, examples=example_gen.outputs["examples"],
                   train_args={"num_steps": 1}, eval_args={"num_steps": 1},
                   hyperparameters={"learning_rate": 1e-6}).with_id("WeakTrainer")
    for component in (example_gen, good, weak):
        context.run(component)
    serving = folder / "serving"
    serving.mkdir()
    return types.SimpleNamespace(context=context, examples=example_gen.outputs["examples"],
                                 good=good.outputs["model"], weak=weak.outputs["model"],
                                 serving=str(serving))


def _config(min_auc: float | None = None, max_auc_drop: float | None = None):
    """Slices by sex, age group, branch and sex × age group; thresholds on the overall AUC."""
    import tensorflow_model_analysis as tfma

    threshold = tfma.MetricThreshold()
    if min_auc is not None:
        threshold.value_threshold.lower_bound.value = min_auc
    if max_auc_drop is not None:
        threshold.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
        threshold.change_threshold.absolute.value = -max_auc_drop
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="bad_risk")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["sex"]),
                       tfma.SlicingSpec(feature_keys=["age_group"]),
                       tfma.SlicingSpec(feature_keys=["branch"]),
                       tfma.SlicingSpec(feature_keys=["sex", "age_group"])],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                     tfma.MetricConfig(class_name="AUC"),
                     tfma.MetricConfig(class_name="FairnessIndicators",
                                       config='{"thresholds": [0.3, 0.5]}')],
            per_slice_thresholds={"auc": tfma.PerSliceMetricThresholds(thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                             threshold=threshold)])})])


def _evaluate(credit, component_id: str, model, config, baseline=None):
    from toolkit.components import Evaluator

    evaluator = Evaluator(examples=credit.examples, model=model, baseline_model=baseline,
                          eval_config=config).with_id(component_id)
    credit.context.run(evaluator)
    return evaluator


def _blessing(evaluator):
    blessing = evaluator.outputs["blessing"].get()[0]
    files = sorted(n for n in os.listdir(blessing.uri) if n.isupper())
    with open(os.path.join(blessing.uri, "validation.json")) as handle:
        return blessing, files, json.load(handle)


def _push(credit, component_id: str, model, evaluator):
    from toolkit.components import Pusher

    destination = os.path.join(credit.serving, component_id)
    pusher = Pusher(model=model, model_blessing=evaluator.outputs["blessing"],
                    push_destination=destination, allowed_root=credit.serving).with_id(component_id)
    result = credit.context.run(pusher)
    pushed = os.listdir(destination) if os.path.isdir(destination) else []
    return result, pushed


@pytest.fixture(scope="session")
def passing(credit):
    return _evaluate(credit, "Evaluator", credit.good, _config(min_auc=0.65))


def test_value_threshold_met_blesses_and_the_model_is_pushed(credit, passing):
    blessing, files, validation = _blessing(passing)
    result = passing.outputs["evaluation"].get()[0].load()
    auc = result.get_metrics_for_slice(())["auc"]["doubleValue"]
    assert auc >= 0.65
    assert files == ["BLESSED"] and validation == {"blessed": True, "failures": []}
    assert blessing.properties["blessed"] == 1
    assert blessing.properties["current_model_id"] == credit.good.get()[0].id
    run, pushed = _push(credit, "PusherBlessed", credit.good, passing)
    assert run.outputs["pushed_model"][0].properties["pushed"] == 1 and run.gate_failure is None
    assert len(pushed) == 1
    assert os.path.isfile(os.path.join(credit.serving, "PusherBlessed", pushed[0],
                                       "saved_model.pb"))


def test_value_threshold_missed_is_not_blessed_and_not_pushed(credit):
    evaluator = _evaluate(credit, "StrictEvaluator", credit.good, _config(min_auc=0.99))
    blessing, files, validation = _blessing(evaluator)
    assert files == ["NOT_BLESSED"] and validation["blessed"] is False
    assert blessing.properties["blessed"] == 0
    assert [f.split(" = ")[0] for f in validation["failures"]] == ["auc on Overall"]
    assert "auc on Overall" in blessing.properties["reason"]
    run, pushed = _push(credit, "PusherStrict", credit.good, evaluator)
    assert run.outputs["pushed_model"][0].properties["pushed"] == 0
    assert "does not bless" in run.gate_failure and pushed == []


def test_change_threshold_rubber_stamps_the_first_model_then_compares(credit):
    config = _config(max_auc_drop=0.01)
    first = _evaluate(credit, "FirstEvaluator", credit.weak, config)
    blessing, files, _ = _blessing(first)
    assert files == ["BLESSED"] and "baseline_model_id" not in blessing.properties
    assert first.outputs["evaluation"].get()[0].load().validation.rubber_stamp

    worse = _evaluate(credit, "WorseEvaluator", credit.weak, config, baseline=credit.good)
    blessing, files, validation = _blessing(worse)
    result = worse.outputs["evaluation"].get()[0].load()
    overall = result.get_metrics_for_slice(())
    assert overall["auc_diff"]["doubleValue"] < -0.01
    assert files == ["NOT_BLESSED"] and blessing.properties["blessed"] == 0
    assert blessing.properties["baseline_model_id"] == credit.good.get()[0].id
    assert validation["failures"][0].startswith("auc_diff on Overall")
    run, pushed = _push(credit, "PusherWorse", credit.weak, worse)
    assert run.outputs["pushed_model"][0].properties["pushed"] == 0 and pushed == []

    better = _evaluate(credit, "BetterEvaluator", credit.good, config, baseline=credit.weak)
    _, files, _ = _blessing(better)
    diff = better.outputs["evaluation"].get()[0].load().get_metrics_for_slice(())
    assert files == ["BLESSED"]
    assert diff["auc_diff"]["doubleValue"] == pytest.approx(
        -overall["auc_diff"]["doubleValue"], abs=1e-9)


def test_evaluation_artifact_is_read_by_tfma(passing):
    import tensorflow_model_analysis as tfma

    evaluation = passing.outputs["evaluation"].get()[0]
    stored = set(os.listdir(evaluation.uri))
    assert {"evaluation.json", "metrics.parquet"} <= stored
    assert not any(name.endswith(".pkl") for name in stored)
    ours = evaluation.load()
    theirs = tfma.load_eval_result(evaluation.uri)
    assert sorted(map(repr, theirs.get_slice_names())) == sorted(map(repr, ours.get_slice_names()))
    for slice_key in [(), (("sex", "female"),), (("age_group", "<25"), ("sex", "male"))]:
        loaded = theirs.get_metrics_for_slice(slice_key)
        stored = ours.get_metrics_for_slice(slice_key)
        assert loaded["auc"]["doubleValue"] == pytest.approx(stored["auc"]["doubleValue"],
                                                             abs=1e-12)
        name = "fairness_indicators_metrics/false_positive_rate@0.5"
        assert loaded[name]["doubleValue"] == pytest.approx(stored[name]["doubleValue"],
                                                            abs=1e-12)
        assert loaded["example_count"] == stored["example_count"]
    assert tfma.load_validation_result(evaluation.uri).validation_ok is True


def test_planted_script_slice_value_is_escaped_in_the_dashboard(credit, passing):
    view = credit.context.show(passing.outputs["evaluation"])
    assert "branch:&lt;script&gt;alert(1)&lt;/script&gt;" in view.html
    assert PLANTED not in view.html and "<script" not in view.html.lower()
    assert "age_group:&lt;25" in view.html and "age_group:<25" not in view.html
    assert f"branch:{PLANTED}" in view.text


def test_missing_label_column_is_one_line_naming_it(credit):
    import tensorflow_model_analysis as tfma

    from toolkit.components import Evaluator
    from toolkit.errors import ComponentError

    config = tfma.EvalConfig(model_specs=[tfma.ModelSpec(label_key="defaulted")],
                             metrics_specs=[tfma.MetricsSpec(
                                 metrics=[tfma.MetricConfig(class_name="AUC")])])
    evaluator = Evaluator(examples=credit.examples, model=credit.good,
                          eval_config=config).with_id("NoLabelEvaluator")
    with pytest.raises(ComponentError) as info:
        credit.context.run(evaluator)
    message = str(info.value)
    assert "\n" not in message and info.value.__cause__ is None
    assert message.startswith("NoLabelEvaluator: label_key 'defaulted' is not a column")
    assert "bad_risk" in message
    assert credit.context.executions("NoLabelEvaluator")[-1]["state"] == "FAILED"
    assert not [a for a in credit.context.store.artifacts() if a.producer == "NoLabelEvaluator"]


# -- models with class scores ------------------------------------------------------------
from toolkit import custom
from toolkit.artifacts import Model


@custom.component
def ClassScoresModel(model: custom.OutputArtifact[Model], with_probability: int = 0):
    """A tiny Keras model whose ``serving_default`` parses serialized tf.Examples and returns
    three class scores per example as ``output_0`` (and, with ``with_probability``, the
    third class's score alone as ``probability``)."""
    import tensorflow as tf

    inputs = tf.keras.Input(shape=(1,), name="age")
    keras_model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(inputs))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        age = tf.io.parse_example(examples, {"age": tf.io.FixedLenFeature([1], tf.int64)})["age"]
        scores = keras_model(tf.cast(age, tf.float32) / 100.0)
        return {"output_0": scores, "probability": scores[:, 2:]} if with_probability else {
            "output_0": scores}

    holder = tf.Module()
    holder.model = keras_model
    tf.saved_model.save(holder, os.path.join(model.uri, "Format-Serving"),
                        signatures={"serving_default": serve})


def _auc_config(prediction_key: str | None = None):
    import tensorflow_model_analysis as tfma

    spec = tfma.ModelSpec(label_key="bad_risk")
    if prediction_key:
        spec.prediction_key = prediction_key
    return tfma.EvalConfig(model_specs=[spec], metrics_specs=[tfma.MetricsSpec(
        metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                 tfma.MetricConfig(class_name="AUC")])])


def _evaluation_error(credit, component_id: str, model, config) -> str:
    from toolkit.components import Evaluator
    from toolkit.errors import ComponentError

    evaluator = Evaluator(examples=credit.examples, model=model,
                          eval_config=config).with_id(component_id)
    with pytest.raises(ComponentError) as info:
        credit.context.run(evaluator)
    assert credit.context.executions(component_id)[-1]["state"] == "FAILED"
    assert not [a for a in credit.context.store.artifacts() if a.producer == component_id]
    return str(info.value)


def test_class_scores_are_refused_naming_the_output_and_its_shape(credit):
    scores = ClassScoresModel().with_id("ClassScoresModel")
    credit.context.run(scores)
    model_id = scores.outputs["model"].get()[0].id
    message = _evaluation_error(credit, "ClassScoresEvaluator", scores.outputs["model"],
                                _auc_config())
    assert "\n" not in message
    assert message.startswith(
        f"ClassScoresEvaluator: Model #{model_id}: output 'output_0' has 3 scores per example "
        "(shape [None, 3]); the Evaluator evaluates one score per example")
    assert "export a serving signature that returns one score per example" in message


def test_prediction_key_chooses_the_output_with_one_score(credit):
    import tensorflow as tf

    import toolkit
    from toolkit.components import Evaluator

    both = ClassScoresModel(with_probability=1).with_id("ClassScoresAndProbabilityModel")
    credit.context.run(both)
    model = both.outputs["model"]
    unnamed = _evaluation_error(credit, "UnnamedOutputEvaluator", model, _auc_config())
    assert ("serving_default returns 2 outputs ('output_0' [None, 3], 'probability' [None, 1]) "
            "and none is named 'prediction': set prediction_key") in unnamed
    scores = _evaluation_error(credit, "ScoresOutputEvaluator", model, _auc_config("output_0"))
    assert "output 'output_0' has 3 scores per example (shape [None, 3])" in scores
    assert "set prediction_key in the EvalConfig's model_spec to 'probability'" in scores

    evaluator = Evaluator(examples=credit.examples, model=model,
                          eval_config=_auc_config("probability")).with_id("ProbabilityEvaluator")
    credit.context.run(evaluator)
    overall = evaluator.outputs["evaluation"].get()[0].load().get_metrics_for_slice(())
    frame = pd.read_parquet(credit.examples.get()[0].split_uri("eval"))
    serialized = [tf.train.Example(features=tf.train.Features(feature={"age": tf.train.Feature(
        int64_list=tf.train.Int64List(value=[age]))})).SerializeToString() for age in frame["age"]]
    loaded = tf.saved_model.load(os.path.join(model.get()[0].uri, "Format-Serving"))
    answer = loaded.signatures["serving_default"](examples=tf.constant(serialized))
    frame["probability"] = answer["probability"].numpy().reshape(-1)
    expected = toolkit.evaluate(frame, _auc_config("probability")).get_metrics_for_slice(())
    assert overall["example_count"] == expected["example_count"]
    assert overall["auc"]["doubleValue"] == pytest.approx(expected["auc"]["doubleValue"],
                                                          abs=1e-12)


def test_bulk_inferrer_writes_every_class_score(credit):
    from toolkit.components import BulkInferrer

    scores = ClassScoresModel().with_id("ClassScoresModel")
    credit.context.run(scores)
    inferrer = BulkInferrer(examples=credit.examples, model=scores.outputs["model"],
                            data_spec={"example_splits": ["eval"]}).with_id("ClassScoresInferrer")
    credit.context.run(inferrer)
    written = pd.read_parquet(inferrer.outputs["inference_result"].get()[0].split_uri("eval"))
    matrix = np.stack(written["scores"].to_numpy())
    assert matrix.shape == (len(written), 3)
    assert np.allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
    assert (written["prediction"].to_numpy() == matrix.argmax(axis=1)).all()
    assert written["age"].tolist() == pd.read_parquet(
        credit.examples.get()[0].split_uri("eval"))["age"].tolist()
