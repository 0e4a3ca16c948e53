"""CsvExampleGen and ImportExampleGen: ingest data into a split Examples artifact.

The payload is chosen by ``output_data_format`` (TFX's parameter). The toolkit's
default is Parquet (``FORMAT_PARQUET``), one file per split, which TFX's TFXIO reads
and which is an order of magnitude faster to load than TFRecords of tf.Example for
the in-memory statistics and evaluation paths. ``FORMAT_TF_EXAMPLE`` writes TFX's
default payload, GZIP TFRecord files of serialized tf.Example
(``Split-<name>/data_tfrecord-00000-of-00001.gz``), which TFX's tutorial cells read
with ``tf.data.TFRecordDataset(files, compression_type="GZIP")``.
"""
from __future__ import annotations

import fnmatch
import glob
import os
from typing import Any

from toolkit.artifacts import Examples, Schema
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.components._io import (FORMAT_PARQUET, open_split_writer, payload_format_name,
                                   read_tfrecord_table, record_splits, write_split)
from toolkit.components.csv_reader import STREAM_BLOCK_BYTES, CsvStream, read_csv_files
from toolkit.errors import InputDataError

DEFAULT_OUTPUT_CONFIG = {"split_config": {"splits": [{"name": "train", "hash_buckets": 2},
                                                     {"name": "eval", "hash_buckets": 1}]}}
#: CSV inputs larger than this in total are read block by block and written split by split
#: (two passes: column types, then rows), so memory stays bounded whatever the input size.
#: Smaller inputs are loaded whole, the fastest way. Both give the same splits and types.
STREAM_BYTES = 256 * 2**20


class _ExampleGenBase(BaseComponent):
    OUTPUTS = {"examples": Examples}

    def _splits(self, exec_properties: dict[str, Any]) -> tuple[list[tuple[str, str]] | None,
                                                                 list[tuple[str, int]]]:
        """(pattern splits from input_config, hash splits from output_config)."""
        input_config = exec_properties.get("input_config") or {}
        patterns = [(s["name"], s["pattern"]) for s in input_config.get("splits", [])]
        if len(patterns) == 1 and not exec_properties.get("output_config"):
            patterns = []  # one pattern: it is the input, still hash-split below
        output_config = exec_properties.get("output_config") or DEFAULT_OUTPUT_CONFIG
        buckets = [(s["name"], int(s["hash_buckets"]))
                   for s in output_config.get("split_config", {}).get("splits", [])]
        if not patterns and not buckets:
            raise InputDataError(f"{self.id}: output_config defines no splits")
        for name, count in buckets:
            if count <= 0:
                raise InputDataError(f"{self.id}: split {name!r} needs hash_buckets > 0")
        names = [n for n, _ in (patterns or buckets)]
        if len(set(names)) != len(names) or any(not _safe_split(n) for n in names):
            raise InputDataError(f"{self.id}: split names must be unique simple names, got {names}")
        return (patterns or None), buckets

    def _publish(self, examples: Examples, table, buckets: list[tuple[str, int]],
                 pattern_tables: dict[str, Any] | None, ctx: ExecutorContext,
                 payload: str = FORMAT_PARQUET) -> None:
        examples.properties["payload_format"] = payload  # write_split writes this format
        counts = {}
        if pattern_tables is not None:
            for name, part in pattern_tables.items():
                write_split(examples, name, part)
                counts[name] = part.num_rows
        else:
            for name, part in _hash_split(table, buckets):
                write_split(examples, name, part)
                counts[name] = part.num_rows
        record_splits(examples, counts, ctx, "wrote")


