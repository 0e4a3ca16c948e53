"""Run an exported notebook headless: typed parameters, papermill execution, a run record.

Parameter values are checked against the declared types before a kernel starts
(papermill itself guesses types from strings), then handed to papermill, whose
translator writes them into the injected cell as Python literals, so a value can
never become code. Each run gets a folder (default ``runs/<name>/<UTC time>/``)
holding the executed notebook, ``summary.json``, the component log the
toolkit writes while it runs (``executions.jsonl``, named by ``TOOLKIT_RUN_LOG``)
and ``kernel.log``: what the kernel process itself prints outside any cell (at
start-up and shut-down, where ipykernel can log races of its own threads), kept
off the terminal so a clean run prints only its own lines, and named when the
kernel dies.

The kernel runs in the source notebook's folder (``cwd``), so a notebook's own
relative paths mean what they meant in Jupyter. A relative path given as a
parameter therefore resolves against that folder, not against the shell's
current directory: every path-like ``str`` parameter (see
:func:`resolved_paths`) is reported with the absolute path it resolves to, and
recorded in ``summary.json`` under ``resolved_paths``.

The kernel's traffic stays private, so ipykernel has no unencrypted-TCP warning to
print: where pyzmq has CurveZMQ, the channels are TCP on the loopback encrypted with
keys the kernel manager provisions; without CurveZMQ (POSIX), they fall back to Unix
(IPC) sockets in a folder only this user can enter, removed after the run (see
:func:`kernel_config` for why IPC is only the fallback).
What a notebook declares, and whether the supplied values fit it, is answered by
:mod:`toolkit.exporter.inspection`; this module only executes and records.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import toolkit
from toolkit import _env
from toolkit._scoped import temporarily
from toolkit._text import first_line, one_line, shorten, show_controls
from toolkit.errors import RunError
from toolkit.exporter.inspection import notebook_stem, run_values, source_directory
from toolkit.progress import is_text_line

RUN_LOG_ENV = _env.RUN_LOG
MODE_ENV = _env.MODE
SUMMARY_NAME = "summary.json"
RUN_LOG_NAME = "executions.jsonl"
KERNEL_LOG_NAME = "kernel.log"
KERNEL_NAME = "python3"

PATH_SUFFIXES = ("_root", "_dir", "_path", "_file", "_base")

Progress = Callable[[str], None]


@dataclass
class RunResult:
    """Outcome of :func:`run_notebook`; ``summary`` is what ``summary.json`` holds."""

    status: str
    reason: str | None
    run_dir: Path
    notebook: Path
    summary_path: Path
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def run_notebook(
    notebook: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    cli_parameters: Iterable[tuple[str, str]] = (),
    parameter_file: str | Path | None = None,
    run_dir: str | Path | None = None,
    cwd: str | Path | None = None,
    execution_timeout: float | None = None,
    progress: Progress | None = None,
    announce: Progress | None = None,
) -> RunResult:
    """Validate parameters, execute ``notebook`` with papermill, and write the run record.

    ``parameters`` holds typed values; ``parameter_file`` a YAML/JSON mapping;
    ``cli_parameters`` ``(name, text)`` pairs converted by declared type (applied
    last). Every value is checked before anything runs: a bad one raises
    :class:`toolkit.errors.ParameterError`. The run folder is ``run_dir``, by
    default ``runs/<name>/<UTC time>/``. A failing cell does not raise; the
    returned result has ``status == "failed"`` and a one-line ``reason``.
    ``announce`` receives one line per relative path parameter (where it
    resolves) before the kernel starts.
    """
    notebook = Path(notebook)
    overrides, effective = run_values(notebook, parameters, values_file=parameter_file, texts=cli_parameters)
    name = notebook_stem(notebook)
    if cwd is None:
        cwd = source_directory(notebook)
    working_directory = Path(cwd).resolve() if cwd is not None else Path.cwd()
    paths = resolved_paths(effective, working_directory)
    if announce is not None:
        for line in describe_resolved_paths(effective, paths, working_directory):
            announce(line)
    folder = _new_run_dir(Path("runs") / name) if run_dir is None else _given_run_dir(Path(run_dir))
    folder = folder.resolve()
    output = folder / f"{name}.ipynb"
    run_log = folder / RUN_LOG_NAME
    run_log.touch()
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    kernel_log = folder / KERNEL_LOG_NAME
    failure = _execute(notebook.resolve(), output, overrides, run_log, kernel_log, cwd, execution_timeout,
                       progress)
    duration = round(time.perf_counter() - clock, 3)
    summary = build_summary(
        notebook=notebook,
        output=output,
        run_log=run_log,
        parameters=effective,
        started=started,
        duration=duration,
        failure=failure,
    )
    summary["kernel_log"] = str(kernel_log)
    summary["working_directory"] = str(working_directory)
    summary["resolved_paths"] = paths
    summary_path = folder / SUMMARY_NAME
    summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return RunResult(summary["status"], summary["reason"], folder, output, summary_path, summary)


def is_path_parameter(name: str, value: Any) -> bool:
    """Whether a parameter value is a relative filesystem path that the kernel resolves.

    The rule: a non-empty ``str`` value that is not absolute and not a URL
    (``scheme://...``), and either the parameter's name ends in ``_root``,
    ``_dir``, ``_path``, ``_file`` or ``_base``, or the value contains a path
    separator.
    """
    if not isinstance(value, str) or not value.strip() or "://" in value:
        return False
    if os.path.isabs(value) or value.startswith("~"):
        return False
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return name.endswith(PATH_SUFFIXES) or any(sep in value for sep in separators)


def resolved_paths(parameters: Mapping[str, Any], working_directory: Path) -> dict[str, str]:
    """``{name: absolute path}`` for every relative path parameter, as the kernel resolves it."""
    return {name: os.path.normpath(os.path.join(str(working_directory), value))
            for name, value in parameters.items() if is_path_parameter(name, value)}


def describe_resolved_paths(parameters: Mapping[str, Any], paths: Mapping[str, str],
                            working_directory: Path) -> list[str]:
    """One line per relative path parameter: its value and where it resolves."""
    where = show_controls(str(working_directory))
    return [f"parameter {name}: {show_controls(repr(parameters[name]))} resolves to {show_controls(path)} "
            f"(relative to the kernel's working directory {where})"
            for name, path in paths.items()]


def _given_run_dir(folder: Path) -> Path:
    if (folder / SUMMARY_NAME).exists():
        raise RunError(f"{folder} already holds a run (summary.json); choose another run folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _new_run_dir(parent: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        candidate = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RunError(f"{parent}: cannot create a new run folder")


@dataclass
class _Failure:
    reason: str
    cell: int | None = None
    source: str | None = None
    error: str | None = None


def _execute(
    notebook: Path,
    output: Path,
    overrides: dict[str, Any],
    run_log: Path,
    kernel_log: Path,
    cwd: str | Path | None,
    execution_timeout: float | None,
    progress: Progress | None,
) -> _Failure | None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    hooks = _CellProgress(progress)  # also names the cell a dying kernel was running
    hook_kwargs: dict[str, Any] = {"on_cell_start": hooks.start, "on_cell_executed": hooks.executed}
    if progress is not None:  # the components' stage lines, from the kernel's stderr
        hook_kwargs["stderr_file"] = StageRelay(progress)
    try:
        with kernel_environment(run_log, stages=progress is not None), _papermill_errors_only(), \
                kernel_config(kernel_log) as config:
            papermill.execute_notebook(
                _literal_path(notebook),
                _literal_path(output),
                parameters=overrides,
                kernel_name=KERNEL_NAME,
                progress_bar=False,
                log_output=False,
                cwd=str(cwd) if cwd is not None else None,
                execution_timeout=execution_timeout,
                config=config,
                **hook_kwargs,
            )
    except PapermillExecutionError as exc:
        return _Failure(
            reason=_reason(exc.ename, exc.evalue),
            cell=exc.cell_index + 1,
            source=_cell_line(exc.source),
            error=exc.ename,
        )
    except KeyboardInterrupt:
        return _Failure(reason="interrupted")
    except Exception as exc:  # kernel died, timed out or could not start
        reason = _reason(type(exc).__name__, str(exc))
        if kernel_log.exists() and kernel_log.stat().st_size:
            reason += f" (the kernel's own output is in {show_controls(str(kernel_log))})"
        return _Failure(reason=reason, error=type(exc).__name__, cell=hooks.current,
                        source=hooks.source if hooks.current else None)
    return None


@contextmanager
def kernel_config(kernel_log: Path | None = None) -> Iterator[Any]:
    """Kernel manager settings that keep the kernel's traffic private and its log quiet.

    With ``kernel_log``, the kernel process's own standard output and error go to that
    file rather than this process's terminal. Cells' output never does: ipykernel sends
    it over the channels. What is left is the kernel's start-up and shut-down; ipykernel
    7.4 can log a traceback there when its control thread answers the shutdown request
    while the IOPub thread closes, after the notebook's work is done.

    Where pyzmq has CurveZMQ and the kernelspec declares it (ipykernel's does), the
    kernel listens on TCP with keys the manager provisions, so its traffic is encrypted
    and it does not warn about plain TCP. Elsewhere its sockets are Unix (IPC) sockets
    in a folder only this user can enter, removed afterwards. IPC is the fallback, not
    the default: libzmq can abort with an assertion while such sockets close at kernel
    shutdown (rarely, after the notebook's work is done, but on the run's stderr).
    """
    import shutil
    import tempfile

    import zmq
    from traitlets.config import Config

    logged = ({"NotebookClient": {"kernel_manager_class": _logged_kernel_manager()},
               "LoggedKernelManager": {"output_file": str(kernel_log)}} if kernel_log is not None else {})
    if zmq.has("curve") or os.name != "posix":
        yield Config({"KernelManager": {"transport_encryption": "auto"}, **logged} if zmq.has("curve")
                     else logged)
        return
    folder = tempfile.mkdtemp(prefix="toolkit-kernel-")
    try:
        yield Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "kernel")}, **logged})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@functools.cache
def _logged_kernel_manager() -> type:
    """nbclient's kernel manager, launching the kernel with its output sent to ``output_file``
    (``start_kernel``'s keywords go to the kernel's ``Popen``). Built on first use, so
    importing this module does not import jupyter_client."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode

    class LoggedKernelManager(AsyncKernelManager):
        output_file = Unicode("", help="file for the kernel process's own stdout and stderr").tag(config=True)

        async def start_kernel(self, **kw: Any) -> None:
            if not self.output_file or "stderr" in kw:
                return await super().start_kernel(**kw)
            with open(self.output_file, "ab") as sink:  # the kernel holds its own copy
                return await super().start_kernel(stdout=sink, stderr=sink, **kw)

    return LoggedKernelManager


def _literal_path(path: Path) -> str:
    """papermill formats paths with the parameters (``str.format``); keep braces literal."""
    return str(path).replace("{", "{{").replace("}", "}}")


def _reason(ename: str, evalue: str) -> str:
    message = show_controls(one_line(" ".join(str(evalue).split())))
    if ename == "GateError":
        return message or ename
    return f"{ename}: {message}" if message else ename


@contextmanager
def kernel_environment(run_log: Path, stages: bool = False) -> Iterator[None]:
    """Kernel sees production mode, the run log path and the same toolkit as this process.

    Its components' live progress (:mod:`toolkit.progress`) is text on the kernel's stderr
    when ``stages`` (for :class:`StageRelay` to print), else off, so the executed notebook
    holds no progress lines nobody reads; a ``TOOLKIT_PROGRESS`` the user set wins."""
    package_root = str(Path(toolkit.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    entries = [entry for entry in path.split(os.pathsep) if entry]
    updates = {
        RUN_LOG_ENV: str(run_log.resolve()),
        MODE_ENV: "production",
        "PYTHONPATH": os.pathsep.join([package_root] + [e for e in entries if e != package_root]),
    }
    if _env.PROGRESS not in os.environ:
        updates[_env.PROGRESS] = "text" if stages else "0"
    with temporarily(os.environ, updates):
        yield


@contextmanager
def _papermill_errors_only() -> Iterator[None]:
    """Parameters are validated here already; papermill's own warnings about them only mislead."""
    import logging

    logger = logging.getLogger("papermill")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class _CellProgress:
    """nbclient hooks: the cell running now, and with ``emit`` one line per code cell with its
    number, first line and elapsed time."""

    def __init__(self, emit: Progress | None):
        self.emit = emit
        self.started: float | None = None
        self.current: int | None = None
        self.source: str | None = None

    def start(self, cell: Any, cell_index: int, **_: Any) -> None:
        self.current = cell_index + 1
        self.source = _cell_line(cell.get("source"))
        self.started = time.perf_counter()

    def executed(self, cell: Any, cell_index: int, execute_reply: Any = None, **_: Any) -> None:
        if self.emit is None:
            return
        elapsed = time.perf_counter() - (self.started or time.perf_counter())
        status = ((execute_reply or {}).get("content") or {}).get("status", "ok")
        mark = "" if status == "ok" else "  FAILED"
        self.emit(f"cell {cell_index + 1:>3}  {elapsed:7.2f}s  {_cell_line(cell.get('source'), 70)}{mark}")


class StageRelay:
    """papermill's ``stderr_file``: the kernel's standard error arrives here in pieces; each
    whole line that is a component's progress line (:func:`toolkit.progress.is_text_line`)
    goes to ``emit``, indented, before the line of the cell that runs the component. A
    kernel sends its stream output only as a notebook's stream messages, which papermill
    hands to this file as they come; the rest of stderr (warnings, library logs) stays in
    the executed notebook only."""

    def __init__(self, emit: Progress):
        self.emit = emit
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if is_text_line(line):
                self.emit("  " + line)
        return len(text)

    def flush(self) -> None:
        """Lines are relayed whole as they complete; a partial one waits for its end."""


def read_run_log(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records the toolkit appended (one JSON object per line), and how many lines were unreadable."""
    records, bad = [], 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def build_summary(
    *,
    notebook: Path,
    output: Path,
    run_log: Path,
    parameters: dict[str, Any],
    started: datetime,
    duration: float,
    failure: _Failure | None,
) -> dict[str, Any]:
    """The run record: parameters, executions, artifacts, blessing, push outcome, outcome.

    ``pushed_version`` is set only when a model was pushed; ``push`` tells whether
    the Pusher pushed, from cache or not, and why not.
    """
    records, unreadable = read_run_log(run_log)
    executions, artifacts = [], []
    blessing: bool | None = None
    pushed_version: Any = None
    push: dict[str, Any] | None = None
    for record in records:
        executions.append({
            key: record.get(key)
            for key in ("component_id", "component_type", "execution_id", "cached", "duration_s")
        })
        outputs = record.get("outputs") if isinstance(record.get("outputs"), dict) else {}
        for key, items in outputs.items():
            for item in items if isinstance(items, list) else []:
                if not isinstance(item, dict):
                    continue
                properties = item.get("properties") if isinstance(item.get("properties"), dict) else {}
                artifacts.append({
                    "component_id": record.get("component_id"),
                    "key": key,
                    "id": item.get("id"),
                    "type": item.get("type"),
                    "uri": item.get("uri"),
                    "properties": properties,
                })
                if item.get("type") == "ModelBlessing" and "blessed" in properties:
                    blessing = bool(properties["blessed"])
                if item.get("type") == "PushedModel":
                    push = _push_outcome(record, properties)
                    pushed_version = push["version"]
    summary: dict[str, Any] = {
        "notebook": str(notebook),
        "status": "failed" if failure else "succeeded",
        "reason": failure.reason if failure else None,
        "failing_cell": None,
        "parameters": parameters,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": duration,
        "executions": executions,
        "artifacts": artifacts,
        "blessing": blessing,
        "pushed_version": pushed_version,
        "push": push,
        "executed_notebook": str(output),
        "run_log": str(run_log),
    }
    if failure and failure.cell is not None:
        summary["failing_cell"] = {"cell": failure.cell, "source": failure.source, "error": failure.error}
    if unreadable:
        summary["run_log_unreadable_lines"] = unreadable
    return summary


def _push_outcome(record: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """What a Pusher execution did: a version only when it pushed, else its reason."""
    version = properties.get("pushed_version")
    try:
        pushed = int(properties.get("pushed", 0)) == 1 and version not in (None, "")
    except (TypeError, ValueError):
        pushed = False
    reason = None
    if not pushed:
        reason = str(properties.get("reason") or "model not pushed").removeprefix("not pushed: ")
    return {"pushed": pushed, "version": version if pushed else None, "cached": bool(record.get("cached")),
            "reason": reason, "destination": properties.get("pushed_destination")}


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _cell_line(source: str | None, limit: int = 80) -> str:
    """A cell's first line of code, printable, for progress lines and failure reports."""
    return shorten(show_controls(one_line(first_line(source))), limit)
