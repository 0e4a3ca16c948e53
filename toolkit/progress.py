"""Live progress of the component that is running: one line, its stage and elapsed time.

A component's executor calls :func:`report` as its work advances (``report("epoch", 3, 5,
loss=0.41)``); the launcher installs a :class:`Reporter` for each computed run (the
``LiveProgress`` hook starts it before the executor and stops it after). Nobody listening
costs one lock-free attribute read: :func:`report` returns at once when no reporter runs.

Where the line goes:

- In a notebook (an IPython kernel), after about a second, one display (``display_id``)
  holds ``Trainer: epoch 3/5, loss 0.41`` with the elapsed time, updated in place at most
  four times a second; when the run ends it becomes the run's one-line outcome (``Trainer:
  finished after 0:12``, or where a failed run stopped), and the result view follows it.
- Elsewhere (plain Python, CI, and ``toolkit run``, which asks for text in its kernel),
  plain lines to standard error: the first after about a second, then one when the stage
  changed, at most every five seconds, and one a minute while it does not change.
  Each line is written whole, in one call, so lines from threads never interleave.
- ``TOOLKIT_PROGRESS=0`` (:data:`toolkit._env.PROGRESS`) turns it off; ``text`` asks for
  lines even in a kernel.

Reports may come from any thread (Keras callbacks, Beam's in-process workers): they only
replace the reporter's state under a lock; one ticker thread per run draws the line, so
a slow or broken display never slows the work, and a display that fails just stops
updating. In a process without a reporter (a Beam worker process, a tuner worker) a
report is a no-op.
"""
from __future__ import annotations

import contextvars
import os
import re
import sys
import threading
import time
from typing import Any, Callable

from toolkit import _env
from toolkit._markup import MUTED, escape
from toolkit._text import one_line, show_controls, shorten

#: seconds a run must last before its line appears
DELAY_SECONDS = 1.0
#: seconds between the ticker's looks at the state (so at most this many updates per second)
TICK_SECONDS = 0.25
#: at least this long between two text lines of one run
TEXT_INTERVAL_SECONDS = 5.0
#: a text line this often while the stage does not change, so a long step still shows life
TEXT_REPEAT_SECONDS = 60.0
#: the longest stage shown (log lines can be long)
STAGE_LIMIT = 120

_lock = threading.Lock()
_active: list["Reporter"] = []
_current: contextvars.ContextVar["Reporter | None"] = contextvars.ContextVar(
    "toolkit_progress_reporter", default=None)


def report(stage: str, done: float | None = None, total: float | None = None,
           **figures: Any) -> None:
    """Tell the running component's reporter where the work is: ``stage`` (``"epoch"``,
    ``"analyzing train on Beam"``), how far (``done`` of ``total``) and figures worth
    seeing (``loss=0.41``). Safe from any thread; never raises; free when nobody listens."""
    if not _active:
        return
    reporter = _reporter()
    if reporter is not None:
        reporter.report(stage, done, total, figures)


def note(message: str) -> None:
    """A component's log line as the stage shown in the notebook (text lines already carry
    it on standard output, so it starts no text line of its own)."""
    if not _active:
        return
    reporter = _reporter()
    if reporter is not None:
        reporter.note(message)


def _reporter() -> "Reporter | None":
    """The reporter of this thread's run; from a thread it did not start (Beam's, a
    Keras callback's), the one running in the process, if there is exactly one."""
    reporter = _current.get()
    if reporter is not None and not reporter.stopped:
        return reporter
    active = _active
    return active[0] if len(active) == 1 else None


def describe(stage: str, done: float | None = None, total: float | None = None,
             figures: dict[str, Any] | None = None) -> str:
    """One line for a stage: ``epoch 3/5, loss 0.41``, ``rows 120,000/405,000 (30%)``."""
    text = one_line(str(stage)).strip()
    if done is not None:
        text += f" {_number(done)}" + ("" if total is None else f"/{_number(total)}")
        if total and total >= 1000:
            text += f" ({min(100, int(100 * done / total))}%)"
    for name, value in (figures or {}).items():
        if value is not None:
            text += f", {name} {_number(value) if isinstance(value, (int, float)) else value}"
    return shorten(show_controls(one_line(text)), STAGE_LIMIT)


