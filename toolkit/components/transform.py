"""Transform: tf.Transform analysis on the train split, applied to every split.

The transform graph it writes (tf.Transform's layout: ``transform_fn/``,
``transformed_metadata/``, plus the raw schema under ``metadata/`` as TFX does)
is what the trained model's serving signature embeds, so the exact computation
applied to training data is applied at serving time.
"""
from __future__ import annotations

import os
from typing import Callable

from toolkit import progress, storage
from toolkit._quiet import quiet_tensorflow
from toolkit.artifacts import Examples, Schema, TransformGraph
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.components._io import (FORMAT_TF_EXAMPLE, check_splits, count_records,
                                   payload_format, record_splits, split_columns, split_files,
                                   split_pattern)
from toolkit.components._model_io import arrow_types, to_list_batch
from toolkit.components._module import describe, resolve_function, source_file
from toolkit.components._beam import beam_pipeline, check_beam_args, pipeline_failure
from toolkit.components._shipping import pickled_by_value, user_modules, with_user_code
from toolkit.errors import InputDataError, ToolkitError, UserCodeError

#: used when neither the context nor ``context.run`` gives Beam arguments
DEFAULT_BEAM_ARGS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


class Transform(BaseComponent):
    """Runs a tf.Transform ``preprocessing_fn`` over Examples with Apache Beam.

    Args:
        examples: Examples channel (Parquet or TFRecord of tf.Example payload).
        schema: Schema channel describing the raw features.
        module_file: Python file defining ``preprocessing_fn(inputs)`` (or
            ``preprocessing_fn(inputs, custom_config)``), as in TFX.
        preprocessing_fn: instead of a module file, the function itself or a dotted
            path to it. A function's own source is part of the cache key; helpers it
            calls are not, so prefer a module file when they change.
        splits_config: ``{"analyze": ["train"], "transform": ["train", "eval"]}``;
            by default analyze ``train`` and transform every split.
        custom_config: passed to a two-argument ``preprocessing_fn``.
        materialize: ``False`` writes only the transform graph, as TFX's
            ``materialize=False`` does (a Trainer then transforms the raw examples with
            the graph); ``transformed_examples`` is left with no splits.

    Outputs ``transform_graph`` and ``transformed_examples``, in the payload format of
    the input, as TFX does: Parquet (one column per transformed feature; features of one
    value per example are scalar columns), or GZIP TFRecord of tf.Example
    (``Split-<name>/transformed_examples-00000-of-0000N.gz``, TFX's names).
    Beam runs with the context's ``beam_pipeline_args``; with none it uses the
    in-memory DirectRunner with one worker, the fastest setting for one machine. The
    module file and the modules beside it that it imports reach Beam's workers on any
    runner (see ``toolkit.components._shipping``); tf.Transform's temporary files go
    to ``--temp_location`` when given, else to the execution's tmp folder.
    """

    INPUTS = {"examples": InputSpec(Examples), "schema": InputSpec(Schema)}
    OUTPUTS = {"transform_graph": TransformGraph, "transformed_examples": Examples}
    PARAMETERS = {"module_file": ExecutionParameter(str, fingerprint="file"),
                  "preprocessing_fn": ExecutionParameter(object),
                  "splits_config": ExecutionParameter(dict),
                  "custom_config": ExecutionParameter(dict),
                  "materialize": ExecutionParameter(bool)}

    def __init__(self, examples, schema, module_file: str | None = None,
                 preprocessing_fn: Callable | str | None = None,
                 splits_config: dict | None = None, custom_config: dict | None = None,
                 materialize: bool = True):
        super().__init__(examples=examples, schema=schema,
                         module_file=None if module_file is None else os.fspath(module_file),
                         preprocessing_fn=preprocessing_fn, splits_config=splits_config,
                         custom_config=custom_config)
        if not materialize:  # recorded only then, so earlier cache keys still match
            self.exec_properties["materialize"] = False
        else:
            self.exec_properties.pop("materialize", None)

    def Do(self, input_dict, output_dict, exec_properties, ctx: ExecutorContext) -> None:
        beam_args = ctx.beam_pipeline_args or DEFAULT_BEAM_ARGS
        check_beam_args(beam_args, "tf.Transform")
        examples: Examples = input_dict["examples"][0]
        schema = input_dict["schema"][0].load()
        graph: TransformGraph = output_dict["transform_graph"][0]
        transformed: Examples = output_dict["transformed_examples"][0]
        fn, label = resolve_function(module_file=exec_properties.get("module_file"),
                                     function=exec_properties.get("preprocessing_fn"),
                                     name="preprocessing_fn", owner=self.id)
        analyze, transform = _splits(exec_properties.get("splits_config"), examples)
        if exec_properties.get("materialize") is False:
            transform = []
        columns = _columns(examples, analyze + transform)
        schema = _restrict(schema, columns)
        user_fn = _guarded(fn, label, exec_properties.get("custom_config"))
        ctx.log(f"analyzing {', '.join(analyze)}; transforming "
                f"{', '.join(transform) or 'nothing (materialize=False)'} "
                f"with {label} on Beam ({' '.join(beam_args)})")
        modules = user_modules(fn)
        try:
            with pickled_by_value(modules):
                counts = _run_pipeline(examples, schema, user_fn, analyze, transform,
                                       storage.local_path(graph.uri),
                                       transformed, ctx,
                                       with_user_code(beam_args, modules, ctx.tmp_dir), label)
        except ToolkitError:
            raise
        except Exception as exc:  # after the pipeline: writing the metadata, counting rows
            raise pipeline_failure(exc, label, beam_args) from exc
        record_splits(transformed, counts, ctx, "transformed", names=transform,
                      payload=payload_format(examples))


