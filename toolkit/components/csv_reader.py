"""Reading CSV files into typed Arrow tables, whole or block by block.

Its one job: CSV text becomes columns of int64, float64 or string, typed as TFX's
CSV decoder types them (or as a curated schema declares them), and any fault stops
the read with one line naming the file, the line and the column. Inputs larger
than memory are read in two passes (column types, then rows) that give exactly
the tables a whole load gives, so that the split an example lands in never
depends on the input's size. Beam workers read the same files in chunks (byte ranges
cut at line ends, :func:`csv_chunks`) with the same two passes and the same types.
Deciding the splits and writing them is ExampleGen's business, not this module's.
"""
from __future__ import annotations

import codecs
import csv
import dataclasses
import io
from typing import Any, Callable, Iterator

from toolkit import storage
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


def csv_header(files: list[str], declared: dict[str, str],
               log: Callable[[str], None]) -> list[str]:
    """The header ``files`` share; a file whose header differs raises one line naming it.
    ``log`` is told of declared columns the files lack."""
    return _common_header(files, declared, log)


def _read_header(path: str) -> list[str]:
    with storage.open(path, "rb") as handle:
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
        table = pacsv.read_csv(storage.local_path(path),
                               **_csv_options(header, as_text=bool(declared)))
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
    with storage.open(path, "rb") as handle:
        return _diagnose_lines(path, width, exc, handle, 1)


def _diagnose_lines(path: str, width: int, exc: Exception, handle, first: int) -> InputDataError:
    """:func:`_diagnose` over the binary stream ``handle`` whose first line is line ``first``
    of ``path`` (the whole file, or the chunk of it a Beam worker read)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    for number, raw in enumerate(handle, start=first):
        try:
            decoder.decode(raw)
        except UnicodeDecodeError as err:
            return InputDataError(
                f"{path}, line {number}: bytes that are not UTF-8 (byte {err.start} of the "
                "line); re-encode the file as UTF-8")
    handle.seek(0)
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    reader = csv.reader(text)
    try:
        for row in reader:
            if row and len(row) != width:
                return InputDataError(
                    f"{path}, line {reader.line_num + first - 1}: expected {width} fields as "
                    f"in the header, found {len(row)} (a ragged row)")
    except csv.Error:  # a field beyond the slow scanner's limit: report the fast reader's
        pass
    finally:
        text.detach()
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
    return kinds, column_targets(kinds, header, declared), nullable


def column_targets(kinds: dict[str, dict[str, str]], header: list[str],
                   declared: dict[str, str]) -> dict[str, Any]:
    """Each column's Arrow type over all files, from each file's kind of it (as ``_unify``
    decides it for a whole load), or as the schema declares it."""
    import pyarrow as pa

    arrow = {"int": pa.int64(), "float": pa.float64()}
    targets = {}
    for name in header:
        if declared:
            targets[name] = arrow.get(declared.get(name, "string"), pa.string())
            continue
        targets[name] = _widen({found[name] for found in kinds.values()})  # bool is text
    return targets


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
            elif kinds[name] == "bool":  # a missing value stays missing, as in a whole load
                column = pc.if_else(pc.is_valid(column), pc.if_else(
                    pc.is_in(column, pa.array(_TRUE_TEXT)), "true", "false"),
                    pa.scalar(None, pa.string()))
            elif kinds[name] == "null":
                column = pa.nulls(len(column), pa.string())
            columns.append(column.cast(targets[name]))
    except pa.ArrowInvalid as exc:
        raise _diagnose(path, len(header), exc) from None
    return pa.table(columns, names=header)


# -- chunks, for Beam workers --------------------------------------------------------------
#: bytes of CSV that one Beam worker reads as one piece of work (a chunk ends with the line
#: that crosses this size, so no row is cut)
CHUNK_BYTES = 32 * 2**20


@dataclasses.dataclass(frozen=True)
class CsvChunk:
    """A byte range of one CSV file: the rows whose first byte lies in ``[start, end)``."""
    path: str
    start: int
    end: int
    #: the offset of the first byte after the header line
    data_start: int


def csv_chunks(files: list[str], chunk_bytes: int = CHUNK_BYTES) -> list[CsvChunk]:
    """The chunks of ``files`` in file order; a file with only a header has none. Only
    sizes and header lengths are read here: the rows are read by whoever reads a chunk."""
    chunks = []
    for path in files:
        with storage.open(path, "rb") as handle:
            data_start = len(handle.readline())
        size = storage.stat(path).size
        for start in range(data_start, size, chunk_bytes):
            chunks.append(CsvChunk(path, start, min(size, start + chunk_bytes), data_start))
    return chunks


def profile_chunk(chunk: CsvChunk, header: list[str], declared: dict[str, str]
                  ) -> dict[str, Any]:
    """What the first pass learns from one chunk: each column's kind (as
    :func:`_stream_types` sees it), the columns missing a value, and the row count. A fault
    raises one line naming the file, its line and column, as the whole-file read does."""
    offset, head, data = _chunk_text(chunk)
    kinds = {name: "null" for name in header}
    nullable: set[str] = set()
    rows = 0
    for row, batch in _chunk_batches(chunk, offset, head, data, header):
        for name, column in zip(header, batch.columns):
            if column.null_count:
                nullable.add(name)
            if declared:
                _check_declared(chunk, offset, row, name, column, declared.get(name))
            elif kinds[name] != "string":
                kinds[name] = _merge_kind(kinds[name], _text_kind(column))
        rows += batch.num_rows
    return {"kinds": kinds, "nullable": sorted(nullable), "rows": rows}


def merge_kinds(a: dict[str, str], b: dict[str, str]) -> dict[str, str]:
    """Two chunks' kinds of each column as one (the kind of the file they share)."""
    return {name: _merge_kind(kind, b.get(name, "null")) for name, kind in a.items()}


