"""The service's metrics as a real Prometheus sees them, and the monitoring collector on its own.

The end-to-end test serves a model trained by the platform (the registry of
tests/serving_fixtures.py) with uvicorn, starts a private Prometheus with scripts/prometheus.sh
scraping it every second, and reads the values back through Prometheus's HTTP API: what a Grafana
panel would show. The collector tests (`unit`) check that a figure missing from latest.json gives
no series at all, rather than a misleading 0.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client import CollectorRegistry

from flightops.monitoring.alerts import RETRAIN_REQUESTED, RUN_FAILED, raise_alert
from flightops.monitoring.latest import latest_path, write_latest
from flightops.serving.champion import REGISTERED_MODEL_NAME
from flightops.serving.metrics import PROBABILITY_BUCKETS, MonitoringCollector
from flightops.settings import REPO_ROOT, Settings
from tests.dagster_dev import free_port
from tests.feature_frames import request_body

pytest_plugins = ["tests.serving_fixtures"]

SCRIPT = REPO_ROOT / "scripts" / "prometheus.sh"
DASHBOARD = REPO_ROOT / "platform" / "grafana" / "dashboards" / "flightops.json"
# Grafana's macros, as a dashboard over the last minutes would fill them in.
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__range": "5m"}
SCRIPT_TIMEOUT_SECONDS = 900  # a first start may install Prometheus with apt-get
# Prometheus applies a new target list at most every 5 s, then scrapes every second.
QUERY_WAIT_SECONDS = 30
JOB = "flightops-serving"
SERVED_VERSION = 1  # the `serving_settings` fixture crowns version 1

FIGURES = {
    "weighted_stable_drift_share": 0.12,
    "estimated_roc_auc": 0.70,
    "estimated_log_loss": 0.5,
    "realized_roc_auc": 0.69,
    "realized_log_loss": None,  # null: labels not in yet
    # calibration_gap: missing altogether
}
PAYLOAD = {
    "day": "2013-04-10",
    "model_version": str(SERVED_VERSION),
    "champion_data_end": "2013-03-31",
    "champion_age_days": 10,
    "figures": FIGURES,
}
DAY_TIMESTAMP = datetime(2013, 4, 10, tzinfo=timezone.utc).timestamp()


def without_webhook(settings: Settings) -> Settings:
    """Alerts raised by a test stay in the store, whatever webhook the environment names."""
    return dataclasses.replace(settings, alert_webhook_url=None)


@pytest.fixture
def prometheus(tmp_path: Path, http_server: str) -> Iterator[str]:
    """A private Prometheus (scripts/prometheus.sh) scraping the served app every second; stopped after."""
    port = free_port()
    environment = {
        **os.environ,
        "FLIGHTOPS_PROMETHEUS_DIR": str(tmp_path / "prometheus"),
        "FLIGHTOPS_PROMETHEUS_PORT": str(port),
        "FLIGHTOPS_PROMETHEUS_SCRAPE_INTERVAL": "1s",
    }

    def script(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SCRIPT), *arguments], env=environment, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS
        )

    try:
        started = script("start", urlsplit(http_server).netloc)
        assert started.returncode == 0, f"scripts/prometheus.sh start failed:\n{started.stderr}"
        yield f"http://127.0.0.1:{port}"
    finally:
        stopped = script("stop")
        assert stopped.returncode == 0, f"scripts/prometheus.sh stop failed:\n{stopped.stderr}"
        assert script("status").returncode == 3, "Prometheus still runs after scripts/prometheus.sh stop"


def query(prometheus: str, expression: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of each series of an instant query."""
    response = requests.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return [(series["metric"], float(series["value"][1])) for series in body["data"]["result"]]


def value(prometheus: str, expression: str) -> float | None:
    """The value of a query that names one series, None when Prometheus has none."""
    results = query(prometheus, expression)
    assert len(results) <= 1, f"{expression} matched several series: {results}"
    return results[0][1] if results else None


