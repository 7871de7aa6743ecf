"""Every monitoring threshold, window, the label delay and the retraining gates: one object.

The monitoring assets and the retraining sensor take it as the `monitoring_policy` resource, so
a figure and the decision made on it always use the same numbers. The defaults below are the
only place they are written; the README's "Tuning the loop" explains each one and how it was
chosen on this data.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg


class MonitoringPolicy(dg.ConfigurableResource):
    """Windows are counted in data days (partitions), never wall-clock time."""

    # Windows. A day's figures compare the last `window_days` days with the champion's reference
    # (its held-out test window); a window needs `min_window_days` days after the reference ends.
    window_days: int = 7
    min_window_days: int = 3
    # Labels (arrival delays) arrive this many days after the flight: realized figures for day D
    # cover the window ending at D - label_delay_days.
    label_delay_days: int = 1

    # Drift: Evidently's per-column methods and thresholds (None: Evidently's defaults, which
    # depend on the reference size; the method and threshold used are stored with every score).
    drift_num_method: str | None = None
    drift_cat_method: str | None = None
    drift_threshold: float | None = None
    # Stable inputs drifted, weighted by the champion's feature importance: evidence when above this.
    stable_drift_share_threshold: float = 0.3

    # Estimated performance (before labels): drop of the confidence-based ROC AUC estimate from
    # the champion's reference AUC.
    estimated_auc_drop_threshold: float = 0.03

    # Realized performance (after labels). The log-loss rise is the trigger; the ROC AUC drop is shown
    # and judged but does not trigger: a week's AUC moves between 0.62 and 0.76 on this data unaided.
    realized_log_loss_rise_threshold: float = 0.05
    realized_auc_drop_threshold: float = 0.08
    calibration_gap_threshold: float = 0.05
    # A window is only "degraded" when at least this many of its days are individually past the
    # log-loss threshold: one storm day moves seven rolling windows and must not trigger alone.
    min_bad_days_in_window: int = 3

    # Daily volume against the weekday norm (median of the same weekday in the previous 4 weeks).
    volume_tolerance: float = 0.3

    # The retraining sensor's trigger and gates.
    sustained_days: int = 2
    cooldown_days: int = 14
    min_new_labelled_days: int = 14

    # Optuna trials of an automatic retraining (None: TrainingRunConfig's default). Set from
    # FLIGHTOPS_RETRAIN_TUNING_TRIALS in flightops/definitions.py.
    retrain_tuning_trials: int | None = None

    # Evidently HTML (about 4 MB each) is kept for this weekday (ISO, 7 = Sunday) and alert days.
    report_weekday: int = 7

    def labelled_through(self, day: date) -> date:
        """The newest day whose labels have arrived when `day` is monitored."""
        return day - timedelta(days=self.label_delay_days)

    def window(self, end: date, reference_end: date) -> tuple[date, date] | None:
        """The rolling window ending at `end`, cut to days after the reference; None when too short."""
        start = max(end - timedelta(days=self.window_days - 1), reference_end + timedelta(days=1))
        if (end - start).days + 1 < self.min_window_days:
            return None
        return start, end
