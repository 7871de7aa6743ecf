"""Short-lived DuckDB connections that wait for the file lock instead of failing.

DuckDB lets one process at a time open the warehouse file (even read-only readers
block a writer in another process). The platform therefore never keeps a
connection open: every step opens, works, closes. Inside Dagster the `duckdb`
concurrency pool serialises steps; this module covers the rest (an analyst's
`dbt build`, a notebook) by retrying the open until a deadline, then failing
with a message that says who to look for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

# The pool name shared by every asset that touches the warehouse file (dbt included).
DUCKDB_POOL = "duckdb_warehouse"

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock")


class WarehouseLockTimeout(RuntimeError):
    """The warehouse file stayed locked by another process past the deadline."""


@contextmanager
def connect(path: Path, *, read_only: bool = False, timeout_seconds: float = 120.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, waiting (with backoff) while another process holds its lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_seconds
    delay = 0.1
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not any(marker in str(exc) for marker in _LOCK_MARKERS):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseLockTimeout(
                    f"The warehouse {path} stayed locked by another process for {timeout_seconds:.0f} s "
                    f"({exc}). Close that process (a dbt run, a DuckDB shell or notebook holding the file) "
                    "or raise FLIGHTOPS_DUCKDB_LOCK_TIMEOUT_SECONDS, then retry."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        yield con
    finally:
        con.close()
