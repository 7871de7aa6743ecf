"""Every injected fault ends in quarantine (with its reason) or a clear error, and nothing is lost."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pandas as pd
import pytest

from flightops.pipeline import keys_in_groups
from flightops.simulated_sources.dataset import data_dir
from flightops.simulated_sources.faults import inject
from flightops.weather_client import WeatherApiError, fetch_observations
from tests.platform_harness import Platform, failure_messages

DAY1, DAY2 = "2013-01-01", "2013-01-02"
DAY2_DATE = date.fromisoformat(DAY2)


def ingest_and_clean() -> list[dg.AssetKey]:
    """The ingestion and validation assets, resolved when a test runs (a broken definition fails the test)."""
    return keys_in_groups("ingestion", "validation")


@pytest.fixture
def loaded(platform: Platform) -> Platform:
    """Two replayed days; the first already validated, so faults on the second hit a live warehouse."""
    platform.replay(DAY2)
    result = platform.run(DAY1, DAY1, ingest_and_clean())
    assert result.success, failure_messages(result)
    return platform


def day2_counts(platform: Platform, source: str) -> tuple[int, int, int, int]:
    return platform.query(
        "SELECT rows_in, rows_clean, rows_quarantined, duplicates_removed FROM audit.load_ledger "
        "WHERE asset = ? AND partition_date = ?",
        [source, DAY2],
    )[0]


def raw_rows(platform: Platform, tables: list[str]) -> int:
    return sum(platform.query(f"SELECT count(*) FROM raw.{t} WHERE _partition_date = ?", [DAY2])[0][0] for t in tables)


def quarantined(platform: Platform, source: str) -> list[tuple[str, list[str], str]]:
    return platform.query(
        f"SELECT record_key, reasons, record FROM quarantine.{source} WHERE _partition_date = ? ORDER BY record_key", [DAY2]
    )


@pytest.mark.parametrize(
    ("fault", "target", "reason"),
    [
        ("null-required", "opdb", "carrier: required value is missing"),
        ("out-of-range", "export", "distance: -100 is below 1"),
        ("unknown-fk", "opdb", "carrier: ZZ is unknown in clean.airlines.carrier"),
    ],
)
def test_row_faults_go_to_quarantine_with_their_reason(loaded: Platform, fault, target, reason):
    change = inject(loaded.settings, fault, day=DAY2_DATE, count=3, target=target)
    result = loaded.run(DAY2, DAY2, ingest_and_clean())
    assert result.success, failure_messages(result)
    rows = quarantined(loaded, "flights")
    assert len(rows) == 3
    assert all(reason in reasons for _, reasons, _ in rows), rows
    # The quarantined keys are exactly the rows the fault changed, and the original values are kept.
    assert {key for key, _, _ in rows} == {row["flight_id"] for row in change["rows"]}
    rows_in, clean, quarantine, duplicates = day2_counts(loaded, "flights")
    assert rows_in == raw_rows(loaded, ["flights_opdb", "flights_exports"])
    assert (clean, quarantine, duplicates) == (rows_in - 3, 3, 0)
    assert loaded.query("SELECT count(*) FROM clean.flights WHERE flight_date = ?", [DAY2])[0][0] == clean


def test_duplicates_are_removed_and_the_newest_version_wins(loaded: Platform):
    change = inject(loaded.settings, "duplicates", day=DAY2_DATE, count=4, target="opdb")
    result = loaded.run(DAY2, DAY2, ingest_and_clean())
    assert result.success, failure_messages(result)
    rows_in, clean, quarantine, duplicates = day2_counts(loaded, "flights")
    assert (duplicates, quarantine) == (4, 0)
    assert rows_in == clean + duplicates
    assert loaded.query("SELECT count(*) - count(DISTINCT flight_id) FROM clean.flights")[0][0] == 0
    # Both versions stay in raw; the clean row is the newer one (updated_at + 1 h, dep_delay + 5).
    versions = loaded.query(
        "SELECT flight_id, CAST(dep_delay AS DOUBLE), CAST(updated_at AS TIMESTAMP) FROM raw.flights_opdb "
        "WHERE flight_id IN (SELECT unnest(?)) ORDER BY flight_id, updated_at",
        [[row["flight_id"] for row in change["rows"]]],
    )
    assert len(versions) == 8
    kept = dict(loaded.query(
        "SELECT flight_id, dep_delay FROM clean.flights WHERE flight_id IN (SELECT unnest(?))", [[row["flight_id"] for row in change["rows"]]]
    ))
    for older, newer in zip(versions[0::2], versions[1::2]):
        assert older[0] == newer[0] and newer[2] > older[2]
        assert kept[newer[0]] == newer[1]
        if older[1] is not None:
            assert newer[1] == older[1] + 5


def test_weather_faults_are_quarantined_and_optional_fields_stay_null(loaded: Platform):
    inject(loaded.settings, "out-of-range", day=DAY2_DATE, count=2, target="weather")
    result = loaded.run(DAY2, DAY2, ingest_and_clean())
    assert result.success, failure_messages(result)
    rows = quarantined(loaded, "weather")
    assert len(rows) == 2 and all("humid: 250" in " ".join(reasons) for _, reasons, _ in rows)
    rows_in, clean, quarantine, _ = day2_counts(loaded, "weather")
    assert (rows_in, quarantine) == (clean + 2, 2)
    # wind_gust is optional and mostly missing in the real data: kept as NULL, never imputed.
    nulls, total = loaded.query("SELECT count(*) FILTER (WHERE wind_gust IS NULL), count(*) FROM clean.weather")[0]
    assert 0 < nulls < total


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("rename-column", ["missing column(s) dep_delay", "unexpected column(s) dep_delay_minutes"]),
        ("drop-column", ["missing column(s) dep_delay"]),
        ("truncate-file", ["is truncated"]),
    ],
)
def test_schema_breaks_fail_the_partition_naming_file_and_column(loaded: Platform, fault, expected):
    clean_day1 = loaded.query("SELECT count(*) FROM clean.flights WHERE flight_date = ?", [DAY1])[0][0]
    inject(loaded.settings, fault, day=DAY2_DATE, target="export")
    result = loaded.run(DAY2, DAY2, ingest_and_clean())
    assert not result.success
    message = failure_messages(result)
    assert "flights_2013-01-02.csv" in message
    for text in expected:
        assert text in message
    # Nothing of the broken delivery was written, and earlier partitions are untouched.
    assert loaded.query("SELECT count(*) FROM raw.flights_exports WHERE _partition_date = ?", [DAY2])[0][0] == 0
    assert loaded.query("SELECT count(*) FROM clean.flights WHERE flight_date = ?", [DAY2])[0][0] == 0
    assert loaded.query("SELECT count(*) FROM clean.flights WHERE flight_date = ?", [DAY1])[0][0] == clean_day1


def test_http_500s_are_retried_until_the_api_answers(loaded: Platform):
    inject(loaded.settings, "http-500", count=2)
    result = loaded.run(DAY2, DAY2, [dg.AssetKey(["raw", "weather"])])
    assert result.success, failure_messages(result)
    assert loaded.query("SELECT count(*) FROM raw.weather WHERE _partition_date = ?", [DAY2])[0][0] > 0


def test_the_client_gives_up_with_a_message_naming_endpoint_and_partition(loaded: Platform):
    inject(loaded.settings, "http-500", count=3)
    with pytest.raises(WeatherApiError) as error:
        fetch_observations(
            loaded.settings.weather_api_url, date(2013, 1, 2), date(2013, 1, 2),
            page_size=100, timeout_seconds=5, max_attempts=3, backoff_seconds=0.01,
        )
    assert "/v1/observations for partition 2013-01-02..2013-01-02 failed after 3 attempts" in str(error.value)
    assert "HTTP 500" in str(error.value)


def test_a_slow_response_times_out_and_is_retried(loaded: Platform):
    inject(loaded.settings, "slow", count=1, seconds=2.0)
    rows = fetch_observations(
        loaded.settings.weather_api_url, date(2013, 1, 2), date(2013, 1, 2),
        page_size=1000, timeout_seconds=0.5, max_attempts=3, backoff_seconds=0.01,
    )
    weather = pd.read_csv(data_dir() / "weather.csv")
    # The first request outlived the 0.5 s time-out; only a retry can have delivered the day in full.
    assert len(rows) == len(weather[(weather.month == 1) & (weather.day == 2)])
