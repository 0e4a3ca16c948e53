"""Loading user module files and calling the functions they define, with clear errors.

A TFX module file is a plain Python file defining ``preprocessing_fn(inputs)``
(Transform) or ``run_fn(fn_args)`` (Trainer). Anything that goes wrong in it —
the file is missing, does not compile, lacks the function, or the function
raises — becomes one :class:`UserCodeError` line naming the file, the function
and the line of the module file where it failed. The original exception stays
chained as ``__cause__`` so the full traceback is recorded with the failed
execution.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
import threading
import traceback
import types
from typing import Any, Callable, Iterator

from toolkit import storage
from toolkit._text import first_line, shorten
from toolkit.components.fn_args import DataAccessor, FnArgs, TunerFnResult
from toolkit.errors import ModuleFileError, ToolkitError, UserCodeError

#: the start of the name a module file is imported under (see :func:`load_module_file`)
USER_MODULE_PREFIX = "toolkit_user_module_"


def resolve_function(*, module_file: str | None, function: Any, name: str,
                     owner: str) -> tuple[Callable[..., Any], str]:
    """The user function and a label for messages (``"file.py: name"``).

    ``function`` may be a callable or a dotted import path (``"pkg.mod.fn"``),
    as TFX accepts; otherwise ``name`` is looked up in ``module_file``.
    """
    if function is not None and module_file is not None:
        raise UserCodeError(f"{owner}: give either module_file or {name}, not both")
    if callable(function):
        return function, function_label(function, name)
    if isinstance(function, str):
        module_name, _, attr = function.rpartition(".")
        if not module_name:
            raise UserCodeError(f"{owner}: {name}={function!r} is not a dotted path like "
                                f"'package.module.{name}'")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise UserCodeError(f"{owner}: cannot import {module_name} for {name}: "
                                f"{type(exc).__name__}: {informative_line(exc)}") from exc
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise UserCodeError(f"{owner}: {module_name} has no function {attr}")
        return fn, f"{module_name}: {attr}"
    if function is not None:
        raise UserCodeError(f"{owner}: {name} must be a function or a dotted path, "
                            f"got {type(function).__name__}")
    if module_file is None:
        raise UserCodeError(f"{owner}: give module_file (a Python file defining {name}) "
                            f"or {name}")
    module = load_module_file(module_file)
    fn = getattr(module, name, None)
    base = os.path.basename(module_file)
    if not callable(fn):
        defined = sorted(k for k, v in vars(module).items()
                         if isinstance(v, types.FunctionType) and v.__module__ == module.__name__)
        hint = (" (trainer_fn, for Estimators, is not supported: define run_fn)"
                if name == "run_fn" and "trainer_fn" in defined else "")
        raise ModuleFileError(f"{base}: no function {name} is defined{hint}; "
                              f"it defines {', '.join(defined) or 'no functions'}")
    return fn, f"{base}: {name}"


def function_label(fn: Callable[..., Any], name: str | None = None) -> str:
    """``"file.py: fn"`` for a function; the qualified name of another callable
    (``name`` stands in for a missing ``__name__`` or ``__qualname__``)."""
    where = getattr(fn, "__code__", None)
    if where is None:
        return getattr(fn, "__qualname__", name)
    return f"{os.path.basename(where.co_filename)}: {getattr(fn, '__name__', name)}"


def load_module_file(path: str) -> types.ModuleType:
    """Execute ``path`` as a fresh module (never a stale copy from an earlier run).

    The file's folder is on ``sys.path`` while it runs, so it can import helper
    modules beside it, as TFX module files often do. ``path`` may be a URI
    (``s3://bucket/modules/trainer.py``): see :func:`_fetched`. The generated module name
    exists only in this process: code that runs in Beam workers is shipped there by
    ``toolkit.components._shipping`` (pickled by value, and packaged for clusters).
    """
    path = os.fspath(path)
    base = os.path.basename(path)
    if storage.scheme_of(path) != "file":
        path = _fetched(path)
    if not os.path.isfile(path):
        raise ModuleFileError(f"module_file {path} does not exist "
                              f"(resolved to {os.path.abspath(path)})")
    with open(path, "rb") as handle:
        source = handle.read()
    digest = hashlib.sha256(os.path.abspath(path).encode() + b"\0" + source).hexdigest()[:12]
    module_name = f"{USER_MODULE_PREFIX}{os.path.splitext(base)[0]}_{digest}"
    try:
        code = compile(source, os.path.abspath(path), "exec")
    except SyntaxError as exc:
        raise ModuleFileError(f"{base}, line {exc.lineno}: SyntaxError: {exc.msg}") from exc
    module = types.ModuleType(module_name)
    module.__file__ = os.path.abspath(path)
    sys.modules[module_name] = module
    try:
        with _module_dir_on_path(path), tfx_names():
            exec(code, module.__dict__)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ModuleFileError(f"{base}: importing the module raised {type(exc).__name__}: "
                              f"{informative_line(exc)}{_where(exc, path)}") from exc
    return module


def _fetched(uri: str) -> str:
    """A local copy of the module file at ``uri``, in a folder with the Python files beside
    it (not subfolders), so that its imports of helper modules work as on disk. Each file
    comes from the storage seam's copy, downloaded again only when the object changed."""
    import shutil
    import tempfile

    module = storage.local_path(uri)                     # one line naming the URI if missing
    parent = uri.rstrip("/").rsplit("/", 1)[0]
    folder = os.path.join(tempfile.gettempdir(), "toolkit-modules",
                          hashlib.sha256(parent.encode()).hexdigest()[:16])
    os.makedirs(folder, exist_ok=True)
    siblings = [n for n in storage.listdir(parent) if n.endswith(".py")]
    for name in sorted(set(siblings) | {os.path.basename(uri)}):
        local = module if name == os.path.basename(uri) else storage.local_path(storage.join(parent, name))
        target = os.path.join(folder, name)
        with open(local, "rb") as handle:
            data = handle.read()
        try:
            with open(target, "rb") as handle:
                if handle.read() == data:
                    continue
        except OSError:
            pass
        partial = f"{target}.part-{os.getpid()}"
        shutil.copyfile(local, partial)
        os.replace(partial, target)
    return os.path.join(folder, os.path.basename(uri))


def call_user_function(fn: Callable[..., Any], label: str, /, *args: Any, **kwargs: Any) -> Any:
    """Call user code; an exception becomes one :class:`UserCodeError` line.

    Our own :class:`ToolkitError` (for example a missing label column detected by
    the data accessor) keeps its message, prefixed with the label.
    """
    try:
        return fn(*args, **kwargs)
    except ToolkitError as exc:
        raise UserCodeError(f"{label}: {exc}") from exc
    except Exception as exc:
        raise UserCodeError(describe(exc, label, source_file(fn))) from exc


def describe(exc: BaseException, label: str, source_file: str | None = None) -> str:
    """``"file.py: fn raised ValueError: message (file.py, line 12, in helper)"``."""
    return f"{label} raised {type(exc).__name__}: {informative_line(exc)}{_where(exc, source_file)}"


def source_file(fn: Callable[..., Any]) -> str | None:
    """The file a function was defined in (``None`` for a callable without code)."""
    code = getattr(fn, "__code__", None)
    return code.co_filename if code is not None else None


def _where(exc: BaseException, source_file: str | None) -> str:
    """Where in the user's file it failed: the innermost frame in that file."""
    if not source_file:
        return ""
    target = os.path.abspath(source_file)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.abspath(f.filename) == target]
    if not frames:
        frames = _frames_from_message(exc, target)
    if not frames:
        return ""
    frame = frames[-1]
    where = f"{os.path.basename(target)}, line {frame.lineno}"
    return f" ({where}, in {frame.name})" if frame.name != "<module>" else f" ({where})"


