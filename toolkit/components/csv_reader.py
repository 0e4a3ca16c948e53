"""Reading CSV files into typed Arrow tables, whole or block by block.

Its one job: CSV text becomes columns of int64, float64 or string, typed as TFX's
CSV decoder types them (or as a curated schema declares them), and any fault stops
the read with one line naming the file, the line and the column. Inputs larger
than memory are read in two passes (column types, then rows) that give exactly
the tables a whole load gives, so that the split an example lands in never
depends on the input's size. Deciding the splits and writing them is ExampleGen's
business, not this module's.
"""
from __future__ import annotations

import codecs
import csv
from typing import Any, Callable, Iterator

from toolkit._text import first_line
from toolkit.errors import InputDataError

#: block size of the CSV reader, whole-file and streamed alike
STREAM_BLOCK_BYTES = 1 << 24

_TRUE_TEXT = ("1", "True", "TRUE", "true")
_FALSE_TEXT = ("0", "False", "FALSE", "false")


def read_csv_files(files: list[str], declared: dict[str, str], log: Callable[[str], None]):
    """One table of all ``files`` (which share one header), loaded whole.

    ``declared`` maps column names to the schema's ``int``, ``float`` or ``string``
    (empty: infer the types); ``log`` is told of declared columns the files lack.
    """
    header = _common_header(files, declared, log)
    tables = [_read_csv(path, header, declared) for path in files]
    return _unify(tables)


class CsvStream:
    """``files`` (sharing one header) as typed tables, one block at a time.

    Creating it reads the files once to fix each column's type over all of them;
    :meth:`tables` reads them again, so memory holds one block whatever the input
    size, and every block is typed as :func:`read_csv_files` types the whole.
    """

    def __init__(self, files: list[str], declared: dict[str, str],
                 log: Callable[[str], None]):
        self.files = files
        self.declared = declared
        self.header = _common_header(files, declared, log)
        self._kinds, self._targets, nullable = _stream_types(files, self.header, declared)
        #: the columns missing a value somewhere in the files
        self.nullable: set[str] = nullable

    @property
    def schema(self):
        """The Arrow schema every block has."""
        import pyarrow as pa

        return pa.schema([pa.field(name, self._targets[name]) for name in self.header])

    def tables(self) -> Iterator[Any]:
        """Each block of each file as a table with :attr:`schema`."""
        for path in self.files:
            for start_line, batch in _text_batches(path, self.header):
                yield _stream_convert(path, batch, self.header, self._kinds[path],
                                      self._targets, self.declared, start_line)


def _read_header(path: str) -> list[str]:
    with open(path, "rb") as handle:
        first = handle.readline()
    if not first.strip():
        raise InputDataError(f"{path}: the file is empty (no header line)")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputDataError(f"{path}, line 1: bytes that are not UTF-8 "
                             f"(at byte {exc.start}); re-encode the file as UTF-8") from None
    try:
        header = next(csv.reader([text]))
    except csv.Error as exc:
        raise InputDataError(f"{path}, line 1: cannot read the header ({exc}; a column name "
                             f"longer than {csv.field_size_limit():,} characters?)") from None
    if any(not h.strip() for h in header):
        raise InputDataError(f"{path}, line 1: the header has an empty column name")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputDataError(f"{path}, line 1: duplicate column names {dupes}")
    return header


def _common_header(files: list[str], declared: dict[str, str],
                   log: Callable[[str], None]) -> list[str]:
    header = _read_header(files[0])
    for path in files[1:]:
        other = _read_header(path)
        if other != header:
            missing = [c for c in header if c not in other]
            extra = [c for c in other if c not in header]
            raise InputDataError(
                f"{path}: header differs from {files[0]}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unexpected {extra}" if extra else "")
                + ("" if missing or extra else "; same columns in another order"))
    unknown = sorted(set(declared) - set(header))
    if unknown:
        log(f"schema declares columns not in the CSV: {unknown}")
    return header


def _read_csv(path: str, header: list[str], declared: dict[str, str]):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(path, **_csv_options(header, as_text=bool(declared)))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _diagnose(path, len(header), exc) from None
    columns, names = [], []
    try:
        for name, column in zip(table.column_names, table.columns):
            columns.append(_convert(path, name, column, declared.get(name)))
            names.append(name)
    except pa.ArrowInvalid as exc:
        raise _diagnose(path, len(header), exc) from None
    return pa.table(columns, names=names)


def _csv_options(header: list[str], as_text: bool) -> dict[str, Any]:
    """The pyarrow.csv options both readers use; ``as_text`` reads every column as text."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return {"read_options": pacsv.ReadOptions(block_size=STREAM_BLOCK_BYTES),
            "parse_options": pacsv.ParseOptions(newlines_in_values=False),
            "convert_options": pacsv.ConvertOptions(
                strings_can_be_null=True, timestamp_parsers=[],
                column_types={c: pa.string() for c in header} if as_text else None)}


def _convert(path: str, name: str, column, declared: str | None, start_line: int = 2):
    """Normalise a column to int64, float64 or string; enforce the declared type.

    ``start_line`` is the file line of the column's first value (for messages)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if declared is None:
        if pa.types.is_integer(column.type):
            return column.cast(pa.int64())
        if pa.types.is_floating(column.type):
            return column.cast(pa.float64())
        if pa.types.is_null(column.type):
            return column  # typed by the other files, or as string by _unify
        return column.cast(pa.string())
    target = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}[declared]
    if declared == "string":
        return column.cast(pa.string())
    trimmed = pc.utf8_trim_whitespace(column.cast(pa.string()))
    try:
        return trimmed.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for index, value in enumerate(trimmed.to_pylist()):
        if value is None:
            continue
        try:
            int(value) if declared == "int" else float(value)
        except ValueError:
            raise InputDataError(
                f"{path}, line {index + start_line}, column '{name}': value {value!r} does not parse "
                f"as {declared.upper()}, the type the schema declares") from None
    raise InputDataError(f"{path}, column '{name}': values do not parse as {declared.upper()}")