class CsvExampleGen(_ExampleGenBase):
    """Reads every ``*.csv`` file under ``input_base`` and splits rows by a stable hash.

    Args:
        input_base: folder of CSV files sharing one header.
        input_config: optional ``{"splits": [{"name": "train", "pattern": "train/*.csv"}, ...]}``
            when the data is already split.
        output_config: ``{"split_config": {"splits": [{"name": ..., "hash_buckets": N}]}}``;
            train:eval 2:1 by default.
        schema: optional curated Schema channel; columns are parsed as the types it declares
            and a value that does not parse stops ingestion naming file, line and column.
        output_data_format: the payload, as TFX names it: ``"FORMAT_PARQUET"`` (default) or
            ``"FORMAT_TF_EXAMPLE"`` (GZIP TFRecord of tf.Example, TFX's default); TFX's
            enum numbers (15, 6) work too.
    """

    INPUTS = {"schema": InputSpec(Schema, optional=True)}
    PARAMETERS = {"input_base": ExecutionParameter(str, required=True, fingerprint="tree"),
                  "input_config": ExecutionParameter(dict), "output_config": ExecutionParameter(dict),
                  "output_data_format": ExecutionParameter(str, default=FORMAT_PARQUET)}

    def __init__(self, input_base: str, input_config: dict | None = None,
                 output_config: dict | None = None, schema=None,
                 output_data_format: str | int | None = None):
        super().__init__(input_base=os.fspath(input_base), input_config=input_config,
                         output_config=output_config, schema=schema,
                         output_data_format=payload_format_name(output_data_format))

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        base = exec_properties["input_base"]
        declared = _schema_types(input_dict.get("schema"))
        patterns, buckets = self._splits(exec_properties)
        groups = ({name: _csv_files(base, pattern) for name, pattern in patterns} if patterns
                  else {None: _csv_files(base, "*.csv")})
        size = sum(os.path.getsize(f) for files in groups.values() for f in files)
        if size > STREAM_BYTES:
            ctx.log(f"{size / 2**20:,.0f} MB of CSV: reading it in blocks of "
                    f"{STREAM_BLOCK_BYTES / 2**20:g} MB (bounded memory)")
            _stream_publish(output_dict["examples"][0], groups, buckets, declared, base, ctx,
                            _payload(exec_properties))
            return
        if patterns:
            pattern_tables = {name: read_csv_files(files, declared, ctx.log)
                              for name, files in groups.items()}
            table = None
        else:
            table = read_csv_files(groups[None], declared, ctx.log)
            pattern_tables = None
        if table is not None and table.num_rows == 0:
            raise InputDataError(f"{base}: the CSV files have a header but no rows")
        self._publish(output_dict["examples"][0], table, buckets, pattern_tables, ctx,
                      _payload(exec_properties))


class ImportExampleGen(_ExampleGenBase):
    """Imports TFRecord files of serialized ``tf.Example`` (plain or GZIP) under ``input_base``.

    ``output_data_format`` chooses the payload written, as for :class:`CsvExampleGen`
    (Parquet by default; ``"FORMAT_TF_EXAMPLE"`` writes GZIP TFRecord of tf.Example).
    """

    PARAMETERS = {"input_base": ExecutionParameter(str, required=True, fingerprint="tree"),
                  "input_config": ExecutionParameter(dict), "output_config": ExecutionParameter(dict),
                  "output_data_format": ExecutionParameter(str, default=FORMAT_PARQUET)}

    def __init__(self, input_base: str, input_config: dict | None = None,
                 output_config: dict | None = None,
                 output_data_format: str | int | None = None):
        super().__init__(input_base=os.fspath(input_base), input_config=input_config,
                         output_config=output_config,
                         output_data_format=payload_format_name(output_data_format))

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        base = exec_properties["input_base"]
        patterns, buckets = self._splits(exec_properties)
        if patterns:
            pattern_tables = {name: _read_tfrecords(_data_files(base, pattern, "TFRecord"))
                              for name, pattern in patterns}
            table = None
        else:
            table = _read_tfrecords(_data_files(base, "*", "TFRecord"))
            pattern_tables = None
        self._publish(output_dict["examples"][0], table, buckets, pattern_tables, ctx,
                      _payload(exec_properties))


def _payload(exec_properties: dict[str, Any]) -> str:
    return payload_format_name(exec_properties.get("output_data_format"))


