"""Alerts: the SQLite store, the log and a real webhook receiver; the run-failure and lag sensors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from flightops.monitoring import alerts
from flightops.settings import REPO_ROOT, Settings
from sensors.alerts import build_monitoring_lag_sensor, run_failure_alert_sensor
from tests.platform_harness import Platform


class Receiver:
    """A webhook receiver on 127.0.0.1: records each JSON body, answers with the next queued status."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []  # answered in order; 200 once empty
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"receiver says no" if status >= 400 else b"ok")

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def settings(platform: Platform) -> Settings:
    """The private platform's settings, without a webhook (.env leaves it empty)."""
    assert platform.settings.alert_webhook_url is None
    return platform.settings


def stored_rows(settings: Settings) -> list[dict]:
    import sqlite3

    with sqlite3.connect(alerts.store_path(settings)) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT * FROM alerts ORDER BY id")]


def test_alert_is_stored_logged_and_posted(settings, receiver, caplog):
    with_hook = replace(settings, alert_webhook_url=receiver.url)
    caplog.set_level(logging.WARNING, logger=alerts.__name__)

    alert = alerts.raise_alert(
        with_hook,
        alerts.CHECK_FAILING,
        "quarantine_rate above 2 % on two days running",
        day="2013-04-10",
        details={"check": "quarantine_rate", "rates": [0.031, 0.027]},
        run_id="run-1",
        dedup_key="check:quarantine_rate:2013-04-10",
    )

    assert alert is not None and alert.webhook_status == "sent 200"
    assert alerts.store_path(settings) == settings.data_dir / "monitoring" / "alerts.sqlite"
    [row] = stored_rows(settings)
    assert row["id"] == alert.id and row["created_at"] == alert.created_at
    assert row["created_at"].endswith("+00:00")  # UTC
    assert (row["kind"], row["severity"], row["day"], row["run_id"]) == ("check_failing", "warning", "2013-04-10", "run-1")
    assert row["message"] == "quarantine_rate above 2 % on two days running"
    assert json.loads(row["details"]) == {"check": "quarantine_rate", "rates": [0.031, 0.027]}
    assert (row["dedup_key"], row["webhook_status"]) == ("check:quarantine_rate:2013-04-10", "sent 200")
    assert receiver.bodies == [
        {
            "id": alert.id,
            "created_at": alert.created_at,
            "kind": "check_failing",
            "severity": "warning",
            "day": "2013-04-10",
            "message": "quarantine_rate above 2 % on two days running",
            "details": {"check": "quarantine_rate", "rates": [0.031, 0.027]},
            "run_id": "run-1",
            "dedup_key": "check:quarantine_rate:2013-04-10",
        }
    ]
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"Alert #{alert.id} check_failing (day 2013-04-10): quarantine_rate above 2 % on two days running")
    ]
    assert alerts.recent_alerts(settings) == [alert]


def test_critical_alert_is_logged_at_error_and_unset_webhook_is_recorded(settings, caplog):
    caplog.set_level(logging.WARNING, logger=alerts.__name__)

    alert = alerts.raise_alert(settings, alerts.RUN_FAILED, "run r-9 failed", severity="critical", run_id="r-9")

    assert alert.webhook_status == "not configured" and alert.day is None and alert.details == {}
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.ERROR, f"Alert #{alert.id} run_failed: run r-9 failed")]
    assert stored_rows(settings)[0]["webhook_status"] == "not configured"


def test_same_dedup_key_is_stored_and_sent_once(settings, receiver):
    with_hook = replace(settings, alert_webhook_url=receiver.url)

    first = alerts.raise_alert(with_hook, alerts.RETRAIN_REQUESTED, "retrain: AUC dropped", dedup_key="retrain:2013-04-10")
    second = alerts.raise_alert(with_hook, alerts.RETRAIN_REQUESTED, "retrain: AUC dropped", dedup_key="retrain:2013-04-10")
    third = alerts.raise_alert(with_hook, alerts.RETRAIN_REQUESTED, "retrain: AUC dropped", dedup_key="retrain:2013-04-11")

    assert first is not None and second is None and third is not None
    assert [r["dedup_key"] for r in stored_rows(settings)] == ["retrain:2013-04-10", "retrain:2013-04-11"]
    assert [b["dedup_key"] for b in receiver.bodies] == ["retrain:2013-04-10", "retrain:2013-04-11"]


