"""TFX's penguin_simple pipeline (CsvExampleGen → Trainer → Pusher, the tutorial's own
module file) end to end, and what ``LocalDagRunner`` costs over running the same
components one by one with ``InteractiveContext.run``.

    .venv/bin/python bench/bench_pipeline.py [--repeat 3] [--steps 100]

After one untimed run (imports and first traces), each repeat builds the pipeline afresh
on new roots, then times, in one process: the
``LocalDagRunner`` run (cold), the same pipeline run again (all cache hits, checked), and
the same components through ``context.run`` on another root (cold). Prints the medians and
the LocalDagRunner/context ratio. Figures, not assertions.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from _common import REPO

sys.path.insert(0, os.path.join(REPO, "tests"))


def tutorial_module() -> str:
    """The body of penguin_simple's ``%%writefile`` cell, as TFX publishes it."""
    import tfx_tutorials

    [cell] = [c for c in tfx_tutorials.published("penguin_simple")["cells"]
              if tfx_tutorials.is_module_file(c)]
    return tfx_tutorials.source(cell).split("\n", 1)[1]


def build(work: str, steps: int):
    """TFX's penguin_simple ``_create_pipeline``: the pipeline and its components."""
    import tfx_tutorials

    from toolkit import v1 as tfx

    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    shutil.copy(tfx_tutorials.PENGUIN_CSV, os.path.join(data, "data.csv"))
    module = os.path.join(work, "penguin_trainer.py")
    with open(module, "w", encoding="utf-8") as handle:
        handle.write(tutorial_module())
    example_gen = tfx.components.CsvExampleGen(input_base=data)
    trainer = tfx.components.Trainer(module_file=module, examples=example_gen.outputs["examples"],
                                     train_args=tfx.proto.TrainArgs(num_steps=steps),
                                     eval_args=tfx.proto.EvalArgs(num_steps=5))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=os.path.join(work, "serving"))))
    return tfx.dsl.Pipeline(pipeline_name="penguin-bench", pipeline_root=os.path.join(work, "root"),
                            enable_cache=True,
                            components=[example_gen, trainer, pusher],
                            metadata_connection_config=tfx.orchestration.metadata
                            .sqlite_metadata_connection_config(os.path.join(work, "md.sqlite")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()

    import contextlib
    import io
    import statistics

    from toolkit import InteractiveContext
    from toolkit import v1 as tfx

    os.environ.setdefault("TOOLKIT_PROGRESS", "0")
    runner, by_hand, cached = [], [], []
    quiet = io.StringIO()
    with tempfile.TemporaryDirectory() as warm, contextlib.redirect_stdout(quiet):
        os.environ["TOOLKIT_PUSH_ROOT"] = os.path.dirname(warm)
        start = time.perf_counter()
        tfx.orchestration.LocalDagRunner().run(build(warm, args.steps))  # imports, first traces
        first = time.perf_counter() - start
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            os.environ["TOOLKIT_PUSH_ROOT"] = os.path.dirname(a)
            pipeline = build(a, args.steps)
            with contextlib.redirect_stdout(quiet):
                start = time.perf_counter()
                tfx.orchestration.LocalDagRunner().run(pipeline)
                runner.append(time.perf_counter() - start)
                start = time.perf_counter()
                again = tfx.orchestration.LocalDagRunner().run(pipeline)
                cached.append(time.perf_counter() - start)
                assert len(again.cached) == len(pipeline.components), again
                same = build(b, args.steps)
                start = time.perf_counter()
                context = InteractiveContext(pipeline_name=same.pipeline_name,
                                             pipeline_root=same.pipeline_root,
                                             metadata_connection_config=same.metadata_connection_config)
                for component in same.components:
                    context.run(component)
                by_hand.append(time.perf_counter() - start)
    r, h, c = (statistics.median(x) for x in (runner, by_hand, cached))
    print(f"penguin_simple ({args.steps} steps), median of {args.repeat}, one process:")
    print(f"  first run in a fresh process:    {first:7.2f} s (TensorFlow's import included)")
    print(f"  LocalDagRunner, cold:            {r:7.2f} s")
    print(f"  context.run per component, cold: {h:7.2f} s")
    print(f"  LocalDagRunner / context.run:    {r / h:7.2f}x")
    print(f"  LocalDagRunner again (cached):   {c:7.2f} s")


if __name__ == "__main__":
    main()
