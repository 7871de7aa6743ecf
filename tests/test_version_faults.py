"""Row versions that must not push out a valid one: a broken or future-stamped newer version, a
version with a time-zone offset, and a flight whose newest version moved to the next day.

The faults are written as new row versions straight into the real SQLite operational database (as
the source system appends them), then the days are ingested and validated again. One platform is
shared by the module: each test works on its own flights and checks the ledger and that no valid
row was lost (tests/fault_assertions.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta

import dagster as dg
import pytest

from flightops.pipeline import keys_in_groups
from flightops.simulated_sources.operational_db import sqlite_file
from tests.fault_assertions import assert_ledger_balanced, assert_no_valid_row_lost, clean_versions
from tests.platform_harness import Platform, failure_messages, private_platform

DAY1, DAY2, DAY3 = "2013-01-01", "2013-01-02", "2013-01-03"
CLEAN_FLIGHTS = dg.AssetKey(["clean", "flights"])
# Re-validating flights needs only their raw and clean steps (clean/airlines is loaded once).
FLIGHT_STEPS = [dg.AssetKey(["raw", "flights_opdb"]), dg.AssetKey(["raw", "flights_exports"]), CLEAN_FLIGHTS,
                dg.AssetKey(["quarantine", "flights"])]
FUTURE = "2099-01-01T00:00:00"
FUTURE_REASON = "updated_at: stamped more than 1 day after the row was loaded (2099-01-01 00:00:00 UTC, loaded "


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Iterator[Platform]:
    """Three replayed days, the first two ingested and validated."""
    with private_platform(tmp_path_factory.mktemp("versions") / "platform") as platform:
        platform.replay(DAY3)
        result = platform.run(DAY1, DAY2, keys_in_groups("ingestion", "validation"))
        assert result.success, failure_messages(result)
        yield platform


@contextlib.contextmanager
def source_db(platform: Platform) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(sqlite_file(platform.settings.source_db_url))) as db:
        db.row_factory = sqlite3.Row
        with db:
            yield db


def day_flights(platform: Platform, day: str, skip: int, count: int) -> list[dict]:
    """`count` current versions of the day's operational flights that departed, after `skip` of them (flight_id order)."""
    with source_db(platform) as db:
        rows = db.execute(
            "SELECT * FROM flights WHERE row_id IN (SELECT max(row_id) FROM flights GROUP BY flight_id) "
            "AND flight_date = ? AND dep_delay IS NOT NULL ORDER BY flight_id LIMIT ? OFFSET ?",
            [day, count, skip],
        ).fetchall()
    return [dict(row) for row in rows]


def append_version(platform: Platform, row: dict, **changes) -> dict:
    """A new version of `row` in the operational database (the way the source records a change)."""
    version = {name: value for name, value in {**row, **changes}.items() if name != "row_id"}
    with source_db(platform) as db:
        db.execute(f"INSERT INTO flights ({', '.join(version)}) VALUES ({', '.join('?' * len(version))})", list(version.values()))
    return version


def later(timestamp: str, hours: float) -> str:
    return (datetime.fromisoformat(timestamp) + timedelta(hours=hours)).isoformat()


def ledger(platform: Platform, first: str, last: str) -> list[tuple]:
    return platform.query(
        "SELECT CAST(partition_date AS VARCHAR), rows_in, rows_clean, rows_quarantined, duplicates_removed "
        "FROM audit.load_ledger WHERE asset = 'flights' AND partition_date BETWEEN ? AND ? ORDER BY 1",
        [first, last],
    )


def clean_rows(platform: Platform, flight_ids: list[str]) -> dict[str, tuple]:
    rows = platform.query(
        "SELECT flight_id, CAST(flight_date AS VARCHAR), CAST(updated_at AS VARCHAR), dep_delay FROM clean.flights "
        "WHERE flight_id IN (SELECT unnest(?)) ORDER BY flight_id",
        [flight_ids],
    )
    return {flight_id: tuple(rest) for flight_id, *rest in rows}


def revalidate(platform: Platform, first: str, last: str) -> dg.ExecuteInProcessResult:
    """Ingest and validate the flights of first..last again; the blocking checks must pass."""
    result = platform.run(first, last, FLIGHT_STEPS)
    assert result.success, failure_messages(result)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations() if e.asset_key == CLEAN_FLIGHTS}
    assert checks["key_unique"] and checks["rows_accounted"], checks
    return result


def clean_metadata(result: dg.ExecuteInProcessResult) -> dict:
    return next(e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key == CLEAN_FLIGHTS)


def stamp(row: dict) -> str:
    """The clean form of a source's naive updated_at."""
    return row["updated_at"].replace("T", " ")


