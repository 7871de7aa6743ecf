"""Unit tests of the monitoring core (flightops/monitoring/*.py) on small data (no platform run).

Expectations are derived independently of the code under test: by hand on tiny inputs (log
losses of exact label fractions, medians of weekday counts, day counts of streaks and cool-downs),
by a brute-force O(n^2) oracle (expected ROC AUC), or by a second library (scikit-learn's ROC AUC
and log loss, Evidently's own Report for the drift scores). The feature rows are rows of
`features.flight_features` for January 2013 from tests/feature_frames.py (synthetic, inside each
feature's documented range; no platform run).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from flightops.modeling.evaluate import classification_metrics
from flightops.modeling.schema import FEATURE_COLUMNS
from flightops.monitoring import figures as fig
from flightops.monitoring.daily import Reference, monitor_day
from flightops.monitoring.drift import (
    FEATURE_GROUPS,
    PREDICTION,
    STABLE,
    WEATHER,
    drift_report,
    group_of,
    importance_weights,
    measure_drift,
)
from flightops.monitoring.latest import read_latest, write_latest
from flightops.monitoring.performance import Estimator, expected_roc_auc
from flightops.monitoring.policy import MonitoringPolicy
from flightops.monitoring.retraining import LoopState, judge
from flightops.settings import Settings, environment_under, load_environment
from tests.feature_frames import feature_tables

pytestmark = pytest.mark.unit

JANUARY_DAYS = 20
FLIGHTS_PER_DAY = 1000  # about as many as New York had; 5 days hold over 1,000 gusts (Evidently's switch)
WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]


def jan(day: int) -> date:
    return date(2013, 1, day)


@pytest.fixture(scope="module")
def january() -> pd.DataFrame:
    """Feature rows of 2013-01-01..20 with `flight_date`, `day` and a probability from a simple function of features."""
    rows, _ = feature_tables(jan(1), days=JANUARY_DAYS, flights_per_day=FLIGHTS_PER_DAY)
    rows["day"] = [d.day for d in rows["flight_date"]]
    logit = -2.5 + 0.08 * rows["dep_hour"] + 2.0 * rows["carrier_prior_delay_rate"].fillna(0.2)
    rows["probability"] = 1.0 / (1.0 + np.exp(-logit))
    return rows


def importance() -> pd.Series:
    """A permutation importance per model input: decreasing, the last few and plane_age negative (useless)."""
    values = pd.Series(np.linspace(0.05, -0.01, len(FEATURE_COLUMNS)), index=list(FEATURE_COLUMNS))
    values["plane_age"] = -0.002
    return values


# --------------------------------------------------------------------------------------------
# 1. performance: expected ROC AUC and the confidence-based estimator
# --------------------------------------------------------------------------------------------


def brute_force_expected_auc(score: np.ndarray, q: np.ndarray) -> float:
    """sum over ordered pairs i != j of q_i (1 - q_j) [s_i > s_j, ties 1/2] / sum of q_i (1 - q_j)."""
    numerator = denominator = 0.0
    for i in range(len(score)):
        for j in range(len(score)):
            if i == j:
                continue
            weight = q[i] * (1.0 - q[j])
            denominator += weight
            if score[i] > score[j]:
                numerator += weight
            elif score[i] == score[j]:
                numerator += 0.5 * weight
    return numerator / denominator


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expected_auc_with_certain_labels_is_sklearns_roc_auc(seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 500)
    scores = rng.integers(0, 20, 500) / 20.0  # few distinct values: many ties across classes
    assert expected_roc_auc(scores, labels.astype(float)) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_expected_auc_equals_brute_force_over_pairs(seed: int):
    rng = np.random.default_rng(seed)
    n = 200
    score = rng.integers(0, 30, n) / 30.0  # ties
    q = rng.uniform(0.0, 1.0, n)
    assert expected_roc_auc(score, q) == pytest.approx(brute_force_expected_auc(score, q), abs=1e-12)


def test_expected_auc_is_nan_without_any_positive_mass():
    assert math.isnan(expected_roc_auc(np.array([0.1, 0.5, 0.9]), np.zeros(3)))


def test_estimator_on_calibrated_data_matches_the_realized_figures():
    rng = np.random.default_rng(42)
    reference = rng.beta(2, 5, 20_000)
    estimator = Estimator.fit(reference, rng.binomial(1, reference))
    # New flights with another probability distribution (covariate shift), labels still calibrated.
    new = rng.beta(1.5, 3, 50_000)
    labels = rng.binomial(1, new)
    estimate = estimator.estimate(new)
    # Over 30 seeds the estimate's error has a standard deviation of about 0.005 (isotonic fit on
    # 20k reference rows); 0.015 is three of them.
    assert estimate["log_loss"] == pytest.approx(log_loss(labels, new), abs=0.015)
    assert estimate["roc_auc"] == pytest.approx(roc_auc_score(labels, new), abs=0.015)


def test_estimator_calibrates_an_overconfident_model_first():
    rng = np.random.default_rng(3)
    truth = rng.beta(2, 5, 20_000)
    model = truth**0.4  # a monotone, badly calibrated model output
    estimator = Estimator.fit(model, rng.binomial(1, truth))
    new_truth = rng.beta(1.5, 3, 50_000)
    new_model = new_truth**0.4
    labels = rng.binomial(1, new_truth)
    estimate = estimator.estimate(new_model)
    realized_log_loss = log_loss(labels, new_model)
    # Taking the model's own probabilities as the truth would be far off ...
    naive = float(np.mean(-(new_model * np.log(new_model) + (1 - new_model) * np.log(1 - new_model))))
    assert abs(naive - realized_log_loss) > 0.08
    # ... the estimator, calibrated on the reference, is not.
    assert estimate["log_loss"] == pytest.approx(realized_log_loss, abs=0.015)
    assert estimate["roc_auc"] == pytest.approx(roc_auc_score(labels, new_model), abs=0.015)


def test_estimator_refuses_a_single_class_reference_saying_what_to_do():
    with pytest.raises(ValueError, match="single class") as error:
        Estimator.fit(np.array([0.2, 0.3, 0.4]), np.array([0, 0, 0]))
    assert "Rebuild monitoring/reference" in str(error.value)


# --------------------------------------------------------------------------------------------
# 2. drift: groups, weights, and measure_drift on feature rows
# --------------------------------------------------------------------------------------------


def test_feature_groups_cover_every_model_input_exactly_once():
    grouped = [column for columns in FEATURE_GROUPS.values() for column in columns]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == set(FEATURE_COLUMNS)
    assert sorted(FEATURE_GROUPS[WEATHER]) == sorted(WEATHER_COLUMNS)
    for group, columns in FEATURE_GROUPS.items():
        assert all(group_of(column) == group for column in columns)
    assert group_of("probability") == PREDICTION
    with pytest.raises(KeyError, match="FEATURE_GROUPS"):
        group_of("tail_number")


def test_importance_weights_clip_negatives_and_sum_to_one():
    stable = FEATURE_GROUPS[STABLE]
    raw = pd.Series({column: 0.0 for column in FEATURE_COLUMNS})
    raw[stable[0]], raw[stable[1]], raw[stable[2]] = 0.03, 0.01, -0.5
    raw["temp"] = 10.0  # not a stable input: no weight whatever its importance
    weights = importance_weights(raw)
    assert set(weights) == set(stable)
    assert weights[stable[0]] == pytest.approx(0.75)
    assert weights[stable[1]] == pytest.approx(0.25)
    assert weights[stable[2]] == 0.0
    assert sum(weights.values()) == pytest.approx(1.0)


def test_importance_weights_are_equal_when_no_importance_is_positive():
    weights = importance_weights(pd.Series({column: -0.01 for column in FEATURE_COLUMNS}))
    assert weights == pytest.approx({column: 1 / len(FEATURE_GROUPS[STABLE]) for column in FEATURE_GROUPS[STABLE]})
    assert importance_weights(pd.Series(dtype=float)) == weights


def _split(january: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference Jan 1-5, current Jan 11-15 (both well above Evidently's 1,000-row switch)."""
    reference = january[january["day"] <= 5].reset_index(drop=True)
    current = january[january["day"].between(11, 15)].reset_index(drop=True)
    return current, reference


