"""The Tuner's trials one after another against two at once (worker processes).

    .venv/bin/python bench/bench_tuner.py [--train-steps 20] [--eval-steps 5]

Runs TFX's penguin pipeline (``tests/fixtures/tfx_penguin``: CsvExampleGen, StatisticsGen,
SchemaGen, Transform) once, untimed, then the Tuner with TFX's penguin module (6 trials,
its ``max_trials``) twice on the same inputs: ``num_parallel_trials`` 1 (the search in this
process, as TFX runs it) and 2 (two worker processes and the chief in this one). Prints
each wall time, the trials each ran and the ratio. Figures, not assertions.

Each worker imports TensorFlow and builds its datasets before its first trial, a fixed cost
of tens of seconds on a small machine, which the in-process search has already paid; with
TFX's 20 steps a trial lasts a second or two after the first, so two workers only pay off
when trials are longer (``--train-steps``) and there is a free core per worker.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

from _common import REPO

PENGUIN = os.path.join(REPO, "tests", "fixtures", "tfx_penguin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=20, help="TFX's penguin Tuner: 20")
    parser.add_argument("--eval-steps", type=int, default=5, help="TFX's penguin Tuner: 5")
    args = parser.parse_args()

    from toolkit import InteractiveContext
    from toolkit import v1 as tfx

    work = tempfile.mkdtemp(prefix="bench_tuner_")
    try:
        modules = os.path.join(work, "modules")
        os.makedirs(modules)
        for name in ("penguin_utils_keras.py", "penguin_utils_base.py"):
            shutil.copy(os.path.join(PENGUIN, name), modules)
        module_file = os.path.join(modules, "penguin_utils_keras.py")
        context = InteractiveContext(pipeline_name="bench_tuner",
                                     pipeline_root=os.path.join(work, "root"))
        example_gen = tfx.components.CsvExampleGen(input_base=os.path.join(PENGUIN, "data"))
        statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
        transform = tfx.components.Transform(examples=example_gen.outputs["examples"],
                                             schema=schema_gen.outputs["schema"],
                                             module_file=module_file)
        for component in (example_gen, statistics_gen, schema_gen, transform):
            context.run(component)
        figures = {}
        for workers in (1, 2):
            tuner = tfx.components.Tuner(
                module_file=module_file, examples=transform.outputs["transformed_examples"],
                transform_graph=transform.outputs["transform_graph"],
                train_args=tfx.proto.TrainArgs(num_steps=args.train_steps),
                eval_args=tfx.proto.EvalArgs(num_steps=args.eval_steps),
                tune_args=tfx.proto.TuneArgs(num_parallel_trials=workers),
            ).with_id(f"Tuner_{workers}")
            started = time.perf_counter()
            context.run(tuner)
            elapsed = time.perf_counter() - started
            results = tuner.outputs["tuner_results"].get()[0]
            with open(os.path.join(results.uri, "trials.json"), encoding="utf-8") as handle:
                trials = json.load(handle)["trials"]
            figures[workers] = (elapsed, trials)
        print(f"\nTuner, TFX's penguin module, train_steps={args.train_steps}, "
              f"eval_steps={args.eval_steps}, {os.cpu_count()} cores")
        for workers, (elapsed, trials) in figures.items():
            done = sum(1 for t in trials if t["status"] == "COMPLETED")
            per_trial = sorted(t["duration_s"] for t in trials if t["duration_s"] is not None)
            median = per_trial[len(per_trial) // 2] if per_trial else float("nan")
            print(f"  num_parallel_trials={workers}: {elapsed:6.1f} s for {done}/{len(trials)} "
                  f"trials completed (median trial {median:.1f} s, first "
                  f"{trials[0]['duration_s']:.1f} s)")
        ratio = figures[2][0] / figures[1][0]
        print(f"  2 at once / 1 at a time: {ratio:.2f}x the time")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
