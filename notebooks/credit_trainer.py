"""A Keras logistic regression of *bad* credit risk, as a TFX Trainer module file.

The Trainer calls ``run_fn(fn_args)``. The positive class is a **bad** credit risk
(``bad_risk == 1``): the model's output is the probability that the applicant will
not repay, and an application scoring above the decision threshold would be
refused. So, at a threshold,

- a *false positive* is a creditworthy applicant the model would refuse, and the
  false positive rate (FPR) is the share of good applicants refused;
- a *false negative* is a bad risk the model would accept, and the false negative
  rate (FNR) is the share of bad risks accepted.

No Transform is needed: the few statistics the model needs (each categorical
feature's vocabulary, each numeric feature's mean and standard deviation) are
computed from the train split here, and the same encoding is compiled into the
serving signature, so the served model takes *raw* applications:

- ``serving_default``: serialized ``tf.Example`` protos (input ``examples``),
  returning ``{"outputs": probability of bad credit risk}``, shape ``[batch, 1]``.

The protected attributes ``sex`` and ``age`` (and ``age_group``, made from it) are
not model inputs. Leaving them out does not make the model fair: other features
(housing, savings, the loan's duration) correlate with them, which is why the
Evaluator measures error rates per slice.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tfx_bsl.public import tfxio

LABEL_KEY = "bad_risk"
CATEGORICAL_FEATURES = ("checking_account", "saving_accounts", "housing", "purpose")
NUMERIC_FEATURES = ("credit_amount", "duration", "job")
TRAIN_BATCH_SIZE = 64
EVAL_BATCH_SIZE = 256
SEED = 7


class Encoding:
    """One-hot categoricals and standardized numerics, as constants learned on train data.

    An unknown category encodes as all zeros; the same graph serves training and
    serving, so both see exactly the same inputs.
    """

    def __init__(self, vocabularies: dict[str, list[str]], means: dict[str, float],
                 stds: dict[str, float]):
        self.vocabularies = vocabularies
        self.means = means
        self.stds = stds

    @property
    def width(self) -> int:
        return sum(len(v) for v in self.vocabularies.values()) + len(self.means)

    def __call__(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """``[batch, width]`` float32 model inputs from raw feature tensors of shape ``[batch]``."""
        parts = []
        for key in CATEGORICAL_FEATURES:
            vocabulary = tf.constant(self.vocabularies[key])
            value = tf.reshape(features[key], [-1, 1])
            parts.append(tf.cast(tf.equal(value, vocabulary[tf.newaxis, :]), tf.float32))
        for key in NUMERIC_FEATURES:
            value = tf.reshape(tf.cast(features[key], tf.float32), [-1, 1])
            parts.append((value - self.means[key]) / self.stds[key])
        return tf.concat(parts, axis=1)


def _dataset(fn_args, files: list[str], batch_size: int, num_epochs: int | None = None):
    """Batches of (raw features, label) from the data accessor."""
    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY,
                                             num_epochs=num_epochs, shuffle=num_epochs is None,
                                             shuffle_seed=SEED)
    return fn_args.data_accessor.tf_dataset_factory(files, options, fn_args.schema_path)


def _dense(value: Any) -> np.ndarray:
    if isinstance(value, tf.SparseTensor):
        value = tf.sparse.to_dense(value)
    return np.asarray(value).reshape(-1)


def learn_encoding(fn_args) -> Encoding:
    """Vocabularies, means and standard deviations from one pass over the train split."""
    columns: dict[str, list[np.ndarray]] = {k: [] for k in CATEGORICAL_FEATURES + NUMERIC_FEATURES}
    for features, _ in _dataset(fn_args, fn_args.train_files, 1024, num_epochs=1):
        for key in columns:
            columns[key].append(_dense(features[key]))
    values = {k: np.concatenate(v) for k, v in columns.items()}
    vocabularies = {k: sorted({v.decode() for v in values[k]}) for k in CATEGORICAL_FEATURES}
    means = {k: float(values[k].astype(float).mean()) for k in NUMERIC_FEATURES}
    stds = {k: float(values[k].astype(float).std()) or 1.0 for k in NUMERIC_FEATURES}
    return Encoding(vocabularies, means, stds)


def build_model(width: int, learning_rate: float) -> keras.Model:
    """Logistic regression: one sigmoid unit over the encoded features."""
    inputs = keras.layers.Input(shape=(width,), name="encoded")
    output = keras.layers.Dense(1, activation="sigmoid",
                                kernel_regularizer=keras.regularizers.L2(1e-3))(inputs)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc"),
                           keras.metrics.BinaryAccuracy(name="accuracy")])
    return model


class ServingModel(tf.Module):
    """The trained model behind the raw-example parser and the learned encoding."""

    def __init__(self, model: keras.Model, encoding: Encoding, feature_spec: dict[str, Any]):
        super().__init__()
        self.model = model
        self._encoding = encoding
        self._feature_spec = feature_spec

    def signatures(self) -> dict[str, Any]:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve_tf_examples(serialized):
            features = tf.io.parse_example(serialized, self._feature_spec)
            return {"outputs": self.model(self._encoding(features))}

        return {"serving_default": serve_tf_examples}


def _feature_spec(dataset) -> dict[str, tf.io.FixedLenFeature]:
    """How serving parses each model input: the dtype the train data has."""
    features, _ = dataset.element_spec
    return {key: tf.io.FixedLenFeature([], features[key].dtype)
            for key in CATEGORICAL_FEATURES + NUMERIC_FEATURES}


def run_fn(fn_args) -> None:
    """Learn the encoding, train the logistic regression and export it for raw examples."""
    keras.utils.set_random_seed(SEED)
    hyperparameters = fn_args.hyperparameters or {}
    encoding = learn_encoding(fn_args)

    def encode(features, label):
        return encoding(features), tf.cast(tf.reshape(label, [-1, 1]), tf.float32)

    train_raw = _dataset(fn_args, fn_args.train_files, TRAIN_BATCH_SIZE)
    train = train_raw.map(encode)
    evaluation = _dataset(fn_args, fn_args.eval_files, EVAL_BATCH_SIZE).map(encode)
    model = build_model(encoding.width, hyperparameters.get("learning_rate", 0.02))
    train_steps = fn_args.train_steps or 500
    epochs = max(1, min(5, train_steps // 20))
    model.fit(train, epochs=epochs, steps_per_epoch=max(1, train_steps // epochs),
              validation_data=evaluation, validation_steps=fn_args.eval_steps or 2,
              callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
              shuffle=False, verbose=2)
    serving = ServingModel(model, encoding, _feature_spec(train_raw))
    tf.saved_model.save(serving, fn_args.serving_model_dir, signatures=serving.signatures())
