"""Prometheus metrics of the prediction service, kept by prometheus_client in one registry per app.

Each app owns its `CollectorRegistry` (not the library's global default) so that several apps in
one process, as in the tests, count separately. Request counts, decisions, latency and predicted
probabilities live in memory and restart at zero with the process, as Prometheus expects; the
durable record is the prediction log. Two collectors are read at scrape time instead: the served
model version (the tracker may move to a new champion between requests) and the monitoring
figures, which another process (the monitoring assets) writes to `latest.json` and the alert store.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import date, datetime, timezone
from numbers import Real
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flightops.modeling.schema import CATEGORICAL_FEATURES
from flightops.monitoring.alerts import RETRAIN_REQUESTED, AlertStoreError, count_alerts
from flightops.monitoring.latest import latest_path, read_latest
from flightops.serving.champion import ChampionTracker
from flightops.settings import Settings

log = logging.getLogger(__name__)

LATENCY_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PROBABILITY_BUCKETS = tuple(round(0.1 * step, 1) for step in range(1, 11))  # 0.1, 0.2, .., 1.0

# prometheus_client appends `_total` to counter names in the exposition.
REQUESTS = "flightops_predict_requests"
PREDICTIONS = "flightops_predictions"
LATENCY = "flightops_predict_latency_seconds"
PROBABILITY = "flightops_predicted_probability"
UNSEEN_CATEGORIES = "flightops_unseen_categories"
MODEL_VERSION = "flightops_model_version"
MONITORED_DAY = "flightops_monitored_day_timestamp_seconds"
CHAMPION_AGE = "flightops_champion_age_days"
RETRAIN_REQUESTS = "flightops_retrain_requests"

# The figures of latest.json that become `flightops_monitoring_<figure>{model_version}` gauges.
# A figure the monitoring assets add needs a line here (and a panel in platform/grafana/).
MONITORING_FIGURES = {
    "weighted_stable_drift_share": "Importance-weighted share of stable inputs drifted (window to the monitored day).",
    "estimated_roc_auc": "ROC AUC estimated from probabilities, without labels (window to the monitored day).",
    "estimated_log_loss": "Log loss estimated from probabilities, without labels (window to the monitored day).",
    "realized_roc_auc": "ROC AUC against the labels, on the newest labelled window.",
    "realized_log_loss": "Log loss against the labels, on the newest labelled window.",
    "calibration_gap": "|mean probability - delay rate| on the newest labelled window.",
}


class ModelVersionCollector(Collector):
    """`flightops_model_version{model_name}`: the version answering /predict now, 0 while none is loaded.

    Reads what the tracker has loaded, without asking the registry: a scrape never waits on MLflow.
    """

    def __init__(self, tracker: ChampionTracker) -> None:
        self._tracker = tracker

    def collect(self) -> Iterator[Metric]:
        served = self._tracker.served
        family = GaugeMetricFamily(
            MODEL_VERSION,
            "Registry version of the model answering /predict (0: none loaded).",
            labels=["model_name"],
        )
        family.add_metric([self._tracker.model_name], served.version if served else 0)
        yield family


def _number(payload: dict[str, Any], key: str, where: str) -> float | None:
    """The numeric value under `key`, or None when it is missing or null (then its gauge is absent)."""
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        log.warning("Ignoring %s=%r in %s: not a finite number; the monitoring assets should write one or null.",
                    key, value, where)
        return None
    return float(value)


def monitoring_families(payload: dict[str, Any], where: str) -> Iterator[Metric]:
    """Gauges of one latest.json payload; a missing or null figure gives no series at all (not 0)."""
    version = str(payload.get("model_version") or "")
    figures = payload.get("figures") or {}
    for figure, documentation in MONITORING_FIGURES.items():
        value = _number(figures, figure, where)
        if value is not None:
            family = GaugeMetricFamily(f"flightops_monitoring_{figure}", documentation, labels=["model_version"])
            family.add_metric([version], value)
            yield family
    day = payload.get("day")
    if day:
        try:
            midnight = datetime.combine(date.fromisoformat(str(day)), datetime.min.time(), timezone.utc)
        except ValueError:
            log.warning("Ignoring day=%r in %s: not an ISO date (YYYY-MM-DD).", day, where)
        else:
            yield GaugeMetricFamily(
                MONITORED_DAY, "The newest monitored day, as Unix time of its midnight UTC.", value=midnight.timestamp()
            )
    age = _number(payload, "champion_age_days", where)
    if age is not None:
        yield GaugeMetricFamily(
            CHAMPION_AGE, "Days from the end of the champion's training data to the monitored day.", value=age
        )


class MonitoringCollector(Collector):
    """The newest monitoring figures and the count of retraining requests, read at each scrape.

    The serving process must not open the DuckDB warehouse (one process per file), so it reads the
    small files the monitoring layer writes for it. An unreadable latest.json or alert store is
    logged and its series left out: a monitoring problem must not take the serving metrics down.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        where = str(latest_path(self._settings))
        try:
            payload = read_latest(self._settings)
        except (OSError, ValueError) as exc:
            log.warning("Cannot read the monitoring figures %s (%s); they are left out of /metrics until "
                        "the monitoring assets write the file again.", where, exc)
            payload = None
        if payload is not None:
            yield from monitoring_families(payload, where)
        try:
            retrain_requests = count_alerts(self._settings, kind=RETRAIN_REQUESTED)
        except AlertStoreError as exc:
            log.warning("%s Until it reads again, /metrics leaves out %s_total.", exc, RETRAIN_REQUESTS)
            return
        yield CounterMetricFamily(
            RETRAIN_REQUESTS,
            f"Retraining requests raised by monitoring (alerts of kind {RETRAIN_REQUESTED}).",
            value=retrain_requests,
        )


class ServingMetrics:
    """The app's registry: what the request path records, plus the scrape-time collectors."""

    def __init__(self, settings: Settings, tracker: ChampionTracker) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            REQUESTS, "Requests to /predict by HTTP status code.", ["status"], registry=self.registry
        )
        self._predictions = Counter(
            PREDICTIONS, "Predictions returned by decision.", ["decision"], registry=self.registry
        )
        self._latency = Histogram(
            LATENCY,
            "Time to answer /predict, from receiving the request to the response.",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self._probability = Histogram(
            PROBABILITY,
            "Probabilities of arriving more than 15 minutes late returned by /predict.",
            buckets=PROBABILITY_BUCKETS,
            registry=self.registry,
        )
        self._unseen = Counter(
            UNSEEN_CATEGORIES,
            "Answers with a categorical input the model never saw in training (a warning in the answer), by feature.",
            ["feature"],
            registry=self.registry,
        )
        for feature in CATEGORICAL_FEATURES:  # every series from 0, so a first warning is a visible increase
            self._unseen.labels(feature=feature)
        self.registry.register(ModelVersionCollector(tracker))
        self.registry.register(MonitoringCollector(settings))

    def observe_request(self, status_code: int, latency_seconds: float) -> None:
        self._requests.labels(status=str(status_code)).inc()
        self._latency.observe(latency_seconds)

    def observe_prediction(self, decision: str, probability: float) -> None:
        self._predictions.labels(decision=decision).inc()
        self._probability.observe(probability)

    def observe_unseen_categories(self, features: list[str]) -> None:
        for feature in features:
            self._unseen.labels(feature=feature).inc()

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asks for (OpenMetrics for Prometheus, else text 0.0.4)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type
