"""Two runs at once on one DuckDB file: the second waits for the pool, neither hits the file lock."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from flightops.settings import REPO_ROOT
from tests.dagster_dev import prepare_home
from tests.platform_harness import Platform

CHILD = """
import sys
from datetime import date
import dagster as dg
from flightops.pipeline import DATA_LAYERS, failure_messages, keys_in_groups, materialize
from flightops.settings import load_environment
load_environment()
with dg.DagsterInstance.get() as instance:
    result = materialize(date(2013, 1, 1), date(2013, 1, 2), instance, keys_in_groups(*DATA_LAYERS))
print("RESULT", result.success, failure_messages(result))
sys.exit(0 if result.success else 1)
"""


def test_two_concurrent_runs_both_succeed(platform: Platform, tmp_path: Path):
    platform.replay("2013-01-02")
    # The repository's instance config (pool duckdb_warehouse limited to 1), storage moved here, and the
    # storage created once, as `make ui` or an earlier run would have: two processes creating fresh
    # SQLite tables at the same moment race each other ("table ... already exists").
    home = prepare_home(tmp_path / "dagster_home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs() == []
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    runs = [
        subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output[-3000:]
        assert "Could not set lock" not in output
    # Both replaced the same two days: one ledger row per day, and the clean rows counted once.
    ledger = platform.query(
        "SELECT partition_date, rows_clean FROM audit.load_ledger WHERE asset = 'flights' ORDER BY 1"
    )
    assert len(ledger) == 2
    assert platform.query("SELECT count(*) FROM clean.flights")[0][0] == sum(n for _, n in ledger)
    assert platform.query("SELECT count(*) FROM marts.fct_flights")[0][0] == sum(n for _, n in ledger)
