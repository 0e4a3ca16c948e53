"""TFX's hash split, computed as TFX's ExampleGen computes it, row for row.

TFX's CSV ExampleGen makes each CSV row a ``tf.Example`` with one feature per column.
A column's type is decided over all the rows read: int64 when every non-empty value
is a 64-bit integer, else float when every one parses as a float, else bytes; a column
with no value at all gives features without a kind. An empty value is a feature with
an empty list (present, holding nothing). The row's bucket is the sha256 of that example
serialized deterministically (features in name order), read as one big-endian number,
modulo the total of the split's ``hash_buckets``; buckets go to the splits in config
order. With ``partition_feature_name`` only that feature, serialized alone, is hashed.
TFRecord input is hashed as the records read.

The bytes are produced here as protobuf's deterministic serialization produces them,
column by column over each column's distinct values, so no message is built per row
and a million rows take seconds. Splitting this way makes a toolkit pipeline's train
and eval hold the rows TFX's would, whatever payload is written.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Iterator

from toolkit.errors import InputDataError

#: ``split_method`` values: TFX's hash of the serialized tf.Example, or the toolkit's own
TFX = "tfx"
TOOLKIT = "toolkit"
SPLIT_METHODS = (TFX, TOOLKIT)

#: a column's kind, ordered as TFX's decoder widens it (no value < int < float < bytes)
UNKNOWN, INT, FLOAT, STRING = -1, 0, 1, 2
_I64_MIN, _I64_MAX = -(2 ** 63), 2 ** 63 - 1
#: a present feature with an empty list, per kind (int64_list = 3, float_list = 2, bytes_list = 1)
_EMPTY = {UNKNOWN: b"", INT: b"\x1a\x00", FLOAT: b"\x12\x00", STRING: b"\n\x00"}


def check_split_method(value, what: str = "split_method") -> str | None:
    """``value`` when it is a known split method (or None); else one line naming the choices."""
    if value is None or value in SPLIT_METHODS:
        return value
    raise InputDataError(f"{what} {value!r} is not a split method: use 'tfx' (TFX's hash of "
                         "the serialized tf.Example) or 'toolkit' (the toolkit's own hash)")


def value_kind(text: str) -> int:
    """The kind TFX's CSV decoder infers from one cell (as bytes, as it reads them)."""
    if not text:
        return UNKNOWN
    raw = text.encode()
    try:
        return INT if _I64_MIN <= int(raw) <= _I64_MAX else STRING
    except ValueError:
        try:
            float(raw)
        except ValueError:
            return STRING
        return FLOAT


def column_kinds(batch) -> dict[str, int]:
    """Each column's kind over one batch of raw CSV text (empty cells as ``""``)."""
    import pyarrow.compute as pc

    kinds = {}
    for name, column in zip(batch.schema.names, batch.columns):
        kind = UNKNOWN
        for text in pc.unique(column).to_pylist():
            kind = max(kind, value_kind(text or ""))
            if kind == STRING:
                break
        kinds[name] = kind
    return kinds