def _frames_from_message(exc: BaseException, target: str) -> list[traceback.FrameSummary]:
    """TensorFlow re-raises errors from traced functions with the user frames in
    the message text (``File "x.py", line 3, in fn``); recover them from there."""
    import re

    found = []
    for match in re.finditer(r'File "([^"]+)", line (\d+), in (\S+)', str(exc)):
        if os.path.abspath(match.group(1)) == target:
            found.append(traceback.FrameSummary(match.group(1), int(match.group(2)),
                                                match.group(3)))
    return found


def informative_line(exc: BaseException, limit: int = 300) -> str:
    """The line of an exception message that says what went wrong, cut to ``limit``.

    Usually the first line; but TensorFlow's messages from traced functions open
    with a heading (``in user code:``) followed by frames, and the error itself is
    their last line that is not a frame.
    """
    text = first_line(str(exc))
    if not text:
        return "(no message)"
    if text.lower().startswith("in user code") or text.endswith(":"):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        tail = [line for line in lines if not line.startswith("File ")]
        text = tail[-1] if tail else text
    return shorten(text, limit)


@contextlib.contextmanager
def _module_dir_on_path(path: str) -> Iterator[None]:
    folder = os.path.dirname(os.path.abspath(path))
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


#: marks the modules of the ``tfx`` stand-in
_STAND_IN = "__toolkit_stand_in__"
#: the stand-in's module names
_STAND_IN_TREE = ("tfx", "tfx.v1", "tfx.v1.components", "tfx.v1.utils", "tfx.components",
                  "tfx.components.trainer", "tfx.components.trainer.fn_args_utils",
                  "tfx.components.trainer.executor",
                  "tfx.components.tuner", "tfx.components.tuner.component")
