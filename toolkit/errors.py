"""Exceptions with one readable message each."""
from __future__ import annotations

from typing import Iterator


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from or during, once each: where a runner (Beam)
    buries the user's own error under its own."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


class ToolkitError(Exception):
    """Base class for every error the toolkit raises on purpose."""


class UnknownNameError(ToolkitError, LookupError):
    """A registry (views, export targets) holds nothing under the name asked for; the
    message names it and the names it knows."""


class ComponentError(ToolkitError):
    """A component failed; the message names the component and the cause."""

    def __init__(self, component_id: str, message: str, execution_id: int | None = None):
        self.component_id = component_id
        self.execution_id = execution_id
        super().__init__(f"{component_id}: {message}")


class InputDataError(ToolkitError):
    """The input data is malformed; the message names the file, line or column."""


class UpstreamNotRunError(ToolkitError):
    """A component's input comes from a component that has not run in this context."""


class WiringError(ToolkitError, TypeError):
    """A component input is connected to a channel of the wrong artifact type."""


class GateError(ToolkitError):
    """A production gate (validation, blessing) stopped the pipeline."""


class UserCodeError(ToolkitError):
    """User code (a module file, a callable parameter) is missing, broken or raised."""


class ModuleFileError(UserCodeError):
    """A module file does not exist, does not compile, or lacks the function asked for."""


class PushRefused(ToolkitError):
    """A push that must not happen: no blessing at all, or a destination out of bounds."""


class ExportError(ToolkitError):
    """A notebook cannot be exported; the message names the notebook, the cell and the reason."""

    def __init__(self, reason: str, *, path: str | None = None, cell: int | None = None):
        self.reason = reason
        self.path = path
        self.cell = cell
        where = ", ".join(part for part in (path, f"cell {cell}" if cell is not None else None) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class ParameterError(ToolkitError):
    """A parameter value or a parameter declaration does not fit the notebook's parameters."""


class RunError(ToolkitError):
    """The notebook could not be run (missing file, unreadable notebook)."""


class DeclarationError(ValueError):
    """A statement in a parameters cell is not a valid parameter declaration.

    A ValueError, not a ToolkitError: it never reaches the user as it is; the
    exporter turns it into a :class:`CellError` that names the cell and line.
    """


class CellError(ValueError):
    """A cell cannot be exported; ``cell`` is its 1-based number in the source notebook.

    Raised inside the exporter's analysis, which does not know the notebook's path;
    the exporter re-raises it as an :class:`ExportError` naming path, cell and reason.
    """

    def __init__(self, cell: int | None, reason: str):
        self.cell = cell
        self.reason = reason
        super().__init__(reason)