def _splits(config: dict | None, examples: Examples) -> tuple[list[str], list[str]]:
    names = examples.split_names
    config = config or {}
    analyze = list(config.get("analyze") or (["train"] if "train" in names else names[:1]))
    transform = list(config.get("transform") or names)
    check_splits(examples, analyze + transform, "splits_config names split", none="no splits")
    if not analyze:
        raise InputDataError("splits_config.analyze is empty: tf.Transform needs data to analyze")
    return analyze, transform


def _columns(examples: Examples, splits: list[str]) -> list[str]:
    """Columns present in any split used (Parquet footers, or a TFRecord payload's
    recorded columns). As in TFX, a schema feature that one split has no value of (a
    rare column whose only values fell in eval) is kept: that split reads it as missing
    in every row."""
    found: dict[str, None] = {}
    for split in dict.fromkeys(splits):
        if not split_files(examples, split):
            raise InputDataError(f"Examples #{examples.id} split {split!r} has no files "
                                 f"under {examples.split_uri(split)}")
        found.update(dict.fromkeys(split_columns(examples, split)))
    return list(found)


def _restrict(schema, columns: list[str]):
    """The schema's features that the data has; others are absent, as TFX would see them."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    kept = schema_pb2.Schema()
    kept.CopyFrom(schema)
    del kept.feature[:]
    kept.feature.extend(f for f in schema.feature if f.name in columns)
    return kept


class _Inputs(dict):
    """The raw-feature dict given to ``preprocessing_fn``: a missing key names what exists."""

    def __missing__(self, key):
        raise _MissingColumn(key, sorted(self))


class _MissingColumn(KeyError):
    def __init__(self, key, present: list[str]):
        super().__init__(key)
        self.key = key
        self.present = present


def _guarded(fn: Callable, label: str, custom_config: dict | None):
    """Wrap the user's function so its failures read as one line naming file and function."""
    import inspect

    try:
        takes_config = len(inspect.signature(fn).parameters) >= 2
    except (TypeError, ValueError):
        takes_config = False

    def preprocessing_fn(inputs):
        wrapped = _Inputs(inputs)
        try:
            if takes_config:
                return fn(wrapped, custom_config or {})
            return fn(wrapped)
        except _MissingColumn as exc:
            raise UserCodeError(
                f"{label} reads column {exc.key!r}, which the examples do not have "
                f"(they have {', '.join(exc.present)})") from None
        except ToolkitError:
            raise
        except Exception as exc:
            raise UserCodeError(describe(exc, label, source_file(fn))) from exc

    return preprocessing_fn