_STAND_IN_LOCK = threading.Lock()
#: ``tfx_names`` blocks inside, in every thread; the stand-in is in ``sys.modules`` while > 0
_stand_in_holders = 0
#: what ``sys.modules`` held under the stand-in's names before it went in
_stand_in_saved: dict[str, Any] = {}
_ABSENT = object()


@contextlib.contextmanager
def tfx_names() -> Iterator[None]:
    """TFX module files import ``tfx`` for type names only (``tfx.components.FnArgs``).

    The ``tfx`` package cannot be installed beside the TFX 1.16 libraries, so while
    a module file is imported and its function runs, and only if ``tfx`` is not
    importable, a minimal stand-in provides the names module files use: ``FnArgs``
    and ``DataAccessor`` under ``tfx.v1.components``, ``tfx.components`` and
    ``tfx.components.trainer.fn_args_utils`` (and ``FnArgs`` as TFX's older
    ``tfx.components.trainer.executor.TrainerFnArgs``), ``TunerFnResult`` under
    ``tfx.v1.components``, ``tfx.components`` and ``tfx.components.tuner.component``, and
    ``tfx.v1.utils.parse_pbtxt_file``.

    ``sys.modules`` is shared by every thread, and module files may run in several at
    once (components run in threads) or nested (a module file imported while another's
    function runs). So the stand-in is counted, under a lock: the first block to enter
    puts it in, later ones share it, and the last to leave puts back what ``sys.modules``
    held before. It is there while any block is inside.
    """
    if not _hold_stand_in():
        yield  # the real tfx is importable
        return
    try:
        yield
    finally:
        _release_stand_in()


def _hold_stand_in() -> bool:
    """Count one more user of the stand-in, putting it in first if needed; False (and
    nothing counted) when the real ``tfx`` is importable."""
    global _stand_in_holders, _stand_in_saved
    with _STAND_IN_LOCK:
        if _stand_in_holders:
            _stand_in_holders += 1
            return True
        present = sys.modules.get("tfx")
        if present is not None and not getattr(present, _STAND_IN, False):
            return False  # the real tfx, imported
        if present is None and importlib.util.find_spec("tfx") is not None:
            return False
        modules = _stand_in_modules()
        _stand_in_saved = {name: sys.modules.get(name, _ABSENT) for name in _STAND_IN_TREE}
        sys.modules.update(modules)
        _stand_in_holders = 1
        return True


def _release_stand_in() -> None:
    global _stand_in_holders, _stand_in_saved
    with _STAND_IN_LOCK:
        _stand_in_holders -= 1
        if _stand_in_holders:
            return
        for name, before in _stand_in_saved.items():
            current = sys.modules.get(name)
            if current is not None and not getattr(current, _STAND_IN, False):
                continue  # something else put there meanwhile: keep it
            if before is _ABSENT:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = before
        _stand_in_saved = {}


def _stand_in_modules() -> dict[str, types.ModuleType]:
    names = {"FnArgs": FnArgs, "DataAccessor": DataAccessor}
    modules = {}
    for dotted in _STAND_IN_TREE:
        module = types.ModuleType(dotted)
        module.__doc__ = "toolkit stand-in for the names TFX module files import"
        setattr(module, _STAND_IN, True)
        modules[dotted] = module
    for dotted, module in modules.items():
        parent, _, child = dotted.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
    for dotted in ("tfx.v1.components", "tfx.components", "tfx.components.trainer.fn_args_utils"):
        for key, value in names.items():
            setattr(modules[dotted], key, value)
    for dotted in ("tfx.v1.components", "tfx.components", "tfx.components.tuner.component"):
        modules[dotted].TunerFnResult = TunerFnResult
    # TFX's older name for FnArgs, still imported by some of its published module files
    modules["tfx.components.trainer.executor"].TrainerFnArgs = FnArgs
    modules["tfx.v1.utils"].parse_pbtxt_file = _parse_pbtxt_file
    return modules


def _parse_pbtxt_file(path: str, message: Any) -> Any:
    """TFX's ``tfx.utils.parse_pbtxt_file``: a text-format proto file into ``message``."""
    from google.protobuf import text_format

    with open(path, encoding="utf-8") as handle:
        return text_format.Parse(handle.read(), message)
