"""Training, evaluation, MLflow tracking/registry and guarded promotion.

The feature and label rows are synthetic (tests/feature_frames.py): the columns of
features.flight_features / flight_labels, with a known delay rule that has effects a linear
model cannot represent. So the tests can require what training must achieve on such data (the
tuned CatBoost model beats the logistic baseline and the constant predictor; shuffled labels
are refused at promotion) without re-implementing the platform's feature pipeline. Training on
the real replayed flights is tested through the platform (tests/test_model_assets.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from flightops.modeling import data as modeling_data
from flightops.modeling import promotion, tracking
from flightops.modeling.data import join_labels, latest_days_within, read_labelled_features, recent_labelled_days
from flightops.modeling.evaluate import (
    ConstantProbability,
    calibration_table,
    classification_metrics,
    precision_recall_figure,
    precision_recall_lines,
)
from flightops.modeling.models import BaselineConfig, CatBoostConfig
from flightops.modeling.schema import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    ID_COLUMNS,
    LABEL_COLUMN,
    MISSING_CATEGORY,
    NUMERIC_FEATURES,
    labels_of,
    model_inputs,
)
from flightops.modeling.splits import SplitConfig, SplitWindows, flight_days, plan_windows, split_by_time
from flightops.modeling.training import TrainingConfig, TrainingResult, sampled, train_and_register
from flightops.modeling.tuning import TuningConfig
from flightops.settings import Settings, load_environment
from flightops.warehouse_connections import connect
from tests.feature_frames import feature_tables

FIRST_DAY, DAYS = date(2013, 2, 1), 35
LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)
SPLIT = SplitConfig(valid_fraction=0.15, test_fraction=0.2)
# Margins on the test window, well inside what was measured on these rows: ROC AUC 0.70 for
# CatBoost, 0.61 for the logistic baseline, 0.5 for the constant predictor; log loss 0.526 for
# CatBoost, 0.580 for the constant predictor.
MIN_AUC_GAIN_OVER_BASELINE = 0.03
MIN_AUC_GAIN_OVER_CONSTANT = 0.15
MIN_LOG_LOSS_GAIN_OVER_CONSTANT = 0.03


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, labels) of DAYS days from FIRST_DAY."""
    return feature_tables(FIRST_DAY, days=DAYS, flights_per_day=400)


@pytest.fixture(scope="module")
def labelled(tables) -> pd.DataFrame:
    return join_labels(*tables)


