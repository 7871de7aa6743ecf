"""Short-lived DuckDB connections that wait for the file lock instead of failing.

DuckDB lets one process at a time open the warehouse file (even read-only readers
block a writer in another process). The platform therefore never keeps a
connection open: every step opens, works, closes. Inside Dagster the `duckdb`
concurrency pool serialises steps; this module covers the rest (an analyst's
`dbt build`, a notebook) by retrying the open until a deadline, then failing
with a message that says who to look for. `LockWait` gives the same wait to a tool that
opens the file itself (the dbt steps, assets/transform.py).
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

# Backoff between tries to open a locked file: doubling from the first pause up to the longest.
_FIRST_PAUSE_SECONDS = 0.1
_LONGEST_PAUSE_SECONDS = 2.0


class WarehouseLockTimeout(RuntimeError):
    """The warehouse file stayed locked by another process past the deadline."""


def lock_conflict(text: str) -> str | None:
    """DuckDB's line saying another process holds a file's lock (which file, which process and PID),
    if `text` (an error, dbt's output) has one."""
    return next((line.strip() for line in text.splitlines() if any(m in line for m in _LOCK_MARKERS)), None)


class LockWait:
    """One wait for the warehouse lock over several tries, with one backoff and one deadline.

    For a tool that opens the file itself in another process (dbt), where `connect` cannot wait:
    `conflict()` before each try says whether the file is free now, `retry(conflict)` pauses
    before the next try, or raises WarehouseLockTimeout once the deadline has passed.
    """

    def __init__(self, path: Path, timeout_seconds: float) -> None:
        self.path = path
        self.timeout_seconds = timeout_seconds
        self._deadline = time.monotonic() + timeout_seconds
        self._pause = _FIRST_PAUSE_SECONDS

    def conflict(self) -> str | None:
        """None if the file could be opened for writing just now, else DuckDB's line naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            duckdb.connect(str(self.path)).close()
        except duckdb.IOException as exc:
            conflict = lock_conflict(str(exc))
            if conflict is None:
                raise
            return conflict
        return None

    def retry(self, conflict: str) -> None:
        """Pause before the next try; past the deadline, fail naming the file, its holder (`conflict`,
        DuckDB's words) and what to do."""
        if time.monotonic() >= self._deadline:
            raise WarehouseLockTimeout(
                f"The warehouse {self.path} stayed locked by another process for {self.timeout_seconds:.0f} s "
                f"({conflict}). Close that process (a dbt run, a DuckDB shell or notebook holding the file) "
                "or raise FLIGHTOPS_DUCKDB_LOCK_TIMEOUT_SECONDS, then retry."
            )
        time.sleep(self._pause)
        self._pause = min(self._pause * 2, _LONGEST_PAUSE_SECONDS)


@contextmanager
def connect(path: Path, *, read_only: bool = False, timeout_seconds: float = 120.0,
            memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, waiting (with backoff) while another process holds its lock.

    `memory_limit` (a DuckDB size, e.g. "1GB"; None or empty: DuckDB's default, 80 % of the machine's memory)
    bounds what DuckDB holds in memory: past it, joins, sorts, aggregates and temporary tables spill
    to the folder beside the file (`<warehouse>.tmp`), so a step's memory does not grow with the data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    wait = LockWait(path, timeout_seconds)
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if lock_conflict(str(exc)) is None:
                raise
            wait.retry(str(exc))  # raised inside `except`: the timeout keeps DuckDB's error as its context
    try:
        if memory_limit:  # unset or empty: DuckDB's default
            _limit_memory(con, memory_limit)
        yield con
    finally:
        con.close()


def _limit_memory(con: duckdb.DuckDBPyConnection, memory_limit: str) -> None:
    try:
        con.execute("SET memory_limit = ?", [memory_limit])
    except duckdb.Error as exc:
        raise ValueError(
            f"FLIGHTOPS_DUCKDB_MEMORY_LIMIT={memory_limit!r} is not a memory size DuckDB accepts ({exc}). "
            "Set it to a size such as 1GB or 1500MB (environment or .env)."
        ) from exc
