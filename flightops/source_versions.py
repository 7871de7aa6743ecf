"""What the operational database holds for each day, as a version the platform can compare.

The source never updates a row in place: a late correction appends a row version with a newer
`updated_at`. A day's version is therefore its row count and newest `updated_at` (a deletion
changes the count). The opdb ingestion asset records the versions it loaded in its
materialization metadata (`OPDB_VERSIONS`); sensors/corrections.py compares them with the
source's current ones and reloads a corrected day.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

# Materialization metadata of raw/flights_opdb: day -> version of the rows that run loaded.
OPDB_VERSIONS = "opdb_versions"

_DAY_VERSIONS = sa.text(
    "SELECT flight_date, count(*), max(updated_at) FROM flights "
    "WHERE flight_date BETWEEN :first AND :last GROUP BY flight_date"
)


def day_versions(connection: sa.Connection, first: date, last: date) -> dict[str, str]:
    """Day -> '<rows>@<newest updated_at>' of the operational database's flights, first..last."""
    rows = connection.execute(_DAY_VERSIONS, {"first": first.isoformat(), "last": last.isoformat()})
    return {str(day): f"{count}@{newest}" for day, count, newest in rows}
