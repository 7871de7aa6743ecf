"""Shared fixtures: a private platform (data folder, source systems, weather API) per test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from flightops.pipeline import DATA_LAYERS, keys_in_groups  # noqa: F401  (re-exported for the tests)
from flightops.settings import Settings, environment_under, load_environment

# Telemetry off before anything starts dagster, dbt or mlflow machinery.
os.environ.update(
    DAGSTER_DISABLE_TELEMETRY="1", DO_NOT_TRACK="1", DBT_SEND_ANONYMOUS_USAGE_STATS="False", MLFLOW_DISABLE_TELEMETRY="true"
)


@dataclass
class Platform:
    """A private platform: its settings, a Dagster instance, helpers to replay, run and query."""

    settings: Settings
    instance: dg.DagsterInstance

    def replay(self, until: str) -> None:
        from flightops.simulated_sources.replay import replay

        replay(self.settings, date.fromisoformat(until))

    def run(
        self, first: str, last: str, selection: list[dg.AssetKey] | None = None, run_config: dict | None = None
    ) -> dg.ExecuteInProcessResult:
        from flightops.pipeline import materialize

        return materialize(date.fromisoformat(first), date.fromisoformat(last), self.instance, selection, run_config)

    def query(self, sql: str, params=None) -> list[tuple]:
        with duckdb.connect(str(self.settings.warehouse), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()


@contextlib.contextmanager
def private_platform(base: Path, instance_home: Path | None = None) -> Iterator[Platform]:
    """Point every setting at `base`, serve the weather API on a free port, restore on exit.

    The Dagster instance is ephemeral, or the persistent one of `instance_home` (the storage a
    `tests.dagster_dev.dagster_dev` server on that home shares).
    """
    from flightops.simulated_sources.weather_api import start_weather_api
    from tests.dagster_dev import instance_for

    saved = dict(os.environ)
    os.environ.update(environment_under(base))
    load_environment()
    (base / "sources").mkdir(parents=True, exist_ok=True)
    instance = instance_for(instance_home) if instance_home else dg.DagsterInstance.ephemeral()
    try:
        with start_weather_api(base / "sources") as server, instance:
            os.environ["FLIGHTOPS_WEATHER_API_URL"] = server.url
            yield Platform(Settings.current(), instance)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    with private_platform(tmp_path / "platform") as p:
        yield p


def failure_messages(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure with its causes, one per line: what a user sees in the UI."""
    from flightops.pipeline import failure_messages as step_failures

    return "\n".join(step_failures(result))
