"""Transform reads every split with the schema, as TFX's does: a feature the schema lists
but one split has no value of (a rare column whose only values fell in eval) is missing in
that split's rows, not a reason to drop it from the schema. TFX's Keras taxi tutorial
depends on it: its one ``pickup_census_tract`` value lands in eval, and its
``preprocessing_fn`` reads the column on the train split."""
from __future__ import annotations

import numpy as np
import pytest

TRANSFORM_MODULE = '''
import tensorflow as tf
import tensorflow_transform as tft


def preprocessing_fn(inputs):
    tract = inputs["tract"]
    dense = tf.sparse.to_dense(
        tf.SparseTensor(tract.indices, tract.values, [tract.dense_shape[0], 1]), 0)
    return {"v_xf": tft.scale_to_z_score(inputs["v"]), "tract_xf": tf.squeeze(dense, axis=1)}
'''


def _write(folder, rows):
    import tensorflow as tf

    folder.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "data.tfrecord")) as writer:
        for value, tract in rows:
            feature = {"v": tf.train.Feature(float_list=tf.train.FloatList(value=[value]))}
            if tract is not None:
                feature["tract"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[tract]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())


@pytest.mark.slow
def test_a_column_with_values_only_in_eval_is_transformed_in_both_splits(tmp_path):
    """Parquet splits written from separate inputs: train's files have no ``tract``
    column at all, eval's one value. Train is analyzed; both splits are transformed."""
    from toolkit import InteractiveContext
    from toolkit import v1 as tfx
    from toolkit.components._io import read_split

    train = [(float(i * i % 17), None) for i in range(40)]
    evaluation = [(float(i), 7 if i == 3 else None) for i in range(15)]
    _write(tmp_path / "data" / "train", train)
    _write(tmp_path / "data" / "eval", evaluation)
    (tmp_path / "prep.py").write_text(TRANSFORM_MODULE, encoding="utf-8")
    context = InteractiveContext(pipeline_root=str(tmp_path / "root"))
    gen = tfx.components.ImportExampleGen(
        input_base=str(tmp_path / "data"), output_data_format="FORMAT_PARQUET",
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="train", pattern="train/*"),
            tfx.proto.Input.Split(name="eval", pattern="eval/*")]))
    context.run(gen)
    statistics = tfx.components.StatisticsGen(examples=gen.outputs["examples"])
    context.run(statistics)
    schema = tfx.components.SchemaGen(statistics=statistics.outputs["statistics"],
                                      infer_feature_shape=False)
    context.run(schema)
    transform = tfx.components.Transform(examples=gen.outputs["examples"],
                                         schema=schema.outputs["schema"],
                                         module_file=str(tmp_path / "prep.py"))
    context.run(transform)

    [transformed] = transform.outputs["transformed_examples"].get()
    values = np.array([v for v, _ in train])
    mean, std = values.mean(), values.std()
    for split, rows in (("train", train), ("eval", evaluation)):
        table = read_split(transformed, split).to_pandas()
        np.testing.assert_array_equal(table["tract_xf"].to_numpy(),
                                      [t or 0 for _, t in rows])
        # a z-score of a sparse input stays sparse: one value a row here
        scores = np.array([np.ravel(x)[0] for x in table["v_xf"]], dtype=float)
        np.testing.assert_allclose(scores,
                                   [(v - mean) / std for v, _ in rows], rtol=1e-5, atol=1e-5)
