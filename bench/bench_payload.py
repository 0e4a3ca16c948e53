"""Payload formats: TFRecord of tf.Example (TFX's default) against Parquet (the toolkit's).

    .venv/bin/python bench/bench_payload.py [--rows 1000000]

Times CsvExampleGen writing each payload and StatisticsGen reading it (in memory), on
the taxi CSV repeated to ``--rows`` rows in a temporary folder, and prints each figure
with the TFRecord/Parquet ratio and the payload sizes. Library imports are paid once
before timing (a warm-up run on the plain taxi data). Figures, not assertions.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from _common import REPO

TAXI = os.path.join(REPO, "notebooks", "data", "chicago_taxi", "data.csv")
FORMATS = ("FORMAT_PARQUET", "FORMAT_TF_EXAMPLE")


def make_csv(folder: str, rows: int) -> int:
    """The taxi CSV repeated (header once) until it has at least ``rows`` rows."""
    with open(TAXI, encoding="utf-8") as handle:
        header = handle.readline()
        body = handle.read()
    per_copy = body.count("\n")
    copies = -(-rows // per_copy)
    with open(os.path.join(folder, "data.csv"), "w", encoding="utf-8") as out:
        out.write(header)
        for _ in range(copies):
            out.write(body)
    return copies * per_copy


def run(data_dir: str, root: str, payload: str) -> dict[str, float]:
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, StatisticsGen

    context = InteractiveContext(pipeline_name=f"bench_{payload.lower()}", pipeline_root=root)
    gen = CsvExampleGen(input_base=data_dir, output_data_format=payload)
    stats = StatisticsGen(examples=gen.outputs["examples"])
    started = time.perf_counter()
    context.run(gen)
    written = time.perf_counter()
    context.run(stats)
    done = time.perf_counter()
    examples = gen.outputs["examples"].get()[0]
    size = sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(examples.uri) for name in names)
    return {"example_gen": written - started, "statistics_gen": done - written,
            "size_mb": size / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench_payload_")
    try:
        warm = os.path.join(work, "warm")
        os.makedirs(warm)
        shutil.copy(TAXI, os.path.join(warm, "data.csv"))
        for payload in FORMATS:  # imports (TensorFlow, TFDV, tfx_bsl) paid here
            run(warm, os.path.join(work, "warm_root"), payload)
        data = os.path.join(work, "data")
        os.makedirs(data)
        rows = make_csv(data, args.rows)
        csv_mb = os.path.getsize(os.path.join(data, "data.csv")) / 2**20
        print(f"{rows:,} rows, {csv_mb:,.0f} MB of CSV (taxi repeated), "
              f"Python {sys.version.split()[0]}, {os.cpu_count()} cores")
        figures = {payload: run(data, os.path.join(work, f"root_{payload}"), payload)
                   for payload in FORMATS}
        parquet, tfrecord = figures["FORMAT_PARQUET"], figures["FORMAT_TF_EXAMPLE"]
        print(f"{'':28}{'Parquet':>10}{'TFRecord':>10}{'ratio':>8}")
        for key, label, unit in (("example_gen", "CsvExampleGen (write)", "s"),
                                 ("statistics_gen", "StatisticsGen (read+TFDV)", "s"),
                                 ("size_mb", "payload size", "MB")):
            print(f"{label:28}{parquet[key]:>8.2f}{unit:>2}{tfrecord[key]:>8.2f}{unit:>2}"
                  f"{tfrecord[key] / parquet[key]:>7.1f}x")
        total_p = parquet["example_gen"] + parquet["statistics_gen"]
        total_t = tfrecord["example_gen"] + tfrecord["statistics_gen"]
        print(f"{'both':28}{total_p:>8.2f} s{total_t:>8.2f} s{total_t / total_p:>7.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
