"""What a Trainer's ``run_fn`` and a Tuner's ``tuner_fn`` receive: TFX's ``FnArgs`` and the
``DataAccessor`` that reads the Examples it names; and ``TunerFnResult``, what ``tuner_fn``
returns.

A module file meets these names from two sides: the Trainer and the Tuner build them
for the user's function, and the ``tfx`` stand-in that module files import for type
names offers them too. Having their own module lets the module loader offer them
without importing the Trainer or the Tuner, which themselves need the loader. The
Parquet and TFRecord reading below serves ``DataAccessor`` alone, so it lives here
with it.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, NamedTuple

from toolkit import storage
from toolkit.components._model_io import SERVING_DIR, arrow_types, to_list_batch
from toolkit.errors import InputDataError

#: at most this many rows are kept in memory (serialized) between epochs
CACHE_ROWS = 1_000_000


@dataclasses.dataclass
class FnArgs:
    """What ``run_fn`` receives: TFX's ``FnArgs`` fields, same names and meanings."""
    working_dir: str | None = None
    train_files: list[str] = dataclasses.field(default_factory=list)
    eval_files: list[str] = dataclasses.field(default_factory=list)
    train_steps: int | None = None
    eval_steps: int | None = None
    schema_path: str | None = None
    schema_file: str | None = None
    transform_graph_path: str | None = None
    transform_output: str | None = None
    data_accessor: "DataAccessor | None" = None
    serving_model_dir: str | None = None
    eval_model_dir: str | None = None
    model_run_dir: str | None = None
    base_model: str | None = None
    #: a ``keras_tuner.HyperParameters`` config (``HyperParameters.from_config`` rebuilds it):
    #: a Tuner's ``best_hyperparameters`` given to ``Trainer(hyperparameters=...)``, or a dict
    hyperparameters: dict[str, Any] | None = None
    custom_config: dict[str, Any] | None = None

    def get_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class TunerFnResult(NamedTuple):
    """What a Tuner's ``tuner_fn(fn_args)`` returns, as in TFX: the KerasTuner ``tuner``
    (a ``keras_tuner.BaseTuner``) and the ``fit_kwargs`` its ``search(**fit_kwargs)`` is
    called with (the training and validation data, steps, ...).

    A plain named tuple here, so that module files can build it without KerasTuner being
    imported by the toolkit first."""
    tuner: Any
    fit_kwargs: dict[str, Any]


def args_dict(value: Any) -> dict | None:
    """TFX's TrainArgs/EvalArgs/TuneArgs (protos, ``tfx.proto`` messages) or plain dicts, as a
    dict (``None`` stays ``None``)."""
    if value is None or isinstance(value, dict):
        return value
    if hasattr(value, "DESCRIPTOR"):
        from google.protobuf import json_format

        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    fields = {k: getattr(value, k) for k in ("num_steps", "splits", "num_parallel_trials")
              if hasattr(value, k)}
    return fields or dict(vars(value))


def common_fn_args(input_dict: dict[str, list[Any]], exec_properties: dict[str, Any],
                   working_dir: str | None) -> FnArgs:
    """The ``FnArgs`` fields the Trainer and the Tuner share, filled as TFX's
    ``get_common_fn_args`` fills them: the files of the ``train_args``/``eval_args`` splits
    (``train``/``eval`` by default), their ``num_steps`` (``None`` when unset), the schema
    file, the transform graph folder, the base model's SavedModel and ``custom_config``.
    ``working_dir`` is the function's scratch folder."""
    examples = input_dict["examples"][0]
    train_args = exec_properties.get("train_args") or {}
    eval_args = exec_properties.get("eval_args") or {}
    graph = (input_dict.get("transform_graph") or [None])[0]
    schema = (input_dict.get("schema") or [None])[0]
    base = (input_dict.get("base_model") or [None])[0]
    base_model = None
    if base is not None:
        serving = storage.join(base.uri, SERVING_DIR)
        base_model = storage.local_path(serving if storage.is_dir(serving) else base.uri)
    return FnArgs(
        working_dir=working_dir,
        train_files=_split_patterns(examples, train_args.get("splits") or ["train"]),
        eval_files=_split_patterns(examples, eval_args.get("splits") or ["eval"]),
        train_steps=train_args.get("num_steps") or None,
        eval_steps=eval_args.get("num_steps") or None,
        schema_path=storage.local_path(schema.schema_path) if schema is not None else None,
        transform_graph_path=storage.local_path(graph.uri) if graph is not None else None,
        data_accessor=DataAccessor(),
        base_model=base_model,
        custom_config=dict(exec_properties.get("custom_config") or {}))


