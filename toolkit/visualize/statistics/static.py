"""The statistics view as static HTML: a table per kind of feature (name, chart,
distance, numbers per dataset), rankings that need no script, and the small script
that adds sorting and a name filter where scripts run."""
from __future__ import annotations

from typing import Any, Mapping

from tensorflow_metadata.proto.v0 import statistics_pb2

from toolkit.visualize.html import (BAD, GRID, HEADING, MUTED, NOTE, PALETTE, TABLE, TABLE_ATTRS,
                                    TD, TH_LEFT, TH_RIGHT, WARN, View, esc, escape, fmt_num,
                                    fmt_pct, new_uid, root, swatch, tag)
from toolkit.visualize.statistics.charts import categorical_chart, display_value, numeric_chart
from toolkit.visualize.statistics.loading import labelled_datasets
from toolkit.visualize.statistics.model import (DISTANCE_NAME, Feature, collect_features,
                                                common_statistics, missing_share, total_values)
from toolkit.visualize.statistics.text import statistics_text

RANKED = 10
#: Features drawn in detail; beyond this a view would weigh megabytes per thousand
#: features in the notebook. The rankings and counts still cover every feature.
FEATURES_SHOWN = 500
#: Distances at or above this are highlighted (TFDV examples use 0.01-0.1 thresholds).
DISTANCE_ALERT = 0.1


def _cell(text: str, style: str = "", exact: float | None = None, colour: str = "") -> str:
    """A cell, right-aligned unless ``style`` says otherwise; ``exact`` becomes its tooltip."""
    if colour:
        style = f"{style};color:{colour};font-weight:600" if style else \
            f"color:{colour};font-weight:600"
    title = repr(exact) if exact is not None and fmt_num(exact) != repr(exact) else None
    return tag("td", text, style, title=title)


def _missing_cell(feature: statistics_pb2.FeatureNameStatistics) -> str:
    missing = missing_share(feature)
    colour = BAD if missing >= 0.5 else (WARN if missing > 0 else "")
    return _cell(fmt_pct(missing), colour=colour)


def _numeric_cells(f: statistics_pb2.FeatureNameStatistics) -> list[str]:
    s = f.num_stats
    common = s.common_stats
    zeros = s.num_zeros / (common.tot_num_values or common.num_non_missing or 1)
    return [
        _cell(fmt_num(common.num_non_missing)),
        _missing_cell(f),
        _cell(fmt_num(s.mean), exact=s.mean),
        _cell(fmt_num(s.std_dev), exact=s.std_dev),
        _cell(fmt_pct(zeros), colour=BAD if zeros >= 0.5 else ""),
        _cell(fmt_num(s.min), exact=s.min),
        _cell(fmt_num(s.median), exact=s.median),
        _cell(fmt_num(s.max), exact=s.max),
    ]


def _categorical_cells(f: statistics_pb2.FeatureNameStatistics) -> list[str]:
    s = f.string_stats
    common = s.common_stats
    top = s.top_values[0] if s.top_values else None
    if top is None and s.rank_histogram.buckets:
        bucket = s.rank_histogram.buckets[0]
        top = statistics_pb2.StringStatistics.FreqAndValue(value=bucket.label,
                                                           frequency=bucket.sample_count)
    total = total_values(f) or 1.0
    top_cell = (f'<td style="{TD};max-width:14em;overflow:hidden;white-space:nowrap;'
                f'text-overflow:ellipsis" title="{esc(top.value, 300)}">'
                f'{display_value(top.value)}</td>' if top else f'<td style="{TD}">–</td>')
    return [
        _cell(fmt_num(common.num_non_missing)),
        _missing_cell(f),
        _cell(fmt_num(s.unique)),
        top_cell,
        _cell(f"{fmt_num(top.frequency)} ({fmt_pct(top.frequency / total)})" if top else "–"),
        _cell(fmt_num(s.avg_length), exact=s.avg_length),
    ]


