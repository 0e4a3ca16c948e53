"""Keep TensorFlow's C++ log noise and known dependency warnings out of notebooks;
pin what ``tf.keras`` means.

TensorFlow prints about ten lines (CUDA stubs, oneDNN, TensorRT) at import. The
toolkit silences them by default. To get them back, set ``TOOLKIT_VERBOSE=1``
(or set ``TF_CPP_MIN_LOG_LEVEL`` yourself) before importing the toolkit.
"""
from __future__ import annotations

import os
import threading
import warnings

from toolkit import _env


def install() -> None:
    # tf.keras is Keras 2 (the tf_keras package), as in a TFX 1.16 install and as
    # TFX module files and tf.Transform's Keras layer expect. TensorFlow 2.16 binds
    # tf.keras lazily, on first use, to Keras 3 unless TF_USE_LEGACY_KERAS is set
    # (importing tensorflow-transform sets it), so otherwise it would depend on
    # which of TFT (Keras 2) or TFMA (Keras 3) happened to be imported first in the
    # kernel. Set here, at `import toolkit`, it holds for every component run.
    # Keras 3 stays `import keras`. A value set by the user wins.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if os.environ.get(_env.VERBOSE, "").strip() not in ("", "0", "false", "False"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # Google client libraries warn about the Python version on every import.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\..*")
    warnings.filterwarnings("ignore", message=r".*crcmod package not found.*")


def quiet_tensorflow() -> None:
    """Called right after TensorFlow is imported: silence its Python-side logger too."""
    if os.environ.get(_env.VERBOSE, "").strip() not in ("", "0", "false", "False"):
        return
    import logging

    for name in ("tensorflow", "absl", "apache_beam", "root"):
        if name == "root":
            continue
        logging.getLogger(name).setLevel(logging.ERROR)


#: set once Beam's interactive environment has been created with its display dropped
_beam_env_ready = False
_BEAM_ENV_LOCK = threading.Lock()


def offline_beam() -> None:
    """Keep the script Apache Beam loads from public CDNs out of the notebook.

    In a notebook kernel, the first Beam pipeline creates Beam's interactive environment (a
    process-wide singleton), and its constructor displays JavaScript that loads jQuery and
    DataTables from public CDNs; views of the toolkit must stay offline. Beam has no option
    or variable to turn that off, and replacing its loader would change Beam for the whole
    process. So, once per process and only in a notebook, the environment is created here
    first, under IPython's public ``capture_output``, and what it displays is dropped.
    Nothing of Beam's is replaced, so there is nothing to restore or to gate on a Beam
    release, and a later pipeline finds the environment made. Outside a notebook, Beam
    displays nothing and nothing is done. While the environment is being created (once, a
    moment), output another thread displays is dropped too.
    """
    global _beam_env_ready
    if _beam_env_ready:
        return
    from apache_beam.utils.interactive_utils import is_in_notebook

    if not is_in_notebook():
        return
    with _BEAM_ENV_LOCK:
        if _beam_env_ready:
            return
        _beam_env_ready = True
        from IPython.utils.capture import capture_output

        try:
            from apache_beam.runners.interactive.interactive_environment import current_env
        except ImportError as exc:
            warnings.warn(f"toolkit: cannot create Beam's notebook environment quietly ({exc}), "
                          "so Beam may show a script that loads jQuery from a CDN; clear that "
                          "output to keep the notebook offline", RuntimeWarning, stacklevel=2)
            return
        with capture_output(stdout=False, stderr=False, display=True):
            current_env()
