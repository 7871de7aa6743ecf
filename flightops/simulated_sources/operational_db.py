"""The operational database: every non-export carrier's flights, one table.

Like many operational systems it never updates a row in place: each change
appends a new row version (same `flight_id`, later `updated_at`), so `flight_id`
is indexed but not unique and `row_id` orders the versions. SQLAlchemy Core only,
so the same code runs on SQLite (default) and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from flightops.simulated_sources.dataset import FLIGHT_RECORD_COLUMNS, FLIGHTS_CSV_DTYPES, records

TEXT_COLUMNS = frozenset(
    {"flight_id", "flight_date", "updated_at"} | {name for name, dtype in FLIGHTS_CSV_DTYPES.items() if dtype.startswith("string")}
)
KEY_COLUMNS = frozenset({"flight_id", "flight_date"})
INSERT_CHUNK_ROWS = 5_000

metadata = sa.MetaData()
flights = sa.Table(
    "flights",
    metadata,
    sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
    *(
        sa.Column(
            name,
            sa.Text if name in TEXT_COLUMNS else sa.Integer,
            nullable=name not in KEY_COLUMNS,
            index=name in KEY_COLUMNS,
        )
        for name in FLIGHT_RECORD_COLUMNS
    ),
)


def display_url(url: str) -> str:
    """The URL with any password masked, for messages and status output."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: str) -> Path | None:
    """The database file of a file-based SQLite URL, else None."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database)
    return None


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    # WAL lets ingestion read while a replay writes; NORMAL sync is safe in WAL mode and
    # spares a disk flush per commit (the replay commits once per day).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def connect_engine(url: str) -> Iterator[Engine]:
    """An engine for the operational database with the schema in place, disposed after use."""
    database_file = sqlite_file(url)
    if database_file is not None:
        database_file.parent.mkdir(parents=True, exist_ok=True)
    with _engine(url) as engine:
        metadata.create_all(engine, checkfirst=True)
        yield engine


def insert_flights(connection: sa.Connection, frame: pd.DataFrame) -> int:
    """Append flight rows (one version each) in chunks; returns how many were inserted."""
    rows = records(frame.loc[:, list(FLIGHT_RECORD_COLUMNS)])
    for start in range(0, len(rows), INSERT_CHUNK_ROWS):
        connection.execute(flights.insert(), rows[start : start + INSERT_CHUNK_ROWS])
    return len(rows)


def delete_day(connection: sa.Connection, day: date) -> int:
    """Remove one day's rows (a replay redoing a day it had not finished)."""
    return connection.execute(flights.delete().where(flights.c.flight_date == day.isoformat())).rowcount


def exists(url: str) -> bool:
    """Whether the flights table exists (checked without creating any file)."""
    database_file = sqlite_file(url)
    if database_file is not None and not database_file.exists():
        return False
    with _engine(url) as engine:
        return sa.inspect(engine).has_table(flights.name)


def count_rows(url: str) -> int:
    """Row versions in the flights table (0 before the first replay)."""
    if not exists(url):
        return 0
    with _engine(url) as engine, engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(flights)).scalar_one()


def drop(url: str) -> None:
    """Remove the operational database's flights table."""
    if exists(url):
        with _engine(url) as engine:
            metadata.drop_all(engine)


def latest_versions(connection: sa.Connection, day: date, column: str, *, differing_from, limit: int) -> list[dict]:
    """The day's current row versions (the last per flight_id) where `column` is set and differs
    from `differing_from`, in flight_id order, at most `limit`."""
    latest = sa.select(sa.func.max(flights.c.row_id)).where(flights.c.flight_date == day.isoformat()).group_by(flights.c.flight_id)
    query = sa.select(flights).where(flights.c.row_id.in_(latest), flights.c[column].is_not(None))
    if differing_from is not None:
        query = query.where(flights.c[column] != differing_from)
    rows = connection.execute(query.order_by(flights.c.flight_id).limit(limit)).mappings().all()
    return [dict(row) for row in rows]


def set_value(connection: sa.Connection, row_ids: list[int], column: str, value) -> None:
    """Overwrite one column of the given row versions."""
    connection.execute(flights.update().where(flights.c.row_id.in_(row_ids)).values({column: value}))


def insert_version(connection: sa.Connection, row: dict) -> int:
    """Append one row version (its row_id is assigned); returns the new row_id."""
    values = {name: value for name, value in row.items() if name != "row_id"}
    return connection.execute(flights.insert().values(values)).inserted_primary_key[0]
