"""Fixtures shared by the test modules. Helpers are imported explicitly from plain modules:
tests/platform_harness.py (a private platform) and tests/dagster_dev.py (a private `dagster dev`).

Markers (pyproject.toml, `--strict-markers`): `unit` (pure and fast: no platform run, no server;
`make test-fast` runs only these), `daemon` (starts `dagster dev` and its daemon), `browser`
(headless Chromium), `postgres` (a real PostgreSQL server).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flightops.settings import load_environment
from tests.platform_harness import Platform, private_platform

# .env's defaults, telemetry switches included, before anything starts dagster, dbt or mlflow machinery.
load_environment()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """A private platform for one test (see tests/platform_harness.py)."""
    with private_platform(tmp_path / "platform") as p:
        yield p
