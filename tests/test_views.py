"""Offline views through the public API, on the taxi data: content, distances, escaping."""
from __future__ import annotations

import json
import os
import types
from html.parser import HTMLParser

import pandas as pd
import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

import toolkit
from datapaths import TAXI_CSV
from toolkit import artifacts
from toolkit.visualize import (View, anomalies_view, qualified_name, register_view,
                               schema_view, show, statistics_view, view_of)
from toolkit.visualize.html import escape, truncate
from toolkit.visualize.statistics import jensen_shannon_divergence, l_infinity_distance

HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</style>",
           "a\u202egnp.exe"]
MEGABYTE = "A" * 1_000_000


# --------------------------------------------------------------------------
# Fixtures: TFDV runs once per session
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tfdv():
    import tensorflow_data_validation

    return tensorflow_data_validation


@pytest.fixture(scope="session")
def taxi() -> pd.DataFrame:
    return pd.read_csv(TAXI_CSV)


@pytest.fixture(scope="session")
def taxi_stats(tfdv, taxi) -> statistics_pb2.DatasetFeatureStatisticsList:
    return tfdv.generate_statistics_from_dataframe(taxi)


@pytest.fixture(scope="session")
def day_night(tfdv, taxi):
    """Two datasets whose distributions differ: trips before and after noon."""
    day = taxi[taxi.trip_start_hour < 12].reset_index(drop=True)
    night = taxi[taxi.trip_start_hour >= 12].reset_index(drop=True)
    return (tfdv.generate_statistics_from_dataframe(day),
            tfdv.generate_statistics_from_dataframe(night))


@pytest.fixture(scope="session")
def taxi_view(taxi_stats) -> View:
    return statistics_view({"data": taxi_stats})


# --------------------------------------------------------------------------
# A small reader for the statistics tables
# --------------------------------------------------------------------------

