"""The Evaluator calls a model's signatures as TFMA does, on a model in the shape of TFX's
Keras taxi tutorial: ``preprocessing_function_names`` compute the label, a transformed
feature takes precedence over a raw column of the same name, ``signature_name`` is
honoured, logits read as probabilities are evaluated with a warning, class scores go to
the engine when multi-class metrics are asked for, and the artifacts open as TFX's do.

The module files (tests/fixtures/tfx_taxi) are our own, written to TFX's contract; the
model trains once for this module (few steps) on the session's taxi Examples.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import types

import numpy as np
import pytest

from datapaths import REPO
from toolkit import custom
from toolkit.artifacts import Model

FIXTURES = os.path.join(REPO, "tests", "fixtures", "tfx_taxi")
TRANSFORM_MODULE = os.path.join(FIXTURES, "taxi_transform.py")
TRAINER_MODULE = os.path.join(FIXTURES, "taxi_trainer.py")


def tutorial_config(**model_spec):
    """The EvalConfig of TFX's Keras taxi tutorial (no transform_graph is given)."""
    import tensorflow_model_analysis as tfma

    spec = dict(signature_name="serving_default", label_key="tips_xf",
                preprocessing_function_names=["transform_features"])
    spec.update(model_spec)
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(**spec)],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="BinaryAccuracy", threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.5}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -1e-10})))])],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["trip_start_hour"])])


def _run_logged(context, component):
    """``context.run(component)`` and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = context.run(component)
    return result, out.getvalue()


@pytest.fixture(scope="module")
def tutorial(taxi_pipeline):
    """Transform and Trainer with the tutorial-shaped module files, then the Evaluator with
    the tutorial's EvalConfig."""
    from toolkit import InteractiveContext
    from toolkit.components import Evaluator, Trainer, Transform

    context = InteractiveContext(pipeline_name="taxi_tfx_tutorial",
                                 pipeline_root=taxi_pipeline.root)
    examples = taxi_pipeline.example_gen.outputs["examples"]
    schema = taxi_pipeline.schema_gen.outputs["schema"]
    transform = Transform(examples=examples, schema=schema,
                          module_file=TRANSFORM_MODULE).with_id("TutorialTransform")
    trainer = Trainer(module_file=TRAINER_MODULE,
                      examples=transform.outputs["transformed_examples"],
                      transform_graph=transform.outputs["transform_graph"], schema=schema,
                      train_args={"num_steps": 40}, eval_args={"num_steps": 5}
                      ).with_id("TutorialTrainer")
    context.run(transform)
    context.run(trainer)
    evaluator = Evaluator(examples=examples, model=trainer.outputs["model"],
                          eval_config=tutorial_config()).with_id("TutorialEvaluator")
    result, log = _run_logged(context, evaluator)
    return types.SimpleNamespace(context=context, examples=examples, trainer=trainer,
                                 model=trainer.outputs["model"], evaluator=evaluator,
                                 result=result, log=log)


@pytest.fixture(scope="module")
def answers(tutorial):
    """The eval split and the model's two signatures called on it by the test itself:
    ``tf.Example`` protos built here from the Parquet rows."""
    import pyarrow.parquet as pq
    import tensorflow as tf

    table = pq.read_table(tutorial.examples.get()[0].split_uri("eval"))
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    types_ = {field.name: field.type for field in table.schema}
    serialized = []
    for row in range(table.num_rows):
        feature = {}
        for name, values in columns.items():
            value = values[row]
            if value is None:
                continue
            kind = str(types_[name])
            if kind.startswith("int"):
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
            elif kind.startswith(("float", "double")):
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
            else:
                feature[name] = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[str(value).encode()]))
        serialized.append(tf.train.Example(
            features=tf.train.Features(feature=feature)).SerializeToString())
    loaded = tf.saved_model.load(os.path.join(tutorial.model.get()[0].uri, "Format-Serving"))
    examples = tf.constant(serialized)
    transformed = {k: v.numpy() for k, v in
                   loaded.signatures["transform_features"](examples=examples).items()}
    logits = loaded.signatures["serving_default"](examples=examples)["outputs"].numpy()
    return types.SimpleNamespace(frame=table.to_pandas(), transformed=transformed,
                                 logits=logits.reshape(-1))


def _overall(evaluation_artifact, slice_key=()):
    return evaluation_artifact.load().get_metrics_for_slice(slice_key)


def _value(metrics, name):
    value = metrics[name]
    return value["doubleValue"] if isinstance(value, dict) else value


