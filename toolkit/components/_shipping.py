"""Getting user code (a module file and the modules beside it) into Beam's workers.

A module file is imported in the notebook's process under a generated name
(``toolkit_user_module_<file>_<digest>``, see :func:`load_module_file`), and it often
imports sibling modules from its folder (TFX's tutorials split ``taxi_constants.py``
from ``taxi_transform.py``). Beam pickles the functions it sends to workers; by
default a function is pickled *by reference* (module name + attribute), which no
worker process can resolve: the generated name exists only in the notebook.

Two mechanisms, both used for every pipeline that runs user code:

- **By value, for every runner.** While the pipeline is built and submitted, the
  module file's module and its siblings are registered with Beam's pickler
  (cloudpickle, Beam's default ``--pickle_library``) to be pickled *by value*: the
  code of the functions and the siblings' contents travel inside the pipeline
  itself. This covers separate local processes (multi-processing DirectRunner, the
  portable runner's LOOPBACK, EXTERNAL or PROCESS workers) and cluster workers
  alike, and needs nothing installed.
- **As a package, for cluster runners.** When the runner is not a local one
  (Dataflow, or a portable runner whose workers are containers), a small wheel
  holding the module file (under its generated name) and its siblings is built in
  the execution's tmp folder and passed with ``--extra_package``, the way Beam
  ships code to a cluster. It makes the code importable by name there too, which a
  non-default pickler (``--pickle_library=dill``) needs. The user's own
  ``--setup_file``, ``--requirements_file`` and ``--extra_package`` are left as
  given.

Neither changes the cache key: it is the module file's content that counts, and
Beam arguments and tmp paths are not part of it.
"""
from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import os
import re
import sys
import types
import zipfile
from typing import Any, Callable, Iterator

from toolkit import storage
from toolkit.components._module import USER_MODULE_PREFIX
from toolkit.errors import causes

#: runners whose workers run on this machine from this environment
_LOCAL_RUNNERS = {"direct", "directrunner", "bundlebaseddirectrunner", "switchingdirectrunner",
                  "prismrunner", "prism", "fnapirunner", "interactiverunner"}
#: portable worker environments that never install staged packages
_NO_STAGING_ENVIRONMENTS = {"LOOPBACK", "EXTERNAL"}


def user_modules(fn: Callable[..., Any]) -> list[types.ModuleType]:
    """The module file's module that defines ``fn`` and the sibling modules it uses.

    Siblings are the modules loaded in this process from the module file's folder:
    plain ``.py`` files beside it and packages inside it. For a function that does not
    come from a module file (a callable or a dotted path), nothing: Beam's pickler
    already handles functions of the notebook itself, and an importable package must
    be installed on the workers as any dependency is.
    """
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    if module is None or not module.__name__.startswith(USER_MODULE_PREFIX):
        return []
    folder = os.path.dirname(os.path.abspath(module.__file__))
    found = [module]
    for name, candidate in list(sys.modules.items()):
        if candidate is module or candidate is None or name.startswith(USER_MODULE_PREFIX):
            continue
        if _from_folder(name, candidate, folder):
            found.append(candidate)
    return found


def _from_folder(name: str, module: types.ModuleType, folder: str) -> bool:
    path = getattr(module, "__file__", None)
    if not path or name.split(".")[0] == "toolkit":
        return False
    path = os.path.abspath(path)
    top = name.split(".")[0]
    if "." not in name and os.path.dirname(path) == folder and path.endswith(".py"):
        return True
    return os.path.isfile(os.path.join(folder, top, "__init__.py")) and \
        path.startswith(os.path.join(folder, top) + os.sep)


@contextlib.contextmanager
def pickled_by_value(modules: list[types.ModuleType]) -> Iterator[None]:
    """Register ``modules`` with Beam's cloudpickle to be pickled by value while the
    pipeline is built and submitted; the registry is restored afterwards."""
    if not modules:
        yield
        return
    from apache_beam.internal.cloudpickle import cloudpickle

    added = []
    for module in modules:
        if module.__name__ not in cloudpickle.list_registry_pickle_by_value():
            cloudpickle.register_pickle_by_value(module)
            added.append(module)
    try:
        yield
    finally:
        for module in added:
            with contextlib.suppress(ValueError):
                cloudpickle.unregister_pickle_by_value(module)


def runner_label(beam_args: list[str]) -> str:
    """``"DirectRunner (--direct_running_mode=multi_processing ...)"``, for messages."""
    return f"{_runner(beam_args) or 'DirectRunner'} ({' '.join(beam_args) or 'no Beam arguments'})"


