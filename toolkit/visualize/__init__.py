"""Offline views of artifacts and results: ``show(obj)`` renders anything the toolkit makes.

Views are self-contained HTML (no scripts needed, no network) plus a plain-text
form; see :mod:`toolkit.visualize.html` for what survives untrusted notebooks.
Importing this package does not import TensorFlow, TFDV, Beam or TFMA.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from toolkit import storage
from toolkit._registry import Registry
from toolkit.errors import ToolkitError
from toolkit.visualize.drift import drift_view, drift_view_of, show_drift
from toolkit.visualize.evaluation import dashboard, model_evaluation_view
from toolkit.visualize.html import (BAD, NOTE, View, display_view, esc, escape, fmt_bytes, fmt_num,
                                    new_uid, plain, root, stack, table, tag, truncate)
from toolkit.visualize.model_report import pushed_model_view, version_report_view
from toolkit.visualize.reading import toolkit_artifact
from toolkit.visualize.run import execution_result_view, executions_table_view, lineage_view
from toolkit.visualize.schema import anomalies_view, artifact_anomalies, schema_view
from toolkit.visualize.statistics import (artifact_statistics, show_statistics, statistics_view,
                                          statistics_view_of)
from toolkit.visualize.tuner import hyperparameters_view, tuner_results_view

__all__ = [
    "VIEWS", "View", "ViewRegistry", "anomalies_view", "artifact_view", "display_view",
    "drift_view", "drift_view_of", "escape", "qualified_name", "register_view", "schema_view",
    "show", "show_drift", "show_statistics", "statistics_view", "statistics_view_of",
    "truncate", "view_of",
]

ViewFunction = Callable[..., View]

FILES_LISTED = 50
PREVIEW_ROWS = 5
PREVIEW_COLUMNS = 30


def qualified_name(cls: type) -> str:
    """``"module.QualName"``: how the registry names a class without importing its module."""
    return f"{cls.__module__}.{cls.__qualname__}"


class ViewRegistry(Registry[ViewFunction]):
    """The view of each artifact type and result class: ``fn(obj, **options) -> View``.

    A key is an artifact ``TYPE_NAME`` (``"ModelEvaluation"``: the view gets the
    artifact and is headed by its type and uri), a class, or a class's qualified name
    (``"toolkit.evaluation.result.EvalResult"``), so that views can be registered for a
    class without importing it; instances of subclasses get the view too. ``get`` of a key
    with no view raises one line naming it and the known keys; ``show`` itself falls back
    to a generic view instead (through ``find`` and ``for_object``).
    """

    def __init__(self) -> None:
        super().__init__("view")

    def key(self, name: str | type) -> str:
        return name if isinstance(name, str) else qualified_name(name)

    def for_object(self, obj: Any) -> ViewFunction | None:
        """The view registered for ``obj``'s class or its nearest base class, or None."""
        for cls in type(obj).__mro__:
            if cls is object:
                continue
            fn = self.find(cls)
            if fn is not None:
                return fn
        return None


#: every view ``show`` knows, by artifact type name or result class
VIEWS = ViewRegistry()


def register_view(key: str | type, fn: ViewFunction) -> ViewFunction:
    """Render objects with ``fn(obj) -> View``: ``VIEWS.register`` (see :class:`ViewRegistry`
    for the keys)."""
    return VIEWS.register(key, fn)


def show(obj: Any, **options: Any) -> View | None:
    """Display ``obj`` as a view: in a notebook inline, elsewhere as text. Returns the view.

    ``obj`` may be a View, an object of a class with a registered view (an
    evaluation result, a run's result, lineage), anything with a ``_toolkit_view_()``
    method, a statistics/schema/anomalies proto, an artifact, a list of artifacts or
    a channel (anything with ``.get()`` returning artifacts). ``options`` go to the
    registered view: ``toolkit.show(result, top=5)`` for the evaluation dashboard.
    """
    return display_view(view_of(obj, **options))