def test_failing_webhook_is_retried_recorded_and_does_not_raise(settings, receiver, caplog):
    receiver.statuses = [500] * alerts.WEBHOOK_ATTEMPTS
    caplog.set_level(logging.WARNING, logger=alerts.__name__)

    alert = alerts.raise_alert(replace(settings, alert_webhook_url=receiver.url), alerts.MONITORING_LAG, "lagging")

    expected = f"failed: HTTP 500 'receiver says no' (attempt {alerts.WEBHOOK_ATTEMPTS} of {alerts.WEBHOOK_ATTEMPTS})"
    assert alert.webhook_status == expected
    assert stored_rows(settings)[0]["webhook_status"] == expected
    assert len(receiver.bodies) == alerts.WEBHOOK_ATTEMPTS
    error = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(error) == 1 and receiver.url in error[0].getMessage() and expected in error[0].getMessage()


def test_webhook_recovering_after_a_500_is_sent(settings, receiver):
    receiver.statuses = [503]

    alert = alerts.raise_alert(replace(settings, alert_webhook_url=receiver.url), alerts.MONITORING_LAG, "lagging")

    assert alert.webhook_status == "sent 200"
    assert len(receiver.bodies) == 2


def test_client_error_is_not_retried(settings, receiver):
    receiver.statuses = [404]

    alert = alerts.raise_alert(replace(settings, alert_webhook_url=receiver.url), alerts.MONITORING_LAG, "lagging")

    assert alert.webhook_status == f"failed: HTTP 404 'receiver says no' (attempt 1 of {alerts.WEBHOOK_ATTEMPTS})"
    assert len(receiver.bodies) == 1


def test_unreachable_webhook_is_recorded_and_does_not_raise(settings, receiver):
    url = receiver.url
    receiver.server.shutdown()
    receiver.server.server_close()  # nothing listens on the port any more

    alert = alerts.raise_alert(replace(settings, alert_webhook_url=url), alerts.RUN_FAILED, "run failed", severity="critical")

    assert alert.webhook_status.startswith("failed: ConnectionError")
    assert alert.webhook_status.endswith(f"(attempt {alerts.WEBHOOK_ATTEMPTS} of {alerts.WEBHOOK_ATTEMPTS})")
    assert stored_rows(settings)[0]["webhook_status"] == alert.webhook_status


def test_unknown_severity_is_refused(settings):
    with pytest.raises(ValueError, match="severity 'urgent'"):
        alerts.raise_alert(settings, alerts.RUN_FAILED, "x", severity="urgent")
    assert not alerts.store_path(settings).exists()


def test_counts_and_recent_alerts_per_kind(settings):
    assert alerts.count_alerts(settings) == 0 and alerts.recent_alerts(settings) == []
    assert not alerts.store_path(settings).exists()  # reading never creates the store

    for i in range(3):
        alerts.raise_alert(settings, alerts.CHECK_FAILING, f"check {i}")
    alerts.raise_alert(settings, alerts.RETRAIN_REJECTED_DEGRADED, "champion kept while degraded")

    assert alerts.count_alerts(settings) == 4
    assert alerts.count_alerts(settings, alerts.CHECK_FAILING) == 3
    assert alerts.count_alerts(settings, alerts.RETRAIN_REJECTED_DEGRADED) == 1
    assert alerts.count_alerts(settings, alerts.MONITORING_LAG) == 0
    assert [a.message for a in alerts.recent_alerts(settings)] == ["champion kept while degraded", "check 2", "check 1", "check 0"]
    assert [a.message for a in alerts.recent_alerts(settings, alerts.CHECK_FAILING, limit=2)] == ["check 2", "check 1"]


WRITER = """
import sys
from flightops.monitoring import alerts
from flightops.settings import Settings

settings, name = Settings.current(), sys.argv[1]
for i in range(50):
    alerts.raise_alert(settings, alerts.CHECK_FAILING, f"{name} {i}", dedup_key=f"{name}-{i}")
    if i % 5 == 0:  # both writers race for the same ten keys
        alerts.raise_alert(settings, alerts.MONITORING_LAG, f"{name} shared {i}", dedup_key=f"shared-{i}")
"""


