"""The comparison with live controls: a metric, the baseline candidate, a filter on slice names.

It displays the way the evaluation dashboard does (:mod:`.evaluation.widget` says why at
length). With a live kernel there are **two outputs**: first the ipywidgets widget (the
controls above the chosen metric's table), then the static comparison with a display
id. The widget's HTML carries one ``<style>`` rule that hides the static copy's metrics
section (a class unique to this view): where the widget renders, the metrics are not shown
twice; wherever it cannot (an untrusted notebook, a reopen without the kernel, nbconvert
offline) the rule never reaches the page and the static section shows. Every change of a
control redraws the static copy in place (deltas from the chosen baseline, the chosen
metric's table first, only the slices the filter keeps), so a saved or exported notebook
shows the last choice. Without a kernel only the static comparison is displayed, the same
markup as ``Comparison._repr_html_`` and the pages ``toolkit compare`` writes.

The widget lists every slice of the chosen metric (up to :data:`MAX_ROWS`, in a box that
scrolls), where the static copy cuts each table at ``max_slices`` rows. Importing this
module does not import ipywidgets; the view imports it when first displayed.
"""
from __future__ import annotations

from typing import Any, Mapping

from toolkit.errors import ToolkitError
from toolkit.visualize.compare import (CURVE_SLICES, MAX_SLICES, curves_section, group_label,
                                       matches, metric_groups, metric_table, rebase,
                                       static_class, static_html)
from toolkit.visualize.html import NOTE, LiveView, esc, new_uid, root, tag

LIVE_NOTE = ("Interactive controls (metric, baseline candidate, a filter on slice names) appear "
             "here when the notebook runs with a live kernel; the static comparison follows.")
#: the most rows the widget's table draws (the filter reaches the others)
MAX_ROWS = 500
#: the metric shown first when none is asked for, if the comparison has it
DEFAULT_METRIC = "auc"


