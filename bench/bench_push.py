"""The Pusher with a large model: disk per push, cost of a cached push's check, full verify.

    .venv/bin/python bench/bench_push.py [--size-mb 1024] [--files 12]

A stand-in SavedModel of ``--size-mb`` (random bytes over ``--files`` variable shards,
so nothing compresses or deduplicates) is pushed once by the real Pusher, then:

1. Disk per push: the blocks newly allocated under the pipeline root and the serving
   directory by the push (each inode counted once, so hard links count once), next
   to the model's own size. A push that copies the model into both the PushedModel
   artifact and the version folder costs 2x; one that links them, 1x.
2. The cached push: ``context.run(pusher)`` again (a cache hit, which checks that the
   pushed version is unchanged), median of ``--rounds``; and the check alone
   (``Pusher.missing_external_effects``). Target: under 0.1 s for a 1 GB model.
3. ``toolkit models verify`` of that version (every byte hashed), for scale; and
   ``sha256sum`` of the same files, the reference for hashing speed on this machine.

The page cache is warm for all of it (the model was just written).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import REPO  # noqa: F401  (puts this checkout first on sys.path)


def blocks(*roots: str) -> int:
    """Bytes allocated under ``roots``, each inode once."""
    seen, total = set(), 0
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                st = os.lstat(os.path.join(folder, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from toolkit import InteractiveContext
    from toolkit.artifacts import Model
    from toolkit.base_component import BaseComponent, ExecutionParameter
    from toolkit.components import Pusher

    class BigModel(BaseComponent):
        OUTPUTS = {"model": Model}
        PARAMETERS = {"size_mb": ExecutionParameter(int), "files": ExecutionParameter(int)}

        def Do(self, input_dict, output_dict, exec_properties, ctx):
            serving = os.path.join(output_dict["model"][0].uri, "Format-Serving")
            os.makedirs(os.path.join(serving, "variables"))
            os.makedirs(os.path.join(serving, "assets"))
            with open(os.path.join(serving, "saved_model.pb"), "wb") as handle:
                handle.write(os.urandom(200_000))
            shards, chunk = exec_properties["files"], 1 << 20
            per_shard = exec_properties["size_mb"] // shards
            for i in range(shards):
                name = f"variables.data-{i:05d}-of-{shards:05d}"
                with open(os.path.join(serving, "variables", name), "wb") as handle:
                    for _ in range(per_shard):
                        handle.write(os.urandom(chunk))
            with open(os.path.join(serving, "variables", "variables.index"), "wb") as handle:
                handle.write(os.urandom(4096))

    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        root, serving = os.path.join(tmp, "root"), os.path.join(tmp, "serving", "big")
        context = InteractiveContext(pipeline_name="bench_push", pipeline_root=root)
        model = BigModel(size_mb=args.size_mb, files=args.files)
        context.run(model)
        model_bytes = blocks(model.outputs["model"].get()[0].uri)
        pusher = Pusher(model=model.outputs["model"], push_destination=serving,
                        allowed_root=tmp, require_blessing=False)
        before = blocks(root, os.path.dirname(serving))
        started = time.perf_counter()
        first = context.run(pusher)
        push_s = time.perf_counter() - started
        per_push = blocks(root, os.path.dirname(serving)) - before
        version = first.outputs["pushed_model"][0].properties["pushed_version"]

        hits, checks = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            again = context.run(pusher)
            hits.append(time.perf_counter() - started)
            assert again.cached, again.outcome
            outputs = {"pushed_model": pusher.outputs["pushed_model"].get()}
            started = time.perf_counter()
            assert pusher.missing_external_effects(outputs) is None
            checks.append(time.perf_counter() - started)

        verify_s = reference_s = None
        folder = os.path.join(serving, str(version))
        cli = os.path.join(os.path.dirname(sys.executable), "toolkit")
        if os.path.exists(cli):
            started = time.perf_counter()
            done = subprocess.run([cli, "models", "verify", serving, str(version)],
                                  capture_output=True, text=True)
            verify_s = time.perf_counter() - started
            if done.returncode != 0:
                print(f"toolkit models verify: exit {done.returncode}: "
                      f"{(done.stderr or done.stdout).strip()[:300]}")
                verify_s = None
        files = [os.path.join(d, n) for d, _, names in os.walk(folder) for n in names]
        started = time.perf_counter()
        subprocess.run(["sha256sum", *files], capture_output=True, check=True)
        reference_s = time.perf_counter() - started

    mb = model_bytes / 2**20
    print(f"model: {mb:,.0f} MB in {args.files + 2} files")
    print(f"first push (copy, hash, report, link): {push_s:.2f} s")
    print(f"disk per push: {per_push / 2**20:,.0f} MB = {per_push / model_bytes:.2f}x the model")
    print(f"cached push, whole context.run: median {statistics.median(hits) * 1000:.1f} ms "
          f"(max {max(hits) * 1000:.1f} ms, {args.rounds} runs)")
    print(f"cached push, the version check alone: median "
          f"{statistics.median(checks) * 1000:.2f} ms (target < 100 ms for 1 GB)")
    if verify_s is not None:
        print(f"toolkit models verify (every byte, CLI process): {verify_s:.2f} s; "
              f"sha256sum of the same files: {reference_s:.2f} s "
              f"(ratio {verify_s / reference_s:.2f})")
    else:
        print(f"sha256sum of the version's files: {reference_s:.2f} s")


if __name__ == "__main__":
    main()
