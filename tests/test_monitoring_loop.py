"""The self-closing loop in-process, on real replayed days: a champion trained on winter, monitored
through a quiet window and a degraded one, the retraining sensor's requests, the retraining run.

The expected requests are derived independently of the sensor: from the figures table in DuckDB
(the per-day verdicts the monitoring asset stored) and the policy's rule written out here, while
the sensor reads the materializations' metadata from Dagster's event log.
"""

from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
import pytest

from assets.monitoring import (
    DECISIONS_TABLE,
    FEATURE_DRIFT,
    PREDICTION_HEALTH,
    REALIZED_PERFORMANCE,
    REFERENCE,
    TRIGGER_DAY_TAG,
    TRIGGER_REASONS_TAG,
)
from flightops.modeling import promotion, tracking
from flightops.monitoring import alerts
from flightops.monitoring.policy import MonitoringPolicy
from flightops.monitoring.retraining import LoopState
from sensors.retraining import retraining_sensor
from tests.conftest import DATA_LAYERS, Platform, failure_messages, keys_in_groups, private_platform

FIRST, TRAIN_END, LAST = "2013-01-01", "2013-03-10", "2013-04-30"
QUIET = ("2013-03-11", "2013-03-19")  # realized log loss at the champion's level; the weather drifts every day
DEGRADED = ("2013-03-20", "2013-04-12")  # a late-March rise of the realized log loss, then quiet again
LATER = ("2013-03-25", "2013-04-30")  # after the retraining: the new champion's days, and a mid-April rise
QUICK = {"tuning_trials": 0, "catboost_iterations": 150}
MONITORING = [FEATURE_DRIFT, PREDICTION_HEALTH, REALIZED_PERFORMANCE]
POLICY = MonitoringPolicy()


def training_config(last_day: str) -> dict:
    return {"ops": {"models__flight_delay_model": {"config": {**QUICK, "last_day": last_day}}}}


def evaluate_sensor(platform: Platform, cursor: str | None, policy: MonitoringPolicy = POLICY):
    with dg.build_sensor_context(instance=platform.instance, cursor=cursor,
                                 resources={"monitoring_policy": policy}) as context:
        result = retraining_sensor(context)
    return result, result.cursor


def degraded_days(platform: Platform, version: str) -> list[date]:
    """Days whose stored realized verdict is 'degraded' (the log_loss_rise figure's status)."""
    rows = platform.query(
        "SELECT day FROM monitoring.figures WHERE metric = 'log_loss_rise' AND slice = 'all' AND status = 'alert' "
        "AND model_version = ? ORDER BY day", [version])
    return [d for (d,) in rows]


def expected_triggers(degraded: list[date], first: date, last: date, data_end: date, policy: MonitoringPolicy,
                      last_trigger: date | None = None) -> list[date]:
    """The rule, written out: N degraded days running, then the cool-down and new-labels gates; one per batch."""
    streak, triggers, bad = 0, [], set(degraded)
    day = first
    while day <= last:
        streak = streak + 1 if day in bad else 0
        labelled_days = (day - timedelta(days=policy.label_delay_days) - data_end).days
        cooled = last_trigger is None or (day - last_trigger).days >= policy.cooldown_days
        if streak >= policy.sustained_days and cooled and labelled_days >= policy.min_new_labelled_days and not triggers:
            triggers.append(day)
            streak, last_trigger = 0, day
        day += timedelta(days=1)
    return triggers


def reference_of(platform: Platform) -> tuple[str, date]:
    version, data_end = platform.query("SELECT model_version, data_end FROM monitoring.reference_info")[0]
    return version, data_end


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Iterator[Platform]:
    """Real days replayed to the end of April, the data layers materialized, a champion on Jan 1 .. Mar 10."""
    with private_platform(tmp_path_factory.mktemp("loop")) as platform:
        platform.replay(LAST)
        data = platform.run(FIRST, LAST, selection=keys_in_groups(*DATA_LAYERS))
        assert data.success, failure_messages(data)
        from flightops.definitions import defs

        first = defs.resolve_job_def("retraining_job").execute_in_process(
            instance=platform.instance, run_config=training_config(TRAIN_END), raise_on_error=False)
        assert first.success, failure_messages(first)
        yield platform