def _run_pipeline(examples: Examples, schema, preprocessing_fn, analyze: list[str],
                  transform: list[str], graph_dir: str, transformed: Examples,
                  ctx: ExecutorContext, beam_args: list[str], label: str) -> dict[str, int]:
    import apache_beam as beam
    import pyarrow as pa
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
    from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

    quiet_tensorflow()
    types = arrow_types(schema)
    arrow_schema = pa.schema([pa.field(n, pa.large_list(t)) for n, t in types.items()])
    representations = tensor_representation_util.InferTensorRepresentationsFromSchema(schema)
    adapter_config = tensor_adapter.TensorAdapterConfig(arrow_schema, representations)
    columns = list(types)

    tfrecord = payload_format(examples) == FORMAT_TF_EXAMPLE
    serialized_schema = schema.SerializeToString()

    def read(pipeline, split: str):
        pattern = split_pattern(examples, split)
        if tfrecord:
            return (pipeline
                    | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
                        pattern, compression_type=beam.io.filesystem.CompressionTypes.AUTO)
                    | f"Batch[{split}]" >> beam.BatchElements(min_batch_size=500,
                                                              max_batch_size=2000)
                    | f"Decode[{split}]" >> beam.Map(_decode_lists, serialized_schema, types,
                                                     columns, pattern))
        present = set(split_columns(examples, split))
        return (pipeline
                | f"Read[{split}]" >> beam.io.ReadFromParquetBatched(
                    pattern, columns=[c for c in columns if c in present])
                | f"ToLists[{split}]" >> beam.Map(_lists_with_missing, types, columns))

    tmp = _temp_dir(PipelineOptions(beam_args), ctx)
    where = _runner_name(beam_args)
    progress.report(f"analyzing {', '.join(analyze)} on {where}")
    with beam_pipeline(beam_args, label) as pipeline:
        with tft_beam.Context(temp_dir=tmp):
            if len(analyze) == 1:
                analysis_data = read(pipeline, analyze[0])
            else:
                analysis_data = ([read(pipeline, s) for s in analyze]
                                 | "Flatten" >> beam.Flatten())
            transform_fn = ((analysis_data, adapter_config)
                            | "Analyze" >> tft_beam.AnalyzeDataset(preprocessing_fn))
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(graph_dir)
            for split in transform:
                data = analysis_data if split in analyze and len(analyze) == 1 else read(
                    pipeline, split)
                (batches, metadata) = (((data, adapter_config), transform_fn)
                                       | f"Transform[{split}]" >> tft_beam.TransformDataset(
                                           output_record_batches=True))
                batches = batches | f"Progress[{split}]" >> beam.Map(
                    _reporting, f"transforming {split} on {where}")
                if tfrecord:
                    _ = (batches
                         | f"Encode[{split}]" >> beam.FlatMap(_encode_examples)
                         | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                             os.path.join(storage.local_path(transformed.split_uri(split)),
                                          TRANSFORMED_PREFIX),
                             file_name_suffix=".gz"))
                    continue
                scalars = _scalar_features(metadata.dataset_metadata.schema)
                _ = (batches
                     | f"Write[{split}]" >> beam.ParDo(
                         _parquet_writer(storage.local_path(transformed.split_uri(split)),
                                         scalars)))
    progress.report("writing the metadata, counting rows")
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                               os.path.join(graph_dir, "metadata"))
    if tfrecord:
        return {split: count_records(split_files(transformed, split)) for split in transform}
    return {split: _row_count(transformed.split_uri(split)) for split in transform}


def _reporting(element, stage: str):
    """Passes ``element`` on, reporting that a split's transformed batches flow (where the
    runner works in this process; a report elsewhere is a no-op)."""
    progress.report(stage)
    return element


def _runner_name(beam_args: list[str]) -> str:
    """``Beam (DirectRunner)``: the runner the arguments name, for the progress line."""
    for index, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            return f"Beam ({arg.split('=', 1)[1]})"
        if arg == "--runner" and index + 1 < len(beam_args):
            return f"Beam ({beam_args[index + 1]})"
    return "Beam"


#: TFX's file prefix of transformed examples (``transformed_examples-00000-of-00001.gz``)
TRANSFORMED_PREFIX = "transformed_examples"


def _decode_lists(records, serialized_schema: bytes, types: dict, columns: list[str],
                  where: str):
    """A batch of serialized tf.Examples as the list columns tf.Transform reads, typed by
    the schema exactly as the Parquet path types them."""
    from tfx_bsl.coders import example_coder

    from toolkit._text import first_line

    try:
        batch = example_coder.ExamplesToRecordBatchDecoder(serialized_schema).DecodeBatch(
            list(records))
    except Exception as exc:
        raise InputDataError(f"{where}: the tf.Examples do not match the schema "
                             f"({first_line(str(exc))})") from None
    return to_list_batch(batch, types, columns)


