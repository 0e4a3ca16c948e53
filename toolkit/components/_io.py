"""Reading and writing the Examples payload, in either of TFX's two payload formats.

- ``FORMAT_PARQUET`` (the toolkit's native default): one Parquet file per split,
  ``Split-<name>/data.parquet``, one scalar column per feature.
- ``FORMAT_TF_EXAMPLE`` (TFX's default): GZIP TFRecord files of serialized
  ``tf.Example`` per split, named as TFX names them
  (``Split-<name>/data_tfrecord-00000-of-00001.gz``). Features are int64, float or
  bytes lists; a missing value is an absent feature.

Every reader here returns the same Arrow table for either payload: scalar columns
of int64, float64 or string where a feature has at most one value per example, so
statistics, evaluation and inference do not depend on the payload. The TFRecord
framing is read and written here without TensorFlow (``import`` of a component
stays light); tf.Example is encoded and decoded with tfx_bsl's C++ coders.
"""
from __future__ import annotations

import json
import os
import struct
from typing import Any, Iterator

from toolkit import storage
from toolkit._text import first_line
from toolkit.artifacts import Examples
from toolkit.errors import InputDataError, ToolkitError

FORMAT_PARQUET = "FORMAT_PARQUET"
FORMAT_TF_EXAMPLE = "FORMAT_TF_EXAMPLE"
#: the toolkit's native payload (kept under its old name for callers)
PAYLOAD_FORMAT = FORMAT_PARQUET
#: TFX's ``example_gen_pb2.PayloadFormat`` values of the formats read and written here
PAYLOAD_FORMAT_VALUES = {FORMAT_TF_EXAMPLE: 6, FORMAT_PARQUET: 15}
DATA_FILE = "data.parquet"
#: TFX's ExampleGen file name (``WriteToTFRecord(".../data_tfrecord", file_name_suffix=".gz")``)
TFRECORD_FILE = "data_tfrecord-00000-of-00001.gz"
#: custom property of an Examples artifact with a TFRecord payload: its columns, in
#: order, with their Arrow types, so reading restores exactly the table that was written
COLUMN_TYPES = "column_types"
#: records decoded per call of tfx_bsl's decoder (small batches decode fastest)
_DECODE_ROWS = 2000
#: the same, for readers elsewhere that must order columns as this module's reader does
DECODE_ROWS = _DECODE_ROWS
_GZIP_LEVEL = 6  # zlib's default, as TensorFlow's GZIP writer uses


# -- payload formats -------------------------------------------------------------------------
def payload_format_name(value: Any, what: str = "output_data_format") -> str:
    """TFX's payload format given as its name, its enum number, or an enum-like object,
    as the name (``"FORMAT_TF_EXAMPLE"`` or ``"FORMAT_PARQUET"``); None is Parquet."""
    if value is None:
        return FORMAT_PARQUET
    name = getattr(value, "name", None)
    if isinstance(name, str) and not isinstance(value, str):  # an enum member
        value = name
    if isinstance(value, int) and not isinstance(value, bool):
        for key, number in PAYLOAD_FORMAT_VALUES.items():
            if value == number:
                return key
    elif isinstance(value, str):
        text = value.strip().upper()
        text = text if text.startswith("FORMAT_") else f"FORMAT_{text}"
        if text in PAYLOAD_FORMAT_VALUES:
            return text
    raise ToolkitError(f"{what} {value!r} is not a payload format the toolkit writes: use "
                       f"'FORMAT_TF_EXAMPLE' ({PAYLOAD_FORMAT_VALUES[FORMAT_TF_EXAMPLE]}, GZIP "
                       f"TFRecord of tf.Example, TFX's default) or 'FORMAT_PARQUET' "
                       f"({PAYLOAD_FORMAT_VALUES[FORMAT_PARQUET]}, the toolkit's default)")


def payload_format(examples) -> str:
    """The payload format of an Examples artifact, checked: an unknown one raises one line
    naming the artifact and the format."""
    value = (getattr(examples, "properties", None) or {}).get("payload_format") or FORMAT_PARQUET
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        value = {v: k for k, v in PAYLOAD_FORMAT_VALUES.items()}.get(int(value), value)
    if value not in PAYLOAD_FORMAT_VALUES:
        raise ToolkitError(f"{_name(examples)} has payload format {value}, which the toolkit "
                           f"cannot read (it reads {FORMAT_TF_EXAMPLE} and {FORMAT_PARQUET})")
    return value