# -- inputs ------------------------------------------------------------------------------
def _safe_split(name: str) -> bool:
    return bool(name) and name.replace("_", "").replace("-", "").isalnum()


def _data_files(base: str, pattern: str, kind: str) -> list[str]:
    if not os.path.isdir(base):
        raise InputDataError(f"input_base {base} does not exist or is not a folder")
    files = sorted(p for p in glob.glob(os.path.join(base, pattern), recursive=True)
                   if os.path.isfile(p) and not os.path.basename(p).startswith("."))
    if not files:
        raise InputDataError(f"input_base {base} has no {kind} files matching {pattern!r}")
    return files


def _csv_files(base: str, pattern: str) -> list[str]:
    files = _data_files(base, pattern, "CSV")
    return [f for f in files if fnmatch.fnmatch(os.path.basename(f), "*.csv")] or files


def _schema_types(schema_artifacts) -> dict[str, str]:
    if not schema_artifacts:
        return {}
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    with open(schema_artifacts[0].schema_path) as handle:
        text_format.Parse(handle.read(), schema)
    names = {schema_pb2.INT: "int", schema_pb2.FLOAT: "float", schema_pb2.BYTES: "string"}
    return {f.name: names[f.type] for f in schema.feature if f.type in names}


# -- splitting and writing -----------------------------------------------------------------
def _stream_publish(examples: Examples, groups: dict[str | None, list[str]],
                    buckets: list[tuple[str, int]], declared: dict[str, str], base: str,
                    ctx: ExecutorContext, payload: str = FORMAT_PARQUET) -> None:
    """Write the splits block by block: the same rows, types and split assignment as
    loading the files whole (``read_csv_files`` then ``_publish``), in bounded memory."""
    examples.properties["payload_format"] = payload
    counts: dict[str, int] = {}
    for group, files in groups.items():
        stream = CsvStream(files, declared, ctx.log)
        names = [group] if group is not None else [name for name, _ in buckets]
        writers = {name: _split_writer(examples, name, stream.schema) for name in names}
        try:
            counts.update({name: 0 for name in names})
            for table in stream.tables():
                parts = ([(group, table)] if group is not None
                         else _hash_split(table, buckets, stream.nullable))
                for name, part in parts:
                    writers[name].write_table(part)
                    counts[name] += part.num_rows
        finally:
            for writer in writers.values():
                writer.close()
        if group is None and sum(counts.values()) == 0:
            raise InputDataError(f"{base}: the CSV files have a header but no rows")
    record_splits(examples, counts, ctx, "wrote")


def _hash_split(table, buckets: list[tuple[str, int]],
                nullable: set[str] | frozenset[str] = frozenset()):
    """Each hash split's rows, by a hash of the row's values. A block of a streamed file
    names in ``nullable`` the integer columns missing a value anywhere in the file: they are
    hashed as float, as pandas holds them in a whole table, so both paths split alike."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    hashed = pa.table([c.cast(pa.float64()) if n in nullable and pa.types.is_integer(c.type)
                       else c for n, c in zip(table.column_names, table.columns)],
                      names=table.column_names)
    hashes = pd.util.hash_pandas_object(hashed.to_pandas(), index=False).to_numpy()
    bucket = hashes % np.uint64(sum(n for _, n in buckets))
    low = 0
    for name, count in buckets:
        mask = (bucket >= low) & (bucket < low + count)
        low += count
        yield name, table.filter(pa.array(mask))


def _split_writer(examples: Examples, split: str, schema):
    """A block-by-block writer of one split in the artifact's payload format."""
    return open_split_writer(examples, split, schema)


# -- TFRecord ------------------------------------------------------------------------------
def _read_tfrecords(files: list[str]):
    """Decode tf.Example records to Arrow; single-valued features become scalar columns."""
    table = read_tfrecord_table(files)
    if table.num_rows == 0:
        raise InputDataError(f"{os.path.dirname(files[0])}: the TFRecord files hold no records")
    return table
