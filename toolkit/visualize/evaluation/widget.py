"""The interactive dashboard: ipywidgets controls over the chart, plus a static copy.

How it displays, and why:

* Bars are ``div``s with inline styles only. JupyterLab strips ``<script>``,
  ``<style>`` and inline ``<svg>`` from untrusted output (papermill's), and
  nbconvert's HTML cannot run widgets offline, so nothing a reader needs may
  depend on scripts, stylesheets or SVG.
* :class:`EvaluationDashboard` displays **two outputs**: first the ipywidgets
  dashboard (controls plus a chart in an ``HTML`` widget), then a static
  output with the same chart for the current choices and the full table. The
  widget's HTML carries one ``<style>`` rule that hides the static chart of the
  same dashboard (a class unique to it). Where the widget renders (a live
  kernel), that rule exists and only the widget's chart is seen; wherever the
  widget cannot render (untrusted notebook, kernel-less reopen, nbconvert HTML
  offline, VS Code without the widget manager) the rule never reaches the page
  and the static chart shows. The full table is never hidden, so it is never
  duplicated in the widget either.
* A single bundle holding both the widget and ``text/html`` was rejected: a
  front end renders one mimetype per output, and both JupyterLab (a trusted
  notebook reopened without its kernel: "model not found") and nbconvert
  (papermill stores widget state, so the widget view wins and is empty offline)
  pick the widget where it cannot render.
* When a control changes, the static output is updated in place (its display
  id), so a saved or exported notebook shows what the user last chose.
* Hundreds of slices: the static output holds the default rows and a "Show all"
  ``<details>`` (see :mod:`.static`). The widget has a text filter on slice names and
  a "Show all" box instead, draws its rows in a scrolling box whose header row stays
  in view (``position: sticky`` survives in a widget, not in sanitized output), and
  draws other metrics on request: nothing but the chosen metric is embedded.

Importing this module does not import TensorFlow, TFMA or ipywidgets; the
dashboard imports ipywidgets when it is first displayed.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from toolkit.errors import ToolkitError
from toolkit.visualize.evaluation.loading import dashboard_data, load_evaluation
from toolkit.visualize.evaluation.model import (ALL_SLICES, DEFAULT_TOP, SORTS, Choice, resolve,
                                                resolve_metric, sub_key_label)
from toolkit.visualize.evaluation.static import (Chart, chart_html, live_chart_html, live_class,
                                                 live_rules, metrics_section, static_html)
from toolkit.visualize.evaluation.text import plain_text
from toolkit.visualize.html import LiveView, new_uid, root

LIVE_NOTE = ("Interactive controls (metric, threshold, class, baseline, slicing, sort, a filter on "
             "slice names) appear here when the notebook runs with a live kernel; the static "
             "dashboard follows.")


class EvaluationDashboard(LiveView):
    """The interactive fairness dashboard (ipywidgets 7) with a static copy that always shows.

    Dropdowns pick the metric, threshold, class (for a multi-class evaluation: a
    class id or top-k of ``binarize``; disabled otherwise), baseline slice, slicing
    and sort order; the chart follows. The chart lists the baseline, the ``top`` slices
    with the largest and smallest gaps to it and every failing slice; a text box filters
    every slice by name, and "Show all" lists them all. Displayed in a notebook it emits
    the widget and then the static dashboard (see this module's docstring for why both,
    and why only one is ever seen). As a :class:`View` its ``html`` and ``text`` are the
    static dashboard for the current choices.
    """

    live_note = LIVE_NOTE

    def __init__(self, result: Any, compare_to: Any = None, *, metric: str | None = None,
                 threshold: float | None = None, baseline_slice: Any = None, slicing: Any = None,
                 sort: str = "metric", labels: Sequence[str] | None = None, class_id: Any = None,
                 top: int | None = DEFAULT_TOP):
        self._data = dashboard_data(result, compare_to, labels)
        self.choice = resolve(self._data, metric, threshold, baseline_slice, slicing, sort,
                              class_id, top)
        self.uid = new_uid()
        self._header_html = ""
        self._header_text = ""
        self._widget: Any = None
        self._header_widget: Any = None
        self._controls: dict[str, Any] = {}
        self._filter: Any = None
        self._show_all: Any = None
        self._chart: Any = None
        self._handles: list[Any] = []
        self._updating = False
        self._chart_for: tuple[Choice, Chart, str] | None = None
        self._table: str | None = None
        super().__init__("", "", "Evaluation")
        self._render()

    # --- static form ------------------------------------------------------
    def _render(self) -> None:
        chart = self.chart_html
        if self._table is None:  # the metrics section does not depend on the choices: built once
            self._table = metrics_section(self._data)
        self.html = static_html(self._data, self.choice, self.uid, self._header_html, chart,
                                self._table)
        text = plain_text(self._data, self.choice, self._chart_model())
        self.text = f"{self._header_text}\n{text}" if self._header_text else text

    def _chart_model(self) -> Chart:
        """Rows, selection and scale of the current choice (built once per choice)."""
        if self._chart_for is None or self._chart_for[0] != self.choice:
            chart = Chart(self._data, self.choice)
            self._chart_for = (self.choice, chart, chart_html(self._data, self.choice, chart))
        return self._chart_for[1]

    @property
    def chart_html(self) -> str:
        """The static chart for the current choices (the default rows and "Show all")."""
        self._chart_model()
        return self._chart_for[2]

    @property
    def live_chart_html(self) -> str:
        """The chart as the widget draws it: filtered by name, or every slice with "Show all"."""
        filter_text = self._filter.value if self._filter is not None else ""
        show_all = bool(self._show_all.value) if self._show_all is not None else False
        return live_chart_html(self._data, self.choice, self._chart_model(), filter_text,
                               show_all)

    def with_header(self, html: str, text: str) -> "EvaluationDashboard":
        """Put ``html``/``text`` (trusted markup, e.g. an artifact's header) above the dashboard.

        Call it before the dashboard is displayed: the widget shows the header above
        its controls, the static copy above its chart.
        """
        self._header_html, self._header_text = html, text
        self._render()
        if self._header_widget is not None:
            self._header_widget.value = html
            self._header_widget.layout.display = "" if html else "none"
        return self

    def select(self, **changes: Any) -> "EvaluationDashboard":
        """Change what is shown; keywords as in :func:`evaluation_view` (``baseline_slice``...)."""
        current = {"metric": self.choice.metric, "threshold": self.choice.threshold,
                   "baseline_slice": self.choice.baseline, "slicing": self.choice.slicing,
                   "sort": self.choice.sort, "class_id": self.choice.sub_key,
                   "top": self.choice.top}
        unknown = set(changes) - set(current)
        if unknown:
            raise ToolkitError(f"unknown dashboard choice(s) {sorted(unknown)}; "
                               f"use {', '.join(current)}")
        if "metric" in changes and "threshold" not in changes:
            metric = resolve_metric(self._data, changes["metric"])
            current["threshold"] = self._data.keep_threshold(metric, self.choice.threshold)
        if "metric" in changes and "class_id" not in changes:
            metric = resolve_metric(self._data, changes["metric"])
            if self.choice.sub_key not in self._data.sub_keys_for(metric):
                current["class_id"] = None
        current.update(changes)
        self.choice = resolve(self._data, current["metric"], current["threshold"],
                              current["baseline_slice"], current["slicing"], current["sort"],
                              current["class_id"], current["top"])
        self._render()
        self._sync_controls()
        self._refresh()
        return self

    # --- widget -----------------------------------------------------------
    @property
    def controls(self) -> dict[str, Any]:
        """The controls by name: the Dropdowns metric, threshold, class (multi-class
        evaluations only), baseline, slicing, sort; the Text ``filter`` (slice names
        containing it, case-insensitive) and the Checkbox ``show_all``."""
        self._ensure_widget()
        return dict(self._controls, filter=self._filter, show_all=self._show_all)

    @property
    def widget(self) -> Any:
        """The ipywidgets VBox: controls above the chart (built on first use)."""
        self._ensure_widget()
        return self._widget

    def _options(self) -> dict[str, list[tuple[str, Any]]]:
        data = self._data
        thresholds = [(f"{t:g}", f"{t!r}") for t in data.thresholds(self.choice.metric)]
        return {
            "metric": [(data.metric_label(m), m) for m in data.metrics],
            "threshold": thresholds or [("—", "")],
            "class": [(sub_key_label(k), k) for k in data.sub_keys_for(self.choice.metric)] or [("—", "")],
            "baseline": [(_label(b), b) for b in data.baselines],
            "slicing": [("all slices", ALL_SLICES)] + [(_label(s), s) for s in data.specs],
            "sort": [(label, key) for key, label in SORTS.items()],
        }

    def _values(self) -> dict[str, Any]:
        choice = self.choice
        return {"metric": choice.metric,
                "threshold": "" if choice.threshold is None else f"{choice.threshold!r}",
                "class": choice.sub_key,
                "baseline": choice.baseline, "slicing": choice.slicing, "sort": choice.sort}

    def _ensure_widget(self) -> None:
        if self._widget is not None:
            return
        import ipywidgets as widgets

        labels = {"metric": "Metric", "threshold": "Threshold", "class": "Class",
                  "baseline": "Baseline", "slicing": "Slicing", "sort": "Sort by"}
        if self._data.sub_keys == [""]:  # no per-class results: no class chooser
            del labels["class"]
        widths = {"metric": "290px", "threshold": "140px", "class": "170px", "baseline": "250px",
                  "slicing": "220px", "sort": "200px"}
        options, values = self._options(), self._values()
        for name, label in labels.items():
            dropdown = widgets.Dropdown(options=options[name], value=values[name],
                                        description=label,
                                        style={"description_width": "initial"},
                                        layout=widgets.Layout(width=widths[name]))
            dropdown.observe(self._on_change, names="value")
            self._controls[name] = dropdown
        self._controls["threshold"].disabled = values["threshold"] == ""
        if "class" in self._controls:
            self._controls["class"].disabled = len(options["class"]) < 2
        self._filter = widgets.Text(value="", placeholder="part of a slice name",
                                    description="Filter slices", continuous_update=True,
                                    style={"description_width": "initial"},
                                    layout=widgets.Layout(width="290px"))
        self._show_all = widgets.Checkbox(value=False, description=self._show_all_label(),
                                          indent=False, layout=widgets.Layout(width="220px"))
        self._sync_show_all()
        self._filter.observe(self._on_rows, names="value")
        self._show_all.observe(self._on_rows, names="value")
        self._chart = widgets.HTML(value=self._chart_value(),
                                   layout=widgets.Layout(width="100%"))
        self._chart.add_class(live_class(self.uid))
        bar = widgets.HBox(list(self._controls.values()) + [self._filter, self._show_all],
                           layout=widgets.Layout(flex_flow="row wrap"))
        shown = "" if self._header_html else "none"
        self._header_widget = widgets.HTML(value=self._header_html,
                                           layout=widgets.Layout(display=shown))
        self._widget = widgets.VBox([self._header_widget, bar, self._chart])

    def _chart_value(self) -> str:
        return live_rules(self.uid) + root(self.live_chart_html, self.uid + "-live")

    def _show_all_label(self) -> str:
        return f"Show all {len(self._chart_model().selection.rows):,} slices"

    def _sync_show_all(self) -> None:
        """The box names how many slices there are, and is off when every slice shows anyway."""
        if self._show_all is None:
            return
        self._show_all.description = self._show_all_label()
        self._show_all.disabled = not self._chart_model().selection.hidden

    def _on_rows(self, change: Mapping[str, Any]) -> None:
        """The filter or "Show all" changed: only the widget's chart is drawn again (the
        static copy always holds the default rows and its own "Show all")."""
        if self._chart is not None:
            self._chart.value = self._chart_value()

    def _on_change(self, change: Mapping[str, Any]) -> None:
        if self._updating:
            return
        values = {name: control.value for name, control in self._controls.items()}
        changes = {"metric": values["metric"], "baseline_slice": values["baseline"],
                   "slicing": values["slicing"], "sort": values["sort"]}
        if values["metric"] == self.choice.metric:  # a new metric keeps the nearest threshold
            changes["threshold"] = None if values["threshold"] == "" else float(values["threshold"])
            changes["class_id"] = values.get("class") or None
        self.select(**changes)

    def _sync_controls(self) -> None:
        if self._widget is None:
            return
        self._updating = True
        try:
            options, values = self._options(), self._values()
            for name, control in self._controls.items():
                if list(control.options) != options[name]:
                    control.options = options[name]
                if control.value != values[name]:
                    control.value = values[name]
            self._controls["threshold"].disabled = values["threshold"] == ""
            if "class" in self._controls:
                self._controls["class"].disabled = len(options["class"]) < 2
            self._sync_show_all()
        finally:
            self._updating = False

    def _refresh(self) -> None:
        if self._chart is not None:
            self._chart.value = self._chart_value()
        self._update_static()



def _label(text: str, n: int = 60) -> str:
    """Dropdown labels are plain text (the widget escapes them); keep them short."""
    return text if len(text) <= n else text[: n - 1] + "…"


def dashboard(result: Any, compare_to: Any = None, **choices: Any) -> EvaluationDashboard:
    """The interactive dashboard of ``result``; what ``toolkit.show(result)`` displays.

    ``choices`` are :class:`EvaluationDashboard`'s (``metric=``, ``top=``...):
    ``toolkit.show(result, top=5)`` passes them on.
    """
    return EvaluationDashboard(result, compare_to, **choices)


def model_evaluation_view(artifact: Any, **choices: Any) -> View:
    """The dashboard of a ``ModelEvaluation`` artifact (what ``toolkit.show`` draws for one)."""
    return EvaluationDashboard(load_evaluation(artifact), **choices)