def _split_patterns(examples: Any, splits: list[str]) -> list[str]:
    names = examples.split_names
    out = []
    for split in splits:
        if split not in names:
            raise InputDataError(f"Examples #{examples.id} has no split {split!r} "
                                 f"(it has {', '.join(names) or 'none'})")
        out.append(os.path.join(storage.local_path(examples.split_uri(split)), "*"))
    return out


class DataAccessor:
    """TFX's data accessor: datasets of the Examples a Trainer is given.

    ``tf_dataset_factory(file_pattern, dataset_options, schema)`` follows
    ``tfxio.TensorFlowDatasetOptions`` (``batch_size``, ``label_key``, ``shuffle``,
    ``num_epochs`` — ``None`` repeats forever, as in TFX — ...). Parquet and
    TFRecord (tf.Example, plain or GZIP) payloads are read; rows are decoded with
    ``tf.io.parse_example`` against the schema, exactly as serving decodes them.
    """

    def tf_dataset_factory(self, file_pattern: str | list[str], dataset_options: Any,
                           schema: Any = None):
        import tensorflow as tf

        files = _expand(file_pattern)
        options = _Options(dataset_options)
        parquet = [f for f in files if f.endswith(".parquet")]
        if parquet and len(parquet) != len(files):
            raise InputDataError(f"{_show(file_pattern)} mixes Parquet and other files")
        if parquet:
            spec, columns, types = _parquet_spec(parquet, schema, options.label_key)
            records = _parquet_records(parquet, columns, types, options)
        else:
            if schema is None:
                raise InputDataError(f"{_show(file_pattern)}: reading tf.Example records "
                                     "needs a schema")
            spec = _feature_spec(schema)
            if options.label_key and options.label_key not in spec:
                raise InputDataError(_label_message(options.label_key, file_pattern, spec))
            gzip = any(_is_gzip(f) for f in files)
            records = tf.data.TFRecordDataset(files, compression_type="GZIP" if gzip else "")
        if options.shuffle:
            records = records.shuffle(options.shuffle_buffer_size, seed=options.shuffle_seed,
                                      reshuffle_each_iteration=True)
        records = records.repeat(options.num_epochs)
        batches = records.batch(options.batch_size, drop_remainder=options.drop_final_batch)
        label_key = options.label_key

        def parse(serialized):
            features = tf.io.parse_example(serialized, spec)
            if label_key:
                label = features.pop(label_key)
                return features, label
            return features

        dataset = batches.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(options.prefetch_buffer_size)

    def record_batch_factory(self, file_pattern: str | list[str], options: Any = None,
                             schema: Any = None) -> Iterator[Any]:
        """Arrow RecordBatches of the examples (list columns, as TFXIO yields them), from
        Parquet or TFRecord (tf.Example) files."""
        import pyarrow.parquet as pq

        batch_size = int(getattr(options, "batch_size", None) or 1024)
        if isinstance(schema, (str, os.PathLike)):
            import tensorflow_data_validation as tfdv

            schema = tfdv.load_schema_text(os.fspath(schema))
        types = arrow_types(schema) if schema is not None else None
        for path in _expand(file_pattern):
            if not path.endswith(".parquet"):
                yield from _tfrecord_batches(path, batch_size, schema, types)
                continue
            columns = pq.read_schema(storage.local_path(path)).names
            if types:
                columns = [c for c in columns if c in types]
            for batch in pq.ParquetFile(storage.local_path(path)).iter_batches(batch_size=batch_size,
                                                           columns=columns):
                yield to_list_batch(batch, types, columns)

    data_view_decode_fn = None


# -- reading the examples -------------------------------------------------------------------
def _tfrecord_batches(path: str, batch_size: int, schema: Any, types: dict | None):
    """A TFRecord file of tf.Example as RecordBatches of list columns (the schema's
    features, typed as the Parquet path types them, when a schema is given)."""
    from tfx_bsl.coders import example_coder

    from toolkit._text import first_line
    from toolkit.components._io import decode_examples, read_records

    decoder = (example_coder.ExamplesToRecordBatchDecoder(schema.SerializeToString())
               if schema is not None else None)

    def decode(records):
        if decoder is None:
            return decode_examples(records, path)
        try:
            batch = decoder.DecodeBatch(records)
        except Exception as exc:
            raise InputDataError(f"{path}: the tf.Examples do not match the schema "
                                 f"({first_line(str(exc))})") from None
        return to_list_batch(batch, types, [c for c in types if c in batch.schema.names])

    chunk: list[bytes] = []
    for record in read_records(path):
        chunk.append(record)
        if len(chunk) == batch_size:
            yield decode(chunk)
            chunk = []
    if chunk:
        yield decode(chunk)


