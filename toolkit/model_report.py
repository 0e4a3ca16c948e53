"""The report of one pushed model version: a static HTML page beside the SavedModel.

What a reviewer asks of a model in production is already in the metadata store: the
data it was trained on (statistics, spans), the evaluation per slice and the
thresholds that blessed it, the infra-validation latency, the lineage from data to
push, and the parameters of every step. :func:`collect_report` walks the store's
lineage back from the push execution and gathers those into plain, JSON-able data;
:func:`render_page` turns them into one self-contained page (inline styles, no
script, no external URL, every value escaped), readable in any browser with scripts
off and months later without the store.

The Pusher writes the page (``toolkit-report.html``) and its data
(``toolkit-report.json``) into its hidden copy before the rename that publishes a
version, so a version appears with its report or not at all; a rollback writes a
fresh report for the version it re-publishes. This module sits beside the other
libraries, not among the views: a component may not import a view, so the page is
built here from the markup the views use too (:mod:`toolkit._markup`: escaping,
colours, tables); ``toolkit.visualize.model_report`` shows the same report inline in a
notebook.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from toolkit import storage
from toolkit._markup import BAD, GOOD, GRID, NOTE, TABLE, esc, table
from toolkit._text import error_line, one_line, show_controls

REPORT_FILE = "toolkit-report.html"
REPORT_DATA = "toolkit-report.json"
FORMAT = 1
#: how far the lineage walk goes back (executions), and how much of each part is shown
MAX_EXECUTIONS = 200
MAX_FEATURES = 100
MAX_METRIC_ROWS = 3000
MAX_PARAMETER_CHARS = 20000
INFRA_FIGURES = (("load_time_s", "load time", "s"), ("first_request_ms", "first request", "ms"),
                 ("latency_p50_ms", "latency p50", "ms"), ("latency_p99_ms", "latency p99", "ms"),
                 ("batch_latency_ms", "batch latency", "ms"), ("num_requests", "requests", ""))
SECTIONS = ("Model", "Training data", "Evaluation", "Infra validation", "Lineage",
            "Parameters")


# -- gathering ----------------------------------------------------------------------
def collect_report(store: Any, record: dict[str, Any], version: int | None = None,
                   destination: str | None = None) -> dict[str, Any]:
    """The report's data for a push described by ``record`` (what ``toolkit-push.json``
    holds: model id, blessings, spans, when, which execution) from ``store``'s lineage.

    ``store`` may be None (a rollback without a store): the report then holds what the
    record says and a note. A part that cannot be read becomes a note, never an error,
    since a push must not fail for its report."""
    report: dict[str, Any] = {
        "format": FORMAT, "version": version, "destination": destination,
        "reason": record.get("reason") or "push",
        "rolled_back_from": record.get("rolled_back_from"),
        "pushed_at": record.get("pushed_at"), "pipeline_name": record.get("pipeline_name"),
        "store": record.get("store"), "execution_id": record.get("execution_id"),
        "component_id": record.get("component_id"), "run": record.get("run"),
        "model": {"id": record.get("model_id"), "uri": record.get("model_uri")},
        "blessings": [{"key": key, "id": b.get("id"), "blessed": b.get("blessed")}
                      for key, arts in (record.get("blessings") or {}).items() for b in arts],
        "spans": list(record.get("spans") or []),
        "statistics": [], "evaluations": [], "infra": [], "lineage": [], "notes": [],
    }
    if store is None:
        report["notes"].append("no metadata store was read: the statistics, evaluation, "
                               "infra validation, lineage and parameters are not shown")
        return report
    _guarded(report, "the model", lambda: _add_model(store, report))
    _guarded(report, "the lineage", lambda: _add_lineage(store, report))
    _guarded(report, "the training data's statistics", lambda: _add_statistics(store, report))
    for blessing in report["blessings"]:
        _guarded(report, f"blessing #{blessing['id']}",
                 lambda b=blessing: _add_blessing(store, report, b))
    return report


def _guarded(report: dict[str, Any], what: str, step: Callable[[], None]) -> None:
    """Run one part of the gathering; a failure becomes a note shown at the top of the
    report (a push must not fail, nor a rollback wait, because a part is unreadable)."""
    try:
        step()
    except Exception as exc:  # noqa: BLE001 - reported in the page, never hidden
        report["notes"].append(f"could not read {what}: {type(exc).__name__}: "
                               f"{error_line(exc, 300)}")


def _add_model(store: Any, report: dict[str, Any]) -> None:
    model_id = report["model"]["id"]
    if model_id is None:
        return
    model = store.artifact(int(model_id))
    report["model"].update(uri=model.uri, producer=_producer_text(store, model.id))


def _producer_text(store: Any, artifact_id: int) -> str | None:
    producer = store.producer_of(artifact_id)
    if producer is None:
        return None
    execution = store.execution(producer)
    return f"{execution.get('component_id') or 'execution'} #{producer}"


def _add_lineage(store: Any, report: dict[str, Any]) -> None:
    """Every execution upstream of the push (the push included), oldest first."""
    start = report["execution_id"]
    todo: list[int] = []
    if start is not None:
        todo.append(int(start))
    elif report["model"]["id"] is not None:
        producer = store.producer_of(int(report["model"]["id"]))
        todo += [producer] if producer is not None else []
    seen: dict[int, dict[str, Any]] = {}
    while todo and len(seen) < MAX_EXECUTIONS:
        execution_id = todo.pop()
        if execution_id in seen:
            continue
        execution = store.execution(execution_id)
        inputs = store.inputs_of(execution_id)
        outputs = store.outputs_of(execution_id)
        seen[execution_id] = {
            "execution_id": execution_id,
            "component_id": execution.get("component_id") or "",
            "component_type": execution.get("component_type") or "",
            "state": execution.get("state") or "",
            "cached_from": execution.get("cached_from"),
            "started_at": execution.get("create_time"),
            "inputs": _artifact_refs(inputs), "outputs": _artifact_refs(outputs),
            "parameters": recorded_parameters(execution.get("parameters") or ""),
        }
        for artifacts in inputs.values():
            for artifact in artifacts:
                producer = store.producer_of(artifact.id)
                if producer is not None and producer not in seen:
                    todo.append(producer)
    report["lineage"] = [seen[k] for k in sorted(seen)]
    if todo:
        report["notes"].append(f"the lineage is cut after {MAX_EXECUTIONS} executions")


def _artifact_refs(by_key: dict[str, list[Any]]) -> list[dict[str, Any]]:
    refs = []
    for key, artifacts in sorted(by_key.items()):
        for artifact in artifacts:
            span = (artifact.properties or {}).get("span")
            refs.append({"key": key, "type": artifact.TYPE_NAME, "id": artifact.id,
                         "uri": artifact.uri, "span": span if span not in ("", None) else None})
    return refs


def recorded_parameters(text: str) -> dict[str, Any]:
    """The execution's parameters as recorded (canonical JSON), name -> value."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"(recorded)": text}
    return value if isinstance(value, dict) else {"(recorded)": value}