def _by_column(result) -> dict:
    return {c.column: c for c in result.columns}


def test_massive_weather_shift_flags_all_weather_and_no_stable_input(january: pd.DataFrame):
    current, reference = _split(january)
    policy = MonitoringPolicy()
    baseline = _by_column(measure_drift(current, reference, importance(), policy))
    shifted = current.copy()
    shifted["temp"] += 40
    shifted["dewp"] += 40
    shifted["humid"] -= 60
    shifted["wind_dir"] += 360
    shifted["wind_speed"] += 30
    shifted["wind_gust"] += 30
    shifted["precip"] += 1.0
    shifted["pressure"] -= 30
    shifted["visib"] *= 0.1
    result = measure_drift(shifted, reference, importance(), policy)
    columns = _by_column(result)
    assert len(reference) > 1000  # Evidently's large-reference methods: distances, high = drift
    for column in WEATHER_COLUMNS:
        assert columns[column].drifted, column
        assert columns[column].method == "Wasserstein distance (normed)"
        assert columns[column].score > columns[column].threshold == 0.1
        assert columns[column].score > baseline[column].score, column
    assert result.share(WEATHER) == 1.0
    for column in FEATURE_GROUPS[STABLE]:
        assert not columns[column].drifted, (column, columns[column].score)
        assert columns[column] == baseline[column]  # untouched columns score as before
    assert result.drifted(STABLE) == []
    assert result.weighted_stable_share == 0.0


