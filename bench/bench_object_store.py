"""What an S3 bucket costs against local disk: the taxi pipeline, CsvExampleGen then
StatisticsGen on a large CSV, and a cache hit in a new process. The bucket is moto's S3
server on 127.0.0.1 (no network); ML Metadata stays in a local SQLite file.

    .venv/bin/python bench/bench_object_store.py [--rows 1000000] [--only taxi,rows,cache]

Every measured run is a fresh Python process, as a user's run is. The heavy libraries
(TensorFlow, TFDV, TFT, TFMA, pyarrow, s3fs) are imported before the clock starts, and
the clock runs from the first ``context.run`` to the last one's return: the toolkit's own
time, not the interpreter's. Each process of ``taxi`` and ``rows`` gets an empty local
object cache (``XDG_CACHE_HOME``), so what is read from the bucket is really downloaded;
the ``cache`` runs share one, as one user's runs on one machine do.

- ``taxi``: the taxi pipeline (CsvExampleGen, StatisticsGen, SchemaGen, Transform,
  Trainer with 60 steps, Evaluator, Pusher; the notebook's module files) with its root,
  data and serving destination in the bucket, against the same on local disk. Figures
  and the ratio; no target.
- ``rows``: CsvExampleGen then StatisticsGen on ``--rows`` rows (the taxi CSV of
  notebooks/data/chicago_taxi, whose source notebooks/data/README.md gives, its rows
  repeated) read from the bucket, against the same file on local disk. Target: the
  bucket at most 2x local disk.
- ``cache``: the data half of the taxi notebook (CsvExampleGen, StatisticsGen, SchemaGen,
  ExampleValidator) on the same CSV with root and data in the bucket, run once, then
  again in a new process (whether every component was a cache hit is printed). Target:
  the second run at most 0.2 s.
  Two more processes: one importing only pyarrow and s3fs beforehand (does a hit need
  TensorFlow, and what does its loaded heap cost?), one under cProfile (where the time goes).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import REPO  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tests"))

NOTEBOOKS = os.path.join(REPO, "notebooks")
TAXI_CSV = os.path.join(NOTEBOOKS, "data", "chicago_taxi", "data.csv")
PARTS = ("taxi", "rows", "cache")
ROWS_TARGET = 2.0
CACHE_TARGET = 0.2
LEAN = ("pyarrow", "s3fs")
HEAVY = ("tensorflow", "tensorflow_data_validation", "tensorflow_transform",
         "tensorflow_model_analysis", "apache_beam", "pyarrow", "s3fs")


# -- what runs in each measured process -----------------------------------------------
def _import_heavy(names=HEAVY) -> float:
    import importlib

    start = time.perf_counter()
    for name in names:
        importlib.import_module(name)
    return time.perf_counter() - start


def _timed(context, components, profile: str | None = None) -> dict:
    """Run ``components`` in order; the seconds of each and of all, whether each was a
    cache hit, and which heavy libraries were first imported meanwhile."""
    import gc

    before = set(sys.modules)
    collected = {"seconds": 0.0, "full": 0}
    starts: list[float] = []

    def garbage(phase: str, info: dict) -> None:
        # Python's collector, in any thread: with TensorFlow, Beam and TFDV loaded a full
        # collection walks millions of objects
        if phase == "start":
            starts.append(time.perf_counter())
        elif starts:
            collected["seconds"] += time.perf_counter() - starts.pop()
            collected["full"] += info.get("generation") == 2

    gc.callbacks.append(garbage)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    steps = []
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    for component in components:
        began = time.perf_counter()
        result = context.run(component)
        steps.append({"id": component.id, "seconds": time.perf_counter() - began,
                      "cached": bool(result.cached)})
    if profiler:
        profiler.disable()
    total = time.perf_counter() - start
    gc.callbacks.remove(garbage)
    if profiler:
        profiler.dump_stats(profile)
    imported = sorted({m.split(".")[0] for m in set(sys.modules) - before} & set(HEAVY))
    return {"total": total, "steps": steps, "imported": imported, "gc": collected,
            "objects": len(gc.get_objects())}


def child_taxi(spec: dict) -> dict:
    """The taxi pipeline of ``tests/test_object_store_pipeline.py``, each component timed."""
    imports = _import_heavy()
    from test_object_store_pipeline import taxi_components

    from toolkit import InteractiveContext
    from toolkit.metadata import sqlite_config

    context = InteractiveContext(pipeline_name="taxi-bench", pipeline_root=spec["root"],
                                 metadata_connection_config=sqlite_config(spec["metadata"]))
    timed = _timed(context, taxi_components(spec["data"], spec["serving"], spec["work"]))
    return {**timed, "imports": imports}


def child_data(spec: dict) -> dict:
    """CsvExampleGen and StatisticsGen (``spec["half"]``: then SchemaGen and
    ExampleValidator too), on the root and data ``spec`` names."""
    imports = _import_heavy(spec.get("preimport", HEAVY))
    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, ExampleValidator, SchemaGen, StatisticsGen
    from toolkit.metadata import sqlite_config

    context = InteractiveContext(pipeline_name=spec["name"], pipeline_root=spec["root"],
                                 metadata_connection_config=sqlite_config(spec["metadata"]))
    example_gen = CsvExampleGen(input_base=spec["data"])
    statistics = StatisticsGen(examples=example_gen.outputs["examples"])
    components = [example_gen, statistics]
    if spec.get("half"):
        schema = SchemaGen(statistics=statistics.outputs["statistics"])
        components += [schema, ExampleValidator(statistics=statistics.outputs["statistics"],
                                                schema=schema.outputs["schema"])]
    return {**_timed(context, components, spec.get("profile")), "imports": imports}


CHILDREN = {"taxi": child_taxi, "data": child_data}


def seeded_trainer() -> str:
    """The seeded taxi trainer the bucket-versus-disk test trains with."""
    from test_object_store_pipeline import SEEDED

    return SEEDED


# -- the driver -------------------------------------------------------------------------
class Bench:
    """The moto server, the settings every measured process gets, and its temp folder."""

    def __init__(self, base: str, endpoint: str):
        import object_servers

        self.base, self.endpoint = base, endpoint
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN",
                                 "AWS_REGION")}
        self.env.update(object_servers.aws_settings(endpoint))
        from toolkit import _env

        self.env[_env.PROGRESS] = "0"
        self.env["TMPDIR"] = self.folder("tmp")
        self.env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        self.push_root = _env.PUSH_ROOT
        self.runs = 0

    def folder(self, *parts: str) -> str:
        path = os.path.join(self.base, *parts)
        os.makedirs(path, exist_ok=True)
        return path

    def run(self, what: str, label: str, spec: dict, fresh_cache: bool = True,
            env: dict | None = None) -> dict:
        """One measured process; its figures, with its wall time from the outside."""
        self.runs += 1
        cache = self.folder("cache", str(self.runs) if fresh_cache else "shared")
        log = os.path.join(self.base, f"run-{self.runs}.log")
        print(f"  [{time.strftime('%H:%M:%S')}] {label} ...", end="", flush=True)
        start = time.perf_counter()
        with open(log, "w") as out:
            done = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", what, json.dumps(spec)],
                stdout=subprocess.PIPE, stderr=out, text=True, timeout=3600,
                env={**self.env, "XDG_CACHE_HOME": cache, **(env or {})})
        wall = time.perf_counter() - start
        lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT")]
        if done.returncode != 0 or not lines:
            with open(log) as handle:
                tail = handle.read()[-4000:]
            raise SystemExit(f"\n{label} failed (exit {done.returncode}):\n{done.stdout[-2000:]}"
                             f"\n{tail}")
        result = json.loads(lines[-1][len("RESULT"):])
        result["wall"] = wall
        # what the toolkit printed (a recomputation says why), beside the figures
        result["notes"] = [x for x in done.stdout.splitlines()
                           if x.strip() and not x.startswith("RESULT")]
        print(f" {result['total']:.2f} s in the toolkit ({wall:.1f} s process)", flush=True)
        for note in result["notes"]:
            if any(word in note for word in ("recomput", "damaged", "not reused", "cannot")):
                print(f"      printed: {note[:300]}", flush=True)
        return result


def _steps(result: dict) -> str:
    return ", ".join(f"{s['id']} {s['seconds']:.2f}{' (hit)' if s['cached'] else ''}"
                     for s in result["steps"])


def part_taxi(bench: Bench) -> None:
    print("taxi pipeline (7 components, 60 training steps), bucket against local disk:",
          flush=True)
    work = bench.folder("taxi", "work")
    for name in ("taxi_transform.py", "taxi_trainer.py"):
        shutil.copy(os.path.join(NOTEBOOKS, name), os.path.join(work, name))
    with open(os.path.join(work, "seeded_trainer.py"), "w", encoding="utf-8") as handle:
        handle.write(seeded_trainer())
    data = bench.folder("taxi", "data")
    shutil.copy(TAXI_CSV, os.path.join(data, "data.csv"))
    from toolkit import storage

    storage.copy(os.path.join(data, "data.csv"), "s3://bucket/taxi/data/data.csv")
    base = bench.folder("taxi")
    local = bench.run("taxi", "local disk", {
        "root": os.path.join(base, "root"), "data": data, "serving": os.path.join(base, "serving"),
        "metadata": os.path.join(base, "local.sqlite"), "work": work},
        env={bench.push_root: base})
    remote = bench.run("taxi", "s3 bucket ", {
        "root": "s3://bucket/taxi/root", "data": "s3://bucket/taxi/data",
        "serving": "s3://bucket/taxi/serving", "metadata": os.path.join(base, "remote.sqlite"),
        "work": work}, env={bench.push_root: "s3://bucket"})
    for name, result in (("local disk", local), ("s3 bucket", remote)):
        assert not any(s["cached"] for s in result["steps"]), result
        print(f"    {name:<10} {_steps(result)}")
    print(f"  local disk: {local['total']:8.2f} s   (process {local['wall']:.1f} s)")
    print(f"  s3 bucket:  {remote['total']:8.2f} s   (process {remote['wall']:.1f} s)")
    print(f"  bucket / local: {remote['total'] / local['total']:.2f}x   (no target)", flush=True)


def build_csv(path: str, rows: int) -> int:
    """``rows`` rows of the taxi CSV (its header once, its rows repeated in order)."""
    with open(TAXI_CSV, encoding="utf-8") as handle:
        header, *body = handle.read().splitlines()
    with open(path, "w", encoding="utf-8") as out:
        out.write(header + "\n")
        whole, rest = divmod(rows, len(body))
        block = "\n".join(body) + "\n"
        for _ in range(whole):
            out.write(block)
        if rest:
            out.write("\n".join(body[:rest]) + "\n")
    return os.path.getsize(path)


def rows_data(bench: Bench, rows: int) -> tuple[str, str]:
    """The local folder and the bucket prefix holding the same ``rows``-row CSV (made once)."""
    local = os.path.join(bench.base, "rows-data")
    uri = "s3://bucket/rows-data"
    if not os.path.isdir(local):
        os.makedirs(local)
        start = time.perf_counter()
        size = build_csv(os.path.join(local, "data.csv"), rows)
        from toolkit import storage

        storage.copy(os.path.join(local, "data.csv"), f"{uri}/data.csv")
        print(f"  {rows:,} rows of notebooks/data/chicago_taxi/data.csv (its rows repeated), "
              f"{size / 2**20:,.0f} MB, written and uploaded in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    return local, uri


def part_rows(bench: Bench, rows: int) -> None:
    print(f"CsvExampleGen + StatisticsGen at {rows:,} rows, bucket against local disk:",
          flush=True)
    local_data, uri = rows_data(bench, rows)
    base = bench.folder("rows")
    local = bench.run("data", "local disk", {
        "name": "rows", "root": os.path.join(base, "root"), "data": local_data,
        "metadata": os.path.join(base, "local.sqlite")})
    remote = bench.run("data", "s3 bucket ", {
        "name": "rows", "root": "s3://bucket/rows/root", "data": uri,
        "metadata": os.path.join(base, "remote.sqlite")})
    for name, result in (("local disk", local), ("s3 bucket", remote)):
        assert not any(s["cached"] for s in result["steps"]), result
        print(f"    {name:<10} {_steps(result)}")
    ratio = remote["total"] / local["total"]
    print(f"  local disk: {local['total']:8.2f} s")
    print(f"  s3 bucket:  {remote['total']:8.2f} s")
    print(f"  bucket / local: {ratio:.2f}x   target <= {ROWS_TARGET:g}x: "
          f"{'PASS' if ratio <= ROWS_TARGET else 'over target'}", flush=True)


def part_cache(bench: Bench, rows: int) -> None:
    print(f"cache hit of the data half on the bucket ({rows:,} rows), in a new process:",
          flush=True)
    _, uri = rows_data(bench, rows)
    base = bench.folder("cache-part")
    spec = {"name": "taxi-data", "root": "s3://bucket/cache/root", "data": uri, "half": True,
            "metadata": os.path.join(base, "metadata.sqlite")}
    # one user on one machine: the local object cache is kept between the runs
    first = bench.run("data", "first run                 ", spec, fresh_cache=False)
    assert not any(s["cached"] for s in first["steps"]), first
    again = bench.run("data", "second run                ", spec, fresh_cache=False)
    lean = bench.run("data", "again, TF not imported    ", {**spec, "preimport": LEAN},
                     fresh_cache=False)
    profile = os.path.join(base, "hit.prof")
    profiled = bench.run("data", "again, under cProfile     ", {**spec, "profile": profile},
                         fresh_cache=False)
    print(f"    first run   {_steps(first)}")
    for name, result in (("second run", again), ("lean", lean), ("profiled", profiled)):
        hits = sum(s["cached"] for s in result["steps"])
        print(f"    {name:<11} {_steps(result)}"
              + ("" if hits == len(result["steps"]) else
                 f"   NOT ALL CACHE HITS: {hits} of {len(result['steps'])}"))
    print("  measured: a new process after the first run, TensorFlow, TFDV, Beam, pyarrow and "
          "s3fs imported before the clock (as the notebook's first cell does), from the start "
          "of context.run(CsvExampleGen) to ExampleValidator's return")
    hit = all(s["cached"] for s in again["steps"])
    verdict = ("not a cache hit" if not hit else
               "PASS" if again["total"] <= CACHE_TARGET else "over target")
    print(f"  cache hit, 4 components: {again['total']:.3f} s   target <= {CACHE_TARGET:g} s: "
          f"{verdict}")
    for name, result in (("second run", again), ("TF not imported", lean),
                         ("under cProfile", profiled)):
        print(f"    {name:<16} {result['total']:.3f} s, of which Python's garbage collector "
              f"{result['gc']['seconds']:.3f} s ({result['gc']['full']} full collections of "
              f"{result['objects']:,} objects); heavy libraries imported during it: "
              f"{', '.join(result['imported']) or 'none'}")
    where_time_goes(profile)


#: (label, file fragment, function) of the calls the cache hit's time is summed under
WATCHED = (
    ("cache key (all components)", "toolkit/cache.py", "cache_key"),
    ("  file fingerprints", "toolkit/cache.py", "fingerprint_path"),
    ("  sha256 of whole files", "toolkit/publishing.py", "sha256_file"),
    ("outputs intact (manifests)", "toolkit/cache.py", "unusable_outputs"),
    ("local copies of objects", "toolkit/storage/objects.py", "local_path"),
    ("object downloads", "toolkit/storage/objects.py", "_download"),
    ("object stat (HEAD)", "toolkit/storage/s3.py", "_info"),
    ("object listing", "toolkit/storage/s3.py", "_find"),
    ("object reads (open)", "toolkit/storage/s3.py", "_open"),
    ("metadata store lookups", "toolkit/metadata.py", "find_cached"),
)


def where_time_goes(path: str) -> None:
    import pstats

    stats = pstats.Stats(path).stats
    print("  where the profiled hit's time goes (cumulative s, calls):")
    for label, where, name in WATCHED:
        found = [(v[3], v[1]) for (file, _, func), v in stats.items()
                 if func == name and file.replace(os.sep, "/").endswith(where)]
        if found:
            print(f"    {label:<30} {sum(f[0] for f in found):7.3f} s  {sum(f[1] for f in found):6d}")
    top = sorted(((v[3], file, func, v[1]) for (file, _, func), v in stats.items()
                  if "/toolkit/" in file.replace(os.sep, "/")), reverse=True)[:12]
    print("  the toolkit's functions by cumulative time:")
    for seconds, file, func, calls in top:
        rel = file.replace(os.sep, "/").split("/toolkit/", 1)[1]
        print(f"    {seconds:7.3f} s  {calls:6d}  toolkit/{rel}:{func}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", default=",".join(PARTS),
                        help="comma-separated parts to run: " + ", ".join(PARTS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, spec = args.child
        result = CHILDREN[what](json.loads(spec))
        print("RESULT" + json.dumps(result), flush=True)
        return
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")

    import object_servers

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-objects-") as base, \
            object_servers.moto_server() as endpoint:
        bench = Bench(base, endpoint)
        os.environ.update({k: v for k, v in bench.env.items() if k.startswith("AWS_")})
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION"):
            os.environ.pop(name, None)
        object_servers.make_s3_bucket(endpoint, "bucket")
        print(f"moto S3 server at {endpoint}; every measured run a new process", flush=True)
        if "taxi" in parts:
            part_taxi(bench)
        if "rows" in parts:
            part_rows(bench, args.rows)
        if "cache" in parts:
            part_cache(bench, args.rows)
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
