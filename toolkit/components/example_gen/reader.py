"""ExampleGen's in-process reader: which files to read, and reading them in the
notebook's process (whole, or block by block for large CSV input).
"""
from __future__ import annotations

import fnmatch
import json
import os

from toolkit import storage
from toolkit.artifacts import Examples
from toolkit.base_component import ExecutorContext
from toolkit.components._io import (FORMAT_PARQUET, open_split_writer, read_tfrecord_table,
                                   record_splits)
from toolkit.components._spans import Resolution
from toolkit.components.csv_reader import CsvStream
from toolkit.components.example_gen.splitting import hash_split, spanned, split_by_index
from toolkit.errors import InputDataError


def span_groups(resolution: Resolution, examples: Examples, ctx: ExecutorContext
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


def data_files(base: str, pattern: str, kind: str) -> list[str]:
    """The files under ``base`` matching ``pattern`` (hidden ones aside), sorted; one line
    naming ``base`` and the pattern when there are none."""
    if not storage.is_dir(base):
        if storage.is_file(base):
            raise InputDataError(f"input_base {base} is a file, not a folder; give the "
                                 "folder that holds the data files")
        raise InputDataError(f"input_base {base} does not exist or is not a folder")
    files = [p for p in storage.glob_under(base, pattern, as_uris=True)
             if storage.is_file(p) and not os.path.basename(p).startswith(".")]
    if not files:
        raise InputDataError(f"input_base {base} has no {kind} files matching {pattern!r}")
    return files


def csv_files(base: str, pattern: str) -> list[str]:
    """The ``*.csv`` files matching ``pattern`` (every match if none is named so)."""
    files = data_files(base, pattern, "CSV")
    return [f for f in files if fnmatch.fnmatch(os.path.basename(f), "*.csv")] or files


def schema_types(schema_artifacts) -> dict[str, str]:
    """Column -> ``int``/``float``/``string`` as a curated Schema declares them ({} without)."""
    if not schema_artifacts:
        return {}
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    text_format.Parse(storage.read_text(schema_artifacts[0].schema_path), schema)
    names = {schema_pb2.INT: "int", schema_pb2.FLOAT: "float", schema_pb2.BYTES: "string"}
    return {f.name: names[f.type] for f in schema.feature if f.type in names}


def stream_publish(examples: Examples, groups: dict[str | None, list[str]],
                   buckets: list[tuple[str, int]], declared: dict[str, str], base: str,
                   ctx: ExecutorContext, payload: str = FORMAT_PARQUET, index=None) -> None:
    """Write the splits block by block: the same rows, types and split assignment as
    loading the files whole (``read_csv_files``, then each split written at once), in
    bounded memory. ``index`` (TFX's split) gives the hash-split rows' split positions."""
    examples.properties["payload_format"] = payload
    counts: dict[str, int] = {}
    for group, files in groups.items():
        stream = CsvStream(files, declared, ctx.log)
        names = [group] if group is not None else [name for name, _ in buckets]
        writers = {name: open_split_writer(examples, name, stream.schema) for name in names}
        try:
            counts.update({name: 0 for name in names})
            for table in stream.tables():
                if group is not None:
                    parts = [(group, table)]
                elif index is not None:
                    parts = split_by_index(table, buckets, index.take(table.num_rows))
                else:
                    parts = hash_split(table, buckets, stream.nullable,
                                       by_value=spanned(examples))
                for name, part in parts:
                    writers[name].write_table(part)
                    counts[name] += part.num_rows
        finally:
            for writer in writers.values():
                writer.close()
        if group is None and sum(counts.values()) == 0:
            raise InputDataError(f"{base}: the CSV files have a header but no rows")
    record_splits(examples, counts, ctx, "wrote")


def read_tfrecords(files: list[str]):
    """Decode tf.Example records to Arrow; single-valued features become scalar columns."""
    table = read_tfrecord_table(files)
    if table.num_rows == 0:
        raise InputDataError(f"{os.path.dirname(files[0])}: the TFRecord files hold no records")
    return table
