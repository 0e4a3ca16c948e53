"""StatisticsGen: TFDV statistics for every split, written as TFX does."""
from __future__ import annotations

import copy

from toolkit import storage
from toolkit._quiet import quiet_tensorflow
from toolkit.artifacts import ExampleStatistics, Examples, Schema
from toolkit.base_component import BaseComponent, InputSpec, ExecutionParameter
from toolkit.components._io import FORMAT_TF_EXAMPLE, payload_format, read_split, split_pattern


class StatisticsGen(BaseComponent):
    """Computes ``Split-<name>/FeatureStats.pb`` (a binary DatasetFeatureStatisticsList).

    Runs in memory by default (the fastest path on one machine); with
    ``beam_pipeline_args`` (from the context or ``context.run``) it runs as a
    Beam pipeline, so it can move to a cluster runner unchanged. Parquet and
    TFRecord (tf.Example) payloads give the same statistics.

    Args:
        examples: an Examples channel.
        schema: optional Schema channel used to interpret features.
        stats_options: optional ``tfdv.StatsOptions``.
        exclude_splits: split names to skip.
    """

    INPUTS = {"examples": InputSpec(Examples), "schema": InputSpec(Schema, optional=True)}
    OUTPUTS = {"statistics": ExampleStatistics}
    PARAMETERS = {"stats_options": ExecutionParameter(object), "exclude_splits": ExecutionParameter(list, default=[])}

    def __init__(self, examples, schema=None, stats_options=None, exclude_splits=None):
        super().__init__(examples=examples, schema=schema, stats_options=stats_options,
                         exclude_splits=list(exclude_splits or []))

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        quiet_tensorflow()
        examples: Examples = input_dict["examples"][0]
        statistics: ExampleStatistics = output_dict["statistics"][0]
        options = _options(exec_properties.get("stats_options"), input_dict.get("schema"))
        splits = [s for s in examples.split_names if s not in exec_properties["exclude_splits"]]
        for split in splits:
            storage.makedirs(statistics.split_uri(split))
        if ctx.beam_pipeline_args and splits:
            ctx.log(f"splits {', '.join(splits)}: statistics on Beam "
                    f"({' '.join(ctx.beam_pipeline_args)})")
            _beam_statistics({split: (split_pattern(examples, split),
                                      storage.local_path(statistics.stats_path(split)))
                              for split in splits}, options, ctx.beam_pipeline_args,
                             tfrecord=payload_format(examples) == FORMAT_TF_EXAMPLE)
        for split in splits:
            path = statistics.stats_path(split)
            if not ctx.beam_pipeline_args:
                stats = statistics_of_table(read_split(examples, split), options)
                storage.write_bytes(path, stats.SerializeToString())
            else:
                stats = statistics.load(split)
            ctx.log(f"split {split}: {stats.datasets[0].num_examples:,} examples, "
                    f"{len(stats.datasets[0].features)} features")
        statistics.split_names = splits


def statistics_of_table(table, options=None):
    """TFDV statistics of an Arrow table, in memory (same generators as TFDV's own paths)."""
    from tensorflow_data_validation.statistics import stats_impl
    from tensorflow_data_validation.statistics import stats_options as stats_options_lib
    from tfx_bsl.arrow import table_util

    import pyarrow as pa

    batch = table.combine_chunks().to_batches()
    record_batch = batch[0] if batch else pa.RecordBatch.from_pylist([], schema=table.schema)
    record_batch = table_util.CanonicalizeRecordBatch(record_batch)
    return stats_impl.generate_statistics_in_memory(
        record_batch, options or stats_options_lib.StatsOptions())


def _options(stats_options, schema_artifacts):
    import tensorflow_data_validation as tfdv

    options = copy.copy(stats_options) if stats_options is not None else tfdv.StatsOptions()
    if schema_artifacts and options.schema is None:
        options.schema = tfdv.load_schema_text(storage.local_path(schema_artifacts[0].schema_path))
        options.infer_type_from_schema = True
    return options


def _beam_statistics(splits: dict[str, tuple[str, str]], options, beam_args: list[str],
                     tfrecord: bool = False) -> None:
    """One Beam pipeline for every split (``split -> (file pattern, output path)``): the
    workers start, and import TensorFlow, once rather than once per split."""
    import apache_beam as beam
    import tensorflow_data_validation as tfdv
    from tfx_bsl.arrow import table_util

    from toolkit.components._beam import beam_pipeline

    with beam_pipeline(beam_args, f"TFDV statistics of {', '.join(splits)}") as pipeline:
        for split, (pattern, output_path) in splits.items():
            if tfrecord:
                batches = (pipeline
                           | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
                               pattern, compression_type=beam.io.filesystem.CompressionTypes.AUTO)
                           | f"Batch[{split}]" >> beam.BatchElements(min_batch_size=500,
                                                                     max_batch_size=2000)
                           | f"Decode[{split}]" >> beam.Map(_decode_batch, pattern))
            else:
                batches = (pipeline
                           | f"Read[{split}]" >> beam.io.ReadFromParquetBatched(pattern)
                           | f"ToBatches[{split}]" >> beam.FlatMap(lambda table: table.to_batches())
                           | f"Canonicalize[{split}]" >> beam.Map(table_util.CanonicalizeRecordBatch))
            _ = (batches
                 | f"Stats[{split}]" >> tfdv.GenerateStatistics(options)
                 | f"Write[{split}]" >> tfdv.WriteStatisticsToBinaryFile(output_path))


def _decode_batch(records, where: str):
    """Serialized tf.Examples to one RecordBatch of list columns (TFDV reads them as it
    reads the in-memory path's scalar columns)."""
    from toolkit.components._io import decode_examples

    return decode_examples(list(records), where)
