"""Synthetic rows of `features.flight_features` and `features.flight_labels`, for the tests.

The platform computes the real tables with DuckDB SQL (assets/features.py over the dbt fact
table); tests of what lies downstream (training, promotion, serving) take their rows from here
instead of re-implementing that pipeline. The columns are the model's contract
(`flightops.modeling.schema`: ID_COLUMNS + FEATURE_COLUMNS, in the warehouse's types), the values
lie inside each feature's documented range, and the nullable features are null about as often
as in the warehouse.

The label follows a known rule, with effects a linear model cannot represent (a U-shaped
temperature effect, an interaction of rain and poor visibility, a threshold on gusts) besides
linear ones (carrier, route, evening departures). So a test can require that the tuned CatBoost
model beats the logistic baseline and the constant predictor, and that shuffled labels teach
nothing. The platform's real-data results are checked by the tests that run the platform
(tests/test_model_assets.py) and measured by scripts/benchmark_models.py. `request_body` turns
a row into the prediction service's JSON body.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd

from flightops.modeling.data import LEAD_COLUMN
from flightops.modeling.schema import FEATURE_COLUMNS, FEATURES, ID_COLUMNS, LABEL_COLUMN

CARRIERS = {"UA": 0.1, "B6": 0.3, "EV": 0.6, "DL": -0.3, "AA": -0.1, "MQ": 0.4, "US": -0.4, "WN": 0.2}
DESTINATIONS = {  # destination: (miles from New York, effect on the delay odds)
    "ATL": (760.0, 0.0), "ORD": (733.0, 0.4), "LAX": (2475.0, -0.2), "BOS": (187.0, 0.1),
    "MCO": (944.0, -0.1), "SFO": (2565.0, 0.3), "CLT": (541.0, -0.2), "MIA": (1089.0, 0.0),
    "DCA": (214.0, 0.2), "IAH": (1400.0, -0.3), "DEN": (1620.0, 0.1), "SEA": (2402.0, -0.1),
}
ORIGINS = {"EWR": 0.2, "JFK": 0.0, "LGA": -0.1}
BASE_LOG_ODDS = -2.1  # about a fifth of the flights delayed, as in 2013
LEAD_MINUTES = 60  # the rows' prediction lead


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def feature_tables(
    first_day: date | str = "2013-02-01", days: int = 35, flights_per_day: int = 400, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, labels) for `days` days from `first_day`: the two tables' columns and types.

    features: flight_id, flight_date (datetime.date), prediction_lead_minutes and every model input; labels: flight_id,
    flight_date, arr_delay and is_delayed (arr_delay > 15, as fct_flights.is_delayed_15), for
    all flights but about 1% (diverted: no arrival delay, so no label).
    """
    rng = np.random.default_rng(seed)
    start = date.fromisoformat(first_day) if isinstance(first_day, str) else first_day
    n = days * flights_per_day
    day_index = np.repeat(np.arange(days), flights_per_day)
    dates = [start + timedelta(days=i) for i in range(days)]
    flight_date = np.array(dates)[day_index]
    carrier = rng.choice(list(CARRIERS), n)
    origin = rng.choice(list(ORIGINS), n)
    dest = rng.choice(list(DESTINATIONS), n)
    day_of_week = np.array([d.isoweekday() for d in dates], dtype="int32")[day_index]
    dep_minute_of_day = rng.integers(5 * 60, 23 * 60, n).astype("int32")

    # Weather of the origin and hour: seasonal temperature, mostly dry, poor visibility in rain.
    temp = np.round(35 + 0.5 * day_index + rng.normal(0, 12, n), 2)
    rain = rng.random(n) < 0.12
    precip = np.where(rain, np.round(rng.exponential(0.08, n), 2), 0.0)
    visib = np.where(rain, np.round(rng.uniform(0.25, 10, n), 2), 10.0)
    wind_speed = np.round(rng.gamma(3.0, 3.5, n), 2)
    gusting = rng.random(n) < 0.25
    wind_gust = np.where(gusting, np.round(wind_speed + rng.gamma(2.0, 6.0, n), 2), np.nan)
    no_observation = rng.random(n) < 0.02
    weather = {
        "temp": temp,
        "dewp": np.round(temp - rng.uniform(3, 20, n), 2),
        "humid": np.round(rng.uniform(25, 100, n), 2),
        "wind_dir": np.round(rng.uniform(0, 360, n), -1),
        "wind_speed": wind_speed,
        "wind_gust": wind_gust,
        "precip": precip,
        "pressure": np.round(rng.normal(1015, 8, n), 1),
        "visib": visib,
    }
    weather = {name: np.where(no_observation, np.nan, values) for name, values in weather.items()}

    # The day so far at the origin, and the aircraft's previous leg (flightops.feature_engineering).
    recent = rng.integers(0, 80, n).astype("int32")
    none_left = recent == 0
    recent_delay = np.where(none_left, np.nan, np.round(np.clip(rng.normal(8, 15, n), -20, 300), 2))
    carrier_today = rng.integers(0, 30, n).astype("int32")
    earlier_leg = rng.random(n) < 0.5
    leg_left = earlier_leg & (rng.random(n) < 0.7)
    operations = {
        "origin_recent_departures": recent,
        "origin_recent_mean_dep_delay": recent_delay,
        "origin_recent_delayed_share": np.where(none_left, np.nan, np.round(rng.uniform(0, 0.6, n), 3)),
        "origin_backlog": rng.poisson(3, n).astype("int32"),
        "origin_flights_in_hour": rng.integers(1, 40, n).astype("int32"),
        "carrier_origin_departures_today": carrier_today,
        "carrier_origin_delayed_share_today": np.where(carrier_today == 0, np.nan, np.round(rng.uniform(0, 0.5, n), 3)),
        "tail_prev_gap_minutes": np.where(earlier_leg, rng.integers(30, 600, n).astype(float), np.nan),
        "tail_prev_dep_delay": np.where(leg_left, np.clip(np.round(rng.normal(10, 30, n)), -20, 600), np.nan),
        "tail_prev_arr_delay": np.where(leg_left & (rng.random(n) < 0.8),
                                        np.clip(np.round(rng.normal(5, 35, n)), -60, 600), np.nan),
    }

    unknown_plane = rng.random(n) < 0.08
    carrier_effect = np.array([CARRIERS[c] for c in carrier])
    route_effect = np.array([DESTINATIONS[d][1] for d in dest]) + np.array([ORIGINS[o] for o in origin])
    first = day_index == 0  # no earlier day: no prior rates
    features = pd.DataFrame({
        "flight_id": pd.Series(np.array([d.isoformat() for d in dates])[day_index]) + "_" + carrier
        + pd.Series(np.arange(n) % flights_per_day).astype(str) + "_" + origin,
        "flight_date": flight_date,
        LEAD_COLUMN: np.full(n, LEAD_MINUTES, dtype="int32"),
        "carrier": carrier,
        "origin": origin,
        "dest": dest,
        "route": pd.Series(origin) + "-" + dest,
        "day_of_week": day_of_week,
        "dep_hour": (dep_minute_of_day // 60).astype("int32"),
        "dep_minute_of_day": dep_minute_of_day,
        "is_weekend": (day_of_week >= 6).astype("int32"),
        "distance": np.array([DESTINATIONS[d][0] for d in dest]),
        **weather,
        "plane_age": np.where(unknown_plane, np.nan, rng.integers(0, 30, n).astype(float)),
        "plane_seats": np.where(unknown_plane, np.nan, rng.choice([20.0, 55.0, 149.0, 179.0, 200.0], n)),
        # What earlier days showed: the route's and carrier's delay odds, seen through noise.
        "route_prior_delay_rate": np.where(first, np.nan, np.clip(
            _sigmoid(BASE_LOG_ODDS + 0.5 + route_effect + rng.normal(0, 0.3, n)), 0, 1)),
        "carrier_prior_delay_rate": np.where(first, np.nan, np.clip(
            _sigmoid(BASE_LOG_ODDS + 0.5 + carrier_effect + rng.normal(0, 0.2, n)), 0, 1)),
        **operations,
    })
    assert list(features.columns) == [*ID_COLUMNS, LEAD_COLUMN, *FEATURE_COLUMNS]
    for column in FEATURE_COLUMNS:  # inside the documented ranges, which the service enforces
        feature, values = FEATURES[column], features[column].dropna()
        assert feature.minimum is None or (values >= feature.minimum).all(), column
        assert feature.maximum is None or (values <= feature.maximum).all(), column

    log_odds = (
        BASE_LOG_ODDS
        + carrier_effect
        + route_effect
        + 0.9 * (dep_minute_of_day >= 17 * 60)
        + 1.6 * ((np.nan_to_num(weather["temp"], nan=50.0) - 50.0) / 25.0) ** 2
        + 1.8 * ((np.nan_to_num(weather["precip"]) > 0.03) & (np.nan_to_num(weather["visib"], nan=10.0) < 4))
        + 1.2 * (np.nan_to_num(weather["wind_gust"]) > 30)
        + 0.02 * (np.nan_to_num(recent_delay, nan=8.0) - 8.0)
    )
    delayed = rng.random(n) < _sigmoid(log_odds)
    arr_delay = np.where(delayed, 16 + np.round(rng.exponential(40, n)), rng.integers(-40, 16, n)).astype(float)
    diverted = rng.random(n) < 0.01
    labels = pd.DataFrame({
        "flight_id": features["flight_id"],
        "flight_date": flight_date,
        "arr_delay": arr_delay,
        LABEL_COLUMN: arr_delay > 15,
    })[~diverted].reset_index(drop=True)
    return features, labels


def _json_value(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):  # numpy floats are floats too
        return None
    return value.item() if isinstance(value, np.generic) else value


def request_body(row: pd.Series) -> dict[str, object]:
    """The prediction service's JSON body for one feature row: its model inputs (NaN as null) and flight_id."""
    return {**{column: _json_value(row[column]) for column in FEATURE_COLUMNS}, "flight_id": row["flight_id"]}