def eventually(prometheus: str, expression: str) -> list[tuple[dict[str, str], float]]:
    """The series of a query once it has any (a rate needs two scrapes), within QUERY_WAIT_SECONDS."""
    deadline = time.monotonic() + QUERY_WAIT_SECONDS
    while not (results := query(prometheus, expression)):
        assert time.monotonic() < deadline, f"{expression} has no series after {QUERY_WAIT_SECONDS} s"
        time.sleep(0.5)
    return results


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the Grafana dashboard, macros filled in."""
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expression = target["expr"]
            for macro, interval in GRAFANA_MACROS.items():
                expression = expression.replace(macro, interval)
            queries.append((panel["title"], expression))
    return queries


def test_prometheus_scrapes_requests_probabilities_and_monitoring(
    serving_settings: Settings, served_rows, http_server: str, prometheus: str
):
    settings = without_webhook(serving_settings)
    write_latest(settings, PAYLOAD)
    for key in ("first", "second"):
        raise_alert(settings, RETRAIN_REQUESTED, "test: retrain", dedup_key=key)
    raise_alert(settings, RUN_FAILED, "test: another kind", dedup_key="other")

    with requests.Session() as session:
        answers = [
            session.post(f"{http_server}/predict", json=request_body(row), timeout=10).json()
            for _, row in served_rows.iterrows()
        ]
        refused = [
            session.post(f"{http_server}/predict", json={**request_body(row), "origin": "SFO"}, timeout=10)
            for _, row in served_rows.head(2).iterrows()
        ]
    assert {answer["model_version"] for answer in answers} == {SERVED_VERSION}
    assert [response.status_code for response in refused] == [422, 422]
    served = len(answers)

    # Wait for a scrape that follows the last request.
    selector = f'job="{JOB}"'
    deadline = time.monotonic() + QUERY_WAIT_SECONDS
    while value(prometheus, f"flightops_predicted_probability_count{{{selector}}}") != served:
        assert time.monotonic() < deadline, (
            f"Prometheus has not scraped {served} predictions within {QUERY_WAIT_SECONDS} s; targets: "
            f"{requests.get(f'{prometheus}/api/v1/targets', timeout=10).text}"
        )
        time.sleep(0.5)

    assert value(prometheus, f"up{{{selector}}}") == 1
    assert value(prometheus, f'flightops_predict_requests_total{{{selector},status="200"}}') == served
    assert value(prometheus, f'flightops_predict_requests_total{{{selector},status="422"}}') == len(refused)
    probabilities = [answer["probability"] for answer in answers]
    buckets = {float(labels["le"]): count for labels, count in query(
        prometheus, f"flightops_predicted_probability_bucket{{{selector}}}"
    )}
    assert buckets == {
        **{bound: sum(p <= bound for p in probabilities) for bound in PROBABILITY_BUCKETS},
        float("inf"): served,
    }
    assert value(prometheus, f"flightops_predicted_probability_sum{{{selector}}}") == pytest.approx(sum(probabilities))
    assert value(prometheus, f'flightops_model_version{{{selector},model_name="{REGISTERED_MODEL_NAME}"}}') == (
        SERVED_VERSION
    )

    for figure, written in FIGURES.items():
        series = query(prometheus, f"flightops_monitoring_{figure}{{{selector}}}")
        expected = [] if written is None else [(str(SERVED_VERSION), written)]
        assert [(labels["model_version"], number) for labels, number in series] == expected, figure
    assert query(prometheus, f"flightops_monitoring_calibration_gap{{{selector}}}") == []
    assert value(prometheus, f"flightops_monitored_day_timestamp_seconds{{{selector}}}") == DAY_TIMESTAMP
    assert value(prometheus, f"flightops_champion_age_days{{{selector}}}") == 10
    assert value(prometheus, f"flightops_retrain_requests_total{{{selector}}}") == 2

    # Every dashboard query is valid PromQL and finds its series, but for the figures not written.
    for title, expression in dashboard_queries():
        figure = re.search(r"flightops_monitoring_(\w+)", expression)
        if figure and FIGURES.get(figure.group(1)) is None:
            assert query(prometheus, expression) == [], f"panel {title!r}: {expression}"
        else:
            assert eventually(prometheus, expression), f"panel {title!r}: {expression}"


# The collector on its own, without a model or a server.


@pytest.fixture
def monitoring_settings(tmp_path: Path, settings_for) -> Settings:
    return without_webhook(settings_for(f"sqlite:///{tmp_path / 'unused.db'}"))


def collected(settings: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, labels) -> value of everything the monitoring collector exposes."""
    registry = CollectorRegistry()
    registry.register(MonitoringCollector(settings))
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


