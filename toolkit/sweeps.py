"""Sweeps: one exported notebook run at every combination of a grid of parameter values.

``toolkit run NOTEBOOK --grid NAME=V1,V2 [--grid ...] [--parallel N] -o OUT`` (or
:func:`sweep`) checks every point's values against the notebook's declared parameters
before anything runs, then runs each point as its own ``toolkit run`` into
``OUT/point-<n>/`` (a process of its own, so points share nothing but what the notebook
shares: its ``pipeline_root`` and metadata store). The cache and the launcher's single
flight then compute what the points have in common (the data half of a training
pipeline) once, and what differs once per point. ``OUT/sweep.json`` records every point,
``OUT/compare.html`` puts them side by side.

A point that fails does not stop the others; the sweep fails when any point did.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from toolkit import _env
from toolkit._text import one_line, shorten, show_controls
from toolkit.errors import ParameterError, RunError

SWEEP_NAME = "sweep.json"
COMPARE_NAME = "compare.html"
POINT_LOG = "point.log"
POINT_VALUES = "parameters.yaml"
#: headline metrics where lower is better (any other is higher-is-better)
LOWER_IS_BETTER = ("loss", "error", "mean_squared", "mean_absolute", "calibration_error")

Progress = Callable[[str], None]


@dataclasses.dataclass
class SweepPoint:
    """One combination of the grid and how its run went."""
    index: int
    #: the grid's values at this point (the parameters that vary)
    grid: dict[str, Any]
    #: every parameter of the run (declared defaults, the values given, the grid's)
    parameters: dict[str, Any]
    run_dir: Path
    status: str = "pending"
    reason: str | None = None
    duration_s: float | None = None
    #: Evaluator component id -> headline metric -> value (overall slice, plus ``blessed``)
    metrics: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def summary_path(self) -> Path:
        return self.run_dir / "summary.json"

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def label(self) -> str:
        return ", ".join(f"{name}={value!r}" for name, value in self.grid.items())

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "grid": self.grid, "parameters": self.parameters,
                "status": self.status, "reason": self.reason, "duration_s": self.duration_s,
                "run_dir": str(self.run_dir),
                "summary": str(self.summary_path) if self.summary_path.is_file() else None,
                "metrics": self.metrics}


@dataclasses.dataclass
class SweepResult:
    """What :func:`sweep` returns: the points in grid order, and where their record is."""
    notebook: Path
    output_dir: Path
    points: list[SweepPoint]
    #: the metric that marks the best point (None when no point has one)
    best_by: str | None
    best: int | None
    duration_s: float

    @property
    def ok(self) -> bool:
        return all(point.ok for point in self.points)

    @property
    def failed(self) -> list[SweepPoint]:
        return [point for point in self.points if not point.ok]

    @property
    def sweep_json(self) -> Path:
        return self.output_dir / SWEEP_NAME

    @property
    def compare_html(self) -> Path:
        return self.output_dir / COMPARE_NAME

    def failure_line(self) -> str:
        """One line naming every failed point and why."""
        return (f"{len(self.failed)} of {len(self.points)} points failed: "
                + "; ".join(f"point {p.index} ({show_controls(p.label())}): "
                            f"{shorten(show_controls(one_line(p.reason or 'failed')), 160)}"
                            for p in self.failed))

    def to_dict(self) -> dict[str, Any]:
        return {"notebook": str(self.notebook), "output_dir": str(self.output_dir),
                "status": "succeeded" if self.ok else "failed",
                "duration_s": self.duration_s, "varying": list(self.points[0].grid)
                if self.points else [], "best_by": self.best_by, "best": self.best,
                "points": [point.to_dict() for point in self.points]}


def parse_grid(entries: Iterable[str]) -> dict[str, list[str]]:
    """``["NAME=V1,V2", ...]`` (``--grid``) as ``{NAME: [V1, V2]}``, texts unconverted."""
    grid: dict[str, list[str]] = {}
    for entry in entries:
        name, sep, values = entry.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(f"--grid {entry!r}: expected NAME=V1,V2,... "
                                 "(e.g. --grid train_steps=100,200)")
        if name in grid:
            raise ParameterError(f"--grid {name}: given twice; list all its values in one "
                                 f"--grid {name}=V1,V2,...")
        grid[name] = values.split(",")
    return grid


def sweep(notebook: str | Path, grid: Mapping[str, Sequence[Any]] | None = None,
          parameters: Mapping[str, Any] | None = None, parallel: int = 1,
          output_dir: str | Path | None = None, *,
          grid_texts: Mapping[str, Sequence[str]] | None = None,
          cli_parameters: Iterable[tuple[str, str]] = (),
          parameter_file: str | Path | None = None, cwd: str | Path | None = None,
          execution_timeout: float | None = None, best_by: str | None = None,
          progress: Progress | None = None) -> SweepResult:
    """Run ``notebook`` at every combination of ``grid`` (name -> typed values; the CLI
    passes ``grid_texts``, converted by declared type), ``parallel`` points at a time.

    ``parameters``, ``cli_parameters`` and ``parameter_file`` hold the values every point
    shares, as for :func:`toolkit.runner.run_notebook`. Every point is checked before
    any runs: a bad name or value raises :class:`ParameterError` naming it. ``best_by``
    names the headline metric that marks the best point (default ``auc`` when the
    points have one, else the first metric they share). ``progress`` gets one line per
    point started and finished (default: stderr). Returns a :class:`SweepResult`; a
    failed point does not raise."""
    from toolkit.exporter.inspection import notebook_parameters, notebook_stem, run_values
    from toolkit.exporter.parameters import check_value, parse_text

    notebook = Path(notebook)
    if not isinstance(parallel, int) or parallel < 1:
        raise ParameterError(f"parallel must be a whole number of points at a time (1 or "
                             f"more), got {parallel!r}")
    declared = {param.name: param for param in notebook_parameters(notebook)[0]}
    axes: dict[str, list[Any]] = {}
    for source, given, convert in (("grid", grid or {}, check_value),
                                   ("--grid", grid_texts or {}, parse_text)):
        for name, values in given.items():
            if name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise ParameterError(f"{source} {name}: {notebook} has no parameter {name!r}; "
                                     f"known parameters: {known}")
            if name in axes:
                raise ParameterError(f"{source} {name}: given twice; list all its values in one "
                                     f"--grid {name}=V1,V2,...")
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise ParameterError(f"{source} {name}: give a non-empty list of values")
            try:
                axes[name] = [convert(declared[name], value) for value in values]
            except ParameterError as exc:
                raise ParameterError(f"{source} {name}: {exc}") from None
    if not axes:
        raise ParameterError("a sweep needs a grid: at least one NAME=V1,V2,... to vary")
    fixed = set(parameters or {}) | {name for name, _ in cli_parameters}
    both = sorted(fixed & set(axes))
    if both:
        raise ParameterError(f"{', '.join(both)}: both set and swept; drop it from the "
                             "parameters or from the grid")
    combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    checked = []
    for combo in combos:  # every point checked before anything runs
        overrides, effective = run_values(notebook, {**(parameters or {}), **combo},
                                          values_file=parameter_file, texts=cli_parameters)
        checked.append((combo, overrides, effective))

    out = _output_dir(output_dir, notebook_stem(notebook))
    width = len(str(len(combos)))
    points = []
    for index, (combo, overrides, effective) in enumerate(checked, 1):
        run_dir = out / f"point-{index:0{width}d}"
        run_dir.mkdir()
        _write_values(run_dir / POINT_VALUES, overrides)
        points.append(SweepPoint(index, combo, effective, run_dir.resolve()))
    emit = _one_at_a_time(progress) if progress is not None else _stderr
    started = time.perf_counter()
    runner = _PointRunner(notebook.resolve(), len(points), cwd, execution_timeout, emit)
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sweep-point")
    try:
        for future in [pool.submit(runner.run, point) for point in points]:
            future.result()
    except KeyboardInterrupt:
        # Ctrl-C: no queued point starts, the running ones are interrupted, and the
        # record still says what ran (a re-run reuses every completed execution)
        pool.shutdown(wait=False, cancel_futures=True)
        runner.interrupt()
        pool.shutdown(wait=True)
        for point in points:
            if point.status == "pending":
                point.status, point.reason = "failed", "not run: the sweep was interrupted"
        _record(notebook, out, points, best_by, started)
        raise
    finally:
        pool.shutdown(wait=True)
    return _record(notebook, out, points, best_by, started)


def _record(notebook: Path, out: Path, points: list[SweepPoint], best_by: str | None,
            started: float) -> SweepResult:
    """Writes ``sweep.json``, then ``compare.html``; the record comes first, so a page
    that cannot be built loses nothing."""
    best_by = best_by or _default_metric(points)
    result = SweepResult(notebook, out.resolve(), points, best_by, _best(points, best_by),
                         round(time.perf_counter() - started, 3))
    result.sweep_json.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False,
                                            default=str) + "\n", encoding="utf-8")
    result.compare_html.write_text(compare_page(result), encoding="utf-8")
    return result


class _PointRunner:
    """Runs one point as ``python -m toolkit.cli run`` with its values file: a process of
    its own, so each point's environment (its run log, the kernel it starts) is its own
    and a point that crashes takes nothing else down."""

    #: how long an interrupted point may take to stop (its kernel is interrupted and its
    #: summary written) before it is terminated
    STOP_WAIT_S = 30.0

    def __init__(self, notebook: Path, total: int, cwd: str | Path | None,
                 timeout: float | None, emit: Progress):
        self.notebook, self.total, self.emit = notebook, total, emit
        self.options = (["--cwd", str(Path(cwd).resolve())] if cwd is not None else []) + (
            ["--timeout", str(timeout)] if timeout is not None else [])
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self._stopped = False

    def run(self, point: SweepPoint) -> None:
        what = f"point {point.index}/{self.total} ({show_controls(point.label())})"
        command = [sys.executable, "-m", "toolkit.cli", "run", str(self.notebook),
                   "-f", str(point.run_dir / POINT_VALUES), "-o", str(point.run_dir), "-q",
                   *self.options]
        clock = time.perf_counter()
        with open(point.run_dir / POINT_LOG, "w", encoding="utf-8") as log, self._lock:
            if self._stopped:
                return
            self.emit(f"sweep: {what} started")
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       env=_point_environment())
            self._running.add(process)
        try:
            code = process.wait()
        finally:
            with self._lock:
                self._running.discard(process)
        point.duration_s = round(time.perf_counter() - clock, 3)
        summary = _read_json(point.summary_path)
        if summary is not None:
            point.status = "succeeded" if summary.get("status") == "succeeded" else "failed"
            point.reason = summary.get("reason")
            point.metrics = headline_metrics(summary)
        else:
            point.status = "failed"
            point.reason = _last_line(point.run_dir / POINT_LOG) or f"exit status {code}"
        if code != 0 and point.ok:
            point.status, point.reason = "failed", f"exit status {code}"
        shown = (f": {shorten(show_controls(one_line(point.reason)), 160)}"
                 if not point.ok and point.reason else "")
        self.emit(f"sweep: {what} {point.status} in {point.duration_s:.1f}s{shown}")

    def interrupt(self) -> None:
        """Stops every running point as Ctrl-C stops ``toolkit run`` (SIGINT: its kernel
        is interrupted and its summary written), terminating any that outlives
        :attr:`STOP_WAIT_S`; no point starts afterwards."""
        import signal

        with self._lock:
            self._stopped = True
            running = list(self._running)
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + self.STOP_WAIT_S
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


def _point_environment() -> dict[str, str]:
    """This process's environment, with this toolkit importable first."""
    import toolkit

    env = dict(os.environ)
    package_root = str(Path(toolkit.__file__).resolve().parent.parent)
    entries = [e for e in env.get("PYTHONPATH", "").split(os.pathsep) if e and e != package_root]
    env["PYTHONPATH"] = os.pathsep.join([package_root, *entries])
    env[_env.SINGLE_FLIGHT] = "1"  # the points share one store: what they share runs once
    return env


