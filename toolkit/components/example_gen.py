"""CsvExampleGen and ImportExampleGen: ingest data into a split Examples artifact.

The payload is Parquet (``payload_format = FORMAT_PARQUET``), one file per split,
which TFX's TFXIO reads and which is an order of magnitude faster to load than
TFRecords of tf.Example for the in-memory statistics and evaluation paths.
"""
from __future__ import annotations

import codecs
import csv
import fnmatch
import glob
import os
from typing import Any

from toolkit.artifacts import Examples, Schema
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.components._io import record_splits, split_file, write_split
from toolkit.errors import InputDataError

DEFAULT_OUTPUT_CONFIG = {"split_config": {"splits": [{"name": "train", "hash_buckets": 2},
                                                     {"name": "eval", "hash_buckets": 1}]}}
#: CSV inputs larger than this in total are read block by block and written split by split
#: (two passes: column types, then rows), so memory stays bounded whatever the input size.
#: Smaller inputs are loaded whole, the fastest way. Both give the same splits and types.
STREAM_BYTES = 256 * 2**20
#: block size of the CSV reader, whole-file and streamed alike
STREAM_BLOCK_BYTES = 1 << 24


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
                 pattern_tables: dict[str, Any] | None, ctx: ExecutorContext) -> None:
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
    """

    INPUTS = {"schema": InputSpec(Schema, optional=True)}
    PARAMETERS = {"input_base": ExecutionParameter(str, required=True, fingerprint="tree"),
                  "input_config": ExecutionParameter(dict), "output_config": ExecutionParameter(dict)}

    def __init__(self, input_base: str, input_config: dict | None = None,
                 output_config: dict | None = None, schema=None):
        super().__init__(input_base=os.fspath(input_base), input_config=input_config,
                         output_config=output_config, schema=schema)

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
            _stream_publish(output_dict["examples"][0], groups, buckets, declared, base, ctx)
            return
        if patterns:
            pattern_tables = {name: _read_many(files, declared, ctx)
                              for name, files in groups.items()}
            table = None
        else:
            table = _read_many(groups[None], declared, ctx)
            pattern_tables = None
        if table is not None and table.num_rows == 0:
            raise InputDataError(f"{base}: the CSV files have a header but no rows")
        self._publish(output_dict["examples"][0], table, buckets, pattern_tables, ctx)


class ImportExampleGen(_ExampleGenBase):
    """Imports TFRecord files of serialized ``tf.Example`` (plain or GZIP) under ``input_base``."""

    PARAMETERS = {"input_base": ExecutionParameter(str, required=True, fingerprint="tree"),
                  "input_config": ExecutionParameter(dict), "output_config": ExecutionParameter(dict)}

    def __init__(self, input_base: str, input_config: dict | None = None,
                 output_config: dict | None = None):
        super().__init__(input_base=os.fspath(input_base), input_config=input_config,
                         output_config=output_config)

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
        self._publish(output_dict["examples"][0], table, buckets, pattern_tables, ctx)


# -- CSV ---------------------------------------------------------------------------------
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


def _read_header(path: str) -> list[str]:
    with open(path, "rb") as handle:
        first = handle.readline()
    if not first.strip():
        raise InputDataError(f"{path}: the file is empty (no header line)")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputDataError(f"{path}, line 1: bytes that are not UTF-8 "
                             f"(at byte {exc.start}); re-encode the file as UTF-8") from None
    try:
        header = next(csv.reader([text]))
    except csv.Error as exc:
        raise InputDataError(f"{path}, line 1: cannot read the header ({exc}; a column name "
                             f"longer than {csv.field_size_limit():,} characters?)") from None
    if any(not h.strip() for h in header):
        raise InputDataError(f"{path}, line 1: the header has an empty column name")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputDataError(f"{path}, line 1: duplicate column names {dupes}")
    return header


def _read_many(files: list[str], declared: dict[str, str], ctx: ExecutorContext):
    header = _common_header(files, declared, ctx)
    tables = [_read_csv(path, header, declared) for path in files]
    return _unify(tables)


def _common_header(files: list[str], declared: dict[str, str], ctx: ExecutorContext) -> list[str]:
    header = _read_header(files[0])
    for path in files[1:]:
        other = _read_header(path)
        if other != header:
            missing = [c for c in header if c not in other]
            extra = [c for c in other if c not in header]
            raise InputDataError(
                f"{path}: header differs from {files[0]}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unexpected {extra}" if extra else "")
                + ("" if missing or extra else "; same columns in another order"))
    unknown = sorted(set(declared) - set(header))
    if unknown:
        ctx.log(f"schema declares columns not in the CSV: {unknown}")
    return header


def _read_csv(path: str, header: list[str], declared: dict[str, str]):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(path, **_csv_options(header, as_text=bool(declared)))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _diagnose(path, len(header), exc) from None
    columns, names = [], []
    try:
        for name, column in zip(table.column_names, table.columns):
            columns.append(_convert(path, name, column, declared.get(name)))
            names.append(name)
    except pa.ArrowInvalid as exc:
        raise _diagnose(path, len(header), exc) from None
    return pa.table(columns, names=names)


def _csv_options(header: list[str], as_text: bool) -> dict[str, Any]:
    """The pyarrow.csv options both readers use; ``as_text`` reads every column as text."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return {"read_options": pacsv.ReadOptions(block_size=STREAM_BLOCK_BYTES),
            "parse_options": pacsv.ParseOptions(newlines_in_values=False),
            "convert_options": pacsv.ConvertOptions(
                strings_can_be_null=True, timestamp_parsers=[],
                column_types={c: pa.string() for c in header} if as_text else None)}


