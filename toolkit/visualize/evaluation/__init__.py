"""The per-slice fairness dashboard: Fairness Indicators' feature set as offline HTML.

For one metric and threshold it draws a bar per slice (with its confidence
interval, clipped to [0, 1] for rates and marked so), marks the baseline slice,
gives each slice's difference and ratio to that baseline, its size, greys slices
below ``min_slice_size`` and flags failed thresholds. With many slices it opens on
the baseline, the ``top`` (10) slices with the largest and with the smallest gap to
it and every failing slice; "Show all" lists the rest (a ``<details>`` element
statically, a filter and a check box in the widget). A full table holds every slice,
metric and threshold of a small evaluation; a large one embeds the chosen metric
only and points to ``result.to_dataframe()``. A second
evaluation (``compare_to=``, or a baseline model inside the result) is drawn as
paired bars. A multi-class evaluation gets a class chooser (the TFMA sub keys of
``binarize``: ``classId:0``, ``topK:1``...) and one table per class.

One job per module:

* :mod:`.loading` recognises the input (an ``EvalResult``, a tidy DataFrame, a
  ``tfma.EvalResult`` and ``ValidationResult``, a ``ModelEvaluation`` artifact)
  and turns it into records;
* :mod:`.model` holds the data model: slices, series, choices and chart rows;
* :mod:`.static` renders it as static HTML, :mod:`.text` as plain text, and
  :func:`evaluation_view` (here) puts the two together as the static dashboard;
* :mod:`.widget` is the ipywidgets :class:`EvaluationDashboard`, whose docstring
  says why a notebook gets two outputs (the live widget and a static copy).

Importing this package does not import TensorFlow, TFMA or ipywidgets; the
dashboard imports ipywidgets when it is first displayed. :mod:`toolkit.visualize`
registers :func:`dashboard` for ``EvalResult`` and :func:`model_evaluation_view`
for ``ModelEvaluation`` artifacts.
"""
from __future__ import annotations

from typing import Any, Sequence

from toolkit.visualize.evaluation.loading import dashboard_data, load_evaluation
from toolkit.visualize.evaluation.model import DEFAULT_TOP, Choice, resolve
from toolkit.visualize.evaluation.static import Chart, chart_html, static_html
from toolkit.visualize.evaluation.text import plain_text
from toolkit.visualize.evaluation.widget import (EvaluationDashboard, dashboard,
                                                 model_evaluation_view)
from toolkit.visualize.html import View, new_uid

__all__ = ["Choice", "EvaluationDashboard", "dashboard", "evaluation_view", "load_evaluation",
           "model_evaluation_view"]


def evaluation_view(result: Any, compare_to: Any = None, metric: str | None = None,
                    threshold: float | None = None, baseline_slice: Any = None,
                    slicing: Any = None, sort: str = "metric", *,
                    labels: Sequence[str] | None = None, class_id: Any = None,
                    top: int | None = DEFAULT_TOP) -> View:
    """The static fairness dashboard of ``result`` for one choice, and its metrics table.

    Args:
      result: a :func:`toolkit.evaluate` result, a ``tfma.EvalResult`` or a tidy
        metrics dataframe (``EvalResult.to_dataframe()``'s columns).
      compare_to: a second evaluation (e.g. the baseline model's) drawn as paired bars.
        A result evaluated with a baseline model is paired on its own.
      metric: metric name (TFMA's, or without the ``fairness_indicators_metrics/``
        prefix); default: the false positive rate if evaluated, else the first metric.
      threshold: one of the metric's thresholds; default its first.
      baseline_slice: display name (``"sex:female"``), TFMA slice key or dict; default Overall.
      slicing: a slicing spec (``"sex"``, ``["sex", "age_group"]``, ``"sex vs sex"``
        for cross slices); default every single (non-cross) slice.
      sort: ``"metric"`` (highest value first), ``"gap"`` (largest absolute
        difference to the baseline first) or ``"slice"`` (evaluation order).
      labels: names of the two evaluations when paired (default candidate, baseline).
      class_id: for a multi-class evaluation, the class to chart: a class id (``0``) or
        a TFMA sub key (``"classId:0"``, ``"topK:1"``); default the metrics without
        binarization, else the metric's first class. The full table has every class.
      top: the chart lists the baseline, the ``top`` slices with the largest and the ``top``
        with the smallest gap to it (value − baseline) and every slice failing a threshold;
        "Show all" below it lists every slice. None lists every slice in the chart. When
        only ``top`` slices or fewer would be left out, every slice is listed.
    """
    data = dashboard_data(result, compare_to, labels)
    choice = resolve(data, metric, threshold, baseline_slice, slicing, sort, class_id, top)
    chart = Chart(data, choice)
    uid = new_uid()
    return View(static_html(data, choice, uid, chart=chart_html(data, choice, chart)),
                plain_text(data, choice, chart), "Evaluation")
