"""CsvExampleGen and ImportExampleGen: ingest data into a split Examples artifact.

With ``beam_pipeline_args`` (the context's, or ``context.run(..., beam_pipeline_args=...)``)
both read, split and write in Beam's workers (how: the comment opening the Beam section
below); without them they run in the notebook's process, the fastest way on one machine.
Both ways give the same rows in each split, in the same order, with the same column
types, payload and artifact properties.

The payload is chosen by ``output_data_format`` (TFX's parameter). The toolkit's
default is Parquet (``FORMAT_PARQUET``), one file per split, which TFX's TFXIO reads
and which is an order of magnitude faster to load than TFRecords of tf.Example for
the in-memory statistics and evaluation paths. ``FORMAT_TF_EXAMPLE`` writes TFX's
default payload, GZIP TFRecord files of serialized tf.Example
(``Split-<name>/data_tfrecord-00000-of-00001.gz``), which TFX's tutorial cells read
with ``tf.data.TFRecordDataset(files, compression_type="GZIP")``. On Beam a split is
written as several files named as TFX shards them (``data-00000-of-00007.parquet``,
``data_tfrecord-00000-of-00007.gz``); every reader takes them together.
"""
from __future__ import annotations

import contextlib
import fnmatch
import glob
import json
import os
from typing import Any

from toolkit.artifacts import Examples, Schema
from toolkit.base_component import BaseComponent, ExecutorContext, InputSpec, ExecutionParameter
from toolkit.cache import fingerprint_path
from toolkit.components import _spans
from toolkit.components._io import (FORMAT_PARQUET, open_split_writer, payload_format_name,
                                   read_tfrecord_table, record_splits, write_split)
from toolkit.components.csv_reader import STREAM_BLOCK_BYTES, CsvStream, read_csv_files
from toolkit.errors import InputDataError, causes

DEFAULT_OUTPUT_CONFIG = {"split_config": {"splits": [{"name": "train", "hash_buckets": 2},
                                                     {"name": "eval", "hash_buckets": 1}]}}
#: CSV inputs larger than this in total are read block by block and written split by split
#: (two passes: column types, then rows), so memory stays bounded whatever the input size.
#: Smaller inputs are loaded whole, the fastest way. Both give the same splits and types.
STREAM_BYTES = 256 * 2**20


