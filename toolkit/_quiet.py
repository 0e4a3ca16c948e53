"""Keep TensorFlow's C++ log noise and known dependency warnings out of notebooks.

TensorFlow prints about ten lines (CUDA stubs, oneDNN, TensorRT) at import. The
toolkit silences them by default. To get them back, set ``TOOLKIT_VERBOSE=1``
(or set ``TF_CPP_MIN_LOG_LEVEL`` yourself) before importing the toolkit.
"""
from __future__ import annotations

import os
import warnings


def install() -> None:
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
