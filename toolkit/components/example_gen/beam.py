"""ExampleGen on Beam: the plan of two passes in the workers, and its writing.

The Beam path reads its inputs in the workers, twice, as the streamed path does: a first
pass learns each column's type over all files (and finds any fault), a second converts,
splits and writes. Only small descriptions of the work (file chunks, the plan of column
types) travel between the steps, never rows, so the runner holds no data in memory.
Each worker writes its rows of a split to a part file named by where the rows sit in the
input; the parts are renamed in that order at the end, so every split holds the rows the
in-process path writes, in the same order. Faults found by the workers come back as data
and stop the run with the in-process message (file, line, column), before any row is
written. TFX's split needs each column's kind over all the CSV's rows before any row is
hashed: the launching process learns them (one pass over the text) and hands them to the
workers, which hash their chunks' rows; TFRecord input needs nothing (records are hashed
as read).
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

from toolkit import storage
from toolkit.artifacts import Examples
from toolkit.base_component import ExecutorContext
from toolkit.components.example_gen.splitting import hash_split, spanned, split_by_index
from toolkit.errors import InputDataError, causes

#: rows of TFRecord input decoded at once by a Beam worker
_BEAM_RECORDS = 8192


def csv_on_beam(examples: Examples, groups: dict[str | None, list[str]],
                buckets: list[tuple[str, int]], declared: dict[str, str], base: str,
                ctx: ExecutorContext, payload: str, tfx=None) -> None:
    """CsvExampleGen's work on Beam: the CSV files of ``groups`` (a named group is a split,
    the group ``None`` is hash-split by ``buckets``) read in chunks by the workers.
    ``tfx`` (TFX's split: the columns' kinds over the hash-split files, and the partition
    feature) lets each worker hash its rows as TFX does."""
    from toolkit.components.csv_reader import csv_chunks, csv_header

    job = _Job(groups, buckets, declared, payload, examples, base)
    job.tfx = tfx
    job.headers = [csv_header(files, declared, ctx.log) for files in groups.values()]
    elements = []
    for gi, files in enumerate(groups.values()):
        index = {path: fi for fi, path in enumerate(files)}
        seen: dict[str, int] = {}
        for chunk in csv_chunks(files, _chunk_bytes()):
            ci = seen[chunk.path] = seen.get(chunk.path, -1) + 1
            elements.append((gi, index[chunk.path], ci, chunk))
    size = sum(storage.stat(f).size for files in groups.values() for f in files)
    ctx.log(f"{size / 2**20:,.1f} MB of CSV in {len(elements)} chunk"
            f"{'s' if len(elements) != 1 else ''}: reading, splitting and writing on Beam "
            f"({' '.join(ctx.beam_pipeline_args)})")
    _run_on_beam(examples, job, elements, _profile_csv_chunk, _csv_plan, _write_csv_chunk, ctx)


def tfrecords_on_beam(examples: Examples, groups: dict[str | None, list[str]],
                      buckets: list[tuple[str, int]], base: str, ctx: ExecutorContext,
                      payload: str, tfx=None) -> None:
    """ImportExampleGen's work on Beam: each TFRecord file of ``groups`` read by a worker;
    ``tfx`` (any value) splits the records as TFX does, by their bytes."""
    job = _Job(groups, buckets, {}, payload, examples, base)
    job.tfx = tfx
    elements = [(gi, fi, 0, path) for gi, files in enumerate(groups.values())
                for fi, path in enumerate(files)]
    ctx.log(f"{len(elements)} TFRecord file{'s' if len(elements) != 1 else ''}: reading, "
            f"splitting and writing on Beam ({' '.join(ctx.beam_pipeline_args)})")
    _run_on_beam(examples, job, elements, _profile_tfrecord_file, _tfrecord_plan,
                 _write_tfrecord_file, ctx)


def _chunk_bytes() -> int:
    from toolkit.components import csv_reader

    return csv_reader.CHUNK_BYTES


class _Job:
    """What the workers need to know, all plain values: the groups of files (a named group
    is a split; the group ``None`` is hash-split by ``buckets``), their headers, the declared
    column types, the payload format and each split's folder."""

    def __init__(self, groups, buckets, declared, payload, examples: Examples, base: str):
        self.names = list(groups)
        self.files = [list(files) for files in groups.values()]
        self.buckets = list(buckets)
        self.declared = dict(declared)
        self.payload = payload
        self.base = base
        self.by_value = spanned(examples)
        self.headers: list[list[str]] = []
        #: TFX's split: (the columns' kinds, the partition feature), or None
        self.tfx = None
        self.folders = {split: examples.split_uri(split)
                        for gi in range(len(self.names)) for split in self.splits_of(gi)}

    def splits_of(self, gi: int) -> list[str]:
        name = self.names[gi]
        return [name] if name is not None else [n for n, _ in self.buckets]


