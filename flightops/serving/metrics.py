"""Prometheus metrics of the prediction endpoint, rendered in the text exposition format 0.0.4.

`prometheus_client` is not a project dependency, and the few series needed here are
simple to keep by hand: counters by status and by decision, one latency histogram,
and the served model version as a gauge. Counts live in memory (they restart at
zero with the process, as Prometheus expects); the durable record is the
prediction log.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = "flightops_predict_requests_total"
PREDICTIONS = "flightops_predictions_total"
LATENCY = "flightops_predict_latency_seconds"
MODEL_VERSION = "flightops_model_version"


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class ServingMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[int] = Counter()
        self._predictions: Counter[str] = Counter()
        self._bucket_counts = [0] * len(LATENCY_BUCKETS_SECONDS)  # per bucket, not cumulative
        self._latency_sum = 0.0
        self._latency_count = 0

    def observe_request(self, status_code: int, latency_seconds: float) -> None:
        with self._lock:
            self._requests[status_code] += 1
            index = bisect.bisect_left(LATENCY_BUCKETS_SECONDS, latency_seconds)
            if index < len(self._bucket_counts):
                self._bucket_counts[index] += 1
            self._latency_sum += latency_seconds
            self._latency_count += 1

    def observe_prediction(self, decision: str) -> None:
        with self._lock:
            self._predictions[decision] += 1

    def render(self, model_name: str, model_version: int | None) -> str:
        """The exposition text; the version gauge is 0 while no model is loaded."""
        with self._lock:
            lines = [
                f"# HELP {REQUESTS} Requests to /predict by HTTP status code.",
                f"# TYPE {REQUESTS} counter",
                *(f'{REQUESTS}{{status="{code}"}} {count}' for code, count in sorted(self._requests.items())),
                f"# HELP {PREDICTIONS} Predictions returned by decision.",
                f"# TYPE {PREDICTIONS} counter",
                *(
                    f'{PREDICTIONS}{{decision="{_label_value(decision)}"}} {count}'
                    for decision, count in sorted(self._predictions.items())
                ),
                f"# HELP {LATENCY} Time to answer /predict, from receiving the request to the response.",
                f"# TYPE {LATENCY} histogram",
            ]
            cumulative = 0
            for bound, count in zip(LATENCY_BUCKETS_SECONDS, self._bucket_counts):
                cumulative += count
                lines.append(f'{LATENCY}_bucket{{le="{bound}"}} {cumulative}')
            lines += [
                f'{LATENCY}_bucket{{le="+Inf"}} {self._latency_count}',
                f"{LATENCY}_sum {self._latency_sum!r}",
                f"{LATENCY}_count {self._latency_count}",
            ]
        lines += [
            f"# HELP {MODEL_VERSION} Registry version of the model answering /predict (0: none loaded).",
            f"# TYPE {MODEL_VERSION} gauge",
            f'{MODEL_VERSION}{{model_name="{_label_value(model_name)}"}} {model_version or 0}',
        ]
        return "\n".join(lines) + "\n"
