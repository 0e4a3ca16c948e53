"""A three-class Keras penguin classifier: the Trainer module file of ``penguins.ipynb``.

Written as a TFX module file: ``run_fn(fn_args)`` is TFX's contract, the training data
comes from ``fn_args.data_accessor.tf_dataset_factory`` (which reads the transformed
examples, TFRecord or Parquet) and the module imports ``tfx`` as TFX's penguin examples
do; the toolkit supplies those names while the Trainer runs it.

The model takes the four scaled measures made by ``penguin_transform.py`` and returns
three class probabilities (softmax), in the class-id order of
``penguin_transform.SPECIES``. It is saved with two signatures, each taking serialized
``tf.Example``s of raw penguins:

- ``serving_default``: ``{"outputs": probabilities}`` of shape ``[batch, 3]``; only the
  four measures are read, so a client needs to send nothing else, and the transform
  graph scales them exactly as in training;
- ``transform_features``: every transformed feature, the label ``species_xf`` included,
  for the Evaluator's ``preprocessing_function_names=["transform_features"]``.
"""
from typing import List

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

NUMERIC_FEATURE_KEYS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
FEATURE_KEYS = [key + "_xf" for key in NUMERIC_FEATURE_KEYS]
LABEL_KEY = "species_xf"
NUM_CLASSES = 3
TRAIN_BATCH_SIZE = 20
EVAL_BATCH_SIZE = 10
LEARNING_RATE = 0.01


def _input_fn(file_pattern: List[str], data_accessor: tfx.components.DataAccessor,
              tf_transform_output: tft.TFTransformOutput, batch_size: int) -> tf.data.Dataset:
    """Repeated batches of (scaled measures, class id) from the transformed examples."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY),
        tf_transform_output.transformed_metadata.schema)
    return dataset.map(lambda features, label: (
        {key: features[key] for key in FEATURE_KEYS}, label)).repeat()


def _build_keras_model() -> tf.keras.Model:
    inputs = [tf.keras.layers.Input(shape=(1,), name=key, dtype=tf.float32)
              for key in FEATURE_KEYS]
    hidden = tf.keras.layers.concatenate(inputs)
    for units in (8, 8):
        hidden = tf.keras.layers.Dense(units, activation="relu")(hidden)
    outputs = tf.keras.layers.Dense(NUM_CLASSES, activation="softmax")(hidden)
    model = tf.keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=tf.keras.optimizers.Adam(LEARNING_RATE),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])
    return model


def _serving_signature(model, tf_transform_output):
    """Serialized raw tf.Examples in, class probabilities out."""
    model.tft_layer_serving = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    measures_spec = {key: raw_spec[key] for key in NUMERIC_FEATURE_KEYS}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string,
                                                name="examples")])
    def serve(serialized_examples):
        raw = tf.io.parse_example(serialized_examples, measures_spec)
        transformed = model.tft_layer_serving(raw)
        return {"outputs": model({key: transformed[key] for key in FEATURE_KEYS})}

    return serve


def _transform_features_signature(model, tf_transform_output):
    """Serialized raw tf.Examples in, every transformed feature (the label too) out."""
    model.tft_layer_eval = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string,
                                                name="examples")])
    def transform_features(serialized_examples):
        return model.tft_layer_eval(tf.io.parse_example(serialized_examples, raw_spec))

    return transform_features


def run_fn(fn_args: tfx.components.FnArgs):
    """Called by the Trainer: train on the train split, check on eval, save the model."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train_dataset = _input_fn(fn_args.train_files, fn_args.data_accessor,
                              tf_transform_output, TRAIN_BATCH_SIZE)
    eval_dataset = _input_fn(fn_args.eval_files, fn_args.data_accessor,
                             tf_transform_output, EVAL_BATCH_SIZE)
    tf.keras.utils.set_random_seed(0)  # the same weights for the same data and steps
    model = _build_keras_model()
    model.fit(train_dataset, steps_per_epoch=fn_args.train_steps,
              validation_data=eval_dataset, validation_steps=fn_args.eval_steps, verbose=2)
    signatures = {
        "serving_default": _serving_signature(model, tf_transform_output),
        "transform_features": _transform_features_signature(model, tf_transform_output),
    }
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)
