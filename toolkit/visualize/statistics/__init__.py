"""Feature statistics view: the Facets Overview feature set as static HTML.

One table for numeric features and one for categorical features; each feature
shows its summary numbers per dataset (split), a standard histogram drawn with
plain ``div`` bars, its deciles (the quantile histogram) as a strip, and, when
two or more datasets are shown, the distribution distance TFDV uses for drift
and skew: Jensen-Shannon divergence for numeric histograms, L-infinity distance
for categorical values. A small inline script adds sorting and a name filter
where scripts run (trusted notebooks, exported HTML, VS Code); everything else,
including per-criterion rankings, is readable without it.

One job per module:

* :mod:`.loading` reads statistics from whatever the user passes and labels the
  datasets;
* :mod:`.model` holds TFDV's distances and each feature's numbers across datasets;
* :mod:`.charts` draws a feature's histogram, quantiles or top values;
* :mod:`.static` renders the tables, rankings and script as the view;
* :mod:`.text` is the view's plain-text form.

Importing this package does not import TensorFlow or TFDV (a DataFrame's statistics
import TFDV when they are computed).
"""
from __future__ import annotations

from typing import Any, Sequence

from toolkit.visualize.html import View, display_view
from toolkit.visualize.statistics.charts import CHART_HEIGHT, CHART_WIDTH, TOP_VALUES_SHOWN
from toolkit.visualize.statistics.loading import artifact_statistics, load_statistics
from toolkit.visualize.statistics.model import (Dataset, DatasetList, Histogram,
                                                jensen_shannon_divergence, l_infinity_distance,
                                                non_uniformity)
from toolkit.visualize.statistics.static import (DISTANCE_ALERT, FEATURES_SHOWN, RANKED,
                                                 statistics_view)

__all__ = [
    "CHART_HEIGHT", "CHART_WIDTH", "DISTANCE_ALERT", "FEATURES_SHOWN", "RANKED",
    "TOP_VALUES_SHOWN", "Dataset", "DatasetList", "Histogram", "artifact_statistics",
    "jensen_shannon_divergence", "l_infinity_distance", "load_statistics", "non_uniformity",
    "show_statistics", "statistics_view", "statistics_view_of",
]


def statistics_view_of(data: Any, compare_to: Any = None,
                       names: Sequence[str] | None = None) -> View:
    """The view ``show_statistics`` displays, without displaying it."""
    names = list(names or [])
    inputs = [data] + ([compare_to] if compare_to is not None else [])
    defaults = ["data", "compare_to"]
    stats: dict[str, DatasetList] = {}
    for i, source in enumerate(inputs):
        named = i < len(names)
        label = names[i] if named else defaults[i]
        prefixed = named or len(inputs) > 1
        loaded = load_statistics(source)
        for split, value in loaded.items():
            if len(loaded) == 1:
                key = label if prefixed or not split else split
            else:
                key = f"{label}/{split}" if prefixed else split
            while key in stats:
                key += "'"
            stats[key] = value
    return statistics_view(stats)


def show_statistics(data: Any, compare_to: Any = None,
                    names: Sequence[str] | None = None) -> View:
    """Display feature statistics of ``data`` (optionally beside ``compare_to``).

    ``data`` and ``compare_to`` may each be a pandas DataFrame, a
    ``DatasetFeatureStatisticsList``, a path to ``FeatureStats.pb`` or to an
    artifact folder with ``Split-*/FeatureStats.pb``, or an ExampleStatistics
    artifact. ``names`` labels them (default ``data`` and ``compare_to``; splits
    keep their own names). Displays like :func:`toolkit.show` and returns the view.
    """
    return display_view(statistics_view_of(data, compare_to, names))
