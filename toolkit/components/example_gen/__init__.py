"""CsvExampleGen and ImportExampleGen: ingest data into a split Examples artifact.

With ``beam_pipeline_args`` (the context's, or ``context.run(..., beam_pipeline_args=...)``)
both read, split and write in Beam's workers (how: :mod:`.beam`); without them they run
in the notebook's process (:mod:`.reader`), the fastest way on one machine.
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

A ``FORMAT_TF_EXAMPLE`` payload is split as TFX splits it (``split_method="tfx"``,
:mod:`.tfx_split`), Parquet by the toolkit's own hash unless asked.

This package: the components and their driver hook (span resolution) here; how rows
are split in :mod:`.splitting` and :mod:`.tfx_split`; the in-process reader in :mod:`.reader`; the Beam plan
in :mod:`.beam`. The components are defined here, in ``toolkit.components.example_gen``,
because a component class's module is part of its cache key.
"""
from __future__ import annotations

import os
from typing import Any

from toolkit import storage
from toolkit.artifacts import Examples, Schema
from toolkit.base_component import (BaseComponent, ExecutionParameter, ExecutorContext,
                                    InputSpec, ResolvedProperties)
from toolkit.cache import fingerprint_path
from toolkit.components import _spans
from toolkit.components._io import (FORMAT_PARQUET, FORMAT_TF_EXAMPLE, payload_format_name,
                                   record_splits, write_split)
from toolkit.components.csv_reader import STREAM_BLOCK_BYTES, read_csv_files
from toolkit.components.example_gen.beam import csv_on_beam, tfrecords_on_beam
from toolkit.components.example_gen.reader import (csv_files, data_files, read_tfrecords,
                                                   schema_types, span_groups, stream_publish)
from toolkit.components.example_gen.splitting import (DEFAULT_OUTPUT_CONFIG, hash_split,
                                                      spanned, split_by_index, split_config,
                                                      split_method_of, tfx_csv_index,
                                                      tfx_csv_kinds, tfx_record_index)
from toolkit.components.example_gen.tfx_split import TFX, TOOLKIT, check_split_method
from toolkit.components.example_gen.tfx_split import partition_feature as tfx_partition
from toolkit.errors import InputDataError

__all__ = ["CsvExampleGen", "DEFAULT_OUTPUT_CONFIG", "ImportExampleGen", "RESOLVED_SPANS",
           "STREAM_BYTES"]

#: CSV inputs larger than this in total are read block by block and written split by split
#: (two passes: column types, then rows), so memory stays bounded whatever the input size.
#: Smaller inputs are loaded whole, the fastest way. Both give the same splits and types.
STREAM_BYTES = 256 * 2**20
#: the exec property the driver hook adds for ``Do``: the spans and files it resolved
#: (a ``_spans.Resolution``); not a parameter, so not part of the cache key's parameters
RESOLVED_SPANS = "resolved_spans"

#: what both file-reading ExampleGens declare; ``input_base`` is fingerprinted by its tree
FILE_PARAMETERS = {"input_base": ExecutionParameter(str, required=True, fingerprint="tree"),
                   "input_config": ExecutionParameter(dict), "output_config": ExecutionParameter(dict),
                   "output_data_format": ExecutionParameter(str, default=FORMAT_PARQUET),
                   "range_config": ExecutionParameter(dict),
                   "split_method": ExecutionParameter(str)}


