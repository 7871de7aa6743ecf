"""Model performance before labels (estimated) and after (realized).

Estimation is confidence-based, as NannyML's CBPE: the champion's probabilities are first
calibrated on its reference window (isotonic regression of the label on the probability), then
each current flight counts as q delayed and 1-q on time, which gives the expected ROC AUC and
log loss without a single label. It sees covariate shift (the model is less sure) but not label
shift (a storm day); only realized figures see that. NannyML itself is not used: it pulls in
LightGBM, XGBoost, cloud-storage clients and its own telemetry, which the pinned stack does not need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

# scikit-learn (and evaluate.py, which needs it) is imported inside the functions that use it
# (about 2 s of code-location load).
if TYPE_CHECKING:
    from sklearn.isotonic import IsotonicRegression

_EPS = 1e-15


@dataclass(frozen=True)
class Estimator:
    """Maps the champion's probability to a calibrated one, fitted on the reference window."""

    calibration: IsotonicRegression

    @classmethod
    def fit(cls, probability: np.ndarray, labels: np.ndarray) -> "Estimator":
        if len(np.unique(labels)) < 2:
            raise ValueError(
                "The reference window holds a single class; performance cannot be estimated from it. "
                "Rebuild monitoring/reference from a champion whose test window has delayed and on-time flights."
            )
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        return cls(iso.fit(np.asarray(probability, float), np.asarray(labels, float)))

    def estimate(self, probability: np.ndarray) -> dict[str, float]:
        """Expected ROC AUC and log loss of `probability` if labels follow the calibrated probabilities."""
        p = np.clip(np.asarray(probability, float), _EPS, 1 - _EPS)
        q = self.calibration.predict(p)
        return {"roc_auc": expected_roc_auc(p, q), "log_loss": float(np.mean(-(q * np.log(p) + (1 - q) * np.log(1 - p))))}


def expected_roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """E[AUC] when row i is positive with probability positive[i] (pairs i != j, ties count half).

    Sums q_i (1 - q_j) over pairs with score_i > score_j, divided by the expected number of
    positive-negative pairs; O(n log n) through sorting the distinct scores.
    """
    frame = pd.DataFrame({"s": np.asarray(score, float), "q": np.asarray(positive, float)})
    frame["n"] = 1.0 - frame["q"]
    by_score = frame.groupby("s", sort=True).agg(pos=("q", "sum"), neg=("n", "sum"))
    negatives_below = by_score["neg"].cumsum() - by_score["neg"]
    numerator = float((by_score["pos"] * (negatives_below + 0.5 * by_score["neg"])).sum())
    self_pairs = float((frame["q"] * frame["n"]).sum())
    numerator -= 0.5 * self_pairs
    denominator = float(frame["q"].sum() * frame["n"].sum()) - self_pairs
    return numerator / denominator if denominator > 0 else float("nan")


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def slice_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC (NaN for one class), log loss and Brier of one slice: the per-slice figures, kept lean
    because a window has dozens of slices (sklearn's input validation dominated their cost)."""
    from sklearn.metrics import roc_auc_score

    return {
        "roc_auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan"),
        "log_loss": _log_loss(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "rows": float(len(y)),
    }


@dataclass(frozen=True)
class Realized:
    """Label-based figures of one window."""

    metrics: dict[str, float]  # roc_auc, log_loss, brier, ece, calibration_gap, ...
    daily_log_loss: dict[str, float]  # ISO day -> that day's log loss
    by_group: dict[str, pd.DataFrame]  # "carrier"/"origin" -> slice_metrics per value (a column of the value)


def realized(window: pd.DataFrame) -> Realized:
    """Scores of rows with `probability`, `is_delayed` (0/1), `flight_date` and the group columns."""
    from flightops.modeling.evaluate import GROUP_COLUMNS, classification_metrics

    y = window["is_delayed"].astype(int).to_numpy()
    p = window["probability"].astype(float).to_numpy()
    metrics = classification_metrics(y, p)
    metrics["calibration_gap"] = abs(metrics["mean_probability"] - metrics["base_rate"])
    days = pd.to_datetime(window["flight_date"]).dt.date
    daily = {day.isoformat(): _log_loss(y[index], p[index]) for day, index in window.groupby(days.to_numpy()).indices.items()}
    by_group = {
        column: pd.DataFrame([{column: value, **slice_metrics(y[index], p[index])}
                              for value, index in window.groupby(column).indices.items()])
        for column in GROUP_COLUMNS
    }
    return Realized(metrics=metrics, daily_log_loss=daily, by_group=by_group)
