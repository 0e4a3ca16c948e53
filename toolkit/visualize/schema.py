"""Schema and anomalies views (the offline equivalents of TFDV's display_schema/anomalies)."""
from __future__ import annotations

from typing import Any, Mapping

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from toolkit.artifacts import ANOMALIES_FILE
from toolkit.errors import ToolkitError
from toolkit.visualize.html import (BAD, GOOD, HEADING, NOTE, WARN, View, badge, esc,
                                    escape, fmt_num, new_uid, plain, root, table, tag)
from toolkit.visualize.reading import splits_with, toolkit_artifact

DOMAIN_VALUES_SHOWN = 20


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

def artifact_anomalies(source: Any) -> dict[str, anomalies_pb2.Anomalies]:
    """Anomalies per split of an ExampleAnomalies artifact (the toolkit's, TFX's or any object
    with its ``uri``), read by ``ExampleAnomalies.load``."""
    artifact = toolkit_artifact(source, "ExampleAnomalies")
    splits = splits_with(artifact, ANOMALIES_FILE)
    if not splits:
        raise ToolkitError(f"no anomalies in {artifact.uri!r}: expected "
                           "Split-<name>/SchemaDiff.pb files")
    return {split: artifact.load(split) for split in splits}


# --------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------

def _presence(feature: schema_pb2.Feature) -> str:
    if feature.HasField("presence"):
        return "required" if feature.presence.min_fraction >= 1.0 else "optional"
    return "–"


def _valency(feature: schema_pb2.Feature) -> str:
    if feature.HasField("shape"):
        dims = [d.size for d in feature.shape.dim]
        return "single" if dims == [1] else "shape [" + ", ".join(str(d) for d in dims) + "]"
    if feature.HasField("value_count"):
        low, high = feature.value_count.min, feature.value_count.max
        if low == high == 1:
            return "single"
        return f"{low}–{high if high else '∞'} values"
    if feature.HasField("value_counts"):
        return "nested " + ", ".join(f"{vc.min}–{vc.max or '∞'}"
                                     for vc in feature.value_counts.value_count)
    return "–"


def _range(low_set: bool, low: float, high_set: bool, high: float) -> str:
    return f"[{fmt_num(low) if low_set else '-∞'}, {fmt_num(high) if high_set else '∞'}]"


def _domain(feature: schema_pb2.Feature) -> str:
    kind = feature.WhichOneof("domain_info")
    if kind is None:
        return "–"
    if kind == "domain":
        return f"'{esc(feature.domain, 80)}'"
    if kind == "int_domain":
        d = feature.int_domain
        text = _range(d.HasField("min"), d.min, d.HasField("max"), d.max)
        return escape(text + (" categorical" if d.is_categorical else ""))
    if kind == "float_domain":
        d = feature.float_domain
        return escape(_range(d.HasField("min"), d.min, d.HasField("max"), d.max))
    if kind == "string_domain":
        return _values_preview(list(feature.string_domain.value))
    return escape(kind.replace("_", " "))


def _values_preview(values: list[str]) -> str:
    shown = ", ".join(f"'{esc(v, 60)}'" for v in values[:DOMAIN_VALUES_SHOWN])
    more = len(values) - DOMAIN_VALUES_SHOWN
    return shown + (tag("span", f" … {more:,} more", NOTE) if more > 0 else "")


def _comparators(feature: schema_pb2.Feature) -> str:
    parts = []
    for label, comparator in (("drift", feature.drift_comparator),
                              ("skew", feature.skew_comparator)):
        if comparator.infinity_norm.threshold:
            parts.append(f"{label} L∞ ≤ {fmt_num(comparator.infinity_norm.threshold)}")
        if comparator.jensen_shannon_divergence.threshold:
            parts.append(f"{label} JS ≤ "
                         f"{fmt_num(comparator.jensen_shannon_divergence.threshold)}")
    return escape(", ".join(parts)) or "–"


