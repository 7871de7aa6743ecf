"""The validation SQL that flightops/validation.py generates from the contracts (flightops/contracts.py).

First the generated rules themselves: for every column of every contract, exactly the checks its
declaration asks for (type cast, required, range, allowed values, foreign key; the partition date;
a version from the future). Then the SQL at work on small hand-written deliveries in an in-memory
DuckDB: exactly the broken rows go to quarantine, each with every reason and its original values,
the rest come out typed, and of each key's valid versions only the newest (offsets converted to
UTC, versions loaded for other days competing as context) is clean. No platform, no files.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime

import duckdb
import pytest

from flightops import validation
from flightops.contracts import ALL_CONTRACTS, FLIGHTS, FUTURE_VERSION_MARGIN, WEATHER, Column, Contract
from flightops.validation import ContractViolation, Outcome, check_columns, validate

pytestmark = pytest.mark.unit

# A check is `CASE WHEN <condition> THEN '<column>: ...<message>' END`.
CHECK = re.compile(r"THEN '(?P<column>[^:']+): (?P<message>.*?) END")


def checks_by_column(contract: Contract) -> dict[str, list[str]]:
    """The generated checks of each column: the SQL of its message."""
    fk_tables = {c.references: f"clean.{c.references[0]}" for c in contract.columns if c.references}
    sql = validation._reasons(contract, fk_tables)
    assert sql.startswith("list_filter([") and sql.endswith("], lambda r: r IS NOT NULL)")
    found: dict[str, list[str]] = {}
    for match in CHECK.finditer(sql):
        found.setdefault(match["column"], []).append(match["message"])
    return found


def expected_messages(contract: Contract, column: Column) -> list[str]:
    """What each rule of the column's declaration says when broken."""
    messages = [f"is not a valid {column.type}"]
    if column.required:
        messages.append("required value is missing")
    if column.min is not None:
        messages.append(f"is below {column.min}")
    if column.max is not None:
        messages.append(f"is above {column.max}")
    if column.allowed:
        messages.append("is not one of " + "/".join(column.allowed))
    if column.references:
        messages.append(f"is unknown in clean.{column.references[0]}.{column.references[1]}")
    if column.name == contract.partition_column:
        messages.append("is outside the loaded partition")
    if column.name == contract.version_column:
        messages.append(f"stamped more than {FUTURE_VERSION_MARGIN} after the row was loaded")
    return messages


@pytest.mark.parametrize("contract", ALL_CONTRACTS, ids=lambda c: c.source)
def test_every_column_gets_exactly_the_checks_its_contract_declares(contract: Contract):
    found = checks_by_column(contract)
    assert set(found) == set(contract.column_names)  # no column unchecked, no check of an unknown column
    for column in contract.columns:
        checks = found[column.name]
        expected = expected_messages(contract, column)
        assert sorted(m for m in expected for check in checks if m in check) == sorted(expected), column.name
        assert len(checks) == len(expected), (column.name, checks)
        [type_check] = [check for check in checks if f"is not a valid {column.type}" in check]
        assert f'CAST("{column.name}" AS VARCHAR)' in type_check  # the delivered text is what is checked
    # Values are cast with TRY_CAST (a bad value is a reason, not an error); an INTEGER must be whole.
    sql = validation._reasons(contract, {c.references: "fk" for c in contract.columns if c.references})
    for column in contract.columns:
        typed = validation._typed(column)
        assert typed in sql
        if column.type == "INTEGER":
            assert typed.startswith("CASE WHEN TRY_CAST(") and "= trunc(" in typed and typed.endswith("AS INTEGER) END")
        elif column.type == "TIMESTAMP":  # an explicit offset is converted to UTC, not dropped
            assert "timezone('UTC', TRY_CAST(" in typed and typed.endswith(" AS TIMESTAMP) END")
        else:
            assert typed.startswith("TRY_CAST(") and typed.endswith(f" AS {column.type})")
        if column.min is not None:
            assert f"{typed} < {column.min} THEN" in sql
        if column.max is not None:
            assert f"{typed} > {column.max} THEN" in sql


# ---- the SQL at work ------------------------------------------------------------------------

DAY = date(2013, 1, 1)


