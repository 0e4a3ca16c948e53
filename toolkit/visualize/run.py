"""Views of what ``InteractiveContext`` reports: a run's result, the executions table, lineage.

They read the objects' public attributes only (their classes live in
:mod:`toolkit.records`, which this module does not import: views depend on what
they show, never the reverse). :mod:`toolkit.visualize` registers them by the
classes' qualified names.
"""
from __future__ import annotations

from typing import Any

from toolkit.visualize.html import View, escape


def execution_result_view(result: Any) -> View:
    """``context.run``'s result: component, cached or ran, what it did beyond its artifacts
    (its outcome, such as the version a Pusher pushed), gate failure, inputs and outputs."""

    def rows(group: dict[str, list[Any]]) -> str:
        return "".join(
            f"<tr><td>{escape(key)}</td><td>{escape(a.TYPE_NAME)}</td>"
            f"<td>#{escape(a.id)}</td><td><code>{escape(a.uri)}</code></td></tr>"
            for key, arts in group.items() for a in arts) or "<tr><td colspan=4>none</td></tr>"

    badge = ("<span style='background:#e7f0ff;color:#1a4d99;padding:1px 6px;"
             "border-radius:3px'>cached</span>" if result.cached else
             "<span style='background:#e6f4ea;color:#1e6b34;padding:1px 6px;"
             "border-radius:3px'>ran</span>")
    gate = (f"<p style='color:#a50e0e'><b>Gate:</b> {escape(result.gate_failure)}</p>"
            if result.gate_failure else "")
    said = f"<p>{escape(result.outcome)}</p>" if result.outcome else ""
    html = (f"<div class='toolkit-result'><p><b>{escape(result.component_id)}</b> {badge} "
            f"execution {escape(result.execution_id)} &middot; {result.duration_s:.2f} s</p>"
            f"{said}{gate}"
            "<table><thead><tr><th>key</th><th>type</th><th>id</th><th>uri</th></tr></thead>"
            "<tbody><tr><th colspan=4 style='text-align:left'>inputs</th></tr>"
            f"{rows(result.inputs)}"
            f"<tr><th colspan=4 style='text-align:left'>outputs</th></tr>{rows(result.outputs)}"
            "</tbody></table></div>")
    return View(html, repr(result), title=result.component_id)


def executions_table_view(table: Any) -> View:
    """``context.executions()``: one row per execution record, in the table's ``COLUMNS``."""
    head = "".join(f"<th>{escape(c)}</th>" for c in table.COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(r.get(c) or '')}</td>" for c in table.COLUMNS)
                   + "</tr>" for r in table)
    return View(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
                repr(table), title="executions")


def lineage_view(lineage: Any) -> View:
    """``context.lineage(artifact)``: each artifact indented under the one it was made for."""
    items = []
    for n in lineage.nodes:
        art, ex = n["artifact"], n["execution"]
        via = f"<i>{escape(n['via'])}</i>: " if n["via"] else ""
        made = (f" &larr; <b>{escape(ex['component_id'])}</b> (execution {escape(ex['id'])}, "
                f"{escape(ex['state'].lower())})" if ex else " (imported)")
        items.append(f"<div style='margin-left:{1.5 * n['depth']}em'>{via}"
                     f"{escape(art.TYPE_NAME)} #{escape(art.id)}{made} "
                     f"<code>{escape(art.uri)}</code></div>")
    return View("<div class='toolkit-lineage'>" + "".join(items) + "</div>", repr(lineage),
                title="lineage")