def _name(examples) -> str:
    return f"{getattr(examples, 'TYPE_NAME', 'Examples')} #{examples.id} ({examples.uri})"


# -- writing -----------------------------------------------------------------------------------
def split_file(artifact, split: str) -> str:
    """The split's payload file, by the artifact's payload format
    (``Split-<name>/data.parquet`` or ``Split-<name>/data_tfrecord-00000-of-00001.gz``);
    its folder is created."""
    folder = artifact.split_uri(split)
    storage.makedirs(folder)
    tfrecord = (getattr(artifact, "properties", None) or {}).get(
        "payload_format") == FORMAT_TF_EXAMPLE
    return storage.join(folder, TFRECORD_FILE if tfrecord else DATA_FILE)


def write_split(examples, split: str, table) -> None:
    """Write one split's table in the artifact's payload format (its ``payload_format``
    property, Parquet when unset)."""
    writer = open_split_writer(examples, split, table.schema)
    try:
        writer.write_table(table)
    finally:
        writer.close()


def open_split_writer(examples, split: str, arrow_schema):
    """A writer of one split (``write_table(table)`` block by block, then ``close()``) in
    the artifact's payload format."""
    path = split_file(examples, split)
    if path.endswith(".gz"):
        _remember_columns(examples, arrow_schema)
        return ExampleWriter(path)
    import pyarrow.parquet as pq

    return pq.ParquetWriter(storage.local_path(path), arrow_schema, compression="snappy")


def _remember_columns(examples, arrow_schema) -> None:
    columns = [[field.name, str(field.type)] for field in arrow_schema]
    examples.properties[COLUMN_TYPES] = json.dumps(columns)


class ExampleWriter:
    """Arrow tables to one GZIP TFRecord file of serialized tf.Example, rows in order."""

    def __init__(self, path: str):
        import gzip

        self.path = path
        self._raw = storage.open(path, "wb")
        self._file = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw,
                                   compresslevel=_GZIP_LEVEL, mtime=0)
        self.rows = 0

    def write_table(self, table) -> None:
        self.write_records(examples_from_table(table))

    def write_records(self, records) -> None:
        self._file.write(frame_records(records))
        self.rows += len(records)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._raw.close()
            self._file = None


def examples_from_table(table) -> list[bytes]:
    """Serialized tf.Example per row: int64, float and bytes lists; a null is an absent
    feature (not an empty list), so every reader counts it as missing."""
    import numpy as np
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

    from toolkit.components._model_io import to_list_batch

    if table.num_rows == 0:
        return []
    names = table.column_names
    valid = np.column_stack([np.asarray(table.column(n).is_valid()) for n in names]) if names \
        else np.ones((table.num_rows, 0), dtype=bool)
    if valid.all():
        return list(example_coder.RecordBatchToExamples(to_list_batch(table)))
    # rows with the same missing features are encoded together, with only their features
    keys = np.packbits(valid, axis=1, bitorder="little")
    if keys.shape[1] <= 8:  # one integer per row: a 1-D unique, much faster
        wide = np.zeros((len(keys), 8), dtype=np.uint8)
        wide[:, :keys.shape[1]] = keys
        keys = wide.view(np.uint64).reshape(-1)
        patterns, group_of = np.unique(keys, return_inverse=True)
    else:
        patterns, group_of = np.unique(keys, axis=0, return_inverse=True)
    group_of = group_of.reshape(-1)
    out = np.empty(table.num_rows, dtype=object)
    for group in range(len(patterns)):
        rows = np.flatnonzero(group_of == group)
        present = [n for n, ok in zip(names, valid[rows[0]]) if ok]
        if not present:
            out[rows] = [b""] * len(rows)
            continue
        part = table.select(present)
        if len(rows) != table.num_rows:
            part = part.take(pa.array(rows))
        out[rows] = example_coder.RecordBatchToExamples(to_list_batch(part))
    return out.tolist()


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _crc32c_function():
    try:
        import google_crc32c

        return google_crc32c.value
    except ImportError:  # crcmod is a declared dependency
        import crcmod.predefined

        return crcmod.predefined.mkPredefinedCrcFun("crc-32c")