class ComparisonView(LiveView):
    """A comparison's view: static markup everywhere, live controls where a kernel runs.

    ``metric`` (a metric name such as ``"auc"`` or a table's heading such as
    ``"binary_accuracy at threshold 0.5"``) picks the table the widget shows and the
    static copy lists first; ``baseline`` (a candidate's name) is what every delta is
    measured from. ``html`` and ``text`` are the static comparison for the current
    choices; :meth:`select` changes them (and the widget, once displayed).
    """

    live_note = LIVE_NOTE

    def __init__(self, comparison: Any, *, metric: str | None = None,
                 baseline: str | None = None, max_slices: int = MAX_SLICES,
                 curve_slices: int = CURVE_SLICES):
        self.comparison = comparison
        self.names = list(comparison.names)
        self.uid = new_uid()
        self._max_slices = max_slices
        self._frame = comparison.to_dataframe()
        self._keys = [key for key, _ in metric_groups(self._frame)]
        self._curves = curves_section(comparison, curve_slices)  # the same whatever is chosen
        self._rebased: tuple[str | None, Any, list[Any]] | None = None
        self.baseline = self.names[0] if self.names else None
        defaults = [i for i, key in enumerate(self._keys) if key[0] == DEFAULT_METRIC]
        self.metric = defaults[0] if defaults else 0  # an index into the metric tables
        self._picked: int | None = None  # a metric asked for: listed first in the static copy
        self._widget: Any = None
        self._controls: dict[str, Any] = {}
        self._table: Any = None
        self._handles: list[Any] = []
        self._updating = False
        super().__init__("", comparison.text(), f"Comparison of {len(self.names)} candidates")
        if metric is not None or baseline is not None:
            self.select(metric=metric, baseline=baseline)
        else:
            self._render()

    # --- choices ----------------------------------------------------------
    @property
    def metrics(self) -> list[str]:
        """The headings of the metric tables, in the order the dropdown offers them."""
        return [group_label(key) for key in self._keys]

    @property
    def slice_filter(self) -> str:
        return self._controls["filter"].value if "filter" in self._controls else ""

    def select(self, metric: str | None = None, baseline: str | None = None) -> "ComparisonView":
        """Show ``metric`` (a metric name or a table's heading) and/or measure the deltas
        from the candidate named ``baseline``; what is not given is kept."""
        index = self.metric if metric is None else self._metric_index(metric)
        if baseline is not None and baseline not in self.names:
            raise ToolkitError(f"no candidate named {baseline!r} to measure from; the "
                               f"candidates are {', '.join(map(repr, self.names))}")
        self._choose(index, baseline or self.baseline, picked=metric is not None)
        return self

    def _metric_index(self, metric: str) -> int:
        for i, key in enumerate(self._keys):
            if metric == group_label(key):
                return i
        for i, key in enumerate(self._keys):
            if metric == key[0]:
                return i
        raise ToolkitError(f"no metric {metric!r} in this comparison; pass one of "
                           f"{', '.join(map(repr, self.metrics))}")

    def _choose(self, index: int, baseline: str | None, picked: bool) -> None:
        self.metric, self.baseline = index, baseline
        if picked:
            self._picked = index
        self._render()
        self._sync_controls()
        self._refresh()

    def _groups(self) -> tuple[Any, list[Any]]:
        """The frame with deltas from the current baseline, and its metric tables."""
        if self._rebased is None or self._rebased[0] != self.baseline:
            frame = rebase(self._frame, self.names, self.baseline)
            self._rebased = (self.baseline, frame, [group for _, group in metric_groups(frame)])
        return self._rebased[1], self._rebased[2]

    # --- static form ------------------------------------------------------
    def _render(self) -> None:
        frame, _ = self._groups()
        first = self._keys[self._picked] if self._picked is not None else None
        self.html = static_html(self.comparison, self.uid, self._max_slices,
                                baseline=self.baseline, first=first, frame=frame,
                                slice_filter=self.slice_filter, curves=self._curves)

    # --- widget -----------------------------------------------------------
    @property
    def live_table_html(self) -> str:
        """The widget's table: the chosen metric for every slice the filter keeps."""
        if not self._keys:
            return root(tag("div", "No metrics.", NOTE), self.uid + "-live")
        _, groups = self._groups()
        group = groups[self.metric]
        every = list(dict.fromkeys(group["slice"]))
        text = self.slice_filter.strip()
        shown = [name for name in every if matches(name, text)]
        note = (f"{len(shown):,} of {len(every):,} slices match “{text}”." if text
                else f"{len(every):,} slices.")
        if len(shown) > MAX_ROWS:
            note += f" The first {MAX_ROWS:,} are listed; type in the filter to reach the others."
        note += (f" Under every candidate but {self.baseline}: the difference to "
                 f"{self.baseline}, bold where the intervals do not overlap.")
        body = (tag("div", esc(group_label(self._keys[self.metric])), "font-weight:600")
                + tag("div", esc(note, 1000), NOTE)
                + (tag("div", metric_table(group, self.names, self.baseline, shown[:MAX_ROWS]),
                       "max-height:480px;overflow:auto")
                   if shown else tag("div", "No slice matches.", NOTE)))
        return root(body, self.uid + "-live")

    @property
    def controls(self) -> dict[str, Any]:
        """The Dropdowns ``metric`` and ``baseline`` and the Text ``filter`` (slice names
        containing it, case-insensitive)."""
        self._ensure_widget()
        return dict(self._controls)

    @property
    def widget(self) -> Any:
        """The ipywidgets VBox: controls above the chosen metric's table (built on first use)."""
        self._ensure_widget()
        return self._widget

    def _ensure_widget(self) -> None:
        if self._widget is not None:
            return
        import ipywidgets as widgets

        style = {"description_width": "initial"}
        metric = widgets.Dropdown(options=[(_label(m), i) for i, m in enumerate(self.metrics)],
                                  value=self.metric if self._keys else None,
                                  description="Metric", style=style,
                                  layout=widgets.Layout(width="320px"))
        baseline = widgets.Dropdown(options=[(_label(n), n) for n in self.names],
                                    value=self.baseline, description="Baseline", style=style,
                                    layout=widgets.Layout(width="280px"))
        slice_filter = widgets.Text(value="", placeholder="part of a slice name",
                                    description="Filter slices", continuous_update=True,
                                    style=style, layout=widgets.Layout(width="290px"))
        metric.observe(self._on_change, names="value")
        baseline.observe(self._on_change, names="value")
        slice_filter.observe(self._on_change, names="value")
        self._controls = {"metric": metric, "baseline": baseline, "filter": slice_filter}
        self._table = widgets.HTML(value=self._table_value(), layout=widgets.Layout(width="100%"))
        self._table.add_class(_live_class(self.uid))
        bar = widgets.HBox([metric, baseline, slice_filter],
                           layout=widgets.Layout(flex_flow="row wrap"))
        self._widget = widgets.VBox([bar, self._table])

    def _table_value(self) -> str:
        return _live_rules(self.uid) + self.live_table_html

    def _on_change(self, change: Mapping[str, Any]) -> None:
        if self._updating:
            return
        metric = self._controls["metric"].value
        metric = self.metric if metric is None else metric
        self._choose(metric, self._controls["baseline"].value, picked=metric != self.metric)

    def _sync_controls(self) -> None:
        if self._widget is None:
            return
        self._updating = True
        try:
            if self._keys and self._controls["metric"].value != self.metric:
                self._controls["metric"].value = self.metric
            if self._controls["baseline"].value != self.baseline:
                self._controls["baseline"].value = self.baseline
        finally:
            self._updating = False

    def _refresh(self) -> None:
        if self._table is not None:
            self._table.value = self._table_value()
        self._update_static()



def _live_class(uid: str) -> str:
    return f"tkc-live-{uid}"


def _live_rules(uid: str) -> str:
    """The only stylesheet, sent inside the widget: it hides this view's static metrics
    section, and lets the widget's table scroll sideways instead of being clipped."""
    live = _live_class(uid)
    return (f"<style>.{static_class(uid)}{{display:none !important}}"
            f".{live},.{live} .widget-html-content{{min-width:0;max-width:100%;"
            f"overflow-x:auto !important}}</style>")


def _label(text: str, n: int = 60) -> str:
    """Dropdown labels are plain text (the widget escapes them); keep them short."""
    return text if len(text) <= n else text[: n - 1] + "…"


def comparison_widget(comparison: Any, **options: Any) -> ComparisonView:
    """The view of ``comparison`` (``Comparison.view()``); ``options`` as for
    :class:`ComparisonView` (``metric=``, ``baseline=``, ``max_slices=``, ``curve_slices=``)."""
    return ComparisonView(comparison, **options)
