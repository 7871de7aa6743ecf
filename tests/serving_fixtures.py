"""Fixtures of the prediction service's tests: a registry holding models trained by the platform.

A pytest plugin: test modules load it with `pytest_plugins = ["tests.serving_fixtures"]` and
use the fixtures by name (tests/test_serving.py, tests/test_prometheus.py). The models are
trained by the platform's own training (`flightops.modeling.training.train_and_register`:
CatBoost pipeline, logged signature, registered versions) on synthetic feature rows
(tests/feature_frames.py); requests are rows of a later day, unseen in training.

The registry is trained once per session and shared; `serving_settings` crowns version 1 at the
start of every test that uses it, so a test may move the alias. What the tests call is a method
of a fixture's value (`Registry.crown`, `Registry.probability`, the `settings_for` factory) or
lives in tests/feature_frames.py (`request_body`): a test module imports nothing from here
(pytest rewrites a plugin's asserts only when it is not imported before being registered).
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import uvicorn
from mlflow import MlflowClient

from flightops.modeling.data import join_labels
from flightops.modeling.splits import flight_days
from flightops.serving.app import create_app
from flightops.serving.champion import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from flightops.settings import Settings, load_environment
from tests.feature_frames import feature_tables

FIRST_DAY = date(2013, 1, 1)
TRAINING_DAYS = 12  # 2013-01-01 .. 2013-01-12: train, validation and test windows of the training run
SERVED_DAY = FIRST_DAY + timedelta(days=TRAINING_DAYS)  # requests are flights of 2013-01-13
# Two versions that answer differently: fewer and shallower trees for version 2; no tuning.
VERSION_CATBOOST = ({"iterations": 60}, {"iterations": 15, "depth": 3})


def settings_with(data_dir: Path, tracking_uri: str) -> Settings:
    """The platform's settings (environment and .env), with this data folder and registry."""
    load_environment()
    return dataclasses.replace(
        Settings.current(), data_dir=data_dir, mlflow_tracking_uri=tracking_uri,
        mlflow_artifacts=data_dir / "mlflow-artifacts",
    )


@dataclasses.dataclass
class Registry:
    """A private MLflow registry, its models by version, and an empty registry beside it."""

    uri: str
    client: MlflowClient
    models: dict[int, object]  # registry version -> the fitted pipeline that was registered
    empty_uri: str  # a registry with the same tables and no model at all

    def crown(self, version: int) -> None:
        self.client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, str(version))

    def probability(self, version: int, row: pd.Series) -> float:
        """Version `version`'s own answer for one row of the feature table."""
        return float(self.models[version].predict_proba(row.to_frame().T)[0, 1])


@pytest.fixture(scope="session")
def serving_flights() -> pd.DataFrame:
    """Feature rows with their label (is_delayed) of the training days and the served day."""
    return join_labels(*feature_tables(FIRST_DAY, days=TRAINING_DAYS + 1, flights_per_day=300, seed=13))


@pytest.fixture(scope="session")
def served_rows(serving_flights: pd.DataFrame) -> pd.DataFrame:
    """Flights of the served day, with some nulls among the features (as the warehouse has)."""
    rows = serving_flights[flight_days(serving_flights) == SERVED_DAY]
    with_nulls = rows[rows.wind_gust.isna() & rows.plane_age.isna()].head(2)
    assert len(with_nulls) == 2, "the served day should have flights without gust or plane data"
    return pd.concat([with_nulls, rows.drop(with_nulls.index).sample(18, random_state=7)])


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, serving_flights: pd.DataFrame) -> Registry:
    """A SQLite MLflow registry with two versions trained and logged by the platform's training."""
    # Imported here: the training stack (CatBoost, Optuna, plots) is for this fixture only.
    from flightops.modeling.models import CatBoostConfig
    from flightops.modeling.training import TrainingConfig, train_and_register
    from flightops.modeling.tuning import TuningConfig

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()  # creates the tables (seconds of migrations): copy them, not redo them
    shutil.copy(root / "mlflow.db", root / "empty.db")
    training = serving_flights[flight_days(serving_flights) < SERVED_DAY]
    settings = settings_with(root, uri)
    models = {}
    # Training points MLflow's process-wide tracking and registry URIs at the store (which other
    # tests may have set, and which MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI back): point all
    # four at the tmp store for the training only, then put them back.
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("MLFLOW_TRACKING_URI", uri)
        environment.setenv("MLFLOW_REGISTRY_URI", uri)
        try:
            for catboost in VERSION_CATBOOST:
                config = TrainingConfig(
                    catboost=CatBoostConfig(**catboost), tuning=TuningConfig(n_trials=0), importance_rows=500
                )
                result = train_and_register(training, settings, config, run_name="serving-tests")
                models[int(result.model_version)] = result.model
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)
    assert sorted(models) == [1, 2]
    return Registry(uri, client, models, empty_uri=f"sqlite:///{root / 'empty.db'}")


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[[str], Settings]:
    """Settings of this test (data folder under tmp_path) for a registry URI."""
    return lambda tracking_uri: settings_with(tmp_path / "data", tracking_uri)


@pytest.fixture
def serving_settings(settings_for: Callable[[str], Settings], registry: Registry) -> Settings:
    """Settings of the registry, whose champion is version 1 when the test starts."""
    registry.crown(1)
    return settings_for(registry.uri)


@pytest.fixture
def http_server(serving_settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a free port of 127.0.0.1, in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(serving_settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=15)
    listener.close()
    assert not thread.is_alive(), "uvicorn did not stop"
