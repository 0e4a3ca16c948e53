"""The process-wide run mode: ``interactive`` (gates report) or ``production`` (gates stop).

Public as ``toolkit.set_mode`` / ``toolkit.get_mode``; exported notebooks call
``toolkit.set_mode("production")`` right after their parameters cell.
"""
from __future__ import annotations

import os

from toolkit import _env

MODES = ("interactive", "production")
_mode: str | None = None


def set_mode(mode: str | None) -> None:
    """Switch every context in this process to ``"interactive"`` or ``"production"``
    (``None``: back to ``$TOOLKIT_MODE``, else interactive).

    In production mode gates are enforced: a component whose gate fails (an
    ExampleValidator that found anomalies, a Pusher given an unblessed model)
    raises :class:`toolkit.errors.GateError` after its outputs are recorded.
    """
    global _mode
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _mode = mode


def get_mode() -> str:
    """The mode set by :func:`set_mode`, else ``$TOOLKIT_MODE``, else ``"interactive"``."""
    if _mode is not None:
        return _mode
    env = os.environ.get(_env.MODE, "interactive").strip().lower()
    return env if env in MODES else "interactive"