def test_two_processes_write_concurrently(settings):
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, name], cwd=REPO_ROOT, env=dict(os.environ), stderr=subprocess.PIPE)
        for name in ("a", "b")
    ]
    for w in writers:
        _, stderr = w.communicate(timeout=120)
        assert w.returncode == 0, stderr.decode()

    assert alerts.count_alerts(settings, alerts.CHECK_FAILING) == 100
    assert alerts.count_alerts(settings, alerts.MONITORING_LAG) == 10
    assert sorted(r["dedup_key"] for r in stored_rows(settings) if r["kind"] == "monitoring_lag") == sorted(
        f"shared-{i}" for i in range(0, 50, 5)
    )


# ---- run-failure sensor -------------------------------------------------------------------

DAYS = dg.DailyPartitionsDefinition(start_date="2013-04-01", end_date="2013-05-01")


@dg.asset(partitions_def=DAYS)
def broken_export() -> None:
    raise RuntimeError("column dep_delay is missing from flights_2013-04-02.csv; fix the export and re-run the day")


def test_run_failure_sensor_alerts_once_with_the_step_error(platform: Platform):
    job = dg.Definitions(assets=[broken_export], jobs=[dg.define_asset_job("export_job")]).resolve_job_def("export_job")
    result = job.execute_in_process(
        instance=platform.instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: "2013-04-01", ASSET_PARTITION_RANGE_END_TAG: "2013-04-03"},
        raise_on_error=False,
    )
    assert not result.success
    run_id = result.dagster_run.run_id

    for _ in range(2):  # the daemon may evaluate a failure again: one alert
        context = dg.build_run_status_sensor_context(
            sensor_name=run_failure_alert_sensor.name,
            dagster_event=result.get_run_failure_event(),
            dagster_instance=platform.instance,
            dagster_run=result.dagster_run,
        )
        run_failure_alert_sensor(context)

    [alert] = alerts.recent_alerts(platform.settings)
    assert (alert.kind, alert.severity, alert.run_id, alert.day) == ("run_failed", "critical", run_id, None)
    assert alert.dedup_key == f"run_failed:{run_id}"
    assert alert.details["job_name"] == "export_job" and alert.details["partition_range"] == ["2013-04-01", "2013-04-03"]
    step_error = alert.details["step_errors"]["broken_export"]
    assert step_error.endswith("column dep_delay is missing from flights_2013-04-02.csv; fix the export and re-run the day")
    assert alert.message.startswith(f"Run {run_id} of job export_job for partitions 2013-04-01..2013-04-03 failed: broken_export: ")
    assert "column dep_delay is missing from flights_2013-04-02.csv" in alert.message
    assert f"`make ui`, then /runs/{run_id}" in alert.message
    assert run_failure_alert_sensor.default_status == dg.DefaultSensorStatus.RUNNING


# ---- monitoring-lag sensor -----------------------------------------------------------------


@dg.asset(partitions_def=DAYS)
def ingested() -> None:
    """Stands in for the newest ingested data."""


@dg.asset(partitions_def=DAYS, deps=[ingested])
def monitored() -> None:
    """Stands in for the monitoring asset."""


LAG_DEFS = dg.Definitions(
    assets=[ingested, monitored],
    jobs=[dg.define_asset_job("ingest_job", selection=[ingested]), dg.define_asset_job("monitor_job", selection=[monitored])],
)
lag_sensor = build_monitoring_lag_sensor(ingested.key, monitored.key, max_lag_days=1)


def report_days(instance: dg.DagsterInstance, key: dg.AssetKey, *days: str) -> None:
    for day in days:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=day))


def evaluate(instance: dg.DagsterInstance) -> str:
    result = lag_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    return result.skip_message


def start_run(instance: dg.DagsterInstance, job_name: str, status: dg.DagsterRunStatus) -> str:
    """A run of the job for 2013-04-10 with its execution plan, stored in `status`.

    A queued run must name the code location it will be launched from; a registered name will do.
    """
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("flightops"), "__repository__"), job_name)
    job = LAG_DEFS.resolve_job_def(job_name)
    run = instance.create_run_for_job(job, status=status, remote_job_origin=origin, tags={"dagster/partition": "2013-04-10"})
    return run.run_id


