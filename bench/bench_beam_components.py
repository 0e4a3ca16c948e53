"""Benchmark: StatisticsGen and Transform in process against the multi-processing
DirectRunner (2 workers), through the public API, on taxi trips sampled to N rows.

On one 2-core machine Beam's workers cost more than they save (each imports TensorFlow,
and every record crosses a process boundary); the figures say how much, so the choice
of runner is an informed one. Prints wall times and the same-run ratio, and checks that
both runs count the same examples.

Usage: python bench/bench_beam_components.py [--rows 1000000]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from _common import REPO

TAXI_CSV = os.path.join(REPO, "notebooks", "data", "chicago_taxi", "data.csv")
TRANSFORM_MODULE = os.path.join(REPO, "notebooks", "taxi_transform.py")
MULTI = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    options = parser.parse_args()
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    import pandas as pd

    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, SchemaGen, StatisticsGen, Transform

    folder = tempfile.mkdtemp(prefix="bench-beam-components-")
    data = os.path.join(folder, "data")
    os.makedirs(data)
    pd.read_csv(TAXI_CSV).sample(options.rows, replace=True, random_state=0).to_csv(
        os.path.join(data, "data.csv"), index=False)
    context = InteractiveContext(pipeline_name="bench_beam", pipeline_root=os.path.join(folder, "root"))
    example_gen = CsvExampleGen(input_base=data)
    context.run(example_gen)
    print(f"rows={options.rows:,} (runner: {' '.join(MULTI)})", flush=True)
    times: dict[str, float] = {}

    def timed(name: str, component, args: list[str]):
        start = time.perf_counter()
        context.run(component, beam_pipeline_args=args)
        times[name] = time.perf_counter() - start
        return component

    stats = {}
    for name, args in (("in process", []), ("multi-processing", MULTI)):
        suffix = "" if not args else "Multi"
        stats[name] = timed(f"StatisticsGen {name}",
                            StatisticsGen(examples=example_gen.outputs["examples"]
                                          ).with_id("StatisticsGen" + suffix), args)
    counts = {n: [d.num_examples for s in c.outputs["statistics"].get()[0].split_names
                  for d in c.outputs["statistics"].get()[0].load(s).datasets]
              for n, c in stats.items()}
    schema = SchemaGen(statistics=stats["in process"].outputs["statistics"])
    context.run(schema)
    transformed = {}
    for name, args in (("in process", []), ("multi-processing", MULTI)):
        suffix = "" if not args else "Multi"
        transform = Transform(examples=example_gen.outputs["examples"],
                              schema=schema.outputs["schema"], module_file=TRANSFORM_MODULE
                              ).with_id("Transform" + suffix)
        timed(f"Transform {name}", transform, args)
        transformed[name] = json.loads(
            transform.outputs["transformed_examples"].get()[0].properties["row_counts"])
    for component in ("StatisticsGen", "Transform"):
        memory, multi = times[f"{component} in process"], times[f"{component} multi-processing"]
        print(f"{component:13s} in process {memory:7.1f} s   multi-processing (2 workers) "
              f"{multi:7.1f} s   ratio {multi / memory:.2f}x", flush=True)
    print(f"same example counts: statistics {counts['in process'] == counts['multi-processing']}, "
          f"transformed {transformed['in process'] == transformed['multi-processing']}", flush=True)
    sys.stdout.flush()
    shutil.rmtree(folder, ignore_errors=True)
    # a tf.Transform run on the multi-processing runner may crash the interpreter at exit
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