def _other_cells(f: statistics_pb2.FeatureNameStatistics) -> list[str]:
    common = common_statistics(f)
    kind = f.WhichOneof("stats") or ""
    detail = ""
    if kind == "bytes_stats":
        b = f.bytes_stats
        detail = (f"unique {fmt_num(b.unique)}, avg {fmt_num(b.avg_num_bytes)} bytes, "
                  f"max {fmt_num(b.max_num_bytes)} bytes")
    return [
        _cell(escape(kind.replace("_stats", "") or "unknown"), TD),
        _cell(fmt_num(common.num_non_missing)),
        _missing_cell(f),
        _cell(fmt_num(common.avg_num_values), exact=common.avg_num_values),
        _cell(escape(detail), TD),
    ]


_COLUMNS = {
    "numeric": ["Count", "Missing", "Mean", "Std dev", "Zeros", "Min", "Median", "Max"],
    "categorical": ["Count", "Missing", "Unique", "Top value", "Top freq", "Avg length"],
    "other": ["Stats", "Count", "Missing", "Avg values", "Details"],
}
_CELLS = {"numeric": _numeric_cells, "categorical": _categorical_cells, "other": _other_cells}
_TYPE_NAMES = {0: "INT", 1: "FLOAT", 2: "STRING", 3: "BYTES", 4: "STRUCT"}


def _name_cell(feature: Feature, rows: int) -> str:
    first = next(f for f in feature.per_dataset if f is not None)
    type_name = _TYPE_NAMES.get(first.type, "")
    common = common_statistics(first)
    extra = ""
    if common.max_num_values > 1 or common.min_num_values != common.max_num_values:
        extra = (f'<div style="{NOTE}">{fmt_num(common.min_num_values)}–'
                 f'{fmt_num(common.max_num_values)} values per example</div>')
    span = f' rowspan="{rows}"' if rows > 1 else ""
    # Usual names stay on one line; only very long ones may break anywhere.
    wrap = ("white-space:nowrap" if len(feature.name) <= 40
            else "min-width:12em;max-width:24em;overflow-wrap:anywhere")
    return (f'<td style="{TD};font-weight:600;{wrap}"{span} '
            f'title="{esc(feature.name, 500)}">{esc(feature.name, 120)} '
            f'<span style="{NOTE};font-weight:normal">{type_name}</span>{extra}</td>')


def _distance_cell(feature: Feature, labels: list[str], rows: int) -> str:
    distances = feature.distances or []
    parts = []
    for label, d in zip(labels[1:], distances):
        colour = WARN if d is not None and d >= DISTANCE_ALERT else ""
        value = f"{d:.4f}" if d is not None else "–"
        text = value if len(labels) == 2 else f"{escape(label)}: {value}"
        parts.append(tag("div", text, f"color:{colour};font-weight:600" if colour else ""))
    vs = f"{labels[0]} vs " + ", ".join(labels[1:])
    title = f"{DISTANCE_NAME.get(feature.kind, 'distance')}, {vs}"
    span = f' rowspan="{rows}"' if rows > 1 else ""
    return f'<td{span} title="{escape(title)}">{"".join(parts) or "–"}</td>'


def _feature_body(feature: Feature, labels: list[str]) -> str:
    multi = len(labels) > 1
    rows = len(labels)
    chart = (numeric_chart(feature, labels) if feature.kind == "numeric" else
             categorical_chart(feature, labels) if feature.kind == "categorical" else "")
    span = f' rowspan="{rows}"' if rows > 1 else ""
    html_rows = []
    for i, (label, f) in enumerate(zip(labels, feature.per_dataset)):
        cells = []
        if i == 0:
            # Name, chart and distance come first so they stay in sight in a
            # narrow notebook; the numbers follow and may scroll sideways.
            cells.append(_name_cell(feature, rows))
            if feature.kind != "other":
                cells.append(f'<td style="{TD}"{span}>{chart}</td>')
            if multi and feature.kind in DISTANCE_NAME:
                cells.append(_distance_cell(feature, labels, rows))
        if multi:
            cells.append(f'<td style="{TD};white-space:nowrap">{swatch(PALETTE[i % len(PALETTE)])}'
                         f'{esc(label, 60)}</td>')
        if f is None:
            cells.append(f'<td style="{TD};color:{MUTED}" colspan="{len(_COLUMNS[feature.kind])}">'
                         f'not in this dataset</td>')
        else:
            cells.extend(_CELLS[feature.kind](f))
        html_rows.append("<tr>" + "".join(cells) + "</tr>")
    distance = feature.distance
    attrs = (f' data-f="{esc(feature.name, 500)}" data-o="{feature.order}" '
             f'data-m="{feature.missing:.6g}" data-u="{feature.non_uniformity:.6g}" '
             f'data-d="{distance if distance is not None else -1:.6g}"')
    return f'<tbody style="border-top:1px solid {GRID}"{attrs}>{"".join(html_rows)}</tbody>'


