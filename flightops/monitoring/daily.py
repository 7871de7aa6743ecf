"""One monitored day: feature drift, prediction health and realized performance, as figures and a summary.

The summary is what the retraining sensor reads (from the materialization's metadata, never the
warehouse); the figures go to the long table. Both say, for each judged value, the threshold and
the verdict, so the sensor re-judges nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from flightops.monitoring import figures as fig
from flightops.monitoring.drift import (
    CUMULATIVE, FEATURE_GROUPS, OPERATIONS, PREDICTION, STABLE, WEATHER, DriftResult, measure_drift,
)
from flightops.monitoring.performance import Estimator, realized
from flightops.monitoring.policy import MonitoringPolicy

# Per-slice realized figures are only computed for slices with at least this many labelled flights.
MIN_SLICE_ROWS = 200
VOLUME_WEEKS = 4


@dataclass(frozen=True)
class Reference:
    """The champion's reference: its held-out test window scored by itself, and what it knows of it."""

    model_version: str
    rows: pd.DataFrame  # features, probability, is_delayed, flight_date
    importance: pd.Series  # permutation importance per feature
    data_end: date  # the last day of data the champion's training run saw
    metrics: dict[str, float]  # the champion's realized figures on the reference window
    estimator: Estimator


@dataclass(frozen=True)
class DayResult:
    day: date
    figures: list[fig.Figure]
    summary: dict
    drift: DriftResult | None
    window: tuple[date, date] | None  # the drift window (None when too short to judge)

    @property
    def alerts(self) -> list[str]:
        """Names of the checks this day fails."""
        return [name for name, failed in self.summary.get("checks", {}).items() if failed]


