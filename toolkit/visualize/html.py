"""The view: HTML for notebooks and plain text, and how it is displayed.

Views are rendered as plain HTML with inline ``style`` attributes only, built from the
blocks of :mod:`toolkit._markup` (escaping, number formats, colours, tables), which this
module re-exports so a view imports everything from here. That is what survives
JupyterLab's sanitizer in an untrusted notebook (the output of papermill): it removes
``<script>``, ``<style>``, ``<svg>``, ``id``, ``name`` and ``data-*`` attributes,
disables form inputs, and keeps only whitelisted CSS properties (no custom properties,
no ``var()``, no ``currentColor``, no ``position: sticky``). Anything a reader needs
must therefore be present in the static markup; scripts may only add conveniences on
top of it.
"""
from __future__ import annotations

import secrets
import sys
from typing import Any, Iterable

from toolkit import storage
from toolkit._markup import (BAD, GOOD, GRID, HEADING, MUTED, NOTE, PALETTE, ROW, SHADE, TABLE,
                             TABLE_ATTRS, TD, TH, TH_LEFT, TH_RIGHT, WARN, badge, esc, escape,
                             fmt_bytes, fmt_num, fmt_pct, plain, swatch, table, tag, truncate)

__all__ = [
    # the shared blocks, from toolkit._markup
    "BAD", "GOOD", "GRID", "HEADING", "MUTED", "NOTE", "PALETTE", "ROW", "SHADE", "TABLE",
    "TABLE_ATTRS", "TD", "TH", "TH_LEFT", "TH_RIGHT", "WARN", "badge", "esc", "escape",
    "fmt_bytes", "fmt_num", "fmt_pct", "plain", "swatch", "table", "tag", "truncate",
    # the view
    "View", "LiveView", "WIDGET_MIME", "display_view", "ipython_shell", "is_kernel", "new_uid", "root", "stack",
]


def new_uid() -> str:
    """A short random identifier that lets a view's script find its own markup."""
    return secrets.token_hex(5)


def root(body: str, uid: str, title: str = "", subtitle: str = "") -> str:
    """The outer box of a view, classed ``tkv tkv-<uid>`` so scripts find their own view."""
    head = ""
    if title:
        sub = (tag("span", subtitle, NOTE + ";font-weight:normal;margin-left:8px")
               if subtitle else "")
        head = tag("div", escape(title) + sub, "font-weight:600;font-size:1.1em;margin:0 0 4px 0")
    return (f'<div class="tkv tkv-{uid}" style="font-size:13px;line-height:1.4;max-width:100%;'
            f'overflow-x:auto;padding:2px 0">{head}{body}</div>')


class View:
    """A rendered view: HTML for notebooks, plain text for terminals and logs.

    Every view the toolkit produces is a ``View``. Jupyter front ends pick the
    ``text/html`` form; consoles, papermill logs and ``repr`` get ``text``.
    """

    def __init__(self, html: str, text: str, title: str = ""):
        self.html = html
        self.text = text
        self.title = title
        self._echo_cell: int | None = None

    def _repr_html_(self) -> str:
        return self.html

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self.html, "text/plain": self.text}

    def _ipython_display_(self) -> None:
        # ``show(x)`` displays the view and returns it; when that call is the last
        # line of a cell, IPython would echo the returned view a second time.
        # The echo in the same cell is skipped; displaying it later works as usual.
        shell = ipython_shell()
        if shell is not None and self._echo_cell == getattr(shell, "execution_count", None):
            return
        self._publish(shell)

    def _publish(self, shell: Any) -> None:
        """Send the view to the front end (``shell`` is IPython's, or None)."""
        from IPython.display import publish_display_data

        publish_display_data(self._repr_mimebundle_())

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def save(self, path: str) -> str:
        """Write the view as a standalone HTML page (no external resources)."""
        page = ('<!DOCTYPE html><html><head><meta charset="utf-8">'
                f"<title>{escape(self.title or 'view')}</title></head>"
                '<body style="font-family:system-ui,sans-serif;margin:16px">'
                f"{self.html}</body></html>")
        storage.write_text(path, page)
        return path


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class LiveView(View):
    """A view that, where a kernel runs, displays an ipywidgets widget and then its
    static copy under a display id, which :meth:`_update_static` keeps current so a saved
    notebook shows the last choice. Elsewhere only the static copy. (The evaluation
    dashboard's module says why two outputs rather than one bundle.)

    Subclasses set ``live_note`` (the widget output's text where widgets cannot render),
    start with ``self._widget = None`` and ``self._handles = []``, and build
    ``self._widget`` in ``_ensure_widget``, importing ipywidgets there."""

    live_note = ""
    _widget: Any = None
    _handles: list[Any]

    def _ensure_widget(self) -> None:
        raise NotImplementedError

    def _update_static(self) -> None:
        for handle in self._handles:
            handle.update({"text/html": self.html, "text/plain": self.text}, raw=True)

    def _publish(self, shell: Any) -> None:
        from IPython.display import display

        if is_kernel(shell):
            try:
                self._ensure_widget()
            except ImportError:
                self._widget = None
            if self._widget is not None:
                display({WIDGET_MIME: {"version_major": 2, "version_minor": 0,
                                       "model_id": self._widget.model_id},
                         "text/plain": self.live_note,
                         "text/html": tag("div", escape(self.live_note), NOTE)}, raw=True)
        handle = display({"text/html": self.html, "text/plain": self.text}, raw=True,
                         display_id=True)
        if handle is not None:
            self._handles.append(handle)


def ipython_shell() -> Any:
    """The running IPython shell, or None (IPython is never imported here)."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def is_kernel(shell: Any) -> bool:
    """Whether ``shell`` is a notebook kernel's (it can show HTML and widgets)."""
    return shell is not None and hasattr(shell, "kernel")


def display_view(view: View) -> View:
    """Display ``view`` in a notebook kernel, or print its text elsewhere; return it."""
    shell = ipython_shell()
    if not is_kernel(shell):
        print(view.text)
        return view
    from IPython.display import display

    view._echo_cell = None
    display(view)
    # The returned view is not echoed again if this call ends the cell.
    view._echo_cell = getattr(shell, "execution_count", None)
    return view


def stack(views: Iterable[View], title: str = "") -> View:
    """Several views one below the other, as one view."""
    views = list(views)
    sep = f'<div style="border-top:1px solid {GRID};margin:8px 0"></div>'
    html = sep.join(v.html for v in views)
    text = "\n\n".join(v.text for v in views)
    return View(html, text, title or ", ".join(v.title for v in views if v.title))
