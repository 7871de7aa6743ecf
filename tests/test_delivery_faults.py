"""Deliveries that look fine but are not: an empty or much smaller redelivery of a loaded day is
refused unless the run confirms it, and export files with encoding or header anomalies load (a
byte-order mark, spaces around names), quarantine their bad lines, or fail naming file and line.

One platform for the module: two days loaded, then day 2's sources are broken and restored per test.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets.ingestion import MIN_REDELIVERED_SHARE, _smaller_redeliveries, check_export, gathered, stage
from flightops.contracts import AIRLINES, FLIGHTS
from flightops.pipeline import keys_in_groups, raw_load_config
from flightops.simulated_sources import landing, weather_store
from flightops.validation import ContractViolation
from tests.fault_assertions import assert_ledger_balanced, assert_no_valid_row_lost, clean_versions
from tests.platform_harness import Platform, failure_messages, private_platform

DAY1, DAY2 = "2013-01-01", "2013-01-02"
RAW_EXPORTS = dg.AssetKey(["raw", "flights_exports"])


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Two replayed days, ingested and validated."""
    with private_platform(tmp_path_factory.mktemp("delivery") / "platform") as platform:
        platform.replay(DAY2)
        result = platform.run(DAY1, DAY2, keys_in_groups("ingestion", "validation"))
        assert result.success, failure_messages(result)
        yield platform


@pytest.fixture
def export(loaded: Platform) -> Iterator[Path]:
    """Day 2's export file, restored after the test."""
    path = landing.export_path(loaded.settings.landing_dir, date.fromisoformat(DAY2))
    original = path.read_bytes()
    yield path
    path.write_bytes(original)


def count(platform: Platform, table: str, day: str = DAY2) -> int:
    column = "flight_date" if table.startswith("clean.") else "_partition_date"
    return platform.query(f"SELECT count(*) FROM {table} WHERE {column} = ?", [day])[0][0]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_an_empty_export_is_refused_and_the_loaded_day_stays(loaded: Platform, export: Path):
    before = clean_versions(loaded)
    raw_before, clean_before = count(loaded, "raw.flights_exports"), count(loaded, "clean.flights")
    assert raw_before > 100
    export.write_text(lines(export)[0])  # the header only
    result = loaded.run(DAY2, DAY2, keys_in_groups("ingestion", "validation"))
    assert not result.success
    message = failure_messages(result)
    assert f"Refused a smaller redelivery into raw.flights_exports (run {result.run_id})" in message
    assert f"{DAY2}: export file {export} delivered 0 row(s) where {raw_before} are loaded" in message
    assert "nothing was written" in message
    assert "`flightops run --from DAY --until DAY --accept-smaller-delivery`" in message
    assert "ops: {raw__flights_exports: {config: {accept_smaller_delivery: true}}}" in message
    assert (count(loaded, "raw.flights_exports"), count(loaded, "clean.flights")) == (raw_before, clean_before)
    assert_ledger_balanced(loaded)
    assert_no_valid_row_lost(loaded, before)
    # The UI's partition status shows the day failed for what the run planned but did not write, and only that
    # (the run stored one planned event per asset; flightops.run_guard.mark_unwritten_days_failed adds the days).
    assert failed_days(loaded, RAW_EXPORTS) == [DAY2]
    assert failed_days(loaded, dg.AssetKey(["clean", "flights"])) == [DAY2]
    assert failed_days(loaded, dg.AssetKey(["raw", "flights_opdb"])) == []


def failed_days(platform: Platform, key: dg.AssetKey) -> list[str]:
    """The days Dagster's partition status (what the UI colours red) holds failed for `key`."""
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    from flightops.partitions import DAILY

    status = get_and_update_asset_status_cache_value(platform.instance, key, DAILY)
    return sorted(status.deserialize_failed_partition_subsets(DAILY).get_partition_keys())