def between(frame: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    return frame[(frame["flight_date"] >= start) & (frame["flight_date"] <= end)]


def volume_norm(daily_counts: pd.Series, day: date) -> float | None:
    """Median flights of the same weekday in the previous VOLUME_WEEKS weeks (None without history)."""
    earlier = [daily_counts.get(day - timedelta(weeks=w)) for w in range(1, VOLUME_WEEKS + 1)]
    earlier = [n for n in earlier if n is not None and not pd.isna(n)]
    return float(np.median(earlier)) if earlier else None


def monitor_day(day: date, scored: pd.DataFrame, daily_counts: pd.Series, reference: Reference,
                policy: MonitoringPolicy) -> DayResult:
    """Every figure of `day`. `scored` holds the champion's probabilities (and labels where known)."""
    version = reference.model_version
    figures: list[fig.Figure] = []

    def add(report, window, group, metric, value, *, slice_="all", method=None, threshold=None, status=fig.INFO):
        start, end = window if window else (None, None)
        figures.append(fig.Figure(day, version, report, start, end, group, slice_, metric, method,
                                  None if threshold is None else float(threshold),
                                  None if value is None or pd.isna(value) else float(value), status))

    summary: dict = {"model_version": version, "labelled_through": policy.labelled_through(day).isoformat()}
    checks: dict[str, bool] = {}

    # Volume: today's flights against the weekday norm.
    volume = int(daily_counts.get(day, 0))
    norm = volume_norm(daily_counts, day)
    volume_off = norm is not None and norm > 0 and abs(volume / norm - 1) > policy.volume_tolerance
    checks["daily_volume"] = bool(volume_off)
    add(fig.PREDICTION_HEALTH, (day, day), PREDICTION, "flights", volume, status=fig.INFO)
    add(fig.PREDICTION_HEALTH, (day, day), PREDICTION, "flights_weekday_norm", norm, method="median of 4 weekdays")
    if norm:
        add(fig.PREDICTION_HEALTH, (day, day), PREDICTION, "flights_vs_weekday_norm", volume / norm - 1,
            method="relative deviation", threshold=policy.volume_tolerance, status=fig.ALERT if volume_off else fig.OK)
    summary.update(volume=volume, volume_norm=norm)

    # Feature drift and prediction health over the rolling window.
    drift = None
    window = policy.window(day, reference.data_end)
    current = between(scored, *window) if window else scored.iloc[0:0]
    if window and len(current):
        drift = measure_drift(current, reference.rows, reference.importance, policy)
        for column in drift.columns:
            report = fig.PREDICTION_HEALTH if column.group == PREDICTION else fig.FEATURE_DRIFT
            add(report, window, column.group, "drift_score", column.score, slice_=column.column, method=column.method,
                threshold=column.threshold, status=fig.ALERT if column.drifted else fig.OK)
        for group in (*FEATURE_GROUPS, PREDICTION):
            add(fig.FEATURE_DRIFT if group != PREDICTION else fig.PREDICTION_HEALTH, window, group,
                "drifted_share", drift.share(group))
        stable_alert = drift.weighted_stable_share > policy.stable_drift_share_threshold
        checks["stable_feature_drift"] = stable_alert
        add(fig.FEATURE_DRIFT, window, STABLE, "weighted_drifted_share", drift.weighted_stable_share,
            method="importance-weighted", threshold=policy.stable_drift_share_threshold,
            status=fig.ALERT if stable_alert else fig.OK)

        estimate = reference.estimator.estimate(current["probability"].to_numpy())
        drop = reference.metrics["roc_auc"] - estimate["roc_auc"]
        estimated_alert = drop > policy.estimated_auc_drop_threshold
        checks["estimated_auc_drop"] = estimated_alert
        add(fig.PREDICTION_HEALTH, window, PREDICTION, "estimated_roc_auc", estimate["roc_auc"], method="cbpe-isotonic")
        add(fig.PREDICTION_HEALTH, window, PREDICTION, "estimated_roc_auc_drop", drop, method="cbpe-isotonic",
            threshold=policy.estimated_auc_drop_threshold, status=fig.ALERT if estimated_alert else fig.OK)
        add(fig.PREDICTION_HEALTH, window, PREDICTION, "estimated_log_loss", estimate["log_loss"], method="cbpe-isotonic")
        add(fig.PREDICTION_HEALTH, window, PREDICTION, "mean_probability", float(current["probability"].mean()))
        summary.update(
            weighted_stable_drift=round(drift.weighted_stable_share, 4),
            drifted_stable=drift.drifted(STABLE),
            weather_drift_share=round(drift.share(WEATHER), 4),
            cumulative_drift_share=round(drift.share(CUMULATIVE), 4),
            operations_drift_share=round(drift.share(OPERATIONS), 4),
            probability_drifted=bool(drift.share(PREDICTION)),
            estimated_roc_auc=round(estimate["roc_auc"], 4),
            estimated_auc_drop=round(drop, 4),
            estimated_log_loss=round(estimate["log_loss"], 4),
        )

    # Realized performance on the labelled window.
    labelled_window = policy.window(policy.labelled_through(day), reference.data_end)
    labelled = between(scored, *labelled_window) if labelled_window else scored.iloc[0:0]
    labelled = labelled[labelled["is_delayed"].notna()]
    if labelled_window and labelled["is_delayed"].nunique() == 2:
        result = realized(labelled)
        ref = reference.metrics
        rise = result.metrics["log_loss"] - ref["log_loss"]
        auc_drop = ref["roc_auc"] - result.metrics["roc_auc"]
        bad_days = sum(ll - ref["log_loss"] > policy.realized_log_loss_rise_threshold
                       for ll in result.daily_log_loss.values())
        degraded = rise > policy.realized_log_loss_rise_threshold and bad_days >= policy.min_bad_days_in_window
        calibration_alert = result.metrics["calibration_gap"] > policy.calibration_gap_threshold
        checks["realized_log_loss_rise"] = degraded
        checks["calibration_gap"] = calibration_alert
        report = fig.REALIZED_PERFORMANCE
        for metric in ("roc_auc", "log_loss", "brier", "ece", "base_rate", "mean_probability", "rows"):
            add(report, labelled_window, "performance", metric, result.metrics[metric])
        add(report, labelled_window, "performance", "log_loss_rise", rise,
            threshold=policy.realized_log_loss_rise_threshold, method=f"vs reference {ref['log_loss']:.4f}",
            status=fig.ALERT if degraded else fig.OK)
        add(report, labelled_window, "performance", "roc_auc_drop", auc_drop,
            threshold=policy.realized_auc_drop_threshold, method=f"vs reference {ref['roc_auc']:.4f}",
            status=fig.ALERT if auc_drop > policy.realized_auc_drop_threshold else fig.OK)
        add(report, labelled_window, "performance", "days_past_log_loss_threshold", bad_days,
            threshold=policy.min_bad_days_in_window)
        add(report, labelled_window, "performance", "calibration_gap", result.metrics["calibration_gap"],
            method="|mean probability - delay rate|", threshold=policy.calibration_gap_threshold,
            status=fig.ALERT if calibration_alert else fig.OK)
        for column, table in result.by_group.items():
            for row in table.itertuples(index=False):
                if row.rows >= MIN_SLICE_ROWS:
                    for metric in ("roc_auc", "log_loss", "brier"):
                        add(report, labelled_window, column, metric, getattr(row, metric), slice_=str(getattr(row, column)))
        summary.update(
            realized_window=f"{labelled_window[0]}..{labelled_window[1]}",
            realized_roc_auc=round(result.metrics["roc_auc"], 4),
            realized_log_loss=round(result.metrics["log_loss"], 4),
            realized_brier=round(result.metrics["brier"], 4),
            realized_log_loss_rise=round(rise, 4),
            realized_auc_drop=round(auc_drop, 4),
            days_past_threshold=int(bad_days),
            calibration_gap=round(result.metrics["calibration_gap"], 4),
            realized_degraded=bool(degraded),
        )
    summary["checks"] = checks
    return DayResult(day=day, figures=figures, summary=summary, drift=drift, window=window)
