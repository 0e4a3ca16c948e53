"""ExampleGen's hash split: TFX's (sha256 of each row's tf.Example) against the toolkit's own.

    .venv/bin/python bench/bench_split.py [--rows 1000000]

On the taxi CSV repeated to ``--rows`` rows in a temporary folder, times assigning the
rows to train and eval (2:1) both ways, on a table already read: TFX's way reads the CSV
as raw text twice (column kinds, then the examples) and hashes each example; the
toolkit's hashes the typed table. Then times CsvExampleGen end to end (Parquet) with each
``split_method``. Prints each figure with the TFX/toolkit ratio. Figures, not assertions.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from _common import REPO, median_time
from bench_payload import TAXI, make_csv

BUCKETS = [("train", 2), ("eval", 1)]


def split_toolkit(table) -> dict[str, int]:
    from toolkit.components.example_gen.splitting import hash_split

    return {name: part.num_rows for name, part in hash_split(table, BUCKETS)}


def split_tfx(files: list[str], table) -> dict[str, int]:
    from toolkit.components.example_gen.splitting import split_by_index, tfx_csv_index

    index = tfx_csv_index(files, BUCKETS, None).take(table.num_rows)
    return {name: part.num_rows for name, part in split_by_index(table, BUCKETS, index)}


def example_gen(data_dir: str, root: str, method: str) -> float:
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen

    context = InteractiveContext(pipeline_name=f"bench_split_{method}", pipeline_root=root)
    gen = CsvExampleGen(input_base=data_dir, split_method=method)
    started = time.perf_counter()
    context.run(gen)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    from toolkit.components.csv_reader import read_csv_files

    work = tempfile.mkdtemp(prefix="bench_split_")
    try:
        warm = os.path.join(work, "warm")
        os.makedirs(warm)
        shutil.copy(TAXI, os.path.join(warm, "data.csv"))
        for method in ("toolkit", "tfx"):  # imports paid here
            example_gen(warm, os.path.join(work, "warm_root"), method)
        data = os.path.join(work, "data")
        os.makedirs(data)
        rows = make_csv(data, args.rows)
        files = [os.path.join(data, "data.csv")]
        csv_mb = os.path.getsize(files[0]) / 2**20
        print(f"{rows:,} rows, {csv_mb:,.0f} MB of CSV (taxi repeated), "
              f"Python {sys.version.split()[0]}, {os.cpu_count()} cores")
        table = read_csv_files(files, {}, lambda _: None)
        toolkit_s, toolkit_counts = median_time(lambda: split_toolkit(table), repeat=3)
        tfx_s, tfx_counts = median_time(lambda: split_tfx(files, table), repeat=3)
        gen_toolkit = example_gen(data, os.path.join(work, "root_toolkit"), "toolkit")
        gen_tfx = example_gen(data, os.path.join(work, "root_tfx"), "tfx")
        print(f"{'':34}{'toolkit':>10}{'TFX':>10}{'ratio':>8}")
        print(f"{'assign the splits (table read)':34}{toolkit_s:>9.2f}s{tfx_s:>9.2f}s"
              f"{tfx_s / toolkit_s:>7.1f}x")
        print(f"{'CsvExampleGen, Parquet (end to end)':34}{gen_toolkit:>9.2f}s{gen_tfx:>9.2f}s"
              f"{gen_tfx / gen_toolkit:>7.1f}x")
        print(f"splits: toolkit {toolkit_counts}, TFX {tfx_counts}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