def elapsed_text(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def text_line(component_id: str, stage: str, seconds: float) -> str:
    """The plain line: ``Trainer: epoch 3/5, loss 0.41 (0:12 elapsed)``."""
    return f"{show_controls(one_line(component_id))}: {stage} ({elapsed_text(seconds)} elapsed)"


_TEXT_LINE = re.compile(r"^\S[^\n]*: .* \(\d+:\d\d(:\d\d)? elapsed\)$")


def is_text_line(line: str) -> bool:
    """Whether ``line`` is a progress line (:func:`text_line`): how ``toolkit run`` picks
    them out of its kernel's standard error."""
    return bool(_TEXT_LINE.match(line))


def _number(value: float) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


class TextSink:
    """Plain lines to standard error (looked up at each write, as a test or a kernel may
    replace it), each written whole."""

    def __init__(self, write: Callable[[str], None] | None = None):
        self._write = write

    def show(self, component_id: str, stage: str, seconds: float) -> None:
        line = text_line(component_id, stage, seconds) + "\n"
        if self._write is not None:
            self._write(line)
            return
        stream = sys.stderr
        with _lock:
            stream.write(line)
            stream.flush()

    def finish(self, component_id: str, stage: str, seconds: float, ok: bool) -> None:
        """The run's result says how it ended; text lines add nothing."""


class DisplaySink:
    """One notebook display, created on the first line and updated in place."""

    def __init__(self):
        self.handle = None

    def _bundle(self, component_id: str, stage: str, seconds: float,
                plain: str | None = None) -> dict[str, str]:
        plain = text_line(component_id, stage, seconds) if plain is None else plain
        markup = (f'<div style="font-family:monospace;font-size:90%;color:{MUTED}">'
                  f'<b>{escape(component_id)}</b>: {escape(stage)} '
                  f'<span>&middot; {escape(elapsed_text(seconds))}</span></div>')
        return {"text/plain": plain, "text/html": markup}

    def show(self, component_id: str, stage: str, seconds: float) -> None:
        from IPython.display import display

        bundle = self._bundle(component_id, stage, seconds)
        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)

    def finish(self, component_id: str, stage: str, seconds: float, ok: bool) -> None:
        """The line becomes the run's one-line outcome: how long it took (the result view
        below tells the rest), or after a failure where it stopped, which the error alone
        may not say. It keeps a text and an HTML form, as every output the toolkit shows."""
        if self.handle is None:
            return
        stage = "finished" if ok else f"stopped at: {stage}"
        plain = f"{show_controls(one_line(component_id))}: {stage} after {elapsed_text(seconds)}"
        self.handle.update(self._bundle(component_id, stage, seconds, plain), raw=True)


def sink_for_environment(environ: Any = None) -> TextSink | DisplaySink | None:
    """Where this process's lines go: None when ``TOOLKIT_PROGRESS=0``, a display in an
    IPython kernel, else text on standard error."""
    environ = os.environ if environ is None else environ
    mode = str(environ.get(_env.PROGRESS, "")).strip().lower()
    if mode in ("0", "off", "false", "no"):
        return None
    if mode != "text" and _in_kernel():
        return DisplaySink()
    return TextSink()


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return getattr(shell, "kernel", None) is not None


class Reporter:
    """One run's progress: the latest stage (set from any thread) and the rules for when
    a line is shown. :meth:`tick` is the whole policy, given the time, so it is testable
    with a fake clock; :meth:`start` runs it on a ticker thread."""

    def __init__(self, component_id: str, sink: TextSink | DisplaySink,
                 clock: Callable[[], float] = time.monotonic, started: float | None = None):
        self.component_id = component_id
        self.sink = sink
        self.clock = clock
        self.started = clock() if started is None else started
        self.stage = "running"
        self.stage_reported = False  # a report() since the last text line
        self.version = 0  # bumped by every change of the stage
        self.shown_version = -1
        self.shown_second = -1
        self.last_line: float | None = None
        self.lines = 0
        self.broken = False
        self.stopped = False
        self._state = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._token = None

    # -- from the work's threads ---------------------------------------------------------
    def report(self, stage: str, done=None, total=None, figures=None) -> None:
        try:
            text = describe(stage, done, total, figures)
        except Exception:
            return
        with self._state:
            if text != self.stage:
                self.stage, self.version = text, self.version + 1
                self.stage_reported = True

    def note(self, message: str) -> None:
        text = shorten(show_controls(one_line(str(message))).strip(), STAGE_LIMIT)
        with self._state:
            if text and text != self.stage:
                self.stage, self.version = text, self.version + 1

    # -- the policy ------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Show the line if it is due at ``now``; a sink that fails is not asked again."""
        if self.broken:
            return
        seconds = now - self.started
        if seconds < DELAY_SECONDS:
            return
        with self._state:
            stage, version, reported = self.stage, self.version, self.stage_reported
        if isinstance(self.sink, TextSink):
            if self.last_line is None:
                due = True
            elif reported and version != self.shown_version:
                due = now - self.last_line >= TEXT_INTERVAL_SECONDS
            else:
                due = now - self.last_line >= TEXT_REPEAT_SECONDS
        else:  # a display: whenever the stage or the shown second changed
            due = version != self.shown_version or int(seconds) != self.shown_second
        if not due:
            return
        try:
            self.sink.show(self.component_id, stage, seconds)
        except Exception:
            self.broken = True
            return
        self.lines += 1
        self.last_line, self.shown_version, self.shown_second = now, version, int(seconds)
        with self._state:
            if self.version == version:
                self.stage_reported = False

    def finish(self, ok: bool) -> None:
        if self.broken or self.lines == 0:
            return
        try:
            self.sink.finish(self.component_id, self.stage, self.clock() - self.started, ok)
        except Exception:
            self.broken = True

    # -- lifetime ----------------------------------------------------------------------------
    def start(self) -> "Reporter":
        """Make this the reporter of the calling thread's run and start its ticker, in the
        caller's context (a notebook routes a thread's output by it)."""
        self._token = _current.set(self)
        with _lock:
            _active.append(self)
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,),
                                        name=f"toolkit-progress-{self.component_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._wake.wait(TICK_SECONDS):
            self.tick(self.clock())

    def stop(self, ok: bool = True) -> None:
        """Stop the ticker and leave the line as the run ended. Never raises."""
        if self.stopped:
            return
        self.stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with _lock:
            if self in _active:
                _active.remove(self)
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:  # stopped from another context than it started in
                _current.set(None)
        self.finish(ok)