def _environment(base: Path) -> dict[str, str]:
    return {
        "FLIGHTOPS_DATA_DIR": str(base),
        "FLIGHTOPS_WAREHOUSE": str(base / "warehouse.duckdb"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{base}/mlflow/mlflow.db",
        "FLIGHTOPS_MLFLOW_ARTIFACTS": str(base / "mlflow" / "artifacts"),
    }


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Iterator[Settings]:
    base = tmp_path_factory.mktemp("modeling")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _environment(base).items():
            patch.setenv(name, value)
        patch.chdir(base)  # so a stray ./mlruns would show up here
        load_environment()
        yield Settings.current()


@dataclass(frozen=True)
class Lifecycle:
    """Two trainings and their promotion decisions on one private MLflow store."""

    good: TrainingResult
    shuffled: TrainingResult
    first_decision: promotion.PromotionDecision
    second_decision: promotion.PromotionDecision
    window: pd.DataFrame


@pytest.fixture(scope="module")
def lifecycle(settings, labelled) -> Lifecycle:
    good = train_and_register(
        labelled, settings,
        TrainingConfig(split=SPLIT, tuning=TuningConfig(n_trials=2, timeout_seconds=60, max_iterations=300)),
        partition_range=(FIRST_DAY.isoformat(), LAST_DAY.isoformat()), dagster_run_id="dagster-run-1",
    )
    window = labelled[flight_days(labelled) >= good.windows.test_start]
    first = promotion.decide_promotion(good.model_version, window, settings)
    shuffled_labels = labelled.copy()
    shuffled_labels[LABEL_COLUMN] = np.random.default_rng(0).permutation(labelled[LABEL_COLUMN].to_numpy())
    shuffled = train_and_register(
        shuffled_labels, settings,
        TrainingConfig(split=SPLIT, catboost=CatBoostConfig(iterations=100), tuning=TuningConfig(n_trials=0)),
    )
    second = promotion.decide_promotion(shuffled.model_version, window, settings)
    return Lifecycle(good, shuffled, first, second, window)


@pytest.mark.unit
def test_time_split_puts_whole_days_in_order(labelled):
    windows = plan_windows(labelled, SPLIT)
    split = split_by_time(labelled, windows)
    days = {name: set(flight_days(part)) for name, part in (("train", split.train), ("valid", split.valid),
                                                           ("test", split.test))}
    assert max(days["train"]) < min(days["valid"]) and max(days["valid"]) < min(days["test"])
    n_days = flight_days(labelled).nunique()
    assert len(days["test"]) == round(n_days * SPLIT.test_fraction)
    assert len(days["valid"]) == round(n_days * SPLIT.valid_fraction)
    assert sum(split.row_counts().values()) == len(labelled)
    assert list(flight_days(split.train)) == sorted(flight_days(split.train))
    with pytest.raises(ValueError, match="overlap or are out of order"):
        SplitWindows(windows.train_start, windows.valid_start, windows.valid_start, windows.valid_end,
                     windows.test_start, windows.test_end)


@pytest.mark.unit
def test_the_split_shares_the_frames_memory_and_reorders_a_frame_out_of_day_order(labelled):
    windows = plan_windows(labelled, SPLIT)
    split = split_by_time(labelled, windows)  # the reader's day order: slices, not copies
    column = labelled["dep_minute_of_day"].to_numpy()
    assert all(np.shares_memory(part["dep_minute_of_day"].to_numpy(), column)
               for part in (split.train, split.valid, split.test, split.train_and_valid))
    assert [list(part.index[:1]) for part in (split.train, split.valid, split.test)] == [[0], [0], [0]]
    pd.testing.assert_frame_equal(split.train_and_valid, pd.concat([split.train, split.valid], ignore_index=True))

    shuffled = labelled.sample(frac=1.0, random_state=3)
    again = split_by_time(shuffled, windows)
    assert again.row_counts() == split.row_counts()
    for ordered, reordered in ((split.train, again.train), (split.test, again.test)):
        assert list(flight_days(reordered)) == list(flight_days(ordered))  # day order
        assert set(reordered["flight_id"]) == set(ordered["flight_id"])

    # A day between train and validation belongs to neither: the two are joined, without it.
    gap = SplitWindows(windows.train_start, windows.train_end - timedelta(days=1), windows.valid_start,
                       windows.valid_end, windows.test_start, windows.test_end)
    apart = split_by_time(labelled, gap)
    assert len(apart.train_and_valid) == len(apart.train) + len(apart.valid) < len(split.train_and_valid)
    assert windows.train_end not in set(flight_days(apart.train_and_valid))


@pytest.mark.unit
def test_constant_predictor_metrics_follow_from_the_base_rate(labelled):
    y = labels_of(labelled).to_numpy()
    constant = ConstantProbability().fit(labelled.head(5000), y[:5000])
    probability = constant.predict_proba(labelled)[:, 1]
    metrics = classification_metrics(y, probability)
    rate, p = y.mean(), y[:5000].mean()
    assert metrics["roc_auc"] == 0.5
    assert metrics["brier"] == pytest.approx(rate * (1 - p) ** 2 + (1 - rate) * p ** 2)
    assert metrics["ece"] == pytest.approx(abs(p - rate))
    table = calibration_table(y, probability)
    assert table["rows"].sum() == len(y) and (table["rows"] > 0).sum() == 1


@pytest.mark.unit
def test_the_calibration_table_is_each_bins_count_and_means():
    """Each equal-width bin of predicted probability: its rows, their mean probability and observed rate, as a
    group-by computes them; an empty bin has no means; the last bin holds 1.0."""
    rng = np.random.default_rng(3)
    probability = np.concatenate([rng.uniform(0, 0.75, 4000), [0.0, 1.0, 0.1]])  # bin 8 empty, bin 9 only 1.0
    y = (rng.random(len(probability)) < probability).astype(int)
    table = calibration_table(y, probability)
    bins = np.minimum((probability * 10).astype(int), 9)
    expected = pd.DataFrame({"y": y, "p": probability, "bin": bins}).groupby("bin").agg(
        rows=("y", "size"), mean_probability=("p", "mean"), observed_rate=("y", "mean")).reindex(range(10))
    assert table["bin_lower"].tolist() == pytest.approx([i / 10 for i in range(10)])
    assert table["rows"].tolist() == expected["rows"].fillna(0).astype(int).tolist()
    assert table["rows"].iloc[9] == 1 and table["rows"].iloc[8] == 0
    filled = expected["rows"].notna().to_numpy()
    for column in ("mean_probability", "observed_rate"):
        assert np.allclose(table[column].to_numpy()[filled], expected[column].to_numpy()[filled], rtol=1e-12, atol=0)
        assert table[column][~filled].isna().all()


@pytest.mark.unit
def test_the_baseline_sample_is_seeded_bounded_and_keeps_the_rows_order(labelled):
    rows = labelled.reset_index(drop=True)
    assert sampled(rows, 0, seed=7) is rows and sampled(rows, len(rows), seed=7) is rows
    size = len(rows) // 3
    first, again, other = (sampled(rows, size, seed=seed) for seed in (7, 7, 8))
    assert len(first) == size and first.index.is_monotonic_increasing and first.index.is_unique
    assert first.index.equals(again.index) and not first.index.equals(other.index)
    pd.testing.assert_frame_equal(first, rows.loc[first.index])


@pytest.mark.unit
def test_lineage_read_a_chunk_at_a_time_is_that_of_all_rows_at_once(labelled, monkeypatch):
    rows = labelled.reset_index(drop=True)
    whole = (tracking.training_data_hash(rows), tracking.known_categories(rows))
    monkeypatch.setattr(tracking, "LINEAGE_CHUNK_ROWS", 7)  # many chunks, the last one short
    assert len(rows) % 7 and (tracking.training_data_hash(rows), tracking.known_categories(rows)) == whole
    assert tracking.training_data_hash(rows.iloc[::-1]) != whole[0]  # the order of the rows counts
    assert all(whole[1][column] for column in whole[1])


@pytest.mark.unit
def test_model_inputs_refuse_a_frame_without_the_contract_columns(labelled):
    with pytest.raises(KeyError, match="route_prior_delay_rate"):
        model_inputs(labelled.drop(columns=["route_prior_delay_rate"]))


@pytest.mark.unit
def test_model_inputs_keep_string_categories_fill_nulls_and_turn_other_values_into_strings(labelled):
    frame = labelled.head(3).copy()
    frame["carrier"] = ["UA", None, "B6"]
    frame["origin"] = pd.Series([1, 2, None], index=frame.index, dtype=object)  # not strings: written as strings
    inputs = model_inputs(frame)
    assert list(inputs["carrier"]) == ["UA", MISSING_CATEGORY, "B6"]
    assert list(inputs["origin"]) == ["1", "2", MISSING_CATEGORY]
    assert inputs["route"].iloc[0] is frame["route"].iloc[0]  # the frame's string itself, not a copy
    assert all(type(value) is str for column in ("carrier", "origin") for value in inputs[column])


@pytest.mark.unit
def test_model_inputs_share_the_frames_float_columns_and_convert_the_others(labelled):
    inputs = model_inputs(labelled)
    floats = [column for column in NUMERIC_FEATURES if labelled[column].dtype == "float64"]
    others = [column for column in NUMERIC_FEATURES if column not in floats]
    assert floats and others  # the warehouse gives both (e.g. distance DOUBLE, dep_hour INTEGER)
    assert all(inputs[column].dtype == "float64" for column in NUMERIC_FEATURES)
    assert all(np.shares_memory(inputs[column].to_numpy(), labelled[column].to_numpy()) for column in floats)
    np.testing.assert_array_equal(inputs[others].to_numpy(), labelled[others].to_numpy(dtype="float64"))


def test_catboost_beats_baseline_and_constant_on_the_test_window(lifecycle):
    metrics = lifecycle.good.test_metrics
    assert metrics["catboost"]["roc_auc"] >= metrics["baseline"]["roc_auc"] + MIN_AUC_GAIN_OVER_BASELINE
    assert metrics["catboost"]["roc_auc"] >= metrics["constant"]["roc_auc"] + MIN_AUC_GAIN_OVER_CONSTANT
    assert metrics["catboost"]["log_loss"] <= metrics["constant"]["log_loss"] - MIN_LOG_LOSS_GAIN_OVER_CONSTANT
    assert metrics["catboost"]["rows"] == lifecycle.good.row_counts["rows_test"]


def test_tuning_stays_in_budget_and_refits_the_best_trial(lifecycle):
    tuning = lifecycle.good.tuning
    assert tuning.trials_completed == 2
    assert tuning.best_valid_log_loss == tuning.trials["value"].min()
    best = tuning.trials.loc[tuning.trials["value"].idxmin()]
    assert tuning.config.depth == best["params_depth"]
    assert tuning.config.iterations == best["user_attrs_iterations"] <= 300
    assert lifecycle.shuffled.tuning.trials_completed == 0
    assert lifecycle.shuffled.tuning.config == CatBoostConfig(iterations=100)


def test_run_records_params_metrics_plots_and_lineage(settings, labelled, lifecycle):
    client = tracking.mlflow_client(settings)
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    assert experiment.artifact_location == settings.mlflow_artifacts.as_uri()
    assert not (Path.cwd() / "mlruns").exists()
    run = client.get_run(lifecycle.good.run_id)
    assert run.info.status == "FINISHED"
    split = split_by_time(labelled, lifecycle.good.windows)
    assert run.data.tags["lineage.partition_range"] == f"{FIRST_DAY}..{LAST_DAY}"
    assert run.data.tags["lineage.training_data_sha256"] == tracking.training_data_hash(split.train_and_valid)
    assert run.data.tags["lineage.rows_test"] == str(len(split.test))
    assert run.data.tags["dagster_run_id"] == "dagster-run-1"
    assert run.data.params["split_test_start"] == lifecycle.good.windows.test_start.isoformat()
    assert run.data.params["baseline_max_rows"] == str(BaselineConfig().max_rows)
    assert run.data.metrics["test_roc_auc"] == pytest.approx(lifecycle.good.test_metrics["catboost"]["roc_auc"])
    assert run.data.metrics["test_baseline_roc_auc"] == pytest.approx(lifecycle.good.test_metrics["baseline"]["roc_auc"])
    logged = {item.path for item in client.list_artifacts(run.info.run_id, "evaluation")}
    for name in ("roc.png", "precision_recall.png", "calibration.png", "feature_importance.png",
                 "metrics_by_carrier_catboost.csv", "metrics_by_origin_catboost.csv", "tuning_trials.csv"):
        assert f"evaluation/{name}" in logged
    version = client.get_model_version(tracking.REGISTERED_MODEL_NAME, lifecycle.good.model_version)
    assert version.run_id == run.info.run_id
    assert version.tags["lineage.training_data_sha256"] == run.data.tags["lineage.training_data_sha256"]


def test_the_registered_model_and_each_version_are_described(settings, lifecycle):
    """The MLflow UI's model page says what the model is; each version says its days and test scores."""
    client = tracking.mlflow_client(settings)
    model = client.get_registered_model(tracking.REGISTERED_MODEL_NAME)
    assert model.description == tracking.REGISTERED_MODEL_DESCRIPTION
    assert "more than 15 minutes late" in model.description and "champion" in model.description
    good = lifecycle.good
    described = client.get_model_version(tracking.REGISTERED_MODEL_NAME, good.model_version).description
    windows = good.windows
    assert f"Trained on {windows.train_start}..{windows.valid_end}" in described
    assert f"Test window {windows.test_start}..{windows.test_end} ({good.row_counts['rows_test']} flights)" in described
    metrics = good.test_metrics
    assert (f"ROC AUC {metrics['catboost']['roc_auc']:.3f} (baseline {metrics['baseline']['roc_auc']:.3f}, "
            f"constant {metrics['constant']['roc_auc']:.3f})") in described
    assert f"log loss {metrics['catboost']['log_loss']:.3f}" in described


@pytest.mark.unit
def test_mlflow_ui_links_use_its_hash_routes():
    """The routes of MLflow 3's UI (#/experiments/<id>/runs/<run>, #/models/<name>/versions/<n>)."""
    ui = "http://127.0.0.1:5000/"
    assert tracking.run_url(ui, "3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc"
    assert tracking.artifact_url(ui, "3", "abc", "evaluation/roc.png") == (
        "http://127.0.0.1:5000/#/experiments/3/runs/abc/artifacts/evaluation/roc.png")
    assert tracking.model_version_url(ui, 2) == (
        f"http://127.0.0.1:5000/#/models/{tracking.REGISTERED_MODEL_NAME}/versions/2")
    assert tracking.model_version_url(ui, "1", name="a model/x") == "http://127.0.0.1:5000/#/models/a%20model%2Fx/versions/1"


@pytest.mark.unit
def test_the_constant_predictor_is_drawn_flat_at_the_base_rate():
    """Not sklearn's curve of it: a line from (recall 0, precision 1) down to (1, base rate)."""
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.2).astype(int)
    informative = np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.1, 500), 0, 1)
    probabilities = {"model": informative, "constant": np.full(500, 0.23)}
    lines = precision_recall_lines(y, probabilities)
    recall, precision = lines["constant"]
    assert list(recall) == [0.0, 1.0] and list(precision) == [y.mean(), y.mean()]
    assert lines["model"][0].max() == 1.0 and lines["model"][1].max() == 1.0  # the real curve keeps its (0, 1)
    figure = precision_recall_figure(y, probabilities)
    drawn = {line.get_label().split(" (")[0]: line for line in figure.axes[0].get_lines()}
    assert set(drawn) == {"model", "constant"}  # the flat constant line is the base rate: no second one
    assert list(drawn["constant"].get_ydata()) == [y.mean(), y.mean()]
    assert list(drawn["constant"].get_xdata()) == [0.0, 1.0]
    only_models = precision_recall_figure(y, {"model": informative})
    assert [line.get_label() for line in only_models.axes[0].get_lines()][-1] == "base rate"
    plt.close(figure)
    plt.close(only_models)


