"""Feature engineering for the Chicago taxi model: a tf.Transform ``preprocessing_fn``.

Written as TFX documents module files: the Transform component calls
``preprocessing_fn(inputs)`` with a dict of raw feature tensors and analyzes the
train split once (means, variances, vocabularies, quantiles); the resulting graph
is applied to every split and embedded in the trained model's serving signature.

Features that may be missing in an example arrive as ``tf.SparseTensor``;
``_fill_in_missing`` turns every input into a dense vector of one value per trip.
"""
import tensorflow as tf
import tensorflow_transform as tft

# Numeric features scaled to mean 0, variance 1.
DENSE_FLOAT_FEATURE_KEYS = ["trip_miles", "fare", "trip_seconds"]
# Coordinates bucketized into quantiles learned on the train split.
BUCKET_FEATURE_KEYS = ["pickup_latitude", "pickup_longitude",
                       "dropoff_latitude", "dropoff_longitude"]
FEATURE_BUCKET_COUNT = 10
# Integer-coded categories with a known range (number of values): used as they are.
CATEGORICAL_NUMERICAL_FEATURE_KEYS = {"trip_start_hour": 24, "trip_start_day": 8,
                                      "trip_start_month": 13, "pickup_community_area": 78,
                                      "dropoff_community_area": 78}
# String categories mapped to vocabulary indices; unseen values go to OOV buckets.
CATEGORICAL_STRING_FEATURE_KEYS = ["payment_type", "company"]
VOCAB_SIZE = 1000
OOV_SIZE = 10

FARE_KEY = "fare"
TIPS_KEY = "tips"
LABEL_KEY = "big_tipper"


def transformed_name(key):
    return key + "_xf"


def _fill_in_missing(x, default=None):
    """A dense vector with one value per example; a missing value becomes ``default``."""
    if isinstance(x, tf.sparse.SparseTensor):
        if default is None:
            default = "" if x.dtype == tf.string else 0
        dense = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]),
            default_value=tf.cast(default, x.dtype))
        return tf.squeeze(dense, axis=1)
    return tf.reshape(x, [-1])


def _identity_category(x, num_values):
    """The integer itself as a category in ``[0, num_values)`` (out-of-range values are
    clipped). ``tft.apply_buckets`` with a boundary between consecutive integers does
    this without an analysis pass, and records the range in the transformed schema,
    so the trainer can size an embedding with ``num_buckets_for_transformed_feature``.
    """
    boundaries = tf.constant([[i + 0.5 for i in range(num_values - 1)]])
    return tft.apply_buckets(tf.cast(x, tf.float32), boundaries)


def preprocessing_fn(inputs):
    """Raw features in, model-ready features out (plus the label ``big_tipper``)."""
    outputs = {}
    for key in DENSE_FLOAT_FEATURE_KEYS:
        value = tf.cast(_fill_in_missing(inputs[key]), tf.float32)
        outputs[transformed_name(key)] = tft.scale_to_z_score(value)
    for key in BUCKET_FEATURE_KEYS:
        value = tf.cast(_fill_in_missing(inputs[key]), tf.float32)
        outputs[transformed_name(key)] = tft.bucketize(value, FEATURE_BUCKET_COUNT)
    for key, num_values in CATEGORICAL_NUMERICAL_FEATURE_KEYS.items():
        outputs[transformed_name(key)] = _identity_category(
            _fill_in_missing(inputs[key]), num_values)
    for key in CATEGORICAL_STRING_FEATURE_KEYS:
        outputs[transformed_name(key)] = tft.compute_and_apply_vocabulary(
            _fill_in_missing(inputs[key]), top_k=VOCAB_SIZE, num_oov_buckets=OOV_SIZE,
            vocab_filename=key)

    # A big tipper leaves more than 20% of the fare. Trips without a fare are not.
    fare = tf.cast(_fill_in_missing(inputs[FARE_KEY]), tf.float32)
    tips = tf.cast(_fill_in_missing(inputs[TIPS_KEY]), tf.float32)
    outputs[LABEL_KEY] = tf.where(
        tf.math.is_nan(fare), tf.zeros_like(fare, dtype=tf.int64),
        tf.cast(tf.greater(tips, tf.multiply(fare, 0.2)), tf.int64))
    return outputs