def merge_kinds(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Two batches' kinds as one (the wider of each)."""
    return {name: max(kind, b.get(name, UNKNOWN)) for name, kind in a.items()}


def partition_feature(output_config) -> str | None:
    """``split_config.partition_feature_name`` of an output_config, or None when unset."""
    split_config = (output_config or {}).get("split_config") or {}
    return split_config.get("partition_feature_name") or None


def check_partition(name: str | None, kinds: dict[str, int]) -> None:
    """TFX's conditions on the partition feature, each one line naming the fix."""
    if name is None:
        return
    if name not in kinds:
        raise InputDataError(f"partition_feature_name {name!r} is not a column of the CSV "
                             f"(columns: {', '.join(kinds)})")
    if kinds[name] == UNKNOWN:
        raise InputDataError(f"partition_feature_name {name!r}: the column has no value; "
                             "partition by a column that has values")
    if kinds[name] == FLOAT:
        raise InputDataError(f"partition_feature_name {name!r} is a float column; partition "
                             "by an integer or text column, as TFX requires")


def csv_buckets(batch, kinds: dict[str, int], total: int,
                partition: str | None = None):
    """Each row's bucket (0 .. total-1) of one batch of raw CSV text, as TFX computes it
    from the example the row becomes (``kinds``: the columns' kinds over all rows read)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = batch.schema.names
    batch = _Columns(batch)
    if partition is not None:
        return _column_buckets(_feature_column(batch.column(names.index(partition)),
                                               kinds[partition], lambda v: v), total)
    entries = []
    for name in sorted(names, key=str.encode):  # deterministic: map entries by key
        key = name.encode()
        head = b"\n" + _varint(len(key)) + key + b"\x12"  # the entry's key, then its value

        def entry(feature: bytes, head=head) -> bytes:
            inner = head + _varint(len(feature)) + feature
            return b"\n" + _varint(len(inner)) + inner

        entries.append(_feature_column(batch.column(names.index(name)), kinds[name], entry))
    joined = pc.binary_join_element_wise(*entries, pa.scalar(b"", pa.binary()))
    return _column_buckets(_prefixed(joined, b"", b"\n"), total)


def record_buckets(records: Iterable[bytes], total: int):
    """The bucket of each record: sha256, as a big-endian number, modulo ``total``."""
    sha = hashlib.sha256
    return _modulo([sha(r).digest() for r in records], total)


def _column_buckets(column, total: int):
    """:func:`record_buckets` of the values of a binary array, read in place."""
    import numpy as np
    import pyarrow as pa

    if column.type != pa.binary():
        column = column.cast(pa.binary())
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32,
                            count=len(column) + 1, offset=column.offset * 4).tolist()
    data = memoryview(column.buffers()[2] or b"")
    sha = hashlib.sha256
    return _modulo([sha(data[a:b]).digest() for a, b in zip(offsets, offsets[1:])], total)


def _modulo(digests: list[bytes], total: int):
    """Each 32-byte digest as a big-endian number modulo ``total``, vectorised: the digest's
    four 64-bit words folded in with ``2**64 % total`` (exact while ``total < 2**32``)."""
    import numpy as np

    if total >= 2 ** 32 or not digests:
        return np.array([int.from_bytes(d, "big") % total for d in digests], dtype=np.int64)
    words = np.frombuffer(b"".join(digests), dtype=">u8").reshape(-1, 4).astype(np.uint64)
    step, n = np.uint64(2 ** 64 % total), np.uint64(total)
    rest = np.zeros(len(digests), dtype=np.uint64)
    for i in range(4):
        rest = (rest * step + words[:, i] % n) % n
    return rest.astype(np.int64)


def split_index(bucket_numbers, buckets: list[tuple[str, int]]):
    """Which split (its position in ``buckets``) each bucket number falls in: the first
    split's buckets first, as TFX assigns them."""
    import numpy as np

    bounds = np.cumsum([count for _, count in buckets])
    return np.searchsorted(bounds, bucket_numbers, side="right").astype(np.int32)


class IndexStream:
    """Split positions of the rows of raw CSV text batches, handed out in runs of any
    length, so a reader with other block boundaries takes each block's positions in
    bounded memory."""

    def __init__(self, batches: Iterator, kinds: dict[str, int],
                 buckets: list[tuple[str, int]], partition: str | None):
        self._batches = batches
        self._kinds = kinds
        self._buckets = buckets
        self._total = sum(count for _, count in buckets)
        self._partition = partition
        self._pending = None

    def take(self, rows: int):
        import numpy as np

        parts, needed = [], rows
        while needed > 0:
            if self._pending is None or not len(self._pending):
                batch = next(self._batches, None)
                if batch is None:
                    raise InputDataError("the CSV text read for TFX's split has fewer rows "
                                         "than the typed read; re-run with "
                                         "split_method='toolkit' and report the file")
                self._pending = split_index(csv_buckets(batch, self._kinds, self._total,
                                                        self._partition), self._buckets)
            part, self._pending = self._pending[:needed], self._pending[needed:]
            parts.append(part)
            needed -= len(part)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


class ArrayIndex:
    """Split positions already computed, handed out as :class:`IndexStream` hands them."""

    def __init__(self, positions):
        self._positions = positions
        self._at = 0

    def take(self, rows: int):
        part = self._positions[self._at:self._at + rows]
        self._at += rows
        return part


def _feature_column(column, kind: int, wrap):
    """``wrap`` of the serialized ``Feature`` of each cell of a raw text column of ``kind``
    (computed once per distinct value)."""
    import numpy as np
    import pyarrow as pa

    encoded = column.dictionary_encode()
    values = encoded.dictionary.to_pylist()
    if kind == FLOAT:
        with np.errstate(over="ignore"):
            floats = np.array([float(v.encode()) if v else 0.0 for v in values],
                              dtype=np.float64).astype("<f4")
        table = [b"\x12\x06\n\x04" + floats[i].tobytes() if v else _EMPTY[FLOAT]
                 for i, v in enumerate(values)]
    else:
        table = [_feature(kind, v or "") for v in values]
    return pa.array([wrap(b) for b in table], pa.binary()).take(encoded.indices)


class _Columns:
    """A batch or table's columns as single arrays (by position)."""

    def __init__(self, batch):
        import pyarrow as pa

        self._columns = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
                         for c in batch.columns]

    def column(self, index: int):
        return self._columns[index]


def _feature(kind: int, text: str) -> bytes:
    if kind == UNKNOWN or not text:
        return _EMPTY[kind]
    raw = text.encode()
    if kind == INT:
        packed = _varint(int(raw) & 0xFFFFFFFFFFFFFFFF)
        values = b"\n" + _varint(len(packed)) + packed
        return b"\x1a" + _varint(len(values)) + values
    values = b"\n" + _varint(len(raw)) + raw
    return b"\n" + _varint(len(values)) + values


def _prefixed(column, head: bytes, tag: bytes):
    """``tag + varint(len(head + value)) + head + value`` for each value of a binary column:
    ``value`` as a length-delimited field (``head`` inside it)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = pc.binary_length(column)
    encoded = lengths.dictionary_encode()
    prefixes = pa.array([tag + _varint(n + len(head)) + head
                         for n in encoded.dictionary.to_pylist()], pa.binary())
    return pc.binary_join_element_wise(prefixes.take(encoded.indices), column,
                                       pa.scalar(b"", pa.binary()))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)