def test_tutorial_eval_config_takes_the_label_from_transform_features(tutorial, answers):
    import toolkit

    evaluation = tutorial.evaluator.outputs["evaluation"].get()[0]
    label = answers.transformed["tips_xf"].reshape(-1)
    assert set(np.unique(label)) <= {0, 1}
    # TFMA's BinaryAccuracy: a prediction above 0.5 is positive, logits included
    hits = (answers.logits > 0.5).astype(int) == label
    overall = _overall(evaluation)
    assert _value(overall, "example_count") == len(label)
    assert _value(overall, "binary_accuracy") == pytest.approx(hits.mean(), abs=1e-9)
    hours = answers.frame["trip_start_hour"].to_numpy()
    for hour in np.unique(hours)[:5]:
        in_slice = hours == hour
        metrics = _overall(evaluation, (("trip_start_hour", int(hour)),))
        assert _value(metrics, "binary_accuracy") == pytest.approx(hits[in_slice].mean(),
                                                                   abs=1e-9)
    # the same numbers as toolkit.evaluate on a frame built here: the vectorized engine
    # evaluates logits as TFMA does (no fallback to TFMA)
    assert evaluation.properties["engine"] == "toolkit"
    frame = answers.frame.assign(tips_xf=label, prediction=answers.logits)
    with pytest.warns(UserWarning, match="look like logits"):
        expected = toolkit.evaluate(frame, tutorial_config(),
                                    rubber_stamp=True).get_metrics_for_slice(())
    assert _value(overall, "binary_accuracy") == pytest.approx(
        _value(expected, "binary_accuracy"), abs=1e-9)
    assert evaluation.properties["signature_name"] == "serving_default"
    assert "features from transform_features" in tutorial.log


def test_logits_are_evaluated_with_one_warning_in_the_log_and_on_the_artifact(tutorial):
    evaluation = tutorial.evaluator.outputs["evaluation"].get()[0]
    warnings = json.loads(evaluation.properties["warnings"])
    assert len(warnings) == 1
    assert "look like logits" in warnings[0] and "BinaryAccuracy" in warnings[0]
    assert "outside [0, 1]" in warnings[0] and "\n" not in warnings[0]
    assert tutorial.log.count("warning: predictions of Model") == 1
    # the warning survives a reload from the metadata store
    stored = [a for a in tutorial.context.store.artifacts() if a.id == evaluation.id]
    assert json.loads(stored[0].properties["warnings"]) == warnings


def test_tfma_reads_the_evaluation_and_its_validation(tutorial):
    import tensorflow_model_analysis as tfma

    uri = tutorial.evaluator.outputs["evaluation"].get()[0].uri
    result = tfma.load_eval_result(uri)
    overall = [metrics for key, metrics in result.slicing_metrics if key == ()]
    assert overall and "binary_accuracy" in overall[0][""][""]
    assert any(key and key[0][0] == "trip_start_hour" for key, _ in result.slicing_metrics)
    validation = tfma.load_validation_result(uri)
    assert isinstance(validation.validation_ok, bool)
    blessing = tutorial.evaluator.outputs["blessing"].get()[0]
    assert validation.validation_ok == bool(blessing.properties["blessed"])


def test_a_transformed_label_takes_precedence_over_the_raw_column_of_its_name(tutorial, answers):
    """``tips`` is the raw tip in dollars and, from transform_features, the big-tipper flag
    (as TFX's components_keras tutorial names its label): the flag is the label."""
    import tensorflow_model_analysis as tfma

    import toolkit
    from toolkit.components import Evaluator

    def config():
        return tfma.EvalConfig(
            model_specs=[tfma.ModelSpec(label_key="tips",
                                        preprocessing_function_names=["transform_features"])],
            metrics_specs=[tfma.MetricsSpec(metrics=[
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(class_name="MeanLabel")])])

    evaluator = Evaluator(examples=tutorial.examples, model=tutorial.model,
                          eval_config=config()).with_id("PrecedenceEvaluator")
    _, log = _run_logged(tutorial.context, evaluator)
    flag = answers.transformed["tips"].reshape(-1)
    raw = answers.frame["tips"].to_numpy(dtype=float)
    assert not np.allclose(np.nanmean(raw), flag.mean())
    overall = _overall(evaluator.outputs["evaluation"].get()[0])
    assert _value(overall, "mean_label") == pytest.approx(flag.mean(), abs=1e-9)
    frame = answers.frame.assign(tips=flag, prediction=answers.logits)
    expected = toolkit.evaluate(frame, config()).get_metrics_for_slice(())
    assert _value(overall, "mean_label") == pytest.approx(_value(expected, "mean_label"),
                                                          abs=1e-12)
    assert "take precedence over the raw column" in log and "tips" in log


def _error(context, component, component_id):
    from toolkit.errors import ComponentError

    with pytest.raises(ComponentError) as info:
        context.run(component.with_id(component_id))
    message = str(info.value)
    assert "\n" not in message
    assert context.executions(component_id)[-1]["state"] == "FAILED"
    return message