def test_an_empty_weather_answer_is_refused(loaded: Platform):
    before = clean_versions(loaded, "weather")
    loaded_rows = count(loaded, "raw.weather")
    store = weather_store.store_path(loaded.settings.source_state_dir)
    with sqlite3.connect(store) as con:
        saved = con.execute("SELECT * FROM observations WHERE obs_date = ?", [DAY2]).fetchall()
        con.execute("DELETE FROM observations WHERE obs_date = ?", [DAY2])
    try:
        result = loaded.run(DAY2, DAY2, [dg.AssetKey(["raw", "weather"])])
    finally:
        with sqlite3.connect(store) as con:
            con.executemany(f"INSERT INTO observations VALUES ({', '.join('?' * len(saved[0]))})", saved)
    assert not result.success
    message = failure_messages(result)
    url = loaded.settings.weather_api_url
    assert f"{DAY2}: the weather API {url}/v1/observations delivered 0 row(s) where {loaded_rows} are loaded" in message
    assert "raw__weather" in message
    assert count(loaded, "raw.weather") == loaded_rows == len(saved) == 72
    assert_ledger_balanced(loaded, "weather")
    assert_no_valid_row_lost(loaded, before, "weather")


def test_bad_lines_of_an_export_are_quarantined_and_header_quirks_load(loaded: Platform, export: Path):
    """BOM, spaces around a name, a line with a surplus value, one short of a value, a blank line."""
    before = clean_versions(loaded)
    raw_before, clean_before = count(loaded, "raw.flights_exports"), count(loaded, "clean.flights")
    text = lines(export)
    header = text[0].split(",")
    surplus, short = next(csv.reader([text[5]])), next(csv.reader([text[9]]))
    tail = header.index("tailnum")
    surplus[tail] = surplus[tail][:2] + "," + surplus[tail][2:]  # an unquoted comma inside a value
    del short[header.index("dep_delay")]
    text[0] = "\ufeff" + text[0].replace("dep_delay", " dep_delay ")
    text[5], text[9] = ",".join(surplus) + "\n", ",".join(short) + "\n"
    text.insert(12, "\n")
    export.write_text("".join(text))
    result = loaded.run(DAY2, DAY2, keys_in_groups("ingestion", "validation"))
    assert result.success, failure_messages(result)
    meta = next(e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key == RAW_EXPORTS)
    assert meta["misshapen_lines"].value == 3
    assert count(loaded, "raw.flights_exports") == raw_before + 1  # the blank line is a row too: nothing dropped
    keys = {surplus[0], short[0]}
    quarantined = dict(loaded.query(
        "SELECT record_key, reasons FROM quarantine.flights WHERE _partition_date = ?", [DAY2]
    ))
    assert set(quarantined) == keys | {"NULL"}
    # Laid out by position: the short line's last column is empty, the long line's holds a comma.
    assert "updated_at: required value is missing" in quarantined[short[0]]
    assert any("is not a valid TIMESTAMP" in r for r in quarantined[surplus[0]])
    assert count(loaded, "clean.flights") == clean_before - 2
    assert_ledger_balanced(loaded)
    assert_no_valid_row_lost(loaded, before, broken=keys)


def test_an_export_not_in_utf8_fails_naming_file_and_line(loaded: Platform, export: Path):
    raw_before = count(loaded, "raw.flights_exports")
    data = export.read_bytes().split(b"\n")
    data[7] = data[7].replace(b",", b",\xe9", 1)  # latin-1 e-acute
    export.write_bytes(b"\n".join(data))
    result = loaded.run(DAY2, DAY2, [RAW_EXPORTS])
    assert not result.success
    message = failure_messages(result)
    assert f"Export file {export} is not UTF-8: line 8 has the byte(s) e9" in message
    assert "iconv -f latin1 -t utf-8" in message
    assert count(loaded, "raw.flights_exports") == raw_before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda h: h.replace("dep_delay", "_row"), "missing column(s) dep_delay; column(s) _row named like the load columns"),
        (lambda h: h.replace("dep_delay", "arr_delay"), "missing column(s) dep_delay; repeated column(s) arr_delay"),
        (lambda h: h.replace("flight_id", "\u200bflight_id"), "missing column(s) flight_id; unexpected column(s) '\\u200bflight_id' (renamed?)"),
    ],
)
def test_header_anomalies_are_schema_breaks_naming_the_file(loaded: Platform, tmp_path: Path, change, expected):
    source = landing.export_path(loaded.settings.landing_dir, date.fromisoformat(DAY2))
    text = lines(source)
    path = tmp_path / source.name
    path.write_text(change(text[0]) + "".join(text[1:]))
    with pytest.raises(ContractViolation) as error:
        check_export(path, FLIGHTS)
    assert f"Schema break in export file {path}: {expected}" in str(error.value)


