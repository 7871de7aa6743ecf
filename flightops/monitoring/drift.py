"""Feature and prediction drift with Evidently, per feature group, weighted by feature importance.

Groups say what a drift means. Stable inputs (carrier, route, schedule, plane) should look like
the reference; when they move, the model sees flights it was not trained on. Weather changes
every day by nature (one day's weather is nearly one value), so its drift is shown, never acted
on. Cumulative delay rates move steadily as the year goes on, also shown only. The share of
drifted stable inputs is weighted by the champion's permutation importance, so drift in a
feature the model ignores counts for little.

Explicit `ValueDrift` metrics (one per column) plus `DriftedColumnsCount` give the figures of
Evidently's DataDriftPreset in about half its time; `include_tests=True` gives per-column
pass/fail in the method's own direction (a distance above, or a p-value below, its threshold).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import DriftedColumnsCount, ValueDrift

from flightops.modeling.schema import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES
from flightops.monitoring.policy import MonitoringPolicy

STABLE = "stable"
WEATHER = "weather"
CUMULATIVE = "cumulative"
PREDICTION = "prediction"
PROBABILITY_COLUMN = "probability"

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    STABLE: ("carrier", "origin", "dest", "route", "day_of_week", "dep_hour", "dep_minute_of_day", "is_weekend",
             "distance", "plane_age", "plane_seats"),
    WEATHER: ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"),
    CUMULATIVE: ("route_prior_delay_rate", "carrier_prior_delay_rate"),
}


def group_of(column: str) -> str:
    """The feature group of a model input (the probability is the `prediction` group)."""
    if column == PROBABILITY_COLUMN:
        return PREDICTION
    for group, columns in FEATURE_GROUPS.items():
        if column in columns:
            return group
    raise KeyError(
        f"Model input {column!r} belongs to no monitoring feature group; add it to one of "
        f"{sorted(FEATURE_GROUPS)} in flightops/monitoring/drift.py (FEATURE_GROUPS)."
    )


def _check_groups() -> None:
    grouped = sorted(c for columns in FEATURE_GROUPS.values() for c in columns)
    if grouped != sorted(FEATURE_COLUMNS):
        raise RuntimeError(
            "flightops/monitoring/drift.py FEATURE_GROUPS must list every model input exactly once; "
            f"missing {sorted(set(FEATURE_COLUMNS) - set(grouped))}, unknown {sorted(set(grouped) - set(FEATURE_COLUMNS))}."
        )


_check_groups()

MONITORED_COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, PROBABILITY_COLUMN)
_DEFINITION = DataDefinition(
    numerical_columns=[*NUMERIC_FEATURES, PROBABILITY_COLUMN], categorical_columns=list(CATEGORICAL_FEATURES)
)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    group: str
    method: str
    threshold: float
    score: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    columns: tuple[ColumnDrift, ...]
    weighted_stable_share: float  # importance-weighted share of stable inputs that drifted
    snapshot: object  # Evidently's snapshot, for save_html

    def share(self, group: str) -> float:
        """Unweighted share of the group's columns that drifted."""
        members = [c for c in self.columns if c.group == group]
        return sum(c.drifted for c in members) / len(members) if members else 0.0

    def drifted(self, group: str) -> list[str]:
        return [c.column for c in self.columns if c.group == group and c.drifted]

    def save_html(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(path))
        return path


def _frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The monitored columns in Evidently's types (object categoricals, float numerics)."""
    frame = rows.loc[:, list(MONITORED_COLUMNS)].copy()
    for column in CATEGORICAL_FEATURES:
        frame[column] = frame[column].astype("object").where(frame[column].notna(), None)
    for column in (*NUMERIC_FEATURES, PROBABILITY_COLUMN):
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    return frame


def importance_weights(importance: pd.Series) -> dict[str, float]:
    """Stable inputs' weights from permutation importance (negative = useless = 0); equal when all are 0."""
    stable = FEATURE_GROUPS[STABLE]
    clipped = {c: max(float(importance.get(c, 0.0)), 0.0) for c in stable}
    total = sum(clipped.values())
    if total <= 0:
        return {c: 1.0 / len(stable) for c in stable}
    return {c: w / total for c, w in clipped.items()}


def measure_drift(current: pd.DataFrame, reference: pd.DataFrame, importance: pd.Series,
                  policy: MonitoringPolicy) -> DriftResult:
    """Evidently drift of every model input and of the predicted probability, current against reference."""
    if current.empty or reference.empty:
        raise ValueError(
            f"Drift needs rows on both sides; got {len(current)} current and {len(reference)} reference rows."
        )
    options = {"method": None, "threshold": policy.drift_threshold}
    metrics = []
    for column in MONITORED_COLUMNS:
        method = policy.drift_cat_method if column in CATEGORICAL_FEATURES else policy.drift_num_method
        metrics.append(ValueDrift(column=column, **{**options, "method": method}))
    report = Report([DriftedColumnsCount(columns=list(MONITORED_COLUMNS)), *metrics], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(_frame(current), data_definition=_DEFINITION),
        Dataset.from_pandas(_frame(reference), data_definition=_DEFINITION),
    )
    result = snapshot.dict()
    failed_metric_ids = {t["metric_config"]["metric_id"] for t in result["tests"] if t["status"] == "FAIL"}
    columns = []
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"] != "evidently:metric_v2:ValueDrift":
            continue
        column = config["column"]
        columns.append(ColumnDrift(
            column=column, group=group_of(column), method=config["method"], threshold=float(config["threshold"]),
            score=float(metric["value"]), drifted=metric["id"] in failed_metric_ids,
        ))
    weights = importance_weights(importance)
    weighted = sum(weights[c.column] for c in columns if c.group == STABLE and c.drifted)
    return DriftResult(columns=tuple(columns), weighted_stable_share=float(weighted), snapshot=snapshot)