def _run_on_beam(examples: Examples, job: _Job, elements: list, profile, plan_of, write,
                 ctx: ExecutorContext) -> None:
    """The two passes as one pipeline; then the plan's fault (if any) is raised, the parts
    are published and the artifact's properties recorded as in process."""
    import apache_beam as beam
    import pyarrow as pa

    from toolkit.components._beam import beam_pipeline
    from toolkit.components._io import (
        FORMAT_TF_EXAMPLE,
        publish_parts,
        record_column_types,
        record_splits,
    )

    examples.properties["payload_format"] = job.payload
    plan_path = _temp_file(ctx, "plan")
    counts_path = _temp_file(ctx, "counts")
    try:
        with _readable_faults(), beam_pipeline(ctx.beam_pipeline_args,
                                               f"{ctx.component_id} reading {job.base}") as p:
            pieces = (p | "Pieces" >> beam.Create(elements)
                      | "Spread" >> beam.Reshuffle())
            plan = (pieces
                    | "Profile" >> beam.Map(_guarded, profile, job)
                    | "Profiles" >> beam.combiners.ToList()
                    | "Plan" >> beam.Map(plan_of, job))
            _ = plan | "KeepPlan" >> beam.Map(_dump, plan_path)
            _ = (pieces
                 | "Write" >> beam.FlatMap(write, beam.pvalue.AsSingleton(plan), job)
                 | "Count" >> beam.CombinePerKey(sum)
                 | "Counts" >> beam.combiners.ToList()
                 | "KeepCounts" >> beam.Map(_dump, counts_path))
        plan = _load(plan_path)
        if plan["error"]:
            raise InputDataError(plan["error"])
        written = dict(_load(counts_path))
    finally:
        _remove(plan_path, counts_path)
    counts = {}
    for gi in range(len(job.names)):
        schema = pa.schema(list(plan["groups"][gi]["targets"].items()))
        for split in job.splits_of(gi):
            if job.payload == FORMAT_TF_EXAMPLE:
                record_column_types(examples, schema)
            publish_parts(examples, split, schema)
            counts[split] = written.get(split, 0)
    record_splits(examples, counts, ctx, "wrote")


def _guarded(element, profile, job: _Job) -> dict[str, Any]:
    """A piece's profile, or the fault found in it (the first in input order is reported)."""
    gi, fi, ci, _ = element
    try:
        return {"key": (gi, fi, ci), **profile(element, job)}
    except InputDataError as exc:
        return {"key": (gi, fi, ci), "error": str(exc)}


def _first_error(profiles: list[dict]) -> str | None:
    faults = sorted((p["key"], p["error"]) for p in profiles if "error" in p)
    return faults[0][1] if faults else None


def _profile_csv_chunk(element, job: _Job) -> dict[str, Any]:
    from toolkit.components.csv_reader import profile_chunk

    gi, _, _, chunk = element
    return profile_chunk(chunk, job.headers[gi], job.declared)


def _csv_plan(profiles: list[dict], job: _Job) -> dict[str, Any]:
    """Per group: each file's kinds, the column types, the columns missing a value, rows."""
    from toolkit.components.csv_reader import column_targets, merge_kinds

    error = _first_error(profiles)
    groups = []
    for gi, files in enumerate(job.files):
        kinds: dict[int, dict[str, str]] = {}
        nullable: set[str] = set()
        rows = 0
        for profile in sorted((p for p in profiles if p["key"][0] == gi and "error" not in p),
                              key=lambda p: p["key"]):
            fi = profile["key"][1]
            kinds[fi] = merge_kinds(kinds[fi], profile["kinds"]) if fi in kinds \
                else profile["kinds"]
            nullable.update(profile["nullable"])
            rows += profile["rows"]
        targets = column_targets(kinds, job.headers[gi], job.declared)
        groups.append({"kinds": kinds, "targets": targets, "nullable": sorted(nullable),
                       "rows": rows})
        if error is None and job.names[gi] is None and rows == 0:
            error = f"{job.base}: the CSV files have a header but no rows"
    return {"error": error, "groups": groups}


def _write_csv_chunk(element, plan: dict[str, Any], job: _Job):
    from toolkit.components.csv_reader import chunk_table

    if plan["error"]:
        return
    gi, fi, ci, chunk = element
    group = plan["groups"][gi]
    table = chunk_table(chunk, job.headers[gi], group["kinds"][fi], group["targets"],
                        job.declared)
    if table is not None:
        index = None
        if job.tfx is not None and job.names[gi] is None:
            from toolkit.components.csv_reader import chunk_raw_batches
            from toolkit.components.example_gen.tfx_split import IndexStream

            kinds, partition = job.tfx
            index = IndexStream(chunk_raw_batches(chunk, job.headers[gi]), kinds, job.buckets,
                                partition).take(table.num_rows)
        yield from _write_parts(table, gi, f"{fi:06d}-{ci:06d}", group, job, index=index)