def _upstream_examples(report: dict[str, Any]) -> list[int]:
    """Ids of the Examples in the lineage that no other Examples were made from in it
    (the ingested data, not a Transform's output)."""
    made_from_examples = set()
    for step in report["lineage"]:
        if any(ref["type"] == "Examples" for ref in step["inputs"]):
            made_from_examples.update(ref["id"] for ref in step["outputs"]
                                      if ref["type"] == "Examples")
    found = []
    for step in report["lineage"]:
        for ref in step["inputs"] + step["outputs"]:
            if (ref["type"] == "Examples" and ref["id"] not in made_from_examples
                    and ref["id"] not in found):
                found.append(ref["id"])
    return found


def _add_statistics(store: Any, report: dict[str, Any]) -> None:
    """Statistics computed on the training data: every ExampleStatistics output of an
    execution that read the ingested Examples upstream of the model."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    examples = _upstream_examples(report)
    statistics: dict[int, Any] = {}
    for step in report["lineage"]:  # found upstream already (SchemaGen's input)
        for ref in step["inputs"]:
            if ref["type"] == "ExampleStatistics":
                statistics.setdefault(ref["id"], None)
    if examples:
        events = store.mlmd.get_events_by_artifact_ids(examples)
        readers = sorted({e.execution_id for e in events if e.type == pb.Event.INPUT})
        for execution_id in readers:
            for artifacts in store.outputs_of(execution_id).values():
                for artifact in artifacts:
                    if artifact.TYPE_NAME == "ExampleStatistics":
                        statistics.setdefault(artifact.id, None)
    for artifact_id in sorted(statistics):
        artifact = store.artifact(artifact_id)
        if getattr(artifact, "state", "LIVE") not in ("LIVE", "UNKNOWN"):
            continue
        _guarded(report, f"ExampleStatistics #{artifact_id}",
                 lambda a=artifact: report["statistics"].extend(_statistics_parts(a)))
        span = (artifact.properties or {}).get("span")
        if span not in (None, "") and int(span) not in report["spans"]:
            report["spans"] = sorted([*report["spans"], int(span)])


def _statistics_parts(artifact: Any) -> list[dict[str, Any]]:
    parts = []
    for split in artifact.split_names or []:
        proto = artifact.load(split)
        for dataset in proto.datasets[:1]:
            features = [_feature_summary(f) for f in dataset.features]
            span = (artifact.properties or {}).get("span")
            parts.append({"artifact_id": artifact.id, "uri": artifact.uri, "split": split,
                          "span": span if span not in ("", None) else None,
                          "num_examples": int(dataset.num_examples),
                          "features_total": len(features),
                          "features": features[:MAX_FEATURES]})
    return parts


def _feature_summary(feature: Any) -> dict[str, Any]:
    name = ".".join(feature.path.step) if feature.path.step else feature.name
    kind = feature.WhichOneof("stats")
    stats = getattr(feature, kind) if kind else None
    common = getattr(stats, "common_stats", None)
    out: dict[str, Any] = {"name": name, "type": _feature_type(feature), "missing": None}
    if common is not None:
        total = common.num_missing + common.num_non_missing
        out["missing"] = common.num_missing / total if total else None
    if kind == "num_stats":
        out.update(mean=stats.mean, std_dev=stats.std_dev, min=stats.min, max=stats.max,
                   zeros=stats.num_zeros)
    elif kind == "string_stats":
        out.update(unique=stats.unique,
                   top=stats.top_values[0].value if stats.top_values else None)
    return out


def _feature_type(feature: Any) -> str:
    return type(feature).Type.Name(feature.type)


def _add_blessing(store: Any, report: dict[str, Any], blessing: dict[str, Any]) -> None:
    artifact = store.artifact(int(blessing["id"]))
    blessing["type"] = artifact.TYPE_NAME
    blessing["producer"] = _producer_text(store, artifact.id)
    if artifact.TYPE_NAME == "InfraBlessing":
        props = artifact.properties or {}
        report["infra"].append({"artifact_id": artifact.id, "producer": blessing["producer"],
                                "blessed": props.get("blessed"), "reason": props.get("reason"),
                                **{key: props.get(key) for key, _, _ in INFRA_FIGURES}})
        return
    producer = store.producer_of(artifact.id)
    evaluations = store.outputs_of(producer).get("evaluation", []) if producer else []
    for evaluation in evaluations:
        report["evaluations"].append(_evaluation_summary(evaluation, blessing["producer"]))


def _evaluation_summary(evaluation: Any, producer: str | None) -> dict[str, Any]:
    result = evaluation.load()
    validation = result.validation
    checks = [{"slice": check.slice, "metric": check.metric, "sub_key": check.sub_key,
               "model": check.metric_key.model_name, "threshold": check.threshold.describe(),
               "value": _number(check.value), "passed": bool(check.passed),
               "message": check.message}
              for check in (validation.checks if validation is not None else [])]
    from toolkit.evaluation.errors import EvalConfigError

    candidate = result.eval_config.candidate.name
    try:
        frame = result.to_dataframe(baseline_slice=())
        gap_column = "baseline_diff"
    except EvalConfigError:  # no overall slice to measure gaps from
        frame = result.to_dataframe()
        gap_column = None
    if "model" in frame and candidate is not None:
        frame = frame[(frame["model"] == candidate) | (frame["model"] == "")]
    rows = []
    for record in frame.to_dict("records"):
        threshold = record.get("threshold")
        rows.append({"metric": str(record["metric"]), "sub_key": str(record.get("sub_key") or ""),
                     "threshold": _number(threshold),
                     "slice": str(record["slice"]),
                     "size": _number(record.get("slice_size")),
                     "value": _number(record.get("value")),
                     "gap": _number(record.get(gap_column)) if gap_column else None,
                     "note": str(record.get("note") or "")})
    rows.sort(key=lambda r: (r["metric"], r["sub_key"],
                             -math.inf if r["threshold"] is None else r["threshold"]))
    return {"artifact_id": evaluation.id, "uri": evaluation.uri, "producer": producer,
            "blessed": bool(result.blessed), "engine": result.engine,
            "summary": validation.summary() if validation is not None else "",
            "checks": checks, "metrics_total": len(rows), "metrics": rows[:MAX_METRIC_ROWS]}


def _number(value: Any) -> float | None:
    """A finite float, else None (JSON has no NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -- storing ------------------------------------------------------------------------
def write_report(folder: str, report: dict[str, Any]) -> str:
    """Write the page and its data into ``folder`` (each file replaced atomically);
    returns the page's path."""
    for name, text in ((REPORT_DATA, json.dumps(report, sort_keys=True, separators=(",", ":"))),
                       (REPORT_FILE, render_page(report))):
        partial = storage.join(folder, f".{name}.partial")
        storage.write_text(partial, text)
        storage.move(partial, storage.join(folder, name))
    return storage.join(folder, REPORT_FILE)


def read_report(folder: str) -> dict[str, Any] | None:
    """The report data stored in a version folder, or None when it has none."""
    try:
        report = json.loads(storage.read_text(storage.join(folder, REPORT_DATA)))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def report_writer(report: dict[str, Any]) -> Callable[[str, int], None]:
    """For ``push(..., prepare=)``: writes the report, numbered with the version the copy
    is about to be published as, into the hidden copy."""
    def prepare(staging: str, version: int) -> None:
        write_report(staging, {**report, "version": version,
                               "path": storage.join(report.get("destination") or "",
                                                    str(version))})
    return prepare


# -- the page -------------------------------------------------------------------------
#: how much of a value a cell shows before it is shortened
VALUE_CHARS = 300
#: the page's tables keep the notebook's 13px, whatever the browser's default size
PAGE_TABLE = TABLE + ";font-size:13px"
H2 = f"font-size:1.2em;margin:22px 0 6px 0;border-bottom:2px solid {GRID};padding-bottom:2px"
H3 = "font-size:1.02em;margin:12px 0 4px 0"
H4 = "font-size:0.95em;margin:10px 0 2px 0"


def fmt(value: Any) -> str:
    """A number as a person reads it: grouped integers, 4 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return "–"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 1e5:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _num(value: Any, signed: bool = False) -> str:
    """A number cell's content: the readable form, the exact value in its title."""
    if value is None:
        return f'<span style="{NOTE}">–</span>'
    text = fmt(value)
    if signed and isinstance(value, (int, float)) and value > 0:
        text = "+" + text
    if isinstance(value, (int, float)) and float(value) == int(value) and abs(value) < 1e15:
        return esc(text, VALUE_CHARS)  # shown exactly
    return f'<span title="{esc(repr(value), VALUE_CHARS)}">{esc(text, VALUE_CHARS)}</span>'


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]],
           numeric: Iterable[int] = ()) -> str:
    """The shared table as the report sets it: text cells at the top of rows of several
    lines, the page's size."""
    return table(headers, rows, numeric, top=True, style=PAGE_TABLE)


