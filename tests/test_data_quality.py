"""Every injected fault ends in quarantine (with its reason) or a clear error, and nothing is lost;
incomplete weather fails a blocking check; quarantine, row counts and typed columns show in Dagster."""

from __future__ import annotations

import sqlite3
from datetime import date

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets.cleaning import HOURS_PER_DAY, MIN_HOURLY_OBSERVATIONS, NO_WEATHER_EXPECTED, _hourly_coverage, clean_assets
from assets.ingestion import raw_assets
from flightops.contracts import ORIGIN_AIRPORTS, WEATHER
from flightops.pipeline import check_lines
from flightops.pipeline import keys_in_groups
from flightops.simulated_sources import weather_store
from flightops.simulated_sources.dataset import data_dir
from flightops.simulated_sources.faults import inject
from flightops.weather_client import WeatherApiError, fetch_observations
from tests.platform_harness import Platform, failure_messages

DAY1, DAY2 = "2013-01-01", "2013-01-02"
DAY2_DATE = date.fromisoformat(DAY2)
CLEAN_WEATHER, QUARANTINE_WEATHER = dg.AssetKey(["clean", "weather"]), dg.AssetKey(["quarantine", "weather"])
# What dbt reads from clean.weather: downstream of the coverage check.
STG_WEATHER = dg.AssetKey(["staging", "stg_weather"])


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


def materialization(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    return next(e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key == key)


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
    # The quarantine is an asset of its own: its rows, this run's reasons, how to look at it.
    meta = materialization(result, QUARANTINE_WEATHER)
    assert meta["dagster/row_count"].value == 2 == meta["rows_quarantined_in_run"].value
    assert meta["reasons"].value == {"humid: 250.0 is above 100": 2}
    assert meta["reasons_by_column"].value == {"humid": 2}
    assert "FROM quarantine.weather" in meta["inspect"].value
    columns = {c.name: c.type for c in meta["dagster/column_schema"].schema.columns}
    assert (columns["reasons"], columns["record"], columns["_partition_date"]) == ("VARCHAR[]", "JSON", "DATE")


def test_raw_and_clean_tables_show_row_counts_and_typed_columns(platform: Platform):
    platform.replay(DAY1)
    result = platform.run(DAY1, DAY1, [dg.AssetKey(["raw", "weather"]), CLEAN_WEATHER, dg.AssetKey(["raw", "flights_opdb"])])
    assert result.success, failure_messages(result)
    loaded = platform
    for layer, typed in (("raw", False), ("clean", True)):
        meta = materialization(result, dg.AssetKey([layer, "weather"]))
        assert meta["dagster/row_count"].value == loaded.query(f"SELECT count(*) FROM {layer}.weather")[0][0] > 0
        assert meta["dagster/table_name"].value == f"warehouse.{layer}.weather"
        columns = {c.name: c for c in meta["dagster/column_schema"].schema.columns}
        stored = dict(loaded.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = 'weather'", [layer]
        ))
        assert {name: c.type for name, c in columns.items()} == stored
        assert all(columns[c.name].description == c.description for c in WEATHER.columns)
    # raw keeps text as delivered; clean has the contract's types and rules.
    assert stored["temp"] == "DOUBLE" and stored["obs_date"] == "DATE"
    assert columns["humid"].constraints.other == ["in [0, 100]"] and columns["origin"].constraints.nullable is False
    flights = {c.name: c.type for c in materialization(result, dg.AssetKey(["raw", "flights_opdb"]))["dagster/column_schema"].schema.columns}
    assert flights["dep_delay"] == "VARCHAR" and flights["_partition_date"] == "DATE"


def test_missing_weather_hours_fail_the_blocking_coverage_check(platform: Platform):
    """A source that serves part of a day (here: JFK's observations after 05:00 removed) stops the run at clean/weather."""
    platform.replay(DAY1)
    with sqlite3.connect(weather_store.store_path(platform.settings.source_state_dir)) as store:
        removed = store.execute("DELETE FROM observations WHERE obs_date = ? AND origin = 'JFK' AND hour > 5", [DAY1]).rowcount
    kept = len(package_day(DAY1).query("origin == 'JFK'")) - removed
    assert 0 < kept < MIN_HOURLY_OBSERVATIONS
    result = platform.run(DAY1, DAY1, [dg.AssetKey(["raw", "weather"]), CLEAN_WEATHER, QUARANTINE_WEATHER, STG_WEATHER])
    assert not result.success
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "hourly_coverage")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["short"].value == [{"day": DAY1, "origin": "JFK", "clean": kept, "delivered": kept}]
    assert check.metadata["short_day_airports"].value == 1
    assert check.metadata["minimum_per_day_and_airport"].value == MIN_HOURLY_OBSERVATIONS
    assert check.description.startswith(
        f"1 day/airport(s) of {DAY1}..{DAY1} have fewer than {MIN_HOURLY_OBSERVATIONS} of {HOURS_PER_DAY} hourly "
        f"observations in clean.weather: JFK {DAY1}: {kept} ({kept} delivered)."
    )
    assert "blocking asset check failed" in failure_messages(result) and "hourly_coverage" in failure_messages(result)
    # The run's summary (what `flightops run` prints) names the failed check and what it found.
    summary = check_lines(result)
    assert summary[0].startswith("asset checks: 1 of ") and summary[0].endswith(" FAILED:")
    assert summary[1].startswith("  clean/weather hourly_coverage (ERROR, blocking): ") and f"JFK {DAY1}" in summary[1]
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert CLEAN_WEATHER in materialized and STG_WEATHER not in materialized


