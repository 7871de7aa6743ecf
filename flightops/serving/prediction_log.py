"""Every request to the prediction endpoints, one row each (a batch: one per flight), for the monitoring layer.

A SQLite file, not the DuckDB warehouse: DuckDB admits one process per file and the
pipeline owns the warehouse, while SQLite in WAL mode lets this service write and a
monitoring job read at the same time. Each write opens its own short connection, so
the server's worker threads never share one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path

REQUEST_LOG_TABLE = "requests"
BUSY_TIMEOUT_MS = 10_000  # wait this long for a reader's lock before failing a write

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {REQUEST_LOG_TABLE} (
    request_id    TEXT PRIMARY KEY,
    received_at   TEXT NOT NULL,     -- ISO 8601, UTC
    flight_id     TEXT,
    model_name    TEXT,
    model_version INTEGER,           -- the model that took the request; null if refused before
    probability   REAL,
    decision      TEXT,              -- 'delayed' | 'on_time'; null when no prediction
    threshold     REAL,
    latency_ms    REAL NOT NULL,
    status_code   INTEGER NOT NULL,
    error         TEXT,              -- why the request was refused or failed
    features_json TEXT,              -- validated features; the raw body when refused, long text cut (serving.app.echo)
    unseen_categories TEXT,          -- JSON object feature -> value the model never saw in training (empty: none)
    batch_id      TEXT               -- the POST /predict/flights request a row belongs to (one row per flight); null otherwise
);
CREATE INDEX IF NOT EXISTS {REQUEST_LOG_TABLE}_received_at ON {REQUEST_LOG_TABLE} (received_at);
"""


@dataclass(frozen=True)
class LoggedRequest:
    request_id: str
    received_at: str
    flight_id: str | None
    model_name: str | None
    model_version: int | None
    probability: float | None
    decision: str | None
    threshold: float
    latency_ms: float
    status_code: int
    error: str | None
    features_json: str | None
    unseen_categories: str | None = None  # JSON object; None when nothing was scored
    batch_id: str | None = None  # shared by the rows of one batch request


_COLUMNS = [field.name for field in fields(LoggedRequest)]
_INSERT = (
    f"INSERT INTO {REQUEST_LOG_TABLE} ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


# Columns added after the first release: a log file written before gets them on open.
_ADDED_COLUMNS = {"unseen_categories": "TEXT", "batch_id": "TEXT"}


def prediction_log_path(data_dir: Path) -> Path:
    return data_dir / "serving" / "predictions.sqlite"


class PredictionLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as con:
            con.execute("PRAGMA journal_mode=WAL")  # persists in the file
            con.executescript(_CREATE)
            _add_missing_columns(con)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection, committed on success and always closed."""
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            con.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; avoids an fsync per request
            with con:
                yield con
        finally:
            con.close()

    def record(self, *entries: LoggedRequest) -> None:
        """Write the rows of one request in one transaction."""
        with self._transaction() as con:
            con.executemany(_INSERT, [astuple(entry) for entry in entries])


def _add_missing_columns(con: sqlite3.Connection) -> None:
    """Brings a log written by an older service up to the current columns (old rows get NULL)."""
    present = {row[1] for row in con.execute(f"PRAGMA table_info({REQUEST_LOG_TABLE})")}
    for column, declared in _ADDED_COLUMNS.items():
        if column not in present:
            try:
                con.execute(f"ALTER TABLE {REQUEST_LOG_TABLE} ADD COLUMN {column} {declared}")
            except sqlite3.OperationalError as exc:  # another process added it meanwhile
                if "duplicate column" not in str(exc):
                    raise
