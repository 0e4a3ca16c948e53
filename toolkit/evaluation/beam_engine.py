"""The vectorized engine on Apache Beam: per-slice sufficient statistics, merged by addition.

Workers turn each batch of examples (a DataFrame, or a batch that a ``prepare`` object
turns into one: read Examples, call the model loaded once per worker) into additive
statistics per slice key, computed by the engine's own :class:`~toolkit.evaluation.stats.StatsPlan`:
weight sums, weighted labels/predictions/errors, per-threshold confusion counts, and
for AUC the weighted positives and totals in each occupied bucket of TFMA's re-binned
calibration histogram. ``CombinePerKey`` adds them per slice; the driver then builds the
confusion curves from the summed histograms (again with ``StatsPlan``, on one pseudo-row
per occupied bucket and label, which reproduces the in-memory engine's bucket set and
sums; the plots' calibration histograms, :mod:`toolkit.evaluation.plots`, merge by bucket the
same way) and hands everything to the engine's finalisation: metrics, model diffs,
cross-slice differences, intervals, thresholds, ``EvalResult``.

Confidence intervals: each example gets Poisson(1) (or jackknife bucket) weights drawn
from a hash of its evaluated columns and the seed (:mod:`toolkit.evaluation.resampling`),
so the draws are the same on any runner, under any batching, and in the in-memory
engine: for a given seed the intervals equal ``toolkit.evaluate``'s up to float
summation order.
"""
from __future__ import annotations

import pickle
import tempfile
import threading
import uuid
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from toolkit import progress
from toolkit.evaluation import config as config_mod
from toolkit.evaluation import engine as engine_mod
from toolkit.evaluation import metrics as metrics_mod
from toolkit.evaluation import plots, resampling
from toolkit.evaluation.config import EvalConfig, load_eval_config, slice_value
from toolkit.evaluation.errors import EvalConfigError, InvalidValuesError
from toolkit.evaluation.slicing import EmptySlice, Slice, build_slices
from toolkit.evaluation.stats import Incidence, Stats, StatsPlan, tfma_bucket_map, tfma_histogram_bucket
from toolkit.evaluation.validation import has_change_thresholds

#: rows per element when a DataFrame is split for the pipeline
FRAME_BATCH_ROWS = 20000
_META = ("__toolkit_meta__",)
_SCALARS = ("wsum", "wy", "wp", "wse", "wae")
_MATRICES = ("tp", "tn", "fp", "fn")


class _Pass:
    """One statistics pass of the engine: a model, a weighting, its thresholds and AUCs."""

    def __init__(self, model, weighted: bool, items):
        self.model_name = model.name
        self.label_key = model.label_key
        self.prediction_key = model.prediction_key
        self.weight_key = model.example_weight_key if weighted and model.example_weight_key else None
        self.weighted = weighted
        self.items = items
        self.thresholds = sorted({t for i in items if i.metric.kind in ("confusion", "fairness")
                                  for t in i.metric.thresholds})
        self.aucs = sorted({i.metric.num_thresholds for i in items if i.metric.kind == "auc"})
        self.binary = any(i.metric.needs_binary for i in items)
        self.errors = any(i.metric.kind in metrics_mod.REGRESSION_KINDS for i in items)
        #: calibration-histogram ranges the plots need (ConfusionMatrixPlot: [0, 1])
        self.spans = sorted({plots.histogram_span(i.metric) for i in items if i.metric.kind in plots.PLOT_KINDS})


