"""Running a component's Beam pipeline: one place that checks ``beam_pipeline_args``, builds
the pipeline from them, runs it to the end, and turns a runner's failure into one line
naming the runner and its flags.

Every data-heavy component that takes ``beam_pipeline_args`` goes through
:func:`beam_pipeline`, so an unknown runner, an unreachable job endpoint or a crashing
worker reads the same everywhere:

- **Unknown runner**: checked before any work, by asking Beam to create the runner.
- **Unreachable services**: Beam waits minutes (or forever) for a job endpoint or an
  EXTERNAL worker pool that nobody listens on; a short TCP connection is tried first and
  the flag that names the address is reported.
- **A worker process that dies**: on the multi-processing DirectRunner a worker that
  exits mid-pipeline (killed, out of memory, ``os._exit`` in user code) leaves Beam
  waiting forever for its answer. :func:`_watching_workers` makes the runner's wait for
  that worker fail instead, so the run ends with one line (on the Beam releases it was
  tested with; elsewhere it stands aside with a warning).
- **Anything else**: the line the runner's traceback buries (a user-code error raised in
  a worker, a module a worker cannot import) is found and reported with the runner.
"""
from __future__ import annotations

import contextlib
import re
import socket
import threading
from typing import Iterator, Sequence

from toolkit._quiet import offline_beam
from toolkit.components._shipping import beam_flag, runner_label, worker_import_failure
from toolkit.errors import InputDataError, ToolkitError, UserCodeError, causes

#: seconds to wait for a job service or worker pool to accept a TCP connection
CONNECT_TIMEOUT = 5.0
#: runner names Beam knows without a dotted path, for the unknown-runner message
_KNOWN_RUNNERS = ("DirectRunner", "PortableRunner", "FlinkRunner", "SparkRunner",
                  "DataflowRunner", "PrismRunner")


class BeamRunnerError(ToolkitError):
    """The Beam runner cannot run the pipeline: unknown, unreachable, or a worker died."""


class WorkerExited(RuntimeError):
    """A Beam SDK worker process ended while the pipeline still needed it."""

    def __init__(self, returncode: int | None):
        self.returncode = returncode
        super().__init__(f"a Beam worker process exited with code {returncode} mid-pipeline")


