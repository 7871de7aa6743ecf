"""Feature and prediction drift with Evidently, per feature group, weighted by feature importance.

Groups say what a drift means. Stable inputs (carrier, route, schedule, plane) should look like
the reference; when they move, the model sees flights it was not trained on. Weather changes
every day by nature (one day's weather is nearly one value), so its drift is shown, never acted
on. Cumulative delay rates move steadily as the year goes on, also shown only. The share of
drifted stable inputs is weighted by the champion's permutation importance, so drift in a
feature the model ignores counts for little.

Scores come from Evidently's own statistical tests (the registry its ValueDrift metric uses, with
the same default method per column type and reference size, and the same thresholds), called
directly: a full Report renders plotly figures for every column, about three quarters of its
time, which only a kept HTML report needs. `drift_report` builds that Report for the days whose
HTML is kept; a test checks that both give the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flightops.modeling.schema import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES
from flightops.monitoring.policy import MonitoringPolicy

# Evidently is imported inside the functions that run it (about 5 s of code-location load).
if TYPE_CHECKING:
    from evidently.legacy.core import ColumnType

STABLE = "stable"
CALENDAR = "calendar"
WEATHER = "weather"
CUMULATIVE = "cumulative"
OPERATIONS = "operations"
PREDICTION = "prediction"
PROBABILITY_COLUMN = "probability"

# Calendar inputs are informational too: a 7-day window holds each weekday once, the reference
# window (the champion's test days) rarely does, so their "drift" is the windows' composition.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    STABLE: ("carrier", "origin", "dest", "route", "dep_hour", "dep_minute_of_day", "distance", "plane_age",
             "plane_seats"),
    CALENDAR: ("day_of_week", "is_weekend"),
    WEATHER: ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"),
    CUMULATIVE: ("route_prior_delay_rate", "carrier_prior_delay_rate"),
    # The day so far (departures, backlog, the aircraft's previous leg): volatile by design, they move
    # with every disrupted day, so like weather they are reported, never evidence for retraining.
    OPERATIONS: ("origin_recent_departures", "origin_recent_mean_dep_delay", "origin_recent_delayed_share",
                 "origin_backlog", "origin_flights_in_hour", "carrier_origin_departures_today",
                 "carrier_origin_delayed_share_today", "tail_prev_gap_minutes", "tail_prev_dep_delay",
                 "tail_prev_arr_delay"),
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

    def share(self, group: str) -> float:
        """Unweighted share of the group's columns that drifted."""
        members = [c for c in self.columns if c.group == group]
        return sum(c.drifted for c in members) / len(members) if members else 0.0

    def drifted(self, group: str) -> list[str]:
        return [c.column for c in self.columns if c.group == group and c.drifted]


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
    values = {c: float(importance.get(c, 0.0)) for c in stable}
    clipped = {c: v if v > 0 else 0.0 for c, v in values.items()}  # NaN too: max(nan, 0) would stay NaN
    total = sum(clipped.values())
    if total <= 0:
        return {c: 1.0 / len(stable) for c in stable}
    return {c: w / total for c, w in clipped.items()}


def _column_type(column: str) -> ColumnType:
    from evidently.legacy.core import ColumnType

    return ColumnType.Categorical if column in CATEGORICAL_FEATURES else ColumnType.Numerical


def _method(column: str, policy: MonitoringPolicy) -> str | None:
    return policy.drift_cat_method if column in CATEGORICAL_FEATURES else policy.drift_num_method


def measure_drift(current: pd.DataFrame, reference: pd.DataFrame, importance: pd.Series,
                  policy: MonitoringPolicy) -> DriftResult:
    """Drift of every model input and of the predicted probability, current against reference."""
    from evidently.legacy.calculations.stattests.registry import get_stattest

    if current.empty or reference.empty:
        raise ValueError(
            f"Drift needs rows on both sides; got {len(current)} current and {len(reference)} reference rows."
        )
    cur, ref = _frame(current), _frame(reference)
    columns = []
    for column in MONITORED_COLUMNS:
        # As Evidently's column drift: infinities and nulls are left out of the comparison.
        ref_values = ref[column].replace([np.inf, -np.inf], np.nan).dropna()
        cur_values = cur[column].replace([np.inf, -np.inf], np.nan).dropna()
        if ref_values.empty or cur_values.empty:
            continue
        test = get_stattest(ref_values, cur_values, _column_type(column), _method(column, policy))
        result = test(ref_values, cur_values, _column_type(column), policy.drift_threshold)
        columns.append(ColumnDrift(column=column, group=group_of(column), method=test.display_name,
                                   threshold=float(result.actual_threshold), score=float(result.drift_score),
                                   drifted=bool(result.drifted)))
    weights = importance_weights(importance)
    weighted = sum(weights[c.column] for c in columns if c.group == STABLE and c.drifted)
    return DriftResult(columns=tuple(columns), weighted_stable_share=float(weighted))


def drift_report(current: pd.DataFrame, reference: pd.DataFrame, policy: MonitoringPolicy):
    """Evidently's Report of the same drift (per-column tests included), for its HTML."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(
        numerical_columns=[*NUMERIC_FEATURES, PROBABILITY_COLUMN], categorical_columns=list(CATEGORICAL_FEATURES)
    )
    metrics = [ValueDrift(column=c, method=_method(c, policy), threshold=policy.drift_threshold) for c in MONITORED_COLUMNS]
    return Report(metrics, include_tests=True).run(
        Dataset.from_pandas(_frame(current), data_definition=definition),
        Dataset.from_pandas(_frame(reference), data_definition=definition),
    )


def save_report(snapshot, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
