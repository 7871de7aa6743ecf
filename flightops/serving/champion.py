"""The registry's champion model, kept loaded and swapped in when the alias moves.

Training moves the `champion` alias to a new model version; the service must follow
without a restart. Each request may ask the registry for the alias's version, but
at most once every `refresh_seconds`, so the registry is not queried per request.
A new version is loaded by its number (not by the alias) so the version reported
is exactly the one that answers, even if the alias moves again during the load.
If a check or a load fails, the model already loaded keeps serving and the error
is logged; with no model loaded, the error is what the caller is told.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from flightops.modeling.promotion import CHAMPION_ALIAS
from flightops.modeling.tracking import REGISTERED_MODEL_NAME

# What the registry answers when the model, or its alias, does not exist.
_ABSENT_ERROR_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}

log = logging.getLogger(__name__)


class ChampionUnavailable(RuntimeError):
    """No champion model can be served (none registered, or it cannot be loaded)."""


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: int
    model: Any  # a fitted sklearn-compatible classifier or pipeline

    def delay_probability(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class for each row: arriving more than 15 minutes late."""
        return self.model.predict_proba(frame)[:, 1]


class ChampionTracker:
    """Holds the loaded champion and follows the registry alias, thread-safely."""

    model_name = REGISTERED_MODEL_NAME
    alias = CHAMPION_ALIAS

    def __init__(self, tracking_uri: str, refresh_seconds: float) -> None:
        self.tracking_uri = tracking_uri
        self._refresh_seconds = refresh_seconds
        # The registry too, explicitly: left out, MLflow takes it from its process-wide default
        # (MLFLOW_REGISTRY_URI, mlflow.set_registry_uri) before the tracking URI given here.
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._lock = threading.Lock()
        self._served: ServedModel | None = None
        self._checked_at: float | None = None
        self._last_error: str | None = None

    @property
    def served(self) -> ServedModel | None:
        """The model answering now, without asking the registry."""
        return self._served

    def current(self) -> ServedModel:
        """The champion to answer with, refreshed from the registry when a check is due."""
        # With a model loaded, a request that finds another one refreshing answers with the
        # loaded model rather than wait; with none loaded, it waits for that refresh.
        if self._check_due() and self._lock.acquire(blocking=self._served is None):
            try:
                if self._check_due():
                    self._refresh()
            finally:
                self._lock.release()
        served = self._served
        if served is None:
            raise ChampionUnavailable(self._last_error or self._absent_message())
        return served

    def _check_due(self) -> bool:
        return self._checked_at is None or time.monotonic() - self._checked_at >= self._refresh_seconds

    def _refresh(self) -> None:
        self._checked_at = time.monotonic()
        try:
            version = self._champion_version()
            if version is None:
                self._last_error = self._absent_message()
                if self._served is not None:
                    log.warning("%s; still serving version %d", self._last_error, self._served.version)
                return
            if self._served is not None and self._served.version == version:
                return
            self._served = self._load(version)
            self._last_error = None
        except Exception as exc:  # the registry, the artifact store or the model itself failed
            self._last_error = (
                f"could not load {self.model_name}@{self.alias} from registry at {self.tracking_uri}: {exc}"
            )
            if self._served is None:
                log.exception("%s", self._last_error)
            else:
                log.exception("%s; still serving version %d", self._last_error, self._served.version)

    def _champion_version(self) -> int | None:
        try:
            return int(self._client.get_model_version_by_alias(self.model_name, self.alias).version)
        except MlflowException as exc:
            if exc.error_code in _ABSENT_ERROR_CODES:
                return None
            raise

    def _load(self, version: int) -> ServedModel:
        started = time.perf_counter()
        uri = self._client.get_model_version_download_uri(self.model_name, str(version))
        model = mlflow.sklearn.load_model(uri)
        previous = self._served.version if self._served else None
        log.info(
            "Loaded %s version %d (alias %s; previously %s) in %.0f ms",
            self.model_name, version, self.alias, previous, (time.perf_counter() - started) * 1000,
        )
        return ServedModel(self.model_name, version, model)

    def _absent_message(self) -> str:
        return (
            f"no model has the alias {self.alias} in registry at {self.tracking_uri} "
            f"(registered model {self.model_name}); run training first"
        )
