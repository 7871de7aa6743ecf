"""The benchmark's yardstick computes the platform's features: scripts/pandas_baseline.py against
`flightops.feature_engineering.build_features`, on the synthetic days of test_feature_engineering.

The benchmark compares the platform with that plain pandas script, so the script must do the same work:
the same feature rows, value for value. The benchmark checks it on the year's data (a mismatch exits 1);
these tests check it on the synthetic days' edge cases (tails with legs in the same minute, departures
across midnight, hours observed twice, missing weather, cancelled and diverted flights) at the leads'
extremes, so that a change to either definition that the other does not follow fails here first.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import duckdb
import pandas as pd
import pytest

from tests.scripts_as_modules import script_module
from tests.test_feature_engineering import START, WEATHER_MEASURES, features, last_day, load, synthetic_data

pytestmark = pytest.mark.unit

# The warehouse's weather columns (stg_weather) by their source names, which the script reads.
SOURCE_NAMES = dict(zip(WEATHER_MEASURES, ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip",
                                           "pressure", "visib")))


@pytest.fixture(scope="module")
def script() -> Iterator[ModuleType]:
    with script_module("pandas_baseline") as module:
        yield module


def as_the_script_reads_them(flights: pd.DataFrame, weather: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic relations as the script's fact table and clean weather: local day and hour, source names."""
    scheduled = flights["scheduled_departure_at"]
    fact = flights.assign(flight_date=pd.to_datetime(flights["flight_date"]), hour=scheduled.dt.hour,
                          minute=scheduled.dt.minute, route=flights["origin"] + "-" + flights["dest"])
    observed = weather["observed_at"]
    clean_weather = weather.rename(columns=SOURCE_NAMES).assign(obs_date=observed.dt.normalize(), hour=observed.dt.hour)
    return fact, clean_weather.drop(columns="observed_at")


def same_values(a: pd.Series, b: pd.Series) -> bool:
    try:
        pd.testing.assert_series_equal(a, b, check_dtype=False, check_exact=True)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("lead", [0, 60, 1440])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_scripts_feature_rows_are_the_platforms(script: ModuleType, seed: int, lead: int) -> None:
    flights, weather = synthetic_data(seed)
    con = duckdb.connect()
    load(con, flights, weather)
    platform = features(con, START, last_day(), lead)

    got, labels = script.features_and_labels(*as_the_script_reads_them(flights, weather), lead)
    got = got.set_index("flight_id").sort_index()

    assert len(platform) == (~flights["is_cancelled"]).sum() > 500
    assert list(got.columns) == list(platform.columns)
    pd.testing.assert_frame_equal(got, platform, check_dtype=False, check_exact=True)
    # The same-day features are not trivially empty: both sides see recent departures, backlogs and previous legs.
    for column in ("origin_recent_departures", "origin_backlog", "carrier_origin_departures_today"):
        assert (got[column] > 0).mean() > 0.5, column
    assert got["tail_prev_gap_minutes"].notna().mean() > 0.3
    if lead == 0:  # a day ahead, no previous leg of the same day has left yet
        assert got["tail_prev_dep_delay"].notna().mean() > 0.3
    assert len(labels) == flights["arr_delay"].notna().sum()


def test_the_comparison_fails_when_a_rule_differs(script: ModuleType, monkeypatch) -> None:
    """The script with another arrival-report delay gives other rows: the comparison above can fail."""
    flights, weather = synthetic_data(0)
    con = duckdb.connect()
    load(con, flights, weather)
    platform = features(con, START, last_day(), 60)
    monkeypatch.setattr(script, "ARRIVAL_REPORT_MINUTES", script.ARRIVAL_REPORT_MINUTES + 30)

    got, _ = script.features_and_labels(*as_the_script_reads_them(flights, weather), 60)
    got = got.set_index("flight_id").sort_index()

    changed = [c for c in platform.columns if not same_values(got[c], platform[c])]
    assert changed == ["route_prior_flights", "route_prior_delay_rate", "carrier_prior_flights",
                       "carrier_prior_delay_rate", "tail_prev_arr_delay"]
