"""The long table of monitoring figures: one row per day, model version, report, group, slice, metric.

Every score is stored with the method and threshold that judged it, so a figure read months
later still says what "drift" meant that day. `dbt_project/models/marts/mart_model_health.sql`
turns it into model health by day for analysts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import duckdb
import pandas as pd

SCHEMA = "monitoring"
FIGURES_TABLE = f"{SCHEMA}.figures"

# Reports (one per monitoring asset) and statuses.
FEATURE_DRIFT = "feature_drift"
PREDICTION_HEALTH = "prediction_health"
REALIZED_PERFORMANCE = "realized_performance"
OK, ALERT, INFO = "ok", "alert", "info"

_DDL = f"""
CREATE TABLE IF NOT EXISTS {FIGURES_TABLE} (
    day DATE NOT NULL,
    model_version VARCHAR NOT NULL,
    report VARCHAR NOT NULL,
    window_start DATE,
    window_end DATE,
    feature_group VARCHAR NOT NULL,
    slice VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    method VARCHAR,
    threshold DOUBLE,
    value DOUBLE,
    status VARCHAR NOT NULL,
    computed_at TIMESTAMP DEFAULT current_timestamp
)
"""


@dataclass(frozen=True)
class Figure:
    day: date
    model_version: str
    report: str
    window_start: date | None
    window_end: date | None
    feature_group: str
    slice: str
    metric: str
    method: str | None
    threshold: float | None
    value: float | None
    status: str


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(_DDL)


def replace_figures(con: duckdb.DuckDBPyConnection, figures: list[Figure], first: date, last: date) -> int:
    """Replace every figure of days first..last (all reports) in one transaction: re-runs are idempotent."""
    ensure_table(con)
    frame = pd.DataFrame([asdict(f) for f in figures], columns=list(Figure.__dataclass_fields__))
    con.register("_figures", frame)
    con.execute("BEGIN TRANSACTION")
    con.execute(f"DELETE FROM {FIGURES_TABLE} WHERE day BETWEEN ? AND ?", [first, last])
    con.execute(f"INSERT INTO {FIGURES_TABLE} BY NAME SELECT * FROM _figures")
    con.execute("COMMIT")
    con.unregister("_figures")
    return len(frame)