def _note(text: str) -> str:
    return f'<p style="{NOTE}">{esc(text, 2000)}</p>'


def _verdict(blessed: Any) -> str:
    if blessed in (None, ""):
        return f'<span style="{NOTE}">–</span>'
    ok = int(blessed) == 1
    return f'<b style="color:{GOOD if ok else BAD}">{"blessed" if ok else "NOT blessed"}</b>'


def when(seconds: Any) -> str:
    if seconds in (None, ""):
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(seconds)))


def pushed_by(report: dict[str, Any]) -> str:
    """Which pipeline, execution and run pushed it, one line."""
    parts = [str(report.get("pipeline_name") or "?")]
    if report.get("execution_id") is not None:
        parts.append(f"{report.get('component_id') or 'execution'} #{report['execution_id']}")
    if report.get("run"):
        parts.append(f"run {report['run']}")
    return " ".join(parts)


def title(report: dict[str, Any]) -> str:
    version = report.get("version")
    model = report.get("model", {}).get("id")
    return (f"Model version {version if version is not None else '?'}"
            + (f" (Model #{model})" if model is not None else ""))


def _section_model(report: dict[str, Any]) -> str:
    model = report.get("model") or {}
    reason = report.get("reason") or "push"
    if reason == "rollback":
        reason = f"rollback: version {report.get('rolled_back_from')} re-published"
    model_id = f"#{model.get('id')}" if model.get("id") is not None else "–"
    spans = ", ".join(str(s) for s in report.get("spans") or []) or "–"
    rows = [("version", esc(report.get("version"), VALUE_CHARS)),
            ("folder", f"<code>{esc(report.get('path') or '', 1000)}</code>"),
            ("model", esc(model_id, VALUE_CHARS)
             + (f" from {esc(model['producer'], VALUE_CHARS)}" if model.get("producer") else "")),
            ("model folder", f"<code>{esc(model.get('uri') or '–', 1000)}</code>"),
            ("pushed", esc(when(report.get("pushed_at")))),
            ("by", esc(pushed_by(report), 1000)),
            ("reason", esc(reason, VALUE_CHARS)),
            ("metadata store", esc(report.get("store") or "–", 1000)),
            ("data spans", esc(spans, VALUE_CHARS))]
    blessings = [f"{_verdict(b.get('blessed'))} {esc(b.get('type') or b.get('key'), VALUE_CHARS)} "
                 f"#{esc(b.get('id'), VALUE_CHARS)}"
                 + (f" from {esc(b['producer'], VALUE_CHARS)}" if b.get("producer") else "")
                 for b in report.get("blessings") or []]
    rows.append(("blessings", "<br>".join(blessings) or
                 f'<span style="{NOTE}">none (pushed without a blessing)</span>'))
    return _table(["", ""], ([f"<b>{esc(k)}</b>", v] for k, v in rows))


