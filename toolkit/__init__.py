"""Run ML pipeline components inline in a notebook, then export to production.

``import toolkit`` stays light: TensorFlow, Beam, TFDV and TFMA are imported only
by the functions that need them.
"""
from __future__ import annotations

import importlib
from typing import Any

from toolkit import _quiet

_quiet.install()

# The @component decorator for custom components.
from toolkit.custom import component  # noqa: E402

__version__ = "0.1.0"

_LAZY = {
    "InteractiveContext": "toolkit.context",
    "Pipeline": "toolkit.pipeline",
    "LocalDagRunner": "toolkit.pipeline",
    "latest_artifacts": "toolkit.pipeline",
    "ToolkitError": "toolkit.errors",
    "ComponentError": "toolkit.errors",
    "show": "toolkit.visualize",
    "show_statistics": "toolkit.visualize",
    "show_drift": "toolkit.visualize",
    "evaluate": "toolkit.evaluation",
    "export_notebook": "toolkit.exporter",
    "sweep": "toolkit.sweeps",
    "compare": "toolkit.comparison",
    "show_versions": "toolkit.visualize.versions",
    "set_mode": "toolkit._mode",
    "get_mode": "toolkit._mode",
}

__all__ = sorted([*_LAZY, "component"]) + ["__version__"]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext toolkit``: registers the ``%%skip_for_export`` cell magic."""
    from toolkit import _magics

    _magics.register(ipython)


def __getattr__(name: str) -> Any:
    if name == "v1":  # ``toolkit.v1``, TFX's names (``from toolkit import v1 as tfx``)
        return importlib.import_module("toolkit.v1")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
