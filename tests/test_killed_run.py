"""A run that dies, or is stopped, must not block the next: real `flightops run` processes on a private platform.

In order on one platform (module fixture): Ctrl-C (SIGINT) to a run once its dbt step has started; `kill -9`
of the next at the same point, then a run that must clean the dead one and complete; then a run that waits for a
warehouse slot a live (made-up, UI-style) run holds must give up after its bound and name that run.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import psutil
import pytest

from flightops import cli
from flightops.pipeline import run_main_job
from tests.dagster_dev import instance_for, prepare_home, wait_for
from tests.fault_assertions import assert_ledger_balanced, assert_no_valid_row_lost, clean_versions
from tests.platform_harness import private_platform

FLIGHTOPS = Path(sys.executable).parent / "flightops"
POOL = "duckdb_warehouse"


DBT_STEP = "dbt_daily_models"


def run_ids(home: Path) -> set[str]:
    with instance_for(home) as instance:
        return {record.dagster_run.run_id for record in instance.get_run_records()}


def dbt_step_started(home: Path, known: set[str]) -> str | None:
    """The id of a run not in `known`, once its dbt step has started (dbt runs inside the run's process)."""
    with instance_for(home) as instance:
        for record in instance.get_run_records():
            run_id = record.dagster_run.run_id
            if run_id not in known and any(entry.step_key == DBT_STEP for entry in
                                           instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)):
                return run_id
    return None


def session_processes(session: int) -> list[psutil.Process]:
    """The processes still alive in a session (a `flightops run` started with start_new_session)."""
    alive = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):  # gone meanwhile
            if os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def start_run(env: dict, until: str) -> subprocess.Popen:
    return subprocess.Popen([str(FLIGHTOPS), "run", "--until", until], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def run_until_dbt(env: dict, home: Path, until: str) -> tuple[subprocess.Popen, str]:
    """A `flightops run` process, returned once its dbt step runs, with the run's id."""
    known = run_ids(home)
    process = start_run(env, until)
    found = wait_for(lambda: dbt_step_started(home, known) or process.poll() is not None, timeout=240, interval=0.2,
                     what=f"the dbt step of flightops run (pid {process.pid})")
    assert found is not True, f"the run ended before dbt started:\n{process.communicate()[0][-3000:]}"
    return process, found


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return records[-1].dagster_event.message if records else ""


@pytest.fixture(scope="module")
def stopped_and_killed(tmp_path_factory):
    """SIGINT to one run, kill -9 of the next, a run after them: their outputs, runs and the warehouse."""
    base = tmp_path_factory.mktemp("killed_run")
    with private_platform(base / "platform") as platform:
        home = prepare_home(base / "dagster_home")
        env = {**os.environ, "DAGSTER_HOME": str(home)}

        interrupted, interrupted_id = run_until_dbt(env, home, "2013-01-02")
        os.kill(interrupted.pid, signal.SIGINT)
        interrupted_output = interrupted.communicate(timeout=120)[0]
        before = clean_versions(platform)

        killed, killed_id = run_until_dbt(env, home, "2013-01-03")
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()

        after = start_run(env, "2013-01-03")
        after_output = after.communicate(timeout=600)[0]
        yield SimpleNamespace(platform=platform, home=home, before=before,
                              interrupted=interrupted, interrupted_id=interrupted_id, interrupted_output=interrupted_output,
                              killed_id=killed_id, after=after, after_output=after_output)


def test_sigint_stops_the_run_with_a_message_and_no_process_left(stopped_and_killed):
    s = stopped_and_killed
    assert s.interrupted.returncode == 130, s.interrupted_output[-3000:]
    assert f"Run {s.interrupted_id} stopped by SIG" in s.interrupted_output
    assert "marked failed" in s.interrupted_output
    assert session_processes(s.interrupted.pid) == []
    with instance_for(s.home) as instance:
        assert instance.get_run_by_id(s.interrupted_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info(POOL).claimed_slots == []


def test_the_run_after_a_killed_one_cleans_it_and_completes(stopped_and_killed):
    s = stopped_and_killed
    assert s.after.returncode == 0, s.after_output[-3000:]
    assert f"cleaned run {s.killed_id}" in s.after_output
    with instance_for(s.home) as instance:
        dead = instance.get_run_by_id(s.killed_id)
        assert dead.status == dg.DagsterRunStatus.FAILURE
        assert "is gone" in failure_message(instance, s.killed_id)
    assert_ledger_balanced(s.platform)
    assert_no_valid_row_lost(s.platform, s.before)
    assert s.platform.query("SELECT count(DISTINCT partition_date) FROM audit.load_ledger WHERE asset = 'flights'") == [(3,)]


def test_a_run_waiting_on_a_live_holder_gives_up_and_names_it(stopped_and_killed, monkeypatch):
    s = stopped_and_killed
    monkeypatch.setenv("DAGSTER_HOME", str(s.home))
    holder = "0badc0de-0000-4000-8000-000000000001"  # a run launched elsewhere (the UI): no process tags
    with instance_for(s.home) as instance:
        instance.add_run(dg.DagsterRun(job_name="daily_job", run_id=holder, status=dg.DagsterRunStatus.STARTED))
        assert instance.event_log_storage.claim_concurrency_slot(POOL, holder, "clean__flights", 0).is_claimed
    terminal = io.StringIO()
    code = run_main_job(s.platform.settings, date(2013, 1, 3), date(2013, 1, 3), terminal=terminal, pool_wait_seconds=3)
    output = terminal.getvalue()
    assert code == 1, output
    assert f"waits for pool {POOL}, held by run {holder} (step clean/flights)" in output
    assert "gave up after" in output and "flightops runs clean RUN_ID" in output
    assert cli.main(["runs", "clean", holder]) == 0
    with instance_for(s.home) as instance:
        assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info(POOL).claimed_slots == []
        assert [r.status for r in instance.get_runs(limit=1)] == [dg.DagsterRunStatus.FAILURE]