def _section_data(report: dict[str, Any]) -> str:
    parts = []
    spans = report.get("spans") or []
    parts.append(_note("Spans trained on: " + (", ".join(str(s) for s in spans) if spans
                                               else "none recorded (no span set)")))
    if not report.get("statistics"):
        parts.append(_note("No statistics of the training data are recorded in the lineage."))
    for part in report.get("statistics") or []:
        span = f", span {part['span']}" if part.get("span") is not None else ""
        parts.append(f'<h3 style="{H3}">Split {esc(part["split"], VALUE_CHARS)}'
                     f'{esc(span, VALUE_CHARS)}: '
                     f'{esc(fmt(part["num_examples"]), VALUE_CHARS)} examples, '
                     f'{esc(fmt(part["features_total"]), VALUE_CHARS)} features '
                     f'<span style="{NOTE};font-weight:normal">ExampleStatistics '
                     f'#{esc(part["artifact_id"], VALUE_CHARS)}</span></h3>')
        rows = []
        for f in part["features"]:
            numeric = "mean" in f
            rows.append([esc(f["name"], VALUE_CHARS), esc(f["type"], VALUE_CHARS),
                         _num(None if f["missing"] is None else 100.0 * f["missing"]),
                         _num(f.get("mean")), _num(f.get("std_dev")), _num(f.get("min")),
                         _num(f.get("max")),
                         _num(f.get("unique")) if not numeric else _num(None),
                         esc(f["top"], 80) if f.get("top") is not None else _num(None)])
        parts.append(_table(["feature", "type", "missing %", "mean", "std dev", "min", "max",
                             "unique", "top value"], rows, numeric=range(2, 8)))
        if part["features_total"] > len(part["features"]):
            parts.append(_note(f"… {part['features_total'] - len(part['features'])} more "
                               "features"))
    return "".join(parts)


