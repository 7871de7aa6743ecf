"""The model's input contract: which feature columns exist and how they are typed.

Every other module derives its column lists from here, so adding a feature is a
one-line change. Identifiers (flight_id, flight_date) travel with the rows for
splitting and lineage but are never model inputs.
"""

from __future__ import annotations

import pandas as pd

ID_COLUMNS: tuple[str, ...] = ("flight_id", "flight_date")
LABEL_COLUMN = "is_delayed"

CATEGORICAL_FEATURES: tuple[str, ...] = ("carrier", "origin", "dest", "route")
# Not model inputs although the feature table has them: month, route_prior_flights and
# carrier_prior_flights. Counted from 2013-01-01 (or being the month), they encode the calendar
# date: under a time split the test days lie outside their training range, trees memorise
# individual days through them and linear models extrapolate them. Full year 2013, test on the
# last 15% of days: dropping them raised test ROC AUC from 0.687 to 0.705 (log loss 0.606 to
# 0.527) for logistic regression and from 0.679 to 0.709 (log loss 0.553 to 0.518) for CatBoost.
NUMERIC_FEATURES: tuple[str, ...] = (
    "day_of_week",
    "dep_hour",
    "dep_minute_of_day",
    "is_weekend",
    "distance",
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
    "plane_age",
    "plane_seats",
    "route_prior_delay_rate",
    "carrier_prior_delay_rate",
)
FEATURE_COLUMNS: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES
# Numeric features that are whole numbers and never null. The logged MLflow signature declares
# them `long` (the rest `double`): pyfunc refuses int64 input for a double column, and JSON
# requests carry these as integers.
INTEGER_FEATURES: tuple[str, ...] = ("day_of_week", "dep_hour", "dep_minute_of_day", "is_weekend")

# Categorical values that are missing are replaced by this token.
MISSING_CATEGORY = "__missing__"


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns only, in contract order and types (str categoricals, float numerics).

    Missing categoricals become MISSING_CATEGORY (CatBoost and one-hot encoding both need
    strings). Numerics are all float64 so that nullable integers from the warehouse, JSON
    requests and the logged MLflow signature agree on one type; their NaNs stay for the models.
    """
    missing = [column for column in FEATURE_COLUMNS if column not in frame.columns]
    if missing:
        raise KeyError(
            f"Feature frame lacks columns {missing}; expected every column of "
            "flightops.modeling.schema.FEATURE_COLUMNS (the features.flight_features table)."
        )
    inputs = pd.DataFrame(index=frame.index)
    for column in CATEGORICAL_FEATURES:
        inputs[column] = frame[column].astype("object").where(frame[column].notna(), MISSING_CATEGORY).astype(str)
    for column in NUMERIC_FEATURES:
        inputs[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
    return inputs


def labels_of(frame: pd.DataFrame) -> pd.Series:
    """The binary target as 0/1 integers, refusing rows whose label is unknown."""
    if LABEL_COLUMN not in frame.columns:
        raise KeyError(f"Frame lacks the label column {LABEL_COLUMN!r}; join features.flight_labels first.")
    label = frame[LABEL_COLUMN]
    if label.isna().any():
        raise ValueError(
            f"{int(label.isna().sum())} rows have no {LABEL_COLUMN!r}; keep only labelled flights "
            "(inner join with features.flight_labels)."
        )
    return label.astype(bool).astype("int64")
