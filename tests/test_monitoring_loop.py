"""The self-closing loop on real replayed days: a champion trained on winter, monitored through a
quiet window and a degraded one, the retraining sensor's requests, the retraining run; then the
same platform under the real daemon (`dagster dev`), where a replay of new days is all it takes.

The expected requests are derived independently of the sensor: from the figures table in DuckDB
(the per-day verdicts the monitoring asset stored) and the policy's rule written out here, while
the sensor reads the materializations' metadata from Dagster's event log. The two tests share one
platform (the second goes on from the first's end state) to keep the suite short.
"""

import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from flightops.modeling import promotion, tracking
from flightops.monitoring import alerts
from flightops.monitoring.policy import MonitoringPolicy
from flightops.pipeline import DATA_LAYERS, keys_in_groups
from flightops.run_guard import PID_TAG
from tests.dagster_dev import dagster_dev, wait_for
from tests.platform_harness import Platform, failure_messages, private_platform

# The code location (assets/, sensors/, flightops.jobs) is imported inside the tests that use it: collecting
# the suite loads no definitions, and a broken definition fails those tests, not the collection.

FIRST, TRAIN_END, LAST = "2013-01-01", "2013-03-10", "2013-04-12"
QUIET = ("2013-03-11", "2013-03-19")  # realized log loss at the champion's level; the weather drifts every day
DEGRADED = ("2013-03-20", "2013-04-12")  # a late-March rise of the realized log loss, then quiet again
LATER = ("2013-03-25", "2013-04-12")  # after the retraining: the champion's days after it
DAEMON_LAST = "2013-04-30"  # replayed under the daemon: the second half of April brings a strong delay rise
QUICK = {"tuning_trials": 0, "catboost_iterations": 150}
POLICY = MonitoringPolicy()


def training_config(last_day: str) -> dict:
    return {"ops": {"models__flight_delay_model": {"config": {**QUICK, "last_day": last_day}}}}


def monitoring_assets() -> list[dg.AssetKey]:
    """The three daily monitoring assets (one step writes them)."""
    from assets.monitoring import FEATURE_DRIFT, PREDICTION_HEALTH, REALIZED_PERFORMANCE

    return [FEATURE_DRIFT, PREDICTION_HEALTH, REALIZED_PERFORMANCE]


def evaluate_sensor(platform: Platform, cursor: str | None, policy: MonitoringPolicy = POLICY):
    from sensors.retraining import retraining_sensor

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
def loop_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("loop")


@pytest.fixture(scope="module")
def trained(loop_dir: Path) -> Iterator[Platform]:
    """Real days replayed to Apr 12, the data layers materialized, a champion on Jan 1 .. Mar 10; the Dagster
    instance is a persistent one (DAGSTER_HOME under the test's folder) that `dagster dev` can serve later."""
    from assets.monitoring import TRIGGER_TAG

    with private_platform(loop_dir / "platform", instance_home=loop_dir / "dagster_home") as platform:
        platform.replay(LAST)
        data = platform.run(FIRST, LAST, selection=keys_in_groups(*DATA_LAYERS))
        assert data.success, failure_messages(data)
        # No champion yet: the sensor asks once for a first model on every labelled day. (The test trains
        # its own, on winter only, to set up the scenario.)
        result, _ = evaluate_sensor(platform, None)
        assert [(r.tags[TRIGGER_TAG], r.run_config["ops"]["models__flight_delay_model"]["config"]["last_day"])
                for r in result.run_requests] == [("first_model", LAST)]
        from flightops.definitions import defs

        first = defs.resolve_job_def("retraining_job").execute_in_process(
            instance=platform.instance, run_config=training_config(TRAIN_END), raise_on_error=False)
        assert first.success, failure_messages(first)
        yield platform


def test_the_loop_requests_one_retraining_per_sustained_degradation_and_records_it(trained: Platform):
    from assets.monitoring import DECISIONS_TABLE, REFERENCE, TRIGGER_DAY_TAG, TRIGGER_REASONS_TAG

    platform = trained
    version, data_end = reference_of(platform)
    assert version == "1" and data_end == date(2013, 3, 10)

    # 1. A quiet window: weather drifts every day (one day's weather is nearly one value), nothing triggers.
    quiet = platform.run(*QUIET, selection=monitoring_assets())
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
    degraded_run = platform.run(*DEGRADED, selection=monitoring_assets())
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
    assert promotion.alias_version(client, promotion.CHAMPION_ALIAS) == ("2" if promoted else "1")
    row = platform.query(
        f"SELECT trigger, trigger_day, labelled_through, challenger_version, promoted, champion_before, champion_after, "
        f"reasons, before_log_loss FROM {DECISIONS_TABLE} WHERE trigger = 'monitoring'")
    assert row == [("monitoring", expected[0], labelled_through, "2", promoted, "1", "2" if promoted else "1",
                    request.tags[TRIGGER_REASONS_TAG], pytest.approx(row[0][8]))]
    assert row[0][8] > 0  # the trigger's realized log loss travelled with the run
    version, data_end = reference_of(platform)
    assert (version, data_end) == (("2", labelled_through) if promoted else ("1", date(2013, 3, 10)))

    # 4. Monitoring goes on over the champion's later days: the decision gets its 7-day figures after.
    later = platform.run(*LATER, selection=[REFERENCE, *monitoring_assets()])
    assert later.success, failure_messages(later)
    after = platform.query(f"SELECT after_day, after_log_loss FROM {DECISIONS_TABLE} WHERE trigger = 'monitoring'")[0]
    first_full = platform.query(
        "SELECT day, value FROM monitoring.figures WHERE metric = 'log_loss' AND feature_group = 'performance' "
        "AND slice = 'all' AND model_version = ? AND window_start > ? "
        "AND date_diff('day', window_start, window_end) + 1 >= ? ORDER BY day LIMIT 1",
        [version, labelled_through, POLICY.window_days])[0]
    assert after == first_full