class _ExampleGenBase(BaseComponent):
    OUTPUTS = {"examples": Examples}

    def _drop_unset_range_config(self) -> None:
        """``range_config`` enters the recorded parameters only when given, so the cache
        keys of ExampleGens without spans stay what they were before it existed."""
        if self.exec_properties.get("range_config") is None:
            self.exec_properties.pop("range_config", None)

    def _span_patterns(self, exec_properties: dict[str, Any]) -> list[tuple[str, str]] | None:
        """The split patterns when they name spans (or a range_config is given), else None:
        then ExampleGen reads its input as it always has."""
        input_config = exec_properties.get("input_config") or {}
        patterns = [(s["name"], s["pattern"]) for s in input_config.get("splits", [])]
        if not exec_properties.get("range_config") and not any(
                _spans.has_spec(p) for _, p in patterns):
            return None
        if not patterns:
            raise InputDataError(f"{self.id}: range_config needs input_config split patterns "
                                 "with {SPAN} or a date, e.g. 'span-{SPAN}/*.csv'")
        return patterns

    def _resolve_spans(self, exec_properties: dict[str, Any]) -> _spans.Resolution | None:
        """The spans and files to read now, or None without span patterns. Reuses the
        resolution the cache key was computed from, so what is read is what the key says."""
        patterns = self._span_patterns(exec_properties)
        if patterns is None:
            return None
        request = _resolution_request(exec_properties)
        pending = getattr(self, "_pending_resolution", None)
        if pending is not None and pending[0] == request:
            self._pending_resolution = None
            return pending[1]
        return _spans.resolve(exec_properties["input_base"], patterns,
                              exec_properties.get("range_config"))

    def fingerprints(self) -> dict[str, str]:
        """With span patterns, ``input_base`` enters the cache key as the resolved files
        (names, sizes, mtimes) instead of the whole folder: a new span changes the key only
        when it changes what is read. Without them, as for any component."""
        try:
            patterns = self._span_patterns(self.exec_properties)
        except InputDataError as exc:  # Do raises it again, as a failed execution
            return {"input_base": f"unresolved: {exc}"}
        if patterns is None:
            return super().fingerprints()
        out = {}
        for key, spec in self.PARAMETERS.items():
            value = self.exec_properties.get(key)
            if key == "input_base" or not spec.fingerprint or not isinstance(value, str):
                continue
            out[key] = fingerprint_path(value, spec.fingerprint)
        self._pending_resolution = None
        try:
            resolution = _spans.resolve(self.exec_properties["input_base"], patterns,
                                        self.exec_properties.get("range_config"))
        except InputDataError as exc:  # Do raises it again, as a failed execution
            out["input_base"] = f"unresolved: {exc}"
            return out
        self._pending_resolution = (_resolution_request(self.exec_properties), resolution)
        out["input_base"] = f"spans:{resolution.fingerprint}"
        return out

    def _splits(self, exec_properties: dict[str, Any]) -> tuple[list[tuple[str, str]] | None,
                                                                 list[tuple[str, int]]]:
        """(pattern splits from input_config, hash splits from output_config)."""
        input_config = exec_properties.get("input_config") or {}
        patterns = [(s["name"], s["pattern"]) for s in input_config.get("splits", [])]
        if len(patterns) == 1 and not exec_properties.get("output_config"):
            patterns = []  # one pattern: it is the input, still hash-split below
        output_config = exec_properties.get("output_config") or DEFAULT_OUTPUT_CONFIG
        buckets = [(s["name"], int(s["hash_buckets"]))
                   for s in output_config.get("split_config", {}).get("splits", [])]
        if not patterns and not buckets:
            raise InputDataError(f"{self.id}: output_config defines no splits")
        for name, count in buckets:
            if count <= 0:
                raise InputDataError(f"{self.id}: split {name!r} needs hash_buckets > 0")
        names = [n for n, _ in (patterns or buckets)]
        if len(set(names)) != len(names) or any(not _safe_split(n) for n in names):
            raise InputDataError(f"{self.id}: split names must be unique simple names, got {names}")
        return (patterns or None), buckets

    def _publish(self, examples: Examples, table, buckets: list[tuple[str, int]],
                 pattern_tables: dict[str, Any] | None, ctx: ExecutorContext,
                 payload: str = FORMAT_PARQUET) -> None:
        examples.properties["payload_format"] = payload  # write_split writes this format
        counts = {}
        if pattern_tables is not None:
            for name, part in pattern_tables.items():
                write_split(examples, name, part)
                counts[name] = part.num_rows
        else:
            for name, part in _hash_split(table, buckets, by_value=_spanned(examples)):
                write_split(examples, name, part)
                counts[name] = part.num_rows
        record_splits(examples, counts, ctx, "wrote")