def chunk_table(chunk: CsvChunk, header: list[str], kinds: dict[str, str], targets: dict,
                declared: dict[str, str]):
    """The typed table of one chunk, as :class:`CsvStream` types every block: ``kinds``
    are its file's kinds, ``targets`` the column types over every file. None when the chunk
    holds no row."""
    import pyarrow as pa

    offset, head, data = _chunk_text(chunk)
    tables = [_stream_convert(chunk.path, batch, header, kinds, targets, declared, 2 + row)
              for row, batch in _chunk_batches(chunk, offset, head, data, header)]
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else None


def _chunk_text(chunk: CsvChunk) -> tuple[int, bytes, bytes]:
    """(offset of the chunk's first row, the file's header line, the chunk's rows)."""
    with storage.open(chunk.path, "rb") as handle:
        head = handle.readline()
        if chunk.start > chunk.data_start:
            handle.seek(chunk.start - 1)
            handle.readline()  # the row that began before the chunk is the previous chunk's
        else:
            handle.seek(chunk.start)
        offset = handle.tell()
        if offset >= chunk.end:
            return offset, head, b""
        data = handle.read(chunk.end - offset)
        if data and not data.endswith(b"\n"):
            data += handle.readline()
    return offset, head, data


def _line_at(path: str, offset: int) -> int:
    """The number of the file line that starts at byte ``offset``."""
    count, left = 1, offset
    with storage.open(path, "rb") as handle:
        while left > 0:
            block = handle.read(min(left, 1 << 24))
            if not block:
                break
            count += block.count(b"\n")
            left -= len(block)
    return count


def _chunk_batches(chunk: CsvChunk, offset: int, head: bytes, data: bytes, header: list[str]):
    """``(rows before it in the chunk, batch)`` for each block of a chunk, columns as text."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not data:
        return
    row = 0
    try:
        reader = pacsv.open_csv(io.BytesIO(head + data), **_csv_options(header, as_text=True))
        for batch in reader:
            yield row, batch
            row += batch.num_rows
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _diagnose_lines(chunk.path, len(header), exc, io.BytesIO(data),
                              _line_at(chunk.path, offset)) from None


def _check_declared(chunk: CsvChunk, offset: int, row: int, name: str, column,
                    declared: str | None) -> None:
    """The declared type's check of a text column; the line of a value that does not parse
    is counted only then (it needs a read of the file up to the chunk)."""
    try:
        _convert(chunk.path, name, column, declared)
    except InputDataError:
        _convert(chunk.path, name, column, declared, _line_at(chunk.path, offset) + row)
        raise


# -- raw text, for TFX's split -----------------------------------------------------------
def raw_text_batches(files: list[str], header: list[str]):
    """Each block of each file as text columns exactly as written (an empty cell is ``""``,
    nothing is read as missing): what TFX's CSV decoder sees of a row. Same rows, in the
    same order, as :func:`read_csv_files` and :class:`CsvStream` give."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = _csv_options(header, as_text=True)
    options["convert_options"] = pacsv.ConvertOptions(
        strings_can_be_null=False, quoted_strings_can_be_null=False, timestamp_parsers=[],
        column_types={c: pa.string() for c in header})
    for path in files:
        try:
            for batch in pacsv.open_csv(storage.local_path(path), **options):
                yield batch
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise _diagnose(path, len(header), exc) from None


def chunk_raw_batches(chunk: CsvChunk, header: list[str]):
    """The rows of one chunk as :func:`raw_text_batches` gives them (for a Beam worker)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    _, head, data = _chunk_text(chunk)
    if not data:
        return
    options = _csv_options(header, as_text=True)
    options["convert_options"] = pacsv.ConvertOptions(
        strings_can_be_null=False, quoted_strings_can_be_null=False, timestamp_parsers=[],
        column_types={c: pa.string() for c in header})
    yield from pacsv.open_csv(io.BytesIO(head + data), **options)
