"""Tests of `flightops.feature_engineering`: each flight's features use only facts known when it is predicted.

A prediction for a flight is made `lead` minutes before its scheduled departure; training rows that
saw anything later (a departure, an arrival, a weather observation) would teach the model what
serving can never know. The module's docstring states when each fact becomes known; these tests hold
`build_features` to those rules on in-memory DuckDB tables, no platform:

1. Leakage, as a property over seeded synthetic days (several seeds, leads 0, 60 and 1440): perturb
   every fact known at or after a target flight's prediction time p, and its row, like every row
   predicted by p, must not move; perturb facts known before p and the row must move (so that the
   comparison can fail).
2. Loaded days and the run's window do not matter: later days appended to the relations, or a build of
   one day instead of three, give the same rows.
3. Exact values on a small hand-made schedule, with the expected numbers reasoned in comments; the
   boundaries are written with the module's constants (ARRIVAL_REPORT_MINUTES, RECENT_HOURS,
   DELAYED_DEPARTURE_MINUTES).
4. Refused inputs: a lead that is not a whole number of minutes in 0..1440, an empty window.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from flightops import feature_engineering
from flightops.feature_engineering import (
    ARRIVAL_REPORT_MINUTES,
    DELAYED_DEPARTURE_MINUTES,
    MAX_LEAD_MINUTES,
    RECENT_HOURS,
    build_features,
    check_lead,
)
from flightops.modeling.schema import FEATURE_COLUMNS

pytestmark = pytest.mark.unit

MINUTE = timedelta(minutes=1)
WEATHER_MEASURES = ("temp_f", "dewpoint_f", "humidity_pct", "wind_dir_deg", "wind_speed_mph", "wind_gust_mph",
                    "precip_in", "pressure_mb", "visibility_mi")


# --- Loading frames as the warehouse's relations and reading the feature rows ---------------------------

def load(con: duckdb.DuckDBPyConnection, flights: pd.DataFrame, weather: pd.DataFrame) -> None:
    """(Re)create the tables `flights` and `weather` with marts.fct_flights' and stg_weather's types."""
    con.register("flights_frame", flights)
    con.execute("""
        CREATE OR REPLACE TABLE flights AS SELECT
            CAST(flight_id AS VARCHAR) AS flight_id, CAST(flight_date AS DATE) AS flight_date,
            CAST(carrier AS VARCHAR) AS carrier, CAST(origin AS VARCHAR) AS origin, CAST(dest AS VARCHAR) AS dest,
            CAST(origin || '-' || dest AS VARCHAR) AS route, CAST(tailnum AS VARCHAR) AS tailnum,
            CAST(scheduled_departure_at AS TIMESTAMP) AS scheduled_departure_at,
            CAST(actual_departure_at AS TIMESTAMP) AS actual_departure_at,
            CAST(dep_delay AS DOUBLE) AS dep_delay, CAST(arr_delay AS DOUBLE) AS arr_delay,
            CAST(air_time AS DOUBLE) AS air_time, CAST(distance AS DOUBLE) AS distance,
            CAST(is_cancelled AS BOOLEAN) AS is_cancelled, CAST(is_delayed_15 AS BOOLEAN) AS is_delayed_15,
            CAST(plane_age_years AS DOUBLE) AS plane_age_years, CAST(plane_seat_count AS INTEGER) AS plane_seat_count
        FROM flights_frame""")
    con.unregister("flights_frame")
    con.register("weather_frame", weather)
    measures = ", ".join(f"CAST({m} AS DOUBLE) AS {m}" for m in WEATHER_MEASURES)
    con.execute(f"""
        CREATE OR REPLACE TABLE weather AS SELECT
            CAST(origin AS VARCHAR) AS origin, CAST(observed_at AS TIMESTAMP) AS observed_at, {measures}
        FROM weather_frame""")
    con.unregister("weather_frame")


def features(con: duckdb.DuckDBPyConnection, first: date, last: date, lead: int) -> pd.DataFrame:
    """The feature rows of first..last at `lead`, indexed by flight_id."""
    table = build_features(con, flights="flights", weather="weather", first=first, last=last, lead_minutes=lead)
    return con.execute(f"SELECT * FROM {table} ORDER BY flight_id").df().set_index("flight_id")


def assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Every column equal, exactly; NaN equals NaN."""
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def known_times(flights: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """When each flight's departure and its arrival became known, by the rules of the module's docstring.

    Departure: max(actual departure, start of the flight's scheduled day). Arrival: actual departure + air
    time + ARRIVAL_REPORT_MINUTES. NaT when there is none (cancelled; diverted for the arrival).
    """
    day_start = pd.to_datetime(flights["flight_date"])
    departed = flights["actual_departure_at"].where(flights["actual_departure_at"] >= day_start, day_start)
    departed = departed.where(flights["actual_departure_at"].notna())
    arrival = flights["actual_departure_at"] + pd.to_timedelta(flights["air_time"] + ARRIVAL_REPORT_MINUTES, "min")
    return departed, arrival


# --- Synthetic days ------------------------------------------------------------------------------------

START = date(2013, 3, 8)  # a Friday: five days span a weekend
DAYS = 5
ORIGINS = ("EWR", "JFK", "LGA")
CARRIERS = ("UA", "B6", "DL", "EV", "AA")
DISTANCES = {"ORD": 733.0, "ATL": 760.0, "BOS": 187.0, "MCO": 944.0, "LAX": 2475.0, "DCA": 214.0}
TAILS = 30


def synthetic_data(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(flights, weather) of DAYS days from START, a few hundred flights a day.

    Tails fly 2-5 legs a day (so "the tail's previous leg" is exercised), some flights have no tail, a
    few are scheduled just after midnight and often leave early, i.e. the evening before. Departure
    delays are mostly small, some hours long, some negative (down to -20); ~3% cancelled, ~1% diverted.
    Weather is hourly per origin from the day before START, with ~5% of the hours missing. Two data
    quirks the module resolves: a few legs of a tail share their scheduled minute with another of its
    legs, and a few observation hours appear twice (clocks falling back).
    """
    rng = np.random.default_rng(seed)
    tail_carrier = rng.choice(CARRIERS, TAILS)
    tail_age = np.where(rng.random(TAILS) < 0.15, np.nan, rng.integers(1, 25, TAILS).astype(float))
    tail_seats = np.where(np.isnan(tail_age), np.nan, rng.choice([50.0, 140.0, 179.0, 200.0], TAILS))
    slots = []  # (day, minute of day, tail index or -1)
    for d in range(DAYS):
        day_start = len(slots)
        for tail in range(TAILS):
            for minute in rng.choice(np.arange(300, 1440), rng.integers(2, 6), replace=False):
                slots.append((d, int(minute), tail))
        slots += [slots[i] for i in rng.integers(day_start, len(slots), 3)]  # same tail, same minute
        slots += [(d, int(m), -1) for m in rng.integers(300, 1440, 20)]
        slots += [(d, int(m), int(rng.integers(-1, TAILS))) for m in rng.choice(np.arange(0, 46), 5, replace=False)]
    n = len(slots)
    day_index = np.array([s[0] for s in slots])
    minutes = np.array([s[1] for s in slots])
    tail_index = np.array([s[2] for s in slots])
    has_tail = tail_index >= 0

    flight_date = pd.to_datetime([START + timedelta(days=int(d)) for d in day_index])
    scheduled = flight_date + pd.to_timedelta(minutes, "min")
    dest = rng.choice(list(DISTANCES), n)
    kind = rng.random(n)
    dep_delay = np.select(
        [kind < 0.75, kind < 0.95],
        [rng.integers(-20, 16, n), rng.integers(16, 120, n)],
        rng.integers(120, 400, n),
    ).astype(float)
    after_midnight = minutes < 60
    dep_delay = np.where(after_midnight & (rng.random(n) < 0.6), rng.integers(-20, 0, n), dep_delay)
    distance = np.array([DISTANCES[x] for x in dest])
    air_time = np.maximum(20, np.round(distance / 7.5 + rng.normal(0, 10, n)))
    arr_delay = dep_delay + rng.integers(-25, 21, n)
    cancelled = rng.random(n) < 0.03
    diverted = ~cancelled & (rng.random(n) < 0.01)
    dep_delay[cancelled] = np.nan
    arr_delay[cancelled | diverted] = np.nan
    air_time[cancelled | diverted] = np.nan

    flights = pd.DataFrame({
        "flight_id": [f"F{seed}-{i:05d}" for i in range(n)],
        "flight_date": flight_date.date,
        "carrier": np.where(has_tail, tail_carrier[tail_index], rng.choice(CARRIERS, n)),
        "origin": rng.choice(ORIGINS, n),
        "dest": dest,
        "tailnum": [f"N{100 + t}" if t >= 0 else None for t in tail_index],
        "scheduled_departure_at": scheduled,
        "actual_departure_at": scheduled + pd.to_timedelta(dep_delay, "min"),
        "dep_delay": dep_delay,
        "arr_delay": arr_delay,
        "air_time": air_time,
        "distance": distance,
        "is_cancelled": cancelled,
        "is_delayed_15": pd.array(np.where(np.isnan(arr_delay), None, arr_delay > 15), dtype="boolean"),
        "plane_age_years": np.where(has_tail, tail_age[tail_index], np.nan),
        "plane_seat_count": np.where(has_tail, tail_seats[tail_index], np.nan),
    })

    hours = pd.date_range(datetime.combine(START - timedelta(days=1), datetime.min.time()), periods=24 * (DAYS + 1),
                          freq="h")
    weather = pd.DataFrame([(origin, hour) for origin in ORIGINS for hour in hours], columns=["origin", "observed_at"])
    weather = weather[rng.random(len(weather)) >= 0.05]
    weather = pd.concat([weather, weather.sample(frac=0.02, random_state=seed)], ignore_index=True)
    weather = pd.concat([weather, random_weather(rng, len(weather))], axis=1)
    return flights, weather


def random_weather(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """n observations' measures (about one in ten missing, gusts mostly missing)."""
    measures = pd.DataFrame({
        "temp_f": np.round(rng.normal(40, 12, n), 2),
        "dewpoint_f": np.round(rng.normal(25, 10, n), 2),
        "humidity_pct": np.round(rng.uniform(20, 100, n), 2),
        "wind_dir_deg": rng.integers(0, 36, n) * 10.0,
        "wind_speed_mph": np.round(rng.uniform(0, 30, n), 2),
        "wind_gust_mph": np.where(rng.random(n) < 0.8, np.nan, np.round(rng.uniform(20, 45, n), 2)),
        "precip_in": np.round(rng.exponential(0.02, n), 2),
        "pressure_mb": np.round(rng.normal(1015, 8, n), 1),
        "visibility_mi": np.round(rng.uniform(0, 10, n), 1),
    })
    return measures.mask(rng.random(measures.shape) < 0.1)


def last_day(days: int = DAYS) -> date:
    return START + timedelta(days=days - 1)


# --- 1. Leakage -----------------------------------------------------------------------------------------

def perturb_from(flights: pd.DataFrame, weather: pd.DataFrame, p: pd.Timestamp, keep: str,
                 rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, set[str] | int]]:
    """Copies of the relations with every fact known at or after `p` changed, and what was changed.

    Departures known at or after p leave later still and arrive with another delay (diverted ones land
    after all), or, a fifth of them, are cancelled instead (never `keep`). Arrivals known at or after p,
    of flights that left before it, get another delay and a longer air time; diverted flights that left
    before p land after all, an hour after p at the earliest. Every weather observation after p gets other
    values. The schedule is known in advance and never changes.
    """
    flights = flights.copy()
    n = len(flights)
    departed, arrival = known_times(flights)
    later_departure = (departed >= p).to_numpy()
    later_arrival = ~later_departure & (arrival >= p).to_numpy()
    landed_later = ~later_departure & departed.notna().to_numpy() & flights["air_time"].isna().to_numpy()
    cancel = later_departure & (rng.random(n) < 0.2) & (flights["flight_id"] != keep).to_numpy()
    later_departure &= ~cancel

    bump = rng.integers(1, 300, n)
    flights.loc[later_departure, "dep_delay"] += bump[later_departure]
    flights.loc[later_departure, "actual_departure_at"] += pd.to_timedelta(bump[later_departure], "min")
    flights.loc[later_departure & flights["air_time"].isna().to_numpy(), "air_time"] = 100.0
    flights.loc[landed_later, "air_time"] = (p - flights.loc[landed_later, "actual_departure_at"]) / MINUTE + 60
    flights.loc[later_arrival, "air_time"] += rng.integers(0, 60, n)[later_arrival]
    new_arrival = later_departure | later_arrival | landed_later
    old = flights["arr_delay"].to_numpy()
    flights.loc[new_arrival, "arr_delay"] = np.where(
        np.isnan(old), rng.integers(-30, 300, n), old + rng.integers(1, 300, n))[new_arrival]
    flights.loc[cancel, ["dep_delay", "arr_delay", "air_time"]] = np.nan
    flights.loc[cancel, "actual_departure_at"] = pd.NaT
    flights.loc[cancel, "is_cancelled"] = True
    flights["is_delayed_15"] = pd.array(
        np.where(flights["arr_delay"].isna(), None, flights["arr_delay"] > 15), dtype="boolean")

    weather = weather.copy()
    after = (weather["observed_at"] > p).to_numpy()
    weather.loc[after, list(WEATHER_MEASURES)] = random_weather(rng, int(after.sum())).to_numpy()

    changed = {"departures": int(later_departure.sum()), "arrivals": int(new_arrival.sum()),
               "weather": int(after.sum()), "cancelled": set(flights.loc[cancel, "flight_id"]),
               "new_arrivals": set(flights.loc[new_arrival, "flight_id"])}
    return flights, weather, changed


def prediction_times(flights: pd.DataFrame, lead: int) -> pd.Series:
    """Scheduled departure minus the lead, by flight_id: computed here, not read from the rows under test."""
    return flights.set_index("flight_id")["scheduled_departure_at"] - lead * MINUTE


def cut_targets(rows: pd.DataFrame, flights: pd.DataFrame, rng: np.random.Generator) -> list[str]:
    """Two targets on days 3-5 (so that many rows are predicted before them): one whose prediction time is
    the very minute another flight's departure became known (the boundary), one at random."""
    late = rows[rows["flight_date"] >= pd.Timestamp(START + timedelta(days=2))]
    departed, _ = known_times(flights)
    at_a_departure = late[late["prediction_at"].isin(set(departed.dropna()))]
    assert len(at_a_departure) > 0
    return [rng.choice(at_a_departure.index.to_numpy()), rng.choice(late.index.to_numpy())]


@pytest.mark.parametrize("lead", [0, 60, 1440])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_do_not_change_when_facts_known_from_their_prediction_time_change(seed: int, lead: int) -> None:
    """For a target f predicted at p: change every fact known at or after p. f's row, and every row
    predicted no later than p, must stay the same (except that rows of flights now cancelled are gone)."""
    flights, weather = synthetic_data(seed)
    con = duckdb.connect()
    load(con, flights, weather)
    before = features(con, START, last_day(), lead)
    assert set(before.index) == set(flights.loc[~flights["is_cancelled"], "flight_id"])
    p_of = prediction_times(flights, lead)
    assert (before["prediction_at"] == p_of[before.index]).all()

    rng = np.random.default_rng(100 + seed)
    for target in cut_targets(before, flights, rng):
        p = p_of[target]
        changed_flights, changed_weather, changed = perturb_from(flights, weather, p, target, rng)
        assert changed["departures"] > 0 and changed["arrivals"] > 0
        assert target in changed["new_arrivals"]  # the target's own arrival (label) is among the changed facts
        load(con, changed_flights, changed_weather)
        after = features(con, START, last_day(), lead)

        predicted_by_p = before.index[before["prediction_at"] <= p]
        assert set(predicted_by_p) - set(after.index) == set(predicted_by_p) & changed["cancelled"]
        kept = predicted_by_p.intersection(after.index)
        assert target in kept and len(kept) > 100
        assert_same_rows(after.loc[kept], before.loc[kept])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_changing_facts_known_before_the_prediction_time_changes_the_row(seed: int) -> None:
    """The converse, so that the comparison above can fail: facts known just before p do reach the row.

    For a target f predicted at p (lead 60), at once: a departure from f's origin (another route) in
    [p - RECENT_HOURS, p - 1 hour) leaves 30 minutes later, still inside the window, so the recent mean
    delay moves by exactly 30 / n; the origin's latest observation at or before p gets another
    temperature, which becomes f's; an arrival of f's route known before p has its label flipped, so the
    route's prior rate moves by exactly 1 / n.
    """
    lead = 60
    flights, weather = synthetic_data(seed)
    con = duckdb.connect()
    load(con, flights, weather)
    before = features(con, START, last_day(), lead)
    departed, arrival = known_times(flights)
    route = flights["origin"] + "-" + flights["dest"]
    rng = np.random.default_rng(200 + seed)

    for target in rng.permutation(before.index.to_numpy()):
        row = before.loc[target]
        p = row["prediction_at"]
        in_window = ((flights["origin"] == row["origin"]) & (route != row["route"])
                     & (departed >= p - pd.Timedelta(hours=RECENT_HOURS)) & (departed < p - pd.Timedelta(hours=1))
                     & (flights["actual_departure_at"] == departed))
        observed = weather[(weather["origin"] == row["origin"]) & (weather["observed_at"] <= p)]
        landed = (route == row["route"]) & (arrival < p) & flights["arr_delay"].notna()
        if in_window.any() and landed.any() and not observed.empty:
            break
    else:
        pytest.fail("no target with a recent departure, an observation and a landed flight of its route")

    changed, warmer = flights.copy(), weather.copy()
    one = in_window.idxmax()
    changed.loc[one, "dep_delay"] += 30
    changed.loc[one, "actual_departure_at"] += 30 * MINUTE
    warmer.loc[observed["observed_at"].idxmax(), "temp_f"] = 123.45
    flip = landed.idxmax()
    late = bool(flights.at[flip, "is_delayed_15"])
    changed.loc[flip, "arr_delay"] = 0.0 if late else 60.0
    changed.loc[flip, "is_delayed_15"] = not late
    load(con, changed, warmer)
    after = features(con, START, last_day(), lead).loc[target]

    assert after["origin_recent_departures"] == row["origin_recent_departures"] >= 1
    assert after["origin_recent_mean_dep_delay"] == pytest.approx(
        row["origin_recent_mean_dep_delay"] + 30 / row["origin_recent_departures"])
    assert row["temp"] != 123.45 and after["temp"] == 123.45
    assert after["route_prior_flights"] == row["route_prior_flights"] >= 1
    assert after["route_prior_delay_rate"] == pytest.approx(
        row["route_prior_delay_rate"] + (-1 if late else 1) / row["route_prior_flights"])


# --- 2. Loaded days and the run's window ---------------------------------------------------------------

@pytest.mark.parametrize(("seed", "lead"), [(3, 0), (4, 1440)])
def test_later_days_and_the_build_window_do_not_change_rows(seed: int, lead: int) -> None:
    flights, weather = synthetic_data(seed)
    day1, day3, day5 = START, last_day(3), last_day(5)
    con = duckdb.connect()
    load(con, flights[flights["flight_date"] <= day3],
         weather[weather["observed_at"] < pd.Timestamp(day3 + timedelta(days=1))])
    through_day3 = features(con, day1, day3, lead)
    assert set(through_day3["flight_date"].dt.date) == {day1, day1 + timedelta(days=1), day3}

    load(con, flights, weather)  # days 4 and 5 arrive
    assert_same_rows(features(con, day1, day3, lead), through_day3)
    # Built together with the later days, whose flights are then among the facts read: still the same.
    all_days = features(con, day1, day5, lead)
    assert_same_rows(all_days[all_days["flight_date"] <= pd.Timestamp(day3)], through_day3)
    # Day 3 built alone.
    assert_same_rows(features(con, day3, day3, lead), through_day3[through_day3["flight_date"] == pd.Timestamp(day3)])


def test_rows_built_in_slices_are_those_built_at_once(monkeypatch) -> None:
    flights, weather = synthetic_data(5)
    con = duckdb.connect()
    load(con, flights, weather)
    at_once = features(con, START, last_day(5), 60)
    monkeypatch.setattr(feature_engineering, "FEATURE_SLICE_ROWS", 7)
    in_slices = features(con, START, last_day(5), 60)
    assert len(at_once) > 3 * 7  # several slices, the last one partial
    pd.testing.assert_frame_equal(in_slices, at_once)


# --- 3. Exact values on a hand-made schedule -----------------------------------------------------------

D0 = date(2013, 1, 1)  # Tuesday: history
D = date(2013, 1, 2)   # Wednesday: the day under test


def at(day: date, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=hours, minutes=minutes)


def flight(flight_id: str, scheduled: datetime, *, origin: str = "EWR", dest: str = "ORD", carrier: str = "UA",
           tail: str | None = None, dep_delay: float | None = 0.0, air_time: float | None = 100.0,
           arr_delay: float | None = None, plane: tuple[float, int] | None = None) -> dict:
    """One fct_flights row. dep_delay None: cancelled; air_time None: diverted. arr_delay defaults to dep_delay."""
    cancelled = dep_delay is None
    if arr_delay is None and not cancelled and air_time is not None:
        arr_delay = dep_delay
    if cancelled or air_time is None:
        arr_delay, air_time = None, None
    return {
        "flight_id": flight_id, "flight_date": scheduled.date(), "carrier": carrier,
        "origin": origin, "dest": dest, "tailnum": tail, "scheduled_departure_at": scheduled,
        "actual_departure_at": None if cancelled else scheduled + timedelta(minutes=dep_delay),
        "dep_delay": dep_delay, "arr_delay": arr_delay, "air_time": air_time, "distance": 719.0,
        "is_cancelled": cancelled, "is_delayed_15": None if arr_delay is None else arr_delay > 15,
        "plane_age_years": plane[0] if plane else None, "plane_seat_count": plane[1] if plane else None,
    }


def departing_at(flight_id: str, left: datetime, dep_delay: float, **kw) -> dict:
    """A flight that left at `left` with `dep_delay` (so scheduled at left - dep_delay)."""
    return flight(flight_id, left - timedelta(minutes=dep_delay), dep_delay=dep_delay, **kw)


# EWR, the morning of D. Arrival reports are ARRIVAL_REPORT_MINUTES after departure + air time.
HISTORY = [  # D0 at EWR: all arrivals known long before D
    flight("H1", at(D0, "12:00"), air_time=120, arr_delay=30),                # EWR-ORD, late
    flight("H2", at(D0, "13:00"), air_time=120, arr_delay=0),                 # EWR-ORD, on time
    flight("H3", at(D0, "14:00"), dest="BOS", dep_delay=20, arr_delay=25),    # UA on another route, late
    flight("H4", at(D0, "15:00"), dep_delay=5, air_time=None),                # diverted: no arrival, not counted
    flight("H5", at(D0, "16:00"), dep_delay=None),                            # cancelled: not counted, no row
]
EWR_DAY = [
    flight("A", at(D, "08:00"), tail="N1", dep_delay=10, air_time=120, arr_delay=5),   # left 08:10
    flight("B", at(D, "08:30"), tail="N2", dep_delay=50, air_time=120, arr_delay=40),  # left 09:20
    flight("C", at(D, "09:00"), carrier="DL", dest="ATL", tail="N3", dep_delay=90),   # left 10:30
    flight("T", at(D, "10:00"), tail="N1", dep_delay=3, air_time=100, arr_delay=-5,  # left 10:03
           plane=(16.0, 179)),
    flight("X", at(D, "10:20"), dep_delay=None),                                      # cancelled
    flight("E", at(D, "10:45"), carrier="DL", dest="ATL", tail="N4", dep_delay=5),    # left 10:50
    flight("T2", at(D, "14:00"), tail="N1"),                                          # N1's third leg
]
# JFK on D, around the prediction time P_JFK of R: departures at the edges of the recent window.
P_JFK = at(D, "15:00")
RECENT_FROM = P_JFK - timedelta(hours=RECENT_HOURS)
JFK_DAY = [
    departing_at("J1", RECENT_FROM - MINUTE, 30, origin="JFK", carrier="B6"),         # just before the window
    departing_at("J2", RECENT_FROM, DELAYED_DEPARTURE_MINUTES, origin="JFK", carrier="B6"),  # at its start
    departing_at("J3", P_JFK - MINUTE, DELAYED_DEPARTURE_MINUTES + 1, origin="JFK", carrier="B6"),
    departing_at("J6", P_JFK - MINUTE, -5, origin="JFK", carrier="B6"),               # scheduled after P_JFK
    departing_at("J4", P_JFK, 0, origin="JFK", carrier="B6"),                         # at P_JFK: not yet known
    flight("J5", at(D, "14:30"), origin="JFK", carrier="B6", dep_delay=60),           # scheduled before, left after
    flight("R", P_JFK + timedelta(hours=1), origin="JFK", carrier="B6"),
    flight("J7", at(D, "16:59"), origin="JFK", carrier="DL"),
    flight("J8", at(D, "17:00"), origin="JFK", carrier="DL"),
]
# Two legs of tail N8 share a scheduled minute (a data quirk): the previous leg of L3 is the one that
# left (first), L2; not L1, which leaves only after L3's prediction time. AA EWR-MIA: no other counts move.
SAME_MINUTE_LEGS = [
    flight("L1", at(D0, "17:00"), carrier="AA", dest="MIA", tail="N8", dep_delay=90),  # left 18:30
    flight("L2", at(D0, "17:00"), carrier="AA", dest="MIA", tail="N8", dep_delay=5),   # left 17:05
    flight("L3", at(D0, "19:00"), carrier="AA", dest="MIA", tail="N8"),
]
# LGA around midnight D0 -> D. No LGA weather at all.
LGA_NIGHT = [
    flight("K", at(D0, "22:00"), origin="LGA", dest="BOS", carrier="B6", dep_delay=90),  # left 23:30
    flight("N", at(D0, "23:59"), origin="LGA", dest="BOS", carrier="B6"),                # left 23:59
    flight("M", at(D, "00:10"), origin="LGA", dest="BOS", carrier="B6", dep_delay=-15),  # left D0 23:55
    flight("Q", at(D, "01:00"), origin="LGA", dest="BOS", carrier="B6"),
]


SCENARIO = HISTORY + EWR_DAY + JFK_DAY + SAME_MINUTE_LEGS + LGA_NIGHT
Rows = Callable[[int], dict[str, dict]]


@pytest.fixture(scope="module")
def scenario() -> Rows:
    """The hand-made schedule's feature rows (D0..D) at a lead, by flight_id; one build per lead.

    EWR has hourly weather on D0 and D whose temperature is the hours since D0 00:00 (D 09:00: 33),
    with D 13:00 observed twice (37 and 39, as when clocks fall back); JFK and LGA have none.
    """
    con = duckdb.connect()
    flights = pd.DataFrame(SCENARIO)
    hours = pd.date_range(at(D0, "00:00"), periods=48, freq="h")
    weather = pd.DataFrame({"origin": "EWR", "observed_at": hours, "temp_f": np.arange(48, dtype=float)})
    weather = pd.concat([weather, pd.DataFrame({"origin": ["EWR"], "observed_at": [at(D, "13:00")], "temp_f": [39.0]})])
    for measure in WEATHER_MEASURES[1:]:
        weather[measure] = np.nan
    weather["visibility_mi"] = 10.0
    load(con, flights, weather)

    @functools.cache
    def rows(lead: int) -> dict[str, dict]:
        return features(con, D0, D, lead).to_dict("index")

    return rows


def assert_features(row: dict, **expected: float | None) -> None:
    """Each named feature equals its expected value; None means null (NaN)."""
    for name, value in expected.items():
        got = row[name]
        if value is None:
            assert got is None or (isinstance(got, float) and math.isnan(got)), f"{name}: {got!r} is not null"
        else:
            assert got == pytest.approx(value), f"{name}: got {got!r}, expected {value!r}"


def test_the_ewr_morning_at_lead_60(scenario: Rows) -> None:
    got = scenario(60)
    assert set(FEATURE_COLUMNS) <= set(next(iter(got.values())))
    # Cancelled flights (H5 on D0, X on D) get no row; every other flight of D0..D does.
    assert "X" not in got and "H5" not in got
    assert len(got) == len(SCENARIO) - 2

    t = got["T"]  # scheduled 10:00, predicted at 09:00
    assert t["prediction_at"] == at(D, "09:00") and t["prediction_lead_minutes"] == 60
    assert_features(
        t, month=1, day_of_week=3, dep_hour=10, dep_minute_of_day=600, is_weekend=0, distance=719.0,
        plane_age=16.0, plane_seats=179.0,
        # Latest EWR observation at or before 09:00 is 09:00's (33), not the departure hour's (34).
        temp=33.0, visib=10.0, wind_gust=None,
        # Arrivals known before 09:00: H1 (late), H2 on EWR-ORD; H3 (late) of UA elsewhere. H4 diverted and H5
        # cancelled have no arrival; A's arrival is known only at 08:10 + 120 + ARRIVAL_REPORT_MINUTES.
        route_prior_flights=2, route_prior_delay_rate=1 / 2,
        carrier_prior_flights=3, carrier_prior_delay_rate=2 / 3,
        # EWR departures in [09:00 - RECENT_HOURS, 09:00): A at 08:10 (10 min late) only; B left at 09:20.
        origin_recent_departures=1, origin_recent_mean_dep_delay=10.0, origin_recent_delayed_share=0.0,
        # Scheduled before 09:00: A, B (C at 09:00 is not before); A is gone.
        origin_backlog=1,
        # Scheduled 10:00-10:59 at EWR: T, X (cancelled, but scheduled) and E.
        origin_flights_in_hour=3,
        # UA's EWR departures since D 00:00 before 09:00: A.
        carrier_origin_departures_today=1, carrier_origin_delayed_share_today=0.0,
        # N1's previous leg A: scheduled 120 min before; left 08:10 < 09:00; its arrival not known yet.
        tail_prev_gap_minutes=120.0, tail_prev_dep_delay=10.0, tail_prev_arr_delay=None,
    )
    # A, N1's first leg that day, has no previous leg.
    assert_features(got["A"], tail_prev_gap_minutes=None, tail_prev_dep_delay=None, tail_prev_arr_delay=None)


def test_the_ewr_morning_at_lead_0(scenario: Rows) -> None:
    t = scenario(0)["T"]  # predicted at its scheduled departure, 10:00
    assert_features(
        t, temp=34.0,
        # [10:00 - RECENT_HOURS, 10:00): A (10), B (50, late); C left 10:30, T itself at 10:03.
        origin_recent_departures=2, origin_recent_mean_dep_delay=30.0, origin_recent_delayed_share=0.5,
        # Scheduled before 10:00: A, B, C; gone: A, B.
        origin_backlog=1,
        carrier_origin_departures_today=2, carrier_origin_delayed_share_today=0.5,
        route_prior_flights=2, tail_prev_dep_delay=10.0, tail_prev_arr_delay=None,
    )


def test_the_tails_previous_leg_is_known_from_its_departure_and_its_arrival_report(scenario: Rows) -> None:
    """T2 (N1, scheduled 14:00) follows T (scheduled 10:00, left 10:03, 100 minutes in the air), at leads
    putting the prediction time on the minutes T's departure and its arrival report became known."""
    t_left = at(D, "10:03")
    t_arrival_known = t_left + timedelta(minutes=100 + ARRIVAL_REPORT_MINUTES)
    t2_scheduled = at(D, "14:00")
    assert t_arrival_known < t2_scheduled

    def t2(prediction: datetime) -> dict:
        return scenario(int((t2_scheduled - prediction) / MINUTE))["T2"]

    # At the very minute T left, its departure is not known yet: the schedule gap only.
    assert_features(t2(t_left), tail_prev_gap_minutes=240.0, tail_prev_dep_delay=None, tail_prev_arr_delay=None)
    # A minute later it is; its arrival is not known until a minute after the report's moment.
    for p in (t_left + MINUTE, t_arrival_known):
        assert_features(t2(p), tail_prev_gap_minutes=240.0, tail_prev_dep_delay=3.0, tail_prev_arr_delay=None)
    # Then it joins the route's and the carrier's prior rates too. EWR-ORD arrivals known before:
    # H1 (late), H2, A (left 08:10, 120 in the air), B (late, left 09:20, 120 in the air): 4, 2 late;
    # UA adds H3 (late): 5, 3 late.
    assert_features(t2(t_arrival_known), route_prior_flights=4, route_prior_delay_rate=2 / 4,
                    carrier_prior_flights=5, carrier_prior_delay_rate=3 / 5)
    assert_features(t2(t_arrival_known + MINUTE), tail_prev_dep_delay=3.0, tail_prev_arr_delay=-5.0,
                    route_prior_flights=5, route_prior_delay_rate=2 / 5,
                    carrier_prior_flights=6, carrier_prior_delay_rate=3 / 6)


def test_the_ewr_afternoon(scenario: Rows) -> None:
    t2 = scenario(60)["T2"]  # predicted at 13:00
    p = at(D, "13:00")
    # EWR departures of D (moment left, delay); those of the last RECENT_HOURS before p are recent. With
    # RECENT_HOURS = 3: T (3), C (90, late) and E (5).
    ewr_departures = [(at(D, "08:10"), 10), (at(D, "09:20"), 50), (at(D, "10:03"), 3), (at(D, "10:30"), 90),
                      (at(D, "10:50"), 5)]
    recent = [delay for left, delay in ewr_departures if p - timedelta(hours=RECENT_HOURS) <= left < p]
    assert_features(
        t2, temp=(37.0 + 39.0) / 2,  # 13:00 observed twice: their mean
        origin_recent_departures=len(recent), origin_recent_mean_dep_delay=sum(recent) / len(recent),
        origin_recent_delayed_share=sum(d > DELAYED_DEPARTURE_MINUTES for d in recent) / len(recent),
        # Scheduled before 13:00: A, B, C, T, X, E; all gone but the cancelled X, which stays in the queue.
        origin_backlog=1,
        origin_flights_in_hour=1,
        # UA at EWR today before 13:00: A, B (late), T.
        carrier_origin_departures_today=3, carrier_origin_delayed_share_today=1 / 3,
        tail_prev_gap_minutes=240.0, tail_prev_dep_delay=3.0,
    )


def test_the_previous_leg_among_two_of_the_same_minute_is_the_one_that_left_first(scenario: Rows) -> None:
    # L3 predicted at D0 18:00: L2 left 17:05 (5 late), L1 leaves at 18:30.
    assert_features(scenario(60)["L3"], tail_prev_gap_minutes=120.0, tail_prev_dep_delay=5.0)


def test_the_recent_window_and_the_backlog_at_their_edges(scenario: Rows) -> None:
    r = scenario(60)["R"]  # JFK, scheduled P_JFK + 1 hour: predicted at P_JFK
    assert_features(
        r,
        # J1 left a minute before the window, J4 exactly at P_JFK: both out. J2 (at the window's start,
        # DELAYED_DEPARTURE_MINUTES late: not "more than"), J3 (one minute more: delayed), J6 (5 early) in.
        origin_recent_departures=3,
        origin_recent_mean_dep_delay=(DELAYED_DEPARTURE_MINUTES + DELAYED_DEPARTURE_MINUTES + 1 - 5) / 3,
        origin_recent_delayed_share=1 / 3,
        # Scheduled before P_JFK: J1, J2, J3, J5 (J6 is scheduled after it though it left before; J4 at it).
        # Gone: J1, J2, J3. J5 is waiting.
        origin_backlog=1,
        # B6 at JFK since D 00:00, before P_JFK: J1 (30, late), J2, J3 (late), J6.
        carrier_origin_departures_today=4, carrier_origin_delayed_share_today=2 / 4,
        # 16:00-16:59 at JFK: R, J7 (J8 at 17:00 is the next hour).
        origin_flights_in_hour=2,
        temp=None,  # no JFK weather at all
    )


def test_a_departure_across_midnight_counts_from_its_own_day(scenario: Rows) -> None:
    at_departure = scenario(0)
    # N, predicted at D0 23:59: K (left 23:30, 90 late) is recent; M, of D, left at 23:55 but is known only
    # from D 00:00. No LGA weather.
    assert_features(
        at_departure["N"], origin_recent_departures=1, origin_recent_mean_dep_delay=90.0,
        origin_recent_delayed_share=1.0, carrier_origin_departures_today=1, carrier_origin_delayed_share_today=1.0,
        origin_backlog=0, temp=None, tail_prev_gap_minutes=None,
    )
    # Q, predicted at D 01:00: in [22:00, 01:00) K (23:30), N (23:59) and M (known from 00:00, 15 early).
    # Today (D) before 01:00: M only. Scheduled on D before 01:00: M, gone at 00:10.
    assert_features(
        at_departure["Q"], origin_recent_departures=3, origin_recent_mean_dep_delay=(90 + 0 - 15) / 3,
        carrier_origin_departures_today=1, carrier_origin_delayed_share_today=0.0, origin_backlog=0,
    )
    # M at lead 60, predicted at D0 23:10, a day before its own: the prediction's day is D0, where K
    # (scheduled 22:00) had not left yet; M's flight_date and hour stay D's.
    m = scenario(60)["M"]
    assert m["prediction_at"] == at(D0, "23:10")
    assert_features(m, origin_backlog=1, carrier_origin_departures_today=0, origin_recent_departures=0,
                    origin_recent_mean_dep_delay=None, dep_hour=0, dep_minute_of_day=10, day_of_week=3,
                    origin_flights_in_hour=1)


# --- 4. Refused inputs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lead", [-1, MAX_LEAD_MINUTES + 1, 1.5, True, "60"])
def test_check_lead_refuses_what_is_not_a_whole_number_of_minutes_in_range(lead: object) -> None:
    assert MAX_LEAD_MINUTES == 1440
    with pytest.raises(ValueError, match="FLIGHTOPS_PREDICTION_LEAD_MINUTES"):
        check_lead(lead)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="FLIGHTOPS_PREDICTION_LEAD_MINUTES"):
        build_features(duckdb.connect(), flights="flights", weather="weather", first=D, last=D,
                       lead_minutes=lead)  # type: ignore[arg-type]


def test_check_lead_accepts_the_range_ends() -> None:
    assert [check_lead(lead) for lead in (0, 60, MAX_LEAD_MINUTES)] == [0, 60, MAX_LEAD_MINUTES]


def test_build_features_refuses_an_empty_window() -> None:
    with pytest.raises(ValueError, match="empty"):
        build_features(duckdb.connect(), flights="flights", weather="weather", first=D, last=D0, lead_minutes=60)