def _feature_table(kind: str, features: list[Feature], labels: list[str]) -> str:
    if not features:
        return ""
    multi = len(labels) > 1
    headers = ["Feature"]
    if kind == "numeric":
        headers.append("Histogram · quantiles")
    elif kind == "categorical":
        headers.append("Top values")
    if multi and kind in DISTANCE_NAME:
        headers.append(DISTANCE_NAME[kind])
    headers += (["Dataset"] if multi else []) + _COLUMNS[kind]
    text_columns = {"Feature", "Dataset", "Top value", "Stats", "Details",
                    "Histogram · quantiles", "Top values"}
    head = "".join(tag("th", escape(h), TH_LEFT if h in text_columns else TH_RIGHT)
                   for h in headers)
    title = {"numeric": "Numeric features", "categorical": "Categorical features",
             "other": "Other features"}[kind]
    bodies = "".join(_feature_body(f, labels) for f in features)
    return (tag("div", f"{title} ({len(features)})", HEADING)
            + f'<table class="tkv-sortable" {TABLE_ATTRS} style="{TABLE}">'
            f"<thead><tr>{head}</tr></thead>{bodies}</table>")


def _rankings(features: list[Feature], multi: bool) -> str:
    """Top features per sort criterion: the sorting that works without scripts."""
    criteria = [("Most missing", lambda f: f.missing, fmt_pct),
                ("Least uniform", lambda f: f.non_uniformity, lambda v: f"{v:.3f}")]
    if multi:
        criteria.append(("Largest distance", lambda f: f.distance or 0.0, lambda v: f"{v:.4f}"))
    columns = []
    for title, key, fmt in criteria:
        ranked = sorted((f for f in features if key(f) > 0), key=lambda f: (-key(f), f.order))
        items = "".join(
            f'<li>{esc(f.name, 60)} <span style="{NOTE}">{escape(fmt(key(f)))}</span></li>'
            for f in ranked[:RANKED])
        body = f'<ol style="margin:2px 0;padding-left:22px">{items}</ol>' if items else \
            tag("div", "none", NOTE)
        columns.append(tag("div", tag("div", escape(title), "font-weight:600") + body,
                           "min-width:14em"))
    return ('<details style="margin:4px 0 6px 0"><summary style="cursor:pointer">'
            "Rankings: most missing, least uniform"
            + (", largest distance" if multi else "") + "</summary>"
            + tag("div", "".join(columns), "display:flex;flex-wrap:wrap;gap:18px;margin:4px 0")
            + "</details>")


