"""Tests of `flightops.online_features.write_days`: the rows the prediction service reads, written in batches.

The store is replaced day by day from a DuckDB relation; rows go over BATCH_ROWS at a time, so a test
sets a batch smaller than a day to cross batch boundaries. The file keeps the types the service reads:
whole numbers as INTEGER, the rest as REAL, NULL kept, dates and times as ISO text. It keeps only its
newest `keep_days` days of flights (the serving window).
"""

from __future__ import annotations

import sqlite3
from datetime import date

import duckdb
import pytest

from flightops import online_features
from flightops.online_features import TABLE, OnlineFeatures, write_days

pytestmark = pytest.mark.unit

FLIGHTS_PER_DAY = 5
EVERY_DAY = 365  # a serving window longer than the fixture's three days


@pytest.fixture
def warehouse() -> duckdb.DuckDBPyConnection:
    """A features relation of Jan 1-3 2013 with the warehouse's types (INTEGER, DOUBLE with NULLs, DATE, TIMESTAMP, VARCHAR)."""
    con = duckdb.connect()
    con.execute(f"""
        CREATE TABLE features AS
        SELECT format('2013-01-0{{}}_X{{}}_EWR', d, i) AS flight_id, DATE '2013-01-01' + CAST(d - 1 AS INTEGER) AS flight_date,
               TIMESTAMP '2013-01-01 05:00' + to_days(CAST(d - 1 AS INTEGER)) + to_minutes(i) AS prediction_at,
               CAST(i AS INTEGER) AS dep_hour, CASE WHEN i % 2 = 0 THEN i / 3 END AS temp, 'UA' AS carrier
        FROM range(1, 4) AS days(d), range({FLIGHTS_PER_DAY}) AS flights(i)""")
    return con


def stored(path) -> list[tuple]:
    with sqlite3.connect(path) as con:
        return con.execute(f"SELECT *, typeof(dep_hour), typeof(temp) FROM {TABLE} ORDER BY flight_id").fetchall()


def test_rows_cross_batches_with_their_types_and_a_day_is_replaced(warehouse, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(online_features, "BATCH_ROWS", 2)
    path = tmp_path / "online.sqlite"
    assert write_days(path, warehouse, "features", date(2013, 1, 1), date(2013, 1, 3), EVERY_DAY).rows == 3 * FLIGHTS_PER_DAY
    rows = stored(path)
    assert len(rows) == 3 * FLIGHTS_PER_DAY
    assert rows[0] == ("2013-01-01_X0_EWR", "2013-01-01", "2013-01-01 05:00:00", 0, 0.0, "UA", "integer", "real")
    assert rows[1][4] is None and rows[1][-1] == "null"

    # A rerun of one day replaces that day's rows only.
    warehouse.execute("UPDATE features SET carrier = 'B6' WHERE flight_date = DATE '2013-01-02'")
    assert write_days(path, warehouse, "features", date(2013, 1, 2), date(2013, 1, 2), EVERY_DAY).rows == FLIGHTS_PER_DAY
    carriers = {row[1]: row[5] for row in stored(path)}
    assert carriers == {"2013-01-01": "UA", "2013-01-02": "B6", "2013-01-03": "UA"}


def test_an_empty_window_writes_nothing_and_keeps_the_other_days(warehouse, tmp_path) -> None:
    path = tmp_path / "online.sqlite"
    write_days(path, warehouse, "features", date(2013, 1, 1), date(2013, 1, 3), EVERY_DAY)
    assert write_days(path, warehouse, "features", date(2013, 1, 4), date(2013, 1, 4), EVERY_DAY).rows == 0
    assert len(stored(path)) == 3 * FLIGHTS_PER_DAY


def days_stored(path) -> dict[str, int]:
    with sqlite3.connect(path) as con:
        return dict(con.execute(f"SELECT flight_date, count(*) FROM {TABLE} GROUP BY flight_date ORDER BY 1").fetchall())


def test_the_store_keeps_its_newest_days_only(warehouse, tmp_path) -> None:
    """A range longer than the window writes the window's days; a newer day pushes the oldest out; a rerun
    of a day already out of the window (a correction) writes nothing and brings nothing back."""
    path = tmp_path / "online.sqlite"
    written = write_days(path, warehouse, "features", date(2013, 1, 1), date(2013, 1, 3), keep_days=2)
    assert (written.rows, written.oldest_day, written.newest_day) == (2 * FLIGHTS_PER_DAY, date(2013, 1, 2), date(2013, 1, 3))
    assert days_stored(path) == {"2013-01-02": FLIGHTS_PER_DAY, "2013-01-03": FLIGHTS_PER_DAY}
    assert OnlineFeatures(path).model_inputs("2013-01-01_X0_EWR") is None
    assert OnlineFeatures(path).days_held() == "2013-01-02..2013-01-03"

    warehouse.execute("""INSERT INTO features SELECT format('2013-01-04_X{}_EWR', i), DATE '2013-01-04',
                         TIMESTAMP '2013-01-04 05:00', CAST(i AS INTEGER), NULL, 'UA' FROM range(3) AS flights(i)""")
    written = write_days(path, warehouse, "features", date(2013, 1, 4), date(2013, 1, 4), keep_days=2)
    assert (written.rows, written.oldest_day) == (3, date(2013, 1, 3))
    assert days_stored(path) == {"2013-01-03": FLIGHTS_PER_DAY, "2013-01-04": 3}

    written = write_days(path, warehouse, "features", date(2013, 1, 2), date(2013, 1, 2), keep_days=2)
    assert written.rows == 0
    assert days_stored(path) == {"2013-01-03": FLIGHTS_PER_DAY, "2013-01-04": 3}


def test_a_window_of_no_days_is_refused_with_the_setting_to_change(warehouse, tmp_path) -> None:
    path = tmp_path / "online.sqlite"
    with pytest.raises(ValueError, match="FLIGHTOPS_ONLINE_FEATURE_DAYS=0 keeps no day"):
        write_days(path, warehouse, "features", date(2013, 1, 1), date(2013, 1, 3), keep_days=0)
    assert not path.exists()
    assert OnlineFeatures(path).days_held() == "no flights"