def _unify(tables):
    """Concatenate per-file tables, widening int to float and anything mixed to string.

    A column empty in one file takes its type from the others; a column empty
    everywhere becomes string (as TFX's CSV decoder does for an all-missing column).
    """
    import pyarrow as pa

    names = tables[0].column_names
    kind = {"null": "null", "int64": "int", "double": "float"}
    targets = {name: _widen({kind.get(str(t.schema.field(name).type), "string") for t in tables})
               for name in names}
    return pa.concat_tables([pa.table([t.column(n).cast(targets[n]) for n in names], names=names)
                             for t in tables])


def _widen(kinds: set[str]):
    """A column's type over all files from each file's kind of it (``null``, ``int``,
    ``float``, or another for text): int64 if all are int, float64 if all are int or
    float, otherwise string (also when every file has it empty)."""
    import pyarrow as pa

    kinds = kinds - {"null"}
    if kinds == {"int"}:
        return pa.int64()
    if kinds and kinds <= {"int", "float"}:
        return pa.float64()
    return pa.string()


def _diagnose(path: str, width: int, exc: Exception) -> InputDataError:
    """Find the line at fault with a slow, exact scan, once the fast reader has failed."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as err:
                return InputDataError(
                    f"{path}, line {number}: bytes that are not UTF-8 (byte {err.start} of the "
                    "line); re-encode the file as UTF-8")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            for row in reader:
                if row and len(row) != width:
                    return InputDataError(
                        f"{path}, line {reader.line_num}: expected {width} fields as in the "
                        f"header, found {len(row)} (a ragged row)")
        except csv.Error:  # a field beyond the slow scanner's limit: report the fast reader's
            pass
    return InputDataError(f"{path}: cannot parse the CSV: {first_line(str(exc))}")


def _text_batches(path: str, header: list[str]):
    """``(file line of the first row, batch)`` for each block of a CSV file, columns as text."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    line = 2
    try:
        reader = pacsv.open_csv(path, **_csv_options(header, as_text=True))
        for batch in reader:
            yield line, batch
            line += batch.num_rows
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _diagnose(path, len(header), exc) from None


def _text_kind(column) -> str:
    """How loading the whole file types this text: null, int, float, bool (kept as the
    text true/false) or string."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = column.drop_null()
    if len(values) == 0:
        return "null"
    for kind, target in (("int", pa.int64()), ("float", pa.float64())):
        try:
            values.cast(target)
            return kind
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    if pc.all(pc.is_in(values, pa.array(_TRUE_TEXT + _FALSE_TEXT))).as_py():
        return "bool"
    return "string"


def _merge_kind(a: str, b: str) -> str:
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if {a, b} == {"int", "float"}:
        return "float"
    return "string"


def _stream_types(files: list[str], header: list[str], declared: dict[str, str]):
    """First pass: each file's kind of each column, the column types over all files (as
    ``_unify`` decides them), and the columns missing a value somewhere."""
    import pyarrow as pa

    kinds: dict[str, dict[str, str]] = {}
    nullable: set[str] = set()
    for path in files:
        found = {c: "null" for c in header}
        for _, batch in _text_batches(path, header):
            for name, column in zip(header, batch.columns):
                if column.null_count:
                    nullable.add(name)
                if not declared and found[name] != "string":
                    found[name] = _merge_kind(found[name], _text_kind(column))
        kinds[path] = found
    arrow = {"int": pa.int64(), "float": pa.float64()}
    targets = {}
    for name in header:
        if declared:
            targets[name] = arrow.get(declared.get(name, "string"), pa.string())
            continue
        targets[name] = _widen({kinds[p][name] for p in files})  # bool is text: string
    return kinds, targets, nullable


def _stream_convert(path: str, batch, header: list[str], kinds: dict[str, str], targets: dict,
                    declared: dict[str, str], start_line: int):
    """One block as the whole-file path types it: the file's own kind, then the common type."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    try:
        for name, column in zip(header, batch.columns):
            if declared:
                column = _convert(path, name, column, declared.get(name), start_line)
            elif kinds[name] == "int":
                column = column.cast(pa.int64())
            elif kinds[name] == "float":
                column = column.cast(pa.float64())
            elif kinds[name] == "bool":
                column = pc.if_else(pc.is_in(column, pa.array(_TRUE_TEXT)), "true", "false")
            elif kinds[name] == "null":
                column = pa.nulls(len(column), pa.string())
            columns.append(column.cast(targets[name]))
    except pa.ArrowInvalid as exc:
        raise _diagnose(path, len(header), exc) from None
    return pa.table(columns, names=header)