class CsvExampleGen(_ExampleGenBase):
    """Reads every ``*.csv`` file under ``input_base`` and splits rows by a stable hash.

    Args:
        input_base: folder of CSV files sharing one header.
        input_config: optional ``{"splits": [{"name": "train", "pattern": "train/*.csv"}, ...]}``
            when the data is already split. Patterns may name spans and versions as TFX
            does: ``{SPAN}``, ``{VERSION}`` (``{SPAN:2}``: two digits) or a date
            ``{YYYY}``/``{MM}``/``{DD}`` (span = days since 1970-01-01); the artifact then
            records ``span``, ``version`` and ``spans``, and one split pattern is
            hash-split by ``output_config``, several are one split each.
        range_config: which spans (TFX's ``RangeConfig``): none for the latest span;
            ``{"static_range": {"start_span_number": N, "end_span_number": N}}``, or
            ``{"rolling_range": {"num_spans": N}}`` for the latest N. Each span is read at
            its latest version.
        output_config: ``{"split_config": {"splits": [{"name": ..., "hash_buckets": N}]}}``;
            train:eval 2:1 by default.
        schema: optional curated Schema channel; columns are parsed as the types it declares
            and a value that does not parse stops ingestion naming file, line and column.
        output_data_format: the payload, as TFX names it: ``"FORMAT_PARQUET"`` (default) or
            ``"FORMAT_TF_EXAMPLE"`` (GZIP TFRecord of tf.Example, TFX's default); TFX's
            enum numbers (15, 6) work too.
    """

    INPUTS = {"schema": InputSpec(Schema, optional=True)}
    PARAMETERS = {"input_base": ExecutionParameter(str, required=True, fingerprint="tree"),
                  "input_config": ExecutionParameter(dict), "output_config": ExecutionParameter(dict),
                  "output_data_format": ExecutionParameter(str, default=FORMAT_PARQUET),
                  "range_config": ExecutionParameter(dict)}

    def __init__(self, input_base: str, input_config: dict | None = None,
                 output_config: dict | None = None, schema=None,
                 output_data_format: str | int | None = None,
                 range_config: dict | None = None):
        super().__init__(input_base=os.fspath(input_base), input_config=input_config,
                         output_config=output_config, schema=schema,
                         output_data_format=payload_format_name(output_data_format),
                         range_config=range_config)
        self._drop_unset_range_config()

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        base = exec_properties["input_base"]
        declared = _schema_types(input_dict.get("schema"))
        patterns, buckets = self._splits(exec_properties)
        resolution = self._resolve_spans(exec_properties)
        if resolution is not None:
            patterns, groups = _span_groups(resolution, output_dict["examples"][0], ctx)
        else:
            groups = ({name: _csv_files(base, pattern) for name, pattern in patterns}
                      if patterns else {None: _csv_files(base, "*.csv")})
        if ctx.beam_pipeline_args:
            _csv_on_beam(output_dict["examples"][0], groups, buckets, declared, base, ctx,
                         _payload(exec_properties))
            return
        size = sum(os.path.getsize(f) for files in groups.values() for f in files)
        if size > STREAM_BYTES:
            ctx.log(f"{size / 2**20:,.0f} MB of CSV: reading it in blocks of "
                    f"{STREAM_BLOCK_BYTES / 2**20:g} MB (bounded memory)")
            _stream_publish(output_dict["examples"][0], groups, buckets, declared, base, ctx,
                            _payload(exec_properties))
            return
        if patterns:
            pattern_tables = {name: read_csv_files(files, declared, ctx.log)
                              for name, files in groups.items()}
            table = None
        else:
            table = read_csv_files(groups[None], declared, ctx.log)
            pattern_tables = None
        if table is not None and table.num_rows == 0:
            raise InputDataError(f"{base}: the CSV files have a header but no rows")
        self._publish(output_dict["examples"][0], table, buckets, pattern_tables, ctx,
                      _payload(exec_properties))


