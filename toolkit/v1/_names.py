"""The one error for a ``tfx.v1`` name that ``toolkit.v1`` does not provide.

A TFX user's notebook meets it either as an attribute (``tfx.components.ExampleDiff``)
or in an import line (``from toolkit.v1.components import ExampleDiff``). Python turns
a module's ``AttributeError`` in an import line into a generic ``ImportError`` that
drops the message, so :func:`missing` looks at the instruction the caller is
executing and raises the ``ImportError`` itself, with the same message, there.
"""
from __future__ import annotations

import dis
import sys
from typing import NoReturn

#: where the list of provided names is documented
DOCUMENTED_AT = "docs/coming-from-tfx.md"

_IMPORT_FROM = dis.opmap["IMPORT_FROM"]


class MissingTfxName(AttributeError):
    """A ``tfx.v1`` name that ``toolkit.v1`` does not provide (an ``AttributeError``, so
    ``hasattr`` and ``getattr(module, name, default)`` behave as usual)."""


class MissingTfxImport(ImportError):
    """The same, met in ``from toolkit.v1.<module> import <name>``."""


def missing(module: str, name: str, known: list[str], note: str | None = None) -> NoReturn:
    """Raise the error for ``module.name``, which ``toolkit.v1`` does not provide.

    ``known`` lists what ``module`` does provide; ``note`` says why this name is absent
    or what to use instead, when there is something to say.
    """
    tfx_name = "tfx" + module[len("toolkit.v1"):]
    message = (f"{module} has no {name!r}: toolkit.v1 does not provide {tfx_name}.{name}"
               + (f" ({note})" if note else "") + f". {module} provides: "
               + (", ".join(sorted(known)) or "nothing") + f". See {DOCUMENTED_AT}.")
    if _in_import_line(sys._getframe(2)):
        raise MissingTfxImport(message, name=module)
    raise MissingTfxName(message, name=name, obj=sys.modules.get(module))


def _in_import_line(frame) -> bool:
    """True when ``frame`` is executing ``from <module> import <name>``."""
    try:
        return frame is not None and frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM
    except (AttributeError, IndexError):
        return False
