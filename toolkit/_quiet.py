"""Keep TensorFlow's C++ log noise and known dependency warnings out of notebooks;
pin what ``tf.keras`` means.

TensorFlow prints about ten lines (CUDA stubs, oneDNN, TensorRT) at import. The
toolkit silences them by default. To get them back, set ``TOOLKIT_VERBOSE=1``
(or set ``TF_CPP_MIN_LOG_LEVEL`` yourself) before importing the toolkit.
"""
from __future__ import annotations

import os
import warnings


def install() -> None:
    # tf.keras is Keras 2 (the tf_keras package), as in a TFX 1.16 install and as
    # TFX module files expect; otherwise it would depend on which of TFT (Keras 2)
    # or TFMA (Keras 3) happened to be imported first. Keras 3 stays `import keras`.
    # A value set by the user wins.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if os.environ.get("TOOLKIT_VERBOSE", "").strip() not in ("", "0", "false", "False"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # Google client libraries warn about the Python version on every import.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\..*")
    warnings.filterwarnings("ignore", message=r".*crcmod package not found.*")


def quiet_tensorflow() -> None:
    """Called right after TensorFlow is imported: silence its Python-side logger too."""
    if os.environ.get("TOOLKIT_VERBOSE", "").strip() not in ("", "0", "false", "False"):
        return
    import logging

    for name in ("tensorflow", "absl", "apache_beam", "root"):
        if name == "root":
            continue
        logging.getLogger(name).setLevel(logging.ERROR)
