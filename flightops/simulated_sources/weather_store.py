"""The weather API's own store: the observations replayed so far, in one SQLite file.

The HTTP server opens it per request (never holding it), the replay appends to
it, and fault injection edits it. WAL mode lets the server read while a replay
writes. `row_id` is the stable serving order and the paging cursor's position;
`obs_date` is the local observation date the API filters on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from flightops.simulated_sources.dataset import WEATHER_CSV_DTYPES, WEATHER_RECORD_COLUMNS, records

STORE_FILE = "weather_api.sqlite"
BUSY_TIMEOUT_SECONDS = 30.0

_SQL_TYPES = {"Int64": "INTEGER", "Float64": "REAL", "string[pyarrow]": "TEXT"}
_COLUMN_TYPES = {name: _SQL_TYPES[dtype] for name, dtype in WEATHER_CSV_DTYPES.items()} | {"updated_at": "TEXT"}

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS observations (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    obs_date TEXT NOT NULL,
    {", ".join(f"{name} {kind}" for name, kind in _COLUMN_TYPES.items())}
);
CREATE INDEX IF NOT EXISTS observations_obs_date ON observations (obs_date);
"""
_SELECT_COLUMNS = ", ".join(WEATHER_RECORD_COLUMNS)


def store_path(state_dir: Path) -> Path:
    return state_dir / STORE_FILE


@contextmanager
def open_store(state_dir: Path) -> Iterator[sqlite3.Connection]:
    """A writable connection with the schema in place, closed after use.

    Use `with connection:` around each unit of work: it commits on success and
    rolls back on error.
    """
    path = store_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(_SCHEMA)
        yield connection
    finally:
        connection.close()


@contextmanager
def _read(state_dir: Path) -> Iterator[sqlite3.Connection | None]:
    """A connection for reading, or None when nothing was ever replayed (no file is created)."""
    path = store_path(state_dir)
    if not path.exists():
        yield None
        return
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    connection.row_factory = sqlite3.Row
    try:
        yield connection
    finally:
        connection.close()


def delete_day(connection: sqlite3.Connection, day: date) -> int:
    """Remove one local day's observations (a replay redoing a day it had not finished)."""
    return connection.execute("DELETE FROM observations WHERE obs_date = ?", (day.isoformat(),)).rowcount


def insert_observations(connection: sqlite3.Connection, frame: pd.DataFrame) -> int:
    """Append observations; `obs_date` comes from their local year/month/day."""
    rows = records(frame.loc[:, list(WEATHER_RECORD_COLUMNS)])
    placeholders = ", ".join("?" for _ in range(len(WEATHER_RECORD_COLUMNS) + 1))
    connection.executemany(
        f"INSERT INTO observations (obs_date, {_SELECT_COLUMNS}) VALUES ({placeholders})",
        [
            (date(row["year"], row["month"], row["day"]).isoformat(), *(row[name] for name in WEATHER_RECORD_COLUMNS))
            for row in rows
        ],
    )
    return len(rows)


@dataclass(frozen=True)
class Page:
    observations: list[dict]
    last_row_id: int | None
    has_more: bool


def read_page(
    state_dir: Path, start: date, end: date, *, after_row_id: int, limit: int, updated_after: str | None
) -> Page:
    """Observations of start..end (local dates, inclusive) after a row_id, in row_id order.

    `updated_after` is a UTC timestamp formatted like the stored `updated_at`
    (whole seconds, trailing Z), so text comparison orders them correctly.
    """
    sql = f"SELECT row_id, {_SELECT_COLUMNS} FROM observations WHERE obs_date BETWEEN ? AND ? AND row_id > ?"
    params: list = [start.isoformat(), end.isoformat(), after_row_id]
    if updated_after is not None:
        sql += " AND updated_at > ?"
        params.append(updated_after)
    sql += " ORDER BY row_id LIMIT ?"
    params.append(limit + 1)
    with _read(state_dir) as connection:
        if connection is None:
            return Page([], None, False)
        rows = connection.execute(sql, params).fetchall()
    page = rows[:limit]
    return Page(
        observations=[{name: row[name] for name in WEATHER_RECORD_COLUMNS} for row in page],
        last_row_id=page[-1]["row_id"] if page else None,
        has_more=len(rows) > limit,
    )


def count_observations(state_dir: Path) -> int:
    """Observations in the store (0 before the first replay)."""
    with _read(state_dir) as connection:
        if connection is None:
            return 0
        return connection.execute("SELECT count(*) FROM observations").fetchone()[0]


def day_rows(connection: sqlite3.Connection, day: date, column: str, *, differing_from, limit: int) -> list[dict]:
    """The day's observations where `column` is set and differs from `differing_from`, in row_id order."""
    if column not in WEATHER_RECORD_COLUMNS:
        raise ValueError(f"{column!r} is not a weather observation column; use one of {', '.join(WEATHER_RECORD_COLUMNS)}.")
    sql = f"SELECT row_id, obs_date, {_SELECT_COLUMNS} FROM observations WHERE obs_date = ? AND {column} IS NOT NULL"
    params: list = [day.isoformat()]
    if differing_from is not None:
        sql += f" AND {column} != ?"
        params.append(differing_from)
    cursor = connection.execute(sql + " ORDER BY row_id LIMIT ?", [*params, limit])
    names = [description[0] for description in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def set_value(connection: sqlite3.Connection, row_ids: list[int], column: str, value) -> None:
    """Overwrite one column of the given observations."""
    if column not in WEATHER_RECORD_COLUMNS:
        raise ValueError(f"{column!r} is not a weather observation column; use one of {', '.join(WEATHER_RECORD_COLUMNS)}.")
    connection.executemany(f"UPDATE observations SET {column} = ? WHERE row_id = ?", [(value, row_id) for row_id in row_ids])


def insert_row(connection: sqlite3.Connection, row: dict) -> int:
    """Append one observation row as given (obs_date included, row_id assigned); returns the new row_id."""
    names = [name for name in row if name != "row_id"]
    cursor = connection.execute(
        f"INSERT INTO observations ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
        [row[name] for name in names],
    )
    return cursor.lastrowid