def package_day(day: str) -> pd.DataFrame:
    weather = pd.read_csv(data_dir() / "weather.csv")
    return weather[pd.to_datetime(weather[["year", "month", "day"]]).dt.strftime("%Y-%m-%d") == day]


@pytest.mark.unit
def test_the_real_2013_weather_passes_the_coverage_threshold():
    """The threshold stated in the check holds for the data set: every day/airport has enough hours but the exempt days."""
    weather = pd.read_csv(data_dir() / "weather.csv")
    weather["day_of_year"] = pd.to_datetime(weather[["year", "month", "day"]]).dt.date
    counts = weather.groupby(["day_of_year", "origin"]).size()
    every = pd.MultiIndex.from_product([pd.date_range("2013-01-01", "2013-12-31").date, ORIGIN_AIRPORTS])
    counts = counts.reindex(every, fill_value=0)
    exempt = counts.index.get_level_values(0).isin(list(NO_WEATHER_EXPECTED))
    assert (counts[exempt] == 0).all()
    assert counts[~exempt].min() == 19 >= MIN_HOURLY_OBSERVATIONS  # 2013-12-30: the data ends at 18:00 local
    assert counts[~exempt].max() == HOURS_PER_DAY


@pytest.mark.unit
def test_coverage_counts_each_day_and_airport_against_the_threshold():
    """At the threshold passes, one under fails, a day without any row fails per airport, the exempt day never does."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA clean")
    con.execute("CREATE TABLE clean.weather (origin VARCHAR, obs_date DATE, hour INTEGER)")
    con.execute("CREATE TEMP TABLE _incoming (origin VARCHAR, _partition_date DATE)")
    rows = [("EWR", "2013-12-29", h) for h in range(MIN_HOURLY_OBSERVATIONS)]
    rows += [(o, "2013-12-29", h) for o in ("JFK", "LGA") for h in range(HOURS_PER_DAY)]
    rows += [("LGA", "2013-12-30", h) for h in range(MIN_HOURLY_OBSERVATIONS - 1)]
    con.executemany("INSERT INTO clean.weather VALUES (?, ?, ?)", rows)
    con.execute("INSERT INTO _incoming SELECT origin, obs_date FROM clean.weather")
    result = _hourly_coverage(con, (date(2013, 12, 29), date(2013, 12, 31)))
    assert not result.passed
    short = result.metadata["short"].value
    assert short == [
        {"day": "2013-12-30", "origin": "EWR", "clean": 0, "delivered": 0},
        {"day": "2013-12-30", "origin": "JFK", "clean": 0, "delivered": 0},
        {"day": "2013-12-30", "origin": "LGA", "clean": MIN_HOURLY_OBSERVATIONS - 1, "delivered": MIN_HOURLY_OBSERVATIONS - 1},
    ]
    assert result.metadata["exempt_days"].value == {"2013-12-31": NO_WEATHER_EXPECTED[date(2013, 12, 31)]}
    assert result.metadata["days_checked"].value == 2
    assert "quarantine/weather" in result.description and "re-run" in result.description


@pytest.mark.unit
def test_every_check_spec_says_what_it_checks():
    specs = [spec for asset in [*raw_assets, *clean_assets] for spec in asset.check_specs]
    assert {spec.name for spec in specs} == {"key_unique", "rows_accounted", "quarantine_rate", "fresh", "hourly_coverage"}
    for spec in specs:
        assert spec.description and len(spec.description) > 60, spec.key
    coverage = next(spec for spec in specs if spec.name == "hourly_coverage")
    assert coverage.asset_key == CLEAN_WEATHER and coverage.blocking
    assert f"at least {MIN_HOURLY_OBSERVATIONS} of the {HOURS_PER_DAY} hourly observations" in coverage.description


@pytest.mark.unit
def test_each_quarantine_table_is_an_asset_beside_its_clean_table():
    for asset in clean_assets:
        clean_key = next(key for key in asset.keys if key.path[0] == "clean")
        quarantine_key = dg.AssetKey(["quarantine", clean_key.path[1]])
        assert asset.keys == {clean_key, quarantine_key}
        description = asset.specs_by_key[quarantine_key].description
        assert f"SELECT _partition_date, record_key, reasons, record FROM quarantine.{clean_key.path[1]}" in description


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
