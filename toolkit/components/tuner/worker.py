"""A worker process of a parallel search: ``tuner_fn`` called as the chief called it, then
the tuner's search as a KerasTuner worker, which asks the chief's oracle for its trials.

The chief (:mod:`.parallel`) starts it as ``python -c "from toolkit.components.tuner.worker
import worker_main; worker_main(...)"``.
"""
from __future__ import annotations

import os
import pickle
import sys
import threading
import time

from toolkit._quiet import quiet_tensorflow
from toolkit.components._module import informative_line, resolve_function, tfx_names
from toolkit.components.fn_args import FnArgs
from toolkit.components.tuner.search import call_tuner_fn, import_keras_tuner, search_here
from toolkit.errors import ToolkitError

#: a line a worker prints before exiting on an error, so the chief can quote it
WORKER_ERROR_MARK = "toolkit tuner worker error: "


def worker_main(request_path: str, tuner_id: str, chief_pid: int) -> None:
    """A worker: call ``tuner_fn`` as the chief did, then ``tuner.search`` as a KerasTuner
    worker (its ``KERASTUNER_*`` variables are set), which asks the chief for trials until it
    says stop. It exits at once when its parent (the chief) is gone, and skips the
    interpreter's teardown, which TensorFlow sometimes crashes, once its work is done."""
    _exit_with_parent(chief_pid)
    code = 1
    try:
        with open(request_path, "rb") as handle:
            request = pickle.load(handle)
        for entry in reversed(request["sys_path"]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        import tensorflow as tf  # noqa: F401  (before the module file, as in the chief)

        quiet_tensorflow()
        import_keras_tuner()
        fn_args = FnArgs(**{**request["fn_args"], "working_dir": os.path.join(
            request["work_dir"], tuner_id)})
        from toolkit.components.fn_args import DataAccessor

        fn_args.data_accessor = DataAccessor()
        with tfx_names():
            if "function" in request:
                from apache_beam.internal.cloudpickle import cloudpickle

                fn = cloudpickle.loads(request["function"])
                label = getattr(fn, "__name__", "tuner_fn")
            else:
                fn, label = resolve_function(module_file=request.get("module_file"),
                                             function=None, name="tuner_fn", owner=tuner_id)
            result = call_tuner_fn(fn, label, fn_args)
            search_here(result, None, fn, label)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - reported to the chief through the log
        import traceback

        traceback.print_exc()
        line = (str(exc) if isinstance(exc, ToolkitError)
                else f"{type(exc).__name__}: {informative_line(exc)}")
        print(f"{WORKER_ERROR_MARK}{line}", flush=True)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _exit_with_parent(parent: int) -> None:
    """End this process as soon as its parent, the chief, is gone (killed), so that no worker
    waits for a chief that will never answer. The chief's pid comes from the chief itself:
    a chief killed while this process starts would otherwise go unnoticed."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=watch, name="toolkit-tuner-parent-watch", daemon=True).start()