class _Options:
    """Reads ``tfxio.TensorFlowDatasetOptions`` (or any object/dict with its field names)."""

    def __init__(self, options: Any):
        get = (options.get if isinstance(options, dict)
               else lambda k, d=None: getattr(options, k, d))
        self.batch_size = int(get("batch_size") or 1)
        self.drop_final_batch = bool(get("drop_final_batch", False))
        self.num_epochs = get("num_epochs", None)
        self.shuffle = bool(get("shuffle", True))
        self.shuffle_buffer_size = int(get("shuffle_buffer_size", 10000) or 10000)
        self.shuffle_seed = get("shuffle_seed", None)
        prefetch = get("prefetch_buffer_size", -1)
        self.prefetch_buffer_size = -1 if prefetch is None else int(prefetch)
        self.label_key = get("label_key", None)


def _expand(file_pattern: str | list[str]) -> list[str]:
    patterns = [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else list(
        file_pattern)
    files: list[str] = []
    for pattern in patterns:
        matched = [p for p in storage.glob(os.fspath(pattern), recursive=False)
                   if storage.is_file(p) and not os.path.basename(p).startswith(".")]
        if not matched:
            raise InputDataError(f"no example files match {pattern}")
        files += matched
    return files


def _show(file_pattern: str | list[str]) -> str:
    return file_pattern if isinstance(file_pattern, str) else ", ".join(map(str, file_pattern))


def _is_gzip(path: str) -> bool:
    with storage.open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _feature_spec(schema) -> dict[str, Any]:
    from tensorflow_transform.tf_metadata import schema_utils

    if isinstance(schema, (str, os.PathLike)):
        import tensorflow_data_validation as tfdv

        schema = tfdv.load_schema_text(os.fspath(schema))
    return dict(schema_utils.schema_as_feature_spec(schema).feature_spec)


def _label_message(label_key: str, file_pattern: Any, known) -> str:
    return (f"label_key {label_key!r} is not a column of the examples at {_show(file_pattern)} "
            f"(they have {', '.join(sorted(known))})")


def _parquet_spec(files: list[str], schema: Any, label_key: str | None):
    """The feature spec to parse with, the columns to read and their tf.Example types."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf

    arrow_schema = pq.read_schema(storage.local_path(files[0]))
    present = arrow_schema.names
    if label_key and label_key not in present:
        raise InputDataError(_label_message(label_key, files[0], present))
    if schema is not None:
        spec = _feature_spec(schema)
        if label_key and label_key not in spec:
            raise InputDataError(f"label_key {label_key!r} is not a feature of the schema "
                                 f"given to tf_dataset_factory")
        missing = [k for k, v in spec.items()
                   if k not in present and isinstance(v, tf.io.FixedLenFeature)
                   and v.default_value is None]
        if missing:
            raise InputDataError(f"the schema requires {', '.join(missing)}, which the examples "
                                 f"at {os.path.dirname(files[0])} do not have "
                                 f"(they have {', '.join(present)})")
        columns = [k for k in spec if k in present]
        if not isinstance(schema, (str, os.PathLike)):
            types = arrow_types(schema)
        else:
            types = None
        return spec, columns, types
    spec, nulls = {}, {}
    for path in files:
        metadata = pq.ParquetFile(storage.local_path(path)).metadata
        for group in range(metadata.num_row_groups):
            for index in range(metadata.num_columns):
                column = metadata.row_group(group).column(index)
                stats = column.statistics
                has_nulls = stats is None or not stats.has_null_count or stats.null_count > 0
                name = column.path_in_schema.split(".")[0]
                nulls[name] = nulls.get(name, False) or has_nulls
    for field in arrow_schema:
        kind = field.type.value_type if hasattr(field.type, "value_type") else field.type
        dtype = (tf.string if pa.types.is_string(kind) or pa.types.is_large_string(kind)
                 or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
                 else tf.float32 if pa.types.is_floating(kind) else tf.int64)
        scalar = not hasattr(field.type, "value_type")
        spec[field.name] = (tf.io.FixedLenFeature([], dtype) if scalar and not nulls.get(field.name)
                            else tf.io.VarLenFeature(dtype))
    return spec, list(present), None


def _parquet_records(files: list[str], columns: list[str], types: dict | None, options: _Options):
    """A dataset of serialized tf.Example, encoded from Parquet record batches."""
    import numpy as np
    import pyarrow.parquet as pq
    import tensorflow as tf
    from tfx_bsl.coders import example_coder

    encoder = example_coder.RecordBatchToExamplesEncoder()

    def generate():
        for path in files:
            for batch in pq.ParquetFile(storage.local_path(path)).iter_batches(batch_size=8192, columns=columns):
                yield np.asarray(encoder.encode(to_list_batch(batch, types, columns)),
                                 dtype=object)

    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=tf.TensorSpec([None], tf.string)).unbatch()
    rows = sum(pq.ParquetFile(storage.local_path(f)).metadata.num_rows for f in files)
    if rows <= CACHE_ROWS and options.num_epochs != 1:
        dataset = dataset.cache()
    return dataset