def _proto_view(obj: Any) -> View | None:
    descriptor = getattr(obj, "DESCRIPTOR", None)
    full_name = getattr(descriptor, "full_name", "")
    if full_name in ("tensorflow.metadata.v0.DatasetFeatureStatisticsList",
                     "tensorflow.metadata.v0.DatasetFeatureStatistics"):
        return statistics_view({"": obj})
    if full_name == "tensorflow.metadata.v0.Schema":
        return schema_view(obj)
    if full_name == "tensorflow.metadata.v0.Anomalies":
        return anomalies_view({"": obj})
    return None


def _is_artifact(obj: Any) -> bool:
    return hasattr(obj, "uri") and (hasattr(obj, "TYPE_NAME") or hasattr(obj, "type_name"))


def view_of(obj: Any, **options: Any) -> View:
    """The view ``show`` would display for ``obj``, without displaying it.

    Looked up in order: a view registered for the object's class (or a base class),
    the view of its artifact type, then an object's own ``_toolkit_view_()`` (user
    classes), protos, lists of artifacts and channels. ``options`` go to the view
    registered for the object's class or artifact type (through a list or a channel too).
    """
    if isinstance(obj, View) and not options:
        return obj
    registered = VIEWS.for_object(obj)
    if registered is not None:
        return registered(obj, **options)
    if _is_artifact(obj):
        return artifact_view(obj, **options)
    maker = getattr(obj, "_toolkit_view_", None)
    proto = None if callable(maker) else _proto_view(obj)
    if options and (isinstance(obj, View) or callable(maker) or proto is not None):
        raise ToolkitError(f"show() options ({', '.join(sorted(options))}) apply to a view "
                           f"registered for the object, such as an evaluation result's; not to "
                           f"a {type(obj).__name__}")
    if callable(maker):
        return maker()
    if proto is not None:
        return proto
    if isinstance(obj, (list, tuple)):
        return _artifacts_view(obj, **options)
    getter = getattr(obj, "get", None)
    if callable(getter) and not isinstance(obj, dict):
        return _artifacts_view(list(getter()), source=obj, **options)
    hint = " (for a DataFrame's statistics use toolkit.show_statistics)" \
        if type(obj).__name__ == "DataFrame" else ""
    raise ToolkitError(f"cannot show a {type(obj).__name__}: pass an artifact, a channel, a "
                       f"list of artifacts, a View or a statistics/schema/anomalies proto{hint}")


def _artifacts_view(items: Iterable[Any], source: Any = None, **options: Any) -> View:
    items = list(items)
    if not items:
        what = f" in {plain(repr(source), 120)}" if source is not None else ""
        message = f"No artifacts{what} yet: has the producing component run?"
        return View(root(tag("div", escape(message), NOTE), new_uid()), message)
    if len(items) == 1:
        return view_of(items[0], **options)
    return stack(view_of(item, **options) for item in items)


def _type_name(artifact: Any) -> str:
    return str(getattr(artifact, "type_name", None) or getattr(artifact, "TYPE_NAME", "Artifact"))


def _artifact_header(artifact: Any, compact: bool) -> tuple[str, str]:
    """Type, id, producer and uri; a muted line when the body view has its own title."""
    type_name = _type_name(artifact)
    bits = [f"id {artifact.id}" if getattr(artifact, "id", None) is not None else "",
            f"from {artifact.producer}" if getattr(artifact, "producer", None) else ""]
    meta = " · ".join(b for b in bits if b)
    uri = tag("code", esc(artifact.uri, 500))
    if compact:
        html = tag("div", " · ".join(p for p in (esc(type_name, 80), esc(meta, 200), uri) if p),
                   NOTE + ";margin-bottom:2px")
    else:
        html = (tag("div", esc(type_name, 80) + (f' <span style="{NOTE};font-weight:normal">'
                                                f'{esc(meta, 200)}</span>' if meta else ""),
                    "font-weight:600;font-size:1.1em")
                + tag("div", uri, NOTE + ";margin-bottom:4px"))
    text = f"{plain(type_name, 80)}{' (' + plain(meta, 200) + ')' if meta else ''}: " \
           f"{plain(artifact.uri, 500)}"
    for warning in _warnings(artifact):
        html += tag("div", "Warning: " + esc(warning, 1000), f"color:{BAD};margin-bottom:2px")
        text += f"\n  warning: {plain(warning, 1000)}"
    return html, text