def _feature_notes(feature: schema_pb2.Feature) -> str:
    notes = []
    if feature.deprecated or feature.lifecycle_stage in (schema_pb2.DEPRECATED,
                                                         schema_pb2.DISABLED):
        notes.append("deprecated")
    if feature.in_environment:
        notes.append("only in " + ", ".join(feature.in_environment))
    if feature.not_in_environment:
        notes.append("not in " + ", ".join(feature.not_in_environment))
    return tag("div", esc("; ".join(notes), 200), NOTE) if notes else ""


def schema_view(schema: schema_pb2.Schema) -> View:
    """Features with type, presence, valency and domain; string domains with their values."""
    rows = []
    text = [f"Schema ({len(schema.feature)} features)"]
    for f in schema.feature:
        type_name = schema_pb2.FeatureType.Name(f.type)
        rows.append([f'<b title="{esc(f.name, 1000)}">{esc(f.name, 120)}</b>{_feature_notes(f)}',
                     escape(type_name), _presence(f), escape(_valency(f)), _domain(f),
                     _comparators(f)])
        domain = f.domain if f.WhichOneof("domain_info") == "domain" else ""
        text.append(f"  {plain(f.name, 60)}: {type_name}, {_presence(f)}, {_valency(f)}"
                    + (f", domain {plain(domain, 60)!r}" if domain else ""))
    body = table(["Feature", "Type", "Presence", "Valency", "Domain", "Drift / skew"], rows)
    if schema.string_domain:
        text.append("String domains:")
        domain_rows = []
        for d in schema.string_domain:
            domain_rows.append([f"<b>{esc(d.name, 120)}</b>", fmt_num(len(d.value)),
                                _values_preview(list(d.value))])
            text.append(f"  {plain(d.name, 60)}: {len(d.value)} values")
        body += tag("div", "String domains", HEADING) + table(
            ["Domain", "Values", "Values (first 20)"], domain_rows, numeric=[1])
    for label, items in (("Sparse features", [s.name for s in schema.sparse_feature]),
                         ("Weighted features", [w.name for w in schema.weighted_feature])):
        if items:
            body += tag("div", escape(label), HEADING) + tag(
                "div", ", ".join(esc(i, 120) for i in items))
    if schema.default_environment:
        body += tag("div", "Environments: " + esc(", ".join(schema.default_environment), 500),
                    NOTE)
    html = root(body, new_uid(), "Schema", escape(f"{len(schema.feature)} features"))
    return View(html, "\n".join(text), "Schema")


# --------------------------------------------------------------------------
# Anomalies
# --------------------------------------------------------------------------

_SEVERITY_COLOUR = {"ERROR": BAD, "WARNING": WARN}
#: the row of anomalies about a split as a whole (its number of examples), not one feature
_DATASET_ROW = "(dataset)"


def _anomaly_count(anomalies: anomalies_pb2.Anomalies) -> int:
    dataset = 1 if anomalies.HasField("dataset_anomaly_info") else 0
    return len(anomalies.anomaly_info) + dataset + (1 if anomalies.data_missing else 0)


def _anomaly_row(name: str, info: anomalies_pb2.AnomalyInfo) -> list[str]:
    """One table row; each reason shows its type name, the name ``allowed_anomalies`` takes."""
    severity = anomalies_pb2.AnomalyInfo.Severity.Name(info.severity)
    reasons = [r for r in info.reason] or [None]
    short = "<br>".join(_reason_short(r) if r else esc(info.short_description, 300)
                        for r in reasons)
    long = "<br>".join(esc(r.description if r else info.description, 1000) for r in reasons)
    return [f'<b title="{esc(name, 1000)}">{esc(name, 120)}</b>',
            badge(severity, _SEVERITY_COLOUR.get(severity, WARN)), short, long]


def _reason_short(reason: anomalies_pb2.AnomalyInfo.Reason) -> str:
    kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type)
    return esc(reason.short_description, 300) + " " + tag("span", escape(kind), NOTE)


