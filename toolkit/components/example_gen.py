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
import json
import os
from typing import Any

from toolkit.artifacts import Examples, Schema
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.cache import fingerprint_path
from toolkit.components import _spans
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

    def _drop_unset_range_config(self) -> None:
        """``range_config`` enters the recorded parameters only when given, so the cache
        keys of ExampleGens without spans stay what they were before it existed."""
        if self.exec_properties.get("range_config") is None:
            self.exec_properties.pop("range_config", None)

    def _span_patterns(self, exec_properties: dict[str, Any]) -> list[tuple[str, str]] | None:
        """The split patterns when they name spans (or a range_config is given), else None:
        then ExampleGen reads its input as it always has."""
        input_config = exec_properties.get("input_config") or {}
        patterns = [(s["name"], s["pattern"]) for s in input_config.get("splits", [])]
        if not exec_properties.get("range_config") and not any(
                _spans.has_spec(p) for _, p in patterns):
            return None
        if not patterns:
            raise InputDataError(f"{self.id}: range_config needs input_config split patterns "
                                 "with {SPAN} or a date, e.g. 'span-{SPAN}/*.csv'")
        return patterns

    def _resolve_spans(self, exec_properties: dict[str, Any]) -> _spans.Resolution | None:
        """The spans and files to read now, or None without span patterns. Reuses the
        resolution the cache key was computed from, so what is read is what the key says."""
        patterns = self._span_patterns(exec_properties)
        if patterns is None:
            return None
        request = _resolution_request(exec_properties)
        pending = getattr(self, "_pending_resolution", None)
        if pending is not None and pending[0] == request:
            self._pending_resolution = None
            return pending[1]
        return _spans.resolve(exec_properties["input_base"], patterns,
                              exec_properties.get("range_config"))

    def fingerprints(self) -> dict[str, str]:
        """With span patterns, ``input_base`` enters the cache key as the resolved files
        (names, sizes, mtimes) instead of the whole folder: a new span changes the key only
        when it changes what is read. Without them, as for any component."""
        try:
            patterns = self._span_patterns(self.exec_properties)
        except InputDataError as exc:  # Do raises it again, as a failed execution
            return {"input_base": f"unresolved: {exc}"}
        if patterns is None:
            return super().fingerprints()
        out = {}
        for key, spec in self.PARAMETERS.items():
            value = self.exec_properties.get(key)
            if key == "input_base" or not spec.fingerprint or not isinstance(value, str):
                continue
            out[key] = fingerprint_path(value, spec.fingerprint)
        self._pending_resolution = None
        try:
            resolution = _spans.resolve(self.exec_properties["input_base"], patterns,
                                        self.exec_properties.get("range_config"))
        except InputDataError as exc:  # Do raises it again, as a failed execution
            out["input_base"] = f"unresolved: {exc}"
            return out
        self._pending_resolution = (_resolution_request(self.exec_properties), resolution)
        out["input_base"] = f"spans:{resolution.fingerprint}"
        return out

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
            when the data is already split. Patterns may name spans and versions as TFX
            does: ``{SPAN}``, ``{VERSION}`` (``{SPAN:2}``: two digits) or a date
            ``{YYYY}``/``{MM}``/``{DD}`` (span = days since 1970-01-01); the artifact then
            records ``span``, ``version`` and ``spans``, and one split pattern is
            hash-split by ``output_config``, several are one split each.
        range_config: which spans (TFX's ``RangeConfig``): none for the latest span;
            ``{"static_range": {"start_span_number": N, "end_span_number": N}}``, or
            ``{"rolling_range": {"num_spans": N}}`` for the latest N. Each span is read at
            its latest version.
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
                  "output_data_format": ExecutionParameter(str, default=FORMAT_PARQUET),
                  "range_config": ExecutionParameter(dict)}

    def __init__(self, input_base: str, input_config: dict | None = None,
                 output_config: dict | None = None, schema=None,
                 output_data_format: str | int | None = None,
                 range_config: dict | None = None):
        super().__init__(input_base=os.fspath(input_base), input_config=input_config,
                         output_config=output_config, schema=schema,
                         output_data_format=payload_format_name(output_data_format),
                         range_config=range_config)
        self._drop_unset_range_config()

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        base = exec_properties["input_base"]
        declared = _schema_types(input_dict.get("schema"))
        patterns, buckets = self._splits(exec_properties)
        resolution = self._resolve_spans(exec_properties)
        if resolution is not None:
            patterns, groups = _span_groups(resolution, output_dict["examples"][0], ctx)
        else:
            groups = ({name: _csv_files(base, pattern) for name, pattern in patterns}
                      if patterns else {None: _csv_files(base, "*.csv")})
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
                  "output_data_format": ExecutionParameter(str, default=FORMAT_PARQUET),
                  "range_config": ExecutionParameter(dict)}

    def __init__(self, input_base: str, input_config: dict | None = None,
                 output_config: dict | None = None,
                 output_data_format: str | int | None = None,
                 range_config: dict | None = None):
        super().__init__(input_base=os.fspath(input_base), input_config=input_config,
                         output_config=output_config,
                         output_data_format=payload_format_name(output_data_format),
                         range_config=range_config)
        self._drop_unset_range_config()

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        base = exec_properties["input_base"]
        patterns, buckets = self._splits(exec_properties)
        resolution = self._resolve_spans(exec_properties)
        if resolution is not None:
            patterns, groups = _span_groups(resolution, output_dict["examples"][0], ctx)
            if patterns:
                pattern_tables = {name: _read_tfrecords(files) for name, files in groups.items()}
                table = None
            else:
                table, pattern_tables = _read_tfrecords(groups[None]), None
        elif patterns:
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
def _resolution_request(exec_properties: dict[str, Any]) -> str:
    from toolkit.cache import canonical_json, encode_parameter

    return canonical_json(encode_parameter({k: exec_properties.get(k) for k in
                                            ("input_base", "input_config", "range_config")}))


def _span_groups(resolution: _spans.Resolution, examples: Examples, ctx: ExecutorContext
                 ) -> tuple[list[str] | None, dict[str | None, list[str]]]:
    """(split names or None, files per split) of a span resolution; one split pattern is
    the input of the hash split (group ``None``). Records span, version and spans."""
    examples.properties["span"] = resolution.span
    if resolution.version is not None:
        examples.properties["version"] = resolution.version
    examples.properties["spans"] = json.dumps(list(resolution.spans))
    count = sum(len(files) for files in resolution.files.values())
    spans = (f"spans {resolution.spans[0]}-{resolution.span}" if len(resolution.spans) > 1
             else f"span {resolution.span}")
    ctx.log(f"{spans}" + ("" if resolution.version is None else f", version {resolution.version}")
            + f": {count} file{'s' if count != 1 else ''}")
    if len(resolution.files) == 1:
        return None, {None: next(iter(resolution.files.values()))}
    return list(resolution.files), dict(resolution.files)


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