class BeamPlan:
    """What every worker needs: the config, the slicing specs and the statistics passes."""

    def __init__(self, config: EvalConfig, seed: int | None):
        self.config = config
        self.specs = list(config.all_slicing_specs())
        planned, unsupported = engine_mod.plan_metrics(config)
        if unsupported:
            raise EvalConfigError(
                f"on Beam the toolkit engine computes every metric itself and does not support "
                f"{engine_mod.describe_unsupported(unsupported)}: run without beam_pipeline_args, or with engine='tfma'")
        self.planned = planned
        by_pass: dict[tuple[str, bool, str], list] = {}
        for item in planned:
            by_pass.setdefault((item.model.name, item.weighted, item.sub_key), []).append(item)
        specs = {m.name: m for m in config.model_specs}
        self.passes = [_Pass(specs[name], weighted, items) for (name, weighted, _), items in by_pass.items()]
        ci = config.options.compute_confidence_intervals
        self.resamples = engine_mod.NUM_SAMPLES if ci else 0
        self.poisson = config.options.confidence_interval_method == "POISSON_BOOTSTRAP"
        self.seed = 0 if seed is None else int(seed)

    def columns(self) -> list[str]:
        """Columns a batch must hold (and a row's resampling weights are hashed from)."""
        return resampling.evaluated_columns(self.config)


# ---------------------------------------------------------------- worker side