def test_an_unclosed_quote_fails_naming_its_line(loaded: Platform, tmp_path: Path):
    source = landing.export_path(loaded.settings.landing_dir, date.fromisoformat(DAY2))
    text = lines(source)
    text[3] = text[3].replace(",", ',"', 1)
    path = tmp_path / source.name
    path.write_text("".join(text))
    with pytest.raises(ContractViolation) as error:
        check_export(path, FLIGHTS)
    assert f"Export file {path} cannot be split into values at lines 4-{len(text)} (an unclosed quote at line 4?)" in str(error.value)


def test_a_misshapen_reference_line_fails_where_validation_could_not_catch_it(loaded: Platform, tmp_path: Path):
    """airlines' last column is free text: a surplus value would pass validation, so the file fails instead."""
    source = landing.reference_path(loaded.settings.landing_dir, "airlines")
    text = lines(source)
    text[2] = text[2].rstrip("\n") + ",extra\n"
    path = tmp_path / source.name
    path.write_text("".join(text))
    with pytest.raises(ContractViolation) as error:
        check_export(path, AIRLINES)
    assert f"Export file {path} cannot be split into values at line 3: 3 value(s) for the 2 columns" in str(error.value)


@pytest.mark.unit
def test_a_day_below_half_its_loaded_rows_is_a_smaller_redelivery():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.t AS SELECT DATE '2013-01-01' + CAST(i % 3 AS INTEGER) AS _partition_date FROM range(30) AS r(i)")
    delivered = pd.DataFrame({"_partition_date": ["2013-01-01"] * 5 + ["2013-01-02"] * 4 + ["2013-01-03"] * 12})
    window = (date(2013, 1, 1), date(2013, 1, 4))
    assert MIN_REDELIVERED_SHARE == 0.5  # 5 of 10 is kept, 4 of 10 is refused; a day not loaded yet never is
    assert stage(con, [delivered.iloc[:7], delivered.iloc[7:]]) == len(delivered)  # in two pieces, as a long read comes
    assert _smaller_redeliveries(con, "t", window) == [("2013-01-02", 10, 4)]
    stage(con, [delivered.iloc[:0]])
    assert _smaller_redeliveries(con, "t", None) == [(None, 30, 0)]


def test_a_confirmed_smaller_delivery_replaces_the_day(loaded: Platform, export: Path):
    """Last: the confirmed empty export leaves day 2 with the operational database's flights only."""
    opdb = count(loaded, "raw.flights_opdb")
    export.write_text(lines(export)[0])
    result = loaded.run(DAY2, DAY2, keys_in_groups("ingestion", "validation"), run_config=raw_load_config("main_job", accept_smaller_delivery=True))  # what `flightops run --accept-smaller-delivery` passes
    assert result.success, failure_messages(result)
    meta = next(e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key == RAW_EXPORTS)
    assert meta["smaller_deliveries_accepted"].value == 1
    assert count(loaded, "raw.flights_exports") == 0
    assert count(loaded, "clean.flights") == opdb
    assert_ledger_balanced(loaded)


@pytest.mark.unit
def test_small_pieces_are_gathered_in_order_and_a_large_one_passes_alone():
    """A delivery's pieces reach DuckDB as few inserts: consecutive pieces concatenated until they hold
    `min_rows` (the last may hold fewer), every row once and in order."""
    sizes = [3, 4, 2, 5, 1]
    pieces, start = [], 0
    for size in sizes:
        pieces.append(pd.DataFrame({"_row": range(start, start + size), "flight": [f"f{i}" for i in range(start, start + size)]}))
        start += size
    batches = list(gathered(pieces, 6))
    assert [len(batch) for batch in batches] == [7, 7, 1]
    assert pd.concat(batches)["_row"].tolist() == list(range(sum(sizes)))
    assert pd.concat(batches)["flight"].tolist() == [f"f{i}" for i in range(sum(sizes))]
    large = pd.DataFrame({"_row": range(10)})
    assert [batch is large for batch in gathered([large], 6)] == [True]
    assert list(gathered([], 6)) == []
