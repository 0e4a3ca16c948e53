"""Paths shared by tests (a module of its own: every test folder has its own conftest)."""
import os
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "notebooks", "data")
TAXI_CSV = os.path.join(DATA, "chicago_taxi", "data.csv")
GERMAN_CSV = os.path.join(DATA, "german_credit", "german.csv")
#: the small notebooks the exporter and runner tests work on (a Path: tests join names to it)
FIXTURES = Path(REPO) / "tests" / "fixtures" / "notebooks"


def taxi_split_counts(csv: str = TAXI_CSV) -> dict[str, int]:
    """The rows of each split of CsvExampleGen's default output_config (train 2 buckets,
    eval 1) over ``csv``, by the rule docs/components.md states (Ingest), computed here from the raw file:
    a row goes to bucket ``hash % 3`` of its values as pandas reads the CSV
    (``pandas.util.hash_pandas_object``, no index), buckets 0-1 train, 2 eval."""
    import numpy as np
    import pandas as pd

    bucket = pd.util.hash_pandas_object(pd.read_csv(csv), index=False).to_numpy() % np.uint64(3)
    return {"train": int((bucket < 2).sum()), "eval": int((bucket == 2).sum())}


def tfx_split_rows(csv_path: str = TAXI_CSV, buckets=(("train", 2), ("eval", 1)),
                   partition: str | None = None) -> dict[str, list[list[str]]]:
    """Each split's CSV rows (as text cells) as TFX's CsvExampleGen assigns them, computed
    here from TFX's algorithm with TensorFlow's own protos: the column types over the whole
    file as tfx_bsl's CSV decoder infers them (int64 if every non-empty cell is an int64,
    else float if every one is a float, else bytes), one feature per column (an empty cell
    an empty list), the example serialized deterministically, sha256 read as a hex number,
    modulo the total buckets, the splits taking their buckets in order (``partition``: only
    that feature, serialized, is hashed)."""
    import bisect
    import csv
    import hashlib

    import tensorflow as tf

    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for row in reader if row]

    def kind(cell: str) -> int:
        if not cell:
            return -1
        try:
            return 0 if -2 ** 63 <= int(cell.encode()) < 2 ** 63 else 2
        except ValueError:
            try:
                float(cell.encode())
                return 1
            except ValueError:
                return 2

    kinds = [max(kind(row[i]) for row in rows) for i in range(len(header))]

    def feature(k: int, cell: str):
        if k == 0:
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(cell)] if cell else []))
        if k == 1:
            return tf.train.Feature(float_list=tf.train.FloatList(value=[float(cell)] if cell else []))
        if k == 2:
            return tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[cell.encode()] if cell else []))
        return tf.train.Feature()

    bounds, total = [], 0
    for _, count in buckets:
        total += count
        bounds.append(total)
    out: dict[str, list[list[str]]] = {name: [] for name, _ in buckets}
    for row in rows:
        features = {name: feature(k, cell) for name, k, cell in zip(header, kinds, row)}
        if partition is None:
            key = tf.train.Example(features=tf.train.Features(feature=features)
                                   ).SerializeToString(deterministic=True)
        else:
            key = features[partition].SerializeToString(deterministic=True)
        bucket = int(hashlib.sha256(key).hexdigest(), 16) % total
        out[buckets[bisect.bisect(bounds, bucket)][0]].append(row)
    return out