def headline_metrics(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per Evaluator of a run (its ``summary.json``): the overall slice's scalar metrics
    of the stored evaluation, and whether the model was blessed. Metrics with a ``/`` in
    their name (one of many thresholds, per class) are left to the evaluation's view."""
    found: dict[str, dict[str, Any]] = {}
    for artifact in summary.get("artifacts") or []:
        if not isinstance(artifact, dict):
            continue
        kind, component = artifact.get("type"), str(artifact.get("component_id"))
        properties = artifact.get("properties") or {}
        if kind in ("ModelEvaluation", "ModelBlessing") and "blessed" in properties:
            found.setdefault(component, {})["blessed"] = bool(int(properties["blessed"]))
        if kind == "ModelEvaluation" and artifact.get("uri"):
            found.setdefault(component, {}).update(_overall_metrics(str(artifact["uri"])))
    return found


def _overall_metrics(folder: str) -> dict[str, float]:
    from toolkit.errors import ToolkitError
    from toolkit.evaluation.storage import load_result

    try:
        overall = load_result(folder).get_metrics_for_slice(()) or {}
    except (ToolkitError, KeyError):
        return {}
    metrics = {}
    for name, value in sorted(overall.items()):
        if isinstance(value, dict) and isinstance(value.get("boundedValue"), dict):
            value = value["boundedValue"]  # with confidence intervals: the point estimate
            number = value.get("value")
        else:
            number = value.get("doubleValue") if isinstance(value, dict) else value
        if "/" not in name and isinstance(number, (int, float)) and not isinstance(number, bool):
            metrics[name] = float(number)
    return metrics


def _metric_columns(points: Sequence[SweepPoint]) -> list[tuple[str, str]]:
    columns: list[tuple[str, str]] = []
    for point in points:
        for component, metrics in point.metrics.items():
            for name in metrics:
                if name != "blessed" and (component, name) not in columns:
                    columns.append((component, name))
    return columns


def _default_metric(points: Sequence[SweepPoint]) -> str | None:
    names = [name for _, name in _metric_columns(points)]
    if "auc" in names:
        return "auc"
    return next((name for name in names if name != "example_count"), None)


def _metric_of(point: SweepPoint, name: str) -> float | None:
    values = [m[name] for m in point.metrics.values() if isinstance(m.get(name), float)]
    return values[0] if values and not math.isnan(values[0]) else None


def _best(points: Sequence[SweepPoint], name: str | None) -> int | None:
    """The index of the succeeded point with the best value of ``name``."""
    if name is None:
        return None
    scored = [(value, point.index) for point in points if point.ok
              if (value := _metric_of(point, name)) is not None]
    if not scored:
        return None
    lower = any(word in name for word in LOWER_IS_BETTER)
    return (min(scored) if lower else max(scored))[1]


def compare_page(result: SweepResult) -> str:
    """``compare.html``: one table row per point, then the points' evaluations compared
    (:func:`toolkit.comparison.compare` of the sweep folder: metrics per slice, parameters
    that differ, curves); self-contained (no script, nothing fetched), every value escaped."""
    from toolkit._markup import BAD, GOOD, HEADING, NOTE, badge, esc, fmt_num, table, tag

    points = result.points
    varying = list(points[0].grid) if points else []
    columns = _metric_columns(points)
    several = len({component for component, _ in columns}) > 1
    headers = ["point", *varying, "status", *[f"{c} {n}" if several else n for c, n in columns],
               "blessed", "note"]
    rows = []
    for point in points:
        best = point.index == result.best
        status = badge(point.status, GOOD if point.ok else BAD)
        if best:
            status += " " + badge(f"best {result.best_by}", GOOD)
        cells = [tag("a", esc(point.index), href=os.path.relpath(point.run_dir,
                                                                  result.output_dir))]
        cells += [esc(repr(point.grid[name])) for name in varying]
        cells.append(status)
        for component, name in columns:
            value = point.metrics.get(component, {}).get(name)
            text = fmt_num(value) if isinstance(value, float) else "–"
            cells.append(tag("b", text) if best and name == result.best_by else text)
        blessings = [m["blessed"] for m in point.metrics.values() if "blessed" in m]
        cells.append(esc(", ".join("yes" if b else "no" for b in blessings) or "–"))
        cells.append(esc(point.reason or "", 300))
        rows.append(cells)
    numeric = range(1 + len(varying) + 1, 1 + len(varying) + 1 + len(columns))
    title = f"Sweep of {result.notebook.name}"
    failed = len(result.failed)
    note = (f"{len(points)} points, {failed} failed, {result.duration_s:.0f} s; "
            + (f"best by {result.best_by} is marked" if result.best is not None
               else "no point has a metric to rank by"))
    body = (tag("div", esc(note), NOTE) + table(headers, rows, numeric=numeric)
            + tag("div", esc(f"Each point's run folder (executed notebook, summary.json) is "
                             f"linked from its number; the record is {SWEEP_NAME}."), NOTE))
    from toolkit.comparison import compare  # the points' evaluations side by side
    from toolkit.errors import ToolkitError

    try:
        return compare(result.output_dir).page(title, before=body)
    except ToolkitError as exc:  # no point has an evaluation to compare: the table alone
        body = tag("div", esc(title), HEADING) + body + tag("div", esc(str(exc)), NOTE)
    except Exception as exc:  # noqa: BLE001 - the page must not cost the sweep its record
        body = tag("div", esc(title), HEADING) + body + tag(
            "div", esc(f"the points could not be compared: {type(exc).__name__}: "
                       f"{one_line(str(exc))}"), NOTE)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title></head>"
            f"<body style=\"font-family:sans-serif\">{body}</body></html>\n")


