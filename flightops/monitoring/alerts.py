"""Alerts: a row in a SQLite table, a line in the log, and a JSON POST to a webhook when one is set.

Sensors raise alerts, and a sensor must never open the DuckDB warehouse (it fails while a run
writes), so alerts live in a SQLite file of their own, `<data dir>/monitoring/alerts.sqlite`.
Runs, the sensor daemon and the serving process (which counts alerts for /metrics) share it from
separate processes: every call opens a short connection that waits on a busy timeout.

An alert must never break the run or sensor that raises it: a webhook that is down or refuses the
POST is logged at ERROR and recorded in `webhook_status`, not raised. A store that cannot be
written is raised, because then the alert would be lost silently.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from flightops.monitoring.latest import MonitoringFiles

# Kinds of alert raised by the platform (the `kind` column).
RUN_FAILED = "run_failed"
CHECK_FAILING = "check_failing"
RETRAIN_REQUESTED = "retrain_requested"
RETRAIN_REJECTED_DEGRADED = "retrain_rejected_while_degraded"
MONITORING_LAG = "monitoring_lag"

# Severities and the log level each is written at.
SEVERITY_LEVELS = {"info": logging.WARNING, "warning": logging.WARNING, "critical": logging.ERROR}

STORE_FILE = "alerts.sqlite"
# Writers from other processes hold the lock for milliseconds; wait rather than fail.
BUSY_TIMEOUT_SECONDS = 30.0
# A webhook may not hold a sensor tick for long: 3 attempts of at most 5 s, 0.5 s then 1 s apart.
WEBHOOK_TIMEOUT_SECONDS = 5.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_SECONDS = 0.5

WEBHOOK_PENDING = "pending"
WEBHOOK_NOT_CONFIGURED = "not configured"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    day TEXT,
    message TEXT NOT NULL,
    details TEXT NOT NULL,
    run_id TEXT,
    dedup_key TEXT UNIQUE,
    webhook_status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_kind ON alerts (kind);
"""
_COLUMNS = ("created_at", "kind", "severity", "day", "message", "details", "run_id", "dedup_key", "webhook_status")

_LOG = logging.getLogger(__name__)


class AlertStoreError(RuntimeError):
    """The alerts table could not be read or written."""


@dataclass(frozen=True)
class Alert:
    """One row of the `alerts` table (`details` decoded from its JSON)."""

    id: int
    created_at: str
    kind: str
    severity: str
    day: str | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    dedup_key: str | None = None
    webhook_status: str = WEBHOOK_NOT_CONFIGURED


def store_path(settings: MonitoringFiles) -> Path:
    return settings.monitoring_dir / STORE_FILE


def raise_alert(
    settings: MonitoringFiles,
    kind: str,
    message: str,
    *,
    severity: str = "warning",
    day: str | None = None,
    details: dict | None = None,
    run_id: str | None = None,
    dedup_key: str | None = None,
    logger: logging.Logger | None = None,
) -> Alert | None:
    """Store, log and send an alert; None when an alert with the same `dedup_key` was raised before.

    Sensors re-evaluate every minute: the dedup key makes the same condition alert once.
    """
    if severity not in SEVERITY_LEVELS:
        raise ValueError(f"Alert severity {severity!r} (kind {kind!r}) is not one of {sorted(SEVERITY_LEVELS)}.")
    log = logger or _LOG
    path = store_path(settings)
    url = settings.alert_webhook_url
    alert = _insert(
        path,
        created_at=datetime.now(timezone.utc).isoformat(),
        kind=kind,
        severity=severity,
        day=day,
        message=message,
        details=details or {},
        run_id=run_id,
        dedup_key=dedup_key,
        webhook_status=WEBHOOK_PENDING if url else WEBHOOK_NOT_CONFIGURED,
    )
    if alert is None:
        log.debug(f"Alert {kind} with dedup key {dedup_key!r} was raised before; not repeated.")
        return None
    _log_alert(log, alert)
    if url is None:
        return alert
    status = _post(url, _webhook_body(alert))
    if not status.startswith("sent"):
        log.error(
            f"Alert #{alert.id} ({kind}) was not delivered to the webhook {url}: {status}. It is stored in "
            f"{path}; check that the receiver is up and that FLIGHTOPS_ALERT_WEBHOOK_URL is right."
        )
    _set_webhook_status(path, alert.id, status)
    return replace(alert, webhook_status=status)


