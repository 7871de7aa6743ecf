"""The Dagster UI as a user opens it: a private `dagster dev` (tests/dagster_dev.py) read by headless Chromium.

The server's environment points every FLIGHTOPS_* setting at a private, empty data folder: the platform's
sensors run by default, and must neither read nor launch runs against the repository's `data/`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from flightops.settings import environment_under, load_environment
from tests.dagster_dev import dagster_dev, free_port, instance_for, wait_for

pytestmark = [pytest.mark.daemon, pytest.mark.browser]

CHROMIUM = shutil.which("chromium")
# The sensors of flightops.definitions that must be on by default (default_status=RUNNING).
DEFAULT_RUNNING = ("landing_zone_sensor", "opdb_corrections_sensor", "retraining_sensor", "run_failure_alert_sensor")
# Both have minimum_interval_seconds=30: two evaluations of each need a bit over 30 s after the daemon starts.
TICKING = ("landing_zone_sensor", "retraining_sensor")

SENSORS_QUERY = """
query {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        sensors {
          name
          minIntervalSeconds
          sensorState { status ticks(limit: 20) { status skipReason runIds error { message } } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


@dataclass(frozen=True)
class UI:
    url: str
    home: Path  # DAGSTER_HOME of the server
    data: Path  # the private FLIGHTOPS_DATA_DIR the server's code location sees


def private_environment(data: Path) -> dict[str, str]:
    """This process's environment with every FLIGHTOPS_* setting present and private."""
    load_environment()  # fills unset settings from the repository's .env (never overriding)
    return {
        **os.environ,
        **environment_under(data),
        "FLIGHTOPS_WEATHER_API_URL": f"http://127.0.0.1:{free_port()}",  # nobody listens there
        "FLIGHTOPS_ALERT_WEBHOOK_URL": "",  # alerts stay in the private alert store
    }


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[UI]:
    home = tmp_path_factory.mktemp("dagster_home")
    data = tmp_path_factory.mktemp("platform")
    (data / "landing").mkdir()  # exists and is empty: the landing sensor evaluates and finds nothing
    env = private_environment(data)
    with dagster_dev(home, env) as url:
        yield UI(url, home, data)


def rendered(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (Chromium's virtual time lets the GraphQL calls finish)."""
    assert CHROMIUM, "Chromium is missing: `make test` installs it (Debian package chromium)."
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def sensors(url: str) -> dict[str, dict]:
    """Every sensor of the code location, by name, as the UI's GraphQL API reports it."""
    response = requests.post(f"{url}/graphql", json={"query": SENSORS_QUERY}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    repositories = body["data"]["repositoriesOrError"]
    assert repositories["__typename"] == "RepositoryConnection", repositories
    return {sensor["name"]: sensor for repo in repositories["nodes"] for sensor in repo["sensors"]}


def test_the_asset_page_shows_feature_lineage(ui, tmp_path):
    dom = rendered(f"{ui.url}/assets/features/flight_features", tmp_path / "chrome")
    assert "flight_features" in dom
    assert "fct_flights" in dom  # its upstream dbt model, in the lineage panel


def test_the_clean_flights_page_lists_its_data_quality_checks(ui, tmp_path):
    dom = rendered(f"{ui.url}/assets/clean/flights?view=checks", tmp_path / "chrome")
    for check in ("key_unique", "rows_accounted", "quarantine_rate", "fresh"):
        assert check in dom, f"check {check} not shown on the clean/flights page"


def test_sensors_run_by_default_and_launch_nothing_on_a_private_empty_platform(ui):
    status = {name: sensor["sensorState"]["status"] for name, sensor in sensors(ui.url).items()}
    for name in DEFAULT_RUNNING:
        assert status.get(name) == "RUNNING", f"{name} is not running by default: {status}"

    # Two finished evaluations of each 30 s sensor by this server's daemon, then look at what they did
    # (a tick the daemon is still evaluating is STARTED: it has no outcome yet).
    def finished(sensor: dict) -> list[dict]:
        return [tick for tick in sensor["sensorState"]["ticks"] if tick["status"] != "STARTED"]

    def evaluated_twice() -> dict[str, dict] | None:
        current = sensors(ui.url)
        done = all(len(finished(current[name])) >= 2 for name in TICKING)
        return current if done else None

    current = wait_for(evaluated_twice, timeout=240, interval=5, what=f"two sensor ticks each of {TICKING}")
    for name in TICKING:
        ticks = finished(current[name])
        assert [t["status"] for t in ticks] == ["SKIPPED"] * len(ticks), f"{name}: {ticks}"
        assert all(t["runIds"] == [] and t["error"] is None for t in ticks), f"{name}: {ticks}"
    # The landing sensor looked at the private landing folder, found it empty, and said so.
    landing = finished(current["landing_zone_sensor"])[0]["skipReason"]
    assert landing == (f"All 0 daily exports and 0 reference files in {ui.data / 'landing'} are loaded "
                       "(per the event log) or already requested."), landing
    retraining = finished(current["retraining_sensor"])[0]["skipReason"]
    assert retraining == ("No champion yet and 0 labelled day(s) materialized; the first model is requested "
                          "from 14 on."), retraining

    with instance_for(ui.home) as instance:
        assert instance.get_runs() == [], [(r.job_name, r.run_id, r.tags) for r in instance.get_runs()]
    # The server read no `.env` (its cwd is its home), and nothing was written to the private data folder
    # either (no warehouse, no alert store).
    assert "Loaded environment variables from .env file" not in (ui.home / "dagster-dev.log").read_text()
    assert sorted(p.relative_to(ui.data).as_posix() for p in ui.data.rglob("*")) == ["landing"]