def start(component_id: str) -> Reporter | None:
    """A started reporter for a run of ``component_id``, or None where progress is off."""
    try:
        sink = sink_for_environment()
        return None if sink is None else Reporter(component_id, sink).start()
    except Exception:
        return None


#: the Keras releases whose ``Model.fit`` :func:`counting_epochs` wraps (module name ->
#: version prefixes); with any other release the Trainer's line stays "running run_fn"
FIT_TESTED = {"tf_keras": ("2.16.",), "keras": ("3.",)}


def keras_callback():
    """A Keras callback that reports ``epoch k/N`` and the epoch's loss. The Trainer adds
    one to every ``fit`` of its ``run_fn`` by itself (:func:`counting_epochs`); add it
    to ``model.fit(callbacks=[...])`` where that cannot reach (a Keras release other
    than :data:`FIT_TESTED`'s, callbacks given positionally). Outside a run it does
    nothing."""
    import tensorflow as tf

    return _epoch_callback(tf.keras.callbacks.Callback)


def _epoch_callback(base: type) -> Any:
    class _EpochProgress(base):
        toolkit_epochs = True  # how a wrapped fit sees that the call already has one

        def on_epoch_end(self, epoch, logs=None):
            epochs = (getattr(self, "params", None) or {}).get("epochs")
            loss = (logs or {}).get("loss")
            report("epoch", epoch + 1, epochs, loss=None if loss is None else float(loss))

    return _EpochProgress()


class counting_epochs:
    """While a ``run_fn`` runs, every ``Model.fit`` of a Keras in :data:`FIT_TESTED`
    that is already imported also reports its epochs (:func:`keras_callback` added to its
    callbacks unless it has one), and ``Model.fit`` is put back on exit.

    Why a patch: the module file calls ``fit`` itself, and Keras has no global
    callbacks, so there is no public place to add one. The patch is limited to the call
    of ``run_fn``, to the releases tested, and to keyword callbacks; anything else is
    left exactly as it was."""

    def __enter__(self) -> "counting_epochs":
        self._saved: list[tuple[type, bool, Any]] = []
        for name, prefixes in FIT_TESTED.items():
            module = sys.modules.get(name)
            if module is None or not str(getattr(module, "__version__", "")).startswith(prefixes):
                continue
            model = getattr(module, "Model", None)
            base = getattr(getattr(module, "callbacks", None), "Callback", None)
            if model is None or base is None or not callable(getattr(model, "fit", None)):
                continue
            self._saved.append((model, "fit" in vars(model), model.fit))
            model.fit = _counted(model.fit, base)
        return self

    def __exit__(self, *exc: Any) -> None:
        for model, own, original in reversed(self._saved):
            if own:
                model.fit = original
            else:
                del model.fit


def _counted(fit: Callable, base: type) -> Callable:
    import functools

    @functools.wraps(fit)
    def counted_fit(self, *args, **kwargs):
        given = kwargs.get("callbacks")
        if len(args) < 6 and (given is None or isinstance(given, (list, tuple))):
            if not any(getattr(c, "toolkit_epochs", False) for c in given or ()):
                kwargs["callbacks"] = [*(given or ()), _epoch_callback(base)]
        return fit(self, *args, **kwargs)

    return counted_fit
