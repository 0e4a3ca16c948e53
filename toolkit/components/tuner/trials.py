"""The Tuner's trial bookkeeping: when each trial started and ended, on which worker, and
the one-line log of each ended trial.

KerasTuner records no durations, so the oracle is wrapped (:class:`TrialClock`) by the search
in this process and by the chief oracle's servicer alike.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any, Callable

from toolkit import progress


class TrialClock:
    """The tuner's oracle, timing each trial and noting which tuner ran it.

    KerasTuner records no durations, so every call goes through this wrapper: the search in
    this process (set as the tuner's ``oracle``) and the chief oracle's servicer alike.
    Everything else is the oracle's own: attributes read and written pass through. Each
    ended trial is logged in one line; ``queued`` keeps the lines for :meth:`flush`, for a
    chief whose trials end in the gRPC server's threads."""

    def __init__(self, oracle: Any, log: Callable[[str], None], queued: bool = False):
        object.__setattr__(self, "_oracle", oracle)
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_queued", queued)
        object.__setattr__(self, "runs", {})  # trial_id -> {tuner_id, started, ended}
        object.__setattr__(self, "pending", queue.SimpleQueue())  # lines to log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._oracle, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._oracle, name, value)

    @property
    def oracle(self) -> Any:
        return self._oracle

    def create_trial(self, tuner_id: str) -> Any:
        trial = self._synchronized(self._oracle.create_trial, tuner_id)
        if str(trial.status) == "RUNNING":
            run = self.runs.get(trial.trial_id)
            if run is None or run["ended"] is not None:  # a new trial, or a retry
                self.runs[trial.trial_id] = {"tuner_id": tuner_id, "started": time.time(),
                                             "ended": None}
            self._report()
        return trial

    def end_trial(self, trial: Any) -> None:
        try:
            self._synchronized(self._oracle.end_trial, trial)
        finally:
            run = self.runs.get(trial.trial_id)
            if run is not None:
                run["ended"] = time.time()
            if self._queued:
                self.pending.put(self._line(trial.trial_id))
            else:
                self._log(self._line(trial.trial_id))
            self._report()

    def update_trial(self, trial_id: str, metrics: dict, step: int = 0) -> Any:
        return self._synchronized(self._oracle.update_trial, trial_id, metrics, step=step)

    def _synchronized(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call one of the oracle's ``@synchronized`` methods, and free the oracle's lock if
        the method raised. KerasTuner 1.4's ``synchronized`` releases the lock only when the
        method returns, so an error (its limit of consecutive failed trials, a missing
        objective metric) would leave every later call, from any gRPC thread, waiting
        forever, and the process unable to exit. This thread still marked as the holder
        after the error is the sign of that leak: the lock is released as the decorator
        would have."""
        try:
            return method(*args, **kwargs)
        except BaseException:
            _release_leaked_lock(self._oracle)
            raise

    def flush(self) -> None:
        """Log the trials ended since the last flush (in the caller's thread)."""
        while True:
            try:
                line = self.pending.get_nowait()
            except queue.Empty:
                return
            self._log(line)

    def duration(self, trial_id: str) -> float | None:
        run = self.runs.get(trial_id)
        if run is None or run["ended"] is None:
            return None
        return round(run["ended"] - run["started"], 3)

    def worker(self, trial_id: str) -> str | None:
        run = self.runs.get(trial_id)
        return run["tuner_id"] if run is not None else None

    def last_error(self) -> str | None:
        """The error line of the last trial that did not complete, if any."""
        order = getattr(self._oracle, "end_order", None) or list(self._oracle.trials)
        for trial_id in reversed(order):
            trial = self._oracle.trials.get(trial_id)
            if trial is not None and str(trial.status) != "COMPLETED" and trial.message:
                return error_of(trial.message)
        return None

    def _report(self) -> None:
        """The live progress line: ``trial 4/6, best 0.93`` (trials started so far of the
        oracle's limit, the best score yet). Never fails the search."""
        try:
            best = None
            if any(str(t.status) == "COMPLETED" for t in list(self._oracle.trials.values())):
                best = self._oracle.get_best_trials(1)[0].score
            progress.report("trial", len(self.runs), self._oracle.max_trials or None,
                            best=None if best is None else float(best))
        except Exception:
            pass

    def _line(self, trial_id: str) -> str:
        trial = self._oracle.trials.get(trial_id)
        if trial is None:
            return f"trial {trial_id} ended"
        total = self._oracle.max_trials
        where = self.worker(trial_id)
        took = self.duration(trial_id)
        line = (f"trial {trial_id}{f'/{total}' if total else ''} {str(trial.status).lower()}"
                + (f", score {format_score(trial.score)}" if trial.score is not None else "")
                + (f" in {took:.1f} s" if took is not None else "")
                + (f" on {where}" if where and where != "tuner0" else ""))
        if str(trial.status) != "COMPLETED" and trial.message:
            line += f": {error_of(trial.message)}"
        completed = [t for t in list(self._oracle.trials.values())
                     if str(t.status) == "COMPLETED"]
        if completed:
            best = self._oracle.get_best_trials(1)[0]
            line += f"; best {format_score(best.score)} (trial {best.trial_id})"
        return line


def _release_leaked_lock(oracle: Any) -> None:
    """Release ``oracle``'s KerasTuner lock if this thread was left holding it (see
    :meth:`TrialClock._synchronized`); nothing when KerasTuner keeps its locks otherwise."""
    module = sys.modules.get("keras_tuner.src.engine.oracle")
    locks, holders = getattr(module, "LOCKS", None), getattr(module, "THREADS", None)
    if not isinstance(locks, dict) or not isinstance(holders, dict):
        return
    if oracle not in holders or holders[oracle] != threading.current_thread().name:
        return
    holders[oracle] = None
    lock = locks.get(oracle)
    if lock is not None and lock.locked():
        lock.release()


def format_score(value: Any) -> str:
    return "–" if value is None else f"{float(value):.4g}"


def error_of(message: str) -> str:
    """The line of a trial's message (a traceback) that says what went wrong."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    tail = [line for line in lines if not line.startswith(("File ", "Traceback", "^", "~"))]
    return (tail or lines or [""])[-1][:300]