#: Progressive enhancement: where scripts run (trusted notebooks, exported HTML,
#: VS Code) this adds a name filter and sort controls above the tables. It only
#: reorders and hides the ``<tbody>`` of each feature; it never builds markup
#: from data (values are read with getAttribute and compared as text).
_SCRIPT = """<script>(function () {
  var me = document.currentScript;
  var root = (me && me.closest && me.closest('.tkv-__UID__'))
    || document.querySelector('.tkv-__UID__');
  if (!root || root.getAttribute('data-tkv-ready')) return;
  root.setAttribute('data-tkv-ready', '1');
  var note = root.querySelector('.tkv-static-note');
  if (note) note.parentNode.removeChild(note);
  function element(tag, css) {
    var e = document.createElement(tag);
    if (css) e.style.cssText = css;
    return e;
  }
  var bar = element('div', 'display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:4px 0');
  var filter = element('input', 'padding:2px 6px;min-width:14em');
  filter.type = 'search';
  filter.placeholder = 'Filter features';
  var sort = element('select');
  [['o', 'Sort: feature order'], ['f', 'Sort: name'], ['m', 'Sort: missing %'],
   ['u', 'Sort: non-uniformity']].concat(__DIST__).forEach(function (pair) {
    var option = element('option'); option.value = pair[0]; option.textContent = pair[1];
    sort.appendChild(option);
  });
  var reverse = element('input');
  reverse.type = 'checkbox';
  var label = element('label');
  label.appendChild(reverse);
  label.appendChild(document.createTextNode(' reverse'));
  var count = element('span', 'opacity:.7');
  [filter, sort, label, count].forEach(function (e) { bar.appendChild(e); });
  root.querySelector('.tkv-controls').appendChild(bar);
  function key(body, k) {
    var v = body.getAttribute('data-' + k);
    return k === 'f' ? v.toLowerCase() : parseFloat(v);
  }
  function compare(k) {
    return function (a, b) {
      var x = key(a, k), y = key(b, k), c;
      if (k === 'f') c = x < y ? -1 : x > y ? 1 : 0;
      else if (k === 'o') c = x - y;
      else c = y - x;
      if (reverse.checked) c = -c;
      return c || key(a, 'o') - key(b, 'o');
    };
  }
  function apply() {
    var text = filter.value.toLowerCase(), shown = 0, all = 0;
    root.querySelectorAll('table.tkv-sortable').forEach(function (table) {
      var bodies = Array.prototype.slice.call(table.tBodies).sort(compare(sort.value));
      var visible = 0;
      bodies.forEach(function (body) {
        table.appendChild(body);
        var match = body.getAttribute('data-f').toLowerCase().indexOf(text) >= 0;
        body.style.display = match ? '' : 'none';
        all += 1;
        if (match) visible += 1;
      });
      table.style.display = visible ? '' : 'none';
      shown += visible;
    });
    count.textContent = shown + ' of ' + all + ' features';
  }
  filter.addEventListener('input', apply);
  sort.addEventListener('change', apply);
  reverse.addEventListener('change', apply);
  apply();
})();</script>"""


def _script(uid: str, multi: bool) -> str:
    dist = "[['d', 'Sort: distance']]" if multi else "[]"
    return _SCRIPT.replace("__UID__", uid).replace("__DIST__", dist)


def statistics_view(stats_by_name: Mapping[str, Any]) -> View:
    """Side-by-side statistics of datasets or splits, e.g. ``{"train": ..., "eval": ...}``.

    Values are ``DatasetFeatureStatisticsList`` (or ``DatasetFeatureStatistics``)
    protos. With two or more datasets, each feature also shows its distance from
    the first dataset (Jensen-Shannon divergence or L-infinity distance).
    """
    datasets = labelled_datasets(stats_by_name)
    if not datasets:
        return View(root(tag("div", "No statistics.", NOTE), new_uid()), "No statistics.",
                    "Feature statistics")
    labels = [label for label, _ in datasets]
    features = collect_features(datasets)
    uid = new_uid()
    multi = len(labels) > 1
    legend = " ".join(
        f'<span style="white-space:nowrap;margin-right:10px">{swatch(PALETTE[i % len(PALETTE)])}'
        f'{esc(label, 60)} <span style="{NOTE}">{fmt_num(ds.num_examples)} examples</span></span>'
        for i, (label, ds) in enumerate(datasets))
    kinds = {k: [f for f in features if f.kind == k] for k in ("numeric", "categorical", "other")}
    counts = ", ".join(f"{len(v)} {k}" for k, v in kinds.items() if v)
    shown = {k: [f for f in v if f.order < FEATURES_SHOWN] for k, v in kinds.items()}
    note = tag("div", "Sorting and filtering controls appear where scripts run (a trusted "
               "notebook, exported HTML); the rankings below work everywhere.",
               NOTE, class_="tkv-static-note")
    if len(features) > FEATURES_SHOWN:
        note += tag("div", f"Showing the first {FEATURES_SHOWN:,} of {len(features):,} features "
                    "in detail (the rankings cover all); show the statistics of fewer columns "
                    "to see the others.", NOTE)
    body = (tag("div", legend, "margin:2px 0")
            + '<div class="tkv-controls"></div>' + note
            + _rankings(features, multi)
            + tag("div", "".join(_feature_table(k, v, labels) for k, v in shown.items()),
                  "max-height:760px;overflow:auto")
            + _script(uid, multi))
    subtitle = f"{len(features)} features ({counts})"
    html = root(body, uid, "Feature statistics", escape(subtitle))
    return View(html, statistics_text(features, labels, datasets), "Feature statistics")
