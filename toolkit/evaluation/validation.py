"""Threshold checks per slice, following TFMA 0.47's ``metrics_validator``.

Rules reproduced from TFMA:
- a threshold without slice restriction applies to every single (non-cross) slice;
  a per-slice threshold to the slices its SlicingSpec matches; a cross-slice
  threshold to the cross slices its CrossSlicingSpec matches;
- a value threshold passes when ``lower <= value <= upper`` (NaN fails);
- a change threshold compares the candidate minus the baseline model
  (``absolute``) and that difference over the baseline value (``relative``);
- a threshold whose metric is absent from a slice (e.g. a slice below
  ``min_slice_size``) fails with "Metric not found.";
- a config without any threshold is not blessed (``missing_thresholds``), and a
  threshold whose slicing spec matched no slice fails (``missing_slices``).

One deliberate difference: TFMA 0.47.1 never matches ``MetricsSpec.thresholds``
(keyed by metric name) to the metrics it computes, because its lookup key carries
``example_weighted=None`` while computed keys carry True/False, so every such
threshold fails with "Metric not found.". The engine applies them to the metric
of that name, which is what the config asks for.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd

from toolkit.evaluation.config import (
    ChangeThreshold,
    CrossSlicingSpec,
    EvalConfig,
    SliceRestriction,
    SlicingSpec,
    Threshold,
    ValueThreshold,
    parse_cross_slicing_spec,
    parse_slicing_spec,
    parse_thresholds,
)
from toolkit.evaluation.metrics import metric_name
from toolkit.evaluation.slicing import slice_display
from toolkit.evaluation.values import MetricKey, SliceMetrics

METRIC_NOT_FOUND = "Metric not found."


@dataclass(frozen=True)
class ThresholdRule:
    """One (metric name, slice restriction, threshold) triple, in TFMA's order."""

    metric_name: str
    restriction: SliceRestriction
    threshold: Threshold
    model_names: tuple[str, ...] = ()
    #: TFMA applies a threshold of a binarized MetricsSpec to the metric under each of its sub keys.
    sub_keys: tuple[str, ...] = ("",)


def threshold_rules(config: EvalConfig) -> list[ThresholdRule]:
    """All thresholds of the config, in the order TFMA's validator visits them."""
    rules: list[ThresholdRule] = []

    sub_keys: tuple[str, ...] = ("",)

    def add(name: str, restriction: SliceRestriction, threshold_dict: Mapping | None, models: tuple[str, ...]):
        for threshold in parse_thresholds(threshold_dict):
            rule = ThresholdRule(name, restriction, threshold, models, sub_keys)
            if rule not in rules:
                rules.append(rule)

    for spec in config.metrics_specs:
        sub_keys = spec.sub_keys
        for name, thr in (spec.raw.get("thresholds") or {}).items():
            add(name, None, thr, spec.model_names)
        for name, per_slice in (spec.raw.get("per_slice_thresholds") or {}).items():
            for item in per_slice.get("thresholds", []):
                for slicing in item.get("slicing_specs", []):
                    add(name, parse_slicing_spec(slicing), item.get("threshold"), spec.model_names)
        for name, cross in (spec.raw.get("cross_slice_thresholds") or {}).items():
            for item in cross.get("thresholds", []):
                for crossing in item.get("cross_slicing_specs", []):
                    add(name, parse_cross_slicing_spec(crossing), item.get("threshold"), spec.model_names)
        for metric in spec.metrics:
            name = metric_name(metric)
            add(name, None, metric.raw.get("threshold"), spec.model_names)
            for item in metric.raw.get("per_slice_thresholds", []) or []:
                for slicing in item.get("slicing_specs", []):
                    add(name, parse_slicing_spec(slicing), item.get("threshold"), spec.model_names)
            for item in metric.raw.get("cross_slice_thresholds", []) or []:
                for crossing in item.get("cross_slicing_specs", []):
                    add(name, parse_cross_slicing_spec(crossing), item.get("threshold"), spec.model_names)
    return rules