class _Tables(HTMLParser):
    """Collects each feature table: header names and, per feature, the cells of its rows."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: dict | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "tkv-sortable" in (attrs.get("class") or ""):
            self.tables.append({"headers": [], "features": {}})
            self._depth = 1
        elif tag == "table" and self._depth:
            self._depth += 1
        if not self.tables or self._depth != 1:
            return
        table = self.tables[-1]
        if tag == "tbody" and "data-f" in attrs:
            table["current"] = table["features"].setdefault(attrs["data-f"], [])
        elif tag == "tr" and "current" in table:
            table["current"].append([])
        elif tag in ("th", "td"):
            self._cell = {"text": "", "title": attrs.get("title"), "tag": tag}

    def handle_endtag(self, tag):
        if tag == "table" and self._depth:
            self._depth -= 1
            return
        if tag in ("th", "td") and self._cell is not None and self._depth == 1:
            table = self.tables[-1]
            if self._cell["tag"] == "th":
                table["headers"].append(self._cell["text"].strip())
            else:
                table["current"][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def feature_cells(view: View, name: str) -> dict[str, dict]:
    """Header name -> cell of the first row of feature ``name``."""
    parser = _Tables()
    parser.feed(view.html)
    for table in parser.tables:
        if name in table["features"]:
            return dict(zip(table["headers"], table["features"][name][0]))
    raise AssertionError(f"feature {name!r} not in any table")


# --------------------------------------------------------------------------
# Import cost
# --------------------------------------------------------------------------

# --------------------------------------------------------------------------
# Statistics content
# --------------------------------------------------------------------------

def test_numeric_table_matches_pandas(taxi, taxi_view):
    fare = feature_cells(taxi_view, "fare")
    assert float(fare["Mean"]["title"]) == pytest.approx(taxi.fare.mean(), rel=1e-9)
    assert fare["Mean"]["text"] == "11.77"
    assert float(fare["Std dev"]["title"]) == pytest.approx(taxi.fare.std(ddof=0), rel=1e-6)
    assert fare["Min"]["text"] == "0"
    assert float(fare["Max"]["title"]) == taxi.fare.max()
    assert fare["Count"]["text"] == f"{taxi.fare.count():,}"
    zeros = (taxi.fare == 0).mean()
    assert fare["Zeros"]["text"] == f"{100 * zeros:.1f}%"

    dropoff = feature_cells(taxi_view, "dropoff_latitude")
    assert dropoff["Missing"]["text"] == f"{100 * taxi.dropoff_latitude.isna().mean():.1f}%"
    assert dropoff["Count"]["text"] == f"{taxi.dropoff_latitude.count():,}"


def test_categorical_table_shows_top_value(taxi, taxi_view):
    counts = taxi.payment_type.value_counts()
    payment = feature_cells(taxi_view, "payment_type")
    assert payment["Top value"]["text"] == counts.index[0] == "Cash"
    assert payment["Top freq"]["text"].startswith(f"{counts.iloc[0]:,} (")
    assert payment["Unique"]["text"] == str(taxi.payment_type.nunique())
    assert "Credit Card" in payment["Top values"]["text"]
    company = feature_cells(taxi_view, "company")
    assert company["Missing"]["text"] == f"{100 * taxi.company.isna().mean():.1f}%"


def test_histograms_are_plain_html_with_standard_and_quantile_forms(taxi_view):
    html = taxi_view.html
    assert "<svg" not in html and "<canvas" not in html
    assert "http://" not in html and "https://" not in html and "@import" not in html
    numeric = 16
    # Ten buckets per feature; the one with a single non-missing value has one.
    assert html.count('<i style="flex:1;height:') == (numeric - 1) * 10 + 1
    assert html.count('title="quantiles: ') == numeric
    fare = feature_cells(taxi_view, "fare")["Histogram · quantiles"]
    assert fare["text"].strip().startswith("0")  # the x-axis runs from the minimum


def test_text_form_summarises_every_feature(taxi_view):
    text = repr(taxi_view)
    assert text.startswith("Feature statistics (18 features; data: 15,002 examples)")
    assert "fare: count 15,002" in text and "mean 11.77" in text
    assert "payment_type" in text and "'Cash'" in text
    assert taxi_view._repr_mimebundle_() == {"text/html": taxi_view.html, "text/plain": text}
    assert taxi_view._repr_html_() == taxi_view.html


def test_sorting_keys_and_rankings_are_in_the_static_html(taxi_view):
    html = taxi_view.html
    assert 'data-f="pickup_census_tract"' in html and 'data-m="0.999933"' in html
    assert "<details" in html and "Most missing" in html and "Least uniform" in html
    assert "tkv-static-note" in html and "<script>" in html


# --------------------------------------------------------------------------
# Datasets side by side and their distances
# --------------------------------------------------------------------------

def _tfdv_drift(tfdv, base, other) -> dict[str, float]:
    schema = tfdv.infer_schema(base)
    for feature in schema.feature:
        if feature.type == schema_pb2.BYTES:
            feature.drift_comparator.infinity_norm.threshold = 1e-9
        elif feature.type == schema_pb2.FLOAT:
            feature.drift_comparator.jensen_shannon_divergence.threshold = 1e-9
    result = tfdv.validate_statistics(other, schema, previous_statistics=base)
    return {".".join(info.path.step): info.drift_measurements[0].value
            for info in result.drift_skew_info if info.drift_measurements}


def test_distances_equal_tfdv_drift_measurements(tfdv, day_night):
    day, night = day_night
    expected = _tfdv_drift(tfdv, day, night)
    assert {"fare", "trip_miles", "payment_type", "company"} <= set(expected)
    view = statistics_view({"day": day, "night": night})
    for name in ("fare", "trip_miles", "tips", "trip_seconds"):
        cell = feature_cells(view, name)["JS divergence"]
        assert float(cell["text"]) == pytest.approx(expected[name], abs=5e-5), name
    for name in ("payment_type", "company"):
        cell = feature_cells(view, name)["L∞ distance"]
        assert float(cell["text"]) == pytest.approx(expected[name], abs=5e-5), name

    by_name = {f.path.step[0]: f for f in day.datasets[0].features}
    other = {f.path.step[0]: f for f in night.datasets[0].features}
    assert jensen_shannon_divergence(by_name["fare"].num_stats.histograms[0],
                                     other["fare"].num_stats.histograms[0]) == \
        pytest.approx(expected["fare"], rel=1e-9)
    hour = feature_cells(view, "trip_start_hour")["JS divergence"]
    assert hour["text"] == "1.0000"  # disjoint hours: maximal divergence


def test_side_by_side_shows_both_datasets_per_feature(day_night):
    day, night = day_night
    view = statistics_view({"day": day, "night": night})
    parser = _Tables()
    parser.feed(view.html)
    rows = parser.tables[0]["features"]["fare"]
    assert len(rows) == 2
    assert "day" in rows[0][3]["text"] and "night" in rows[1][0]["text"]
    assert "Largest distance" in view.html
    assert "fare [day]" in view.text and "fare [night]" in view.text


def test_distance_helpers_follow_their_definitions():
    hist_a, hist_b = statistics_pb2.Histogram(), statistics_pb2.Histogram()
    for low, high, count in ((0, 1, 10), (1, 2, 10)):
        hist_a.buckets.add(low_value=low, high_value=high, sample_count=count)
    for low, high, count in ((2, 3, 5), (3, 4, 5)):
        hist_b.buckets.add(low_value=low, high_value=high, sample_count=count)
    assert jensen_shannon_divergence(hist_a, hist_b) == pytest.approx(1.0)
    assert jensen_shannon_divergence(hist_a, hist_a) == pytest.approx(0.0)
    assert l_infinity_distance({"a": 3, "b": 1}, {"a": 1, "b": 1}) == pytest.approx(0.25)
    assert l_infinity_distance({}, {"a": 1}) is None


# --------------------------------------------------------------------------
# show_statistics inputs
# --------------------------------------------------------------------------

def _write_stats_artifact(folder, stats_by_split) -> artifacts.ExampleStatistics:
    artifact = artifacts.ExampleStatistics(uri=str(folder))
    artifact.split_names = list(stats_by_split)
    for split, stats in stats_by_split.items():
        os.makedirs(artifact.split_uri(split), exist_ok=True)
        with open(artifact.stats_path(split), "wb") as fh:
            fh.write(stats.SerializeToString())
    return artifact


def test_show_statistics_accepts_every_kind_of_input(tmp_path, capsys, taxi, taxi_stats,
                                                     day_night):
    day, night = day_night
    from_frame = toolkit.show_statistics(taxi.head(200))
    assert isinstance(from_frame, View) and "200 examples" in from_frame.text
    assert capsys.readouterr().out.startswith("Feature statistics")

    artifact = _write_stats_artifact(tmp_path / "stats", {"train": day, "eval": night})
    for source in (artifact, str(tmp_path / "stats"), tmp_path / "stats"):
        view = toolkit.show_statistics(source)
        assert "train: " in view.text and "eval: " in view.text
        assert "L∞ distance" in view.html

    single = toolkit.show_statistics(artifact.stats_path("train"))
    assert "data: " in single.text and "JS divergence" not in single.html

    compared = toolkit.show_statistics(taxi_stats, compare_to=artifact, names=["all", "split"])
    assert "all: 15,002 examples" in compared.text
    assert "split/train: " in compared.text and "split/eval: " in compared.text

    defaults = toolkit.show_statistics(day, compare_to=night)
    assert "data: " in defaults.text and "compare_to: " in defaults.text

    channel = type("Channel", (), {"get": lambda self: [artifact]})()
    assert "train: " in toolkit.show_statistics(channel).text


def test_show_statistics_reports_unreadable_input(tmp_path):
    with pytest.raises(toolkit.ToolkitError, match="does not exist"):
        toolkit.show_statistics(str(tmp_path / "missing.pb"))
    with pytest.raises(toolkit.ToolkitError, match="Split-<name>/FeatureStats.pb"):
        toolkit.show_statistics(str(tmp_path))
    bad = tmp_path / "FeatureStats.pb"
    bad.write_bytes(b"\xff\xff not a proto")
    with pytest.raises(toolkit.ToolkitError, match="FeatureStats.pb"):
        toolkit.show_statistics(str(bad))
    with pytest.raises(toolkit.ToolkitError, match="pandas DataFrame"):
        toolkit.show_statistics(42)


def test_three_hundred_features_stay_small(tfdv):
    import numpy as np

    rng = np.random.default_rng(1)
    columns = {f"n{i}": rng.normal(i, 1 + i % 5, 400) for i in range(200)}
    columns.update({f"c{i}": rng.choice([f"v{k}" for k in range(3 + i % 40)], 400)
                    for i in range(100)})
    frame = pd.DataFrame(columns)
    stats = tfdv.generate_statistics_from_dataframe(frame)
    view = statistics_view({"data": stats})
    assert view.html.count("<tbody") == 300
    assert len(view.html) < 900_000


# --------------------------------------------------------------------------
# Escaping
# --------------------------------------------------------------------------

def _assert_inert(html: str) -> None:
    assert "<script>alert" not in html
    assert "<img src" not in html and "onerror=alert(1)>" not in html
    assert "</style>" not in html
    assert "\u202e" not in html
    assert "A" * 2000 not in html
    assert len(html) < 300_000


def _hostile_statistics() -> statistics_pb2.DatasetFeatureStatisticsList:
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(name=HOSTILE[0], num_examples=10)
    for name in HOSTILE + [MEGABYTE]:
        feature = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
        feature.path.step.append(name)
        strings = feature.string_stats
        strings.common_stats.num_non_missing = 10
        strings.common_stats.tot_num_values = 10
        strings.unique = len(HOSTILE) + 1
        for rank, value in enumerate(HOSTILE + [MEGABYTE]):
            strings.top_values.add(value=value, frequency=2)
            strings.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=value,
                                               sample_count=2)
        numeric = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.FLOAT)
        numeric.path.step.append(name + "_n")
        numeric.num_stats.common_stats.num_non_missing = 10
        numeric.num_stats.histograms.add().buckets.add(low_value=0, high_value=1,
                                                       sample_count=10)
    return stats


def test_hostile_names_and_values_are_escaped_in_statistics(tfdv):
    view = statistics_view({HOSTILE[1]: _hostile_statistics(), "other": _hostile_statistics()})
    _assert_inert(view.html)
    assert escape(HOSTILE[0]) in view.html and "&quot;&gt;&lt;img src=x" in view.html
    assert "&lt;/style&gt;" in view.html
    assert "a\\u202egnp.exe" in view.html and "a\\u202egnp.exe" in view.text
    assert "… (1,000,000 chars)" in view.html

    frame = pd.DataFrame({name: [name, MEGABYTE, "x"] for name in HOSTILE})
    frame[MEGABYTE] = [1.0, 2.0, 3.0]
    from_tfdv = toolkit.show_statistics(frame)
    _assert_inert(from_tfdv.html)
    assert escape(HOSTILE[0]) in from_tfdv.html


def test_hostile_names_are_escaped_in_schema_and_anomalies():
    schema = schema_pb2.Schema()
    for name in HOSTILE + [MEGABYTE]:
        feature = schema.feature.add(name=name, type=schema_pb2.BYTES)
        feature.string_domain.value.extend(HOSTILE + [MEGABYTE])
    domain = schema.string_domain.add(name=HOSTILE[2])
    domain.value.extend(HOSTILE)
    _assert_inert(schema_view(schema).html)

    anomalies = anomalies_pb2.Anomalies()
    for name in HOSTILE + [MEGABYTE]:
        info = anomalies.anomaly_info[name]
        info.severity = anomalies_pb2.AnomalyInfo.ERROR
        info.short_description = HOSTILE[0]
        info.description = HOSTILE[1] + MEGABYTE
        info.reason.add(short_description=HOSTILE[2], description=MEGABYTE)
    view = anomalies_view({HOSTILE[0]: anomalies})
    _assert_inert(view.html)
    assert escape(HOSTILE[1]) in view.html


def test_hostile_paths_properties_and_rows_are_escaped(tmp_path):
    folder = tmp_path / "a&quot;<b>"
    (folder / "Split-x").mkdir(parents=True)
    pd.DataFrame({HOSTILE[0]: [HOSTILE[1], MEGABYTE]}).to_parquet(
        folder / "Split-x" / "data.parquet")
    (folder / "Split-x" / "<img src=y>.txt").write_text("z")
    examples = artifacts.Examples(uri=str(folder), properties={"note": HOSTILE[1]})
    examples.split_names = ["x"]
    _assert_inert(show(examples).html)
    model = artifacts.Model(uri=str(folder), properties={HOSTILE[0]: MEGABYTE})
    view = show(model)
    _assert_inert(view.html)
    assert "&lt;img src=y&gt;.txt" in view.html


def test_escape_and_truncate():
    assert escape('<a href="x">\'&') == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;"
    for char in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
        out = escape(f"x{char}y")
        assert char not in out and f"\\u{ord(char):04x}" in out
    short = truncate(MEGABYTE)
    assert short.startswith("A" * 200) and short.endswith("… (1,000,000 chars)")
    assert len(short) < 250
    assert truncate("short") == "short"


# --------------------------------------------------------------------------
# Schema and anomalies
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def taxi_schema(tfdv, taxi_stats) -> schema_pb2.Schema:
    return tfdv.infer_schema(taxi_stats)


def test_schema_view_lists_features_types_and_domains(taxi_schema):
    view = schema_view(taxi_schema)
    assert "fare" in view.html and "FLOAT" in view.html and "required" in view.html
    assert "'payment_type'" in view.html  # the feature's domain reference
    assert "String domains" in view.html and "'Credit Card'" in view.html
    assert "payment_type: BYTES" in view.text
    assert len(taxi_schema.feature) == view.html.count("<b title=")


def test_anomalies_view_shows_planted_anomaly_and_clean_state(tfdv, taxi, taxi_stats,
                                                              taxi_schema):
    planted = taxi.copy()
    planted.loc[:9, "payment_type"] = "Bitcoin"
    anomalous = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(planted),
                                         taxi_schema)
    clean = tfdv.validate_statistics(taxi_stats, taxi_schema)
    assert "payment_type" in anomalous.anomaly_info and not clean.anomaly_info

    view = anomalies_view({"train": clean, "eval": anomalous})
    assert "Split train" in view.html and "Split eval" in view.html
    assert view.html.count("No anomalies found") == 1
    assert "payment_type" in view.html and "Bitcoin" in view.html and "ERROR" in view.html
    assert "[train] No anomalies found." in view.text
    assert "[eval] 1 anomaly:" in view.text

    none = anomalies_view({"eval": clean})
    assert "No anomalies found" in none.html and "none found" in none.text


# --------------------------------------------------------------------------
# show(): dispatch, registry and artifact views
# --------------------------------------------------------------------------

def test_show_dispatches_and_prints_outside_a_kernel(capsys, taxi_stats, taxi_schema):
    view = View("<b>x</b>", "plain x", "t")
    assert show(view) is view
    assert capsys.readouterr().out == "plain x\n"

    class Result:
        def _toolkit_view_(self):
            return view

    assert show(Result()) is view
    assert show(taxi_stats).title == "Feature statistics"
    assert show(taxi_schema).title == "Schema"
    assert show(anomalies_pb2.Anomalies()).text.startswith("Anomalies: none found")
    with pytest.raises(toolkit.ToolkitError, match="cannot show"):
        show(object())


def test_show_in_a_kernel_displays_once_and_is_not_echoed(monkeypatch):
    import IPython.display

    from toolkit.visualize import html as html_module

    shell = type("Shell", (), {"kernel": object(), "execution_count": 5})()
    published = []
    monkeypatch.setattr(html_module, "ipython_shell", lambda: shell)
    monkeypatch.setattr(IPython.display, "display", lambda obj: obj._ipython_display_())
    monkeypatch.setattr(IPython.display, "publish_display_data",
                        lambda data: published.append(data))

    view = View("<b>x</b>", "x")
    assert show(view) is view and published == [view._repr_mimebundle_()]
    view._ipython_display_()  # what the cell's result echo would do
    assert len(published) == 1
    show(view)  # an explicit second show in the same cell is displayed
    assert len(published) == 2
    shell.execution_count = 6  # a later cell shows the returned view again
    view._ipython_display_()
    assert len(published) == 3


def test_artifact_views_registry_and_generic_fallback(tmp_path, taxi_stats, taxi_schema):
    stats = _write_stats_artifact(tmp_path / "stats", {"train": taxi_stats})
    schema = artifacts.Schema(uri=str(tmp_path / "schema"))
    os.makedirs(schema.uri)
    with open(schema.schema_path, "w") as fh:
        fh.write(str(taxi_schema))
    anomalies = artifacts.ExampleAnomalies(uri=str(tmp_path / "anomalies"))
    anomalies.split_names = ["eval"]
    os.makedirs(anomalies.split_uri("eval"))
    with open(anomalies.anomalies_path("eval"), "wb") as fh:
        fh.write(anomalies_pb2.Anomalies().SerializeToString())

    assert "Numeric features (16)" in show(stats).html
    assert "String domains" in show(schema).html
    assert "No anomalies found" in show(anomalies).html

    channel = type("Channel", (), {"get": lambda self: [stats, schema]})()
    both = show(channel)
    assert "ExampleStatistics" in both.text and "Schema" in both.text
    assert "No artifacts" in show(type("Empty", (), {"get": lambda self: []})()).text

    model = artifacts.Model(uri=str(tmp_path / "model"), properties={"version": 3}, id=7)
    os.makedirs(os.path.join(model.uri, "variables"))
    with open(os.path.join(model.uri, "variables", "weights.bin"), "wb") as fh:
        fh.write(b"\0" * 2048)
    generic = show(model)
    assert "variables/weights.bin" in generic.html and "2.0 KB" in generic.html
    assert "version" in generic.html and "id 7" in generic.text

    register_view("Model", lambda artifact: View("<i>custom</i>", "custom model view"))
    try:
        assert "custom model view" in show(model).text
    finally:
        from toolkit.visualize import VIEWS

        VIEWS.unregister("Model")


def test_duck_typed_artifacts_are_read_through_the_toolkits_artifact_classes(
        tmp_path, taxi_stats, taxi_schema):
    """A TFX artifact (split names as a JSON string) or any object with a uri and a type name."""
    stats = _write_stats_artifact(tmp_path / "stats", {"train": taxi_stats})
    schema = artifacts.Schema(uri=str(tmp_path / "schema"))
    os.makedirs(schema.uri)
    with open(schema.schema_path, "w") as fh:
        fh.write(str(taxi_schema))
    anomalies = artifacts.ExampleAnomalies(uri=str(tmp_path / "anomalies"))
    for split in ("train", "eval"):
        os.makedirs(anomalies.split_uri(split))
        with open(anomalies.anomalies_path(split), "wb") as fh:
            fh.write(anomalies_pb2.Anomalies().SerializeToString())

    def duck(uri, type_name, **more):
        return types.SimpleNamespace(uri=uri, type_name=type_name, id=None, **more)

    assert "Numeric features (16)" in show(duck(stats.uri, "ExampleStatistics")).html
    assert "String domains" in show(duck(schema.uri, "Schema")).html
    only_eval = show(duck(anomalies.uri, "ExampleAnomalies", split_names='["eval"]'))
    assert "No anomalies found" in only_eval.html and "train" not in only_eval.text
    assert "train" in show(duck(anomalies.uri, "ExampleAnomalies")).text
    missing = show(duck(str(tmp_path / "nothing"), "ExampleAnomalies"))
    assert "no anomalies in" in missing.text


def test_views_registered_for_a_class_win_over_the_objects_own_method(capsys):
    class Result:
        def _toolkit_view_(self):
            return View("<i>own</i>", "own")

    class Special(Result):
        pass

    register_view(Result, lambda obj: View("<b>registered</b>", "registered"))
    try:
        assert qualified_name(Result) == f"{__name__}.{Result.__qualname__}"
        assert show(Special()).text == "registered"  # subclasses get it too
    finally:
        from toolkit.visualize import VIEWS

        VIEWS.unregister(Result)
    assert show(Special()).text == "own"


def test_the_view_registry_names_an_unknown_key_and_the_known_ones():
    """``VIEWS.get`` of a type name or class with no view: one line naming it and every
    registered key; ``register_view`` is the shortcut that makes a key known."""
    from toolkit.errors import UnknownNameError
    from toolkit.visualize import VIEWS

    with pytest.raises(UnknownNameError) as info:
        VIEWS.get("NoSuchArtifact")
    message = str(info.value)
    assert message.startswith("no view is registered as 'NoSuchArtifact'; known: ")
    assert "\n" not in message
    for known in ("Examples", "ExampleStatistics", "ModelEvaluation", "PushedModel",
                  "toolkit.evaluation.result.EvalResult", "toolkit.records.Lineage"):
        assert known in message.split("known: ", 1)[1].split(", ")

    class Unregistered:
        pass

    with pytest.raises(UnknownNameError) as info:
        VIEWS.get(Unregistered)
    assert f"'{qualified_name(Unregistered)}'; known: " in str(info.value)
    fn = register_view(Unregistered, lambda obj: View("<b>now</b>", "now"))
    try:
        assert VIEWS.get(Unregistered) is fn and VIEWS.get(qualified_name(Unregistered)) is fn
        assert show(Unregistered()).text == "now"
    finally:
        VIEWS.unregister(Unregistered)
    assert Unregistered not in VIEWS and VIEWS.find(Unregistered) is None


def test_run_results_executions_and_lineage_have_escaped_views():
    """The context's objects are drawn by toolkit.visualize.run, from their public attributes."""
    from toolkit.records import ExecutionResult, ExecutionsTable, Lineage

    examples = artifacts.Examples(uri=HOSTILE[1], id=3)
    stats = artifacts.ExampleStatistics(uri="/runs/stats/4", id=4)
    result = object.__new__(ExecutionResult)
    result.__dict__.update(component_id=HOSTILE[0], execution_id=12, cached=True,
                           duration_s=1.5, inputs={"examples": [examples]},
                           outputs={"statistics": [stats]}, gate_failure=HOSTILE[2],
                           outcome=f"pushed now as version {HOSTILE[1]}")
    table = ExecutionsTable([{"id": 12, "component_id": HOSTILE[0], "state": "COMPLETE",
                              "component_type": "StatisticsGen", "cached_from": None,
                              "duration_s": 1.5}])
    lineage = object.__new__(Lineage)
    lineage.artifact = stats
    lineage.nodes = [
        {"artifact": stats, "depth": 0, "via": None, "inputs": {},
         "execution": {"component_id": HOSTILE[0], "id": 12, "state": "COMPLETE"}},
        {"artifact": examples, "depth": 1, "via": "examples", "execution": None, "inputs": {}}]
    for obj, title, marker in ((result, HOSTILE[0], "toolkit-result"),
                               (table, "executions", "<table>"),
                               (lineage, "lineage", "toolkit-lineage")):
        view = view_of(obj)
        assert view.title == title and marker in view.html
        assert view.text == repr(obj)
        assert obj._repr_html_() == view.html
        assert "<script>" not in view.html and "<img" not in view.html
        assert escape(HOSTILE[0]) in view.html
    assert "cached" in view_of(result).html and escape(HOSTILE[2]) in view_of(result).html
    assert f"pushed now as version {escape(HOSTILE[1])}" in view_of(result).html
    assert "margin-left:1.5em" in view_of(lineage).html and "(imported)" in view_of(lineage).html


