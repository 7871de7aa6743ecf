"""How good a delay model is: scores, calibration, per-group scores, plots.

Every model (CatBoost, the logistic baseline, the constant base-rate predictor) is scored by
the same functions on the same rows, so their numbers compare directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training runs headless (Dagster, CI)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.inspection import permutation_importance  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from flightops.modeling.config import DECISION_THRESHOLD  # noqa: E402
from flightops.modeling.schema import FEATURE_COLUMNS, labels_of, model_inputs  # noqa: E402

GROUP_COLUMNS: tuple[str, ...] = ("carrier", "origin")
CALIBRATION_BINS = 10


class ConstantProbability(ClassifierMixin, BaseEstimator):
    """Predicts the training base rate for every flight: the floor any model must clear."""

    def fit(self, X: pd.DataFrame, y) -> "ConstantProbability":
        y = np.asarray(y)
        self.classes_ = np.array([0, 1])
        self.base_rate_ = float(y.mean())
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        positive = np.full(len(X), self.base_rate_)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= DECISION_THRESHOLD).astype(int)


def positive_probability(model, frame: pd.DataFrame) -> np.ndarray:
    """P(delayed) for each row of `frame`."""
    return np.asarray(model.predict_proba(frame))[:, 1]


def calibration_table(y_true: np.ndarray, probability: np.ndarray, n_bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Rows, mean predicted probability and observed delay rate per equal-width probability bin."""
    edges = np.round(np.linspace(0.0, 1.0, n_bins + 1), 10)
    bins = np.clip(np.digitize(probability, edges[1:-1], right=False), 0, n_bins - 1)
    # Sums per bin with numpy, not a pandas group-by: it runs for every model, carrier and origin (60 tables
    # of a training, 0.4 s of pandas' machinery). An empty bin's means are NaN (0 / 0).
    rows = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        mean_probability = np.bincount(bins, weights=np.asarray(probability, dtype=float), minlength=n_bins) / rows
        observed_rate = np.bincount(bins, weights=np.asarray(y_true, dtype=float), minlength=n_bins) / rows
    return pd.DataFrame({"bin_lower": edges[:-1], "bin_upper": edges[1:], "rows": rows,
                         "mean_probability": mean_probability, "observed_rate": observed_rate})


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Row-weighted mean gap between predicted probability and observed rate over the bins."""
    filled = table[table["rows"] > 0]
    weights = filled["rows"] / filled["rows"].sum()
    return float((weights * (filled["mean_probability"] - filled["observed_rate"]).abs()).sum())


def classification_metrics(y_true: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Ranking (ROC/PR AUC), probabilistic (log loss, Brier, ECE) and rate metrics.

    ROC and PR AUC are NaN when the rows hold a single class (they are undefined there).
    """
    y_true = np.asarray(y_true, dtype=int)
    probability = np.asarray(probability, dtype=float)
    both_classes = len(np.unique(y_true)) == 2
    return {
        "roc_auc": float(roc_auc_score(y_true, probability)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y_true, probability)) if both_classes else float("nan"),
        "log_loss": float(log_loss(y_true, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, probability)),
        "ece": expected_calibration_error(calibration_table(y_true, probability)),
        "mean_probability": float(probability.mean()),
        "positive_rate": float((probability >= DECISION_THRESHOLD).mean()),
        "base_rate": float(y_true.mean()),
        "rows": float(len(y_true)),
    }


def metrics_by_group(frame: pd.DataFrame, y_true: np.ndarray, probability: np.ndarray, column: str) -> pd.DataFrame:
    """classification_metrics for each value of `column` (e.g. per carrier), largest groups first."""
    rows = []
    for value, index in frame.groupby(column, sort=False).indices.items():
        rows.append({column: value, **classification_metrics(y_true[index], probability[index])})
    return pd.DataFrame(rows).sort_values("rows", ascending=False).reset_index(drop=True)


@dataclass(frozen=True)
class Evaluation:
    """One model scored on one window."""

    metrics: dict[str, float]
    calibration: pd.DataFrame
    by_group: dict[str, pd.DataFrame]
    probability: np.ndarray