_crc32c = None


def frame_records(records) -> bytes:
    """TFRecord framing: length, masked CRC-32C of the length, data, masked CRC-32C of it."""
    global _crc32c
    if _crc32c is None:
        _crc32c = _crc32c_function()
    pack_length, pack_crc = struct.Struct("<Q").pack, struct.Struct("<I").pack
    headers: dict[int, bytes] = {}
    parts = []
    for record in records:
        head = headers.get(len(record))
        if head is None:
            length = pack_length(len(record))
            head = headers[len(record)] = length + pack_crc(_masked_crc(length))
        parts += (head, record, pack_crc(_masked_crc(record)))
    return b"".join(parts)


# -- reading -----------------------------------------------------------------------------------
def split_files(examples, split: str) -> list[str]:
    """The payload files of a split (sorted, hidden files left out); a missing split
    raises one line naming the splits there are."""
    folder = examples.split_uri(split)
    if not storage.is_dir(folder):
        raise ToolkitError(f"Examples #{examples.id} has no split {split!r} "
                           f"(it has {', '.join(examples.split_names) or 'none'})")
    return sorted(storage.join(folder, f) for f in storage.listdir(folder)
                  if not f.startswith(".") and storage.is_file(storage.join(folder, f)))


def read_split(examples: Examples, split: str, columns: list[str] | None = None):
    """The split as one Arrow table, whatever the payload format."""
    import pyarrow.parquet as pq

    kind = payload_format(examples)
    if kind == FORMAT_PARQUET:
        split_files(examples, split)  # a missing split raises its own message
        return pq.read_table(storage.local_path(examples.split_uri(split)), columns=columns)
    files = split_files(examples, split)
    table = read_tfrecord_table(files, recorded_column_types(examples))
    if columns is not None:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ToolkitError(f"Examples #{examples.id} split {split!r} has no column "
                               f"{', '.join(map(repr, missing))}")
        table = table.select(columns)
    return table


def split_columns(examples: Examples, split: str) -> list[str]:
    """The column names of a split, read cheaply (Parquet footers, or the recorded
    columns of a TFRecord payload; decoded from the records only when unrecorded)."""
    import pyarrow.parquet as pq

    files = split_files(examples, split)
    if payload_format(examples) == FORMAT_PARQUET:
        parquet = [f for f in files if f.endswith(".parquet")]
        if not parquet:
            raise InputDataError(f"Examples #{examples.id} split {split!r} has no Parquet files "
                                 f"under {examples.split_uri(split)}")
        return pq.read_schema(storage.local_path(parquet[0])).names
    recorded = recorded_column_types(examples)
    if recorded:
        return [name for name, _ in recorded]
    return read_tfrecord_table(files).column_names


def split_pattern(examples: Examples, split: str) -> str:
    """A glob of the split's payload files (``*.parquet``, or every file of a TFRecord
    payload, as TFX globs them)."""
    star = "*.parquet" if payload_format(examples) == FORMAT_PARQUET else "*"
    return storage.join(storage.local_path(examples.split_uri(split)), star)


def recorded_column_types(examples) -> list[tuple[str, str]] | None:
    """The (column, Arrow type) pairs the writer recorded, so a TFRecord payload reads back
    as the table that was written; None for artifacts from elsewhere, which are decoded as
    tf.Example gives them."""
    raw = (getattr(examples, "properties", None) or {}).get(COLUMN_TYPES)
    if not raw:
        return None
    try:
        return [(str(n), str(t)) for n, t in json.loads(raw)]
    except (ValueError, TypeError):
        return None


def read_records(path: str) -> Iterator[bytes]:
    """The records of a TFRecord file (plain or GZIP), without TensorFlow. CRCs are not
    checked; a truncated file raises one line naming it."""
    import gzip

    with storage.open(path, "rb") as raw:
        magic = raw.read(2)
    unpack = struct.Struct("<Q").unpack_from
    try:
        with storage.open(path, "rb") as raw, \
                (gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw) as handle:
            buffer = b""
            while True:
                chunk = handle.read(1 << 23)
                data = buffer + chunk if buffer else chunk
                pos, end = 0, len(data)
                while end - pos >= 12:
                    (length,) = unpack(data, pos)
                    stop = pos + 12 + length + 4
                    if stop > end:
                        break
                    yield data[pos + 12:stop - 4]
                    pos = stop
                buffer = data[pos:]
                if not chunk:
                    break
    except (OSError, EOFError) as exc:
        raise InputDataError(f"{path}: cannot read the TFRecord file ({first_line(str(exc))})") \
            from None
    if buffer:
        raise InputDataError(f"{path}: truncated TFRecord file")


