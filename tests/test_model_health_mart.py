"""mart_model_health from known monitoring rows: the real `dbt build --select tag:monitoring` on a
small warehouse (figures written by the monitoring layer's own writer), checked row by row; and
the Dagster wiring of the monitoring dbt models (group, lineage to the Layer 8 assets)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flightops.monitoring import figures as fig
from flightops.settings import DBT_PROJECT_DIR

# The code location (assets/, sensors/, flightops.jobs) is imported inside the tests that use it: collecting
# the suite loads no definitions, and a broken definition fails those tests, not the collection.

MAR_20, MAR_21, MAR_22 = date(2013, 3, 20), date(2013, 3, 21), date(2013, 3, 22)
WEEK = (date(2013, 3, 14), MAR_20)
LABELLED = (date(2013, 3, 13), date(2013, 3, 19))


def figure(day, report, group, metric, value, *, slice_="all", threshold=None, status=fig.INFO, version="3",
           window=WEEK) -> fig.Figure:
    return fig.Figure(day, version, report, window[0], window[1], group, slice_, metric, None, threshold, value, status)


def known_figures() -> list[fig.Figure]:
    """Mar 20 (v3): every figure, two realized alerts, plus a per-column drift alert and a per-carrier
    log loss that must stay out of the mart. Mar 21 (v3): no labels yet, three day-level alerts.
    Mar 22 (v4, the new champion): one figure."""
    drift, health, realized = fig.FEATURE_DRIFT, fig.PREDICTION_HEALTH, fig.REALIZED_PERFORMANCE
    return [
        figure(MAR_20, drift, "stable", "weighted_drifted_share", 0.1, threshold=0.3, status=fig.OK),
        figure(MAR_20, drift, "stable", "drifted_share", 0.125),
        figure(MAR_20, drift, "calendar", "drifted_share", 0.5),
        figure(MAR_20, drift, "weather", "drifted_share", 1.0),
        figure(MAR_20, drift, "cumulative", "drifted_share", 0.0),
        figure(MAR_20, drift, "operations", "drifted_share", 0.4),
        figure(MAR_20, drift, "weather", "drift_score", 0.4, slice_="temp", threshold=0.1, status=fig.ALERT),
        figure(MAR_20, health, "prediction", "estimated_roc_auc", 0.71),
        figure(MAR_20, health, "prediction", "estimated_roc_auc_drop", 0.02, threshold=0.03, status=fig.OK),
        figure(MAR_20, health, "prediction", "estimated_log_loss", 0.51),
        figure(MAR_20, health, "prediction", "mean_probability", 0.23),
        figure(MAR_20, health, "prediction", "flights", 957, window=(MAR_20, MAR_20)),
        figure(MAR_20, health, "prediction", "flights_weekday_norm", 920, window=(MAR_20, MAR_20)),
        figure(MAR_20, health, "prediction", "flights_vs_weekday_norm", 957 / 920 - 1, threshold=0.3, status=fig.OK,
               window=(MAR_20, MAR_20)),
        figure(MAR_20, realized, "performance", "roc_auc", 0.70, window=LABELLED),
        figure(MAR_20, realized, "performance", "log_loss", 0.55, window=LABELLED),
        figure(MAR_20, realized, "performance", "brier", 0.18, window=LABELLED),
        figure(MAR_20, realized, "performance", "ece", 0.061, window=LABELLED),
        figure(MAR_20, realized, "performance", "base_rate", 0.29, window=LABELLED),
        figure(MAR_20, realized, "performance", "mean_probability", 0.231, window=LABELLED),
        figure(MAR_20, realized, "performance", "rows", 6423, window=LABELLED),
        figure(MAR_20, realized, "performance", "log_loss_rise", 0.06, threshold=0.05, status=fig.ALERT, window=LABELLED),
        figure(MAR_20, realized, "performance", "roc_auc_drop", 0.03, threshold=0.08, status=fig.OK, window=LABELLED),
        figure(MAR_20, realized, "performance", "calibration_gap", 0.059, threshold=0.05, status=fig.ALERT,
               window=LABELLED),
        figure(MAR_20, realized, "performance", "days_past_log_loss_threshold", 3, threshold=3, window=LABELLED),
        figure(MAR_20, realized, "carrier", "log_loss", 0.9, slice_="UA", window=LABELLED),
        figure(MAR_21, drift, "stable", "weighted_drifted_share", 0.4, threshold=0.3, status=fig.ALERT),
        figure(MAR_21, health, "prediction", "estimated_roc_auc_drop", 0.05, threshold=0.03, status=fig.ALERT),
        figure(MAR_21, health, "prediction", "flights", 500, window=(MAR_21, MAR_21)),
        figure(MAR_21, health, "prediction", "flights_weekday_norm", 920, window=(MAR_21, MAR_21)),
        figure(MAR_21, health, "prediction", "flights_vs_weekday_norm", 500 / 920 - 1, threshold=0.3,
               status=fig.ALERT, window=(MAR_21, MAR_21)),
        figure(MAR_22, health, "prediction", "flights", 940, version="4", window=(MAR_22, MAR_22)),
    ]


def write_warehouse(path: Path, figures: list[fig.Figure]) -> None:
    """monitoring.figures through the monitoring layer's writer; two retrainings triggered by Mar 21's
    figures (a rejected one and its re-run, promoting v4) and a manual one without a trigger day."""
    from assets.monitoring import _DECISIONS_DDL

    with duckdb.connect(str(path)) as con:
        fig.replace_figures(con, figures, MAR_20, MAR_22)
        con.execute(_DECISIONS_DDL)
        con.execute("""
            INSERT INTO monitoring.retrain_decisions (run_id, trigger, trigger_day, challenger_version, promoted) VALUES
                ('run-a', 'monitoring', DATE '2013-03-21', '4', false),
                ('run-b', 'monitoring', DATE '2013-03-21', '4', true),
                ('run-c', 'manual', NULL, '5', false)
        """)


def dbt_build_monitoring(warehouse: Path, scratch: Path) -> subprocess.CompletedProcess:
    """The real dbt, as an analyst runs it, against `warehouse`; target/ and logs/ in `scratch`."""
    dbt = Path(sys.executable).parent / "dbt"
    return subprocess.run(
        [str(dbt), "build", "--select", "tag:monitoring", "--profiles-dir", ".",
         "--target-path", str(scratch / "target"), "--log-path", str(scratch / "logs")],
        cwd=DBT_PROJECT_DIR, env={**os.environ, "FLIGHTOPS_WAREHOUSE": str(warehouse)},
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def mart(tmp_path_factory) -> dict[date, dict]:
    scratch = tmp_path_factory.mktemp("model_health")
    warehouse = scratch / "warehouse.duckdb"
    write_warehouse(warehouse, known_figures())
    build = dbt_build_monitoring(warehouse, scratch)
    assert build.returncode == 0, build.stdout + build.stderr
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute("SELECT * FROM marts.mart_model_health ORDER BY day")
        columns = [name for name, *_ in cursor.description]
        return {row[0]: dict(zip(columns, row)) for row in cursor.fetchall()}


def test_one_row_per_monitored_day_and_version(mart):
    assert [(day, row["model_version"]) for day, row in mart.items()] == [(MAR_20, "3"), (MAR_21, "3"), (MAR_22, "4")]


def test_day_level_figures_are_pivoted_into_named_columns(mart):
    row = mart[MAR_20]
    assert {column: row[column] for column in (
        "stable_features_weighted_drifted_share", "stable_features_drifted_share", "calendar_features_drifted_share",
        "weather_features_drifted_share", "cumulative_features_drifted_share", "operations_features_drifted_share",
        "estimated_roc_auc", "estimated_roc_auc_drop", "estimated_log_loss", "mean_predicted_probability", "scored_flights",
        "weekday_median_flights", "realized_labelled_flights", "realized_delay_rate", "realized_roc_auc",
        "realized_log_loss", "realized_brier_score", "realized_expected_calibration_error",
        "realized_calibration_gap", "realized_log_loss_rise", "realized_roc_auc_drop",
        "realized_days_past_log_loss_threshold",
    )} == {
        "stable_features_weighted_drifted_share": 0.1, "stable_features_drifted_share": 0.125,
        "calendar_features_drifted_share": 0.5, "weather_features_drifted_share": 1.0,
        "cumulative_features_drifted_share": 0.0, "operations_features_drifted_share": 0.4, "estimated_roc_auc": 0.71, "estimated_roc_auc_drop": 0.02,
        "estimated_log_loss": 0.51, "mean_predicted_probability": 0.23, "scored_flights": 957,
        "weekday_median_flights": 920.0, "realized_labelled_flights": 6423, "realized_delay_rate": 0.29,
        "realized_roc_auc": 0.70, "realized_log_loss": 0.55, "realized_brier_score": 0.18,
        "realized_expected_calibration_error": 0.061, "realized_calibration_gap": 0.059,
        "realized_log_loss_rise": 0.06, "realized_roc_auc_drop": 0.03, "realized_days_past_log_loss_threshold": 3,
    }
    assert row["flights_vs_weekday_median"] == pytest.approx(957 / 920 - 1)
    windows = [row[c] for c in ("drift_window_start", "drift_window_end", "realized_window_start", "realized_window_end")]
    assert windows == [*WEEK, *LABELLED]


def test_days_without_labels_have_no_realized_figures(mart):
    row = mart[MAR_21]
    assert (row["scored_flights"], row["weekday_median_flights"]) == (500, 920.0)
    assert [row[c] for c in ("realized_window_start", "realized_log_loss", "realized_roc_auc", "realized_labelled_flights",
                             "estimated_roc_auc")] == [None] * 5


def test_alerts_are_the_day_level_figures_in_alert(mart):
    assert [(mart[d]["alert_count"], mart[d]["alerts"]) for d in (MAR_20, MAR_21, MAR_22)] == [
        # The per-column drift alert (weather temp) is not a check of the day.
        (2, "realized_performance.calibration_gap, realized_performance.log_loss_rise"),
        (3, "feature_drift.weighted_drifted_share, prediction_health.estimated_roc_auc_drop, "
            "prediction_health.flights_vs_weekday_norm"),
        (0, ""),
    ]


def test_retrained_on_the_days_whose_figures_triggered_it(mart):
    # Two decisions for Mar 21 give one row; the manual retraining has no trigger day.
    assert [mart[d]["retrained_on_day"] for d in (MAR_20, MAR_21, MAR_22)] == [False, True, False]


def test_an_alert_without_its_threshold_fails_the_build(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    unexplained = figure(MAR_20, fig.REALIZED_PERFORMANCE, "performance", "log_loss_rise", 0.06, status=fig.ALERT)
    write_warehouse(warehouse, [unexplained])
    build = dbt_build_monitoring(warehouse, tmp_path)
    assert build.returncode != 0
    assert "FAIL 1 assert_alert_figures_have_a_threshold" in build.stdout


def test_monitoring_models_sit_downstream_of_the_assets_that_write_their_sources():
    from assets.monitoring import REALIZED_PERFORMANCE, RETRAIN_DECISIONS
    from assets.transform import dbt_daily_models, dbt_warehouse_models, monitoring_models

    keys = {key.to_user_string() for key in monitoring_models.keys}
    assert keys == {"staging/stg_monitoring_figures", "staging/stg_monitoring_retrain_decisions",
                    "marts/mart_model_health"}
    assert set(monitoring_models.group_names_by_key.values()) == {"monitoring"}
    upstream = {dep for deps in monitoring_models.asset_deps.values() for dep in deps} - set(monitoring_models.keys)
    assert upstream == {REALIZED_PERFORMANCE, RETRAIN_DECISIONS}
    assert not set(monitoring_models.keys) & (set(dbt_daily_models.keys) | set(dbt_warehouse_models.keys))