def evaluate(model, frame: pd.DataFrame) -> Evaluation:
    """Score `model` on the labelled rows of `frame`."""
    y_true = labels_of(frame).to_numpy()
    probability = positive_probability(model, frame)
    return Evaluation(
        metrics=classification_metrics(y_true, probability),
        calibration=calibration_table(y_true, probability),
        by_group={column: metrics_by_group(frame, y_true, probability, column) for column in GROUP_COLUMNS},
        probability=probability,
    )


def permutation_importance_by_feature(model, frame: pd.DataFrame, *, max_rows: int = 5000,
                                      repeats: int = 2, seed: int = 0) -> pd.Series:
    """Drop in ROC AUC when one feature column is shuffled, largest first.

    Model-agnostic, so CatBoost and the one-hot logistic regression are ranked on one scale
    (coefficient sums would favour many-valued categoricals like route).
    """
    sample = frame.sample(n=min(max_rows, len(frame)), random_state=seed)
    result = permutation_importance(
        model, model_inputs(sample), labels_of(sample), scoring="roc_auc", n_repeats=repeats, random_state=seed
    )
    return pd.Series(result.importances_mean, index=list(FEATURE_COLUMNS)).sort_values(ascending=False)


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_roc(y_true: np.ndarray, probabilities: dict[str, np.ndarray], path: Path) -> Path:
    """ROC curves of several models on the same rows."""
    figure, axes = plt.subplots(figsize=(5, 5))
    for name, probability in probabilities.items():
        fpr, tpr, _ = roc_curve(y_true, probability)
        axes.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y_true, probability):.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC, test window")
    axes.legend(loc="lower right")
    return _save(figure, path)


def precision_recall_lines(y_true: np.ndarray, probabilities: dict[str, np.ndarray]
                           ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(recall, precision) points drawn for each model.

    A constant predictor ranks no flight above another: at any recall its precision is the base
    rate, so it is drawn flat there. sklearn's curve of it would join its one threshold's point
    (recall 1, base rate) to the (0, 1) it appends by convention, a line above both real models.
    """
    base_rate = float(np.mean(y_true))
    lines = {}
    for name, probability in probabilities.items():
        if np.ptp(probability) == 0:
            lines[name] = (np.array([0.0, 1.0]), np.array([base_rate, base_rate]))
        else:
            precision, recall, _ = precision_recall_curve(y_true, probability)
            lines[name] = (recall, precision)
    return lines


def precision_recall_figure(y_true: np.ndarray, probabilities: dict[str, np.ndarray]) -> plt.Figure:
    """Precision-recall curves of several models on the same rows, the base rate drawn flat."""
    figure, axes = plt.subplots(figsize=(5, 5))
    for name, (recall, precision) in precision_recall_lines(y_true, probabilities).items():
        axes.plot(recall, precision, label=f"{name} (AP {average_precision_score(y_true, probabilities[name]):.3f})")
    if all(np.ptp(probability) > 0 for probability in probabilities.values()):
        axes.axhline(np.mean(y_true), linestyle=":", color="grey", label="base rate")
    axes.set(xlabel="Recall", ylabel="Precision", title="Precision-recall, test window", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="upper right")
    return figure


def plot_precision_recall(y_true: np.ndarray, probabilities: dict[str, np.ndarray], path: Path) -> Path:
    """precision_recall_figure, saved to `path`."""
    return _save(precision_recall_figure(y_true, probabilities), path)


def plot_calibration(tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """Observed delay rate against mean predicted probability per bin."""
    figure, axes = plt.subplots(figsize=(5, 5))
    for name, table in tables.items():
        filled = table[table["rows"] > 0]
        axes.plot(filled["mean_probability"], filled["observed_rate"], marker="o",
                  label=f"{name} (ECE {expected_calibration_error(table):.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="Mean predicted probability", ylabel="Observed delay rate", title="Calibration, test window",
             xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="upper left")
    return _save(figure, path)


def plot_feature_importance(importance: pd.Series, path: Path) -> Path:
    """Horizontal bars, most important feature on top."""
    figure, axes = plt.subplots(figsize=(6, 0.3 * len(importance) + 1))
    ordered = importance.sort_values()
    axes.barh(ordered.index, ordered.values)
    axes.set(xlabel="ROC AUC drop when shuffled", title="Permutation importance, test window")
    return _save(figure, path)
