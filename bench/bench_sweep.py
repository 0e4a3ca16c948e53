"""Benchmark a sweep against the same points run one by one.

Measures, on this machine and in the same run of this script:
  1. `toolkit run export/taxi.ipynb --grid train_steps=A,B,C --parallel 2` on a fresh
     root: the points share the root, so the data half (ExampleGen to Transform) is
     computed once and each point trains and evaluates its own model;
  2. three plain `toolkit run`s of the same points one after another, each on a fresh
     root of its own (what a sweep by hand costs when every run starts clean);
and prints both wall times and their ratio, plus how many executions each way computed.

Usage:
    python bench/bench_sweep.py [--steps 200,260,320] [--parallel 2] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO

EXPORT = os.path.join(REPO, "export", "taxi.ipynb")
TOOLKIT = os.path.join(os.path.dirname(sys.executable), "toolkit")


def _run(args: list[str], base: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([TOOLKIT, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "TOOLKIT_PUSH_ROOT": str(base)})
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"toolkit {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")
    return elapsed


def _values(root: Path, name: str) -> list[str]:
    values = {"pipeline_name": name, "pipeline_root": str(root / "pipeline"),
              "serving_dir": str(root / "serving")}
    return [part for key, value in values.items() for part in ("-p", key, value)]


def _computed(root: Path, name: str) -> int:
    from toolkit.metadata import MetadataStore, sqlite_config

    store = MetadataStore(name, sqlite_config(str(root / "pipeline" / "metadata.sqlite")))
    return sum(1 for row in store.executions() if row["state"] == "COMPLETE")


def bench(steps: list[int], parallel: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        base = Path(tmp)
        swept = base / "sweep"
        grid = "train_steps=" + ",".join(map(str, steps))
        sweep_s = _run(["run", EXPORT, "--grid", grid, "--parallel", str(parallel), "-q",
                        "-o", str(swept / "out"), *_values(swept, "bench_sweep")], base)
        sweep_computed = _computed(swept, "bench_sweep")
        sequential_s, sequential_computed = 0.0, 0
        for index, value in enumerate(steps):
            root = base / f"single-{index}"
            sequential_s += _run(["run", EXPORT, "-q", "-o", str(root / "run"),
                                  "-p", "train_steps", str(value),
                                  *_values(root, "bench_single")], base)
            sequential_computed += _computed(root, "bench_single")
    return {"points": len(steps), "train_steps": steps, "parallel": parallel,
            "sweep_s": round(sweep_s, 1), "sequential_s": round(sequential_s, 1),
            "ratio": round(sequential_s / sweep_s, 2),
            "executions_computed": {"sweep": sweep_computed, "sequential": sequential_computed}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="200,260,320", help="train_steps of the points")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = bench([int(s) for s in args.steps.split(",")], args.parallel)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"taxi, {result['points']} points (train_steps={args.steps}):")
    print(f"  sweep, --parallel {args.parallel}, one root:    {result['sweep_s']:7.1f} s "
          f"({result['executions_computed']['sweep']} executions computed)")
    print(f"  {result['points']} toolkit runs in a row, fresh roots: {result['sequential_s']:7.1f} s "
          f"({result['executions_computed']['sequential']} executions computed)")
    print(f"  ratio (in a row / sweep): {result['ratio']:.2f}x")


if __name__ == "__main__":
    main()
