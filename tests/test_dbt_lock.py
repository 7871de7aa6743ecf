"""dbt waits for the warehouse lock as the Python steps do, and says who holds it when it gives up.

The lock is held by real processes (`duckdb.connect` on the warehouse file in a `python -c`), while
the daily dbt models of a day already loaded are materialized again on a private platform.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from flightops.pipeline import materialize
from tests.fault_assertions import assert_ledger_balanced, assert_no_valid_row_lost, clean_versions
from tests.platform_harness import Platform, failure_messages, private_platform

DAY = "2013-01-01"
DBT_SCHEMAS = ["staging", "intermediate", "marts"]

# Holds the file (argv[1]) once it has said so, until it is killed.
HOLDER = "import duckdb, sys, time\ncon = duckdb.connect(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(600)\n"


@contextmanager
def lock_held(path: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the warehouse's lock from when this yields until it is released
    (`release`) or the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held", f"the process meant to lock {path} did not start"
        yield holder
    finally:
        release(holder)


def release(holder: subprocess.Popen) -> None:
    """End the holding process: its lock is free once this returns."""
    holder.kill()
    holder.wait()


def dbt_daily_keys() -> list[dg.AssetKey]:
    from assets.transform import dbt_daily_models

    return sorted(dbt_daily_models.keys, key=str)


def dbt_row_counts(platform: Platform) -> dict[str, int]:
    """Rows of every table and view dbt built, by `<schema>.<name>`."""
    names = platform.query(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE list_contains(?, table_schema) ORDER BY 1", [DBT_SCHEMAS]
    )
    return {name: platform.query(f"SELECT count(*) FROM {name}")[0][0] for (name,) in names}


def logged(platform: Platform, run_id: str, text: str) -> list[str]:
    """The run's log messages (Dagster's, the step's, dagster-dbt's) that contain `text`."""
    return [entry.user_message for entry in platform.instance.all_logs(run_id) if text in entry.user_message]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Iterator[Platform]:
    """A day ingested, validated and transformed, with no lock in the way."""
    from assets import groups
    from flightops.pipeline import keys_in_groups

    with private_platform(tmp_path_factory.mktemp("dbt_lock")) as platform:
        platform.replay(DAY)
        result = platform.run(DAY, DAY, keys_in_groups(groups.INGESTION, groups.VALIDATION, groups.TRANSFORM))
        assert result.success, failure_messages(result)
        yield platform


def test_dbt_waits_for_a_lock_held_before_and_taken_while_it_starts(loaded: Platform):
    """Two holders: one holds the file when the step starts (the check before dbt waits for it), the
    other takes it once dbt has started (dbt meets the lock, and runs again once it is free). Each is
    released when the step reports waiting for it, so the test waits on events, not on the clock."""
    platform, warehouse = loaded, loaded.settings.warehouse
    before = clean_versions(platform)
    run_id = str(uuid.uuid4())
    with ExitStack() as stack:
        holders = [stack.enter_context(lock_held(warehouse))]

        def follow(entry) -> None:
            if entry.user_message.startswith("dbt waits for the warehouse"):
                release(holders[-1])
            # The step logs this just before dbt opens the file; listeners run in the step's thread, so
            # the second holder has the file by the time dbt tries it.
            elif entry.user_message.startswith("Running dbt build") and len(holders) == 1:
                holders.append(stack.enter_context(lock_held(warehouse)))

        platform.instance.add_event_listener(run_id, follow)
        result = materialize(date.fromisoformat(DAY), date.fromisoformat(DAY), platform.instance, dbt_daily_keys(),
                             run_id=run_id)
        assert result.success, failure_messages(result)
    waits = logged(platform, run_id, "dbt waits for the warehouse")
    assert [f"(PID {h.pid})" in w for h, w in zip(holders, waits)] == [True, True] and len(waits) == 2, waits
    assert all(str(warehouse) in w and "Conflicting lock is held" in w for w in waits), waits
    assert len(logged(platform, run_id, "Running dbt build")) == 2
    # The second dbt run built the day: the fact table and the daily mart hold every clean flight.
    (clean,) = platform.query("SELECT count(*) FROM clean.flights WHERE flight_date = ?", [DAY])[0]
    assert clean > 800
    assert platform.query("SELECT count(*) FROM marts.fct_flights WHERE flight_date = ?", [DAY])[0][0] == clean
    assert platform.query("SELECT sum(flights) FROM marts.mart_daily_delays WHERE flight_date = ?", [DAY])[0][0] == clean
    assert_ledger_balanced(platform)
    assert_no_valid_row_lost(platform, before)


def test_dbt_gives_up_at_the_deadline_naming_the_lock_the_file_and_the_setting(loaded: Platform, monkeypatch):
    platform, warehouse = loaded, loaded.settings.warehouse
    before, built = clean_versions(platform), dbt_row_counts(platform)
    monkeypatch.setenv("FLIGHTOPS_DUCKDB_LOCK_TIMEOUT_SECONDS", "2")
    with lock_held(warehouse) as holder:
        result = platform.run(DAY, DAY, dbt_daily_keys())
    assert not result.success
    message = failure_messages(result)
    assert f"dbt did not run: The warehouse {warehouse} stayed locked by another process for 2 s" in message
    assert message.startswith("dbt_daily_models: ") and " <- " not in message, message  # one step, one message
    assert "Conflicting lock is held in" in message and f"(PID {holder.pid})" in message, message
    assert "raise FLIGHTOPS_DUCKDB_LOCK_TIMEOUT_SECONDS" in message
    assert "exit code" not in message
    # Nothing dbt built before changed, and the clean layer is whole.
    assert dbt_row_counts(platform) == built
    assert_ledger_balanced(platform)
    assert_no_valid_row_lost(platform, before)


@pytest.mark.unit
def test_the_lock_line_is_found_in_dbt_error_text_and_nothing_else_counts():
    from flightops.warehouse_connections import lock_conflict

    line = ('IO Error: Could not set lock on file "/data/warehouse.duckdb": Conflicting lock is held in '
            '/usr/bin/python3.11 (PID 4242). See also https://duckdb.org/docs/current/connect/concurrency')
    dbt_error = f"`dbt build` failed (dbt's log: /data/dbt/dbt_daily_models/dbt.log):\nEncountered an error:\n{line}"
    assert lock_conflict(dbt_error) == line
    assert lock_conflict("Database Error in model fct_flights: Binder Error: column x not found") is None