def _write_parts(table, gi: int, key: str, group: dict[str, Any], job: _Job, writers=None,
                 index=None):
    """Split ``table`` as in process and write each split's rows to its part ``key``;
    ``(split, rows)`` for each part closed here (``writers`` keeps them open instead)."""
    from toolkit.components._io import PartWriter

    name = job.names[gi]
    if name is not None:
        parts = [(name, table)]
    elif index is not None:
        parts = split_by_index(table, job.buckets, index)
    else:
        parts = hash_split(table, job.buckets, set(group["nullable"]), by_value=job.by_value)
    for split, part in parts:
        if not part.num_rows:
            continue
        if writers is not None:
            if split not in writers:
                writers[split] = PartWriter(job.folders[split], key, job.payload)
            writers[split].write_table(part)
            continue
        writer = PartWriter(job.folders[split], key, job.payload)
        writer.write_table(part)
        yield split, writer.close()


def _profile_tfrecord_file(element, job: _Job) -> dict[str, Any]:
    """Per feature: its value type, the most values an example has, whether an example
    lacks it, and whether its bytes are all UTF-8; and the record count."""
    from toolkit.components._io import DECODE_ROWS

    gi, _, _, path = element
    columns: dict[str, list] = {}
    rows = 0
    for batch in _record_batches(path):
        rows += batch.num_rows
        for name, column in zip(batch.schema.names, batch.columns):
            kind, most, missing, text = _feature_profile(column)
            if name not in columns:
                # the in-process reader's batch that first holds the feature orders the columns
                first = rows - batch.num_rows + _first_valid(column)
                columns[name] = [kind, most, missing or rows > batch.num_rows, text,
                                 first // DECODE_ROWS]
                continue
            seen = columns[name]
            if seen[0] == "null":
                seen[0] = kind
            elif kind not in ("null", seen[0]):
                raise InputDataError(
                    f"{os.path.dirname(job.files[gi][0])}: the tf.Examples disagree on a "
                    f"feature's type (feature {name!r} holds {seen[0]} and {kind} values)")
            seen[1] = max(seen[1], most)
            seen[2] = seen[2] or missing
            seen[3] = seen[3] and text
        for name, seen in columns.items():
            if name not in batch.schema.names:
                seen[2] = True
    return {"columns": columns, "rows": rows}


def _first_valid(column) -> int:
    import numpy as np

    valid = np.asarray(column.is_valid())
    return int(np.argmax(valid)) if valid.any() else 0


def _feature_profile(column) -> tuple[str, int, bool, bool]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_null(column.type):
        return "null", 0, True, True
    lengths = pc.list_value_length(column).fill_null(0)
    most = pc.max(lengths).as_py() or 0
    missing = bool(pc.any(pc.equal(lengths, 0)).as_py())
    kind = str(column.type.value_type)
    text = True
    if pa.types.is_binary(column.type.value_type) or pa.types.is_large_binary(
            column.type.value_type):
        try:
            column.flatten().cast(pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = False
    return kind, most, missing, text


def _tfrecord_plan(profiles: list[dict], job: _Job) -> dict[str, Any]:
    """Per group: the columns (in the order tfx_bsl gives them) with the types the
    in-process decoder gives the whole input, and the integer columns missing a value."""
    import pyarrow as pa

    error = _first_error(profiles)
    groups = []
    for gi, files in enumerate(job.files):
        where = os.path.dirname(files[0])
        merged: dict[str, list] = {}
        rows = 0
        for profile in sorted((p for p in profiles if p["key"][0] == gi and "error" not in p),
                              key=lambda p: p["key"]):
            for name, (kind, most, missing, text, batch) in profile["columns"].items():
                if name not in merged:
                    merged[name] = [kind, most, missing or rows > 0, text,
                                    (profile["key"][1], batch)]
                    continue
                seen = merged[name]
                if seen[0] == "null":
                    seen[0] = kind
                elif kind not in ("null", seen[0]) and error is None:
                    error = (f"{where}: the tf.Examples disagree on a feature's type (feature "
                             f"{name!r} holds {seen[0]} and {kind} values)")
                seen[1] = max(seen[1], most)
                seen[2] = seen[2] or missing
                seen[3] = seen[3] and text
            for name, seen in merged.items():
                if name not in profile["columns"] and profile["rows"]:
                    seen[2] = True
            rows += profile["rows"]
        targets, nullable, lists = {}, [], []
        # tfx_bsl orders a batch's features by name, and merged batches by first appearance
        for name in sorted(merged, key=lambda n: (merged[n][4], n)):
            kind, most, missing, text, _ = merged[name]
            value = {"null": None, "float": pa.float32(), "int64": pa.int64(),
                     "large_binary": pa.large_binary(), "binary": pa.binary()}.get(kind)
            if most > 1:
                targets[name] = pa.large_list(value)
                lists.append(name)
            elif kind == "float":
                targets[name] = pa.float64()
            elif kind == "int64":
                targets[name] = pa.int64()
                if missing:
                    nullable.append(name)
            elif kind in ("large_binary", "binary"):
                targets[name] = pa.string() if text else pa.binary()
            else:
                targets[name] = pa.string()
        if error is None and rows == 0:
            error = f"{where}: the TFRecord files hold no records"
        if error is None and lists and job.names[gi] is None:
            error = (f"{where}: feature {lists[0]!r} has several values per example; examples "
                     "are hash-split by features of one value each: give input_config split "
                     "patterns instead")
        groups.append({"targets": targets, "nullable": nullable, "rows": rows})
    return {"error": error, "groups": groups}


def _write_tfrecord_file(element, plan: dict[str, Any], job: _Job):
    if plan["error"]:
        return
    gi, fi, _, path = element
    group = plan["groups"][gi]
    writers: dict = {}
    for records, batch in _record_batches(path, with_records=True):
        table = _conform(batch, group["targets"])
        index = None
        if job.tfx is not None and job.names[gi] is None:
            from toolkit.components.example_gen import tfx_split

            total = sum(count for _, count in job.buckets)
            index = tfx_split.split_index(tfx_split.record_buckets(records, total), job.buckets)
        for _ in _write_parts(table, gi, f"{fi:06d}", group, job, writers, index=index):
            pass
    for split, writer in writers.items():
        yield split, writer.close()


def _record_batches(path: str, with_records: bool = False):
    """The tf.Examples of one TFRecord file (plain or GZIP) as RecordBatches of list columns,
    a few thousand at a time (the in-process reader's framing and messages); with
    ``with_records``, ``(records, batch)``."""
    from toolkit.components._io import decode_examples, read_records

    chunk: list[bytes] = []
    for record in read_records(path):
        chunk.append(record)
        if len(chunk) == _BEAM_RECORDS:
            batch = decode_examples(chunk, path)
            yield (chunk, batch) if with_records else batch
            chunk = []
    if chunk:
        batch = decode_examples(chunk, path)
        yield (chunk, batch) if with_records else batch


def _conform(batch, targets: dict):
    """A decoded batch with the whole input's columns and types (as ``read_tfrecord_table``
    gives them): absent features as nulls, lists of at most one value as scalars."""
    import pyarrow as pa

    from toolkit.components._io import scalar_columns

    table = pa.Table.from_batches([batch])
    scalars = scalar_columns(table)
    columns = []
    for name, target in targets.items():
        if name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, target))
        elif pa.types.is_large_list(target):
            column = table.column(name)
            columns.append(column if column.type == target else column.cast(target))
        else:
            column = scalars.column(name)
            columns.append(column if column.type == target else column.cast(target))
    return pa.table(columns, names=list(targets))