def _warnings(artifact: Any) -> list[str]:
    """What the producing component warned about (a ``warnings`` property holding a JSON
    list, as the Evaluator records for predictions that look like logits)."""
    raw = (getattr(artifact, "properties", None) or {}).get("warnings")
    if not raw:
        return []
    try:
        found = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return [str(raw)]
    return [str(w) for w in found] if isinstance(found, list) else [str(found)]


def artifact_view(artifact: Any, **options: Any) -> View:
    """The registered view for the artifact's type, headed by its type and uri;
    ``options`` go to that view (``top=`` for a ModelEvaluation's dashboard)."""
    fn = VIEWS.find(_type_name(artifact))
    if fn is None:
        if options:
            raise ToolkitError(f"show() options ({', '.join(sorted(options))}) do not apply to "
                               f"a {_type_name(artifact)} artifact")
        body = _generic_view(artifact)
    else:
        try:
            body = fn(artifact, **options)
        except ToolkitError as exc:
            body = View(tag("div", esc(str(exc), 1000), NOTE), str(exc))
    header_html, header_text = _artifact_header(artifact, compact=bool(body.title))
    if hasattr(body, "with_header"):  # interactive views (the evaluation dashboard) keep their widget
        return body.with_header(header_html, header_text)
    html = root(header_html + body.html, new_uid())
    return View(html, header_text + "\n" + body.text, _type_name(artifact))


def _file_listing(folder: str) -> tuple[str, list[str]]:
    if not storage.reachable(folder):
        message = f"No storage backend reaches {storage.scheme_of(folder)}:// from here."
        return tag("div", esc(message, 300), NOTE), [f"({plain(message, 300)})"]
    if not storage.is_dir(folder):
        return tag("div", "The artifact folder does not exist.", NOTE), ["(folder missing)"]
    entries = []
    for rel in storage.walk(folder):
        try:
            size = storage.stat(storage.join(folder, rel)).size
        except OSError:
            continue
        entries.append((rel, size))
    rows = [[tag("code", esc(rel, 300)), escape(fmt_bytes(size))]
            for rel, size in entries[:FILES_LISTED]]
    text = [f"  {plain(rel, 200)}  {fmt_bytes(size)}" for rel, size in entries[:FILES_LISTED]]
    more = len(entries) - FILES_LISTED
    html = table(["File", "Size"], rows, numeric=[1]) if rows else tag("div", "No files.", NOTE)
    if more > 0:
        html += tag("div", f"… {more:,} more files", NOTE)
        text.append(f"  … {more:,} more files")
    return html, text


def _properties(artifact: Any) -> tuple[str, list[str]]:
    props = dict(getattr(artifact, "properties", {}) or {})
    if not props:
        return "", []
    rows = [[tag("b", esc(k, 120)), esc(v, 500)] for k, v in sorted(props.items())]
    return table(["Property", "Value"], rows), [f"  {plain(k, 60)} = {plain(v, 200)}"
                                                 for k, v in sorted(props.items())]


def _generic_view(artifact: Any) -> View:
    props_html, props_text = _properties(artifact)
    files_html, files_text = _file_listing(artifact.uri)
    return View(props_html + files_html, "\n".join(props_text + files_text))


def _example_statistics_view(artifact: Any) -> View:
    return statistics_view(artifact_statistics(artifact))


def _schema_artifact_view(artifact: Any) -> View:
    return schema_view(toolkit_artifact(artifact, "Schema").load())


