"""KerasTuner uses the Keras that ``tf.keras`` is.

KerasTuner binds to one Keras when it is first imported: Keras 3 whenever Keras 3 is
installed. In toolkit runs ``tf.keras`` is Keras 2 (``tf_keras``), as TFX module files
expect, and a KerasTuner bound to Keras 3 refuses their models. So an import hook, registered
by :func:`install_keras_binding`, runs KerasTuner's config module when it is first imported
and makes it use the Keras ``tf.keras`` is. Registering the hook imports neither KerasTuner
nor TensorFlow; ``TF_USE_LEGACY_KERAS=0`` before ``import toolkit`` makes both Keras 3.
"""
from __future__ import annotations

import importlib.abc
import sys
import warnings
from typing import Any

from toolkit.components.trainer import tf_keras_is_keras2

#: what to install when KerasTuner is missing (the version the toolkit was checked with)
KERAS_TUNER_REQUIREMENT = "keras-tuner==1.4.8"
#: KerasTuner's module that decides, when imported, which Keras it uses
_KERAS_TUNER_CONFIG = "keras_tuner.src.backend.config"
#: the KerasTuner releases whose decision (``_MULTI_BACKEND`` in that module) was checked
_TESTED_KERAS_TUNER = ("1.4.",)
_binding_warned = False


def _keras_tuner_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("keras-tuner")
    except metadata.PackageNotFoundError:
        return "unknown"


class _FollowTfKeras(importlib.abc.Loader):
    """Runs KerasTuner's config module, then makes it use ``tf.keras`` when that is Keras 2."""

    def __init__(self, loader: Any):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        global _binding_warned
        self._loader.exec_module(module)
        import tensorflow as tf

        if not getattr(module, "_MULTI_BACKEND", False) or not tf_keras_is_keras2(tf):
            return  # KerasTuner already uses tf.keras's Keras
        version = _keras_tuner_version()
        if not version.startswith(_TESTED_KERAS_TUNER) or not hasattr(module, "_MULTI_BACKEND"):
            if not _binding_warned:
                _binding_warned = True
                warnings.warn(f"toolkit: keras-tuner {version} is not a release the toolkit "
                              f"binds to tf.keras, so KerasTuner uses Keras 3 while tf.keras is "
                              f"Keras 2 and tuner_fn must build models with `import keras`; use "
                              f"{KERAS_TUNER_REQUIREMENT}", RuntimeWarning, stacklevel=2)
            return
        module._MULTI_BACKEND = False


class _KerasTunerFinder(importlib.abc.MetaPathFinder):
    """Finds KerasTuner's config module as the other finders do, with :class:`_FollowTfKeras`
    as its loader; nothing else is touched."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _KERAS_TUNER_CONFIG:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, _KerasTunerFinder):
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _FollowTfKeras(spec.loader)
                return spec
        return None


def install_keras_binding() -> None:
    """Register the import hook once per process (KerasTuner not imported yet: else it keeps
    the Keras it chose, and a model of the other Keras fails with a message saying so)."""
    if not any(isinstance(f, _KerasTunerFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _KerasTunerFinder())

