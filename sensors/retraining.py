"""The retraining sensor: reads the monitoring materializations from Dagster's event log, applies the
policy's rule (flightops.monitoring.retraining) and launches the retraining job when warranted.

It never opens the DuckDB warehouse (that fails while a run writes): the per-day summaries and the
champion's reference are in the materializations' metadata. `@asset_sensor` only sees the newest
event and keeps a bare cursor (dagster issue 32853), and a range run writes one event per
partition with the same run-level metadata; so this is a plain sensor reading every new event in
order, with a JSON cursor that also keeps the degradation streak and the last trigger (cool-down).
"""

from __future__ import annotations

import json
from datetime import date

import dagster as dg

from assets.features import LABELS
from assets.monitoring import (
    DAILY_SUMMARIES,
    REFERENCE,
    SUMMARY_KEY,
    TRIGGER_DAY_TAG,
    TRIGGER_FIGURES_TAG,
    TRIGGER_REASONS_TAG,
    TRIGGER_TAG,
)
from flightops.jobs import RETRAINING_JOB_NAME, retraining_job
from flightops.monitoring import alerts
from flightops.monitoring.policy import MonitoringPolicy
from flightops.monitoring.retraining import LoopState, Trigger, judge
from flightops.settings import Settings
from sensors.alerts import WAITING_OR_RUNNING

EVENTS_PER_TICK = 200
FIRST_MODEL = "first_model"  # the trigger tag of the request for a first model, when no champion exists


def _champion(instance: dg.DagsterInstance) -> tuple[str, str] | None:
    """The version and data end of the champion that monitoring currently compares against."""
    event = instance.get_latest_materialization_event(REFERENCE)
    if event is None:
        return None
    meta = event.asset_materialization.metadata
    return str(meta["model_version"].value), str(meta["data_end"].value)


def _last_triggered_run_day(instance: dg.DagsterInstance) -> str | None:
    """The trigger day of the newest retraining run this sensor launched: the cool-down survives a cursor reset."""
    runs = instance.get_runs(dg.RunsFilter(job_name=RETRAINING_JOB_NAME, tags={TRIGGER_TAG: "monitoring"}), limit=1)
    return runs[0].tags.get(TRIGGER_DAY_TAG) if runs else None


def _active_retrain(instance: dg.DagsterInstance) -> str | None:
    runs = instance.get_runs(dg.RunsFilter(job_name=RETRAINING_JOB_NAME, statuses=WAITING_OR_RUNNING), limit=1)
    return runs[0].run_id if runs else None


def _training_config(last_day: date, policy: MonitoringPolicy) -> dict:
    training = {"last_day": last_day.isoformat()}
    if policy.retrain_tuning_trials is not None:
        training["tuning_trials"] = policy.retrain_tuning_trials
    return training


def run_request(trigger: Trigger, policy: MonitoringPolicy) -> dg.RunRequest:
    """The retraining run: training ends at the last labelled day; tags carry the reasons and figures."""
    return dg.RunRequest(
        run_key=trigger.run_key,
        run_config={"ops": {"models__flight_delay_model": {"config": _training_config(trigger.labelled_through, policy)}}},
        tags={
            TRIGGER_TAG: "monitoring",
            TRIGGER_DAY_TAG: trigger.day.isoformat(),
            TRIGGER_REASONS_TAG: "; ".join(trigger.reasons),
            TRIGGER_FIGURES_TAG: json.dumps({k: v for k, v in trigger.figures.items() if k != "checks"}, sort_keys=True),
        },
    )


def _first_model(context: dg.SensorEvaluationContext, policy: MonitoringPolicy, state: LoopState) -> dg.SensorResult:
    """No champion is watched yet: once enough labelled days are in, ask for the first model (once)."""
    labelled = sorted(context.instance.get_materialized_partitions(LABELS))
    if len(labelled) < policy.min_new_labelled_days:
        return dg.SensorResult(
            skip_reason=f"No champion yet and {len(labelled)} labelled day(s) materialized; the first model is "
            f"requested from {policy.min_new_labelled_days} on.", cursor=state.to_cursor())
    active = _active_retrain(context.instance)
    if active is not None:
        return dg.SensorResult(skip_reason=f"No champion yet; retraining run {active} is queued or running.",
                               cursor=state.to_cursor())
    last_day = date.fromisoformat(labelled[-1])
    return dg.SensorResult(cursor=state.to_cursor(), run_requests=[dg.RunRequest(
        run_key=f"first-model-{last_day.isoformat()}",
        run_config={"ops": {"models__flight_delay_model": {"config": _training_config(last_day, policy)}}},
        tags={TRIGGER_TAG: FIRST_MODEL, TRIGGER_REASONS_TAG: f"no champion yet; {len(labelled)} labelled days"},
    )])


@dg.sensor(job=retraining_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Launches retraining_job on a sustained realized-performance drop, or an estimated drop with "
           "drift of the stable inputs; cool-down, minimum new labelled days and one run at a time. With no "
           "champion yet, asks once for the first model when enough labelled days are in.")
def retraining_sensor(context: dg.SensorEvaluationContext, monitoring_policy: MonitoringPolicy) -> dg.SensorResult:
    state = LoopState.from_cursor(context.cursor)
    champion = _champion(context.instance)
    if champion is None:
        return _first_model(context, monitoring_policy, state)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SUMMARY_KEY, after_storage_id=state.after_storage_id),
        limit=EVENTS_PER_TICK, ascending=True,
    ).records
    if not records:
        return dg.SensorResult(skip_reason="No new monitoring materialization.", cursor=state.to_cursor())
    days: dict[str, dict] = {}
    for record in records:
        meta = record.asset_materialization.metadata
        if DAILY_SUMMARIES in meta:
            days.update(meta[DAILY_SUMMARIES].value)
    state.after_storage_id = records[-1].storage_id
    version, data_end = champion
    launched = _last_triggered_run_day(context.instance)
    if launched and (state.last_trigger_day is None or launched > state.last_trigger_day):
        state.last_trigger_day = launched
    judgement = judge(days, state, monitoring_policy, champion_version=version,
                      champion_data_end=date.fromisoformat(data_end), active_retrain_run=_active_retrain(context.instance))
    for held in judgement.held_back:
        context.log.info(f"Retraining warranted but held back: {held}")
    settings = Settings.current()
    for trigger in judgement.triggers:
        alerts.raise_alert(
            settings, alerts.RETRAIN_REQUESTED,
            f"Retraining of champion v{trigger.model_version} requested for {trigger.day}: {'; '.join(trigger.reasons)}",
            day=trigger.day.isoformat(), details={k: v for k, v in trigger.figures.items() if k != "checks"},
            dedup_key=trigger.run_key, logger=context.log,
        )
    if not judgement.triggers:
        reason = f"Judged {len(days)} monitored day(s) of v{version}: no retraining warranted"
        if judgement.held_back:
            reason += f" ({len(judgement.held_back)} held back by a gate: {judgement.held_back[-1]})"
        return dg.SensorResult(skip_reason=reason, cursor=state.to_cursor())
    return dg.SensorResult(run_requests=[run_request(t, monitoring_policy) for t in judgement.triggers], cursor=state.to_cursor())
