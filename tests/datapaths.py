"""Paths shared by tests (a module of its own: every test folder has its own conftest)."""
import os
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "notebooks", "data")
TAXI_CSV = os.path.join(DATA, "chicago_taxi", "data.csv")
GERMAN_CSV = os.path.join(DATA, "german_credit", "german.csv")
#: the small notebooks the exporter and runner tests work on (a Path: tests join names to it)
FIXTURES = Path(REPO) / "tests" / "fixtures" / "notebooks"