def weather_row(**values: str) -> dict[str, str]:
    """A valid delivered observation (text, as the API's JSON becomes raw rows), with `values` changed."""
    row = {
        "origin": "EWR", "obs_date": "2013-01-01", "year": "2013", "month": "1", "day": "1", "hour": "5",
        "temp": "39.02", "dewp": "26.06", "humid": "59.37", "wind_dir": "270", "wind_speed": "10.35702",
        "wind_gust": "", "precip": "0", "pressure": "1012", "visib": "10",
        "time_hour": "2013-01-01 10:00:00", "updated_at": "2013-01-02 00:00:00",
    }
    return {**row, **values}


def deliver(con: duckdb.DuckDBPyConnection, contract: Contract, rows: list[dict[str, str]]) -> str:
    """`rows` as the raw relation validate() reads: every column text, `_row` in arrival order, the partition day."""
    columns = ", ".join(f"{validation.quote(c)} VARCHAR" for c in contract.column_names)
    con.execute(f"CREATE OR REPLACE TABLE incoming ({columns}, _row INTEGER, _partition_date DATE)")
    for number, row in enumerate(rows, start=1):
        values = [row[c] for c in contract.column_names]
        con.execute(f"INSERT INTO incoming VALUES ({', '.join('?' * (len(values) + 2))})", [*values, number, DAY])
    return "incoming"


def quarantined(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[list[str], dict]]:
    rows = con.execute("SELECT record_key, reasons, record FROM _quarantine").fetchall()
    return {key: (reasons, json.loads(record)) for key, reasons, record in rows}


def test_weather_delivery_is_split_into_typed_clean_rows_and_quarantined_rows_with_every_reason():
    con = duckdb.connect()
    rows = [
        weather_row(),  # valid
        weather_row(origin="JFK", hour="6.0", wind_gust="NA", precip=" 0.01 "),  # valid: '6.0' is whole, NA is null
        weather_row(origin="LGA", temp="warm"),  # not a number
        weather_row(origin="LGA", time_hour="2013-01-01 11:00:00", hour="7.5"),  # not a whole number
        weather_row(origin="LGA", time_hour=""),  # required, missing
        weather_row(origin="JFK", time_hour="2013-01-01 12:00:00", humid="150", pressure="850"),  # two ranges broken
        weather_row(origin="BOS"),  # not one of the origin airports
        weather_row(origin="JFK", time_hour="2013-01-02 10:00:00", obs_date="2013-01-02"),  # another day
        weather_row(temp="38.0", updated_at="2013-01-01 23:00:00"),  # an older version of the first row
    ]
    outcome = validate(con, WEATHER, deliver(con, WEATHER, rows))

    assert outcome == Outcome(rows_in=9, rows_clean=2, rows_quarantined=6, duplicates_removed=1)
    assert outcome.balanced
    assert {key: reasons for key, (reasons, _) in quarantined(con).items()} == {
        "LGA|2013-01-01 10:00:00": ["temp: warm is not a valid DOUBLE"],
        "LGA|2013-01-01 11:00:00": ["hour: 7.5 is not a valid INTEGER"],
        "LGA|NULL": ["time_hour: required value is missing"],
        "JFK|2013-01-01 12:00:00": ["humid: 150 is above 100", "pressure: 850 is below 900"],
        "BOS|2013-01-01 10:00:00": ["origin: BOS is not one of EWR/JFK/LGA"],
        "JFK|2013-01-02 10:00:00": ["obs_date: 2013-01-02 is outside the loaded partition 2013-01-01"],
    }
    # Quarantine keeps what was delivered, as text.
    _, record = quarantined(con)["LGA|2013-01-01 10:00:00"]
    assert record == weather_row(origin="LGA", temp="warm")

    # Clean rows carry the contract's types; the newest version of a key wins; '', NA and blanks are NULL.
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE _clean)").fetchall())
    assert {c.name: types[c.name] for c in WEATHER.columns} == {c.name: c.type for c in WEATHER.columns}
    clean = con.execute("SELECT origin, hour, temp, wind_gust, precip, time_hour FROM _clean ORDER BY origin").fetchall()
    assert clean == [
        ("EWR", 5, 39.02, None, 0.0, datetime(2013, 1, 1, 10)),
        ("JFK", 6, 39.02, None, 0.01, datetime(2013, 1, 1, 10)),
    ]


