"""The corrections sensor: a late correction in the operational database reloads its day, once."""

from __future__ import annotations

from datetime import date

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from flightops.pipeline import keys_in_groups
from flightops.resources import SourceDatabaseResource
from flightops.simulated_sources import operational_db
from tests.fault_assertions import assert_ledger_balanced, assert_no_valid_row_lost, clean_versions
from tests.platform_harness import Platform, failure_messages

DAY1, DAY2 = "2013-01-01", "2013-01-02"


def evaluate(platform: Platform, cursor: str | None = None) -> dg.SensorResult:
    from sensors.corrections import opdb_corrections_sensor

    resource = SourceDatabaseResource(url=platform.settings.source_db_url)
    with dg.build_sensor_context(instance=platform.instance, cursor=cursor, resources={"source_db": resource}) as context:
        return opdb_corrections_sensor(context)


def correct_one_flight(platform: Platform, day: date) -> tuple[str, int]:
    """Append a newer version of the day's first flight with dep_delay + 30 (as a source system would)."""
    with operational_db.connect_engine(platform.settings.source_db_url) as engine, engine.begin() as connection:
        [row] = operational_db.latest_versions(connection, day, "dep_delay", differing_from=None, limit=1)
        corrected = {**row, "dep_delay": row["dep_delay"] + 30, "updated_at": "2013-01-03 12:00:00"}
        operational_db.insert_version(connection, corrected)
    return row["flight_id"], corrected["dep_delay"]


def test_a_late_correction_of_a_loaded_day_reloads_that_day_once(platform: Platform):
    platform.replay(DAY2)
    assert evaluate(platform).skip_reason.skip_message == "No day of raw/flights_opdb is loaded yet (per the event log)."
    result = platform.run(DAY1, DAY2, keys_in_groups("ingestion", "validation"))
    assert result.success, failure_messages(result)
    before = clean_versions(platform)

    quiet = evaluate(platform)
    assert quiet.run_requests == []
    assert quiet.skip_reason.skip_message.startswith("The 2 loaded days of the operational database are unchanged")

    flight_id, delay = correct_one_flight(platform, date.fromisoformat(DAY2))
    noticed = evaluate(platform, quiet.cursor)
    assert [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in noticed.run_requests] == [(DAY2, DAY2)]
    assert noticed.run_requests[0].run_key.startswith(f"opdb correction {DAY2}..{DAY2} ")
    # Requested and not loaded yet: the next tick does not ask again.
    assert evaluate(platform, noticed.cursor).run_requests == []

    reload = platform.run(DAY2, DAY2, keys_in_groups("ingestion", "validation"))
    assert reload.success, failure_messages(reload)
    assert platform.query("SELECT dep_delay FROM clean.flights WHERE flight_id = ?", [flight_id]) == [(delay,)]
    [(duplicates,)] = platform.query(
        "SELECT duplicates_removed FROM audit.load_ledger WHERE asset = 'flights' AND partition_date = ?", [DAY2])
    assert duplicates == 1
    assert_ledger_balanced(platform)
    assert_no_valid_row_lost(platform, before)
    # Loaded now: the sensor is quiet again.
    assert evaluate(platform, noticed.cursor).run_requests == []