def test_registry_after_two_trainings_keeps_the_better_champion(settings, lifecycle):
    client = tracking.mlflow_client(settings)
    versions = client.search_model_versions(f"name = '{tracking.REGISTERED_MODEL_NAME}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    assert promotion.alias_version(client, promotion.CHAMPION_ALIAS) == "1"
    assert promotion.alias_version(client, promotion.CHALLENGER_ALIAS) == "2"
    assert lifecycle.first_decision.promoted and lifecycle.first_decision.champion_version is None

    rejected = lifecycle.second_decision
    assert not rejected.promoted and rejected.champion_version == "1"
    assert rejected.challenger_score < rejected.champion_score
    assert any("does not beat champion v1" in reason for reason in rejected.reasons)
    assert any("hardly better than chance" in reason for reason in rejected.reasons)
    version_tags = client.get_model_version(tracking.REGISTERED_MODEL_NAME, "2").tags
    run_tags = client.get_run(lifecycle.shuffled.run_id).data.tags
    for tags in (version_tags, run_tags):
        assert tags["promotion.decision"] == "rejected"
        assert tags["promotion.champion_score"] == repr(rejected.champion_score)
        assert tags["promotion.reasons"] == "; ".join(rejected.reasons)


def test_champion_loads_by_alias_and_predicts_probabilities(settings, lifecycle):
    model, version = promotion.load_champion(settings)
    assert version == "1"
    expected = lifecycle.good.model.predict_proba(lifecycle.window)
    np.testing.assert_allclose(model.predict_proba(lifecycle.window), expected)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{tracking.REGISTERED_MODEL_NAME}@{promotion.CHAMPION_ALIAS}")
    # Typed as the signature says (int64 whole-number features): pyfunc enforces the signature.
    served = np.asarray(pyfunc.predict(tracking.in_signature_types(lifecycle.window)))
    assert served.shape == (len(lifecycle.window), 2)
    np.testing.assert_allclose(served, expected)


def test_rollback_walks_the_champion_history(settings, lifecycle):
    """Mutates the registry: keep this test after the ones that read the lifecycle's state."""
    client = tracking.mlflow_client(settings)
    with pytest.raises(RuntimeError, match="No earlier champion"):
        promotion.rollback(store=settings)
    explicit = promotion.rollback(to_version=2, store=settings)
    assert (explicit.previous_champion, explicit.champion) == ("1", "2")
    assert promotion.alias_version(client, promotion.CHAMPION_ALIAS) == "2"

    repromoted = promotion.decide_promotion("1", lifecycle.window, settings)
    assert repromoted.promoted and repromoted.champion_version == "2"
    assert repromoted.challenger_score > repromoted.champion_score
    assert promotion.alias_version(client, promotion.CHAMPION_ALIAS) == "1"

    back = promotion.rollback(store=settings)
    assert (back.previous_champion, back.champion) == ("1", "2")
    assert promotion.rollback(store=settings).champion == "1"
    assert promotion.champion_history(client) == ["1"]
    with pytest.raises(RuntimeError, match="has no version 7"):
        promotion.rollback(to_version=7, store=settings)
    with pytest.raises(RuntimeError, match="already champion"):
        promotion.rollback(to_version=1, store=settings)
    assert promotion.alias_version(client, promotion.CHAMPION_ALIAS) == "1"


def _write_feature_tables(settings, tables) -> None:
    features, labels = tables
    with connect(settings.warehouse) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS features")
        con.register("features_frame", features)
        con.register("labels_frame", labels)
        con.execute("CREATE OR REPLACE TABLE features.flight_features AS SELECT * FROM features_frame")
        con.execute("CREATE OR REPLACE TABLE features.flight_labels AS SELECT * FROM labels_frame")


def test_labelled_features_read_from_the_warehouse(settings, tables, labelled):
    _write_feature_tables(settings, tables)
    first, last = FIRST_DAY + timedelta(days=10), FIRST_DAY + timedelta(days=16)
    with connect(settings.warehouse, read_only=True) as con:
        read = read_labelled_features(con, first, last)
        everything = read_labelled_features(con)
    expected = labelled[flight_days(labelled).between(first, last)]
    assert len(read) == len(expected)
    assert set(read["flight_id"]) == set(expected["flight_id"])
    assert read[LABEL_COLUMN].sum() == expected[LABEL_COLUMN].sum()
    assert len(everything) == len(labelled)


def test_labelled_features_are_read_a_chunk_at_a_time_with_one_string_per_category(settings, tables, monkeypatch):
    features, labels = tables
    features = features.copy()
    features.loc[features.index[::7], "carrier"] = None  # missing values stay missing
    features.loc[features.index[::5], "dest"] = "O'HARE"  # a quote in a category
    _write_feature_tables(settings, (features, labels))
    columns = ", ".join(f"f.{column}" for column in (*ID_COLUMNS, modeling_data.LEAD_COLUMN, *FEATURE_COLUMNS))
    with connect(settings.warehouse, read_only=True) as con:
        # What DuckDB gives for the plain columns, in the reader's order.
        expected = con.execute(
            f"SELECT {columns}, l.{LABEL_COLUMN} FROM features.flight_features AS f JOIN features.flight_labels AS l "
            "USING (flight_id) ORDER BY f.flight_date, f.dep_minute_of_day, f.flight_id").df()
        monkeypatch.setattr(modeling_data, "READ_VECTORS", 1)  # 2,048 rows a chunk
        chunked = read_labelled_features(con)
        empty = read_labelled_features(con, LAST_DAY + timedelta(days=1))
    assert len(expected) > 3 * 2048  # several chunks, the last one partial
    pd.testing.assert_frame_equal(chunked, expected)
    assert chunked["carrier"].isna().sum() == expected["carrier"].isna().sum() > 0
    assert all(value is None for value in chunked.loc[chunked["carrier"].isna(), "carrier"])
    for column in CATEGORICAL_FEATURES:
        values = chunked[column].dropna()
        assert len({id(value) for value in values}) == values.nunique()  # one object per distinct value
    assert empty.empty and list(empty.columns) == list(chunked.columns)


def test_training_reads_at_most_max_rows_of_the_latest_whole_days_and_promotion_only_its_recent_days(settings, tables, labelled):
    _write_feature_tables(settings, tables)
    per_day = labelled.groupby(flight_days(labelled)).size().sort_index()  # labelled rows a day, oldest first
    days = list(per_day.index)
    last_three = int(per_day.iloc[-3:].sum())
    window_end = days[-5]
    with connect(settings.warehouse, read_only=True) as con:
        assert latest_days_within(con, len(labelled)) is None  # the whole history fits: no cut
        assert latest_days_within(con, last_three) == days[-3]  # exactly the last three days' rows
        assert latest_days_within(con, last_three - 1) == days[-2]  # one row fewer: a whole day less
        assert latest_days_within(con, 1) == days[-1]  # the last day is kept whatever its rows
        # Within an explicit window, counted back from its own last day.
        assert latest_days_within(con, int(per_day.loc[days[-6]:window_end].sum()), days[0], window_end) == days[-6]
        bounded = read_labelled_features(con, latest_days_within(con, last_three - 1), None)
        recent = recent_labelled_days(con, 3)
    assert len(bounded) == per_day.iloc[-2:].sum() <= last_three - 1
    assert set(recent["flight_id"]) == set(labelled.loc[flight_days(labelled) >= days[-3], "flight_id"])
