"""Foundation benchmarks: start-up cost, StatisticsGen against raw TFDV, cached re-runs.

    .venv/bin/python bench/bench_data.py [--rows 1000000]

Prints each figure and its ratio against the reference measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAXI = os.path.join(REPO, "notebooks", "data", "chicago_taxi", "data.csv")


def _wall(cmd: list[str], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def startup() -> None:
    py = sys.executable
    toolkit_bin = os.path.join(os.path.dirname(py), "toolkit")
    import_toolkit = _wall([py, "-c", "import toolkit"])
    import_tf = _wall([py, "-c", "import tensorflow"], repeat=1)
    print(f"import toolkit:           {import_toolkit:6.3f} s")
    try:
        help_time = _wall([toolkit_bin, "--help"])
        print(f"toolkit --help:           {help_time:6.3f} s")
    except (OSError, subprocess.CalledProcessError) as exc:
        help_time = None
        print(f"toolkit --help:           failed ({exc})")
    print(f"import tensorflow:        {import_tf:6.3f} s")
    print(f"  ratio tensorflow / import toolkit: {import_tf / import_toolkit:6.1f}x "
          f"(target >= 30x, toolkit < 0.5 s)")
    if help_time:
        print(f"  ratio tensorflow / toolkit --help: {import_tf / help_time:6.1f}x")


def statistics_gen(rows: int) -> None:
    import pandas as pd
    import tensorflow_data_validation as tfdv

    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, StatisticsGen

    work = tempfile.mkdtemp(prefix="bench-data-")
    try:
        base = pd.read_csv(TAXI)
        frame = pd.concat([base] * (rows // len(base) + 1), ignore_index=True).iloc[:rows]
        os.makedirs(os.path.join(work, "data"))
        frame.to_csv(os.path.join(work, "data", "data.csv"), index=False)
        context = InteractiveContext(pipeline_name="bench", pipeline_root=os.path.join(work, "root"))
        example_gen = CsvExampleGen(input_base=os.path.join(work, "data"),
                                    output_config={"split_config": {"splits": [
                                        {"name": "all", "hash_buckets": 1}]}})
        start = time.perf_counter()
        context.run(example_gen)
        ingest = time.perf_counter() - start
        loaded = pd.read_parquet(example_gen.outputs["examples"].get()[0].split_uri("all"))
        tfdv.generate_statistics_from_dataframe(loaded.head(1000))  # warm up TFDV
        stats_gen = StatisticsGen(examples=example_gen.outputs["examples"])
        raws, ours_all = [], []
        for _ in range(3):  # interleaved, best of three: the machine is shared and noisy
            start = time.perf_counter()
            tfdv.generate_statistics_from_dataframe(loaded)
            raws.append(time.perf_counter() - start)
            start = time.perf_counter()
            context.run(stats_gen, enable_cache=False)
            ours_all.append(time.perf_counter() - start)
        raw, ours = min(raws), min(ours_all)
        print(f"CsvExampleGen, {rows:,} rows:                    {ingest:6.2f} s")
        print(f"tfdv.generate_statistics_from_dataframe:        {raw:6.2f} s (best of 3)")
        print(f"StatisticsGen (read Parquet + stats + write):   {ours:6.2f} s (best of 3)")
        print(f"  ratio StatisticsGen / raw TFDV call: {ours / raw:5.2f}x (target <= 1.5x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cached_rerun() -> None:
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, ExampleValidator, SchemaGen, StatisticsGen

    work = tempfile.mkdtemp(prefix="bench-cache-")
    try:
        def build():
            eg = CsvExampleGen(input_base=os.path.dirname(TAXI))
            sg = StatisticsGen(examples=eg.outputs["examples"])
            sc = SchemaGen(statistics=sg.outputs["statistics"])
            ev = ExampleValidator(statistics=sg.outputs["statistics"], schema=sc.outputs["schema"])
            return [eg, sg, sc, ev]

        context = InteractiveContext(pipeline_name="bench", pipeline_root=work)
        start = time.perf_counter()
        for c in build():
            context.run(c)
        cold = time.perf_counter() - start
        script = (f"import time; t=time.perf_counter()\n"
                  f"from toolkit import InteractiveContext\n"
                  f"from toolkit.components import *\n"
                  f"ctx = InteractiveContext(pipeline_name='bench', pipeline_root={work!r})\n"
                  f"eg = CsvExampleGen(input_base={os.path.dirname(TAXI)!r})\n"
                  f"sg = StatisticsGen(examples=eg.outputs['examples'])\n"
                  f"sc = SchemaGen(statistics=sg.outputs['statistics'])\n"
                  f"ev = ExampleValidator(statistics=sg.outputs['statistics'], schema=sc.outputs['schema'])\n"
                  f"t0=time.perf_counter()\n"
                  f"assert all(ctx.run(c).cached for c in (eg, sg, sc, ev))\n"
                  f"print(time.perf_counter()-t0, time.perf_counter()-t)\n")
        out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                             text=True, cwd=REPO).stdout.split()
        start = time.perf_counter()
        assert all(context.run(c).cached for c in build())
        warm = time.perf_counter() - start
        print(f"four data components, cold:                     {cold:6.2f} s")
        print(f"cached re-run, same kernel:                     {warm:6.3f} s (target < 0.5 s)")
        print(f"cached re-run, new process (runs only):         {float(out[0]):6.3f} s")
        print(f"cached re-run, new process (incl. imports):     {float(out[1]):6.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print("== start-up ==")
    startup()
    print("== cached re-run ==")
    cached_rerun()
    print("== statistics ==")
    statistics_gen(args.rows)


if __name__ == "__main__":
    main()
