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
* :mod:`.static` renders it as static HTML and plain text;
* :mod:`.widget` is the ipywidgets :class:`EvaluationDashboard`, whose docstring
  says why a notebook gets two outputs (the live widget and a static copy).

Importing this package does not import TensorFlow, TFMA or ipywidgets; the
dashboard imports ipywidgets when it is first displayed. :mod:`toolkit.visualize`
registers :func:`dashboard` for ``EvalResult`` and :func:`model_evaluation_view`
for ``ModelEvaluation`` artifacts.
"""
from __future__ import annotations

from toolkit.visualize.evaluation.loading import load_evaluation
from toolkit.visualize.evaluation.model import Choice
from toolkit.visualize.evaluation.static import evaluation_view
from toolkit.visualize.evaluation.widget import (EvaluationDashboard, dashboard,
                                                 model_evaluation_view)

__all__ = ["Choice", "EvaluationDashboard", "dashboard", "evaluation_view", "load_evaluation",
           "model_evaluation_view"]