def count_records(files: list[str]) -> int:
    """Records in the files, counted without decoding them: a TFRecord payload's row count."""
    return sum(1 for path in files for _ in read_records(path))


def decode_examples(records: list[bytes], where: str):
    """Serialized tf.Examples to one RecordBatch of list columns (tfx_bsl's decoder)."""
    from tfx_bsl.coders import example_coder

    try:
        return example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
    except Exception as exc:
        raise InputDataError(f"{where}: records are not serialized tf.Example "
                             f"({first_line(str(exc))})") from None


def read_tfrecord_table(files: list[str], column_types: list[tuple[str, str]] | None = None):
    """TFRecord files of tf.Example as one Arrow table: features of at most one value
    per example become scalar columns (int64, float64, string; bytes that are not UTF-8
    stay binary), others stay list columns. ``column_types`` (recorded when written)
    restores the column order and types exactly, including columns missing everywhere."""
    import pyarrow as pa
    from tfx_bsl.arrow import table_util

    batches = []
    for path in files:
        chunk: list[bytes] = []
        for record in read_records(path):
            chunk.append(record)
            if len(chunk) == _DECODE_ROWS:
                batches.append(decode_examples(chunk, path))
                chunk = []
        if chunk:
            batches.append(decode_examples(chunk, path))
    if not batches:
        table = pa.table({})
    else:
        try:
            merged = table_util.MergeRecordBatches(batches)
        except Exception as exc:
            raise InputDataError(f"{os.path.dirname(files[0])}: the tf.Examples disagree on a "
                                 f"feature's type ({first_line(str(exc))})") from None
        table = pa.Table.from_batches([merged])
    table = scalar_columns(table)
    return restore_column_types(table, column_types) if column_types else table


def scalar_columns(table):
    """List columns of at most one value per row as scalar columns: int64, float64 and
    UTF-8 text (an empty or null list is a null)."""
    import pyarrow as pa

    names, columns = [], []
    for name, column in zip(table.column_names, table.columns):
        names.append(name)
        columns.append(_scalar(column))
    return pa.table(columns, names=names)


def _scalar(column):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), pa.string())
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        return column
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    if len(lengths) and lengths.max() > 1:
        return column
    values = column.flatten()
    index = np.cumsum(lengths) - 1
    flat = values.take(pa.array(index, mask=lengths == 0)) if len(values) else pa.nulls(
        len(column), values.type)
    kind = flat.type
    if pa.types.is_floating(kind):
        return flat.cast(pa.float64())
    if pa.types.is_integer(kind):
        return flat.cast(pa.int64())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            return flat.cast(pa.large_string()).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return flat.cast(pa.binary())
    return flat


