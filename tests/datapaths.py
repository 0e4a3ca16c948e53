"""Paths shared by tests (a module of its own: every test folder has its own conftest)."""
import os
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "notebooks", "data")
TAXI_CSV = os.path.join(DATA, "chicago_taxi", "data.csv")
GERMAN_CSV = os.path.join(DATA, "german_credit", "german.csv")
#: the small notebooks the exporter and runner tests work on (a Path: tests join names to it)
FIXTURES = Path(REPO) / "tests" / "fixtures" / "notebooks"


def taxi_split_counts(csv: str = TAXI_CSV) -> dict[str, int]:
    """The rows of each split of CsvExampleGen's default output_config (train 2 buckets,
    eval 1) over ``csv``, by the rule docs/components.md states (Ingest), computed here from the raw file:
    a row goes to bucket ``hash % 3`` of its values as pandas reads the CSV
    (``pandas.util.hash_pandas_object``, no index), buckets 0-1 train, 2 eval."""
    import numpy as np
    import pandas as pd

    bucket = pd.util.hash_pandas_object(pd.read_csv(csv), index=False).to_numpy() % np.uint64(3)
    return {"train": int((bucket < 2).sum()), "eval": int((bucket == 2).sum())}
