"""The registry's champion model, kept loaded and swapped in when the alias moves.

Training moves the `champion` alias to a new model version; the service must follow
without a restart. Each request may ask the registry for the alias's version, but
at most once every `refresh_seconds`, so the registry is not queried per request.
A new version is loaded by its number (not by the alias) so the version reported
is exactly the one that answers, even if the alias moves again during the load.
With the model come the categorical values it was fit on (logged by training in the model's
metadata, `flightops.modeling.tracking.KNOWN_CATEGORIES`), so a request naming a carrier,
airport or route that version never saw can be answered with a warning.
If a check or a load fails, the model already loaded keeps serving and the error
is logged; with no model loaded, the error is what the caller is told.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import mlflow.artifacts
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from flightops.modeling.promotion import CHAMPION_ALIAS
from flightops.modeling.schema import CATEGORICAL_FEATURES
from flightops.modeling.tracking import KNOWN_CATEGORIES, REGISTERED_MODEL_NAME

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
    # Categorical feature -> the values the model was fit on; None for a version logged without them.
    known_categories: dict[str, frozenset[str]] | None = None

    def delay_probability(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class for each row: arriving more than 15 minutes late."""
        return self.model.predict_proba(frame)[:, 1]

    def unseen_categories(self, features: dict[str, object]) -> dict[str, str]:
        """Categorical inputs whose value the model never saw in training: feature -> value."""
        if self.known_categories is None:
            return {}
        return {
            column: str(features[column]) for column, known in self.known_categories.items()
            if features.get(column) is not None and str(features[column]) not in known
        }

    def category_warnings(self, unseen: dict[str, str]) -> list[str]:
        """One sentence per unseen value: what it is, what the model does with it, what to do."""
        return [
            f"{column} {value!r} was not seen in training by {self.name} version {self.version} (it knows "
            f"{len((self.known_categories or {}).get(column, ()))} {column} values); the model has learned nothing "
            "about it, so the probability rests on the other inputs and may be less reliable. Check the value, "
            "or retrain on data that includes it."
            for column, value in unseen.items()
        ]


def known_categories(metadata: dict[str, Any] | None) -> dict[str, frozenset[str]] | None:
    """The categories training logged in the model's metadata; None when the version has none."""
    logged = (metadata or {}).get(KNOWN_CATEGORIES)
    if not isinstance(logged, dict):
        return None
    return {column: frozenset(map(str, logged[column])) for column in CATEGORICAL_FEATURES if column in logged}


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
        # Fetched once (a local store's folder is used in place), then the model and its MLmodel read from it.
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=self.tracking_uri)
        model = mlflow.sklearn.load_model(local)
        categories = known_categories(Model.load(local).metadata)
        previous = self._served.version if self._served else None
        log.info(
            "Loaded %s version %d (alias %s; previously %s) in %.0f ms",
            self.model_name, version, self.alias, previous, (time.perf_counter() - started) * 1000,
        )
        if categories is None:
            log.warning(
                "%s version %d records no training categories (metadata %r of its MLmodel); requests with a "
                "carrier, airport or route it never saw get no warning. Retrain to record them.",
                self.model_name, version, KNOWN_CATEGORIES,
            )
        return ServedModel(self.model_name, version, model, categories)

    def _absent_message(self) -> str:
        return (
            f"no model has the alias {self.alias} in registry at {self.tracking_uri} "
            f"(registered model {self.model_name}); run training first"
        )
