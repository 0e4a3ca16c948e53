"""Child process for the size cases: make the input, run the data components, render every
view, and print one JSON line with timings, peak memory (ru_maxrss) and view sizes.

    python size_child.py wide|distinct|big WORKDIR [--gigabytes G] [--upto COMPONENT]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

# run as a script (sys.path[0] is this folder): the shared paths live one folder up
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from datapaths import TAXI_CSV  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_wide(folder: str, columns: int = 10_000, rows: int = 200) -> None:
    import numpy as np

    values = np.random.default_rng(0).integers(0, 100, size=(rows, columns))
    with open(os.path.join(folder, "wide.csv"), "w") as handle:
        handle.write(",".join(f"c{i}" for i in range(columns)) + "\n")
        for row in values:
            handle.write(",".join(map(str, row)) + "\n")


def make_distinct(folder: str, rows: int = 1_000_000) -> None:
    with open(os.path.join(folder, "distinct.csv"), "w") as handle:
        handle.write("id,category,label\n")
        for i in range(rows):
            handle.write(f"{i},value-{i:07d},{i % 2}\n")


def make_big(folder: str, gigabytes: float) -> tuple[int, int]:
    """The taxi rows repeated up to the size (fast to write, realistic to parse);
    returns (bytes, copies of the taxi rows)."""
    with open(TAXI_CSV, "rb") as handle:
        header, body = handle.read().split(b"\n", 1)
    target, size, copies = int(gigabytes * 2**30), len(header) + 1, 0
    with open(os.path.join(folder, "big.csv"), "wb") as handle:
        handle.write(header + b"\n")
        while size < target:
            handle.write(body)
            size += len(body)
            copies += 1
    return size, copies


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["wide", "distinct", "big"])
    parser.add_argument("workdir")
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--upto", default="ExampleValidator")
    args = parser.parse_args()
    data = os.path.join(args.workdir, "data")
    os.makedirs(data, exist_ok=True)
    report: dict = {"timings": {}, "peak_mb": {}, "views": {}}
    started = time.perf_counter()
    if args.kind == "wide":
        make_wide(data)
    elif args.kind == "distinct":
        make_distinct(data)
    else:
        report["input_bytes"], report["copies"] = make_big(data, args.gigabytes)
    report["timings"]["make input"] = round(time.perf_counter() - started, 1)
    report["peak_mb"]["baseline"] = peak_mb()

    from toolkit import InteractiveContext
    from toolkit.components import CsvExampleGen, ExampleValidator, SchemaGen, StatisticsGen
    from toolkit.errors import ComponentError
    from toolkit.visualize import view_of

    context = InteractiveContext(pipeline_name="size", pipeline_root=os.path.join(args.workdir,
                                                                                  "root"))
    example_gen = CsvExampleGen(input_base=data)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"])
    validator = ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                 schema=schema_gen.outputs["schema"])
    for component in (example_gen, statistics_gen, schema_gen, validator):
        started = time.perf_counter()
        try:
            result = context.run(component)
        except ComponentError as exc:
            report["error"] = str(exc)
            break
        report["timings"][component.id] = round(time.perf_counter() - started, 1)
        report["peak_mb"][component.id] = peak_mb()
        if component is example_gen:
            report["row_counts"] = json.loads(
                result.outputs["examples"][0].properties["row_counts"])
        if component.id == args.upto:
            break
    for component in (example_gen, statistics_gen, schema_gen, validator):
        for key, channel in component.outputs.items():
            if channel.get():
                started = time.perf_counter()
                view = view_of(channel)
                report["views"][key] = {"html": len(view.html), "text": len(view.text),
                                        "seconds": round(time.perf_counter() - started, 2),
                                        "capped": "Showing the first" in view.html}
    report["peak_mb"]["end"] = peak_mb()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