def _section_evaluation(report: dict[str, Any]) -> str:
    evaluations = report.get("evaluations") or []
    if not evaluations:
        return _note("No model evaluation blessed this version (no model_blessing from an "
                     "evaluation).")
    parts = []
    for ev in evaluations:
        parts.append(f'<h3 style="{H3}">ModelEvaluation #{esc(ev["artifact_id"], VALUE_CHARS)} '
                     + (f'from {esc(ev["producer"], VALUE_CHARS)} ' if ev.get("producer") else "")
                     + f'{_verdict(1 if ev["blessed"] else 0)}</h3>')
        parts.append(f'<p style="margin:2px 0">{esc(ev.get("summary") or "", 2000)}</p>')
        parts.append(f'<h3 style="{H3}">Thresholds that decided the blessing</h3>')
        if ev["checks"]:
            parts.append(_table(
                ["slice", "metric", "needs", "value", "result"],
                ([esc(c["slice"], VALUE_CHARS),
                  esc(c["metric"] + (f" ({c['sub_key']})" if c["sub_key"] else ""), VALUE_CHARS),
                  esc(c["threshold"], VALUE_CHARS), _num(c["value"]),
                  f'<b style="color:{GOOD}">passed</b>' if c["passed"]
                  else f'<b style="color:{BAD}">FAILED</b>'
                  + (f' {esc(c["message"], VALUE_CHARS)}' if c.get("message") else "")]
                 for c in ev["checks"]), numeric=[3]))
        else:
            parts.append(_note("No thresholds were checked."))
        parts.append(f'<h3 style="{H3}">Metrics per slice, with the gap to Overall</h3>')
        groups: dict[tuple[str, str, float | None], list[dict[str, Any]]] = {}
        for row in ev["metrics"]:
            groups.setdefault((row["metric"], row["sub_key"], row["threshold"]), []).append(row)
        for (metric, sub_key, threshold), rows in groups.items():
            label = metric_label(metric, sub_key, threshold)
            parts.append(f'<h4 style="{H4}">{esc(label, VALUE_CHARS)}</h4>')
            parts.append(_table(["slice", "examples", "value", "gap to Overall"], (
                [esc(r["slice"], VALUE_CHARS), _num(r["size"]),
                 _num(r["value"]) if r["value"] is not None or not r.get("note")
                 else f'<span style="{NOTE}">{esc(r["note"], 120)}</span>',
                 _num(r["gap"], signed=True) if r["slice"] != "Overall" else _num(None)]
                for r in rows), numeric=[1, 2, 3]))
        if ev["metrics_total"] > len(ev["metrics"]):
            parts.append(_note(f"… {ev['metrics_total'] - len(ev['metrics'])} more rows in "
                               f"{ev['uri']}"))
    return "".join(parts)