def count_alerts(settings: MonitoringFiles, kind: str | None = None) -> int:
    """Alerts stored (of one kind, or all); 0 before the first alert. Never creates the store."""
    with _reader(store_path(settings)) as con:
        if con is None:
            return 0
        where, params = _kind_filter(kind)
        return con.execute(f"SELECT count(*) FROM alerts {where}", params).fetchone()[0]


def recent_alerts(settings: MonitoringFiles, kind: str | None = None, limit: int = 50) -> list[Alert]:
    """The newest alerts first (of one kind, or all)."""
    with _reader(store_path(settings)) as con:
        if con is None:
            return []
        where, params = _kind_filter(kind)
        rows = con.execute(f"SELECT * FROM alerts {where} ORDER BY id DESC LIMIT ?", [*params, limit]).fetchall()
    return [_to_alert(row) for row in rows]


def _log_alert(log: logging.Logger, alert: Alert) -> None:
    text = f"Alert #{alert.id} {alert.kind}" + (f" (day {alert.day})" if alert.day else "") + f": {alert.message}"
    if SEVERITY_LEVELS[alert.severity] >= logging.ERROR:
        log.error(text)
    else:
        log.warning(text)


def _webhook_body(alert: Alert) -> dict[str, Any]:
    """The alert's fields; its delivery status is not known while it is being delivered."""
    body = asdict(alert)
    del body["webhook_status"]
    return body


def _post(url: str, body: dict[str, Any]) -> str:
    """POST the body: "sent <status>", or "failed: <reason>" once retries are exhausted.

    Connection errors and 5xx are retried; a read time-out is not (the receiver may have the
    alert already), nor is a 4xx (the request itself is wrong).
    """
    reason = ""
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        try:
            response = requests.post(url, json=body, timeout=WEBHOOK_TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            reason, retry = f"{type(exc).__name__}: {exc}", isinstance(exc, requests.ConnectionError)
        else:
            if 200 <= response.status_code < 300:
                return f"sent {response.status_code}"
            reason, retry = f"HTTP {response.status_code} {response.text[:200]!r}", response.status_code >= 500
        if not retry or attempt == WEBHOOK_ATTEMPTS:
            break
        time.sleep(WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1))
    return f"failed: {reason} (attempt {attempt} of {WEBHOOK_ATTEMPTS})"


def _insert(path: Path, **row: Any) -> Alert | None:
    """Insert the row; None when its dedup key is taken (the UNIQUE constraint decides, across processes)."""
    values = [json.dumps(row["details"], sort_keys=True, default=str) if c == "details" else row[c] for c in _COLUMNS]
    with _writer(path) as con:
        cursor = con.execute(
            f"INSERT INTO alerts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
            "ON CONFLICT (dedup_key) DO NOTHING",
            values,
        )
        if cursor.rowcount == 0:
            return None
        return Alert(id=cursor.lastrowid, **row)


def _set_webhook_status(path: Path, alert_id: int, status: str) -> None:
    with _writer(path) as con:
        con.execute("UPDATE alerts SET webhook_status = ? WHERE id = ?", [status, alert_id])


@contextmanager
def _writer(path: Path) -> Iterator[sqlite3.Connection]:
    """A short connection that creates the store if missing and commits on success."""
    with _store_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)) as con:
            con.executescript(_SCHEMA)
            with con:
                yield con


@contextmanager
def _reader(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection, or None while no alert was ever stored (a reader never creates the file)."""
    if not path.exists():
        yield None
        return
    with _store_errors(path):
        uri = f"{path.as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)) as con:
            con.row_factory = sqlite3.Row
            # The file exists a moment before its writer has created the table.
            has_table = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alerts'").fetchone()
            yield con if has_table else None


@contextmanager
def _store_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise AlertStoreError(
            f"The alert store {path} failed: {type(exc).__name__}: {exc}. Check that {path.parent} is writable "
            "and that no other program keeps the file locked (any SQLite shell on it must be closed)."
        ) from exc


def _kind_filter(kind: str | None) -> tuple[str, list[str]]:
    return ("WHERE kind = ?", [kind]) if kind is not None else ("", [])


def _to_alert(row: sqlite3.Row) -> Alert:
    fields = dict(row)
    fields["details"] = json.loads(fields["details"])
    return Alert(**fields)