def test_examples_view_counts_rows_and_previews_them(tmp_path, taxi):
    examples = artifacts.Examples(uri=str(tmp_path / "examples"))
    examples.split_names = ["train", "eval"]
    for split, frame in (("train", taxi.iloc[:1000]), ("eval", taxi.iloc[1000:1300])):
        os.makedirs(examples.split_uri(split))
        frame.to_parquet(os.path.join(examples.split_uri(split), "data.parquet"))
    view = show(examples)
    assert "1,000 rows" in view.html and "300 rows" in view.html
    assert "[train] 1,000 rows" in view.text
    assert "Chicago Elite Cab Corp. (Chicago Carriag" in view.html
    assert view.html.count("<tr") >= 2 * 6
    assert json.loads(examples.properties["split_names"]) == ["train", "eval"]


def test_an_artifacts_recorded_warnings_head_its_view(tmp_path):
    """A component's warnings (the Evaluator records logits-looking scores) show above the
    artifact's view, escaped, and in its text form."""
    blessing = artifacts.ModelBlessing(uri=str(tmp_path), id=5, properties={
        "warnings": json.dumps([f"scores look like logits {HOSTILE[0]}"])})
    view = view_of(blessing)
    assert f"Warning: scores look like logits {escape(HOSTILE[0])}" in view.html
    assert "<script>" not in view.html
    assert "warning: scores look like logits" in view.text
    assert "Warning:" not in view_of(artifacts.ModelBlessing(uri=str(tmp_path), id=6)).html
