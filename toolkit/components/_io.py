"""Reading and writing the Examples payload (Parquet, one file per split)."""
from __future__ import annotations

import json
import os

from toolkit.artifacts import Examples
from toolkit.errors import InputDataError, ToolkitError

PAYLOAD_FORMAT = "FORMAT_PARQUET"
DATA_FILE = "data.parquet"


def split_file(artifact, split: str) -> str:
    """The split's payload file (``Split-<name>/data.parquet``); its folder is created."""
    folder = artifact.split_uri(split)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, DATA_FILE)


def write_split(examples: Examples, split: str, table) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, split_file(examples, split), compression="snappy")


def read_split(examples: Examples, split: str, columns: list[str] | None = None):
    """The split as one Arrow table."""
    import pyarrow.parquet as pq

    if examples.payload_format != PAYLOAD_FORMAT:
        raise ToolkitError(f"Examples #{examples.id} has payload format "
                           f"{examples.payload_format}; expected {PAYLOAD_FORMAT}")
    folder = examples.split_uri(split)
    if not os.path.isdir(folder):
        raise ToolkitError(f"Examples #{examples.id} has no split {split!r} "
                           f"(it has {', '.join(examples.split_names) or 'none'})")
    return pq.read_table(folder, columns=columns)


def record_splits(examples: Examples, counts: dict[str, int], ctx, verb: str,
                  names: list[str] | None = None) -> None:
    """Publish the splits written (``names``, by default those of ``counts``), the
    payload format and the row counts; log ``"<verb> train: 1,000 rows, ..."``."""
    examples.split_names = list(counts) if names is None else names
    examples.properties["payload_format"] = PAYLOAD_FORMAT
    examples.properties["row_counts"] = json.dumps(counts)
    ctx.log(f"{verb} " + ", ".join(f"{n}: {c:,} rows" for n, c in counts.items()))


def check_splits(examples: Examples, splits: list[str], names_what: str,
                 none: str = "") -> None:
    """Every split asked for is one of the Examples': otherwise "<names_what> 'x', but
    Examples #id has a, b" (``none`` when it has no splits)."""
    names = examples.split_names
    for split in splits:
        if split not in names:
            raise InputDataError(f"{names_what} {split!r}, but Examples "
                                 f"#{examples.id} has {', '.join(names) or none}")


def split_pattern(examples: Examples, split: str) -> str:
    return os.path.join(examples.split_uri(split), "*.parquet")
