"""The model half of the taxi pipeline through the public API: transform, train,
infra-validate, push, infer; TFX-style module files; bad input.

One session-scoped pipeline (few training steps) is shared by the assertions.
"""
from __future__ import annotations

import glob
import json
import os
import textwrap

import numpy as np
import pandas as pd
import pytest

from datapaths import DATA, REPO, TAXI_CSV
from toolkit.artifacts import Model, ModelBlessing
from toolkit.custom import InputArtifact, OutputArtifact, component

TRANSFORM_MODULE = os.path.join(REPO, "notebooks", "taxi_transform.py")
TRAINER_MODULE = os.path.join(REPO, "notebooks", "taxi_trainer.py")


@component
def Bless(model: InputArtifact[Model], blessing: OutputArtifact[ModelBlessing], blessed: int = 1):
    """Stands in for an Evaluator: blesses (or not) the model it is given."""
    blessing.properties["blessed"] = blessed
    blessing.properties["current_model_id"] = model.id
    open(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w").close()


@pytest.fixture(scope="session")
def model_pipeline(taxi_pipeline, tmp_path_factory):
    """Transform, Trainer, InfraValidator, a blessing and a Pusher on the taxi data."""
    import types

    from toolkit.components import InfraValidator, Pusher, Trainer, Transform

    from toolkit import InteractiveContext

    # the data pipeline's root and artifacts, recorded under a pipeline of its own so the
    # data tests' execution counts stay theirs
    context = InteractiveContext(pipeline_name="taxi_model", pipeline_root=taxi_pipeline.root)
    examples = taxi_pipeline.example_gen.outputs["examples"]
    schema = taxi_pipeline.schema_gen.outputs["schema"]
    transform = Transform(examples=examples, schema=schema, module_file=TRANSFORM_MODULE)
    trainer = Trainer(module_file=TRAINER_MODULE,
                      examples=transform.outputs["transformed_examples"],
                      transform_graph=transform.outputs["transform_graph"], schema=schema,
                      train_args={"num_steps": 60}, eval_args={"num_steps": 5})
    infra = InfraValidator(model=trainer.outputs["model"], examples=examples,
                           request_spec={"num_examples": 30})
    bless = Bless(model=trainer.outputs["model"])
    serving = tmp_path_factory.mktemp("serving")
    destination = str(serving / "taxi")
    pusher = Pusher(model=trainer.outputs["model"], model_blessing=bless.outputs["blessing"],
                    infra_blessing=infra.outputs["blessing"],
                    push_destination={"filesystem": {"base_directory": destination}},
                    allowed_root=str(serving))
    results = {c.id: context.run(c) for c in (transform, trainer, infra, bless, pusher)}
    return types.SimpleNamespace(
        context=context, examples=examples, schema=schema, transform=transform,
        trainer=trainer, infra=infra, bless=bless, pusher=pusher, results=results,
        serving=str(serving), destination=destination, taxi=taxi_pipeline)


def _serving_predictions(model_dir: str, table, schema=None) -> np.ndarray:
    import tensorflow as tf

    from toolkit.components._model_io import serialize_examples

    loaded = tf.saved_model.load(model_dir)
    serialized = serialize_examples(table, schema)
    answer = loaded.signatures["serving_default"](examples=tf.constant(serialized))
    return answer["outputs"].numpy().reshape(-1)


# -- Transform -----------------------------------------------------------------------------
def test_transform_writes_tft_layout_and_every_split(model_pipeline):
    import pyarrow.parquet as pq

    graph = model_pipeline.transform.outputs["transform_graph"].get()[0]
    for folder in ("transform_fn", "transformed_metadata", "metadata"):
        assert os.path.isdir(os.path.join(graph.uri, folder)), folder
    transformed = model_pipeline.transform.outputs["transformed_examples"].get()[0]
    raw = model_pipeline.examples.get()[0]
    assert transformed.split_names == ["train", "eval"]
    assert transformed.payload_format == "FORMAT_PARQUET"
    assert json.loads(transformed.properties["row_counts"]) == json.loads(
        raw.properties["row_counts"])
    table = pq.read_table(transformed.split_uri("train")).to_pandas()
    assert {"fare_xf", "company_xf", "pickup_latitude_xf", "big_tipper"} <= set(table.columns)
    assert abs(table["fare_xf"].mean()) < 1e-3 and table["fare_xf"].std() == pytest.approx(1, 0.01)
    raw_train = pq.read_table(raw.split_uri("train")).to_pandas()
    tips, fare = (raw_train[c].to_numpy(np.float32) for c in ("tips", "fare"))
    expected = (tips > np.float32(0.2) * fare).mean()  # tf.Example floats are float32
    assert table["big_tipper"].mean() == pytest.approx(expected, abs=1e-12)


def test_transform_output_is_readable_by_tft(model_pipeline):
    import tensorflow_transform as tft

    graph = model_pipeline.transform.outputs["transform_graph"].get()[0]
    output = tft.TFTransformOutput(graph.uri)
    assert "tips" in output.raw_feature_spec()
    assert output.vocabulary_size_by_name("payment_type") >= 4


# -- Trainer -------------------------------------------------------------------------------
def test_trainer_writes_savedmodel_with_raw_signatures_and_logs(model_pipeline):
    model = model_pipeline.trainer.outputs["model"].get()[0]
    assert os.path.isfile(os.path.join(model.uri, "Format-Serving", "saved_model.pb"))
    signatures = json.loads(model.properties["signatures"])
    assert {"serving_default", "serving_raw", "transform_features"} <= set(signatures)
    run = model_pipeline.trainer.outputs["model_run"].get()[0]
    assert glob.glob(os.path.join(run.uri, "**", "events.out.tfevents.*"), recursive=True)


def test_pushed_model_answers_raw_examples_like_training_saw_them(model_pipeline):
    """The skew check: each raw example through the pushed model's serving signature gives the
    prediction the trained model gives on that example's row of the Transform's output.

    The Transform writes its rows in no particular order, so each raw example is matched
    to its row by its transformed features (the model's ``transform_features`` signature);
    the matched rows must hold the same features, then the same prediction."""
    import pyarrow.parquet as pq
    import tensorflow as tf

    from toolkit.components._model_io import serialize_examples

    pushed = model_pipeline.pusher.outputs["pushed_model"].get()[0]
    version_dir = os.path.join(pushed.properties["pushed_destination"],
                               pushed.properties["pushed_version"])
    raw = pq.read_table(model_pipeline.examples.get()[0].split_uri("eval"))
    from_raw = _serving_predictions(version_dir, raw)
    transformed = pq.read_table(model_pipeline.transform.outputs["transformed_examples"]
                                .get()[0].split_uri("eval"))
    loaded = tf.saved_model.load(version_dir)
    signature = loaded.signatures["predict_transformed"]
    keys = sorted(signature.structured_input_signature[1])
    inputs = {k: tf.constant(transformed.column(k).to_numpy()) for k in keys}
    from_transformed = signature(**inputs)["outputs"].numpy().reshape(-1)
    assert len(from_raw) == len(from_transformed) == raw.num_rows

    served = loaded.signatures["transform_features"](examples=tf.constant(serialize_examples(raw)))
    by_raw_row = np.column_stack([served[k].numpy().reshape(-1).astype(float) for k in keys])
    by_artifact_row = np.column_stack([transformed.column(k).to_numpy().astype(float) for k in keys])
    raw_order = np.lexsort(np.round(by_raw_row, 5).T[::-1])
    artifact_order = np.lexsort(np.round(by_artifact_row, 5).T[::-1])
    np.testing.assert_allclose(by_raw_row[raw_order], by_artifact_row[artifact_order], rtol=0, atol=1e-5)
    np.testing.assert_allclose(from_raw[raw_order], from_transformed[artifact_order], rtol=0, atol=1e-6)
    assert 0.02 < from_raw.mean() < 0.6  # a model, not a constant


def test_raw_feature_signature_matches_serialized_examples(model_pipeline):
    import pyarrow.parquet as pq
    import tensorflow as tf

    model = model_pipeline.trainer.outputs["model"].get()[0]
    model_dir = os.path.join(model.uri, "Format-Serving")
    frame = pq.read_table(model_pipeline.examples.get()[0].split_uri("eval")).to_pandas()
    frame = frame.dropna(subset=[c for c in frame.columns if c != "pickup_census_tract"
                                 and frame[c].dtype != object]).head(50)
    signature = tf.saved_model.load(model_dir).signatures["serving_raw"]
    inputs = {}
    for key, spec in signature.structured_input_signature[1].items():
        column = frame[key]
        if spec.dtype == tf.string:
            inputs[key] = tf.constant(column.fillna("").astype(str).to_numpy())
        elif spec.dtype.is_floating:
            inputs[key] = tf.constant(column.astype("float32").to_numpy())
        else:
            inputs[key] = tf.constant(column.fillna(0).astype("int64").to_numpy())
    import pyarrow as pa

    from_raw = signature(**inputs)["outputs"].numpy().reshape(-1)
    schema = model_pipeline.schema.get()[0].load()
    serialized = _serving_predictions(model_dir, pa.Table.from_pandas(frame, preserve_index=False),
                                      schema)
    np.testing.assert_allclose(from_raw, serialized, atol=1e-6)


def test_rerun_is_cached(model_pipeline):
    context = model_pipeline.context
    for component in (model_pipeline.transform, model_pipeline.trainer, model_pipeline.infra,
                      model_pipeline.bless, model_pipeline.pusher):
        assert context.run(component).cached, component.id


# -- InfraValidator ------------------------------------------------------------------------
def test_infra_validator_blesses_and_measures(model_pipeline):
    blessing = model_pipeline.infra.outputs["blessing"].get()[0]
    assert blessing.properties["blessed"] == 1
    for key in ("load_time_s", "latency_p50_ms", "latency_p99_ms", "batch_latency_ms"):
        assert blessing.properties[key] > 0, key
    assert blessing.properties["num_requests"] == 30
    assert blessing.properties["latency_p99_ms"] >= blessing.properties["latency_p50_ms"]
    assert os.path.isfile(os.path.join(blessing.uri, "INFRA_BLESSED"))
    with open(os.path.join(blessing.uri, "infra_validation.json")) as handle:
        report = json.load(handle)
    assert report["outputs"]["serving_default"]["outputs"]["shape"] == [30, 1]


@component
def BrokenModel(model: OutputArtifact[Model]):
    """A 'model' whose SavedModel file is garbage."""
    folder = os.path.join(model.uri, "Format-Serving")
    os.makedirs(folder)
    with open(os.path.join(folder, "saved_model.pb"), "wb") as handle:
        handle.write(b"this is not a protocol buffer")


def test_model_that_does_not_load_is_not_blessed_nor_pushed(model_pipeline):
    from toolkit.components import InfraValidator, Pusher

    context = model_pipeline.context
    broken = BrokenModel()
    context.run(broken)
    infra = InfraValidator(model=broken.outputs["model"],
                           examples=model_pipeline.examples).with_id("InfraValidatorBroken")
    context.run(infra)
    blessing = infra.outputs["blessing"].get()[0]
    assert blessing.properties["blessed"] == 0
    assert "did not load" in blessing.properties["reason"]
    assert os.path.isfile(os.path.join(blessing.uri, "INFRA_NOT_BLESSED"))
    before = sorted(os.listdir(model_pipeline.destination))
    pusher = Pusher(model=broken.outputs["model"], infra_blessing=infra.outputs["blessing"],
                    push_destination=model_pipeline.destination,
                    allowed_root=model_pipeline.serving).with_id("PusherBroken")
    result = context.run(pusher)
    assert pusher.outputs["pushed_model"].get()[0].properties["pushed"] == 0
    assert "did not load" in result.gate_failure
    assert sorted(os.listdir(model_pipeline.destination)) == before


# -- Pusher --------------------------------------------------------------------------------
def test_push_writes_a_new_version_each_time_and_keeps_old_ones(model_pipeline):
    from toolkit.components.pusher import versions

    first = model_pipeline.pusher.outputs["pushed_model"].get()[0]
    assert first.properties["pushed"] == 1
    assert first.properties["pushed_destination"] == os.path.realpath(model_pipeline.destination)
    again = model_pipeline.context.run(model_pipeline.pusher, enable_cache=False)
    second = again.outputs["pushed_model"][0]
    assert int(second.properties["pushed_version"]) > int(first.properties["pushed_version"])
    found = versions(model_pipeline.destination)
    assert int(first.properties["pushed_version"]) in found
    assert int(second.properties["pushed_version"]) in found
    for version in found:
        assert os.path.isfile(os.path.join(model_pipeline.destination, str(version),
                                           "saved_model.pb"))
    hidden = [n for n in os.listdir(model_pipeline.destination) if n.startswith(".")]
    assert hidden == []


def test_unblessed_model_is_not_pushed_and_gate_stops_production(model_pipeline):
    import toolkit
    from toolkit.components import Pusher
    from toolkit.errors import GateError

    context = model_pipeline.context
    refuse = Bless(model=model_pipeline.trainer.outputs["model"], blessed=0).with_id("Refuse")
    context.run(refuse)
    before = sorted(os.listdir(model_pipeline.destination))
    pusher = Pusher(model=model_pipeline.trainer.outputs["model"],
                    model_blessing=refuse.outputs["blessing"],
                    push_destination=model_pipeline.destination,
                    allowed_root=model_pipeline.serving).with_id("PusherUnblessed")
    result = context.run(pusher)
    pushed = result.outputs["pushed_model"][0]
    assert pushed.properties["pushed"] == 0 and pushed.properties["pushed_version"] == ""
    assert "does not bless" in result.gate_failure and "GATE" in repr(result)
    assert sorted(os.listdir(model_pipeline.destination)) == before
    toolkit.set_mode("production")
    try:
        with pytest.raises(GateError, match="PusherUnblessed: not pushed: model_blessing"):
            context.run(pusher)
    finally:
        toolkit.set_mode(None)


def test_push_without_any_blessing_is_refused(model_pipeline):
    from toolkit.components import Pusher
    from toolkit.errors import ComponentError

    context = model_pipeline.context
    pusher = Pusher(model=model_pipeline.trainer.outputs["model"],
                    push_destination=model_pipeline.destination,
                    allowed_root=model_pipeline.serving).with_id("PusherNoBlessing")
    before = sorted(os.listdir(model_pipeline.destination))
    with pytest.raises(ComponentError, match="refusing to push.*no model_blessing") as info:
        context.run(pusher)
    assert "\n" not in str(info.value)
    assert context.executions("PusherNoBlessing")[-1]["state"] == "FAILED"
    assert not [a for a in context.store.artifacts() if a.producer == "PusherNoBlessing"]
    assert sorted(os.listdir(model_pipeline.destination)) == before


def test_destination_escaping_the_root_is_refused(model_pipeline, tmp_path):
    from toolkit.components import Pusher
    from toolkit.errors import ComponentError

    outside = tmp_path / "outside"
    outside.mkdir()
    link = os.path.join(model_pipeline.serving, "sneaky")
    os.symlink(outside, link)
    for destination in (link, os.path.join(model_pipeline.serving, "..", "elsewhere")):
        pusher = Pusher(model=model_pipeline.trainer.outputs["model"],
                        model_blessing=model_pipeline.bless.outputs["blessing"],
                        push_destination=destination,
                        allowed_root=model_pipeline.serving).with_id("PusherEscape")
        with pytest.raises(ComponentError, match="outside the allowed root"):
            model_pipeline.context.run(pusher)
    assert os.listdir(outside) == []


# -- resolver ------------------------------------------------------------------------------
def test_latest_blessed_model_resolves_the_blessed_model(model_pipeline):
    from toolkit.components import latest_blessed_model

    context = model_pipeline.context
    model = model_pipeline.trainer.outputs["model"].get()[0]
    channel = latest_blessed_model(context)
    assert [a.id for a in channel.get()] == [model.id]
    assert channel.type is Model
    candidate = model_pipeline.trainer.outputs["model"]
    assert latest_blessed_model(context, exclude=candidate).get() == []
    assert latest_blessed_model(context, producer="NoSuchEvaluator").get() == []


# -- BulkInferrer --------------------------------------------------------------------------
def test_bulk_inferrer_writes_features_beside_predictions(model_pipeline):
    import pyarrow.parquet as pq

    from toolkit.components import BulkInferrer

    inferrer = BulkInferrer(examples=model_pipeline.examples,
                            model=model_pipeline.trainer.outputs["model"],
                            model_blessing=model_pipeline.bless.outputs["blessing"],
                            data_spec={"example_splits": ["eval"]})
    model_pipeline.context.run(inferrer)
    result = inferrer.outputs["inference_result"].get()[0]
    assert result.split_names == ["eval"]
    table = pq.read_table(os.path.join(result.split_uri("eval"), "data.parquet"))
    raw = pq.read_table(model_pipeline.examples.get()[0].split_uri("eval"))
    assert table.column_names == raw.column_names + ["prediction"]
    model = model_pipeline.trainer.outputs["model"].get()[0]
    expected = _serving_predictions(os.path.join(model.uri, "Format-Serving"), raw)
    np.testing.assert_allclose(table.column("prediction").to_numpy(), expected, atol=1e-6)


def test_bulk_inferrer_skips_an_unblessed_model(model_pipeline):
    from toolkit.components import BulkInferrer

    context = model_pipeline.context
    refuse = Bless(model=model_pipeline.trainer.outputs["model"], blessed=0).with_id("Refuse")
    context.run(refuse)
    inferrer = BulkInferrer(examples=model_pipeline.examples,
                            model=model_pipeline.trainer.outputs["model"],
                            model_blessing=refuse.outputs["blessing"]).with_id("InferUnblessed")
    result = context.run(inferrer)
    assert result.outputs["inference_result"][0].split_names == []
    assert "does not bless" in result.gate_failure


# -- TFX-style module files ----------------------------------------------------------------
PENGUIN_TFX_MODULE = '''
"""Penguin classifier, a Trainer module file written as the TFX tutorials write them."""
from typing import List

import tensorflow as tf
from tensorflow import keras
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import schema_utils
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

_FEATURE_KEYS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
_LABEL_KEY = "species"
_TRAIN_BATCH_SIZE = 20
_EVAL_BATCH_SIZE = 10

_FEATURE_SPEC = {
    **{feature: tf.io.FixedLenFeature(shape=[1], dtype=tf.float32) for feature in _FEATURE_KEYS},
    _LABEL_KEY: tf.io.FixedLenFeature(shape=[1], dtype=tf.int64),
}


def _input_fn(file_pattern: List[str], data_accessor: tfx.components.DataAccessor,
              schema: schema_pb2.Schema, batch_size: int = 200) -> tf.data.Dataset:
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=_LABEL_KEY),
        schema=schema).repeat()


def _build_keras_model() -> tf.keras.Model:
    inputs = [keras.layers.Input(shape=(1,), name=f) for f in _FEATURE_KEYS]
    d = keras.layers.concatenate(inputs)
    d = keras.layers.BatchNormalization()(d)
    for _ in range(2):
        d = keras.layers.Dense(8, activation="relu")(d)
    outputs = keras.layers.Dense(3)(d)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return model


def run_fn(fn_args: tfx.components.FnArgs):
    schema = schema_utils.schema_from_feature_spec(_FEATURE_SPEC)
    train_dataset = _input_fn(fn_args.train_files, fn_args.data_accessor, schema,
                              batch_size=_TRAIN_BATCH_SIZE)
    eval_dataset = _input_fn(fn_args.eval_files, fn_args.data_accessor, schema,
                             batch_size=_EVAL_BATCH_SIZE)
    model = _build_keras_model()
    model.fit(train_dataset, steps_per_epoch=fn_args.train_steps,
              validation_data=eval_dataset, validation_steps=fn_args.eval_steps)
    model.save(fn_args.serving_model_dir, save_format="tf")
'''

PENGUIN_KERAS3_MODULE = '''
import keras
from tensorflow_transform.tf_metadata import schema_utils
import tensorflow as tf
from tfx_bsl.public import tfxio

FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
SPEC = {**{f: tf.io.FixedLenFeature([], tf.float32) for f in FEATURES},
        "species": tf.io.FixedLenFeature([], tf.int64)}


def run_fn(fn_args):
    schema = schema_utils.schema_from_feature_spec(SPEC)
    options = tfxio.TensorFlowDatasetOptions(batch_size=16, label_key="species")
    train = fn_args.data_accessor.tf_dataset_factory(fn_args.train_files, options, schema)
    inputs = {f: keras.Input(shape=(), name=f) for f in FEATURES}
    x = keras.layers.Concatenate()([keras.layers.Reshape((1,))(inputs[f]) for f in FEATURES])
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(train, steps_per_epoch=fn_args.train_steps, shuffle=False, verbose=2)
    model.export(fn_args.serving_model_dir)
'''


@pytest.fixture(scope="session")
def penguins(tmp_path_factory):
    """Penguins as the TFX tutorial uses them: numeric features, species as 0/1/2."""
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen

    folder = tmp_path_factory.mktemp("penguins")
    frame = pd.read_csv(os.path.join(DATA, "penguins", "penguins.csv")).dropna(
        subset=["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"])
    frame["species"] = frame["species"].map({"Adelie": 0, "Chinstrap": 1, "Gentoo": 2})
    frame = frame[["species", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                   "body_mass_g"]]
    (folder / "data").mkdir()
    frame.to_csv(folder / "data" / "penguins.csv", index=False)
    context = InteractiveContext(pipeline_name="penguins", pipeline_root=str(folder / "root"))
    example_gen = CsvExampleGen(input_base=str(folder / "data"))
    context.run(example_gen)
    return context, example_gen, folder


def test_tfx_tutorial_module_file_runs_unchanged(penguins):
    from toolkit.components import Trainer

    context, example_gen, folder = penguins
    module = folder / "penguin_trainer.py"
    module.write_text(PENGUIN_TFX_MODULE)
    trainer = Trainer(module_file=str(module), examples=example_gen.outputs["examples"],
                      train_args={"num_steps": 20}, eval_args={"num_steps": 5})
    result = context.run(trainer)
    model = result.outputs["model"][0]
    # model.save(..., save_format="tf") only exists in Keras 2: tf.keras is tf_keras here
    assert "serving_default" in json.loads(model.properties["signatures"])


def test_keras3_module_and_feature_signature_inference(penguins):
    import pyarrow.parquet as pq

    from toolkit.components import BulkInferrer, Trainer

    context, example_gen, folder = penguins
    module = folder / "keras3_trainer.py"
    module.write_text(PENGUIN_KERAS3_MODULE)
    trainer = Trainer(module_file=str(module), examples=example_gen.outputs["examples"],
                      train_args={"num_steps": 20}).with_id("Keras3Trainer")
    context.run(trainer)
    inferrer = BulkInferrer(examples=example_gen.outputs["examples"],
                            model=trainer.outputs["model"], data_spec={"example_splits": ["eval"]})
    context.run(inferrer)
    result = inferrer.outputs["inference_result"].get()[0]
    table = pq.read_table(result.split_uri("eval")).to_pandas()
    assert set(table["prediction"]) <= {0, 1, 2}
    assert all(len(s) == 3 and abs(sum(s) - 1) < 1e-4 for s in table["scores"])


# -- bad input ------------------------------------------------------------------------------
def _fails(context, component, component_id: str) -> str:
    from toolkit.errors import ComponentError

    with pytest.raises(ComponentError) as info:
        context.run(component.with_id(component_id))
    message = str(info.value)
    assert "\n" not in message and info.value.__cause__ is None
    assert context.executions(component_id)[-1]["state"] == "FAILED"
    assert not [a for a in context.store.artifacts() if a.producer == component_id]
    folder = os.path.join(context.pipeline_root, component_id)
    leftovers = [d for _, dirs, _ in os.walk(folder) for d in dirs
                 if d.startswith(".staging") or d.isdigit()]
    assert leftovers == []
    return message


def _module(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_bad_transform_modules(model_pipeline, tmp_path):
    from toolkit.components import Transform

    context = model_pipeline.context

    def transform(path):
        return Transform(examples=model_pipeline.examples, schema=model_pipeline.schema,
                         module_file=path)

    message = _fails(context, transform(str(tmp_path / "nowhere.py")), "BadTransformMissing")
    assert "nowhere.py does not exist" in message
    path = _module(tmp_path, "broken.py", "def preprocessing_fn(inputs)\n    return inputs\n")
    message = _fails(context, transform(path), "BadTransformSyntax")
    assert "broken.py, line 1: SyntaxError" in message
    path = _module(tmp_path, "other.py", "def preprocess(inputs):\n    return inputs\n")
    message = _fails(context, transform(path), "BadTransformNoFn")
    assert "other.py: no function preprocessing_fn" in message and "preprocess" in message
    path = _module(tmp_path, "raises.py", """
        def preprocessing_fn(inputs):
            scale = 0
            return {"x": inputs["fare"] / _check(scale)}

        def _check(scale):
            raise ValueError("scale must be positive")
    """)
    message = _fails(context, transform(path), "BadTransformRaises")
    assert ("raises.py: preprocessing_fn raised ValueError: scale must be positive "
            "(raises.py, line 7, in _check)") in message


def test_label_column_missing_from_the_data(tmp_path):
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, SchemaGen, StatisticsGen, Transform

    data = tmp_path / "data"
    data.mkdir()
    frame = pd.read_csv(TAXI_CSV, nrows=300)
    frame.drop(columns=["tips"]).to_csv(data / "trips.csv", index=False)
    context = InteractiveContext(pipeline_name="nolabel", pipeline_root=str(tmp_path / "root"))
    example_gen = CsvExampleGen(input_base=str(data))
    statistics = StatisticsGen(examples=example_gen.outputs["examples"])
    schema = SchemaGen(statistics=statistics.outputs["statistics"])
    for c in (example_gen, statistics, schema):
        context.run(c)
    transform = Transform(examples=example_gen.outputs["examples"],
                          schema=schema.outputs["schema"], module_file=TRANSFORM_MODULE)
    message = _fails(context, transform, "Transform")
    assert "taxi_transform.py: preprocessing_fn reads column 'tips'" in message
    assert "the examples do not have" in message


def test_bad_trainer_modules(model_pipeline, tmp_path):
    from toolkit.components import Trainer

    context = model_pipeline.context

    def trainer(path, **kwargs):
        return Trainer(module_file=path, examples=model_pipeline.trainer.inputs["examples"],
                       transform_graph=model_pipeline.trainer.inputs["transform_graph"],
                       train_args={"num_steps": 2}, **kwargs)

    message = _fails(context, trainer(str(tmp_path / "absent.py")), "BadTrainerMissing")
    assert "absent.py does not exist" in message
    path = _module(tmp_path, "no_run.py", "def trainer_fn(a, b):\n    pass\n")
    message = _fails(context, trainer(path), "BadTrainerNoFn")
    assert "no_run.py: no function run_fn" in message and "trainer_fn" in message
    path = _module(tmp_path, "boom.py", """
        def run_fn(fn_args):
            steps = fn_args.train_steps
            raise ValueError(f"cannot train for {steps} steps")
    """)
    message = _fails(context, trainer(path), "BadTrainerRaises")
    assert ("boom.py: run_fn raised ValueError: cannot train for 2 steps "
            "(boom.py, line 4, in run_fn)") in message
    path = _module(tmp_path, "lazy.py", """
        def run_fn(fn_args):
            print("trained, honest")
    """)
    message = _fails(context, trainer(path), "BadTrainerNoModel")
    assert "lazy.py: run_fn returned without saving a SavedModel" in message
    path = _module(tmp_path, "wrong_label.py", """
        from tfx_bsl.public import tfxio

        def run_fn(fn_args):
            options = tfxio.TensorFlowDatasetOptions(batch_size=8, label_key="tip_pct")
            fn_args.data_accessor.tf_dataset_factory(fn_args.train_files, options)
    """)
    message = _fails(context, trainer(path), "BadTrainerLabel")
    assert "wrong_label.py: run_fn: label_key 'tip_pct' is not a column" in message
