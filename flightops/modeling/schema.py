"""The model's input contract: which feature columns exist, what each means and which values it takes.

Every other module derives its column lists from here, so adding a feature is a change of this
file: its name in CATEGORICAL_FEATURES or NUMERIC_FEATURES and its entry in FEATURES. Training
(`model_inputs`), the logged MLflow signature (`flightops.modeling.tracking`), batch scoring and
the serving request (`flightops.serving.schema`, built field by field from FEATURES) all read it.
Identifiers (flight_id, flight_date) travel with the rows for splitting and lineage but are
never model inputs. The label is `is_delayed`: the flight arrived more than 15 minutes late
(arr_delay > 15, `fct_flights.is_delayed_15` in the dbt project).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flightops.contracts import FLIGHTS, ORIGIN_AIRPORTS, PLANES, WEATHER
from flightops.feature_engineering import RECENT_HOURS

ID_COLUMNS: tuple[str, ...] = ("flight_id", "flight_date")
LABEL_COLUMN = "is_delayed"
LABEL_DESCRIPTION = "the flight arrived more than 15 minutes late (arr_delay > 15)"

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
    # What happened earlier on the same day, known at prediction time (flightops.feature_engineering).
    "origin_recent_departures",
    "origin_recent_mean_dep_delay",
    "origin_recent_delayed_share",
    "origin_backlog",
    "origin_flights_in_hour",
    "carrier_origin_departures_today",
    "carrier_origin_delayed_share_today",
    "tail_prev_gap_minutes",
    "tail_prev_dep_delay",
    "tail_prev_arr_delay",
)
FEATURE_COLUMNS: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES
# Numeric features that are whole numbers and never null. The logged MLflow signature declares
# them `long` (the rest `double`): pyfunc refuses int64 input for a double column, and JSON
# requests carry these as integers.
INTEGER_FEATURES: tuple[str, ...] = (
    "day_of_week", "dep_hour", "dep_minute_of_day", "is_weekend",
    "origin_recent_departures", "origin_backlog", "origin_flights_in_hour", "carrier_origin_departures_today",
)

# Categorical values that are missing are replaced by this token.
MISSING_CATEGORY = "__missing__"


@dataclass(frozen=True)
class Feature:
    """What one model input means and which values it takes.

    `minimum` and `maximum` are inclusive bounds, `allowed` the only values of a categorical.
    A `nullable` feature may be null (no weather observation, plane not in the reference, no
    earlier flights): the models take missing values, and a serving request may leave it out.
    `example` is its value in the example request body (flight UA421 EWR-SFO on 2013-03-05).
    The serving request model (`flightops.serving.schema`) is built from these entries.
    """

    description: str
    example: str | int | float | None
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None


def _at_origin(name: str, example: float | None) -> Feature:
    """A weather feature: the weather contract's column, the origin's latest observation by prediction time."""
    column = WEATHER.column(name)
    return Feature(
        f"{column.description.rstrip('.')}; the origin airport's latest observation at or before the prediction "
        "time, null when there is none.",
        example, nullable=True, minimum=column.min, maximum=column.max,
    )


def _prior_delay_rate(key: str, example: float | None) -> Feature:
    return Feature(
        f"Share of the {key}'s earlier flights (of the loaded history) that arrived more than 15 minutes late, "
        f"among those whose arrival was known by the prediction time; null when the {key} has none.",
        example, nullable=True, minimum=0, maximum=1,
    )


_DISTANCE = FLIGHTS.column("distance")
# The oldest plane the planes contract admits, flying in the last year the flights contract admits.
_OLDEST_PLANE_AGE = FLIGHTS.column("year").max - PLANES.column("year").min
# No contract bounds the departure counts: more than any airport schedules in a day (the world's busiest
# has about 1,500; the busiest New York airport day of 2013 had 377), so a count above it is an error.
_MOST_DEPARTURES_A_DAY = 3000
_DEP_DELAY = FLIGHTS.column("dep_delay")
_ARR_DELAY = FLIGHTS.column("arr_delay")
_RECENT = f"in the {RECENT_HOURS} hours before the prediction time"
# One entry per column of FEATURE_COLUMNS (checked below). Bounds of the weather columns, of distance,
# delays, plane age and seats are the source contracts' (flightops.contracts): values outside them never
# reach the warehouse, so the model has not seen them either. Every numeric feature has both bounds.
FEATURES: dict[str, Feature] = {
    "carrier": Feature("Two-letter carrier code, e.g. UA.", "UA"),
    "origin": Feature("Departure airport: EWR, JFK or LGA.", "EWR", allowed=ORIGIN_AIRPORTS),
    "dest": Feature("Destination airport FAA code, e.g. SFO.", "SFO"),
    "route": Feature("origin-dest, e.g. EWR-SFO.", "EWR-SFO"),
    "day_of_week": Feature("ISO day of the week of the flight's local date: 1 Monday .. 7 Sunday.", 2,
                           minimum=1, maximum=7),
    "dep_hour": Feature("Hour of the scheduled departure, local New York time.", 6, minimum=0, maximum=23),
    "dep_minute_of_day": Feature("Minute of the day of the scheduled departure, local: dep_hour * 60 + minute.",
                                 370, minimum=0, maximum=1439),
    "is_weekend": Feature("1 when the flight's local date is a Saturday or a Sunday, else 0.", 0,
                          minimum=0, maximum=1),
    "distance": Feature(_DISTANCE.description, 2565.0, minimum=_DISTANCE.min, maximum=_DISTANCE.max),
    "temp": _at_origin("temp", 32.0),
    "dewp": _at_origin("dewp", 21.02),
    "humid": _at_origin("humid", 63.51),
    "wind_dir": _at_origin("wind_dir", 310.0),
    "wind_speed": _at_origin("wind_speed", 9.2),
    "wind_gust": _at_origin("wind_gust", None),
    "precip": _at_origin("precip", 0.0),
    "pressure": _at_origin("pressure", 1015.9),
    "visib": _at_origin("visib", 10.0),
    "plane_age": Feature("Plane age in years: the flight's year minus the year the plane was built; null when "
                         "the tail number is not in the planes reference.", 16.0, nullable=True, minimum=0,
                         maximum=_OLDEST_PLANE_AGE),
    "plane_seats": Feature("Seats of the plane; null when the tail number is not in the planes reference.",
                           179.0, nullable=True, minimum=1, maximum=PLANES.column("seats").max),
    "route_prior_delay_rate": _prior_delay_rate("route", 0.18),
    "carrier_prior_delay_rate": _prior_delay_rate("carrier", 0.19),
    # Congestion and delays building up at the origin: the strongest signal of the day (issue 9's
    # measurements in README "Prediction time and features").
    "origin_recent_departures": Feature(f"Departures from the origin airport {_RECENT}.", 52, minimum=0,
                                        maximum=_MOST_DEPARTURES_A_DAY),
    "origin_recent_mean_dep_delay": Feature(
        f"Mean departure delay in minutes of the origin's departures {_RECENT}; null when none left.", 8.5,
        nullable=True, minimum=_DEP_DELAY.min, maximum=_DEP_DELAY.max),
    "origin_recent_delayed_share": Feature(
        f"Share of the origin's departures {_RECENT} that left more than 15 minutes late; null when none left.",
        0.12, nullable=True, minimum=0, maximum=1),
    "origin_backlog": Feature(
        "Flights of the prediction time's day scheduled to leave the origin before the prediction time that had "
        "not left by then (cancelled ones included): a queue at the airport.", 3, minimum=0,
        maximum=_MOST_DEPARTURES_A_DAY),
    "origin_flights_in_hour": Feature(
        "Flights scheduled to leave the origin in the flight's scheduled departure hour (the schedule is known "
        "in advance), the flight itself included.", 24, minimum=1, maximum=_MOST_DEPARTURES_A_DAY),
    # The carrier's operation at this airport today: crews and gates are shared within a carrier.
    "carrier_origin_departures_today": Feature(
        "The carrier's departures from the origin since the start of the prediction time's day, before it.", 10,
        minimum=0, maximum=_MOST_DEPARTURES_A_DAY),
    "carrier_origin_delayed_share_today": Feature(
        "Share of those departures that left more than 15 minutes late; null when none left.", 0.1,
        nullable=True, minimum=0, maximum=1),
    # The aircraft's previous leg from New York the same day: a late inbound plane delays this one.
    "tail_prev_gap_minutes": Feature(
        "Minutes between the scheduled departures of the same aircraft's previous New York departure that day "
        "(cancelled or not: a cancellation is not known in advance) and this one (schedule slack); null when it "
        "has no earlier departure scheduled that day.", None, nullable=True,
        minimum=0, maximum=1440),
    "tail_prev_dep_delay": Feature(
        "Departure delay in minutes of that previous leg, when it had left by the prediction time; else null.",
        None, nullable=True, minimum=_DEP_DELAY.min, maximum=_DEP_DELAY.max),
    "tail_prev_arr_delay": Feature(
        "Arrival delay in minutes of that previous leg, when its arrival was known by the prediction time; "
        "else null.", None, nullable=True, minimum=_ARR_DELAY.min, maximum=_ARR_DELAY.max),
}


def _check_features() -> None:
    """FEATURES describes exactly FEATURE_COLUMNS, the whole-number features are never null, and every numeric
    feature is bounded on both sides (the service refuses what lies outside)."""
    if list(FEATURES) != list(FEATURE_COLUMNS):
        raise RuntimeError(
            "flightops.modeling.schema.FEATURES must have one entry per FEATURE_COLUMNS column, in that "
            f"order; columns without an entry: {sorted(set(FEATURE_COLUMNS) - set(FEATURES))}, entries "
            f"without a column: {sorted(set(FEATURES) - set(FEATURE_COLUMNS))}."
        )
    nullable_integers = [column for column in INTEGER_FEATURES if FEATURES[column].nullable]
    if nullable_integers:
        raise RuntimeError(f"INTEGER_FEATURES must never be null, but FEATURES marks {nullable_integers} nullable.")
    unbounded = [column for column in NUMERIC_FEATURES if None in (FEATURES[column].minimum, FEATURES[column].maximum)]
    if unbounded:
        raise RuntimeError(f"Every numeric feature needs a minimum and a maximum in FEATURES; {unbounded} lack one.")


_check_features()


def feature_type(column: str) -> type:
    """The type of a feature's values: str (categoricals), int (INTEGER_FEATURES) or float.

    The logged MLflow signature declares them string, long and double.
    """
    if column in CATEGORICAL_FEATURES:
        return str
    if column in NUMERIC_FEATURES:
        return int if column in INTEGER_FEATURES else float
    raise KeyError(f"{column!r} is not a model input; the inputs are flightops.modeling.schema.FEATURE_COLUMNS.")


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
    # Built as one frame from plain arrays: pandas' per-column operations cost milliseconds a served request.
    inputs = {}
    for column in CATEGORICAL_FEATURES:
        values = frame[column].to_numpy(dtype=object)
        filled = np.where(pd.isna(values), MISSING_CATEGORY, values)
        # Strings are kept, not copied (a year's four columns are about 70 MB of them); others become strings.
        inputs[column] = filled if pd.api.types.infer_dtype(filled, skipna=False) == "string" else filled.astype(str).astype(object)
    for column in NUMERIC_FEATURES:
        values = frame[column]
        inputs[column] = values.to_numpy() if values.dtype == "float64" else \
            pd.to_numeric(values, errors="raise").to_numpy("float64", na_value=np.nan)
    # Not copied into one block: float64 columns stay the frame's own arrays (read-only to the models).
    return pd.DataFrame(inputs, index=frame.index, copy=False)


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