@pytest.mark.parametrize("changed", ["carrier", "dep_hour", "plane_age"])
def test_stable_input_drift_is_flagged_and_weighted(january: pd.DataFrame, changed: str):
    current, reference = _split(january)
    policy = MonitoringPolicy()
    moved = current.copy()
    half = moved.index[: len(moved) // 2]
    if changed == "carrier":
        assert "ZZ" not in set(reference["carrier"])
        moved.loc[half, "carrier"] = "ZZ"  # a carrier the reference never saw
    else:
        moved.loc[half, changed] += 10
    result = measure_drift(moved, reference, importance(), policy)
    assert result.drifted(STABLE) == [changed]
    # The weight by hand: this column's importance over the sum of the stable inputs' positive importances.
    imp = importance()
    positive = sum(max(imp[c], 0.0) for c in FEATURE_GROUPS[STABLE])
    assert result.weighted_stable_share == pytest.approx(max(imp[changed], 0.0) / positive, abs=1e-12)
    if changed == "plane_age":  # importance below 0: the model ignores it, its drift weighs nothing
        assert imp[changed] < 0 and result.weighted_stable_share == 0.0
    else:
        assert result.weighted_stable_share > 0
    assert result.share(STABLE) == pytest.approx(1 / len(FEATURE_GROUPS[STABLE]))


@pytest.mark.parametrize("size", ["large", "small"])
def test_measure_drift_equals_evidentlys_report(january: pd.DataFrame, size: str):
    current, reference = _split(january)
    current = current.copy()
    current.loc[current.index[: len(current) // 2], "carrier"] = "ZZ"
    if size == "small":  # at or below 1,000 reference rows Evidently switches to p-values
        reference = reference.sample(800, random_state=1)
        current = current.sample(600, random_state=2)
    policy = MonitoringPolicy()
    ours = _by_column(measure_drift(current, reference, importance(), policy))
    snapshot = drift_report(current, reference, policy).dict()
    theirs = {m["config"]["column"]: m for m in snapshot["metrics"] if m["config"]["type"].endswith("ValueDrift")}
    failed = {t["metric_config"]["metric_id"] for t in snapshot["tests"] if str(t["status"].value) == "FAIL"}
    assert set(ours) == set(theirs) == {*FEATURE_COLUMNS, "probability"}
    for column, metric in theirs.items():
        assert ours[column].method == metric["config"]["method"], column
        assert ours[column].threshold == metric["config"]["threshold"], column
        assert ours[column].score == pytest.approx(float(metric["value"]), abs=1e-9), column
        assert ours[column].drifted == (metric["id"] in failed), column
    methods = {c.method for c in ours.values()}
    if size == "large":
        assert methods == {"Wasserstein distance (normed)", "Jensen-Shannon distance"}
    else:
        assert {"K-S p_value", "chi-square p_value"} <= methods
        assert {c.threshold for c in ours.values()} == {0.05}
    assert ours["carrier"].drifted


# --------------------------------------------------------------------------------------------
# 3. daily.monitor_day with a hand-built reference
# --------------------------------------------------------------------------------------------

P_LOW, P_HIGH = 0.1, 0.4


def cross_entropy(rate: float, p: float) -> float:
    """Mean log loss of probability p on rows of which a fraction `rate` is positive."""
    return -(rate * math.log(p) + (1 - rate) * math.log(1 - p))


# By hand: half the rows at 0.1 with exactly 10% delayed, half at 0.4 with exactly 40% delayed.
FINE_LOG_LOSS = 0.5 * cross_entropy(0.1, P_LOW) + 0.5 * cross_entropy(0.4, P_HIGH)
# A bad day: 90% of the 0.1 rows and 60% of the 0.4 rows delayed.
BAD_LOG_LOSS = 0.5 * cross_entropy(0.9, P_LOW) + 0.5 * cross_entropy(0.6, P_HIGH)


def _day_rows(rows: pd.DataFrame, bad: bool) -> pd.DataFrame:
    """A multiple of 20 rows of one day with probabilities 0.1/0.4 and labels in exact fractions."""
    rows = rows.iloc[: len(rows) // 20 * 20].copy()
    half = len(rows) // 2
    position = np.arange(half) % 10
    rows["probability"] = np.r_[np.full(half, P_LOW), np.full(half, P_HIGH)]
    low = position != 0 if bad else position == 0  # 90% or 10% delayed
    high = position < 6 if bad else position < 4  # 60% or 40% delayed
    rows["is_delayed"] = np.r_[low, high].astype(float)
    return rows


ROWS_PER_DAY = 200  # a seeded sample of each day's flights: 1,400 reference rows, fast drift


def scored_frame(january: pd.DataFrame, bad_days: set[int] = frozenset()) -> pd.DataFrame:
    days = [rows.sample(ROWS_PER_DAY, random_state=int(day)).sort_values("dep_minute_of_day")
            for day, rows in january.groupby("day", sort=True)]
    return pd.concat([_day_rows(rows, int(rows["day"].iloc[0]) in bad_days) for rows in days], ignore_index=True)


REFERENCE_END = jan(7)


def make_reference(scored: pd.DataFrame) -> Reference:
    rows = scored[scored["flight_date"] <= REFERENCE_END].reset_index(drop=True)
    y, p = rows["is_delayed"].astype(int).to_numpy(), rows["probability"].to_numpy()
    return Reference(model_version="7", rows=rows, importance=importance(), data_end=REFERENCE_END,
                     metrics=classification_metrics(y, p), estimator=Estimator.fit(p, y))


def realized_figures(result) -> dict[str, fig.Figure]:
    return {f.metric: f for f in result.figures if f.report == fig.REALIZED_PERFORMANCE and f.slice == "all"}


def counts_of(scored: pd.DataFrame) -> pd.Series:
    return scored.groupby("flight_date").size()


def window_log_loss(scored: pd.DataFrame, first: int, last: int) -> float:
    """The window's log loss by hand: each day's exact log loss weighted by its rows."""
    rows = scored[(scored["day"] >= first) & (scored["day"] <= last)]
    per_day = rows.groupby("day").agg(n=("is_delayed", "size"), bad=("is_delayed", "mean"))
    # A fine day has 25% delayed (10% and 40% of two halves), a bad day 75%.
    losses = np.where(per_day["bad"] > 0.5, BAD_LOG_LOSS, FINE_LOG_LOSS)
    return float((losses * per_day["n"]).sum() / per_day["n"].sum())


@pytest.fixture(scope="module")
def fine(january: pd.DataFrame) -> pd.DataFrame:
    return scored_frame(january)


def test_hand_built_reference_has_the_hand_computed_log_loss(fine: pd.DataFrame):
    reference = make_reference(fine)
    assert reference.metrics["log_loss"] == pytest.approx(FINE_LOG_LOSS, abs=1e-12)
    assert reference.metrics["base_rate"] == pytest.approx(0.25)
    assert FINE_LOG_LOSS == pytest.approx(0.49905, abs=1e-4)


@pytest.mark.parametrize("label_delay_days", [1, 2])
def test_realized_window_starts_after_reference_and_needs_min_days(fine: pd.DataFrame, label_delay_days: int):
    policy = MonitoringPolicy(label_delay_days=label_delay_days)
    reference = make_reference(fine)
    counts = counts_of(fine)
    # Labels through D - delay; the window starts the day after the reference ends (Jan 8) and
    # needs 3 days (Jan 8..10): the first day with realized figures is Jan 10 + delay.
    first = 10 + label_delay_days
    for day in range(8, first):
        result = monitor_day(jan(day), fine, counts, reference, policy)
        assert realized_figures(result) == {}, day
        assert "realized_degraded" not in result.summary
        assert "realized_log_loss_rise" not in result.summary["checks"]
        assert result.summary["labelled_through"] == jan(day - label_delay_days).isoformat()
    result = monitor_day(jan(first), fine, counts, reference, policy)
    assert result.summary["realized_window"] == "2013-01-08..2013-01-10"
    figures = realized_figures(result)
    assert (figures["rows"].window_start, figures["rows"].window_end) == (jan(8), jan(10))
    assert figures["rows"].value == sum(counts[jan(d)] for d in (8, 9, 10))
    # Two days later the window has grown to 5 days, still cut at the reference end.
    result = monitor_day(jan(first + 2), fine, counts, reference, policy)
    assert result.summary["realized_window"] == "2013-01-08..2013-01-12"


def test_realized_window_is_seven_days_ending_at_labelled_through(january: pd.DataFrame):
    # Day 20's own labels are terrible; it is not labelled yet on day 20, so the figures never see them.
    scored = scored_frame(january, bad_days={20})
    policy = MonitoringPolicy()
    result = monitor_day(jan(20), scored, counts_of(scored), make_reference(scored), policy)
    figures = realized_figures(result)
    assert result.summary["realized_window"] == "2013-01-13..2013-01-19"
    assert figures["log_loss"].value == pytest.approx(FINE_LOG_LOSS, abs=1e-12)
    assert figures["log_loss_rise"].value == pytest.approx(0.0, abs=1e-12)
    assert figures["log_loss_rise"].status == fig.OK
    assert figures["rows"].value == len(scored[scored["day"].between(13, 19)])
    assert result.summary["realized_degraded"] is False
    assert result.summary["checks"]["realized_log_loss_rise"] is False


def test_window_with_three_bad_days_is_degraded(january: pd.DataFrame):
    scored = scored_frame(january, bad_days={14, 15, 16})
    policy = MonitoringPolicy()
    result = monitor_day(jan(20), scored, counts_of(scored), make_reference(scored), policy)
    figures = realized_figures(result)
    expected_rise = window_log_loss(scored, 13, 19) - FINE_LOG_LOSS
    assert figures["log_loss"].value == pytest.approx(window_log_loss(scored, 13, 19), abs=1e-12)
    assert figures["log_loss_rise"].value == pytest.approx(expected_rise, abs=1e-12)
    assert figures["log_loss_rise"].status == fig.ALERT
    assert figures["log_loss_rise"].threshold == policy.realized_log_loss_rise_threshold == 0.05
    assert figures["days_past_log_loss_threshold"].value == 3
    assert result.summary["realized_degraded"] is True
    assert result.summary["days_past_threshold"] == 3
    assert result.summary["checks"]["realized_log_loss_rise"] is True
    assert "realized_log_loss_rise" in result.alerts
    # Probabilities average 0.25 every day; a bad day's delay rate is 0.75: the calibration gap by hand.
    window = scored[scored["day"].between(13, 19)]
    delay_rate = float(np.where(window["day"].isin([14, 15, 16]), 0.75, 0.25).mean())
    assert figures["base_rate"].value == pytest.approx(delay_rate, abs=1e-12)
    assert figures["calibration_gap"].value == pytest.approx(delay_rate - 0.25, abs=1e-12)
    assert figures["calibration_gap"].status == fig.ALERT and result.summary["checks"]["calibration_gap"] is True


@pytest.mark.parametrize("bad_days", [{16}, {15, 16}], ids=["one-storm-day", "two-bad-days"])
def test_storm_days_below_the_minimum_do_not_degrade_the_window(january: pd.DataFrame, bad_days: set[int]):
    scored = scored_frame(january, bad_days=bad_days)
    policy = MonitoringPolicy()
    assert len(bad_days) < policy.min_bad_days_in_window == 3
    result = monitor_day(jan(20), scored, counts_of(scored), make_reference(scored), policy)
    figures = realized_figures(result)
    rise = window_log_loss(scored, 13, 19) - FINE_LOG_LOSS
    assert rise > policy.realized_log_loss_rise_threshold  # the 7-day figure alone would trigger
    assert figures["log_loss_rise"].value == pytest.approx(rise, abs=1e-12)
    assert figures["days_past_log_loss_threshold"].value == len(bad_days)
    assert figures["log_loss_rise"].status == fig.OK
    assert result.summary["realized_degraded"] is False
    assert result.summary["checks"]["realized_log_loss_rise"] is False


def test_volume_check_against_the_same_weekday_of_earlier_weeks(fine: pd.DataFrame):
    policy = MonitoringPolicy()
    reference = make_reference(fine)
    real = counts_of(fine)
    # Jan 20 is a Sunday; the Sundays before it in the data are Jan 13 and Jan 6.
    norm = float(np.median([real[jan(13)], real[jan(6)]]))
    counts = real.copy()
    for day in (14, 15, 16, 17, 18, 19):
        counts[jan(day)] = 10  # other weekdays do not count
    counts[jan(20)] = round(norm * 0.5)
    low = monitor_day(jan(20), fine, counts, reference, policy)
    volume = {f.metric: f for f in low.figures
              if f.metric in ("flights", "flights_weekday_norm", "flights_vs_weekday_norm")}
    assert volume["flights_weekday_norm"].value == norm
    assert volume["flights"].value == round(norm * 0.5)
    assert low.summary["checks"]["daily_volume"] is True
    assert volume["flights_vs_weekday_norm"].value == pytest.approx(round(norm * 0.5) / norm - 1)
    assert volume["flights_vs_weekday_norm"].status == fig.ALERT
    assert volume["flights_vs_weekday_norm"].threshold == policy.volume_tolerance
    counts[jan(20)] = round(norm * 0.9)
    assert monitor_day(jan(20), fine, counts, reference, policy).summary["checks"]["daily_volume"] is False
    counts[jan(20)] = round(norm * 1.5)
    assert monitor_day(jan(20), fine, counts, reference, policy).summary["checks"]["daily_volume"] is True


def test_every_alert_figure_has_a_threshold(january: pd.DataFrame):
    scored = scored_frame(january, bad_days={14, 15, 16})
    # Stable drift too: flights of a carrier to a destination the reference never saw.
    scored.loc[scored["day"] >= 15, ["carrier", "dest", "route"]] = ["ZZ", "XXX", "JFK-XXX"]
    policy = MonitoringPolicy()
    reference = make_reference(scored)
    counts = counts_of(scored)
    counts[jan(20)] = 1
    figures = [f for day in (9, 10, 16, 20) for f in monitor_day(jan(day), scored, counts, reference, policy).figures]
    alerts = [f for f in figures if f.status == fig.ALERT]
    assert {f.metric for f in alerts} >= {"drift_score", "log_loss_rise", "flights_vs_weekday_norm", "weighted_drifted_share"}
    assert all(f.threshold is not None for f in alerts), [f for f in alerts if f.threshold is None]
    assert {f.status for f in figures} <= {fig.OK, fig.ALERT, fig.INFO}


# --------------------------------------------------------------------------------------------
# 4. retraining.judge on synthetic summaries
# --------------------------------------------------------------------------------------------

VERSION = "3"
DATA_END = date(2013, 1, 31)
FIRST = date(2013, 3, 1)  # labelled days since DATA_END are well past the 14-day minimum


def summary(day: date, *, degraded: bool = False, estimated: bool = False, stable: bool = False,
            weather: float = 0.0, version: str = VERSION) -> dict:
    """A day's summary as daily.monitor_day writes it."""
    return {
        "model_version": version,
        "labelled_through": (day - timedelta(days=1)).isoformat(),
        "realized_degraded": degraded,
        "realized_log_loss": 0.7 if degraded else 0.5,
        "realized_log_loss_rise": 0.2 if degraded else 0.0,
        "days_past_threshold": 4 if degraded else 0,
        "estimated_auc_drop": 0.05 if estimated else 0.0,
        "weighted_stable_drift": 0.5 if stable else 0.0,
        "drifted_stable": ["carrier"] if stable else [],
        "weather_drift_share": weather,
        "checks": {"daily_volume": False, "stable_feature_drift": stable, "estimated_auc_drop": estimated,
                   "realized_log_loss_rise": degraded, "calibration_gap": False},
    }


def days_from(first: date, flags: list[dict]) -> dict[str, dict]:
    return {(first + timedelta(days=i)).isoformat(): summary(first + timedelta(days=i), **f) for i, f in enumerate(flags)}


def run_judge(days: dict, state: LoopState | None = None, *, data_end: date = DATA_END, active: str | None = None,
              policy: MonitoringPolicy | None = None):
    state = state if state is not None else LoopState()
    result = judge(days, state, policy or MonitoringPolicy(), champion_version=VERSION, champion_data_end=data_end,
                   active_retrain_run=active)
    return result, state


def day_n(n: int) -> date:
    """The n-th monitored day, 1-based."""
    return FIRST + timedelta(days=n - 1)


def test_two_degraded_days_trigger_once_on_the_second():
    result, state = run_judge(days_from(FIRST, [{"degraded": True}, {"degraded": True}]))
    assert [t.day for t in result.triggers] == [day_n(2)]
    trigger = result.triggers[0]
    assert trigger.model_version == VERSION
    assert trigger.labelled_through == day_n(1)
    assert trigger.run_key == f"retrain-v3-{day_n(2).isoformat()}"
    assert len(trigger.reasons) == 1 and "degraded 2 days running" in trigger.reasons[0]
    assert result.held_back == []
    assert state.last_trigger_day == day_n(2).isoformat() and state.streak == 0


def test_one_degraded_day_then_fine_gives_nothing():
    result, state = run_judge(days_from(FIRST, [{"degraded": True}, {}, {"degraded": True}, {}]))
    assert result.triggers == [] and result.held_back == []
    assert state.streak == 0 and state.last_day == day_n(4).isoformat()


def judge_day_by_day(days: dict[str, dict], **kwargs):
    """One evaluation per new day, as the sensor sees them arrive; the triggers and held-back entries of all."""
    state, triggers, held_back = LoopState(), [], []
    for iso in sorted(days):
        result, state = run_judge({iso: days[iso]}, LoopState.from_cursor(state.to_cursor()), **kwargs)
        triggers += result.triggers
        held_back += result.held_back
    return triggers, held_back


def test_long_degradation_triggers_again_only_after_the_cool_down():
    policy = MonitoringPolicy()
    assert (policy.sustained_days, policy.cooldown_days) == (2, 14)
    triggers, held_back = judge_day_by_day(days_from(FIRST, [{"degraded": True}] * 20))
    # Day 2: streak 2, trigger (streak consumed). Day 3: streak 1. Days 4..15: streak >= 2 but
    # within 14 days of day 2: held back. Day 16 = day 2 + 14: trigger. Day 17: streak 1.
    # Days 18..20: held back by the new cool-down.
    assert [t.day for t in triggers] == [day_n(2), day_n(16)]
    held_days = [entry.split(":")[0] for entry in held_back]
    assert held_days == [day_n(n).isoformat() for n in [*range(4, 16), 18, 19, 20]]
    assert all("cool-down of 14 data days" in entry for entry in held_back)
    assert all(f"since the trigger of {day_n(2).isoformat()}" in entry for entry in held_back[:12])
    assert all(f"since the trigger of {day_n(16).isoformat()}" in entry for entry in held_back[12:])
    # Judged in one batch, the same days give the first trigger only (one per evaluation).
    result, _ = run_judge(days_from(FIRST, [{"degraded": True}] * 20))
    assert [t.day for t in result.triggers] == [day_n(2)]


@pytest.mark.parametrize(
    ("flags", "triggers"),
    [
        ({"estimated": True}, 0),
        ({"stable": True}, 0),
        ({"estimated": True, "stable": True}, 1),
        ({"weather": 1.0}, 0),
    ],
    ids=["estimated-drop-alone", "stable-drift-alone", "both-same-day", "weather-only"],
)
def test_estimated_drop_needs_stable_drift_on_the_same_day(flags: dict, triggers: int):
    result, _ = run_judge(days_from(FIRST, [flags]))
    assert len(result.triggers) == triggers
    assert result.held_back == []
    if triggers:
        assert result.triggers[0].day == FIRST
        assert "estimated ROC AUC drop" in result.triggers[0].reasons[0]
        assert "carrier" in result.triggers[0].reasons[0]


def test_estimated_drop_and_stable_drift_on_different_days_give_nothing():
    result, _ = run_judge(days_from(FIRST, [{"estimated": True}, {"stable": True}, {"estimated": True}]))
    assert result.triggers == [] and result.held_back == []


def test_new_labelled_days_gate_holds_back_until_it_opens():
    data_end = date(2013, 3, 1)
    first = date(2013, 3, 3)  # labelled through Mar 2: 1 labelled day since the champion's data
    result, _ = run_judge(days_from(first, [{"degraded": True}] * 14), data_end=data_end)
    # Degraded from Mar 3, streak 2 on Mar 4 (labelled through Mar 3: 2 days). The gate opens when
    # labelled_through - data_end >= 14: labelled through Mar 15, day Mar 16.
    assert [t.day for t in result.triggers] == [date(2013, 3, 16)]
    held = result.held_back
    assert [entry.split(":")[0] for entry in held] == [date(2013, 3, d).isoformat() for d in range(4, 16)]
    assert "only 2 labelled days" in held[0] and "minimum 14" in held[0]
    assert "only 13 labelled days" in held[-1]
    assert all("labelled days since the champion's data ended on 2013-03-01" in entry for entry in held)


def test_active_retraining_run_holds_back():
    result, state = run_judge(days_from(FIRST, [{"degraded": True}] * 2), active="run-abc")
    assert result.triggers == []
    assert len(result.held_back) == 1
    assert result.held_back[0].startswith(day_n(2).isoformat())
    assert "retraining run run-abc is already queued or running" in result.held_back[0]
    assert state.last_trigger_day is None


def test_days_of_another_model_version_are_ignored_and_a_new_version_resets_the_streak():
    # Other version's degraded days between the champion's days count for nothing.
    days = days_from(FIRST, [{"degraded": True, "version": "2"}] * 3)
    result, state = run_judge(days)
    assert result.triggers == [] and result.held_back == []
    assert state.last_day is None and state.streak == 0
    # A streak counted for version 2 does not carry over to version 3.
    state = LoopState(last_day=day_n(3).isoformat(), model_version="2", streak=1)
    later = days_from(day_n(4), [{"degraded": True}, {"degraded": True}])
    result, state = run_judge(dict(list(later.items())[:1]), state)
    assert result.triggers == [] and state.streak == 1 and state.model_version == VERSION
    result, state = run_judge(later, state)
    assert [t.day for t in result.triggers] == [day_n(5)]


def test_mixed_versions_in_one_batch_only_the_champions_days_count():
    flags = [{"degraded": True}, {"degraded": True, "version": "2"}, {}, {"degraded": True, "version": "2"}]
    result, state = run_judge(days_from(FIRST, flags))
    assert result.triggers == [] and state.last_day == day_n(3).isoformat()


def test_one_trigger_per_evaluation():
    # Degraded on days 1-2 and again on days 20-21 (past the cool-down), judged in one batch.
    flags = [{"degraded": True}] * 2 + [{}] * 17 + [{"degraded": True}] * 2
    result, _ = run_judge(days_from(FIRST, flags))
    assert [t.day for t in result.triggers] == [day_n(2)]
    assert len(result.held_back) == 1
    assert result.held_back[0].startswith(day_n(21).isoformat())
    assert f"requested by this evaluation (retrain-v3-{day_n(2).isoformat()})" in result.held_back[0]


def test_loop_state_round_trips_and_judged_days_are_not_judged_again():
    days = days_from(FIRST, [{"degraded": True}] * 3)
    result, state = run_judge(days)
    assert len(result.triggers) == 1
    cursor = state.to_cursor()
    restored = LoopState.from_cursor(cursor)
    assert restored == state
    assert restored.last_day == day_n(3).isoformat() and restored.streak == 1
    assert LoopState.from_cursor(None) == LoopState() == LoopState.from_cursor("")
    again, after = run_judge(days, restored)
    assert again.triggers == [] and again.held_back == []
    assert after == state


# --------------------------------------------------------------------------------------------
# 5. figures table and the latest-figures file
# --------------------------------------------------------------------------------------------


def figure(day: date, metric: str, value: float, status: str = fig.OK, threshold: float | None = 0.1) -> fig.Figure:
    return fig.Figure(day, "7", fig.FEATURE_DRIFT, day - timedelta(days=6), day, STABLE, "carrier", metric,
                      "Jensen-Shannon distance", threshold, value, status)


COLUMNS = "day, model_version, report, window_start, window_end, feature_group, slice, metric, method, threshold, value, status"


def table_rows(path: Path) -> list[tuple]:
    with duckdb.connect(str(path)) as con:
        return con.execute(f"SELECT {COLUMNS} FROM {fig.FIGURES_TABLE} ORDER BY day, metric").fetchall()


def test_replace_figures_is_idempotent_and_leaves_other_days(tmp_path: Path):
    path = tmp_path / "warehouse.duckdb"
    d = [date(2013, 3, i) for i in range(1, 6)]
    original = [figure(day, metric, i) for i, day in enumerate(d) for metric in ("drift_score", "share")]
    with duckdb.connect(str(path)) as con:
        assert fig.replace_figures(con, original, d[0], d[4]) == 10
    first = table_rows(path)
    assert len(first) == 10
    replacement = [figure(day, "drift_score", 99.0, fig.ALERT) for day in d[1:4]]
    for _ in range(2):
        with duckdb.connect(str(path)) as con:
            assert fig.replace_figures(con, replacement, d[1], d[3]) == 3
        rows = table_rows(path)
        assert len(rows) == 2 + 3 + 2
        assert [r for r in rows if r[0] in (d[0], d[4])] == [r for r in first if r[0] in (d[0], d[4])]
        inside = [r for r in rows if d[1] <= r[0] <= d[3]]
        assert [(r[0], r[7], r[10], r[11]) for r in inside] == [(day, "drift_score", 99.0, "alert") for day in d[1:4]]
    assert table_rows(path) == rows


def test_latest_figures_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in environment_under(tmp_path).items():  # every path under tmp_path, the rest from .env
        monkeypatch.setenv(name, value)
    load_environment()
    settings = Settings.current()
    assert read_latest(settings) is None
    payload = {"day": "2013-03-01", "model_version": "7", "checks": {"daily_volume": False}, "weighted_stable_drift": 0.25}
    path = write_latest(settings, payload)
    assert path.parent == settings.monitoring_dir and path.exists()
    assert read_latest(settings) == payload
    second = {**payload, "day": date(2013, 3, 2)}  # dates are written as ISO strings
    write_latest(settings, second)
    assert read_latest(settings) == {**payload, "day": "2013-03-02"}
    assert [p.name for p in settings.monitoring_dir.iterdir()] == ["latest.json"]  # no scratch file left