@contextlib.contextmanager
def beam_pipeline(beam_args: Sequence[str], label: str) -> Iterator:
    """A ``beam.Pipeline`` built from ``beam_args``; it runs, and is waited for, when the
    ``with`` block ends.

    ``label`` names the work for messages ("CsvExampleGen reading input_base"). The
    arguments are checked first (:func:`check_beam_args`). A failure raises a
    :class:`~toolkit.errors.ToolkitError` whose message is one line naming the runner and
    its flags; the runner's traceback stays chained for the log.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(beam_args)
    check_beam_args(args, label)
    offline_beam()
    with _watching_workers() as watch:
        try:
            with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
                yield pipeline
        except ToolkitError:
            raise
        except Exception as exc:
            exited = watch.exits if watch is not None else []
            if exited and not any(isinstance(c, WorkerExited) for c in causes(exc)):
                # the runner noticed the dead worker by its closed channel first
                raise pipeline_failure(exited[0], label, args) from exc
            raise pipeline_failure(exc, label, args) from exc


def check_beam_args(beam_args: Sequence[str], label: str) -> None:
    """Refuse, with one line, arguments that cannot run: an unknown ``--runner``, a
    ``--job_endpoint`` or an EXTERNAL ``--environment_config`` that accepts no connection.

    Cheap (no pipeline is built), so components call it before reading any data.
    """
    args = list(beam_args)
    runner = beam_flag(args, "runner")
    if runner:
        _check_runner(runner, label, args)
    endpoint = beam_flag(args, "job_endpoint")
    if endpoint and endpoint.lower() != "embed":
        _check_reachable(endpoint, "job_endpoint", "the job service", label, args,
                         "start the runner's job server (Flink's or Spark's, or Beam's own: "
                         "python -m apache_beam.runners.portability.local_job_service_main "
                         "--port=PORT) or fix the flag")
    environment = (beam_flag(args, "environment_type") or "").upper()
    config = beam_flag(args, "environment_config")
    if environment == "EXTERNAL" and config and re.fullmatch(r"[\w.\-\[\]:]+:\d+", config):
        _check_reachable(config, "environment_config", "the EXTERNAL worker pool", label, args,
                         "start it (python -m apache_beam.runners.worker.worker_pool_main "
                         "--service_port=PORT) or fix the flag")


def _check_runner(runner: str, label: str, args: list[str]) -> None:
    from apache_beam.runners.runner import create_runner

    try:
        create_runner(runner)
    except (ValueError, ImportError, AttributeError, TypeError):
        raise BeamRunnerError(
            f"{label}: unknown Beam runner {runner!r} (--runner={runner}); use one of "
            f"{', '.join(_KNOWN_RUNNERS)} or the dotted path of a PipelineRunner "
            "subclass") from None


def _check_reachable(address: str, flag: str, what: str, label: str, args: list[str],
                     fix: str) -> None:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "localhost"
    if not port.isdigit():
        raise BeamRunnerError(f"{label}: --{flag}={address} is not HOST:PORT "
                              f"({runner_label(args)})")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, socket.timeout):
            reason = f"no answer within {CONNECT_TIMEOUT:g} s"
        raise BeamRunnerError(
            f"{label}: {what} at --{flag}={address} cannot be reached ({reason}) on "
            f"{runner_label(args)}: {fix}") from None


def pipeline_failure(exc: BaseException, label: str, beam_args: Sequence[str]) -> ToolkitError:
    """The one-line error for a Beam pipeline that failed.

    In order: a toolkit error raised in a DoFn (kept as it is), a worker process that
    died, a module a worker cannot import, a toolkit error whose text came back from a
    worker process, and else the last ``SomethingError: message`` line of the runner's
    report (the user's exception sits at the bottom of a worker's traceback).
    """
    args = list(beam_args)
    chain = list(causes(exc))
    for cause in chain:
        if isinstance(cause, ToolkitError):
            return cause
    for cause in chain:
        if isinstance(cause, WorkerExited):
            return BeamRunnerError(
                f"{label} failed on Beam, {runner_label(args)}: {cause} (it crashed, was "
                "killed or ran out of memory); nothing of this run is kept")
    unshipped = worker_import_failure(exc, label, args)
    if unshipped is not None:
        return UserCodeError(unshipped)
    text = "\n".join(str(cause) for cause in chain)
    for kind, error in (("UserCodeError", UserCodeError), ("InputDataError", InputDataError)):
        marker = f"{kind}: "
        if marker in text:
            line = text[text.rindex(marker) + len(marker):].splitlines()[0]
            return error(_without_step(line))
    errors = re.findall(r"^\s*([\w.]*(?:Error|Exception|Exit)): (.+)$", text, flags=re.MULTILINE)
    if errors:
        kind, message = errors[-1]
        first = f"{kind.rsplit('.', 1)[-1]}: {_without_step(message)}"
    else:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()),
                     type(exc).__name__)
        first = _without_step(first)
    return ToolkitError(f"{label} failed on Beam, {runner_label(args)}: {first}")


def _without_step(line: str) -> str:
    """Beam appends ``[while running 'Step']`` to a DoFn's error message."""
    return line.split(" [while running")[0].strip()


#: Beam releases whose worker-handler internals :func:`_watching_workers` was checked
#: against (``SubprocessSdkWorkerHandler.start_worker`` and the private attributes it
#: reads); under any other release the watch stands aside
WATCH_TESTED_BEAM = ("2.72.",)
#: the one-line warning when the watch stands aside (``{why}`` says why)
WATCH_STANDS_ASIDE = ("toolkit: {why}, so a Beam worker process that crashes may make the run "
                      "wait without end; stop it with Ctrl-C, or use Beam {tested} to have the "
                      "crash reported")


class _WorkerWatch:
    """The worker exits seen for one pipeline: only workers that pipeline started."""

    def __init__(self) -> None:
        self.exits: list[WorkerExited] = []


_WATCH_LOCK = threading.Lock()
#: pipelines inside :func:`_watching_workers`; Beam's method is replaced while this is > 0
_watch_holders = 0
#: Beam's own ``start_worker``, kept while it is replaced
_watch_original = None
#: the watch of the pipeline a thread is running (Beam starts the multi-processing
#: DirectRunner's workers from the thread that runs the pipeline)
_watch_current = threading.local()
_watch_warned = False


def _beam_version() -> str:
    """The installed Beam's version, as the watch's gate sees it."""
    import apache_beam

    return getattr(apache_beam, "__version__", "?")


def _watch_unsupported() -> str | None:
    """Why the worker watch cannot be installed on this Beam, or None when it can."""
    from apache_beam.runners.portability import local_job_service
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    version = _beam_version()
    if not version.startswith(WATCH_TESTED_BEAM):
        return f"Beam {version} is not a release the worker watch was tested with"
    handler_class = getattr(worker_handlers, "SubprocessSdkWorkerHandler", None)
    if handler_class is None or "start_worker" not in vars(handler_class) or \
            not hasattr(local_job_service, "SubprocessSdkWorker"):
        return f"Beam {version} has no SubprocessSdkWorkerHandler.start_worker to watch"
    return None


