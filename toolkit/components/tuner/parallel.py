"""Parallel trials: this process is the chief, worker processes run the trials.

KerasTuner has a chief/worker mode: a worker whose ``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` are set asks a chief oracle over gRPC
for its trials. Here the chief is the oracle of the ``tuner_fn`` run in this process, served
with KerasTuner's own servicer on 127.0.0.1 by this process rather than by KerasTuner's
``start_server``: that one waits forever for a trial whose worker died, and this one notices
the death, ends that trial as failed (the oracle retries it if the tuner allows retries),
starts a replacement worker if trials remain, and stops the workers on any failure or
interrupt. What a worker process runs is in :mod:`.worker`.
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from toolkit.components._module import informative_line
from toolkit.components.fn_args import FnArgs
from toolkit.components.trainer import tf_keras_is_keras2
from toolkit.components.tuner.trials import TrialClock
from toolkit.components.tuner.worker import WORKER_ERROR_MARK, worker_main
from toolkit.errors import ToolkitError, UserCodeError

#: the address the chief oracle listens on: this machine only
ORACLE_HOST = "127.0.0.1"
#: seconds between two looks at the worker processes
POLL_SECONDS = 0.2
#: seconds a worker has to stop after SIGTERM before it is killed
STOP_GRACE_SECONDS = 5.0
#: the folder that holds the ``toolkit`` package, put first on the workers' ``PYTHONPATH``
PACKAGE_PARENT = str(Path(__file__).resolve().parents[3])


def worker_request(fn: Callable[..., Any], module_file: str | None, fn_args: FnArgs,
                   work_dir: str) -> dict[str, Any]:
    """What a worker needs to call ``tuner_fn`` as this process did: the module file, the
    dotted path, or the function pickled by value (cloudpickle, as Beam ships functions)."""
    request: dict[str, Any] = {"fn_args": {k: v for k, v in fn_args.get_dict().items()
                                           if k != "data_accessor"},
                               "work_dir": work_dir, "sys_path": list(sys.path),
                               "cwd": os.getcwd()}
    if module_file is not None:
        request["module_file"] = (os.path.abspath(module_file) if "://" not in str(module_file)
                                  else str(module_file))
    else:
        from apache_beam.internal.cloudpickle import cloudpickle

        from toolkit.components._shipping import pickled_by_value, user_modules

        try:
            with pickled_by_value(user_modules(fn)):
                request["function"] = cloudpickle.dumps(fn)
        except Exception as exc:
            name = getattr(fn, "__qualname__", fn)
            raise UserCodeError(f"tuner_fn {name!r} cannot be sent to worker processes "
                                f"({type(exc).__name__}: {informative_line(exc)}); give "
                                f"module_file= or a dotted path for num_parallel_trials > 1"
                                ) from exc
    return request


class _Worker:
    def __init__(self, tuner_id: str, process: subprocess.Popen, log_path: str):
        self.tuner_id = tuner_id
        self.process = process
        self.log_path = log_path
        self.exit_code: int | None = None

    def record(self) -> dict[str, Any]:
        return {"tuner_id": self.tuner_id, "pid": self.process.pid, "exit_code": self.exit_code,
                "ended": _ending(self.exit_code)}


def _ending(code: int | None) -> str:
    if code is None:
        return "running"
    if code == 0:
        return "finished"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class ParallelSearch:
    """N worker processes running trials for the chief oracle this process serves."""

    def __init__(self, clock: TrialClock, workers: int, request: dict[str, Any], work_dir: str,
                 label: str, log: Callable[[str], None]):
        self.clock = clock
        self.count = workers
        self.request = request
        self.work_dir = work_dir
        self.label = label
        self.log = log
        self.started: list[_Worker] = []
        #: a worker that dies mid-trial may be replaced; more deaths than this stop the search
        max_trials = clock.max_trials or 10
        self.max_deaths = workers + max_trials

    def run(self) -> list[dict[str, Any]]:
        import grpc
        from concurrent import futures
        from keras_tuner.src import protos
        from keras_tuner.src.distribute import oracle_chief

        os.makedirs(self.work_dir, exist_ok=True)
        self.request_path = os.path.join(self.work_dir, "worker_request.pkl")
        with open(self.request_path, "wb") as handle:
            pickle.dump(self.request, handle)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.count + 1))
        protos.get_service_grpc().add_OracleServicer_to_server(
            oracle_chief.OracleServicer(self.clock), server)
        self.port = server.add_insecure_port(f"{ORACLE_HOST}:0")
        if not self.port:
            raise ToolkitError(f"Tuner: cannot listen on {ORACLE_HOST} for the worker processes; "
                               "check that the loopback interface is up, or set "
                               "num_parallel_trials=1")
        server.start()
        try:
            for _ in range(self.count):
                self._start_worker()
            self._watch()
        finally:
            self._stop_workers()
            server.stop(grace=None)
            self.clock.flush()
        return [w.record() for w in self.started]

    def _start_worker(self, replacing: _Worker | None = None) -> _Worker:
        import tensorflow as tf

        tuner_id = f"worker{len(self.started) + 1}"
        env = dict(os.environ)
        env.update({"KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": ORACLE_HOST,
                    "KERASTUNER_ORACLE_PORT": str(self.port),
                    # the workers' tf.keras is this process's, whatever bound it here
                    "TF_USE_LEGACY_KERAS": "1" if tf_keras_is_keras2(tf) else "0"})
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        log_path = os.path.join(self.work_dir, f"{tuner_id}.log")
        code = (f"from {worker_main.__module__} import worker_main; "
                f"worker_main({self.request_path!r}, {tuner_id!r}, {os.getpid()})")
        with open(log_path, "wb") as log:
            # a session of its own: an interrupt meant for the notebook reaches this process,
            # which stops the workers itself
            process = subprocess.Popen([sys.executable, "-c", code], stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, cwd=self.request["cwd"], start_new_session=True)
        worker = _Worker(tuner_id, process, log_path)
        self.started.append(worker)
        self.log(f"started {tuner_id} (pid {process.pid})"
                 + (f" in place of {replacing.tuner_id}" if replacing is not None else ""))
        return worker

    def _watch(self) -> None:
        """Until every worker has exited: end the trial of a worker that died (killed, or
        exited without a word) and replace it while trials remain; stop the search when a
        worker's search raised (it printed why: what would stop the search in one process
        stops it here) or when a worker dies before running any trial."""
        deaths = 0
        live = list(self.started)
        while live:
            time.sleep(POLL_SECONDS)
            self.clock.flush()
            for worker in list(live):
                code = worker.process.poll()
                if code is None:
                    continue
                worker.exit_code = code
                live.remove(worker)
                held = self.clock.oracle.ongoing_trials.get(worker.tuner_id)
                if code == 0 and held is None:
                    continue
                deaths += 1
                reason = f"{worker.tuner_id} (pid {worker.process.pid}) {_ending(code)}"
                ran = self._ran_trials(worker.tuner_id)
                raised = _worker_error(worker.log_path, guess=False) if code > 0 else None
                if raised is not None or (held is None and not ran):
                    error = raised or _worker_error(worker.log_path, guess=code > 0)
                    if error and error.startswith(f"{self.label}: "):
                        error = error[len(self.label) + 2:]
                    last = self.clock.last_error()
                    if error and last and ran and last not in error:
                        error += f"; the last failed trial: {last}"
                    raise UserCodeError(f"{self.label}: worker {reason}"
                                        + ("" if ran else " before running a trial")
                                        + f": {error or 'it printed no error'}")
                if held is not None:
                    error = _worker_error(worker.log_path, guess=code > 0)
                    self._lose_trial(held, f"{reason} while running trial {held.trial_id}"
                                     + (f": {error}" if error else ""))
                if deaths > self.max_deaths:
                    raise ToolkitError(f"Tuner: {deaths} worker processes died; the last: {reason}; "
                                       "lower num_parallel_trials if memory ran out")
                if self._more_trials(live):
                    live.append(self._start_worker(replacing=worker))

    def _lose_trial(self, trial: Any, message: str) -> None:
        """End the dead worker's trial as KerasTuner ends a trial that crashed (INVALID: the
        oracle retries it if the tuner allows retries, else it is FAILED)."""
        from keras_tuner.src.engine import trial as trial_module

        trial.status = trial_module.TrialStatus.INVALID
        trial.message = message
        try:
            self.clock.end_trial(trial)
        except RuntimeError as exc:  # KerasTuner's limit of consecutive failed trials
            raise UserCodeError(f"{self.label}: the search stopped: {informative_line(exc)}; "
                                f"the last failed trial: {message}") from None

    def _ran_trials(self, tuner_id: str) -> bool:
        # a snapshot: gRPC threads add runs while the chief's loop asks (list() of a dict
        # view is taken whole under CPython's GIL)
        return any(run["tuner_id"] == tuner_id for run in list(self.clock.runs.values()))

    def _more_trials(self, live: list[_Worker]) -> bool:
        """Whether a replacement worker has something to do: trials left to create, or none
        left running to finish the search (a retry may wait, or the oracle must say stop)."""
        remaining = self.clock.oracle.remaining_trials()
        return not live or remaining is None or remaining > 0

    def _stop_workers(self) -> None:
        """Every worker still running gets SIGTERM, then SIGKILL after a grace period."""
        running = [w for w in self.started if w.process.poll() is None]
        for worker in running:
            _signal(worker.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in running:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(worker.process, signal.SIGKILL)
                worker.process.wait()
        for worker in self.started:
            worker.exit_code = worker.process.poll()


def _signal(process: subprocess.Popen, sig: int) -> None:
    try:
        process.send_signal(sig)
    except ProcessLookupError:
        pass


def _worker_error(log_path: str, guess: bool = True) -> str | None:
    """The error line a worker printed (``WORKER_ERROR_MARK``), else (``guess``) its last
    error-like line: not for a worker killed by a signal, whose log says nothing of it."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError:
        return None
    marked = [line[len(WORKER_ERROR_MARK):] for line in lines if line.startswith(WORKER_ERROR_MARK)]
    if marked:
        return marked[-1][:300]
    if not guess:
        return None
    errors = [line for line in lines if "Error" in line or "error:" in line]
    return errors[-1][:300] if errors else None