def metric_label(metric: str, sub_key: str, threshold: float | None) -> str:
    """``auc``, ``fairness_indicators_metrics/false_positive_rate at threshold 0.5``."""
    return (metric + (f" ({sub_key})" if sub_key else "")
            + (f" at threshold {fmt(threshold)}" if threshold is not None else ""))


def _section_infra(report: dict[str, Any]) -> str:
    infra = report.get("infra") or []
    if not infra:
        return _note("No InfraValidator ran for this version.")
    headers = ["InfraBlessing", "result"] + [f"{label} ({unit})" if unit else label
                                             for _, label, unit in INFRA_FIGURES]
    rows = [[esc(f"#{i['artifact_id']}", VALUE_CHARS), _verdict(i.get("blessed"))
             + (f" {esc(i['reason'], VALUE_CHARS)}" if i.get("reason") else "")]
            + [_num(_number(i.get(key))) for key, _, _ in INFRA_FIGURES] for i in infra]
    return _table(headers, rows, numeric=range(2, 2 + len(INFRA_FIGURES)))


def _refs(refs: list[dict[str, Any]]) -> str:
    return "<br>".join(f"{esc(r['key'], VALUE_CHARS)}: {esc(r['type'], VALUE_CHARS)} "
                       f"#{esc(r['id'], VALUE_CHARS)}"
                       + (f" (span {esc(r['span'], VALUE_CHARS)})" if r.get("span") is not None
                          else "")
                       for r in refs) or f'<span style="{NOTE}">–</span>'


def _section_lineage(report: dict[str, Any]) -> str:
    steps = report.get("lineage") or []
    if not steps:
        return _note("No lineage is recorded.")
    rows = []
    for step in steps:
        state = step["state"] + (f" (from #{step['cached_from']})" if step.get("cached_from")
                                 else "")
        rows.append([esc(f"#{step['execution_id']}", VALUE_CHARS),
                     esc(step["component_id"], VALUE_CHARS), esc(state, VALUE_CHARS),
                     esc(when(step.get("started_at"))), _refs(step["inputs"]),
                     _refs(step["outputs"])])
    return (_note("From the data to the push, oldest first: every execution the pushed "
                  "model depends on.")
            + _table(["execution", "component", "state", "started", "inputs", "outputs"], rows))