def _convert(path: str, name: str, column, declared: str | None, first_line: int = 2):
    """Normalise a column to int64, float64 or string; enforce the declared type.

    ``first_line`` is the file line of the column's first value (for messages)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if declared is None:
        if pa.types.is_integer(column.type):
            return column.cast(pa.int64())
        if pa.types.is_floating(column.type):
            return column.cast(pa.float64())
        if pa.types.is_null(column.type):
            return column  # typed by the other files, or as string in _finish_types
        return column.cast(pa.string())
    target = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}[declared]
    if declared == "string":
        return column.cast(pa.string())
    trimmed = pc.utf8_trim_whitespace(column.cast(pa.string()))
    try:
        return trimmed.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for index, value in enumerate(trimmed.to_pylist()):
        if value is None:
            continue
        try:
            int(value) if declared == "int" else float(value)
        except ValueError:
            raise InputDataError(
                f"{path}, line {index + first_line}, column '{name}': value {value!r} does not parse "
                f"as {declared.upper()}, the type the schema declares") from None
    raise InputDataError(f"{path}, column '{name}': values do not parse as {declared.upper()}")


def _unify(tables):
    """Concatenate per-file tables, widening int to float and anything mixed to string.

    A column empty in one file takes its type from the others; a column empty
    everywhere becomes string (as TFX's CSV decoder does for an all-missing column).
    """
    import pyarrow as pa

    names = tables[0].column_names
    kind = {"null": "null", "int64": "int", "double": "float"}
    targets = {name: _widen({kind.get(str(t.schema.field(name).type), "string") for t in tables})
               for name in names}
    return pa.concat_tables([pa.table([t.column(n).cast(targets[n]) for n in names], names=names)
                             for t in tables])


def _widen(kinds: set[str]):
    """A column's type over all files from each file's kind of it (``null``, ``int``,
    ``float``, or another for text): int64 if all are int, float64 if all are int or
    float, otherwise string (also when every file has it empty)."""
    import pyarrow as pa

    kinds = kinds - {"null"}
    if kinds == {"int"}:
        return pa.int64()
    if kinds and kinds <= {"int", "float"}:
        return pa.float64()
    return pa.string()


def _diagnose(path: str, width: int, exc: Exception) -> InputDataError:
    """Find the line at fault with a slow, exact scan, once the fast reader has failed."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as err:
                return InputDataError(
                    f"{path}, line {number}: bytes that are not UTF-8 (byte {err.start} of the "
                    "line); re-encode the file as UTF-8")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            for row in reader:
                if row and len(row) != width:
                    return InputDataError(
                        f"{path}, line {reader.line_num}: expected {width} fields as in the "
                        f"header, found {len(row)} (a ragged row)")
        except csv.Error:  # a field beyond the slow scanner's limit: report the fast reader's
            pass
    return InputDataError(f"{path}: cannot parse the CSV: {str(exc).splitlines()[0]}")


# -- CSV in a stream (large inputs) ------------------------------------------------------------
_TRUE_TEXT = ("1", "True", "TRUE", "true")
_FALSE_TEXT = ("0", "False", "FALSE", "false")


def _stream_publish(examples: Examples, groups: dict[str | None, list[str]],
                    buckets: list[tuple[str, int]], declared: dict[str, str], base: str,
                    ctx: ExecutorContext) -> None:
    """Write the splits block by block: the same rows, types and split assignment as
    loading the files whole (``_read_many`` then ``_publish``), in bounded memory."""
    counts: dict[str, int] = {}
    for group, files in groups.items():
        header = _common_header(files, declared, ctx)
        kinds, targets, nullable = _stream_types(files, header, declared)
        names = [group] if group is not None else [name for name, _ in buckets]
        schema = _arrow_schema(header, targets)
        writers = {name: _split_writer(examples, name, schema) for name in names}
        try:
            counts.update({name: 0 for name in names})
            for path in files:
                for first_line, batch in _text_batches(path, header):
                    table = _stream_convert(path, batch, header, kinds[path], targets, declared,
                                            first_line)
                    parts = ([(group, table)] if group is not None
                             else _hash_split(table, buckets, nullable))
                    for name, part in parts:
                        writers[name].write_table(part)
                        counts[name] += part.num_rows
        finally:
            for writer in writers.values():
                writer.close()
        if group is None and sum(counts.values()) == 0:
            raise InputDataError(f"{base}: the CSV files have a header but no rows")
    record_splits(examples, counts, ctx, "wrote")


def _text_batches(path: str, header: list[str]):
    """``(file line of the first row, batch)`` for each block of a CSV file, columns as text."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    line = 2
    try:
        reader = pacsv.open_csv(path, **_csv_options(header, as_text=True))
        for batch in reader:
            yield line, batch
            line += batch.num_rows
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _diagnose(path, len(header), exc) from None


def _text_kind(column) -> str:
    """How loading the whole file types this text: null, int, float, bool (kept as the
    text true/false) or string."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = column.drop_null()
    if len(values) == 0:
        return "null"
    for kind, target in (("int", pa.int64()), ("float", pa.float64())):
        try:
            values.cast(target)
            return kind
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    if pc.all(pc.is_in(values, pa.array(_TRUE_TEXT + _FALSE_TEXT))).as_py():
        return "bool"
    return "string"


def _merge_kind(a: str, b: str) -> str:
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if {a, b} == {"int", "float"}:
        return "float"
    return "string"


def _stream_types(files: list[str], header: list[str], declared: dict[str, str]):
    """First pass: each file's kind of each column, the column types over all files (as
    ``_unify`` decides them), and the columns missing a value somewhere."""
    import pyarrow as pa

    kinds: dict[str, dict[str, str]] = {}
    nullable: set[str] = set()
    for path in files:
        found = {c: "null" for c in header}
        for _, batch in _text_batches(path, header):
            for name, column in zip(header, batch.columns):
                if column.null_count:
                    nullable.add(name)
                if not declared and found[name] != "string":
                    found[name] = _merge_kind(found[name], _text_kind(column))
        kinds[path] = found
    arrow = {"int": pa.int64(), "float": pa.float64()}
    targets = {}
    for name in header:
        if declared:
            targets[name] = arrow.get(declared.get(name, "string"), pa.string())
            continue
        targets[name] = _widen({kinds[p][name] for p in files})  # bool is text: string
    return kinds, targets, nullable


def _arrow_schema(header: list[str], targets: dict):
    import pyarrow as pa

    return pa.schema([pa.field(name, targets[name]) for name in header])


def _stream_convert(path: str, batch, header: list[str], kinds: dict[str, str], targets: dict,
                    declared: dict[str, str], first_line: int):
    """One block as the whole-file path types it: the file's own kind, then the common type."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    try:
        for name, column in zip(header, batch.columns):
            if declared:
                column = _convert(path, name, column, declared.get(name), first_line)
            elif kinds[name] == "int":
                column = column.cast(pa.int64())
            elif kinds[name] == "float":
                column = column.cast(pa.float64())
            elif kinds[name] == "bool":
                column = pc.if_else(pc.is_in(column, pa.array(_TRUE_TEXT)), "true", "false")
            elif kinds[name] == "null":
                column = pa.nulls(len(column), pa.string())
            columns.append(column.cast(targets[name]))
    except pa.ArrowInvalid as exc:
        raise _diagnose(path, len(header), exc) from None
    return pa.table(columns, names=header)


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
    import pyarrow.parquet as pq

    return pq.ParquetWriter(split_file(examples, split), schema, compression="snappy")


# -- TFRecord ------------------------------------------------------------------------------
def _read_tfrecords(files: list[str]):
    """Decode tf.Example records to Arrow; single-valued features become scalar columns."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from tfx_bsl.coders import example_coder

    records = []
    for path in files:
        records.extend(_tfrecord_payloads(path))
    if not records:
        raise InputDataError(f"{os.path.dirname(files[0])}: the TFRecord files hold no records")
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    try:
        batch = decoder.DecodeBatch(records)
    except Exception as exc:
        raise InputDataError(f"{files[0]}: records are not serialized tf.Example "
                             f"({str(exc).splitlines()[0]})") from None
    columns, names = [], []
    for name, column in zip(batch.schema.names, batch.columns):
        lengths = pc.list_value_length(column).fill_null(0)
        if pc.max(lengths).as_py() is not None and pc.max(lengths).as_py() <= 1:
            flat = pa.array([v[0] if v else None for v in column.to_pylist()])
            if pa.types.is_binary(flat.type) or pa.types.is_large_binary(flat.type):
                flat = pa.array([None if v is None else v.decode("utf-8", "replace")
                                 for v in flat.to_pylist()], pa.string())
            columns.append(flat)
        else:
            columns.append(column)
        names.append(name)
    return pa.table(columns, names=names)


def _tfrecord_payloads(path: str) -> list[bytes]:
    """Read TFRecord framing (length, crc, data, crc) without TensorFlow; GZIP aware."""
    import gzip
    import struct

    with open(path, "rb") as raw:
        magic = raw.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    payloads = []
    with opener(path, "rb") as handle:
        while True:
            head = handle.read(12)
            if not head:
                break
            if len(head) < 12:
                raise InputDataError(f"{path}: truncated TFRecord file")
            (length,) = struct.unpack("<Q", head[:8])
            data = handle.read(length)
            handle.read(4)
            if len(data) < length:
                raise InputDataError(f"{path}: truncated TFRecord file")
            payloads.append(data)
    return payloads
