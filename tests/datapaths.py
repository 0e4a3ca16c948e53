"""Paths shared by tests (a module of its own: every test folder has its own conftest)."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "notebooks", "data")
TAXI_CSV = os.path.join(DATA, "chicago_taxi", "data.csv")
