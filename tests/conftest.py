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

# The longest test files (pytest --durations on CI: 2-7 min each), collected first so that
# `make test`'s workers (pytest-xdist, a file per worker) start them first instead of ending on them.
# `make test` passes --no-loadscope-reorder: by default xdist hands out the files with the most tests first.
LONGEST_FIRST = ("test_monitoring_loop.py", "test_killed_run.py", "test_ui_walkthrough.py", "test_concurrency.py",
                 "test_model_assets.py", "test_pipeline.py", "test_run_command.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The LONGEST_FIRST files first, in that order; the others after them, as collected."""
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """A private platform for one test (see tests/platform_harness.py)."""
    with private_platform(tmp_path / "platform") as p:
        yield p
