"""The landing sensor: a backlog as range runs, loads learnt from the event log, redeliveries again."""

from __future__ import annotations

import json
import os
import time
from datetime import date

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from flightops.pipeline import keys_in_groups
from flightops.resources import LandingZoneResource
from flightops.simulated_sources import landing
from tests.platform_harness import Platform, failure_messages

# The code location (assets/, sensors/, flightops.jobs) is imported inside the tests that use it: collecting
# the suite loads no definitions, and a broken definition fails those tests, not the collection.

EXPORTS = dg.AssetKey(["raw", "flights_exports"])
MAX_RANGE_DAYS_SETTING = "FLIGHTOPS_LANDING_MAX_RANGE_DAYS"  # flightops.settings.Settings.landing_max_range_days


def evaluate(platform: Platform, cursor: str | None = None) -> dg.SensorResult | dg.SkipReason:
    from sensors.landing import landing_zone_sensor

    resource = LandingZoneResource(path=str(platform.settings.landing_dir))
    with dg.build_sensor_context(
        instance=platform.instance, cursor=cursor, resources={"landing_zone": resource}
    ) as context:
        return landing_zone_sensor(context)


def day_ranges(result: dg.SensorResult) -> list[tuple[str, str]]:
    """The (first, last) day of each daily-job request, from the tags the daemon launches a range by."""
    return [
        (r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG])
        for r in result.run_requests
        if not r.asset_selection
    ]


def reference_requests(result: dg.SensorResult) -> list[dg.RunRequest]:
    return [r for r in result.run_requests if r.asset_selection]


def rewrite(platform: Platform, day: str) -> None:
    """A redelivery with other content: the export without its last flight."""
    path = landing.export_path(platform.settings.landing_dir, date.fromisoformat(day))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))


def test_a_backlog_on_an_empty_instance_is_one_range_run(platform: Platform):
    from flightops.jobs import REFERENCE_KEYS

    platform.replay("2013-01-05")
    result = evaluate(platform)
    daily = [r for r in result.run_requests if not r.asset_selection]
    assert len(daily) == 1
    assert daily[0].partition_key is None
    assert daily[0].partition_key_range == dg.PartitionKeyRange("2013-01-01", "2013-01-05")
    assert daily[0].tags == {ASSET_PARTITION_RANGE_START_TAG: "2013-01-01", ASSET_PARTITION_RANGE_END_TAG: "2013-01-05"}
    [reference] = reference_requests(result)
    assert set(reference.asset_selection) == set(REFERENCE_KEYS)
    # The same file versions give the same run keys: a re-evaluation does not launch twice.
    assert [r.run_key for r in evaluate(platform).run_requests] == [r.run_key for r in result.run_requests]
    assert len({r.run_key for r in result.run_requests}) == 2
    # Requested days are remembered while their run is in flight: only the newly landed days follow.
    assert len(json.loads(result.cursor)["requested"]) == 5 + 3
    assert evaluate(platform, result.cursor).run_requests == []
    platform.replay("2013-01-07")
    assert day_ranges(later := evaluate(platform, result.cursor)) == [("2013-01-06", "2013-01-07")]
    assert reference_requests(later) == []


def test_the_cap_splits_a_long_backlog(platform: Platform, monkeypatch: pytest.MonkeyPatch):
    platform.replay("2013-01-10")
    monkeypatch.setenv(MAX_RANGE_DAYS_SETTING, "4")
    result = evaluate(platform)
    assert day_ranges(result) == [("2013-01-01", "2013-01-04"), ("2013-01-05", "2013-01-08"), ("2013-01-09", "2013-01-10")]
    assert len({r.run_key for r in result.run_requests}) == 4


def test_a_bad_cap_is_reported_with_the_setting(platform: Platform, monkeypatch: pytest.MonkeyPatch):
    platform.settings.landing_dir.mkdir(parents=True)
    monkeypatch.setenv(MAX_RANGE_DAYS_SETTING, "0")
    with pytest.raises(ValueError, match=f"{MAX_RANGE_DAYS_SETTING}='0' is not a positive whole number"):
        evaluate(platform)


def test_a_missing_landing_folder_is_a_skip_naming_it(platform: Platform):
    result = evaluate(platform)
    assert isinstance(result, dg.SkipReason)
    assert f"The landing folder {platform.settings.landing_dir} does not exist" in result.skip_message


def test_the_requested_range_run_materializes_exactly_its_days(platform: Platform):
    platform.replay("2013-01-03")
    first = evaluate(platform)
    [request] = [r for r in first.run_requests if not r.asset_selection]
    from assets.ingestion import FILE_VERSIONS, file_version
    from flightops.definitions import defs

    # Ingestion and validation of the daily job: the warehouse and predictions layers add dbt's
    # start-up and need a champion model, and take the range from the same tags.
    result = defs.resolve_job_def("daily_job").execute_in_process(
        instance=platform.instance,
        tags=request.tags,
        asset_selection=keys_in_groups("ingestion", "validation"),
        raise_on_error=False,
    )
    assert result.success, failure_messages(result)
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == EXPORTS]
    assert sorted(e.partition for e in events) == days
    assert platform.instance.get_materialized_partitions(EXPORTS) == set(days)
    expected = {d: file_version(landing.export_path(platform.settings.landing_dir, date.fromisoformat(d))) for d in days}
    # Each day's materialization records its own day's file version (not the whole range's).
    assert {e.partition: e.materialization.metadata[FILE_VERSIONS].value for e in events} == {d: {d: expected[d]} for d in days}
    # Loaded: nothing to request, whether the sensor kept its cursor or starts afresh.
    again = evaluate(platform, first.cursor)
    assert again.run_requests == [] and json.loads(again.cursor)["requested"] == {}
    assert evaluate(platform).run_requests == []


def test_loaded_days_come_from_the_event_log_and_only_changed_days_run_again(platform: Platform):
    platform.replay("2013-01-05")
    loaded = platform.run("2013-01-01", "2013-01-05", selection=keys_in_groups("ingestion", "validation"))
    assert loaded.success, failure_messages(loaded)
    # An empty cursor (sensor turned on after `make run`): the event log says everything is loaded.
    result = evaluate(platform)
    assert result.run_requests == []
    assert "All 5 daily exports and 3 reference files" in result.skip_reason.skip_message
    # A copy or a touch keeps the content: not a new version.
    export = landing.export_path(platform.settings.landing_dir, date(2013, 1, 3))
    os.utime(export, (time.time() + 10, time.time() + 10))
    assert evaluate(platform).run_requests == []
    # A redelivery with other content is ingested again, that day only.
    rewrite(platform, "2013-01-03")
    assert [(r.tags, r.asset_selection) for r in evaluate(platform).run_requests] == [
        ({ASSET_PARTITION_RANGE_START_TAG: "2013-01-03", ASSET_PARTITION_RANGE_END_TAG: "2013-01-03"}, None)
    ]
    # New days after a gap of untouched, loaded days: separate ranges, the gap is not ingested.
    platform.replay("2013-01-07")
    assert day_ranges(evaluate(platform)) == [("2013-01-03", "2013-01-03"), ("2013-01-06", "2013-01-07")]
