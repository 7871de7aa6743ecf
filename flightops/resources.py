"""Dagster resources: the platform's handles on the warehouse and the source systems.

Each is configured with `EnvVar` in the definitions, so values are read when a run
starts, never at import. Paths may be relative to the repository root.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from flightops import warehouse_connections
from flightops.settings import resolve_path, resolve_url


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. Connections are opened per use and closed at once."""

    path: str
    lock_timeout_seconds: int = 120

    @property
    def file(self) -> Path:
        return resolve_path(self.path)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse_connections.connect(self.file, read_only=read_only, timeout_seconds=self.lock_timeout_seconds) as con:
            yield con


class SourceDatabaseResource(dg.ConfigurableResource):
    """The operational database (any SQLAlchemy URL; SQLite by default)."""

    url: str

    @property
    def resolved_url(self) -> str:
        return resolve_url(self.url)


class LandingZoneResource(dg.ConfigurableResource):
    """The landing folder where files arrive (reference data, daily flight exports)."""

    path: str

    @property
    def root(self) -> Path:
        return resolve_path(self.path)


class WeatherApiResource(dg.ConfigurableResource):
    """The weather observations HTTP API; retries with backoff on 5xx and time-outs."""

    base_url: str
    page_size: int = 1000
    timeout_seconds: float = 10.0
    max_attempts: int = 5
    backoff_seconds: float = 0.5