def _runner(beam_args: list[str]) -> str | None:
    return beam_flag(beam_args, "runner")


def beam_flag(beam_args: list[str], name: str) -> str | None:
    """The value of ``--name`` (``--name=value`` or ``--name value``; the last one wins)."""
    value = None
    for i, arg in enumerate(beam_args):
        if arg == f"--{name}" and i + 1 < len(beam_args):
            value = beam_args[i + 1]
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def is_cluster_runner(beam_args: list[str]) -> bool:
    """Whether the workers install staged packages, as cluster workers do: any runner but
    the local ones, unless its portable workers are LOOPBACK or EXTERNAL."""
    runner = (_runner(beam_args) or "DirectRunner").rsplit(".", 1)[-1].lower()
    if runner in _LOCAL_RUNNERS:
        return False
    environment = (beam_flag(beam_args, "environment_type") or "").upper()
    return environment not in _NO_STAGING_ENVIRONMENTS


def with_user_code(beam_args: list[str], modules: list[types.ModuleType],
                   tmp_dir: str) -> list[str]:
    """``beam_args`` plus ``--extra_package=<wheel>`` for a cluster runner when there is
    user code to ship; the arguments unchanged otherwise."""
    if not modules or not is_cluster_runner(beam_args):
        return list(beam_args)
    wheel = build_wheel(modules, tmp_dir)
    return [*beam_args, f"--extra_package={wheel}"]


def build_wheel(modules: list[types.ModuleType], folder: str) -> str:
    """A pure-Python wheel with each module's source file under its module name.

    The name carries a digest of the contents, so two module files never collide on a
    worker; the wheel is built in ``folder`` (the execution's tmp folder).
    """
    files: dict[str, bytes] = {}
    for module in modules:
        path = os.path.abspath(module.__file__)
        if module.__name__.startswith(USER_MODULE_PREFIX):
            files[f"{module.__name__}.py"] = _read(path)
            continue
        parts = module.__name__.split(".")
        if os.path.basename(path) == "__init__.py":
            files["/".join(parts) + "/__init__.py"] = _read(path)
        else:
            files["/".join(parts[:-1] + [os.path.basename(path)])] = _read(path)
    digest = hashlib.sha256(b"".join(k.encode() + b"\0" + v for k, v in sorted(files.items())))
    name = f"toolkit_user_code_{digest.hexdigest()[:12]}"
    version = "1.0"
    dist_info = f"{name}-{version}.dist-info"
    top_level = sorted({key.split("/")[0].removesuffix(".py") for key in files})
    files[f"{dist_info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                      "Summary: user module files shipped to Beam workers by "
                                      "the toolkit\n").encode()
    files[f"{dist_info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: toolkit\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{dist_info}/top_level.txt"] = ("\n".join(top_level) + "\n").encode()
    # RECORD is CSV (a path with a comma or quote must stay one field), so csv writes it.
    record = io.StringIO()
    rows = csv.writer(record, lineterminator="\n")
    rows.writerows([k, f"sha256={_urlsafe_digest(v)}", len(v)] for k, v in sorted(files.items()))
    rows.writerow([f"{dist_info}/RECORD", "", ""])
    files[f"{dist_info}/RECORD"] = record.getvalue().encode()
    storage.makedirs(folder)
    target = storage.join(folder, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(storage.local_path(target), "w", zipfile.ZIP_DEFLATED) as wheel:
        for key in sorted(files):
            info = zipfile.ZipInfo(key, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            wheel.writestr(info, files[key], zipfile.ZIP_DEFLATED)
    return target


def _read(path: str) -> bytes:
    return storage.read_bytes(path)


def _urlsafe_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def worker_import_failure(exc: BaseException, label: str, beam_args: list[str]) -> str | None:
    """One line when a worker could not import something the user's code needs, else None.

    Beam reports it as a ``ModuleNotFoundError`` raised while unpickling a DoFn in the
    worker, buried in pages of runner traceback; the line names the module, the module
    file and the runner with its flags.
    """
    text = "\n".join(str(cause) for cause in causes(exc))
    match = re.search(r"No module named '([^']+)'", text)
    if match is None:
        return None
    missing = match.group(1)
    if missing.startswith(USER_MODULE_PREFIX):
        what = "the module file itself (it was not shipped to the workers)"
    else:
        what = f"module {missing!r}"
    return (f"{label} cannot be imported in a Beam worker on {runner_label(beam_args)}: "
            f"{what} is not importable there; a module the module file imports must be a "
            f"file beside it or installed in the workers' environment (--extra_package, "
            f"--requirements_file, --setup_file)")