NO_RETRAIN_REQUESTS = {("flightops_retrain_requests_total", ()): 0.0}


@pytest.mark.unit
def test_collector_exposes_written_figures_only(monitoring_settings: Settings):
    write_latest(monitoring_settings, PAYLOAD)
    version = (("model_version", str(SERVED_VERSION)),)
    assert collected(monitoring_settings) == {
        ("flightops_monitoring_weighted_stable_drift_share", version): 0.12,
        ("flightops_monitoring_estimated_roc_auc", version): 0.70,
        ("flightops_monitoring_estimated_log_loss", version): 0.5,
        ("flightops_monitoring_realized_roc_auc", version): 0.69,
        ("flightops_monitored_day_timestamp_seconds", ()): DAY_TIMESTAMP,
        ("flightops_champion_age_days", ()): 10.0,
        **NO_RETRAIN_REQUESTS,
    }


@pytest.mark.unit
def test_collector_before_monitoring_has_run(monitoring_settings: Settings):
    assert collected(monitoring_settings) == NO_RETRAIN_REQUESTS


@pytest.mark.unit
def test_collector_without_figures_day_or_age(monitoring_settings: Settings):
    write_latest(monitoring_settings, {"day": None, "model_version": "3", "champion_age_days": None, "figures": {}})
    assert collected(monitoring_settings) == NO_RETRAIN_REQUESTS


@pytest.mark.unit
def test_collector_counts_retrain_requests_only(monitoring_settings: Settings):
    for key in ("a", "b", "c"):
        raise_alert(monitoring_settings, RETRAIN_REQUESTED, "retrain", dedup_key=key)
    raise_alert(monitoring_settings, RUN_FAILED, "a run failed", dedup_key="run")
    assert collected(monitoring_settings) == {("flightops_retrain_requests_total", ()): 3.0}


@pytest.mark.unit
def test_unreadable_figures_are_left_out_and_logged(monitoring_settings: Settings, caplog: pytest.LogCaptureFixture):
    path = latest_path(monitoring_settings)
    path.parent.mkdir(parents=True)
    path.write_text('{"day": "2013-04-')  # a truncated file
    with caplog.at_level(logging.WARNING, logger="flightops.serving.metrics"):
        assert collected(monitoring_settings) == NO_RETRAIN_REQUESTS
    assert f"Cannot read the monitoring figures {path}" in caplog.text


@pytest.mark.unit
def test_non_numeric_figure_is_left_out_and_logged(monitoring_settings: Settings, caplog: pytest.LogCaptureFixture):
    figures = {"estimated_roc_auc": "high", "calibration_gap": 0.03}
    write_latest(monitoring_settings, {"day": "April", "model_version": "3", "champion_age_days": 2, "figures": figures})
    with caplog.at_level(logging.WARNING, logger="flightops.serving.metrics"):
        assert collected(monitoring_settings) == {
            ("flightops_monitoring_calibration_gap", (("model_version", "3"),)): 0.03,
            ("flightops_champion_age_days", ()): 2.0,
            **NO_RETRAIN_REQUESTS,
        }
    path = latest_path(monitoring_settings)
    assert f"Ignoring estimated_roc_auc='high' in {path}: not a finite number" in caplog.text
    assert f"Ignoring day='April' in {path}: not an ISO date" in caplog.text