def batch_statistics(frame: pd.DataFrame, plan: BeamPlan) -> list[tuple[tuple, dict]]:
    """Additive statistics of one batch: ``(slice key, accumulator)`` per slice it touches,
    and one meta accumulator (rows dropped per spec for missing values, logits counts)."""
    if frame.index.has_duplicates or not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index(drop=True)
    multiclass = [s.name for s in plan.config.model_specs
                  if len(frame) and isinstance(frame[s.prediction_key].iloc[0], (list, np.ndarray))]
    if multiclass:
        raise EvalConfigError("on Beam the toolkit engine evaluates one score per example; class-score "
                              f"(multi-class) predictions of model {multiclass[0]!r} are evaluated in "
                              "process: run without beam_pipeline_args")
    engine_mod.check_model_columns(frame, plan.config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = engine_mod.logger.disabled
        engine_mod.logger.disabled = True
        try:
            engine_mod.check_values(frame, plan.planned)
        finally:
            engine_mod.logger.disabled = previous
    slice_set = build_slices(frame, plan.specs)
    spec_index = {id(spec): i for i, spec in enumerate(plan.specs)}
    multipliers = resample_weights(frame, plan)
    samples = 1 + len(multipliers)
    accs: list[dict] = [{"size": s.size, "spec": spec_index[id(s.spec)], "passes": []} for s in slice_set.slices]
    outside: dict[str, list] = {}
    for p in plan.passes:
        labels = engine_mod.numeric_column(frame, p.label_key, "label")
        predictions = engine_mod.numeric_column(frame, p.prediction_key, "prediction")
        weights = (engine_mod.numeric_column(frame, p.weight_key, "example weight") if p.weight_key
                   else np.ones(len(frame)))
        if p.binary:
            out = (predictions < 0) | (predictions > 1)
            if out.any():
                outside[p.prediction_key] = [int(out.sum()), len(out), float(predictions.min()),
                                             float(predictions.max())]
        stats_plan = StatsPlan(slice_set.incidence, labels, predictions, weights, p.thresholds, [],
                               p.binary, p.errors)
        stats = stats_plan.compute([None] + multipliers)
        hists = {num: _histogram(slice_set.incidence, labels, predictions, weights, multipliers, num)
                 for num in p.aucs}
        curves = {span: plots.histograms(slice_set.incidence.rows, slice_set.incidence.group,
                                         slice_set.incidence.n_groups, labels, predictions, weights, *span)
                  for span in p.spans}
        for g, acc in enumerate(accs):
            entry = {name: getattr(stats, name)[:, g].copy() for name in _SCALARS + _MATRICES}
            entry["auc"] = {num: (hist[0][g], hist[1][g], hist[2][g]) for num, hist in hists.items()}
            entry["plots"] = {span: histograms[g] for span, histograms in curves.items()}
            acc["passes"].append(entry)
        assert all(len(a["passes"][-1]["wsum"]) == samples for a in accs)
    out_pairs = [(("slice", s.key), acc) for s, acc in zip(slice_set.slices, accs)]
    meta = {"missing": {plan.specs.index(next(sp for sp in plan.specs if sp.describe() == d)): n
                        for d, n in slice_set.missing_values.items()},
            "outside": outside, "rows": len(frame)}
    out_pairs.append((_META, meta))
    return out_pairs


def _histogram(incidence: Incidence, labels, predictions, weights, multipliers, num: int):
    """Per slice: occupied re-binned AUC buckets, weighted positives and totals per sample."""
    rows, group = incidence.rows, incidence.group
    width = num - 1
    key = group * width + tfma_bucket_map(num)[tfma_histogram_bucket(predictions[rows])]
    unique, inverse = np.unique(key, return_inverse=True)
    w, y = weights[rows], labels[rows]
    pos, tot = [], []
    for m in [None] + list(multipliers):
        ws = w if m is None else w * m[rows]
        pos.append(np.bincount(inverse, weights=ws * y, minlength=len(unique)))
        tot.append(np.bincount(inverse, weights=ws, minlength=len(unique)))
    pos, tot = np.stack(pos), np.stack(tot)
    entry_group = unique // width
    bounds = np.searchsorted(entry_group, np.arange(incidence.n_groups + 1))
    buckets, positives, totals = [], [], []
    for g in range(incidence.n_groups):
        a, b = bounds[g], bounds[g + 1]
        buckets.append(unique[a:b] % width)
        positives.append(pos[:, a:b])
        totals.append(tot[:, a:b])
    return buckets, positives, totals


def resample_weights(frame: pd.DataFrame, plan: BeamPlan) -> list[np.ndarray]:
    """Per-example bootstrap (Poisson(1)) or jackknife multipliers, the in-memory engine's:
    from a hash of the example's evaluated columns and the seed, so the same on any runner
    and batching."""
    if not plan.resamples:
        return []
    method = "POISSON_BOOTSTRAP" if plan.poisson else "JACKKNIFE"
    return resampling.resample_weights(frame, plan.columns(), method, plan.seed, plan.resamples)


def merge(left: dict | None, right: dict | None) -> dict | None:
    """The sum of two accumulators (slice or meta)."""
    if left is None:
        return right
    if right is None:
        return left
    if "passes" not in left:
        missing = dict(left["missing"])
        for k, v in right["missing"].items():
            missing[k] = missing.get(k, 0) + v
        outside = {k: list(v) for k, v in left["outside"].items()}
        for k, (n, total, lo, hi) in right["outside"].items():
            if k in outside:
                a = outside[k]
                outside[k] = [a[0] + n, a[1] + total, min(a[2], lo), max(a[3], hi)]
            else:
                outside[k] = [n, total, lo, hi]
        return {"missing": missing, "outside": outside, "rows": left["rows"] + right["rows"]}
    passes = []
    for a, b in zip(left["passes"], right["passes"]):
        entry = {name: a[name] + b[name] for name in _SCALARS + _MATRICES}
        entry["auc"] = {num: _merge_histogram(a["auc"][num], b["auc"][num]) for num in a["auc"]}
        entry["plots"] = {span: plots.merge(a["plots"][span], b["plots"][span]) for span in a["plots"]}
        passes.append(entry)
    return {"size": left["size"] + right["size"], "spec": min(left["spec"], right["spec"]), "passes": passes}


def _merge_histogram(a, b):
    buckets = np.concatenate([a[0], b[0]])
    unique, inverse = np.unique(buckets, return_inverse=True)
    pos = np.zeros((a[1].shape[0], len(unique)))
    tot = np.zeros_like(pos)
    np.add.at(pos, (slice(None), inverse), np.concatenate([a[1], b[1]], axis=1))
    np.add.at(tot, (slice(None), inverse), np.concatenate([a[2], b[2]], axis=1))
    return unique, pos, tot


# ---------------------------------------------------------------- the pipeline


def _combine_fn():
    import apache_beam as beam

    class AddStatistics(beam.CombineFn):
        """Per-slice statistics are sums: merging is addition."""

        def create_accumulator(self):
            return None

        def add_input(self, accumulator, element):
            return merge(accumulator, element)

        def merge_accumulators(self, accumulators):
            out = None
            for acc in accumulators:
                out = merge(out, acc)
            return out

        def extract_output(self, accumulator):
            return accumulator

    return AddStatistics()


#: rows evaluated so far per pipeline (its token), counted by the workers of this process
_ROWS: dict[str, int] = {}
_ROWS_LOCK = threading.Lock()


def _count_rows(token: str, rows: int, total: int | None) -> None:
    """Add one batch's rows to the live progress line (``rows 120,000/405,000``). Workers in
    other processes (a portable or remote runner) report nothing: no one listens there."""
    with _ROWS_LOCK:
        done = _ROWS[token] = _ROWS.get(token, 0) + rows
    progress.report("evaluated rows", done, total)


def _statistics_dofn(plan: BeamPlan, prepare: Any, token: str = "", total: int | None = None):
    import apache_beam as beam

    class Statistics(beam.DoFn):
        """One batch to per-slice statistics; ``prepare`` (the model) is set up once per worker."""

        def __init__(self, plan, prepare):
            self._plan = plan
            self._prepare = prepare
            self._token, self._total = token, total

        def setup(self):
            if self._prepare is not None and hasattr(self._prepare, "setup"):
                self._prepare.setup()

        def process(self, batch):
            frame = self._prepare(batch) if self._prepare is not None else batch
            if len(frame):
                yield from batch_statistics(frame, self._plan)
            _count_rows(self._token, len(frame), self._total)

    return Statistics(plan, prepare)


def _write(records, path: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as handle:
        handle.write(pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL))


def _temp_root(options, tmp_dir: str | None) -> str:
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    cloud = options.view_as(GoogleCloudOptions)
    return cloud.temp_location or cloud.staging_location or tmp_dir or tempfile.gettempdir()


def run_statistics(source: pd.DataFrame | Callable, plan: BeamPlan, beam_pipeline_args: Sequence[str],
                   prepare: Any = None, tmp_dir: str | None = None,
                   label: str = "the evaluation on Beam",
                   total_rows: int | None = None) -> list[tuple[tuple, dict]]:
    """Run the pipeline; the combined ``(key, accumulator)`` pairs, read back in the driver.

    ``source`` is a DataFrame (split into batches) or ``read(pipeline) -> PCollection`` of
    batches that ``prepare(batch) -> DataFrame`` turns into evaluated frames in the workers.
    The pipeline runs through the components' one Beam entry point, so a runner failure is
    one line naming the runner and its flags (``label`` names the work). ``total_rows``
    (known for a DataFrame) is the total of the live progress line's row count.
    """
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from toolkit.components._beam import beam_pipeline

    options = PipelineOptions(list(beam_pipeline_args))
    token = uuid.uuid4().hex
    path = FileSystems.join(_temp_root(options, tmp_dir), f"toolkit-beam-eval-{token}.pickle")
    if isinstance(source, pd.DataFrame):
        total_rows = len(source)
    progress.report("evaluating on Beam", 0, total_rows)
    try:
        with beam_pipeline(beam_pipeline_args, label) as pipeline:
            _statistics_pipeline(pipeline, source, plan, prepare, token, total_rows, path)
    finally:
        with _ROWS_LOCK:
            _ROWS.pop(token, None)
    try:
        with FileSystems.open(path) as handle:
            return pickle.loads(handle.read())
    finally:
        FileSystems.delete([path])


def _statistics_pipeline(pipeline, source, plan: BeamPlan, prepare: Any, token: str,
                         total_rows: int | None, path: str) -> None:
    """The batches, their per-slice statistics added up, written to ``path``."""
    import apache_beam as beam

    if isinstance(source, pd.DataFrame):
        frames = [source.iloc[i:i + FRAME_BATCH_ROWS] for i in range(0, len(source), FRAME_BATCH_ROWS)]
        batches = pipeline | "Batches" >> beam.Create(frames or [source])
    else:
        batches = source(pipeline)
    _ = (batches
         | "SliceStatistics" >> beam.ParDo(_statistics_dofn(plan, prepare, token, total_rows))
         | "AddPerSlice" >> beam.CombinePerKey(_combine_fn())
         | "Gather" >> beam.combiners.ToList()
         | "Write" >> beam.Map(_write, path))


# ---------------------------------------------------------------- driver side


def _representatives(num: int) -> np.ndarray:
    """A score in each re-binned AUC bucket of ``num`` thresholds (index -> score)."""
    mapping = tfma_bucket_map(num)
    raw = np.arange(len(mapping))
    scores = (raw - 0.5) / 10000.0
    scores[0], scores[-1] = -1.0, 2.0
    assert np.array_equal(tfma_histogram_bucket(scores), raw)
    first = np.full(num - 1, np.nan)
    for b in raw[::-1]:
        first[mapping[b]] = scores[b]
    return first


def _curves(slices: list[dict], index: int, num: int, samples: int):
    """Point and resampled curves from summed histograms, by StatsPlan on pseudo-rows."""
    rep = _representatives(num)
    groups, preds, labels, weights = [], [], [], []
    for g, acc in enumerate(slices):
        buckets, pos, tot = acc["passes"][index]["auc"][num]
        for label, values in ((1.0, pos), (0.0, tot - pos)):
            groups.append(np.full(len(buckets), g, np.int64))
            preds.append(rep[buckets])
            labels.append(np.full(len(buckets), label))
            weights.append(values)
    group = np.concatenate(groups)
    n = len(group)
    weights = np.concatenate(weights, axis=1)
    plan = StatsPlan(Incidence(np.arange(n), group, len(slices)), np.concatenate(labels),
                     np.concatenate(preds), np.ones(n), [], [num], True, False)
    point = plan.compute([weights[0]]).curves[num]
    resampled = plan.compute(list(weights[1:])).curves[num] if samples > 1 else None
    return point, resampled


def finish(records: list[tuple[tuple, dict]], plan: BeamPlan, *, baseline_slice: Any = None,
           rubber_stamp: bool = False, engine_name: str = "toolkit"):
    """The EvalResult from combined statistics, by the engine's own finalisation."""
    config = plan.config
    meta = None
    found: dict[tuple, dict] = {}
    for key, acc in records:
        if key == _META:
            meta = merge(meta, acc)
        else:
            found[key[1]] = acc
    meta = meta or {"missing": {}, "outside": {}, "rows": 0}
    if not found:
        raise InvalidValuesError("the evaluation on Beam read no examples")
    _warn_outside(meta["outside"], plan)

    def order(item):
        key, acc = item
        spec = plan.specs[acc["spec"]]
        columns = set(spec.feature_keys)
        return acc["spec"], tuple(v for c, v in key if c in columns)

    ordered = sorted(found.items(), key=order)
    groups = [Slice(key, plan.specs[acc["spec"]], acc["size"], g) for g, (key, acc) in enumerate(ordered)]
    accs = [acc for _, acc in ordered]
    empty = []
    for spec in plan.specs:
        if not spec.feature_keys:
            key = tuple(sorted(((c, slice_value(v)) for c, v in spec.feature_values), key=lambda kv: kv[0]))
            if key not in found:
                empty.append(EmptySlice(key, spec))
    samples = 1 + plan.resamples
    computed: dict = {}
    keys: list = []
    for index, p in enumerate(plan.passes):
        arrays = {name: np.stack([acc["passes"][index][name] for acc in accs], axis=1)
                  for name in _SCALARS + _MATRICES}
        thresholds = np.unique(np.asarray(p.thresholds, float))
        for name in _MATRICES:
            if arrays[name].ndim == 2:  # no thresholds: (samples, slices) -> (samples, slices, 0)
                arrays[name] = arrays[name].reshape(samples, len(accs), 0)
        curves = {num: _curves(accs, index, num, samples) for num in p.aucs}

        def stats(part: slice, which: int) -> Stats:
            return Stats(*(arrays[n][part] for n in _SCALARS), thresholds,
                         *(arrays[n][part] for n in _MATRICES),
                         {num: c[which] for num, c in curves.items()})

        point = stats(slice(0, 1), 0)
        resampled = stats(slice(1, None), 1) if samples > 1 else None
        for item in p.items:
            if item.metric.kind in plots.PLOT_KINDS:
                span = plots.histogram_span(item.metric)
                key = engine_mod.MetricKey(item.metric.name, item.model.name, False, bool(p.weighted), item.sub_key)
                if key not in computed:
                    keys.append(key)
                computed[key] = plots.plot_entry(item.metric, [acc["passes"][index]["plots"][span] for acc in accs])
                continue
            for key, entry in engine_mod.metric_values(item, point, resampled, p.weighted):
                if key not in computed:
                    keys.append(key)
                computed[key] = entry
    engine_mod.add_model_diffs(config, computed, keys)
    slices = engine_mod.assemble_slices(config, groups, computed, keys)
    missing = {plan.specs[i].describe(): n for i, n in sorted(meta["missing"].items())}
    return engine_mod.finish_result(config, slices, empty, engine_name, baseline_slice, rubber_stamp,
                              missing_values=missing)


def _warn_outside(outside: dict, plan: BeamPlan) -> None:
    for column, (n, total, lo, hi) in outside.items():
        names = []
        for item in plan.planned:
            if item.metric.needs_binary and item.model.prediction_key == column and item.metric.class_name not in names:
                names.append(item.metric.class_name)
        message = (f"toolkit.evaluate: prediction column {column!r} has {n:,} of {total:,} values outside "
                   f"[0, 1] (from {lo:.4g} to {hi:.4g}): they look like logits, not probabilities. As TFMA "
                   f"does, {', '.join(names)} read them as probabilities; apply a sigmoid to evaluate "
                   "probabilities")
        warnings.warn(message, stacklevel=3)
        engine_mod.logger.warning(message)


def evaluate_on_beam(source: pd.DataFrame | Callable, eval_config: Any, beam_pipeline_args: Sequence[str], *,
                     prepare: Any = None, baseline: str | None = None, baseline_slice: Any = None,
                     rubber_stamp: bool = False, random_seed: int | None = None,
                     tmp_dir: str | None = None, label: str = "the evaluation on Beam",
                     total_rows: int | None = None):
    """:func:`toolkit.evaluate` on a Beam runner, with the same numbers.

    Args:
      source: a DataFrame as ``toolkit.evaluate`` takes it, or ``read(pipeline)`` returning a
        PCollection of batches (read in the workers).
      eval_config: a ``tfma.EvalConfig`` or its dict / JSON / text-proto form.
      beam_pipeline_args: the pipeline's arguments (runner, workers, temp_location, ...).
      prepare: with a ``read`` source, an object whose ``setup()`` runs once per worker (load
        the model) and whose ``__call__(batch)`` returns the batch's evaluated DataFrame.
      baseline: name of a column holding a baseline model's predictions.
      tmp_dir: where the combined statistics are handed back when the options give no
        ``--temp_location``; must be shared with the workers.
      label: names the work in a runner failure's message.
      total_rows: with a ``read`` source, how many rows it holds, if known: the total of the
        live progress line's row count (a DataFrame's is its length).

    Metrics the engine lacks (computed by TFMA in process) and class-score predictions are
    refused with one line; run them without ``beam_pipeline_args`` or with ``engine='tfma'``.
    """
    config = load_eval_config(eval_config)
    if baseline is not None:
        config = config_mod.with_baseline_predictions(config, baseline)
    if config.baseline is None and has_change_thresholds(config) and not rubber_stamp:
        raise EvalConfigError(
            "the EvalConfig has change thresholds but no baseline model: pass baseline=<column> or add a "
            "model_spec with is_baseline: true (or rubber_stamp=True on a first run)")
    if isinstance(source, pd.DataFrame):
        engine_mod.check_model_columns(source, config)
    plan = BeamPlan(config, random_seed)
    records = run_statistics(source, plan, beam_pipeline_args, prepare=prepare, tmp_dir=tmp_dir,
                             label=label, total_rows=total_rows)
    return finish(records, plan, baseline_slice=baseline_slice, rubber_stamp=rubber_stamp)
