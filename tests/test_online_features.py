"""Tests of `flightops.online_features.write_days`: the rows the prediction service reads, written in batches.

The store is replaced day by day from a DuckDB relation; rows go over BATCH_ROWS at a time, so a test
sets a batch smaller than a day to cross batch boundaries. The file keeps the types the service reads:
whole numbers as INTEGER, the rest as REAL, NULL kept, dates and times as ISO text.
"""

from __future__ import annotations

import sqlite3
from datetime import date

import duckdb
import pytest

from flightops import online_features
from flightops.online_features import TABLE, write_days

pytestmark = pytest.mark.unit

FLIGHTS_PER_DAY = 5


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
    assert write_days(path, warehouse, "features", date(2013, 1, 1), date(2013, 1, 3)) == 3 * FLIGHTS_PER_DAY
    rows = stored(path)
    assert len(rows) == 3 * FLIGHTS_PER_DAY
    assert rows[0] == ("2013-01-01_X0_EWR", "2013-01-01", "2013-01-01 05:00:00", 0, 0.0, "UA", "integer", "real")
    assert rows[1][4] is None and rows[1][-1] == "null"

    # A rerun of one day replaces that day's rows only.
    warehouse.execute("UPDATE features SET carrier = 'B6' WHERE flight_date = DATE '2013-01-02'")
    assert write_days(path, warehouse, "features", date(2013, 1, 2), date(2013, 1, 2)) == FLIGHTS_PER_DAY
    carriers = {row[1]: row[5] for row in stored(path)}
    assert carriers == {"2013-01-01": "UA", "2013-01-02": "B6", "2013-01-03": "UA"}


def test_an_empty_window_writes_nothing_and_keeps_the_other_days(warehouse, tmp_path) -> None:
    path = tmp_path / "online.sqlite"
    write_days(path, warehouse, "features", date(2013, 1, 1), date(2013, 1, 3))
    assert write_days(path, warehouse, "features", date(2013, 1, 4), date(2013, 1, 4)) == 0
    assert len(stored(path)) == 3 * FLIGHTS_PER_DAY