def test_the_loop_requests_one_retraining_per_sustained_degradation_and_records_it(trained: Platform):
    platform = trained
    version, data_end = reference_of(platform)
    assert version == "1" and data_end == date(2013, 3, 10)

    # 1. A quiet window: weather drifts every day (one day's weather is nearly one value), nothing triggers.
    quiet = platform.run(*QUIET, selection=MONITORING)
    assert quiet.success, failure_messages(quiet)
    result, cursor = evaluate_sensor(platform, None)
    assert not result.run_requests, result.run_requests
    assert "no retraining warranted" in result.skip_reason.skip_message
    weather = platform.query(
        "SELECT day, value FROM monitoring.figures WHERE metric = 'drifted_share' AND feature_group = 'weather' "
        "AND day BETWEEN ? AND ?", list(QUIET))
    assert weather and all(share >= 0.5 for _, share in weather), weather  # the weather-only shift is real
    stable = platform.query(
        "SELECT max(value) FROM monitoring.figures WHERE metric = 'weighted_drifted_share' AND day BETWEEN ? AND ?",
        list(QUIET))[0][0]
    assert stable <= POLICY.stable_drift_share_threshold
    assert degraded_days(platform, "1") == []

    # 2. One range run over the degraded window: exactly the request the rule gives, once.
    degraded_run = platform.run(*DEGRADED, selection=MONITORING)
    assert degraded_run.success, failure_messages(degraded_run)
    bad = degraded_days(platform, "1")
    assert len(bad) >= 3, bad  # a sustained degradation, not a blip
    expected = expected_triggers(bad, date.fromisoformat(QUIET[0]), date.fromisoformat(DEGRADED[1]), data_end, POLICY)
    assert len(expected) == 1
    result, cursor = evaluate_sensor(platform, cursor)
    assert [r.tags[TRIGGER_DAY_TAG] for r in result.run_requests] == [expected[0].isoformat()]
    request = result.run_requests[0]
    labelled_through = expected[0] - timedelta(days=POLICY.label_delay_days)
    assert request.run_config["ops"]["models__flight_delay_model"]["config"]["last_day"] == labelled_through.isoformat()
    assert "realized performance degraded" in request.tags[TRIGGER_REASONS_TAG]
    assert alerts.count_alerts(platform.settings, alerts.RETRAIN_REQUESTED) == 1
    again, _ = evaluate_sensor(platform, cursor)  # nothing new in the event log: nothing requested twice
    assert not again.run_requests

    # 3. The retraining run: a new version, the guardrail's decision, the decision recorded.
    from flightops.definitions import defs

    run_config = training_config(labelled_through.isoformat())
    retrained = defs.resolve_job_def("retraining_job").execute_in_process(
        instance=platform.instance, run_config=run_config, tags=request.tags, raise_on_error=False)
    assert retrained.success, failure_messages(retrained)
    client = tracking.mlflow_client(platform.settings)
    challenger = client.get_model_version(tracking.REGISTERED_MODEL_NAME, "2")
    assert challenger.tags["promotion.decision"] in ("promoted", "rejected")
    promoted = challenger.tags["promotion.decision"] == "promoted"
    assert promotion.alias_version(client, promotion.CHAMPION) == ("2" if promoted else "1")
    row = platform.query(
        f"SELECT trigger, trigger_day, labelled_through, challenger_version, promoted, champion_before, champion_after, "
        f"reasons, before_log_loss FROM {DECISIONS_TABLE} WHERE trigger = 'monitoring'")
    assert row == [("monitoring", expected[0], labelled_through, "2", promoted, "1", "2" if promoted else "1",
                    request.tags[TRIGGER_REASONS_TAG], pytest.approx(row[0][8]))]
    assert row[0][8] > 0  # the trigger's realized log loss travelled with the run
    version, data_end = reference_of(platform)
    assert (version, data_end) == (("2", labelled_through) if promoted else ("1", date(2013, 3, 10)))

    # 4. Monitoring goes on over the champion's later days: the decision gets its 7-day figures after, and a
    #    longer cool-down holds the next degradation back while the default lets exactly the rule's request through.
    later = platform.run(*LATER, selection=[REFERENCE, *MONITORING])
    assert later.success, failure_messages(later)
    after = platform.query(f"SELECT after_day, after_log_loss FROM {DECISIONS_TABLE} WHERE trigger = 'monitoring'")[0]
    first_full = platform.query(
        "SELECT day, value FROM monitoring.figures WHERE metric = 'log_loss' AND feature_group = 'performance' "
        "AND slice = 'all' AND model_version = ? AND window_start > ? "
        "AND date_diff('day', window_start, window_end) + 1 >= ? ORDER BY day LIMIT 1",
        [version, labelled_through, POLICY.window_days])[0]
    assert after == first_full

    state = LoopState.from_cursor(cursor)
    last_judged = date.fromisoformat(state.last_day)
    bad = degraded_days(platform, version)
    window = (last_judged + timedelta(days=1), date.fromisoformat(LATER[1]))
    with_default = expected_triggers([d for d in bad if d >= window[0]], *window, data_end, POLICY, expected[0])
    strict = MonitoringPolicy(cooldown_days=60)
    assert expected_triggers([d for d in bad if d >= window[0]], *window, data_end, strict, expected[0]) == []
    held, _ = evaluate_sensor(platform, cursor, strict)
    assert not held.run_requests
    result, _ = evaluate_sensor(platform, cursor)
    assert [r.tags[TRIGGER_DAY_TAG] for r in result.run_requests] == [d.isoformat() for d in with_default]
