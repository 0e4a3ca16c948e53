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
    # TFX module files and tf.Transform's Keras layer expect. TensorFlow 2.16 binds
    # tf.keras lazily, on first use, to Keras 3 unless TF_USE_LEGACY_KERAS is set
    # (importing tensorflow-transform sets it), so otherwise it would depend on
    # which of TFT (Keras 2) or TFMA (Keras 3) happened to be imported first in the
    # kernel. Set here, at `import toolkit`, it holds for every component run.
    # Keras 3 stays `import keras`. A value set by the user wins.
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


def offline_beam() -> None:
    """Stop Apache Beam from injecting a CDN script into the notebook.

    In a notebook kernel, the first Beam pipeline creates Beam's interactive
    environment, which displays JavaScript that loads jQuery and DataTables from
    public CDNs. Views of the toolkit must stay offline, so that loader is
    replaced by a no-op before any pipeline runs.
    """
    from apache_beam.runners.interactive import interactive_environment

    interactive_environment.InteractiveEnvironment.load_jquery_with_datatable = _no_cdn


def _no_cdn(self) -> None:
    """Replaces Beam's CDN loader (see :func:`offline_beam`)."""
