"""A structural change must not cost speed: this checkout against an earlier one, same run.

    .venv/bin/python bench/bench_house.py [--before REF] [--rounds 5] [--rows 200000]

The earlier checkout (``--before``, default ``HEAD``: the last commit, so uncommitted work
is what is measured) is put in a temporary git worktree. Each figure is measured for both
checkouts in alternation, each in fresh processes with ``PYTHONPATH`` naming the checkout,
so both run with the same interpreter and libraries:

1. ``toolkit --help`` and ``import toolkit`` (median of ``--rounds`` processes each);
2. a cached re-run of the whole taxi pipeline (``bench_model.py``'s nine components) in a
   new process, against one pipeline root made by the earlier checkout, so it also shows
   that the earlier checkout's cache is still hit;
3. the statistics figures of ``bench_data.py`` (StatisticsGen against raw TFDV) and the
   in-memory engine's figures of ``bench_evaluation.py --quick --no-ci``, each checkout
   running its own copy of the benchmark.

Prints every figure, the after/before ratio, and whether it is within 10% (noise on a
shared 2-core machine is of that order: re-run before trusting one figure over the limit).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _common import REPO

LIMIT = 1.10


def _env(tree: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = tree + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run(tree: str, args: list[str], timeout: float = 3600) -> str:
    out = subprocess.run([sys.executable, *args], cwd=tree, env=_env(tree), text=True,
                         capture_output=True, timeout=timeout)
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-2000:] + out.stderr[-3000:])
        raise SystemExit(f"failed in {tree}: {' '.join(args)}")
    return out.stdout


def _process_time(tree: str, args: list[str]) -> float:
    started = time.perf_counter()
    _run(tree, args)
    return time.perf_counter() - started


def _alternate(trees: dict[str, str], rounds: int, measure) -> dict[str, float]:
    """Median per checkout, the order swapped every round so drift hits both alike."""
    seen: dict[str, list[float]] = {name: [] for name in trees}
    for index in range(rounds):
        order = list(trees) if index % 2 == 0 else list(reversed(trees))
        for name in order:
            seen[name].append(measure(trees[name]))
    return {name: statistics.median(values) for name, values in seen.items()}


def _figures(text: str, patterns: dict[str, str]) -> dict[str, float]:
    found = {}
    for label, pattern in patterns.items():
        match = re.search(pattern, text)
        if match is None:
            raise SystemExit(f"no figure {label!r} in the benchmark's output:\n{text}")
        found[label] = float(match.group(1))
    return found


def _report(rows: list[tuple[str, float, float, str]]) -> bool:
    ok = True
    print(f"\n{'figure':<58}{'before':>10}{'after':>10}{'ratio':>8}")
    for label, before, after, unit in rows:
        ratio = after / before if before else float("nan")
        verdict = "ok" if ratio <= LIMIT else "SLOWER"
        ok &= ratio <= LIMIT
        print(f"{label:<58}{before:>9.3f}{unit}{after:>9.3f}{unit}{ratio:>7.2f}x  {verdict}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200_000, help="rows for the statistics figure")
    parser.add_argument("--train-steps", type=int, default=50)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-house-")
    before_tree = os.path.join(work, "before")
    subprocess.run(["git", "worktree", "add", "--detach", "-q", before_tree, args.before],
                   cwd=REPO, check=True)
    trees = {"before": before_tree, "after": REPO}
    revision = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=REPO,
                              text=True, capture_output=True).stdout.strip()
    print(f"before: {args.before} ({revision}) in {before_tree}; after: {REPO} as it is now")
    rows: list[tuple[str, float, float, str]] = []
    try:
        help_s = _alternate(trees, args.rounds, lambda tree: _process_time(
            tree, ["-c", "import sys; from toolkit.cli import main; sys.exit(main(['--help']))"]))
        rows.append(("toolkit --help, whole process", help_s["before"], help_s["after"], "s"))
        import_s = _alternate(trees, args.rounds,
                              lambda tree: _process_time(tree, ["-c", "import toolkit"]))
        rows.append(("import toolkit, whole process", import_s["before"], import_s["after"], "s"))

        # one copy of the data and module files for both checkouts: their paths and
        # contents enter the cache key, so both must name the same ones
        shared = os.path.join(work, "shared")
        shutil.copytree(os.path.join(REPO, "notebooks", "data", "chicago_taxi"),
                        os.path.join(shared, "chicago_taxi"))
        for name in ("taxi_transform.py", "taxi_trainer.py"):
            shutil.copy(os.path.join(REPO, "notebooks", name), shared)
        root = os.path.join(work, "taxi")

        def taxi(step: str) -> list[str]:
            """bench_model.py's pipeline, with the shared data and module files."""
            return ["-c", "import json, sys; sys.path.insert(0, 'bench'); import bench_model as b; "
                    f"b.DATA = {os.path.join(shared, 'chicago_taxi')!r}; "
                    f"b.TRANSFORM_MODULE = {os.path.join(shared, 'taxi_transform.py')!r}; "
                    f"b.TRAINER_MODULE = {os.path.join(shared, 'taxi_trainer.py')!r}; "
                    f"print(json.dumps(b.{step}_run({root!r}, {args.train_steps}), default=str))"]

        cold = json.loads(_run(before_tree, taxi("cold")).strip().splitlines()[-1])
        print(f"taxi pipeline made by the earlier checkout in {cold['cold_s']:.0f} s")
        cached: dict[str, list[dict]] = {"before": [], "after": []}

        def cached_run(tree: str) -> float:
            started = time.perf_counter()
            result = json.loads(_run(tree, taxi("cached")).strip().splitlines()[-1])
            name = "before" if tree == before_tree else "after"
            cached[name].append(result)
            if not result["all_cached"]:
                raise SystemExit(f"the {name} checkout did not hit the cache of {root}")
            return time.perf_counter() - started

        whole = _alternate(trees, max(3, args.rounds // 2), cached_run)
        runs = {name: statistics.median(r["components_s"] for r in results)
                for name, results in cached.items()}
        rows.append(("cached taxi re-run, 9 components (all hit)", runs["before"], runs["after"], "s"))
        rows.append(("cached taxi re-run, whole new process", whole["before"], whole["after"], "s"))

        stats_patterns = {
            "StatisticsGen": r"StatisticsGen \(read Parquet \+ stats \+ write\):\s+([\d.]+) s",
            "raw TFDV": r"tfdv\.generate_statistics_from_dataframe:\s+([\d.]+) s"}
        eval_patterns = {"engine 15,000 rows": r"engine\s+([\d.]+) s"}
        stats: dict[str, dict[str, float]] = {}
        evaluation: dict[str, dict[str, float]] = {}
        for name in ("before", "after", "after", "before"):
            tree = trees[name]
            text = _run(tree, ["-c", "import sys; sys.path.insert(0, 'bench'); import bench_data; "
                                     f"bench_data.statistics_gen({args.rows})"])
            for key, value in _figures(text, stats_patterns).items():
                stats.setdefault(name, {}).setdefault(key, []).append(value)  # type: ignore
            text = _run(tree, ["bench/bench_evaluation.py", "--quick", "--no-ci"])
            for key, value in _figures(text, eval_patterns).items():
                evaluation.setdefault(name, {}).setdefault(key, []).append(value)  # type: ignore
        best = lambda table, name, key: min(table[name][key])  # noqa: E731
        rows.append((f"StatisticsGen, {args.rows:,} rows (best of 2)",
                     best(stats, "before", "StatisticsGen"), best(stats, "after", "StatisticsGen"), "s"))
        rows.append((f"  the same rows with raw TFDV, for scale",
                     best(stats, "before", "raw TFDV"), best(stats, "after", "raw TFDV"), "s"))
        rows.append(("toolkit.evaluate, 15,000 rows, in memory (best of 2)",
                     best(evaluation, "before", "engine 15,000 rows"),
                     best(evaluation, "after", "engine 15,000 rows"), "s"))
        ok = _report(rows)
        print("\nwithin 10% everywhere" if ok else "\nslower by more than 10% somewhere (see above)")
        return 0 if ok else 1
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", before_tree], cwd=REPO)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
