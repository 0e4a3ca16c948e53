"""How ExampleGen splits: the splits its configs ask for, and the stable hash split.

``input_config`` split patterns name splits by file; ``output_config`` hash buckets
split one input by a hash of each row, so a row always lands in the same split
whichever path (whole, streamed, on Beam) writes it. Two hashes: TFX's
(``split_method="tfx"``, :mod:`.tfx_split`; the default for a tf.Example payload), so
the splits hold the rows TFX's ExampleGen puts there, and the toolkit's own of the
row's values (:func:`hash_split`; the default for Parquet, kept so its splits and
cache stay what they were).
"""
from __future__ import annotations

from typing import Any

from toolkit.artifacts import Examples
from toolkit.errors import InputDataError

DEFAULT_OUTPUT_CONFIG = {"split_config": {"splits": [{"name": "train", "hash_buckets": 2},
                                                     {"name": "eval", "hash_buckets": 1}]}}


def split_config(component_id: str, exec_properties: dict[str, Any]
                 ) -> tuple[list[tuple[str, str]] | None, list[tuple[str, int]]]:
    """(pattern splits from input_config, hash splits from output_config), checked: a
    one-line InputDataError naming the component when they define no usable split."""
    input_config = exec_properties.get("input_config") or {}
    patterns = [(s["name"], s["pattern"]) for s in input_config.get("splits", [])]
    if len(patterns) == 1 and not exec_properties.get("output_config"):
        patterns = []  # one pattern: it is the input, still hash-split below
    output_config = exec_properties.get("output_config") or DEFAULT_OUTPUT_CONFIG
    buckets = [(s["name"], int(s["hash_buckets"]))
               for s in output_config.get("split_config", {}).get("splits", [])]
    if not patterns and not buckets:
        raise InputDataError(f"{component_id}: output_config defines no splits")
    for name, count in buckets:
        if count <= 0:
            raise InputDataError(f"{component_id}: split {name!r} needs hash_buckets > 0")
    names = [n for n, _ in (patterns or buckets)]
    if len(set(names)) != len(names) or any(not _safe_split(n) for n in names):
        raise InputDataError(f"{component_id}: split names must be unique simple names, "
                             f"got {names}")
    return (patterns or None), buckets


def hash_split(table, buckets: list[tuple[str, int]],
               nullable: set[str] | frozenset[str] = frozenset(), by_value: bool = False):
    """Each hash split's rows, by a hash of the row's values.

    With ``by_value`` (span reads: rolling windows) the hash sees integer columns as float
    and the columns in name order, so a row lands in the same split whatever is read with
    it: pandas holds an integer column as float when a value is missing anywhere in what
    it reads, and the next span or window may differ there. A trip trained on in one
    window is then never evaluated in the next.

    Without it (an ``input_base`` read whole, as before spans existed) splits stay what
    they always were: a block of a streamed file names in ``nullable`` the integer columns
    missing a value anywhere in the file, hashed as float as pandas holds them in a whole
    table, so the streamed and whole-file paths split alike.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if by_value:
        names = sorted(table.column_names)
        hashed = pa.table([_as_float(table.column(n)) for n in names], names=names)
    else:
        hashed = pa.table([_as_float(c) if n in nullable else c
                           for n, c in zip(table.column_names, table.columns)],
                          names=table.column_names)
    hashes = pd.util.hash_pandas_object(hashed.to_pandas(), index=False).to_numpy()
    bucket = hashes % np.uint64(sum(n for _, n in buckets))
    low = 0
    for name, count in buckets:
        mask = (bucket >= low) & (bucket < low + count)
        low += count
        yield name, table.filter(pa.array(mask))


def spanned(examples: Examples) -> bool:
    """Whether ``examples`` was read over spans (its rows are split by value alone)."""
    return "spans" in examples.properties


def _as_float(column):
    import pyarrow as pa

    return column.cast(pa.float64()) if pa.types.is_integer(column.type) else column


def _safe_split(name: str) -> bool:
    return bool(name) and name.replace("_", "").replace("-", "").isalnum()


def split_method_of(exec_properties: dict[str, Any]) -> str:
    """The split a run uses: TFX's when ``split_method`` says so (recorded only then, so
    the cache keys of runs with the toolkit's split stay what they were)."""
    from toolkit.components.example_gen.tfx_split import TOOLKIT

    return exec_properties.get("split_method") or TOOLKIT


def split_by_index(table, buckets: list[tuple[str, int]], index):
    """Each hash split's rows, by the split position of each row (``index``)."""
    import pyarrow as pa

    for position, (name, _) in enumerate(buckets):
        yield name, table.filter(pa.array(index == position))


def tfx_csv_index(files: list[str], buckets: list[tuple[str, int]], output_config):
    """TFX's split of the rows of CSV ``files`` (an ``IndexStream``): the columns' kinds are
    learnt from all the files first, as TFX's decoder learns them."""
    from toolkit.components.csv_reader import csv_header, raw_text_batches
    from toolkit.components.example_gen import tfx_split

    kinds, partition = tfx_csv_kinds(files, output_config)
    header = csv_header(files, {}, lambda _: None)
    return tfx_split.IndexStream(raw_text_batches(files, header), kinds, buckets, partition)


def tfx_csv_kinds(files: list[str], output_config) -> tuple[dict[str, int], str | None]:
    """(each column's kind over all ``files`` as TFX's decoder infers it, the partition
    feature or None), the partition feature checked as TFX checks it."""
    from toolkit.components.csv_reader import csv_header, raw_text_batches
    from toolkit.components.example_gen import tfx_split

    header = csv_header(files, {}, lambda _: None)
    kinds = {name: tfx_split.UNKNOWN for name in header}
    for batch in raw_text_batches(files, header):
        kinds = tfx_split.merge_kinds(kinds, tfx_split.column_kinds(batch))
    partition = tfx_split.partition_feature(output_config)
    tfx_split.check_partition(partition, kinds)
    return kinds, partition


def tfx_record_index(files: list[str], buckets: list[tuple[str, int]], output_config):
    """TFX's split of TFRecord records: each record's bytes are hashed as read."""
    from toolkit.components._io import read_records
    from toolkit.components.example_gen import tfx_split

    if tfx_split.partition_feature(output_config):
        raise InputDataError("partition_feature_name splits CSV input only (TFX hashes "
                             "imported records whole): give split_method='toolkit' or no "
                             "partition_feature_name")
    total = sum(count for _, count in buckets)
    records = (record for path in files for record in read_records(path))
    return tfx_split.ArrayIndex(
        tfx_split.split_index(tfx_split.record_buckets(records, total), buckets))