def _section_parameters(report: dict[str, Any]) -> str:
    steps = [s for s in report.get("lineage") or [] if s.get("parameters")]
    if not steps:
        return _note("No parameters are recorded.")
    rows = []
    for step in steps:
        for name, value in sorted(step["parameters"].items()):
            shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            code = (f'<code style="white-space:pre-wrap;word-break:break-word">'
                    f"{esc(shown, MAX_PARAMETER_CHARS)}</code>")
            rows.append([esc(f"{step['component_id']} #{step['execution_id']}", VALUE_CHARS),
                         esc(name, VALUE_CHARS),
                         code])
    return _table(["execution", "parameter", "value"], rows)


def render_body(report: dict[str, Any]) -> str:
    """The report's sections as HTML (no page around them): for the page and notebooks."""
    sections = [("Model", _section_model), ("Training data", _section_data),
                ("Evaluation", _section_evaluation), ("Infra validation", _section_infra),
                ("Lineage", _section_lineage), ("Parameters", _section_parameters)]
    parts = [f'<h1 style="font-size:1.45em;margin:0 0 4px 0">'
             f'{esc(title(report), VALUE_CHARS)}</h1>',
             _note(f"Pushed {when(report.get('pushed_at'))} by {pushed_by(report)}"),
             # the page beside the version folders (toolkit models compare writes it); named,
             # not linked: the report loads and links nothing
             '<p style="margin:2px 0">Every pushed version side by side (the metric per slice '
             'across versions): <code>../toolkit-versions.html</code>, written by '
             '<code>toolkit models compare</code>; <code>toolkit.show_versions</code> in a '
             'notebook</p>']
    for note in report.get("notes") or []:
        parts.append(f'<p style="color:{BAD}">{esc(note, 2000)}</p>')
    for name, section in sections:
        parts.append(f'<h2 style="{H2}">{esc(name)}</h2>')
        try:
            parts.append(section(report))
        except (KeyError, TypeError, ValueError) as exc:
            parts.append(_note(f"this section could not be drawn: {error_line(exc, 300)}"))
    return "".join(parts)


def render_page(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page: inline styles, no script, no URL."""
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title(report), VALUE_CHARS)}</title></head>"
            '<body style="font-family:system-ui,-apple-system,Segoe UI,sans-serif;'
            'margin:20px 28px;color:#202124;line-height:1.4">'
            f"{render_body(report)}</body></html>\n")


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A short plain-text account: model, blessing and its thresholds, spans, infra
    latency, when and which run (for ``toolkit models show``)."""
    model = report.get("model") or {}
    lines = [f"model: #{model.get('id')}" + (f" from {model['producer']}"
                                             if model.get("producer") else "")
             + (f" ({model['uri']})" if model.get("uri") else "")]
    if report.get("reason") == "rollback":
        lines.append(f"rollback: version {report.get('rolled_back_from')} re-published")
    blessings = report.get("blessings") or []
    verdicts = [("blessed" if int(b.get("blessed") or 0) == 1 else "NOT blessed")
                + f" by {b.get('type') or b.get('key')} #{b.get('id')}" for b in blessings]
    lines.append("blessing: " + ("; ".join(verdicts) or "none (pushed without a blessing)"))
    for ev in report.get("evaluations") or []:
        for check in ev.get("checks") or []:
            value = "missing" if check["value"] is None else f"{check['value']:.4g}"
            lines.append(f"  {check['metric']} on {check['slice']} = {value}, needs "
                         f"{check['threshold']}: {'passed' if check['passed'] else 'FAILED'}")
    for infra in report.get("infra") or []:
        figures = [f"{label} {fmt(infra.get(key))}{' ' + unit if unit else ''}"
                   for key, label, unit in INFRA_FIGURES if infra.get(key) is not None]
        if figures:
            lines.append("infra validation: " + ", ".join(figures))
    lines.append("data spans: " + (", ".join(str(s) for s in report.get("spans") or [])
                                   or "none recorded"))
    lines.append(f"pushed: {when(report.get('pushed_at'))} by {pushed_by(report)}")
    for note in report.get("notes") or []:
        lines.append(f"note: {note}")
    return [show_controls(one_line(line)) for line in lines]