class ImportExampleGen(_ExampleGenBase):
    """Imports TFRecord files of serialized ``tf.Example`` (plain or GZIP) under ``input_base``.

    ``output_data_format`` chooses the payload written, as for :class:`CsvExampleGen`
    (Parquet by default; ``"FORMAT_TF_EXAMPLE"`` writes GZIP TFRecord of tf.Example).
    """

    PARAMETERS = {"input_base": ExecutionParameter(str, required=True, fingerprint="tree"),
                  "input_config": ExecutionParameter(dict), "output_config": ExecutionParameter(dict),
                  "output_data_format": ExecutionParameter(str, default=FORMAT_PARQUET),
                  "range_config": ExecutionParameter(dict)}

    def __init__(self, input_base: str, input_config: dict | None = None,
                 output_config: dict | None = None,
                 output_data_format: str | int | None = None,
                 range_config: dict | None = None):
        super().__init__(input_base=os.fspath(input_base), input_config=input_config,
                         output_config=output_config,
                         output_data_format=payload_format_name(output_data_format),
                         range_config=range_config)
        self._drop_unset_range_config()

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        base = exec_properties["input_base"]
        patterns, buckets = self._splits(exec_properties)
        resolution = self._resolve_spans(exec_properties)
        if ctx.beam_pipeline_args:
            if resolution is not None:
                _, groups = _span_groups(resolution, output_dict["examples"][0], ctx)
            elif patterns:
                groups = {name: _data_files(base, pattern, "TFRecord")
                          for name, pattern in patterns}
            else:
                groups = {None: _data_files(base, "*", "TFRecord")}
            _tfrecords_on_beam(output_dict["examples"][0], groups, buckets, base, ctx,
                               _payload(exec_properties))
            return
        if resolution is not None:
            patterns, groups = _span_groups(resolution, output_dict["examples"][0], ctx)
            if patterns:
                pattern_tables = {name: _read_tfrecords(files) for name, files in groups.items()}
                table = None
            else:
                table, pattern_tables = _read_tfrecords(groups[None]), None
        elif patterns:
            pattern_tables = {name: _read_tfrecords(_data_files(base, pattern, "TFRecord"))
                              for name, pattern in patterns}
            table = None
        else:
            table = _read_tfrecords(_data_files(base, "*", "TFRecord"))
            pattern_tables = None
        self._publish(output_dict["examples"][0], table, buckets, pattern_tables, ctx,
                      _payload(exec_properties))


def _payload(exec_properties: dict[str, Any]) -> str:
    return payload_format_name(exec_properties.get("output_data_format"))


# -- inputs ------------------------------------------------------------------------------
def _resolution_request(exec_properties: dict[str, Any]) -> str:
    from toolkit.cache import canonical_json, encode_parameter

    return canonical_json(encode_parameter({k: exec_properties.get(k) for k in
                                            ("input_base", "input_config", "range_config")}))


def _span_groups(resolution: _spans.Resolution, examples: Examples, ctx: ExecutorContext
                 ) -> tuple[list[str] | None, dict[str | None, list[str]]]:
    """(split names or None, files per split) of a span resolution; one split pattern is
    the input of the hash split (group ``None``). Records span, version and spans."""
    examples.properties["span"] = resolution.span
    if resolution.version is not None:
        examples.properties["version"] = resolution.version
    examples.properties["spans"] = json.dumps(list(resolution.spans))
    count = sum(len(files) for files in resolution.files.values())
    spans = (f"spans {resolution.spans[0]}-{resolution.span}" if len(resolution.spans) > 1
             else f"span {resolution.span}")
    ctx.log(f"{spans}" + ("" if resolution.version is None else f", version {resolution.version}")
            + f": {count} file{'s' if count != 1 else ''}")
    if len(resolution.files) == 1:
        return None, {None: next(iter(resolution.files.values()))}
    return list(resolution.files), dict(resolution.files)


def _safe_split(name: str) -> bool:
    return bool(name) and name.replace("_", "").replace("-", "").isalnum()


def _data_files(base: str, pattern: str, kind: str) -> list[str]:
    if not os.path.isdir(base):
        raise InputDataError(f"input_base {base} does not exist or is not a folder")
    files = sorted(p for p in glob.glob(os.path.join(base, pattern), recursive=True)
                   if os.path.isfile(p) and not os.path.basename(p).startswith("."))
    if not files:
        raise InputDataError(f"input_base {base} has no {kind} files matching {pattern!r}")
    return files