def restore_column_types(table, column_types: list[tuple[str, str]]):
    """The recorded column order and types; columns no example has come back all null."""
    import pyarrow as pa

    names, columns = [], []
    for name, type_text in column_types:
        target = _arrow_type(type_text)
        if name in table.column_names:
            column = table.column(name)
            if target is not None and column.type != target:
                try:
                    column = column.cast(target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass
        else:
            column = pa.nulls(table.num_rows, target or pa.string())
        names.append(name)
        columns.append(column)
    known = set(names)
    for name in table.column_names:
        if name not in known:
            names.append(name)
            columns.append(table.column(name))
    return pa.table(columns, names=names)


def _arrow_type(text: str):
    import pyarrow as pa

    simple = {"int64": pa.int64(), "double": pa.float64(), "float": pa.float32(),
              "string": pa.string(), "large_string": pa.large_string(), "binary": pa.binary(),
              "large_binary": pa.large_binary(), "bool": pa.bool_()}
    return simple.get(text)


# -- artifact properties -------------------------------------------------------------------------
def record_splits(examples: Examples, counts: dict[str, int], ctx, verb: str,
                  names: list[str] | None = None, payload: str | None = None) -> None:
    """Publish the splits written (``names``, by default those of ``counts``), the
    payload format (``payload``, else the one set on the artifact, else Parquet) and the
    row counts; log ``"<verb> train: 1,000 rows, ..."``."""
    examples.split_names = list(counts) if names is None else names
    kind = payload or examples.properties.get("payload_format") or FORMAT_PARQUET
    examples.properties["payload_format"] = kind
    if kind == FORMAT_TF_EXAMPLE:
        examples.properties["file_format"] = "tfrecords_gzip"  # TFX's custom property
    examples.properties["row_counts"] = json.dumps(counts)
    ctx.log(f"{verb} " + ", ".join(f"{n}: {c:,} rows" for n, c in counts.items())
            + (" (GZIP TFRecord of tf.Example)" if kind == FORMAT_TF_EXAMPLE else ""))


def check_splits(examples: Examples, splits: list[str], names_what: str,
                 none: str = "") -> None:
    """Every split asked for is one of the Examples': otherwise "<names_what> 'x', but
    Examples #id has a, b" (``none`` when it has no splits)."""
    names = examples.split_names
    for split in splits:
        if split not in names:
            raise InputDataError(f"{names_what} {split!r}, but Examples "
                                 f"#{examples.id} has {', '.join(names) or none}")


# -- split parts written by Beam workers ---------------------------------------------------------
#: name of a part file a Beam worker writes (``part-<key>.parquet`` / ``.gz``); the key
#: sorts as the rows' order in the input
PART_PREFIX = "part-"


def record_column_types(examples, arrow_schema) -> None:
    """Record the columns and their Arrow types on an Examples artifact with a TFRecord
    payload (what :func:`open_split_writer` records when it writes in process)."""
    _remember_columns(examples, arrow_schema)


class PartWriter:
    """One part file of a split, written by a Beam worker: rows go to a hidden file in the
    split's folder, renamed into place by :meth:`close`, so a retried bundle replaces its
    part whole and a failed one leaves only a hidden file (never read, removed when the
    parts are published). ``payload`` is the artifact's payload format; the Arrow schema
    is that of the first table written."""

    def __init__(self, folder: str, key: str, payload: str):
        import uuid

        storage.makedirs(folder)
        suffix = ".gz" if payload == FORMAT_TF_EXAMPLE else ".parquet"
        self.path = storage.join(folder, f"{PART_PREFIX}{key}{suffix}")
        self._hidden = storage.join(folder, f".{PART_PREFIX}{key}-{uuid.uuid4().hex[:12]}")
        self._tfrecord = payload == FORMAT_TF_EXAMPLE
        self._writer = None
        self.rows = 0

    def write_table(self, table) -> None:
        if self._writer is None:
            if self._tfrecord:
                self._writer = ExampleWriter(self._hidden)
            else:
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(storage.local_path(self._hidden), table.schema,
                                                compression="snappy")
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> int:
        """Publish the part (nothing when no row was written); the rows written."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            storage.move(self._hidden, self.path)
        return self.rows


def publish_parts(examples, split: str, arrow_schema) -> list[str]:
    """Give a split's parts their final names in key order, as TFX names sharded payloads
    (``data-00000-of-00002.parquet``, ``data_tfrecord-00000-of-00002.gz``), and remove hidden
    leftovers of failed attempts. A split without parts gets one empty file of
    ``arrow_schema``, as the in-process writer leaves. The files, in order."""
    folder = examples.split_uri(split)
    storage.makedirs(folder)
    names = sorted(storage.listdir(folder))
    for name in names:
        if name.startswith(f".{PART_PREFIX}"):
            storage.remove(storage.join(folder, name))
    parts = [n for n in names if n.startswith(PART_PREFIX)]
    if not parts:
        import pyarrow as pa

        write_split(examples, split, pa.Table.from_batches([], schema=arrow_schema))
        return split_files(examples, split)
    stem = "data_tfrecord" if parts[0].endswith(".gz") else "data"
    suffix = ".gz" if parts[0].endswith(".gz") else ".parquet"
    final = []
    for index, name in enumerate(parts):
        target = storage.join(folder, f"{stem}-{index:05d}-of-{len(parts):05d}{suffix}")
        storage.move(storage.join(folder, name), target)
        final.append(target)
    return final