def _temp_file(ctx: ExecutorContext, what: str) -> str:
    """A file for a small result the pipeline hands back: under ``--temp_location`` when
    given (a place the workers reach), else in the execution's tmp folder."""
    import uuid

    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    temp = PipelineOptions(list(ctx.beam_pipeline_args)).get_all_options().get("temp_location")
    name = f"toolkit-{ctx.component_id}-{ctx.execution_id}-{what}-{uuid.uuid4().hex[:12]}.pickle"
    return FileSystems.join(temp, name) if temp else os.path.join(ctx.tmp_dir, name)


def _dump(value, path: str) -> None:
    import pickle

    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as handle:
        handle.write(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def _load(path: str):
    import pickle

    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        return pickle.loads(handle.read())


def _remove(*paths: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    present = [p for p in paths if FileSystems.exists(p)]
    if present:
        FileSystems.delete(present)


@contextlib.contextmanager
def _readable_faults():
    """A fault raised in a worker as a toolkit error keeps its own one line (file, line,
    column) rather than the runner's summary of it."""
    import re

    from toolkit.errors import ToolkitError

    try:
        yield
    except ToolkitError as exc:
        text = "\n".join(str(cause) for cause in causes(exc))
        found = re.search(r"InputDataError: (.+)", text)
        if found is None or isinstance(exc, InputDataError):
            raise
        raise InputDataError(found.group(1).split(" [while running")[0].strip()) from exc

