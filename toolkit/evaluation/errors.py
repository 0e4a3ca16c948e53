"""Errors raised by the evaluation engine, each with one readable message."""
from __future__ import annotations

from typing import Iterable

from toolkit.errors import InputDataError, ToolkitError


class EvalConfigError(ToolkitError, ValueError):
    """The EvalConfig cannot be read or asks for something inconsistent."""


class MissingColumnError(InputDataError, KeyError):
    """A column named by the EvalConfig is not in the dataframe."""

    def __init__(self, role: str, column: str, available: Iterable[str]):
        self.role = role
        self.column = column
        self.available = list(available)
        shown = ", ".join(repr(c) for c in self.available[:40])
        more = "" if len(self.available) <= 40 else f", ... ({len(self.available)} columns)"
        super().__init__(
            f"{role} column {column!r} is not in the dataframe; available columns: {shown}{more}"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidValuesError(InputDataError, ValueError):
    """Labels, predictions or weights hold values the requested metrics cannot use."""


class EngineUnavailableError(ToolkitError, RuntimeError):
    """The TFMA engine was needed but cannot run the requested configuration."""