def test_a_missing_signature_is_one_line_listing_the_models_signatures(tutorial):
    from toolkit.components import Evaluator

    model_id = tutorial.model.get()[0].id
    missing = _error(tutorial.context, Evaluator(
        examples=tutorial.examples, model=tutorial.model,
        eval_config=tutorial_config(signature_name="serving_logits")), "NoSignatureEvaluator")
    assert missing.startswith(f"NoSignatureEvaluator: Model #{model_id} has no signature "
                              "'serving_logits' (the EvalConfig's model_spec signature_name)")
    assert "(it has serving_default, transform_features)" in missing
    no_function = _error(tutorial.context, Evaluator(
        examples=tutorial.examples, model=tutorial.model,
        eval_config=tutorial_config(preprocessing_function_names=["transformed_labels"])),
        "NoPreprocessingEvaluator")
    assert "has no signature 'transformed_labels'" in no_function
    assert "preprocessing_function_names" in no_function


def test_a_label_only_the_model_computes_asks_for_preprocessing_function_names(tutorial):
    from toolkit.components import Evaluator

    message = _error(tutorial.context, Evaluator(
        examples=tutorial.examples, model=tutorial.model,
        eval_config=tutorial_config(preprocessing_function_names=[])), "NoLabelEvaluator")
    assert message.startswith("NoLabelEvaluator: label_key 'tips_xf' is not a column of "
                              "Examples")
    assert "preprocessing_function_names" in message and "transform_graph=" in message


def test_the_pushed_model_and_the_model_open_as_in_the_tutorial(tutorial, tmp_path):
    import tensorflow as tf

    from toolkit.components import Pusher

    model_dir = os.path.join(tutorial.model.get()[0].uri, "Format-Serving")
    assert "saved_model.pb" in os.listdir(model_dir)
    pusher = Pusher(model=tutorial.model, push_destination={
        "filesystem": {"base_directory": str(tmp_path / "serving")}},
        allowed_root=str(tmp_path), require_blessing=False).with_id("TutorialPusher")
    tutorial.context.run(pusher)
    push_uri = pusher.outputs["pushed_model"].get()[0].uri
    model = tf.saved_model.load(push_uri)
    assert set(model.signatures) == {"serving_default", "transform_features"}


# -- class scores ----------------------------------------------------------------------------
CENTERS = (3.5, 11.5, 19.5)


@custom.component
def HourClassModel(model: custom.OutputArtifact[Model]):
    """Three class scores per trip from its start hour (softmax of minus the distance to
    3.5, 11.5 and 19.5), and a ``transform_features`` signature whose ``hour_class``
    (hour // 8) is the label."""
    import tensorflow as tf

    spec = {"trip_start_hour": tf.io.FixedLenFeature([1], tf.int64, default_value=[0])}
    centers = tf.constant([list(CENTERS)])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        hour = tf.cast(tf.io.parse_example(examples, spec)["trip_start_hour"], tf.float32)
        return {"scores": tf.nn.softmax(-tf.abs(hour - centers))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        hour = tf.io.parse_example(examples, spec)["trip_start_hour"]
        return {"hour_class": tf.reshape(hour // 8, [-1])}

    tf.saved_model.save(tf.Module(), os.path.join(model.uri, "Format-Serving"),
                        signatures={"serving_default": serve,
                                    "transform_features": transform_features})


@pytest.fixture(scope="module")
def hour_model(tutorial):
    component = HourClassModel().with_id("HourClassModel")
    tutorial.context.run(component)
    return component.outputs["model"]


def _class_config(*class_names):
    import tensorflow_model_analysis as tfma

    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="hour_class",
                                    preprocessing_function_names=["transform_features"])],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name=name)
                                                 for name in ("ExampleCount", *class_names)])])


def test_class_scores_go_to_the_engine_for_multi_class_metrics(tutorial, answers, hour_model):
    from toolkit.components import Evaluator

    evaluator = Evaluator(examples=tutorial.examples, model=hour_model,
                          eval_config=_class_config("SparseCategoricalAccuracy")
                          ).with_id("MultiClassEvaluator")
    tutorial.context.run(evaluator)
    hours = answers.frame["trip_start_hour"].fillna(0).to_numpy(dtype=float)
    predicted = np.argmin(np.abs(hours[:, None] - np.array(CENTERS)[None, :]), axis=1)
    expected = (predicted == hours // 8).mean()
    overall = _overall(evaluator.outputs["evaluation"].get()[0])
    assert _value(overall, "sparse_categorical_accuracy") == pytest.approx(expected, abs=1e-9)


def test_class_scores_without_multi_class_metrics_are_refused_naming_them(tutorial, hour_model):
    from toolkit.components import Evaluator

    message = _error(tutorial.context, Evaluator(
        examples=tutorial.examples, model=hour_model, eval_config=_class_config("AUC")),
        "ClassScoresAucEvaluator")
    assert "output 'scores' has 3 scores per example" in message
    assert "SparseCategoricalAccuracy" in message and "binarize" in message