def _csv_files(base: str, pattern: str) -> list[str]:
    files = _data_files(base, pattern, "CSV")
    return [f for f in files if fnmatch.fnmatch(os.path.basename(f), "*.csv")] or files


def _schema_types(schema_artifacts) -> dict[str, str]:
    if not schema_artifacts:
        return {}
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    with open(schema_artifacts[0].schema_path) as handle:
        text_format.Parse(handle.read(), schema)
    names = {schema_pb2.INT: "int", schema_pb2.FLOAT: "float", schema_pb2.BYTES: "string"}
    return {f.name: names[f.type] for f in schema.feature if f.type in names}


# -- splitting and writing -----------------------------------------------------------------
def _stream_publish(examples: Examples, groups: dict[str | None, list[str]],
                    buckets: list[tuple[str, int]], declared: dict[str, str], base: str,
                    ctx: ExecutorContext, payload: str = FORMAT_PARQUET) -> None:
    """Write the splits block by block: the same rows, types and split assignment as
    loading the files whole (``read_csv_files`` then ``_publish``), in bounded memory."""
    examples.properties["payload_format"] = payload
    counts: dict[str, int] = {}
    for group, files in groups.items():
        stream = CsvStream(files, declared, ctx.log)
        names = [group] if group is not None else [name for name, _ in buckets]
        writers = {name: _split_writer(examples, name, stream.schema) for name in names}
        try:
            counts.update({name: 0 for name in names})
            for table in stream.tables():
                parts = ([(group, table)] if group is not None
                         else _hash_split(table, buckets, stream.nullable,
                                                       by_value=_spanned(examples)))
                for name, part in parts:
                    writers[name].write_table(part)
                    counts[name] += part.num_rows
        finally:
            for writer in writers.values():
                writer.close()
        if group is None and sum(counts.values()) == 0:
            raise InputDataError(f"{base}: the CSV files have a header but no rows")
    record_splits(examples, counts, ctx, "wrote")


def _hash_split(table, buckets: list[tuple[str, int]],
                nullable: set[str] | frozenset[str] = frozenset(), by_value: bool = False):
    """Each hash split's rows, by a hash of the row's values.

    With ``by_value`` (span reads: rolling windows) the hash sees integer columns as float
    and the columns in name order, so a row lands in the same split whatever is read with
    it: pandas holds an integer column as float when a value is missing anywhere in what
    it reads, and the next span or window may differ there. A trip trained on in one
    window is then never evaluated in the next.

    Without it (an ``input_base`` read whole, as before spans existed) splits stay what
    they always were: a block of a streamed file names in ``nullable`` the integer columns
    missing a value anywhere in the file, hashed as float as pandas holds them in a whole
    table, so the streamed and whole-file paths split alike.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if by_value:
        names = sorted(table.column_names)
        hashed = pa.table([_as_float(table.column(n)) for n in names], names=names)
    else:
        hashed = pa.table([_as_float(c) if n in nullable else c
                           for n, c in zip(table.column_names, table.columns)],
                          names=table.column_names)
    hashes = pd.util.hash_pandas_object(hashed.to_pandas(), index=False).to_numpy()
    bucket = hashes % np.uint64(sum(n for _, n in buckets))
    low = 0
    for name, count in buckets:
        mask = (bucket >= low) & (bucket < low + count)
        low += count
        yield name, table.filter(pa.array(mask))


def _spanned(examples: Examples) -> bool:
    """Whether ``examples`` was read over spans (its rows are split by value alone)."""
    return "spans" in examples.properties


def _as_float(column):
    import pyarrow as pa

    return column.cast(pa.float64()) if pa.types.is_integer(column.type) else column


def _split_writer(examples: Examples, split: str, schema):
    """A block-by-block writer of one split in the artifact's payload format."""
    return open_split_writer(examples, split, schema)