def flight_row(**values: str) -> dict[str, str]:
    """A valid delivered flight (a line of the daily export), with `values` changed."""
    row = {
        "flight_id": "2013-01-01_UA1545_EWR", "flight_date": "2013-01-01", "year": "2013", "month": "1", "day": "1",
        "dep_time": "517", "sched_dep_time": "515", "dep_delay": "2", "arr_time": "830", "sched_arr_time": "819",
        "arr_delay": "11", "carrier": "UA", "flight": "1545", "tailnum": "N14228", "origin": "EWR", "dest": "IAH",
        "air_time": "227", "distance": "1400", "hour": "5", "minute": "15", "time_hour": "2013-01-01 10:00:00",
        "updated_at": "2013-01-01 12:00:00",
    }
    return {**row, **values}


def test_a_flight_of_an_unknown_carrier_is_quarantined_against_clean_airlines():
    con = duckdb.connect()
    rows = [
        flight_row(),
        flight_row(flight_id="2013-01-01_ZZ1_EWR", carrier="ZZ", flight="1"),
        flight_row(flight_id="2013-01-01_XX2_JFK", carrier="", flight="2", origin="JFK", distance="-100"),
        flight_row(flight_id="2013-01-01_AA3_LGA", carrier="AA", flight="3", origin="LGA", dep_time="", dep_delay="",
                   arr_time="", arr_delay="", air_time=""),  # cancelled: its nulls are allowed
    ]
    incoming = deliver(con, FLIGHTS, rows)
    with pytest.raises(ContractViolation, match=r"clean\.\"airlines\" does not exist yet.*Materialize clean/airlines"):
        validate(con, FLIGHTS, incoming)

    con.execute("CREATE SCHEMA clean")
    con.execute("CREATE TABLE clean.airlines AS SELECT * FROM (VALUES ('UA'), ('AA')) AS t(carrier)")
    outcome = validate(con, FLIGHTS, incoming)
    assert outcome == Outcome(rows_in=4, rows_clean=2, rows_quarantined=2, duplicates_removed=0)
    assert {key: reasons for key, (reasons, _) in quarantined(con).items()} == {
        "2013-01-01_ZZ1_EWR": ["carrier: ZZ is unknown in clean.airlines.carrier"],
        "2013-01-01_XX2_JFK": ["carrier: required value is missing", "distance: -100 is below 1"],
    }
    assert con.execute("SELECT flight_id, dep_time FROM _clean ORDER BY flight_id").fetchall() == [
        ("2013-01-01_AA3_LGA", None), ("2013-01-01_UA1545_EWR", 517)]


def test_a_missing_or_renamed_column_is_a_schema_break_naming_it():
    delivered = [c for c in WEATHER.column_names if c != "temp"] + ["temperature", "_batch_id"]
    with pytest.raises(ContractViolation) as error:
        check_columns(WEATHER, delivered, "weather page 3 of 2013-01-01")
    message = str(error.value)
    assert "Schema break in weather page 3 of 2013-01-01" in message
    assert "missing column(s) temp;" in message and "unexpected column(s) temperature (renamed?)" in message
    check_columns(WEATHER, list(WEATHER.column_names), "a good delivery")


# ---- versions: validated first, then the newest valid one wins ---------------------------------

LOADED = "TIMESTAMP '2013-01-03 00:00:00'"  # when the rows below were loaded (the future-version rule)


def test_a_broken_or_future_newer_version_is_quarantined_and_the_valid_one_before_it_stays_clean():
    con = duckdb.connect()
    rows = [
        weather_row(temp="39.0", updated_at="2013-01-01 11:00:00"),
        weather_row(temp="warm", updated_at="2013-01-01 12:00:00"),  # newer, broken
        weather_row(origin="JFK", temp="40.0"),
        weather_row(origin="JFK", temp="41.0", updated_at="2099-01-01 00:00:00"),  # newer, from the future
        weather_row(origin="LGA", temp="42.0"),
        weather_row(origin="LGA", temp="43.0", updated_at="2099-01-01 00:00:00"),
        weather_row(origin="LGA", temp="44.0", updated_at="2013-01-04 00:00:00"),  # a correction after it, within the margin
        weather_row(origin="LGA", time_hour="2013-01-01 11:00:00", updated_at="2013-01-04 00:00:01"),  # just beyond it
    ]
    outcome = validate(con, WEATHER, deliver(con, WEATHER, rows), loaded_at=LOADED)

    assert outcome == Outcome(rows_in=8, rows_clean=3, rows_quarantined=4, duplicates_removed=1)
    assert con.execute("SELECT origin, temp, CAST(updated_at AS VARCHAR) FROM _clean ORDER BY origin").fetchall() == [
        ("EWR", 39.0, "2013-01-01 11:00:00"), ("JFK", 40.0, "2013-01-02 00:00:00"), ("LGA", 44.0, "2013-01-04 00:00:00"),
    ]
    future = (
        "updated_at: stamped more than 1 day after the row was loaded ({} UTC, loaded 2013-01-03 00:00:00): a version "
        "from the future would hide every later correction; fix the source's clock or value"
    )
    assert sorted(con.execute("SELECT record_key, reasons FROM _quarantine").fetchall()) == [
        ("EWR|2013-01-01 10:00:00", ["temp: warm is not a valid DOUBLE"]),
        ("JFK|2013-01-01 10:00:00", [future.format("2099-01-01 00:00:00")]),
        ("LGA|2013-01-01 10:00:00", [future.format("2099-01-01 00:00:00")]),
        ("LGA|2013-01-01 11:00:00", [future.format("2013-01-04 00:00:01")]),
    ]
    # Ranks are among the valid versions only: the LGA 10:00 key has two (the correction first), no broken one.
    assert con.execute(
        "SELECT temp, _rank FROM _checked WHERE origin = 'LGA' AND hour = 5 AND time_hour = '2013-01-01 10:00:00' ORDER BY temp"
    ).fetchall() == [(42.0, 2), (43.0, None), (44.0, 1)]