def _lists_with_missing(table, types: dict, columns: list[str]):
    """A Parquet batch as list columns; a column this split's files lack is a feature
    missing from every row, as a tf.Example without it decodes."""
    import pyarrow as pa

    for name in columns:
        if name not in table.schema.names:
            table = table.append_column(name, pa.nulls(table.num_rows, types[name]))
    return to_list_batch(table, types, columns)


def _encode_examples(element):
    """Transformed record batches as serialized tf.Examples (TFX's materialized form)."""
    from tfx_bsl.coders import example_coder

    batch = element[0] if isinstance(element, tuple) else element
    return example_coder.RecordBatchToExamples(batch)


def _temp_dir(options, ctx: ExecutorContext) -> str:
    """tf.Transform's temporary folder: under ``--temp_location`` when given (workers on a
    cluster can reach it), else in the execution's tmp folder (removed after the run)."""
    temp_location = options.get_all_options().get("temp_location")
    if temp_location:
        return "/".join([temp_location.rstrip("/"),
                         f"toolkit-tft-{ctx.component_id}-{ctx.execution_id}"])
    return os.path.join(ctx.tmp_dir, "tft")


def _scalar_features(schema) -> list[str]:
    """Transformed features with exactly one value per example: written as scalar columns."""
    scalars = []
    for feature in schema.feature:
        if feature.HasField("shape"):
            size = 1
            for dim in feature.shape.dim:
                size *= dim.size
            if size == 1:
                scalars.append(feature.name)
    return scalars


def _make_writer():
    import apache_beam as beam

    class WriteParquet(beam.DoFn):
        """Each bundle to its own Parquet file; features of one value become scalar columns."""

        def __init__(self, folder: str, scalars: list[str]):
            self._folder = folder
            self._scalars = set(scalars)
            self._tables: list = []

        def start_bundle(self):
            self._tables = []

        def process(self, element):
            batch = element[0] if isinstance(element, tuple) else element
            self._tables.append(_flatten(batch, self._scalars))

        def finish_bundle(self):
            import hashlib
            import uuid

            import pyarrow as pa
            import pyarrow.parquet as pq

            if not self._tables:
                return
            from toolkit import storage

            storage.makedirs(self._folder)
            table = pa.Table.from_batches(self._tables)
            # named by its content, so the same rows give the same file names, and a
            # trainer reading the files in name order sees them in the same order
            # every run (random names made two runs on the same data train differently)
            partial = storage.join(self._folder, f".writing-{uuid.uuid4().hex}.parquet")
            pq.write_table(table, storage.local_path(partial), compression="snappy")
            digest = hashlib.sha256(storage.read_bytes(partial)).hexdigest()[:16]
            final = storage.join(self._folder, f"part-{digest}.parquet")
            if storage.exists(final):  # two bundles of the very same rows: keep both
                final = storage.join(self._folder, f"part-{digest}-{uuid.uuid4().hex[:8]}.parquet")
            storage.move(partial, final)
            self._tables = []

    return WriteParquet


def _parquet_writer(folder: str, scalars: list[str]):
    return _make_writer()(folder, scalars)


def _flatten(batch, scalars: set[str]):
    import pyarrow as pa

    arrays, names = [], []
    for name, column in zip(batch.schema.names, batch.columns):
        if name in scalars:
            column = column.flatten()
            if pa.types.is_large_binary(column.type) or pa.types.is_binary(column.type):
                column = _maybe_text(column)
        arrays.append(column)
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names)


def _maybe_text(column):
    """Bytes that are valid UTF-8 become strings (readable in pandas and the views)."""
    import pyarrow as pa

    try:
        return column.cast(pa.large_string()).cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return column


def _row_count(folder: str) -> int:
    import pyarrow.parquet as pq

    names = storage.listdir(folder) if storage.is_dir(folder) else []
    return sum(pq.ParquetFile(storage.local_path(storage.join(folder, name))).metadata.num_rows
               for name in names if name.endswith(".parquet") and not name.startswith("."))
