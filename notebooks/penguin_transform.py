"""Penguin features for tf.Transform: the Transform module file of ``penguins.ipynb``.

``preprocessing_fn(inputs)`` is TFX's contract. It learns, on the train split, the mean
and standard deviation of the four body measures and rescales each to mean 0 and
standard deviation 1 (``<name>_xf``); a measure missing from an example (``NA`` in the
CSV, an absent feature in the tf.Example) becomes 0, the train mean. The label
``species_xf`` is the species as a class id: 0 Adelie, 1 Chinstrap, 2 Gentoo, a fixed
order rather than a learned vocabulary, so that class ids mean the same in every run.
``island``, ``sex`` and ``year`` are not model inputs; the Evaluator slices on the raw
``island`` and ``sex``.
"""
import tensorflow as tf
import tensorflow_transform as tft

NUMERIC_FEATURE_KEYS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
LABEL_KEY = "species"
#: class id -> species name; the model's three outputs follow this order
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]


def transformed_name(key: str) -> str:
    return key + "_xf"


def _dense(values, default):
    """One value per example, ``default`` where the example has none."""
    if not isinstance(values, tf.sparse.SparseTensor):
        return tf.reshape(values, [-1])
    batch = values.dense_shape[0]
    return tf.reshape(
        tf.sparse.to_dense(tf.SparseTensor(values.indices, values.values, [batch, 1]),
                           tf.cast(default, values.dtype)), [-1])


def species_to_class_id(species):
    """The position of each species name in :data:`SPECIES` (an unknown name gives 0)."""
    matches = tf.equal(tf.expand_dims(species, -1), tf.constant(SPECIES))
    return tf.argmax(tf.cast(matches, tf.int64), axis=-1)


def preprocessing_fn(inputs):
    """tf.Transform's callback: raw features in, scaled measures and the class id out."""
    outputs = {}
    for key in NUMERIC_FEATURE_KEYS:
        # statistics over the values present only; after scaling the mean is 0, the fill
        scaled = tft.scale_to_z_score(tf.cast(inputs[key], tf.float32))
        outputs[transformed_name(key)] = _dense(scaled, 0.0)
    outputs[transformed_name(LABEL_KEY)] = species_to_class_id(_dense(inputs[LABEL_KEY], ""))
    return outputs