def test_a_broken_or_future_newer_version_leaves_the_valid_version_clean(loaded: Platform):
    broken, future, corrected, offset = day_flights(loaded, DAY2, skip=0, count=4)
    before = clean_versions(loaded)
    [(_, *counts_before)] = ledger(loaded, DAY2, DAY2)

    append_version(loaded, broken, dep_delay="late", updated_at=later(broken["updated_at"], 1))
    append_version(loaded, future, dep_delay=future["dep_delay"] + 60, updated_at=FUTURE)
    append_version(loaded, corrected, dep_delay=corrected["dep_delay"] + 60, updated_at=FUTURE)
    correction = append_version(loaded, corrected, dep_delay=corrected["dep_delay"] + 7, updated_at=later(corrected["updated_at"], 2))
    # Three hours later on the clock at +05:00 is two hours earlier in UTC: an older version, not a newer one.
    append_version(loaded, offset, dep_delay=offset["dep_delay"] + 1, updated_at=later(offset["updated_at"], 3) + "+05:00")
    result = revalidate(loaded, DAY2, DAY2)

    ids = [row["flight_id"] for row in (broken, future, corrected, offset)]
    assert clean_rows(loaded, ids) == {
        broken["flight_id"]: (DAY2, stamp(broken), broken["dep_delay"]),
        future["flight_id"]: (DAY2, stamp(future), future["dep_delay"]),
        corrected["flight_id"]: (DAY2, stamp(correction), corrected["dep_delay"] + 7),  # the 2099 version hid nothing
        offset["flight_id"]: (DAY2, stamp(offset), offset["dep_delay"]),
    }
    reasons = dict(loaded.query(
        "SELECT record_key, reasons FROM quarantine.flights WHERE record_key IN (SELECT unnest(?))", [ids]
    ))
    assert set(reasons) == {broken["flight_id"], future["flight_id"], corrected["flight_id"]}
    assert reasons[broken["flight_id"]] == ["dep_delay: late is not a valid DOUBLE"]
    assert all(len(reasons[key]) == 1 and reasons[key][0].startswith(FUTURE_REASON) for key in ids[1:3])
    # Five versions came in: three quarantined, two superseded (the corrected flight's first, the offset one).
    rows_in, clean, quarantined, duplicates = counts_before
    assert ledger(loaded, DAY2, DAY2) == [(DAY2, rows_in + 5, clean, quarantined + 3, duplicates + 2)]
    assert clean_metadata(result)["other_days_updated"].value == []
    assert_ledger_balanced(loaded)
    assert_no_valid_row_lost(loaded, before)


def test_a_flight_moved_to_the_next_day_ends_in_clean_once_whatever_the_window(loaded: Platform):
    [flight] = day_flights(loaded, DAY2, skip=10, count=1)
    key = flight["flight_id"]
    before = clean_versions(loaded)
    [day2_before] = ledger(loaded, DAY2, DAY2)
    next_hour = later(flight["time_hour"].removesuffix("Z"), 24) + "Z"
    moved = append_version(
        loaded, flight, flight_date=DAY3, day=3, time_hour=next_hour, dep_delay=flight["dep_delay"] + 10,
        updated_at=later(flight["updated_at"], 1),
    )

    # Day by day: the next day's run supersedes the version clean in the day before and recounts that day.
    result = revalidate(loaded, DAY3, DAY3)
    assert clean_rows(loaded, [key]) == {key: (DAY3, stamp(moved), flight["dep_delay"] + 10)}
    assert clean_metadata(result)["other_days_updated"].value == [DAY2]
    day2, day3 = ledger(loaded, DAY2, DAY3)
    assert day2 == (DAY2, day2_before[1], day2_before[2] - 1, day2_before[3], day2_before[4] + 1)
    assert_ledger_balanced(loaded)
    assert_no_valid_row_lost(loaded, before)
    state = (clean_versions(loaded), ledger(loaded, DAY2, DAY3))

    # Both days in one run, then the earlier day again on its own: the same clean rows and ledger.
    revalidate(loaded, DAY2, DAY3)
    assert (clean_versions(loaded), ledger(loaded, DAY2, DAY3)) == state
    assert clean_metadata(revalidate(loaded, DAY2, DAY2))["other_days_updated"].value == [DAY3]
    assert (clean_versions(loaded), ledger(loaded, DAY2, DAY3)) == state

    # The moved version is broken at the source afterwards: the flight goes back to its valid version.
    with source_db(loaded) as db:
        db.execute("UPDATE flights SET dep_delay = 'late' WHERE flight_id = ? AND flight_date = ?", [key, DAY3])
    revalidate(loaded, DAY3, DAY3)
    assert clean_rows(loaded, [key]) == {key: (DAY2, stamp(flight), flight["dep_delay"])}
    assert loaded.query("SELECT reasons FROM quarantine.flights WHERE record_key = ?", [key]) == [
        (["dep_delay: late is not a valid DOUBLE"],)]
    assert ledger(loaded, DAY2, DAY3) == [day2_before, (DAY3, day3[1], day3[2] - 1, day3[3] + 1, day3[4])]
    assert_ledger_balanced(loaded)
    assert_no_valid_row_lost(loaded, before)