def _anomalies_artifact_view(artifact: Any) -> View:
    return anomalies_view(artifact_anomalies(artifact))


def _split_names(artifact: Any) -> list[str]:
    names = list(getattr(artifact, "split_names", []) or [])
    if names:
        return names
    try:
        return sorted(d[len("Split-"):] for d in storage.listdir(artifact.uri)
                      if d.startswith("Split-"))
    except OSError:
        return []


def _parquet_files(folder: str) -> list[str]:
    try:
        return sorted(storage.join(folder, f) for f in storage.listdir(folder)
                      if not f.startswith(".") and f.endswith((".parquet", ".pq")))
    except OSError:
        return []


def _preview(files: list[str]) -> tuple[str, str]:
    import pyarrow.parquet as pq

    for path in files:
        parquet = pq.ParquetFile(storage.local_path(path))
        if parquet.metadata.num_rows == 0:
            continue
        batch = next(parquet.iter_batches(batch_size=PREVIEW_ROWS))
        columns = batch.schema.names[:PREVIEW_COLUMNS]
        rows = batch.to_pylist()[:PREVIEW_ROWS]
        html_rows = [[esc(row.get(c), 60) if row.get(c) is not None else
                      tag("span", "null", NOTE) for c in columns] for row in rows]
        hidden = len(batch.schema.names) - len(columns)
        note = tag("div", f"… {hidden} more columns", NOTE) if hidden > 0 else ""
        names = ", ".join(plain(c, 40) for c in batch.schema.names[:10])
        text = f"    columns: {names}" + (", …" if len(batch.schema.names) > 10 else "")
        return table([truncate(c, 60) for c in columns], html_rows, nowrap=True) + note, text
    return tag("div", "No rows.", NOTE), "    (no rows)"


def _examples_view(artifact: Any) -> View:
    """Row counts per split and the first rows of each split (Parquet payloads)."""
    import pyarrow.parquet as pq

    parts, text = [], []
    for split in _split_names(artifact):
        folder = storage.join(artifact.uri, f"Split-{split}")
        files = _parquet_files(folder)
        if not files:
            listing_html, listing_text = _file_listing(folder)
            parts.append(tag("div", f"Split {esc(split, 80)}", "font-weight:600") + listing_html)
            text.append(f"[{plain(split, 40)}]")
            text.extend(listing_text)
            continue
        rows = sum(pq.ParquetFile(storage.local_path(f)).metadata.num_rows for f in files)
        preview_html, preview_text = _preview(files)
        parts.append(tag("div", f"Split {esc(split, 80)} "
                         + tag("span", f"{fmt_num(rows)} rows in {len(files)} file(s)", NOTE),
                         "font-weight:600;margin-top:6px") + preview_html)
        text.append(f"[{plain(split, 40)}] {rows:,} rows")
        text.append(preview_text)
    if not parts:
        files_html, files_text = _file_listing(artifact.uri)
        return View(files_html, "\n".join(files_text))
    return View("".join(parts), "\n".join(text))


register_view("ExampleStatistics", _example_statistics_view)
register_view("Schema", _schema_artifact_view)
register_view("ExampleAnomalies", _anomalies_artifact_view)
register_view("Examples", _examples_view)
register_view("ModelEvaluation", model_evaluation_view)
register_view("PushedModel", pushed_model_view)
register_view("TunerResults", tuner_results_view)
register_view("HyperParameters", hyperparameters_view)
# Results are registered by qualified name: importing the views never imports the
# library or the context, and the library never imports a view.
register_view("toolkit.evaluation.result.EvalResult", dashboard)
register_view("toolkit.drift.DriftReport", drift_view)
register_view("toolkit.records.ExecutionResult", execution_result_view)
register_view("toolkit.records.ExecutionsTable", executions_table_view)
register_view("toolkit.records.Lineage", lineage_view)
register_view("toolkit.models.VersionReport", version_report_view)
