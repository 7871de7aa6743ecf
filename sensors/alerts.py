"""Sensors that raise alerts: a run failed; monitoring lags the newest ingested day.

They read only Dagster's own storage (runs and event log), never the DuckDB warehouse, which
fails to open while a run writes. The alert store and webhook come from `Settings.current()` at
evaluation time, i.e. the same environment (`.env` under `dagster dev`) the resources read.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from flightops.monitoring.alerts import MONITORING_LAG, RUN_FAILED, raise_alert
from flightops.settings import Settings

# A run in one of these states may still bring the monitored asset up to date: wait for it.
WAITING_OR_RUNNING = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
    """Raise a critical `run_failed` alert, once per run, with each failed step's error."""
    run = context.dagster_run
    partitions = _partition_range(run.tags)
    errors = _step_errors(context)
    where = f" for partitions {partitions[0]}..{partitions[1]}" if partitions else ""
    causes = "; ".join(f"{step}: {error}" for step, error in errors.items()) or context.failure_event.message
    raise_alert(
        Settings.current(),
        RUN_FAILED,
        f"Run {run.run_id} of job {run.job_name}{where} failed: {causes}\n"
        f"Open the run's page in the Dagster UI (`make ui`, then /runs/{run.run_id}) for the full logs; "
        "once the cause is fixed, re-execute it from failure.",
        severity="critical",
        day=partitions[0] if partitions and partitions[0] == partitions[1] else None,
        details={
            "job_name": run.job_name,
            "run_id": run.run_id,
            "partition_range": list(partitions) if partitions else None,
            "step_errors": errors,
        },
        run_id=run.run_id,
        dedup_key=f"{RUN_FAILED}:{run.run_id}",
        logger=context.log,
    )


def build_monitoring_lag_sensor(
    ingested_key: dg.AssetKey,
    monitored_key: dg.AssetKey,
    max_lag_days: int = 1,
    name: str = "monitoring_lag_sensor",
) -> dg.SensorDefinition:
    """A sensor that alerts when the monitored asset's newest day is more than `max_lag_days`
    behind the ingested asset's, and no run that would catch it up is queued or started.

    Both assets must be daily partitioned with keys like 2013-04-10.
    """

    @dg.sensor(
        name=name,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Alerts ({MONITORING_LAG}) when {monitored_key.to_user_string()} lags "
        f"{ingested_key.to_user_string()} by more than {max_lag_days} day(s) and no run of it is in progress.",
    )
    def _lag_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        return _evaluate_lag(context, ingested_key, monitored_key, max_lag_days)

    return _lag_sensor


def _evaluate_lag(
    context: dg.SensorEvaluationContext, ingested_key: dg.AssetKey, monitored_key: dg.AssetKey, max_lag_days: int
) -> dg.SkipReason:
    """Alert at most once per newest ingested day; the skip reason says what the sensor saw."""
    ingested, monitored = ingested_key.to_user_string(), monitored_key.to_user_string()
    newest_ingested = _newest_day(context.instance, ingested_key)
    if newest_ingested is None:
        return dg.SkipReason(f"{ingested} has no materialized day yet: nothing to monitor.")
    newest_monitored = _newest_day(context.instance, monitored_key)
    state = f"{ingested} reaches {newest_ingested}, {monitored} reaches {newest_monitored or 'no day yet'}"
    lag = None if newest_monitored is None else (newest_ingested - newest_monitored).days
    if lag is not None and lag <= max_lag_days:
        return dg.SkipReason(f"Monitoring is current: {state} ({lag} day(s) behind, {max_lag_days} allowed).")
    in_progress = _runs_planning(context.instance, monitored_key)
    if in_progress:
        return dg.SkipReason(f"{state}, but runs {', '.join(in_progress)} of {monitored} are queued or started: waiting for them.")
    behind = f"{lag} days behind" if lag is not None else "never materialized"
    alert = raise_alert(
        Settings.current(),
        MONITORING_LAG,
        f"Monitoring lags ingestion: {state} ({behind}, {max_lag_days} allowed) and no run of {monitored} "
        f"is queued or started. Materialize {monitored} for the missing days (Dagster UI, `make ui`), or look "
        "at its recent runs if they failed.",
        day=newest_ingested.isoformat(),
        details={
            "ingested_asset": ingested,
            "monitored_asset": monitored,
            "newest_ingested_day": newest_ingested.isoformat(),
            "newest_monitored_day": newest_monitored.isoformat() if newest_monitored else None,
            "lag_days": lag,
            "max_lag_days": max_lag_days,
        },
        dedup_key=f"{MONITORING_LAG}:{monitored}:{newest_ingested}",
        logger=context.log,
    )
    if alert is None:
        return dg.SkipReason(f"{state}; the alert for ingested day {newest_ingested} was raised before.")
    return dg.SkipReason(f"Raised alert #{alert.id}: {alert.message}")


def _newest_day(instance: dg.DagsterInstance, key: dg.AssetKey) -> date | None:
    """The newest materialized daily partition, from one grouped query on the event log.

    Not the newest materialization event: a backfill of old days may come after a new day.
    """
    partitions = instance.get_materialized_partitions(key)
    try:
        return max((date.fromisoformat(p) for p in partitions), default=None)
    except ValueError as exc:
        raise ValueError(
            f"Asset {key.to_user_string()} has a partition key that is not a day (YYYY-MM-DD): {exc}. "
            "The monitoring lag sensor compares daily partitions; build it for daily-partitioned assets only."
        ) from exc


def _runs_planning(instance: dg.DagsterInstance, key: dg.AssetKey) -> list[str]:
    """Ids of queued or started runs whose execution plan materializes `key`.

    The plan is what Dagster logs its "planned materialization" events from, so it honours asset
    selections and subsets of multi-assets.
    """
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=WAITING_OR_RUNNING))
    return [run.run_id for run in runs if key in _planned_assets(instance, run)]


def _planned_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[dg.AssetKey]:
    if run.execution_plan_snapshot_id is None:  # a run stored without a plan materializes nothing
        return set()
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    return {
        output.properties.asset_key
        for step in plan.steps
        if step.key in plan.step_keys_to_execute
        for output in step.outputs
        if output.properties is not None and output.properties.asset_key is not None
    }


def _partition_range(tags: dict[str, str]) -> tuple[str, str] | None:
    """The run's first and last partition, from a range run's tags or a single partition's tag."""
    if ASSET_PARTITION_RANGE_START_TAG in tags:
        return tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG], tags[PARTITION_NAME_TAG]
    return None


def _step_errors(context: dg.RunFailureSensorContext) -> dict[str, str]:
    """Each failed step's error with its causes ("outer <- cause"), as the run page shows them."""
    errors = {}
    for event in context.get_step_failure_events():
        error, parts = event.step_failure_data.error, []
        while error is not None:
            parts.append(error.message.strip())
            error = error.cause
        errors[event.step_key] = " <- ".join(parts)
    return errors