def test_a_timestamp_with_an_offset_is_converted_to_utc_before_versions_are_compared():
    con = duckdb.connect()
    rows = [
        weather_row(temp="39.0", updated_at="2013-01-01T11:00:00Z"),
        # 15:00 at +05:00 is 10:00 UTC: older, although its digits read later.
        weather_row(temp="30.0", updated_at="2013-01-01 15:00:00+05:00"),
        weather_row(origin="JFK", time_hour="2013-01-01 05:00:00-05:00", updated_at="2013-01-01 07:00:00-0500"),
        # The same observation spelt in UTC, published earlier: one key, whatever the spelling.
        weather_row(origin="JFK", temp="35.0", time_hour="2013-01-01T10:00:00Z", updated_at="2013-01-01 11:30:00"),
    ]
    outcome = validate(con, WEATHER, deliver(con, WEATHER, rows), loaded_at=LOADED)

    assert outcome == Outcome(rows_in=4, rows_clean=2, rows_quarantined=0, duplicates_removed=2)
    assert con.execute("SELECT origin, temp, time_hour, updated_at FROM _clean ORDER BY origin").fetchall() == [
        ("EWR", 39.0, datetime(2013, 1, 1, 10), datetime(2013, 1, 1, 11)),
        ("JFK", 39.02, datetime(2013, 1, 1, 10), datetime(2013, 1, 1, 12)),
    ]


def test_versions_loaded_for_other_days_compete_as_context_but_are_not_counted():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA clean")
    con.execute("CREATE TABLE clean.airlines AS SELECT 'UA' AS carrier")
    moved = dict(flight_date="2013-01-02", day="2", time_hour="2013-01-02 10:00:00")
    rows = [
        flight_row(),  # 2013-01-01, in this run
        flight_row(**moved, dep_delay="30", updated_at="2013-01-01 20:00:00"),  # the flight moved to the next day
        flight_row(flight_id="2013-01-01_UA1_EWR", flight="1"),
        flight_row(flight_id="2013-01-01_UA1_EWR", flight="1", **moved, updated_at="2013-01-01 06:00:00"),  # older
    ]
    incoming = deliver(con, FLIGHTS, rows)
    con.execute("ALTER TABLE incoming ADD COLUMN _context BOOLEAN")
    con.execute("UPDATE incoming SET _context = flight_date <> '2013-01-01', _partition_date = CAST(flight_date AS DATE)")
    outcome = validate(con, FLIGHTS, incoming, loaded_at=LOADED, context="_context")

    assert outcome == Outcome(rows_in=2, rows_clean=1, rows_quarantined=0, duplicates_removed=1)
    assert con.execute("SELECT flight_id, flight_date, dep_delay, _context FROM _clean ORDER BY flight_id").fetchall() == [
        ("2013-01-01_UA1545_EWR", date(2013, 1, 2), 30.0, True),
        ("2013-01-01_UA1_EWR", date(2013, 1, 1), 2.0, False),
    ]
    assert con.execute("SELECT _key, _rank FROM _checked WHERE _context ORDER BY _row").fetchall() == [
        (["2013-01-01_UA1545_EWR"], 1), (["2013-01-01_UA1_EWR"], 2),
    ]