@contextlib.contextmanager
def _watching_workers() -> Iterator[_WorkerWatch | None]:
    """Make the multi-processing DirectRunner fail, rather than wait forever, when one of
    the worker processes of the pipeline run in this block exits mid-pipeline.

    Beam runs each worker process from a thread that only raises, in that thread, when the
    process exits with an error; the runner keeps waiting for the worker's answer, and
    Beam offers no public hook to learn of it. So, for the block only, Beam's
    ``SubprocessSdkWorkerHandler.start_worker`` is replaced by one that, on such an exit,
    aborts the runner's pending requests to the worker and closes its data channel, which
    makes the runner raise :class:`WorkerExited` within a second. Scoped and shared:

    - it is installed when the first pipeline enters and Beam's own method is put back
      when the last one leaves (pipelines may run at once, in threads);
    - only workers started by the thread running the pipeline of this block are watched,
      and their exits are recorded on the yielded watch alone, so a crash is blamed on the
      pipeline whose worker died; any other Beam work in the process gets Beam's method;
    - it reads private attributes (``_worker_command_line``, ``control_conn._futures_by_id``),
      so it runs only on the Beam releases in :data:`WATCH_TESTED_BEAM` and when those are
      there; otherwise it stands aside (yields None) with a one-line warning, once.

    A worker that ends normally (the pipeline is done) changes nothing.
    """
    why = _watch_unsupported()
    if why is not None:
        _stand_aside(why)
        yield None
        return
    watch = _WorkerWatch()
    _hold_watch()
    outer = getattr(_watch_current, "watch", None)
    _watch_current.watch = watch
    try:
        yield watch
    finally:
        _watch_current.watch = outer
        _release_watch()


def _stand_aside(why: str) -> None:
    """Warn, once per process, that crashed workers are not watched on this Beam."""
    global _watch_warned
    with _WATCH_LOCK:
        warn, _watch_warned = not _watch_warned, True
    if warn:
        import warnings

        tested = " or ".join(f"{version}x" for version in WATCH_TESTED_BEAM)
        warnings.warn(WATCH_STANDS_ASIDE.format(why=why, tested=tested), RuntimeWarning,
                      stacklevel=3)


def _hold_watch() -> None:
    global _watch_holders, _watch_original
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    with _WATCH_LOCK:
        _watch_holders += 1
        if _watch_holders == 1:
            handler_class = worker_handlers.SubprocessSdkWorkerHandler
            _watch_original = vars(handler_class)["start_worker"]
            handler_class.start_worker = _watched_start_worker(_watch_original)


def _release_watch() -> None:
    global _watch_holders, _watch_original
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    with _WATCH_LOCK:
        _watch_holders -= 1
        if _watch_holders == 0:
            handler_class = worker_handlers.SubprocessSdkWorkerHandler
            # put Beam's method back unless someone replaced ours meanwhile (theirs stays)
            if getattr(vars(handler_class).get("start_worker"), "_toolkit_watch", False):
                handler_class.start_worker = _watch_original
            _watch_original = None


def _watched_start_worker(original):
    """Beam's ``start_worker`` for workers of a watched pipeline (see :func:`_watching_workers`);
    ``original`` for every other worker."""

    def start_worker(self) -> None:
        watch = getattr(_watch_current, "watch", None)
        if watch is None:
            return original(self)
        if not hasattr(self, "_worker_command_line") or \
                not hasattr(getattr(self, "control_conn", None), "_futures_by_id"):
            _stand_aside(f"Beam {_beam_version()}'s worker handler lacks the private "
                         "attributes the worker watch reads")
            return original(self)
        from apache_beam.runners.portability import local_job_service

        self.worker = local_job_service.SubprocessSdkWorker(
            self._worker_command_line, self.control_address, self.provision_info,
            self.worker_id)

        def run() -> None:
            try:
                self.worker.run()
            except RuntimeError as exc:
                code = re.search(r"return code (-?\d+)", str(exc))
                error = WorkerExited(int(code.group(1)) if code else None)
                # a worker with requests still unanswered died mid-pipeline; one that
                # exits badly after its last answer (at shutdown) is no failure
                if self.control_conn._futures_by_id:
                    watch.exits.append(error)
                self.control_conn.abort(error)
                self.data_conn.close()

        self.worker_thread = threading.Thread(name="run_worker", target=run, daemon=True)
        self.worker_thread.start()

    start_worker._toolkit_watch = True
    return start_worker