def _runs(platform: Platform, job_name: str, tags: dict | None = None) -> list[dg.DagsterRun]:
    return list(platform.instance.get_runs(dg.RunsFilter(job_name=job_name, tags=tags or {})))


def _finished(run: dg.DagsterRun) -> dg.DagsterRun | None:
    if run.status == dg.DagsterRunStatus.FAILURE:
        raise AssertionError(f"run {run.run_id} of {run.job_name} failed; see its events in the instance")
    return run if run.status == dg.DagsterRunStatus.SUCCESS else None


@pytest.mark.daemon
def test_under_the_daemon_a_replay_is_all_it_takes(trained: Platform, loop_dir: Path):
    """`dagster dev` with the sensors on by default: replaying new days gives the daily run, its monitoring
    and the retraining run, with no further command; the outcome is read from the instance."""
    from assets.monitoring import DECISIONS_TABLE, TRIGGER_DAY_TAG, TRIGGER_TAG
    from flightops.jobs import RETRAINING_JOB_NAME

    platform = trained
    home = loop_dir / "dagster_home"
    # After the in-process test, its retraining (Mar 25) is the last trigger; run alone, there is none.
    triggered_before = _runs(platform, RETRAINING_JOB_NAME, {TRIGGER_TAG: "monitoring"})
    before_ids = {r.run_id for r in triggered_before}
    last_trigger = max((date.fromisoformat(r.tags[TRIGGER_DAY_TAG]) for r in triggered_before), default=None)
    champion_before, data_end_before = reference_of(platform)
    # The days arrive before the daemon starts: a landing sensor tick in the middle of the replay would rightly
    # launch a run for the days delivered so far, and this test expects one run for all of them.
    platform.replay(DAEMON_LAST)
    # Automatic retraining without tuning: the loop, not Optuna, is under test here.
    with dagster_dev(home, {**os.environ, "FLIGHTOPS_RETRAIN_TUNING_TRIALS": "0"}):
        daily = wait_for(lambda: next((r for r in _runs(platform, "daily_job") if _finished(r)), None),
                         timeout=420, what="the landing sensor's daily_job run to succeed")
        retraining = wait_for(
            lambda: next((r for r in _runs(platform, RETRAINING_JOB_NAME, {TRIGGER_TAG: "monitoring"})
                          if r.run_id not in before_ids and _finished(r)), None),
            timeout=420, what="the retraining sensor's retraining_job run to succeed")
    # Both runs were forked from the warm launcher's worker (dagster.yaml), which imported the code location once.
    for run in (daily, retraining):
        assert PID_TAG in platform.instance.get_run_by_id(run.run_id).tags
        assert any("from the warm worker" in entry.message
                   for entry in platform.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT))
    # One daily run covered exactly the new days (the loaded ones were known from the event log).
    assert (daily.tags["dagster/asset_partition_range_start"], daily.tags["dagster/asset_partition_range_end"]) == (
        "2013-04-13", DAEMON_LAST)
    assert len(_runs(platform, "daily_job")) == 1
    # The retraining came once, on the day the rule gives for the stored figures of the champion it watched.
    assert len(_runs(platform, RETRAINING_JOB_NAME, {TRIGGER_TAG: "monitoring"})) == len(before_ids) + 1
    bad = degraded_days(platform, champion_before)
    monitored_from = platform.query("SELECT min(day) FROM monitoring.figures WHERE model_version = ?",
                                    [champion_before])[0][0]
    expected = expected_triggers(bad, monitored_from, date.fromisoformat(DAEMON_LAST), data_end_before, POLICY,
                                 last_trigger)
    assert expected and expected[0] > date.fromisoformat(LAST), (bad, expected)
    assert retraining.tags[TRIGGER_DAY_TAG] == expected[0].isoformat()
    decisions = platform.query(
        f"SELECT trigger_day, challenger_version, champion_before, champion_after FROM {DECISIONS_TABLE} "
        "WHERE trigger = 'monitoring' ORDER BY trigger_day")
    assert [d[0] for d in decisions] == [*([last_trigger] if last_trigger else []), expected[0]]
    newest = tracking.mlflow_client(platform.settings).search_model_versions(
        f"name = '{tracking.REGISTERED_MODEL_NAME}'", order_by=["version_number DESC"], max_results=1)[0].version
    assert decisions[-1][1:3] == (str(newest), champion_before)
    champion = promotion.alias_version(tracking.mlflow_client(platform.settings), promotion.CHAMPION_ALIAS)
    assert champion == decisions[-1][3] and reference_of(platform)[0] == champion