class _ExampleGenBase(BaseComponent):
    OUTPUTS = {"examples": Examples}

    def _drop_unset_range_config(self) -> None:
        """``range_config`` enters the recorded parameters only when given, so the cache
        keys of ExampleGens without spans stay what they were before it existed."""
        if self.exec_properties.get("range_config") is None:
            self.exec_properties.pop("range_config", None)

    def _record_split_method(self, split_method: str | None) -> None:
        """TFX's split is recorded as ``split_method="tfx"``; the toolkit's own is left out
        of the recorded parameters. So runs written with the toolkit's split before the
        parameter existed (Parquet, or ``split_method="toolkit"``) keep their cache keys,
        and a tf.Example payload, split as TFX splits it by default, gets a key of its own:
        it is never served an output split the other way."""
        payload = self.exec_properties.get("output_data_format")
        method = check_split_method(split_method) or (
            TFX if payload == FORMAT_TF_EXAMPLE else TOOLKIT)
        if method == TFX:
            self.exec_properties["split_method"] = TFX
        else:
            self.exec_properties.pop("split_method", None)

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

    def resolve_exec_properties(self, inputs) -> ResolvedProperties:
        """The driver hook: with span patterns, which spans and versions (and so which
        files) this run reads, resolved once. ``input_base`` then enters the cache key as
        those files (names, sizes, mtimes) instead of the whole folder, so a new span
        changes the key only when it changes what is read; ``Do`` gets the resolution as
        ``exec_properties[RESOLVED_SPANS]``, so it reads what the key says. Input that
        cannot be resolved enters the key as the reason, and ``Do`` raises it again, as a
        failed execution. Without span patterns, as for any component."""
        declared = dict(self.exec_properties)
        try:
            patterns = self._span_patterns(declared)
        except InputDataError as exc:
            return ResolvedProperties(declared, {"input_base": f"unresolved: {exc}"})
        if patterns is None:
            return super().resolve_exec_properties(inputs)
        fingerprints = {}
        for key, spec in self.PARAMETERS.items():
            value = declared.get(key)
            if key == "input_base" or not spec.fingerprint or not isinstance(value, str):
                continue
            fingerprints[key] = fingerprint_path(value, spec.fingerprint)
        try:
            resolution = _spans.resolve(declared["input_base"], patterns,
                                        declared.get("range_config"))
        except InputDataError as exc:
            fingerprints["input_base"] = f"unresolved: {exc}"
            return ResolvedProperties(declared, fingerprints)
        fingerprints["input_base"] = f"spans:{resolution.fingerprint}"
        return ResolvedProperties({**declared, RESOLVED_SPANS: resolution}, fingerprints)

    def _resolve_spans(self, exec_properties: dict[str, Any]) -> _spans.Resolution | None:
        """The spans and files to read, or None without span patterns: the driver hook's
        resolution when ``Do`` is called by the launcher, else resolved now."""
        patterns = self._span_patterns(exec_properties)
        if patterns is None:
            return None
        resolved = exec_properties.get(RESOLVED_SPANS)
        if resolved is not None:
            return resolved
        return _spans.resolve(exec_properties["input_base"], patterns,
                              exec_properties.get("range_config"))

    def _splits(self, exec_properties: dict[str, Any]) -> tuple[list[tuple[str, str]] | None,
                                                                 list[tuple[str, int]]]:
        """(pattern splits from input_config, hash splits from output_config): see
        :func:`.splitting.split_config`."""
        return split_config(self.id, exec_properties)

    def _publish(self, examples: Examples, table, buckets: list[tuple[str, int]],
                 pattern_tables: dict[str, Any] | None, ctx: ExecutorContext,
                 payload: str = FORMAT_PARQUET, index=None) -> None:
        """Write the splits; ``index`` (TFX's split) gives each row's split position."""
        examples.properties["payload_format"] = payload  # write_split writes this format
        counts = {}
        if pattern_tables is not None:
            for name, part in pattern_tables.items():
                write_split(examples, name, part)
                counts[name] = part.num_rows
        else:
            parts = (hash_split(table, buckets, by_value=spanned(examples)) if index is None
                     else split_by_index(table, buckets, index.take(table.num_rows)))
            for name, part in parts:
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
        split_method: how rows are hash-split: ``"tfx"`` as TFX's ExampleGen does (sha256
            of the row's tf.Example serialized deterministically, column types inferred
            over the whole CSV, ``partition_feature_name`` honoured), so train and eval hold
            TFX's rows; ``"toolkit"``, the toolkit's own hash of the row's values. Default:
            TFX's with ``FORMAT_TF_EXAMPLE``, the toolkit's with Parquet (its splits, and
            the cache of earlier runs, unchanged).
    """

    INPUTS = {"schema": InputSpec(Schema, optional=True)}
    PARAMETERS = FILE_PARAMETERS

    def __init__(self, input_base: str, input_config: dict | None = None,
                 output_config: dict | None = None, schema=None,
                 output_data_format: str | int | None = None,
                 range_config: dict | None = None, split_method: str | None = None):
        super().__init__(input_base=os.fspath(input_base), input_config=input_config,
                         output_config=output_config, schema=schema,
                         output_data_format=payload_format_name(output_data_format),
                         range_config=range_config)
        self._drop_unset_range_config()
        self._record_split_method(split_method)

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        base = exec_properties["input_base"]
        declared = schema_types(input_dict.get("schema"))
        patterns, buckets = self._splits(exec_properties)
        resolution = self._resolve_spans(exec_properties)
        if resolution is not None:
            patterns, groups = span_groups(resolution, output_dict["examples"][0], ctx)
        else:
            groups = ({name: csv_files(base, pattern) for name, pattern in patterns}
                      if patterns else {None: csv_files(base, "*.csv")})
        if ctx.beam_pipeline_args:
            csv_on_beam(output_dict["examples"][0], groups, buckets, declared, base, ctx,
                        _payload(exec_properties), _csv_kinds(exec_properties, groups))
            return
        size = sum(storage.stat(f).size for files in groups.values() for f in files)
        if size > STREAM_BYTES:
            ctx.log(f"{size / 2**20:,.0f} MB of CSV: reading it in blocks of "
                    f"{STREAM_BLOCK_BYTES / 2**20:g} MB (bounded memory)")
            stream_publish(output_dict["examples"][0], groups, buckets, declared, base, ctx,
                           _payload(exec_properties), _csv_index(exec_properties, groups,
                                                                 buckets))
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
                      _payload(exec_properties), _csv_index(exec_properties, groups, buckets))


class ImportExampleGen(_ExampleGenBase):
    """Imports TFRecord files of serialized ``tf.Example`` (plain or GZIP) under ``input_base``.

    ``output_data_format`` chooses the payload written, as for :class:`CsvExampleGen`
    (Parquet by default; ``"FORMAT_TF_EXAMPLE"`` writes GZIP TFRecord of tf.Example).
    ``split_method`` as for :class:`CsvExampleGen`; TFX's hashes each record's bytes.
    """

    PARAMETERS = FILE_PARAMETERS

    def __init__(self, input_base: str, input_config: dict | None = None,
                 output_config: dict | None = None,
                 output_data_format: str | int | None = None,
                 range_config: dict | None = None, split_method: str | None = None):
        super().__init__(input_base=os.fspath(input_base), input_config=input_config,
                         output_config=output_config,
                         output_data_format=payload_format_name(output_data_format),
                         range_config=range_config)
        self._drop_unset_range_config()
        self._record_split_method(split_method)

    def Do(self, input_dict, output_dict, exec_properties, ctx):
        base = exec_properties["input_base"]
        patterns, buckets = self._splits(exec_properties)
        resolution = self._resolve_spans(exec_properties)
        if ctx.beam_pipeline_args:
            if resolution is not None:
                _, groups = span_groups(resolution, output_dict["examples"][0], ctx)
            elif patterns:
                groups = {name: data_files(base, pattern, "TFRecord")
                          for name, pattern in patterns}
            else:
                groups = {None: data_files(base, "*", "TFRecord")}
            tfx = None
            if None in groups and split_method_of(exec_properties) == TFX:
                if tfx_partition(exec_properties.get("output_config")):
                    tfx_record_index([], buckets, exec_properties.get("output_config"))
                tfx = True
            tfrecords_on_beam(output_dict["examples"][0], groups, buckets, base, ctx,
                              _payload(exec_properties), tfx)
            return
        if resolution is not None:
            patterns, groups = span_groups(resolution, output_dict["examples"][0], ctx)
            if patterns:
                pattern_tables = {name: read_tfrecords(files) for name, files in groups.items()}
                table = None
            else:
                table, pattern_tables = read_tfrecords(groups[None]), None
        elif patterns:
            pattern_tables = {name: read_tfrecords(data_files(base, pattern, "TFRecord"))
                              for name, pattern in patterns}
            table = None
        else:
            files = data_files(base, "*", "TFRecord")
            table, pattern_tables = read_tfrecords(files), None
            groups = {None: files}
        index = None
        if table is not None and split_method_of(exec_properties) == TFX:
            index = tfx_record_index(groups[None], buckets, exec_properties.get("output_config"))
        self._publish(output_dict["examples"][0], table, buckets, pattern_tables, ctx,
                      _payload(exec_properties), index)


def _csv_index(exec_properties: dict[str, Any], groups: dict, buckets: list[tuple[str, int]]):
    """TFX's split of the group that is hash-split (an ``IndexStream``), or None for the
    toolkit's own or when the input is split by pattern."""
    if None not in groups or split_method_of(exec_properties) != TFX:
        return None
    return tfx_csv_index(groups[None], buckets, exec_properties.get("output_config"))


def _csv_kinds(exec_properties: dict[str, Any], groups: dict):
    """For Beam workers: TFX's column kinds over the hash-split files and the partition
    feature, or None for the toolkit's own split or input split by pattern."""
    if None not in groups or split_method_of(exec_properties) != TFX:
        return None
    return tfx_csv_kinds(groups[None], exec_properties.get("output_config"))


def _payload(exec_properties: dict[str, Any]) -> str:
    return payload_format_name(exec_properties.get("output_data_format"))