def test_lag_sensor_alerts_once_when_monitoring_is_two_days_behind(platform: Platform):
    instance = platform.instance
    assert evaluate(instance) == "ingested has no materialized day yet: nothing to monitor."
    # Real runs for the older days, runless reports for the newer: both are materializations.
    dg.materialize([ingested], partition_key="2013-04-07", instance=instance)
    dg.materialize([ingested, monitored], partition_key="2013-04-08", instance=instance)
    report_days(instance, ingested.key, "2013-04-09", "2013-04-10")
    report_days(instance, ingested.key, "2013-04-03")  # a late backfill of an old day is not the newest

    message = evaluate(instance)

    [alert] = alerts.recent_alerts(platform.settings)
    assert message == f"Raised alert #{alert.id}: {alert.message}"
    assert (alert.kind, alert.severity, alert.day) == ("monitoring_lag", "warning", "2013-04-10")
    assert alert.dedup_key == "monitoring_lag:monitored:2013-04-10"
    assert alert.details == {
        "ingested_asset": "ingested",
        "monitored_asset": "monitored",
        "newest_ingested_day": "2013-04-10",
        "newest_monitored_day": "2013-04-08",
        "lag_days": 2,
        "max_lag_days": 1,
    }
    assert alert.message.startswith("Monitoring lags ingestion: ingested reaches 2013-04-10, monitored reaches 2013-04-08 (2 days behind")

    assert evaluate(instance) == (
        "ingested reaches 2013-04-10, monitored reaches 2013-04-08; the alert for ingested day 2013-04-10 was raised before."
    )
    assert alerts.count_alerts(platform.settings) == 1

    report_days(instance, ingested.key, "2013-04-11")  # a new day lagging: a new alert
    evaluate(instance)
    assert [a.day for a in alerts.recent_alerts(platform.settings)] == ["2013-04-11", "2013-04-10"]


def test_lag_sensor_is_quiet_within_the_allowed_lag(platform: Platform):
    report_days(platform.instance, ingested.key, "2013-04-09", "2013-04-10")
    report_days(platform.instance, monitored.key, "2013-04-09")

    assert evaluate(platform.instance) == (
        "Monitoring is current: ingested reaches 2013-04-10, monitored reaches 2013-04-09 (1 day(s) behind, 1 allowed)."
    )
    assert alerts.count_alerts(platform.settings) == 0


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.QUEUED])
def test_lag_sensor_waits_for_a_run_of_the_monitored_asset(platform: Platform, status):
    instance = platform.instance
    report_days(instance, ingested.key, "2013-04-08", "2013-04-09", "2013-04-10")
    report_days(instance, monitored.key, "2013-04-08")
    ingest_run = start_run(instance, "ingest_job", dg.DagsterRunStatus.STARTED)  # does not catch monitoring up
    monitor_run = start_run(instance, "monitor_job", status)

    assert evaluate(instance) == (
        f"ingested reaches 2013-04-10, monitored reaches 2013-04-08, but runs {monitor_run} of monitored are queued "
        "or started: waiting for them."
    )
    assert alerts.count_alerts(platform.settings) == 0

    instance.report_run_canceled(instance.get_run_by_id(monitor_run))  # the run ends without catching up
    evaluate(instance)
    assert [a.kind for a in alerts.recent_alerts(platform.settings)] == ["monitoring_lag"]
    assert instance.get_run_by_id(ingest_run).status == dg.DagsterRunStatus.STARTED  # still running, not waited for


def test_lag_sensor_alerts_when_monitoring_never_ran(platform: Platform):
    report_days(platform.instance, ingested.key, "2013-04-01")

    evaluate(platform.instance)

    [alert] = alerts.recent_alerts(platform.settings)
    assert alert.details["newest_monitored_day"] is None and alert.details["lag_days"] is None
    assert "monitored reaches no day yet (never materialized" in alert.message
    assert lag_sensor.default_status == dg.DefaultSensorStatus.RUNNING and lag_sensor.minimum_interval_seconds == 60
