"""``tfx.types``: TFX's artifact types (``tfx.types.standard_artifacts``)."""
from __future__ import annotations

from typing import Any

from toolkit.v1.types import standard_artifacts

__all__ = ["standard_artifacts"]

NOT_PROVIDED = {
    "BaseComponent": "write a custom component with tfx.dsl.components.component",
    "BaseBeamComponent": "write a custom component with tfx.dsl.components.component",
    "BaseNode": None,
    "BaseChannel": "use tfx.dsl.Channel",
    "BaseFunctionalComponent": None,
    "BaseFunctionalComponentFactory": None,
}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from toolkit.v1._names import missing

    missing(__name__, name, __all__, NOT_PROVIDED.get(name))
