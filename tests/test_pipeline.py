"""The whole graph on real days: counts match the data set, dbt tests pass, re-runs are
idempotent, and features are point-in-time correct (no leakage)."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pytest

from flightops.pipeline import DATA_LAYERS, keys_in_groups
from flightops.simulated_sources.dataset import data_dir
from tests.platform_harness import Platform, failure_messages, private_platform

FIRST, LAST, LATER = "2013-01-01", "2013-01-05", "2013-01-07"


def package_flights(first: str, last: str) -> pd.DataFrame:
    flights = pd.read_csv(data_dir() / "flights.csv.zip")
    day = pd.to_datetime(flights[["year", "month", "day"]])
    return flights[(day >= first) & (day <= last)]


def table_digest(platform: Platform, table: str, where: str = "") -> list[tuple]:
    """The table's rows without per-load metadata (batch, time, arrival order), sorted."""
    columns = [
        name for (name,) in platform.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = ? "
            "AND column_name NOT IN ('_batch_id', '_loaded_at', '_row', 'batch_id', '_quarantined_at') ORDER BY ordinal_position",
            [table],
        )
    ]
    quoted = ", ".join(f'"{c}"' for c in columns)
    return platform.query(f"SELECT {quoted} FROM {table} {where} ORDER BY ALL")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[tuple[Platform, dg.ExecuteInProcessResult]]:
    with private_platform(tmp_path_factory.mktemp("pipeline")) as platform:
        platform.replay(LATER)
        result = platform.run(FIRST, LAST, keys_in_groups(*DATA_LAYERS))
        assert result.success, failure_messages(result)
        yield platform, result


def test_every_flight_of_the_window_reaches_the_fact_table(built):
    platform, _ = built
    expected = package_flights(FIRST, LAST)
    assert platform.query("SELECT count(*) FROM clean.flights")[0][0] == len(expected)
    assert platform.query("SELECT count(*) FROM marts.fct_flights")[0][0] == len(expected)
    cancelled = int(expected["dep_time"].isna().sum())
    assert platform.query("SELECT count(*) FROM marts.fct_flights WHERE is_cancelled")[0][0] == cancelled
    delayed = int((expected["arr_delay"] > 15).sum())
    assert platform.query("SELECT count(*) FROM marts.fct_flights WHERE is_delayed_15")[0][0] == delayed


def test_row_equation_is_recorded_per_day_and_checked(built):
    platform, result = built
    ledger = platform.query(
        "SELECT partition_date, rows_in, rows_clean, rows_quarantined, duplicates_removed FROM audit.load_ledger "
        "WHERE asset = 'flights' ORDER BY partition_date"
    )
    assert [str(row[0]) for row in ledger] == [str(d.date()) for d in pd.date_range(FIRST, LAST)]
    expected = package_flights(FIRST, LAST)
    assert sum(row[1] for row in ledger) == len(expected)
    assert all(rows_in == clean + quarantined + duplicates for _, rows_in, clean, quarantined, duplicates in ledger)
    materialization = next(
        e.materialization for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["clean", "flights"])
    )
    assert materialization.metadata["rows_in"].value == len(expected)
    assert materialization.metadata["rows_balanced"].value is True


def test_every_asset_check_and_dbt_test_passes(built):
    _, result = built
    evaluations = result.get_asset_check_evaluations()
    names = {e.check_name for e in evaluations}
    # Our own checks and dbt's generic and singular tests all ran in this one run.
    assert {"key_unique", "rows_accounted", "quarantine_rate", "fresh"} <= names
    assert any(name.startswith("unique_") for name in names)
    assert any(name.startswith("relationships_") for name in names)
    assert any(name.startswith("accepted_values_") for name in names)
    failed = sorted(f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed)
    # `fresh` is about the latest day at the source (LATER), which this window stops short of.
    assert failed == ["clean/flights:fresh"]


def test_cancelled_flights_are_excluded_from_features_and_counted(built):
    platform, result = built
    expected = package_flights(FIRST, LAST)
    cancelled = int(expected["dep_time"].isna().sum())
    assert platform.query("SELECT count(*) FROM features.flight_features")[0][0] == len(expected) - cancelled
    meta = next(
        e.materialization.metadata for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["features", "flight_features"])
    )
    assert meta["cancelled_excluded"].value == cancelled
    labelled = int(expected["arr_delay"].notna().sum())
    assert platform.query("SELECT count(*) FROM features.flight_labels")[0][0] == labelled
    # The label matches the data set's own arrival delay, flight by flight.
    positives = platform.query("SELECT count(*) FROM features.flight_labels WHERE is_delayed")[0][0]
    assert positives == int((expected["arr_delay"] > 15).sum())


def test_rematerializing_a_partition_is_idempotent(built):
    platform, _ = built
    tables = ["raw.flights_opdb", "raw.flights_exports", "raw.weather", "clean.flights", "clean.weather",
              "marts.fct_flights", "marts.mart_daily_delays", "features.flight_features", "features.flight_labels"]
    before = {t: table_digest(platform, t) for t in tables}
    result = platform.run("2013-01-03", "2013-01-03", keys_in_groups(*DATA_LAYERS))
    assert result.success, failure_messages(result)
    after = {t: table_digest(platform, t) for t in tables}
    for table in tables:
        assert after[table] == before[table], f"{table} changed when partition 2013-01-03 was re-materialized"
    assert platform.query("SELECT count(*) FROM audit.load_ledger WHERE asset = 'flights' AND partition_date = '2013-01-03'")[0][0] == 1


def test_appending_later_days_changes_no_feature_of_an_earlier_flight(built):
    platform, _ = built
    earlier = f"WHERE flight_date <= DATE '{LAST}'"
    before = table_digest(platform, "features.flight_features", earlier)
    result = platform.run("2013-01-06", LATER, keys_in_groups(*DATA_LAYERS))
    assert result.success, failure_messages(result)
    # Recompute the earlier days now that later flights exist in the warehouse.
    result = platform.run(FIRST, LAST, keys_in_groups(*DATA_LAYERS))
    assert result.success, failure_messages(result)
    assert table_digest(platform, "features.flight_features", earlier) == before
    # And the later days did get history from the earlier ones (the as-of join works).
    assert platform.query(
        "SELECT min(route_prior_flights) > 0 FROM features.flight_features "
        "WHERE flight_date = DATE '2013-01-07' AND carrier_prior_flights > 0"
    )[0][0]
    # Nothing is known before the first loaded day: its first flights have no history at all, and
    # its later ones only arrivals known by their prediction time.
    first_day_history = platform.query(
        "SELECT min(route_prior_flights), min(carrier_prior_flights), max(carrier_prior_flights) "
        f"FROM features.flight_features WHERE flight_date = DATE '{FIRST}'"
    )[0]
    first_day_flights = platform.query(f"SELECT count(*) FROM features.flight_features WHERE flight_date = DATE '{FIRST}'")[0][0]
    assert first_day_history[:2] == (0, 0) and first_day_history[2] < first_day_flights
