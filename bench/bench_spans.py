"""Span resolution over 1,000 span folders.

    .venv/bin/python bench/bench_spans.py [--spans 1000] [--versions 2] [--repeat 5]

Builds ``span-N/ver-V/data.csv`` folders (a tiny CSV each) in a temporary folder and
prints the median time to resolve ExampleGen's ``span-{SPAN}/ver-{VERSION}/*.csv``
pattern for the latest span, a static range of one span and a rolling window of 30,
the time of CsvExampleGen's cache fingerprint with the pattern (only the resolved files)
and, for comparison, of the whole-folder fingerprint an ExampleGen without spans takes.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import median_time  # noqa: E402

PATTERN = "span-{SPAN}/ver-{VERSION}/*.csv"


def _build(base: str, spans: int, versions: int) -> None:
    for span in range(1, spans + 1):
        for version in range(1, versions + 1):
            folder = os.path.join(base, f"span-{span}", f"ver-{version}")
            os.makedirs(folder)
            with open(os.path.join(folder, "data.csv"), "w") as handle:
                handle.write(f"span,version,x\n{span},{version},1.5\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from toolkit.cache import fingerprint_path
    from toolkit.components import CsvExampleGen
    from toolkit.components._spans import resolve

    with tempfile.TemporaryDirectory() as base:
        _build(base, args.spans, args.versions)
        splits = [("single_split", PATTERN)]
        print(f"{args.spans:,} span folders x {args.versions} versions "
              f"({args.spans * args.versions:,} files), median of {args.repeat}:")
        cases = {
            "latest span": None,
            "static range (one span)": {"static_range": {"start_span_number": args.spans // 2,
                                                         "end_span_number": args.spans // 2}},
            "rolling window of 30": {"rolling_range": {"num_spans": 30}},
        }
        for name, config in cases.items():
            seconds, resolution = median_time(lambda c=config: resolve(base, splits, c),
                                              args.repeat)
            print(f"  resolve, {name:<24} {seconds * 1000:8.1f} ms  -> span {resolution.span}, "
                  f"version {resolution.version}, {len(resolution.spans)} span(s)")
        gen = CsvExampleGen(input_base=base, input_config={"splits": [
            {"name": "single_split", "pattern": PATTERN}]})
        seconds, _ = median_time(gen.fingerprints, args.repeat)
        print(f"  cache fingerprint, latest span pattern  {seconds * 1000:8.1f} ms")
        seconds, _ = median_time(lambda: fingerprint_path(base, "tree"), args.repeat)
        print(f"  whole-folder fingerprint (no pattern)   {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
