"""Running the user's ``tuner_fn`` and its tuner's search, in the notebook's process or in
a worker, and saying in one line why a search stopped.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable

from toolkit.components._module import describe, informative_line, source_file
from toolkit.components.fn_args import FnArgs
from toolkit.components.tuner.binding import KERAS_TUNER_REQUIREMENT
from toolkit.errors import ToolkitError, UserCodeError

if TYPE_CHECKING:
    from toolkit.components.tuner.trials import TrialClock


def import_keras_tuner(owner: str = "Tuner"):
    """``keras_tuner``, or one line naming the package to install."""
    try:
        import keras_tuner
    except ImportError:
        raise ToolkitError(f"{owner}: KerasTuner is not installed: pip install "
                           f"{KERAS_TUNER_REQUIREMENT} (the package keras-tuner, imported as "
                           f"keras_tuner)") from None
    return keras_tuner


def call_tuner_fn(fn: Callable[..., Any], label: str, fn_args: FnArgs) -> Any:
    """``tuner_fn(fn_args)``, checked to return a TunerFnResult (TFX's, ours, or a look-alike)."""
    try:
        result = fn(fn_args)
    except ToolkitError as exc:
        raise UserCodeError(f"{label}: {exc}") from exc
    except Exception as exc:
        raise UserCodeError(describe(exc, label, source_file(fn))) from exc
    tuner = getattr(result, "tuner", None)
    fit_kwargs = getattr(result, "fit_kwargs", None)
    if tuner is None or not isinstance(fit_kwargs, dict):
        raise UserCodeError(f"{label} returned {type(result).__name__}, not "
                            f"TunerFnResult(tuner=..., fit_kwargs={{...}})")
    if not callable(getattr(tuner, "search", None)) or getattr(tuner, "oracle", None) is None:
        raise UserCodeError(f"{label} returned a tuner of type {type(tuner).__name__}, which is "
                            f"not a KerasTuner tuner (keras_tuner.RandomSearch, ...)")
    return result


def search_here(result: Any, clock: "TrialClock | None", fn: Callable[..., Any],
                label: str) -> None:
    """The search in this process, as TFX's Tuner runs it (or a worker's part of it)."""
    try:
        result.tuner.search(**result.fit_kwargs)
    except ToolkitError:
        raise
    except Exception as exc:
        raise UserCodeError(_search_failure(exc, clock, fn, label)) from exc


def _search_failure(exc: BaseException, clock: "TrialClock | None", fn: Callable[..., Any],
                    label: str) -> str:
    """One line for a search that stopped: KerasTuner's reason and the last trial's error."""
    if type(exc).__name__ == "FatalTypeError" and "Keras Model" in str(exc):
        return (f"{label}: the model-building function returned a model of another Keras than "
                f"KerasTuner's ({keras_of_tuner()}); build models with tf.keras, and import "
                f"keras_tuner only after toolkit.components (restart the kernel if it was "
                f"imported first)")
    details = getattr(exc, "details", None)
    if callable(details):  # a worker's call to the chief oracle failed: the chief says why
        answer = informative_line(Exception(str(details() or "")))
        return (f"{label}: the search stopped: the chief oracle answered: "
                f"{answer.removeprefix('Exception calling application: ')}")
    text = describe(exc, f"{label}: the search", source_file(fn))
    last = clock.last_error() if clock is not None else None
    if last and last not in text:
        text += f"; the last failed trial: {last}"
    return text


def keras_of_tuner() -> str:
    """Which Keras KerasTuner uses in this process, for messages."""
    config = sys.modules.get("keras_tuner.src.backend.config")
    if config is None:
        return "an unknown Keras"
    if config.multi_backend():
        import keras

        return f"Keras {keras.__version__}"
    import tf_keras

    return f"Keras {tf_keras.__version__} (tf.keras)"