def _output_dir(given: str | Path | None, name: str) -> Path:
    if given is not None:
        folder = Path(given)
        if (folder / SWEEP_NAME).exists():
            raise RunError(f"{folder} already holds a sweep ({SWEEP_NAME}); choose another "
                           "output folder")
        if folder.is_dir() and any(folder.glob("point-*")):
            raise RunError(f"{folder} already holds sweep points; choose another output folder")
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    parent = Path("runs") / name
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        candidate = parent / f"sweep-{stamp}" if attempt == 0 else parent / f"sweep-{stamp}-{attempt}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RunError(f"{parent}: cannot create a new sweep folder; name one with -o DIR")


def _write_values(path: Path, values: Mapping[str, Any]) -> None:
    """The point's values as a YAML mapping (a real serializer: any str stays data)."""
    import yaml

    path.write_text(yaml.safe_dump(dict(values), allow_unicode=True, sort_keys=False),
                    encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _last_line(path: Path) -> str | None:
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1].strip() if lines else None


_EMIT_LOCK = threading.Lock()


def _one_at_a_time(progress: Progress) -> Progress:
    """``progress`` called by one point's thread at a time."""
    def emit(line: str) -> None:
        with _EMIT_LOCK:
            progress(line)
    return emit


def _stderr(line: str) -> None:
    """One whole line to stderr: parallel points report from their own threads, and a
    line and its newline written apart could interleave with another point's."""
    with _EMIT_LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