def _anomaly_line(name: str, info: anomalies_pb2.AnomalyInfo) -> str:
    """The text form of one anomaly row, with the anomaly type names that
    ``allowed_anomalies`` takes, so a reader of a headless run's log can waive it."""
    severity = anomalies_pb2.AnomalyInfo.Severity.Name(info.severity)
    kinds = ", ".join(anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason)
    return (f"  {plain(name, 60)}: {severity} {plain(info.short_description, 120)}"
            f" - {plain(info.description, 300)}" + (f" [{kinds}]" if kinds else ""))


def _measurements(items: Any) -> str:
    parts = []
    for m in items:
        kind = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(m.type)
        over = m.threshold and m.value > m.threshold
        style = f"color:{BAD};font-weight:600" if over else ""
        parts.append(tag("div", escape(f"{kind} {m.value:.4g} (threshold {m.threshold:g})"),
                         style))
    return "".join(parts) or "–"


def _split_anomalies(split: str, anomalies: anomalies_pb2.Anomalies) -> tuple[str, list[str]]:
    heading = tag("div", f"Split {esc(split, 80)}", HEADING) if split else ""
    label = f"[{plain(split, 40)}] " if split else ""
    count = _anomaly_count(anomalies)
    if count == 0:
        body = tag("div", "✓ No anomalies found",
                   f"color:{GOOD};font-weight:600;margin:4px 0 8px 0")
        text = [f"{label}No anomalies found."]
    else:
        rows = [_anomaly_row(name, anomalies.anomaly_info[name])
                for name in sorted(anomalies.anomaly_info)]
        text = [f"{label}{count} anomal{'y' if count == 1 else 'ies'}:"]
        text += [_anomaly_line(name, anomalies.anomaly_info[name])
                 for name in sorted(anomalies.anomaly_info)]
        if anomalies.HasField("dataset_anomaly_info"):
            rows.append(_anomaly_row(_DATASET_ROW, anomalies.dataset_anomaly_info))
            text.append(_anomaly_line(_DATASET_ROW, anomalies.dataset_anomaly_info))
        if anomalies.data_missing:
            rows.append([f"<b>{escape(_DATASET_ROW)}</b>", badge("ERROR", BAD), "Data missing",
                         "The dataset is empty or missing."])
            text.append(f"  {_DATASET_ROW}: data missing")
        body = table(["Feature", "Severity", "Short description", "Description"], rows)
    if anomalies.drift_skew_info:
        rows = [[f"<b>{esc('.'.join(info.path.step), 120)}</b>",
                 _measurements(info.drift_measurements), _measurements(info.skew_measurements)]
                for info in anomalies.drift_skew_info]
        body += tag("div", "Drift and skew measurements", "font-weight:600;margin-top:4px")
        body += table(["Feature", "Drift", "Skew"], rows)
    return heading + body, text


def anomalies_view(anomalies_by_split: Mapping[str, anomalies_pb2.Anomalies]
                   | anomalies_pb2.Anomalies) -> View:
    """Anomalies per split, with a clear "No anomalies found" state for clean splits."""
    if isinstance(anomalies_by_split, anomalies_pb2.Anomalies):
        anomalies_by_split = {"": anomalies_by_split}
    parts, text = [], []
    total = 0
    for split, anomalies in anomalies_by_split.items():
        html, lines = _split_anomalies(split, anomalies)
        parts.append(html)
        text.extend(lines)
        total += _anomaly_count(anomalies)
    if not parts:
        parts.append(tag("div", "✓ No anomalies found", f"color:{GOOD};font-weight:600"))
        text.append("No anomalies found.")
    subtitle = "none found" if total == 0 else f"{total} found"
    html = root("".join(parts), new_uid(), "Anomalies", escape(subtitle))
    return View(html, "Anomalies: " + subtitle + "\n" + "\n".join(text), "Anomalies")
