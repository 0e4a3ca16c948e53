"""A pushed version's report, inline in a notebook: ``context.show(pusher.outputs["pushed_model"])``
or ``toolkit.show(toolkit.models.show(serving_dir, version))``.

The report itself (data from the metadata store, and the HTML of its sections) is built by
:mod:`toolkit.model_report`, because the Pusher writes it while publishing and components
never import a view; this module shows that same report as a view. Its HTML is plain
markup with inline styles and ``title`` attributes, which JupyterLab's sanitizer keeps,
so it reads the same in an untrusted notebook.
"""
from __future__ import annotations

from typing import Any

from toolkit import storage
from toolkit.model_report import read_report, render_body, summary_lines, title
from toolkit.visualize.html import NOTE, View, esc, new_uid, plain, root, tag


def model_report_view(report: dict[str, Any]) -> View:
    """The report (the data ``toolkit-report.json`` holds) as a view."""
    return View(root(render_body(report), new_uid()),
                "\n".join([plain(title(report), 300), *summary_lines(report)]), title(report))


def pushed_model_view(artifact: Any) -> View:
    """A PushedModel: the report of the version it pushed, or why there is none."""
    props = getattr(artifact, "properties", None) or {}
    version = str(props.get("pushed_version") or "")
    if int(props.get("pushed", 0) or 0) != 1 or not version:
        reason = props.get("reason") or "not pushed"
        return View(tag("div", esc(reason, 1000), NOTE), plain(reason, 1000))
    folder = storage.join(str(props.get("pushed_destination") or ""), version)
    report = read_report(folder)
    if report is None:
        message = f"version {version} ({folder}) has no report"
        return View(tag("div", esc(message, 1000), NOTE), plain(message, 1000))
    return model_report_view(report)


def version_report_view(shown: Any) -> View:
    """What ``toolkit.models.show`` returns: the version's report, else its summary."""
    if getattr(shown, "report", None) is not None:
        return model_report_view({**shown.report, "version": shown.version})
    text = "\n".join(shown.lines())
    return View(tag("pre", esc(text, 20000), "white-space:pre-wrap"), text)
