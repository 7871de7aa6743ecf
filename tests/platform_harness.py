"""A private platform for tests: its own data folder, source systems, weather API and Dagster instance.

Not a test module and not a conftest: import what you need from it explicitly,

    from tests.platform_harness import Platform, failure_messages, private_platform

The `platform` fixture (tests/conftest.py) is `private_platform(tmp_path / "platform")` for one test;
a module-scoped fixture that shares one platform between tests calls `private_platform` itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from flightops.pipeline import failure_messages as step_failures
from flightops.pipeline import materialize
from flightops.settings import Settings, environment_under, load_environment
from tests.dagster_dev import instance_for


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


def failure_messages(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure with its causes, one per line: what a user sees in the UI."""
    return "\n".join(step_failures(result))
