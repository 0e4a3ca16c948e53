"""A small Keras model that predicts big tippers, as a TFX Trainer module file.

The Trainer calls ``run_fn(fn_args)``. The model trains on the Transform's output
and is exported with serving signatures that contain the transform graph, so the
served model takes *raw* trips and preprocesses them exactly as in training:

- ``serving_default``: serialized ``tf.Example`` protos (input ``examples``);
- ``serving_raw``: one tensor per raw feature (a NaN float counts as missing);
- ``transform_features``: serialized examples to transformed features;
- ``predict_transformed``: transformed features to predictions (what training saw).

Each returns ``{"outputs": probability of a big tip}``, shape ``[batch, 1]``.
The model is Keras 3 (``import keras``, TensorFlow backend); the export goes
through ``tf.saved_model.save``, which also works for a ``tf.keras`` model.
"""
import keras
import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

LABEL_KEY = "big_tipper"
# Raw columns the model must not see at serving time: the tip is what it predicts.
RAW_LABEL_KEYS = ["tips"]
TRAIN_BATCH_SIZE = 256
EVAL_BATCH_SIZE = 256
EMBEDDING_DIM = 4


def _input_fn(file_pattern, data_accessor, tf_transform_output, batch_size):
    """Batches of (transformed features, label), repeated indefinitely."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY),
        tf_transform_output.transformed_metadata.schema).repeat()


def _feature_keys(tf_transform_output):
    spec = tf_transform_output.transformed_feature_spec()
    return sorted(k for k in spec if k != LABEL_KEY), spec


def _build_keras_model(tf_transform_output, learning_rate):
    """Numeric features as they are, categorical ones through small embeddings."""
    keys, spec = _feature_keys(tf_transform_output)
    inputs, parts = {}, []
    for key in keys:
        inputs[key] = keras.layers.Input(shape=(), name=key, dtype=spec[key].dtype)
        if spec[key].dtype == tf.float32:
            parts.append(keras.layers.Reshape((1,))(inputs[key]))
        else:
            buckets = tf_transform_output.num_buckets_for_transformed_feature(key)
            parts.append(keras.layers.Embedding(buckets, EMBEDDING_DIM)(inputs[key]))
    x = keras.layers.Concatenate()(parts)
    for units in (32, 16):
        x = keras.layers.Dense(units, activation="relu")(x)
    output = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc"),
                           keras.metrics.BinaryAccuracy(name="accuracy")])
    return model


class _ServingModel(tf.Module):
    """The trained model with the transform graph in front of it."""

    def __init__(self, model, tf_transform_output):
        super().__init__()
        self.model = model
        self.tft_layer = tf_transform_output.transform_features_layer()
        raw_spec = tf_transform_output.raw_feature_spec()
        for key in RAW_LABEL_KEYS:
            raw_spec.pop(key, None)
        self._raw_spec = raw_spec
        self._keys, self._spec = _feature_keys(tf_transform_output)

    def _predict(self, transformed):
        features = {k: transformed[k] for k in self._keys}
        return {"outputs": self.model(features)}

    def _from_raw(self, raw):
        return self._predict(self.tft_layer(raw))

    def signatures(self):
        examples = tf.TensorSpec([None], tf.string, name="examples")
        raw_specs = {k: tf.TensorSpec([None], v.dtype, name=k) for k, v in self._raw_spec.items()}
        transformed_specs = {k: tf.TensorSpec([None], self._spec[k].dtype, name=k)
                             for k in self._keys}

        @tf.function(input_signature=[examples])
        def serve_tf_examples(serialized):
            return self._from_raw(tf.io.parse_example(serialized, self._raw_spec))

        @tf.function(input_signature=[raw_specs])
        def serve_raw(features):
            return self._from_raw({k: _as_raw(features[k], spec)
                                   for k, spec in self._raw_spec.items()})

        @tf.function(input_signature=[examples])
        def transform_features(serialized):
            return self.tft_layer(tf.io.parse_example(serialized, self._raw_spec))

        @tf.function(input_signature=[transformed_specs])
        def predict_transformed(features):
            return self._predict(features)

        return {"serving_default": serve_tf_examples, "serving_raw": serve_raw,
                "transform_features": transform_features,
                "predict_transformed": predict_transformed}


def _as_raw(value, spec):
    """A batch of single values in the form the transform graph expects for ``spec``."""
    if isinstance(spec, tf.io.VarLenFeature):
        present = (tf.logical_not(tf.math.is_nan(value)) if value.dtype.is_floating
                   else tf.ones_like(value, dtype=tf.bool))
        rows = tf.where(present)[:, 0]
        indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
        return tf.SparseTensor(indices, tf.boolean_mask(value, present),
                               [tf.shape(value, out_type=tf.int64)[0], 1])
    return tf.reshape(value, [-1] + list(spec.shape))


def run_fn(fn_args):
    """Train the model and export it with the transform graph in its signatures."""
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    hyperparameters = fn_args.hyperparameters or {}
    train_dataset = _input_fn(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                              TRAIN_BATCH_SIZE)
    eval_dataset = _input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                             EVAL_BATCH_SIZE)
    model = _build_keras_model(tf_transform_output,
                               hyperparameters.get("learning_rate", 0.003))
    train_steps = fn_args.train_steps or 1000
    epochs = max(1, min(5, train_steps // 20))
    # shuffle=False: the data accessor's datasets are shuffled already
    model.fit(train_dataset, epochs=epochs, steps_per_epoch=max(1, train_steps // epochs),
              validation_data=eval_dataset, validation_steps=fn_args.eval_steps or 50,
              callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
              shuffle=False, verbose=2)
    serving = _ServingModel(model, tf_transform_output)
    tf.saved_model.save(serving, fn_args.serving_model_dir, signatures=serving.signatures())
