"""Reading and writing the Examples payload (Parquet, one file per split)."""
from __future__ import annotations

import os

from toolkit.artifacts import Examples
from toolkit.errors import ToolkitError

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


def split_pattern(examples: Examples, split: str) -> str:
    return os.path.join(examples.split_uri(split), "*.parquet")
