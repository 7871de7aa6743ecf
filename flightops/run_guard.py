"""A `flightops run` process and its Dagster run: stop it cleanly, and clean up after a dead one.

Dagster knows nothing of a `flightops run` process once it is killed: its run stays STARTED and
keeps its slot of the duckdb_warehouse pool. So the run records its process in its tags (pid, host,
start time), and the next run (or `flightops runs clean`) marks a run whose process is gone failed
and frees its slots. Every step runs inside that process, dbt included (flightops.dbt_runner), so
nothing of a killed run goes on writing. `RunGuard` makes SIGINT/SIGTERM stop a run even while a step waits for a
slot, and bounds that wait (FLIGHTOPS_POOL_WAIT_SECONDS).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import dagster as dg
import psutil

if TYPE_CHECKING:
    from flightops.run_output import RunOutput

PID_TAG, HOST_TAG, PROCESS_START_TAG = "flightops/pid", "flightops/host", "flightops/process_start"
UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
              dg.DagsterRunStatus.CANCELING]
DEAD_RUN_CHECK_SECONDS = 10.0  # while a step waits, how often to look whether the holder died
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
CLEAN_COMMAND = ".venv/bin/flightops runs clean"


def process_start(pid: int) -> str | None:
    """When the process started (psutil's create time), None when it is gone.

    With the pid it tells a live process from a later one that reuses the pid.
    """
    try:
        return repr(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return None


def process_tags(pid: int | None = None) -> dict[str, str]:
    """A process of this host (default: this one) as run tags: pid, host and start time."""
    pid = os.getpid() if pid is None else pid
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), PROCESS_START_TAG: process_start(pid) or ""}


def run_process_gone(run: dg.DagsterRun) -> bool:
    """Whether the process recorded in `run`'s tags (a `flightops run`, or a run the warm launcher forked) has ended
    (False: alive, or unknown)."""
    tags = run.tags
    if PID_TAG not in tags or tags.get(HOST_TAG) != socket.gethostname():
        return False
    return process_start(int(tags[PID_TAG])) != (tags.get(PROCESS_START_TAG) or None)


# Before a run's first step Dagster stores a "planned materialization" event per asset and day, one
# SQLite commit each: 41 s of a full-year run (10,950 events, issue 10). With this variable it stores one
# per asset, for the run's range of days; it then no longer marks a failed run's days failed in the
# partition status (the UI's red days), so `mark_unwritten_days_failed` does
# (flightops.pipeline.materialize after a failed run, `clean_run` for a run that died).
SUBSET_PLANNED_EVENTS = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def mark_unwritten_days_failed(instance: dg.DagsterInstance, run_id: str) -> int:
    """After a failed run: a per-day planned event for every asset day it planned but did not write.

    Dagster marks a day failed when its newest planned event belongs to a failed run and no
    materialization followed it; these events make that hold as for a run planned day by day. Only a
    failed run pays for them, and only for its unwritten days. Returns how many were stored.
    """
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent, DagsterEventType

    def records(event_type: DagsterEventType) -> list:
        return [record.event_log_entry.dagster_event
                for record in instance.get_records_for_run(run_id, of_type=event_type, limit=None).records]

    written = {(event.asset_key, event.partition) for event in records(DagsterEventType.ASSET_MATERIALIZATION)}
    unwritten = [
        DagsterEvent.build_asset_materialization_planned_event(
            planned.job_name, planned.step_key, AssetMaterializationPlannedData(data.asset_key, partition=day))
        for planned in records(DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        if (data := planned.event_specific_data).partitions_subset is not None
        for day in data.partitions_subset.get_partition_keys()
        if (data.asset_key, day) not in written
    ]
    for event in unwritten:
        instance.report_dagster_event(event, run_id, logging.DEBUG)
    return len(unwritten)


def clean_run(instance: dg.DagsterInstance, run: dg.DagsterRun, reason: str) -> str:
    """Mark the run failed with `reason` (if unfinished) and free its pool slots."""
    if run.status in UNFINISHED:
        instance.report_run_failed(run, message=reason)
        mark_unwritten_days_failed(instance, run.run_id)
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return f"cleaned run {run.run_id} ({run.job_name}): marked failed ({reason}), pool slots freed"


def clean_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Clean every unfinished run whose `flightops run` process is gone (killed, machine restarted)."""
    return [clean_run(instance, run, f"its process {run.tags[PID_TAG]} on {run.tags[HOST_TAG]} is gone (killed?)")
            for run in instance.get_runs(dg.RunsFilter(statuses=UNFINISHED)) if run_process_gone(run)]


class RunGuard:
    """Stops a run in process on SIGINT/SIGTERM, or when a step waits for a pool slot too long.

    Dagster only sets a flag on SIGINT/SIGTERM between steps (and the in-process executor never reads it
    while a step waits for a slot), so the guard raises Dagster's own interruption in the main thread:
    Dagster then fails the step and the run, frees the run's slots, and dagster-dbt stops dbt. The
    watcher thread reports what a waiting step waits for, cleans a holder that died meanwhile, and
    after `wait_seconds` interrupts the run the same way.
    """

    def __init__(self, instance: dg.DagsterInstance, run_id: str, out: RunOutput, wait_seconds: float) -> None:
        self.instance, self.run_id, self.out, self.wait_seconds = instance, run_id, out, wait_seconds
        self.reason: str | None = None
        self.exit_code = 1
        self.waiting: dict[str, tuple[str, float]] = {}  # step key -> (pool, since: time.monotonic())
        self._holders: dict[str, str] = {}  # step key -> the holders last reported
        self._main = threading.main_thread().ident
        self._done = threading.Event()

    def stop(self, signum, frame) -> None:
        from dagster._core.errors import DagsterExecutionInterruptedError

        if self.reason is None:
            self.reason = f"stopped by {signal.Signals(signum).name}"
            self.exit_code = EXIT_CODES.get(signum, 1)
        raise DagsterExecutionInterruptedError(self.reason)

    def install(self) -> None:
        for signum in EXIT_CODES:
            signal.signal(signum, self.stop)

    def on_event(self, entry) -> None:
        """Listener: Dagster swaps the signal handlers when execution starts; take them back once it has."""
        if not entry.is_dagster_event:
            return
        event = entry.get_dagster_event()
        if event.event_type == dg.DagsterEventType.LOGS_CAPTURED:
            self.install()
        elif event.event_type == dg.DagsterEventType.ENGINE_EVENT and event.step_key and "pool" in (
                event.engine_event_data.metadata or {}):
            self.waiting.setdefault(event.step_key, (event.engine_event_data.metadata["pool"].value, time.monotonic()))
        elif event.event_type == dg.DagsterEventType.STEP_START:
            self.waiting.pop(event.step_key, None)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        previous = {signum: signal.getsignal(signum) for signum in EXIT_CODES}
        self.install()
        thread = threading.Thread(target=self._watch, name="flightops-run-guard", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._done.set()
            thread.join(timeout=5)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _watch(self) -> None:
        last_check = 0.0
        while not self._done.wait(1.0):
            for step, (pool, since) in list(self.waiting.items()):
                if time.monotonic() - last_check >= DEAD_RUN_CHECK_SECONDS:
                    last_check = time.monotonic()
                    for line in clean_dead_runs(self.instance):
                        self.out.line(line)
                self._report_wait(step, pool, since)

    def _report_wait(self, step: str, pool: str, since: float) -> None:
        from flightops.run_output import duration, step_label

        claims = self.instance.event_log_storage.get_concurrency_info(pool).claimed_slots
        holders = ", ".join(f"run {c.run_id} (step {step_label(c.step_key)})" for c in claims if c.run_id != self.run_id)
        waited = time.monotonic() - since
        if waited >= self.wait_seconds and self.reason is None:
            self.reason = (f"gave up after {duration(waited)}: {step_label(step)} waited for pool {pool}, held by "
                           f"{holders or 'another run'}. If that run is dead or stuck, clean it "
                           f"(`{CLEAN_COMMAND} RUN_ID`, or stop its process), then run again")
            signal.pthread_kill(self._main, signal.SIGINT)
        elif holders != self._holders.get(step):
            self._holders[step] = holders
            self.out.line(f"{step_label(step)} waits for pool {pool}, held by {holders or 'no run now'}; "
                          f"gives up after {duration(self.wait_seconds)}")


@contextlib.contextmanager
def exported(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in the environment for the block (dbt and Dagster read them there); then as before."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a step was interrupted: inside a step Dagster's own handler takes SIGINT/SIGTERM, not the guard's."""
    return any(event.is_step_failure and event.step_failure_data.error is not None
               and event.step_failure_data.error.cls_name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt")
               for event in result.all_events)