def has_change_thresholds(config: EvalConfig) -> bool:
    return any(isinstance(rule.threshold, ChangeThreshold) for rule in threshold_rules(config))


@dataclass
class ThresholdCheck:
    """One threshold checked on one slice."""

    slice_key: tuple
    metric_key: MetricKey
    threshold: Threshold
    restriction: SlicingSpec | CrossSlicingSpec | None
    value: float | None
    passed: bool
    message: str = ""

    @property
    def slice(self) -> str:
        return slice_display(self.slice_key)

    @property
    def metric(self) -> str:
        return self.metric_key.display_name

    @property
    def sub_key(self) -> str:
        return self.metric_key.sub_key


@dataclass
class Validation:
    """Pass/fail of every threshold on every slice; ``ok`` is the blessing decision."""

    ok: bool
    checks: list[ThresholdCheck] = field(default_factory=list)
    missing_thresholds: bool = False
    missing_slices: list[SlicingSpec] = field(default_factory=list)
    missing_cross_slices: list[CrossSlicingSpec] = field(default_factory=list)
    slicing_details: list[tuple[SlicingSpec | CrossSlicingSpec, int]] = field(default_factory=list)
    rubber_stamp: bool = False

    @property
    def failures(self) -> list[ThresholdCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per (slice, threshold) check, failures first."""
        rows = [
            {
                "slice": c.slice,
                "slice_key": c.slice_key,
                "metric": c.metric,
                "sub_key": c.sub_key,
                "model": c.metric_key.model_name,
                "threshold": c.threshold.describe(),
                "kind": "change" if isinstance(c.threshold, ChangeThreshold) else "value",
                "applies_to": _describe_restriction(c.restriction),
                "value": math.nan if c.value is None else c.value,
                "passed": c.passed,
                "message": c.message,
            }
            for c in self.checks
        ]
        columns = ["slice", "slice_key", "metric", "model", "threshold", "kind", "applies_to", "value",
                   "passed", "message", "sub_key"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.sort_values("passed", kind="stable").reset_index(drop=True)

    def summary(self) -> str:
        if self.missing_thresholds:
            return "not blessed: the EvalConfig has no thresholds"
        lines = [f"{'blessed' if self.ok else 'not blessed'}: {len(self.checks)} checks, "
                 f"{len(self.failures)} failed"]
        for check in self.failures:
            shown = "missing" if check.value is None else f"{check.value:.6g}"
            metric = f"{check.metric} ({check.sub_key})" if check.sub_key else check.metric
            lines.append(f"  {check.slice}: {metric} = {shown}, needs {check.threshold.describe()}"
                         + (f" ({check.message})" if check.message else ""))
        for spec in self.missing_slices:
            lines.append(f"  no slice matched slicing spec {spec.describe()!r} of a per-slice threshold")
        for cross in self.missing_cross_slices:
            lines.append(f"  no cross slice matched {cross.baseline_spec.describe()!r} of a cross-slice threshold")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Validation({self.summary()})"


def _describe_restriction(restriction) -> str:
    if restriction is None:
        return "every slice"
    if isinstance(restriction, SlicingSpec):
        return restriction.describe()
    comparisons = ", ".join(s.describe() for s in restriction.slicing_specs) or "every other slice"
    return f"{restriction.baseline_spec.describe()} vs {comparisons}"


def _applies(rule: ThresholdRule, key: tuple, is_cross: bool, found: bool) -> bool:
    restriction = rule.restriction
    if restriction is None:
        return not is_cross
    if isinstance(restriction, SlicingSpec):
        if is_cross:
            return False
        # TFMA checks the slice spec only for metrics it found in the slice.
        return restriction.is_slice_applicable(key) if found else True
    return is_cross and restriction.is_applicable(key)


def _check(threshold: Threshold, value: float, baseline_value: float | None) -> bool:
    if isinstance(threshold, ValueThreshold):
        lower = -math.inf if threshold.lower_bound is None else threshold.lower_bound
        upper = math.inf if threshold.upper_bound is None else threshold.upper_bound
        return value >= lower and value <= upper
    higher = threshold.direction == "HIGHER_IS_BETTER"
    ok = True
    if threshold.absolute is not None:
        ok = value >= threshold.absolute if higher else value <= threshold.absolute
    if threshold.relative is not None:
        if baseline_value is None or math.isclose(baseline_value, 0.0):
            ratio = math.nan
        else:
            ratio = value / baseline_value
        ok = ok and (ratio >= threshold.relative if higher else ratio <= threshold.relative)
    return ok


def validate(
    slices: Sequence[SliceMetrics],
    rules: Sequence[ThresholdRule],
    candidate: str,
    baseline: str | None,
    weighted: bool,
    rubber_stamp: bool = False,
) -> Validation:
    checks: list[ThresholdCheck] = []
    details: dict[SlicingSpec | CrossSlicingSpec, int] = {}
    failed_any = False
    for sm in slices:
        if sm.empty:
            continue
        by_name = {(k.name, k.is_diff, k.sub_key): k for k in sm.metrics if k.model_name == candidate}
        weighted_key = {(k.name, k.is_diff, k.sub_key): k for k in sm.metrics
                        if k.model_name == candidate and bool(k.example_weighted) == weighted}
        by_name.update(weighted_key)
        reported: dict[MetricKey, set] = {}
        for rule, sub_key in ((r, sk) for r in rules for sk in r.sub_keys):
            if rule.model_names and candidate not in rule.model_names:
                continue
            is_change = isinstance(rule.threshold, ChangeThreshold)
            key = by_name.get((rule.metric_name, is_change, sub_key))
            found = key is not None and sm.metrics.get(key) is not None
            if not _applies(rule, sm.key, sm.is_cross, found):
                continue
            key = key or MetricKey(rule.metric_name, candidate, is_change, weighted, sub_key)
            seen = reported.setdefault(key, set())
            identity = repr(rule.threshold)
            if not found:
                if identity in seen:
                    continue
                seen.add(identity)
                checks.append(ThresholdCheck(sm.key, key, rule.threshold, rule.restriction, None, False,
                                             METRIC_NOT_FOUND + (f" {sm.error}" if sm.error else "")))
                failed_any = True
                continue
            value = sm.metrics[key]
            restriction_key = rule.restriction if rule.restriction is not None else SlicingSpec()
            details[restriction_key] = details.get(restriction_key, 0) + 1
            if value.array:
                message = (f"{key.display_name} has one value per threshold {value.thresholds}; "
                           "give it a single threshold to set a bound on it")
                checks.append(ThresholdCheck(sm.key, key, rule.threshold, rule.restriction, None, False, message))
                failed_any = True
                continue
            number = float(value.value)
            base = None
            if is_change and baseline is not None:
                base_value = sm.metrics.get(key.baseline_key(baseline))
                base = None if base_value is None else float(base_value.value)
            passed = _check(rule.threshold, number, base)
            if not passed and identity in seen:
                continue
            if not passed:
                seen.add(identity)
                failed_any = True
            checks.append(ThresholdCheck(sm.key, key, rule.threshold, rule.restriction, number, passed))
    missing_slices: list[SlicingSpec] = []
    missing_cross: list[CrossSlicingSpec] = []
    for rule in rules:
        restriction = rule.restriction if rule.restriction is not None else SlicingSpec()
        if restriction in details or restriction in missing_slices or restriction in missing_cross:
            continue
        if isinstance(restriction, CrossSlicingSpec):
            missing_cross.append(restriction)
        else:
            missing_slices.append(restriction)
    ok = not failed_any and not missing_slices and not missing_cross
    missing_thresholds = not rules
    if missing_thresholds:
        ok = rubber_stamp
    return Validation(
        ok=ok,
        checks=checks,
        missing_thresholds=missing_thresholds and not rubber_stamp,
        missing_slices=missing_slices,
        missing_cross_slices=missing_cross,
        slicing_details=list(details.items()),
        rubber_stamp=rubber_stamp,
    )