# -- TFRecord ------------------------------------------------------------------------------
def _read_tfrecords(files: list[str]):
    """Decode tf.Example records to Arrow; single-valued features become scalar columns."""
    table = read_tfrecord_table(files)
    if table.num_rows == 0:
        raise InputDataError(f"{os.path.dirname(files[0])}: the TFRecord files hold no records")
    return table


# -- on Beam -----------------------------------------------------------------------------
# The Beam path reads its inputs in the workers, twice, as the streamed path does: a first
# pass learns each column's type over all files (and finds any fault), a second converts,
# splits and writes. Only small descriptions of the work (file chunks, the plan of column
# types) travel between the steps, never rows, so the runner holds no data in memory.
# Each worker writes its rows of a split to a part file named by where the rows sit in the
# input; the parts are renamed in that order at the end, so every split holds the rows the
# in-process path writes, in the same order. Faults found by the workers come back as data
# and stop the run with the in-process message (file, line, column), before any row is
# written.

#: rows of TFRecord input decoded at once by a Beam worker
_BEAM_RECORDS = 8192


def _csv_on_beam(examples: Examples, groups: dict[str | None, list[str]],
                 buckets: list[tuple[str, int]], declared: dict[str, str], base: str,
                 ctx: ExecutorContext, payload: str) -> None:
    from toolkit.components.csv_reader import csv_chunks, csv_header

    job = _Job(groups, buckets, declared, payload, examples, base)
    job.headers = [csv_header(files, declared, ctx.log) for files in groups.values()]
    elements = []
    for gi, files in enumerate(groups.values()):
        index = {path: fi for fi, path in enumerate(files)}
        seen: dict[str, int] = {}
        for chunk in csv_chunks(files, _chunk_bytes()):
            ci = seen[chunk.path] = seen.get(chunk.path, -1) + 1
            elements.append((gi, index[chunk.path], ci, chunk))
    size = sum(os.path.getsize(f) for files in groups.values() for f in files)
    ctx.log(f"{size / 2**20:,.1f} MB of CSV in {len(elements)} chunk"
            f"{'s' if len(elements) != 1 else ''}: reading, splitting and writing on Beam "
            f"({' '.join(ctx.beam_pipeline_args)})")
    _run_on_beam(examples, job, elements, _profile_csv_chunk, _csv_plan, _write_csv_chunk, ctx)


def _tfrecords_on_beam(examples: Examples, groups: dict[str | None, list[str]],
                       buckets: list[tuple[str, int]], base: str, ctx: ExecutorContext,
                       payload: str) -> None:
    job = _Job(groups, buckets, {}, payload, examples, base)
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
        self.by_value = _spanned(examples)
        self.headers: list[list[str]] = []
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
        yield from _write_parts(table, gi, f"{fi:06d}-{ci:06d}", group, job)


def _write_parts(table, gi: int, key: str, group: dict[str, Any], job: _Job, writers=None):
    """Split ``table`` as in process and write each split's rows to its part ``key``;
    ``(split, rows)`` for each part closed here (``writers`` keeps them open instead)."""
    from toolkit.components._io import PartWriter

    name = job.names[gi]
    parts = ([(name, table)] if name is not None
             else _hash_split(table, job.buckets, set(group["nullable"]),
                                         by_value=job.by_value))
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
    for batch in _record_batches(path):
        table = _conform(batch, group["targets"])
        for _ in _write_parts(table, gi, f"{fi:06d}", group, job, writers):
            pass
    for split, writer in writers.items():
        yield split, writer.close()


def _record_batches(path: str):
    """The tf.Examples of one TFRecord file (plain or GZIP) as RecordBatches of list columns,
    a few thousand at a time (the in-process reader's framing and messages)."""
    from toolkit.components._io import decode_examples, read_records

    chunk: list[bytes] = []
    for record in read_records(path):
        chunk.append(record)
        if len(chunk) == _BEAM_RECORDS:
            yield decode_examples(chunk, path)
            chunk = []
    if chunk:
        yield decode_examples(chunk, path)


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

