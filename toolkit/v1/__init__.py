"""``from toolkit import v1 as tfx``: the ``tfx.v1`` names TFX's tutorials use.

The names are backed by the toolkit's own classes: ``tfx.components.*`` are the
toolkit's components, ``tfx.proto.*`` small dict-like messages with TFX's field
names, ``tfx.dsl.Resolver``/``Importer`` nodes that pick existing artifacts,
``tfx.types.standard_artifacts.*`` the toolkit's artifact types. README.md,
section "Coming from TFX", lists every name and what differs; a ``tfx.v1`` name
that is not provided raises an error naming it and pointing there.

Submodules are imported on first use, so ``from toolkit import v1 as tfx`` stays
light. ``tfx.__version__`` is the toolkit's version (this is not TFX);
``TFX_VERSION`` is the TFX release whose libraries and contracts the toolkit
follows.
"""
from __future__ import annotations

import importlib
from typing import Any

from toolkit import __version__

#: the TFX release line whose libraries (TFDV, TFT, ML Metadata 1.16, TFMA 0.47) and
#: component contracts the toolkit follows
TFX_VERSION = "1.16.0"

_SUBMODULES = ("components", "dsl", "orchestration", "proto", "types")

__all__ = ["TFX_VERSION", "__version__", *_SUBMODULES]

NOT_PROVIDED = {
    "extensions": "Google Cloud components are not provided",
    "testing": None,
    "utils": "module files get tfx.v1.utils.parse_pbtxt_file from the module-file stand-in",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, list(__all__), NOT_PROVIDED.get(name))


def __dir__() -> list[str]:
    return sorted(__all__)
